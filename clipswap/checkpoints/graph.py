"""Layer graphs of Keras 2 files and Keras 3 models, and a name-independent canonical order over them.

A published file names its layers as Keras 2 numbered them (conv2d_17, instance_normalization_3, ...), which says
nothing about their role. Walking each graph depth-first from its outputs, inputs in call order, visits the layers
of two identically wired graphs in the same order whatever their names: that order is what maps file layers onto
ours. Only the configuration's JSON is read; nothing is deserialised.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras


@dataclass(frozen=True)
class Topology:
    """layer name -> class name, layer name -> names of the layers feeding it (call order), output layer names."""

    classes: dict[str, str]
    inbound: dict[str, list[str]]
    outputs: list[str]

    def kind(self, name: str) -> str:
        """The class name without a registration package ("Addons>InstanceNormalization" -> "InstanceNormalization")."""
        return self.classes[name].split(">")[-1]


def _history_names(node) -> list[str]:
    """Layer names referenced by one Keras 2 inbound-node entry (list-of-lists or args/kwargs form)."""
    names: list[str] = []
    if isinstance(node, dict):
        if "keras_history" in node.get("config", {}):
            names.append(node["config"]["keras_history"][0])
        else:
            for value in node.values():
                names.extend(_history_names(value))
    elif isinstance(node, list):
        if len(node) >= 3 and isinstance(node[0], str) and isinstance(node[1], int):
            names.append(node[0])
        else:
            for value in node:
                names.extend(_history_names(value))
    return names


def topology_from_keras2_config(model_config: dict) -> Topology:
    """Topology of a Keras 2 functional model configuration (the `model_config` attribute of an .h5 file)."""
    config = model_config.get("config", {})
    classes: dict[str, str] = {}
    inbound: dict[str, list[str]] = {}
    for entry in config.get("layers", []):
        name = entry.get("name") or entry["config"]["name"]
        classes[name] = entry["class_name"]
        inbound[name] = _history_names(entry.get("inbound_nodes", []))
    outputs = _history_names(config.get("output_layers", []))
    return Topology(classes, inbound, outputs)


def topology_from_keras3_model(model: keras.Model) -> Topology:
    """Topology of a Keras 3 functional model, read from its graph nodes."""
    classes: dict[str, str] = {}
    inbound: dict[str, list[str]] = {}
    for layer in model.layers:
        classes[layer.name] = type(layer).__name__
        parents: list[str] = []
        for node in layer._inbound_nodes:
            parents.extend(t._keras_history.operation.name for t in node.arguments.keras_tensors)
        inbound[layer.name] = parents
    outputs = [t._keras_history.operation.name for t in keras.tree.flatten(model.outputs)]
    return Topology(classes, inbound, outputs)


def canonical_order(topology: Topology) -> list[str]:
    """Layer names in depth-first post-order from the outputs, inputs visited in call order."""
    order: list[str] = []
    seen: set[str] = set()
    for output in topology.outputs:
        stack: list[tuple[str, int]] = [(output, 0)]
        while stack:
            name, position = stack.pop()
            if position == 0 and name in seen:
                continue
            seen.add(name)
            parents = topology.inbound.get(name, [])
            if position < len(parents):
                stack.append((name, position + 1))
                if parents[position] not in seen:
                    stack.append((parents[position], 0))
            else:
                order.append(name)
    return order
