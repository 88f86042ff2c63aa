"""Load the published RetinaFace-Res50.h5 (Keras 2 / tf_keras full-model file) into our Keras 3 RetinaFace.

Keras 3 cannot load that file: its graph holds TFOpLambda / SlicingOpLambda layers (tf.concat, slicing, prior boxes,
decoding, tf.image.non_max_suppression) and custom classes (FPN, SSH, *Head). We read only the weight arrays
(`read_keras2_h5`, h5py, nothing executed) and place each one on exactly one variable of `build_retinaface()`.

Layout of the file's weight groups (the names tf_keras gave the layers; see tests/fixtures/keras2_retinaface.py):
  ResNet50_extrator   nested Keras-applications ResNet50: inner names equal ours ("conv1_conv/kernel:0")
  fpn                 five ConvUnits "fpn/conv_unit_k/conv2d_k/kernel:0", ".../batch_normalization_k/gamma:0", ...
  ssh, ssh_1, ssh_2   five ConvUnits each
  bbox_head[_i], LandmarkHead_i, ClassHead_i   one 1x1 conv each ("ClassHead_0/conv2d_26/kernel:0")
The counters in those names (conv_unit_5, conv2d_26) depend on what the saving session had built before, so the
ConvUnits of a group are identified by their order of first appearance in the group, which is the order the
published layers assign them as attributes (FPN_UNITS, SSH_UNITS). Which group feeds which pyramid level is read from
the model configuration's inbound nodes (data only), with DEFAULT_GROUPS as the fallback for configuration-less files.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import keras

from clipswap.checkpoints.errors import CheckpointMismatchError
from clipswap.checkpoints.keras2_h5 import H5Weight, Keras2H5, assign_strict, read_keras2_h5, split_nested
from clipswap.models.retinaface import HEAD_SIZES, build_retinaface

log = logging.getLogger(__name__)

LEVELS = 3
# File ConvUnit order inside FPN (attribute order: laterals P3, P4, P5, then merge1 = P3, merge2 = P4) -> our unit.
FPN_UNITS: tuple[str, ...] = ("output1", "output2", "output3", "merge1", "merge2")
# File ConvUnit order inside each SSH -> our unit.
SSH_UNITS: tuple[str, ...] = ("conv_3x3", "conv_5x5_1", "conv_5x5_2", "conv_7x7_2", "conv_7x7_3")
# Published head class -> our head name (clipswap.models.retinaface.HEAD_SIZES keys).
HEAD_CLASSES: dict[str, str] = {"ClassHead": "class", "BboxHead": "box", "LandmarkHead": "landmark"}
# Variable order of our layers (Keras 3 `layer.weights`), by the file's short weight names.
CONV_ORDER: tuple[str, ...] = ("kernel", "bias")
BN_ORDER: tuple[str, ...] = ("gamma", "beta", "moving_mean", "moving_variance")
# Group names a tf_keras session that built nothing else first gives the layers (role -> file group name).
DEFAULT_GROUPS: dict[str, str] = {
    "backbone": "ResNet50_extrator",
    "fpn": "fpn",
    **{f"ssh_{i}": ("ssh" if i == 0 else f"ssh_{i}") for i in range(LEVELS)},
    **{f"box_head_{i}": ("bbox_head" if i == 0 else f"bbox_head_{i}") for i in range(LEVELS)},
    **{f"landmark_head_{i}": f"LandmarkHead_{i}" for i in range(LEVELS)},
    **{f"class_head_{i}": f"ClassHead_{i}" for i in range(LEVELS)},
}


def _inbound_sources(entry: dict) -> list[tuple[str, int]]:
    """(layer name, output tensor index) of each input of a Keras 2 config layer entry (first call only)."""
    nodes = entry.get("inbound_nodes") or []
    if not nodes:
        return []
    return [(item[0], int(item[2])) for item in nodes[0] if isinstance(item, list) and len(item) >= 3]


def _resolve_groups(file: Keras2H5) -> tuple[dict[str, str], list[str]]:
    """Role ("fpn", "ssh_1", "class_head_2", ...) -> file group name, from the configuration; and the problems."""
    entries = file.config_layers()
    if not entries:
        return dict(DEFAULT_GROUPS), []
    problems: list[str] = []
    by_class: dict[str, list[dict]] = {}
    for entry in entries:
        by_class.setdefault(entry.get("class_name", ""), []).append(entry)
    roles: dict[str, str] = {}

    nested = by_class.get("Functional", []) + by_class.get("Model", [])
    backbones = [e["name"] for e in nested if e["name"] in file.layers]
    fpns = [e["name"] for e in by_class.get("FPN", [])]
    if len(backbones) != 1 or len(fpns) != 1:
        problems.append(
            f"expected one nested ResNet50 model and one FPN layer, found models {backbones} and FPN layers {fpns}"
        )
        return roles, problems
    roles["backbone"], roles["fpn"] = backbones[0], fpns[0]

    ssh_level: dict[str, int] = {}
    for entry in by_class.get("SSH", []):
        sources = _inbound_sources(entry)
        if len(sources) != 1 or sources[0][0] != fpns[0]:
            problems.append(f"SSH layer '{entry['name']}' is not fed by one FPN output (inputs {sources})")
            continue
        ssh_level[entry["name"]] = sources[0][1]
        roles[f"ssh_{sources[0][1]}"] = entry["name"]
    for class_name, head in HEAD_CLASSES.items():
        for entry in by_class.get(class_name, []):
            sources = _inbound_sources(entry)
            if len(sources) != 1 or sources[0][0] not in ssh_level:
                problems.append(f"{class_name} layer '{entry['name']}' is not fed by one SSH layer (inputs {sources})")
                continue
            role = f"{head}_head_{ssh_level[sources[0][0]]}"
            if role in roles:
                problems.append(f"two {class_name} layers on one pyramid level: '{roles[role]}' and '{entry['name']}'")
            roles[role] = entry["name"]
    missing = sorted(set(DEFAULT_GROUPS) - set(roles))
    if missing:
        problems.append(f"the file's configuration has no layer for {missing}")
    return roles, problems


def _ordered(weights: Sequence[H5Weight], order: Sequence[str], where: str, problems: list[str]) -> list[H5Weight]:
    """The weights sorted into `order` by short name; reports unknown or duplicate names."""
    by_name: dict[str, H5Weight] = {}
    for weight in weights:
        if weight.short_name not in order or weight.short_name in by_name:
            problems.append(f"{where}: unexpected weight {weight.name} {tuple(weight.value.shape)}")
            continue
        by_name[weight.short_name] = weight
    return [by_name[name] for name in order if name in by_name]


def _conv_units(weights: Sequence[H5Weight]) -> list[tuple[list[H5Weight], list[H5Weight]]]:
    """Split a custom layer's weights into (conv weights, BN weights) per ConvUnit, in attribute order.

    Names with the unit scope ("fpn/conv_unit_3/conv2d_3/kernel:0") are grouped by that scope, in the order each
    unit first appears (the file lists trainable weights first, in attribute order). Names without it
    ("conv2d_3/kernel:0", as some Keras 2 versions wrote nested-layer variables) pair the k-th conv owner with the
    k-th BN owner, each in order of first appearance.
    """
    if all(len(w.name.split("/")) >= 3 for w in weights):
        units: dict[str, list[H5Weight]] = {}
        for weight in weights:
            units.setdefault(weight.name.split("/")[-3], []).append(weight)
        return [
            ([w for w in ws if w.short_name in CONV_ORDER], [w for w in ws if w.short_name not in CONV_ORDER])
            for ws in units.values()
        ]
    convs: dict[str, list[H5Weight]] = {}
    norms: dict[str, list[H5Weight]] = {}
    for weight in weights:
        (convs if weight.short_name in CONV_ORDER else norms).setdefault(weight.owner, []).append(weight)
    if len(convs) != len(norms):
        return [(ws, []) for ws in convs.values()] + [([], ws) for ws in norms.values()]
    return list(zip(convs.values(), norms.values(), strict=True))


def _unit_pairs(model: keras.Model, group: str, weights, units: Sequence[str], prefix: str, problems: list[str]):
    pairs = []
    found = _conv_units(weights)
    if len(found) != len(units):
        problems.append(f"group '{group}': {len(found)} ConvUnits in the file, {len(units)} expected ({list(units)})")
        return pairs
    for unit, (convs, norms) in zip(units, found, strict=True):
        where = f"{group} unit {unit}"
        pairs.append((where, _ordered(convs, CONV_ORDER, where, problems), model.get_layer(f"{prefix}_{unit}_conv")))
        pairs.append((where, _ordered(norms, BN_ORDER, where, problems), model.get_layer(f"{prefix}_{unit}_bn")))
    return pairs


def _weighted_layers(model: keras.Model) -> set[str]:
    return {layer.name for layer in model.layers if layer.weights}


def load_retinaface_h5(path: str | Path, name: str = "retinaface") -> keras.Model:
    """Build RetinaFace-R50 (clipswap.models.retinaface) and fill it from a published Keras 2 RetinaFace .h5.

    Every weight in the file goes to exactly one variable, and every variable is filled; shapes must agree.

    Raises:
        CheckpointError: the file is missing, corrupt or truncated.
        CheckpointMismatchError: the file is not a RetinaFace-R50 checkpoint (names every problem).
    """
    file = read_keras2_h5(path, what="RetinaFace checkpoint")
    model = build_retinaface(name=name)
    roles, problems = _resolve_groups(file)
    absent = sorted({group for group in roles.values() if group not in file.layers})
    if absent:
        problems.append(f"layer groups without weights in the file: {absent}")
    if problems:
        raise CheckpointMismatchError(str(path), problems)

    ours = {layer.name: layer for layer in model.layers}
    pairs = []
    for inner, weights in split_nested(file.layers[roles["backbone"]]).items():
        layer = ours.get(inner)
        if layer is None or not layer.weights:
            problems.append(f"backbone weights of '{inner}' {[w.name for w in weights]} have no ResNet50 layer")
            continue
        order = BN_ORDER if isinstance(layer, keras.layers.BatchNormalization) else CONV_ORDER
        pairs.append((f"backbone {inner}", _ordered(weights, order, inner, problems), layer))
    pairs += _unit_pairs(model, roles["fpn"], file.layers[roles["fpn"]], FPN_UNITS, f"{name}_fpn", problems)
    for level in range(LEVELS):
        group = roles[f"ssh_{level}"]
        pairs += _unit_pairs(model, group, file.layers[group], SSH_UNITS, f"{name}_ssh_{level}", problems)
        for head in HEAD_SIZES:
            group = roles[f"{head}_head_{level}"]
            where = f"{group} ({head} head, level {level})"
            pairs.append(
                (where, _ordered(file.layers[group], CONV_ORDER, where, problems),
                 model.get_layer(f"{name}_{head}_head_{level}_conv"))
            )

    unfilled = sorted(_weighted_layers(model) - {layer.name for _, _, layer in pairs})
    if unfilled:
        problems.append(f"model layers that no file weight fills: {unfilled}")
    unread = sorted(set(file.layers) - set(roles.values()))
    if unread:
        problems.append(f"file layer groups that belong to no part of RetinaFace: {unread}")
    if problems:
        raise CheckpointMismatchError(str(path), problems)
    assign_strict(pairs, str(path), all_sources=file.weight_count())
    log.info("loaded RetinaFace-R50 from %s (%d weights)", path, file.weight_count())
    return model

