"""Load a published ClipSwap / FaceDancer generator .h5 (Keras 2, TF 2.14 full model) into our Keras 3 Generator.

The file's configuration names tensorflow-addons' "Addons>InstanceNormalization" and the custom AdaIN and
AdaptiveAttention layers, none of which we instantiate from the file. Instead:

1. the configuration JSON is read as data and the generator's shape is inferred from it: image size (input layer),
   identity width and mapping width/depth (the mapping Dense kernels), base width (first conv) and the decoder
   block type of each level (what feeds each up block's instance norm);
2. our Generator is built from that configuration;
3. the weighted layers of both graphs are paired in canonical graph order (clipswap.checkpoints.graph), their kinds
   must agree, and every weight is assigned strictly (shapes checked, every file weight used, every variable filled).
"""

from __future__ import annotations

import logging
from pathlib import Path

from clipswap.checkpoints.errors import CheckpointError, CheckpointMismatchError
from clipswap.checkpoints.graph import (
    Topology,
    canonical_order,
    topology_from_keras2_config,
    topology_from_keras3_model,
)
from clipswap.checkpoints.keras2_h5 import Keras2H5, assign_strict, read_keras2_h5
from clipswap.config import CLIP_VARIANTS, ModelConfig
from clipswap.models.generator import Generator
from clipswap.registry.encoders import ENCODERS

log = logging.getLogger(__name__)

#: CLIP towers a generator file may carry after its identity vector. The file records only the width, so a tower is
#: listed only where its width tells it apart: ViT-B/16 has ViT-B/32's 512 (the published files use B/32) and "tiny"
#: is the tests' tower.
FILE_CLIP_VARIANTS = ("clip_vit_base_patch32", "clip_vit_large_patch14")


def identity_input_widths() -> dict[int, list[tuple[str, str | None]]]:
    """Identity-input width -> the (identity encoder, CLIP variant or None) pairs that give it: every registered
    encoder alone or followed by a FILE_CLIP_VARIANTS embedding, read from the rows now (an encoder registered later
    is in it). A width with two pairs is ambiguous: interpret_identity_width refuses it."""
    widths: dict[int, list[tuple[str, str | None]]] = {}
    for row in ENCODERS.rows():
        for variant in (None, *FILE_CLIP_VARIANTS):
            widths.setdefault(row.width + (CLIP_VARIANTS[variant] if variant else 0), []).append((row.name, variant))
    return widths


def interpret_identity_width(width: int, source: str | Path) -> tuple[str, str | None]:
    """The (identity encoder, CLIP variant or None) of a generator whose identity input is `width` wide; `source`
    names the file in messages.

    Raises:
        CheckpointError: no encoder row, alone or with a CLIP embedding, gives `width`, or two combinations give it
            (the file does not say which).
    """
    widths = identity_input_widths()
    pairs = widths.get(width, [])
    if not pairs:
        encoders = ", ".join(f"{row.label} {row.width}" for row in ENCODERS.rows())
        raise CheckpointError(
            f"{source} takes a {width}-d identity vector; known widths are {sorted(widths)} "
            f"({encoders}, optionally followed by a CLIP embedding)."
        )
    if len(pairs) > 1:
        named = " and ".join(encoder if variant is None else f"{encoder} + {variant}" for encoder, variant in pairs)
        raise CheckpointError(
            f"{source} takes a {width}-d identity vector, which is ambiguous: {named} each give that width and the "
            "file does not say which it was trained with, so it cannot be loaded while those encoders are registered."
        )
    return pairs[0]


#: Our layer class for each class name a published file may use for it.
EQUIVALENT_KINDS = {"InstanceNormalization": "InstanceNormalization", "GroupNormalization": "InstanceNormalization"}


def _input_shapes(h5: Keras2H5) -> dict[str, list]:
    shapes = {}
    for entry in h5.config_layers():
        if entry["class_name"] == "InputLayer":
            config = entry["config"]
            shapes[entry.get("name", config.get("name"))] = config.get("batch_input_shape") or config.get("batch_shape")
    return shapes


def _fusion_kind(topology: Topology, adain: str) -> str:
    """Decoder block type of the up block whose AdaIN is `adain`, from what feeds its instance norm."""
    norm = topology.inbound[adain][0]
    source = topology.inbound[norm][0]
    kind = topology.kind(source)
    if kind == "Concatenate":
        return "concat"
    if kind == "AdaptiveAttention":
        return "affa"
    if kind == "Add" and all(topology.kind(p) == "Add" for p in topology.inbound[source]):
        return "add"
    return "no_skip"


def infer_generator_config(h5: Keras2H5) -> ModelConfig:
    """The ModelConfig a published generator file was built with.

    Raises:
        CheckpointError: the file is not a generator of this family (no configuration, wrong inputs, unknown or
            ambiguous widths).
    """
    if not h5.model_config:
        raise CheckpointError(
            f"{h5.path} holds weights only; a generator checkpoint must be a full-model .h5 (as published)."
        )
    topology = topology_from_keras2_config(h5.model_config)
    inputs = _input_shapes(h5)
    images = [s for s in inputs.values() if s and len(s) == 4]
    vectors = [s for s in inputs.values() if s and len(s) == 2]
    if len(images) != 1 or len(vectors) != 1:
        raise CheckpointError(
            f"{h5.path} is not a swap generator: expected one image input and one identity-vector input, "
            f"found input shapes {list(inputs.values())}."
        )
    image_size, id_width = int(images[0][1]), int(vectors[0][1])
    encoder, clip_variant = interpret_identity_width(id_width, h5.path)
    order = canonical_order(topology)
    dense = [n for n in order if topology.kind(n) == "Dense" and n in h5.layers]
    convs = [n for n in order if topology.kind(n) == "Conv2D" and n in h5.layers]
    adains = [n for n in order if topology.kind(n) == "AdaIN"]
    if not dense or not convs or len(adains) != 7:
        raise CheckpointError(
            f"{h5.path} does not look like a FaceDancer-style generator: {len(dense)} mapping Dense layers, "
            f"{len(convs)} convolutions and {len(adains)} AdaIN layers (7 expected)."
        )
    mapping_width = int(h5.layers[dense[0]][0].value.shape[1])
    base_filters = int(h5.layers[convs[0]][0].value.shape[-1])
    up_types = tuple(_fusion_kind(topology, name) for name in adains[1:])
    return ModelConfig(
        image_size=image_size,
        base_filters=base_filters,
        up_types=up_types,
        mapping_depth=len(dense),
        mapping_width=mapping_width,
        identity_encoder=encoder,
        clip_variant=clip_variant,
    )


def load_generator_h5(path: str | Path) -> tuple[Generator, ModelConfig]:
    """Read a published generator file into a new Generator.

    Returns:
        (model, config): the Keras 3 generator with every weight from the file, and the inferred configuration.

    Raises:
        CheckpointError: unreadable, truncated or not a generator.
        CheckpointMismatchError: the weights do not map one-to-one onto the inferred architecture; the message
            names each offending weight with both shapes.
    """
    h5 = read_keras2_h5(path, "generator checkpoint")
    config = infer_generator_config(h5)
    model = Generator(config)
    file_topology = topology_from_keras2_config(h5.model_config)
    ours_topology = topology_from_keras3_model(model)
    file_layers = [n for n in canonical_order(file_topology) if n in h5.layers]
    our_layers = [n for n in canonical_order(ours_topology) if model.get_layer(n).weights]
    problems = []
    if len(file_layers) != len(our_layers):
        problems.append(f"the file has {len(file_layers)} layers with weights, the model {len(our_layers)}")
    pairs = []
    for file_name, our_name in zip(file_layers, our_layers, strict=False):
        file_kind = file_topology.kind(file_name)
        our_kind = ours_topology.kind(our_name)
        if EQUIVALENT_KINDS.get(file_kind, file_kind) != our_kind:
            problems.append(
                f"layer {file_name} is a {file_kind} in the file where the model has a {our_kind} ({our_name})"
            )
            continue
        pairs.append((f"{file_name} -> {our_name}", h5.layers[file_name], model.get_layer(our_name)))
    if problems:
        raise CheckpointMismatchError(str(path), problems)
    assign_strict(pairs, str(path), all_sources=h5.weight_count())
    log.info("loaded generator %s: %s", path, config)
    return model, config
