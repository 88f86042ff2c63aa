"""Read Keras 2 (TensorFlow <= 2.15) full-model or weights-only .h5 files as plain arrays, and assign them strictly.

Nothing stored in the file is executed or deserialised into objects: the model configuration is parsed as JSON
data only, and the weights are read with h5py. That is what lets us read files whose configuration names layers
Keras 3 cannot build (tensorflow-addons InstanceNormalization, TFOpLambda, Lambda).

Layout of such a file: the root attribute `model_config` (JSON), a group `model_weights` (or the root for
weights-only files) whose attribute `layer_names` lists the layers in the model's order; each layer group has an
attribute `weight_names` ("conv2d_3/kernel:0", ...) and the datasets at those paths. A nested model (ResNet50 inside
ArcFace) is one layer group whose weight names start with the inner layers' names.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from clipswap.checkpoints.errors import CheckpointError, CheckpointMismatchError

log = logging.getLogger(__name__)


def _decode(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes | np.bytes_) else str(value)


@dataclass(frozen=True)
class H5Weight:
    """One stored weight: its name in the file ("conv2d_3/kernel:0") and its value."""

    name: str
    value: np.ndarray

    @property
    def short_name(self) -> str:
        """The variable name without owner path and ":0" ("kernel")."""
        return self.name.split("/")[-1].split(":")[0]

    @property
    def owner(self) -> str:
        """The innermost layer name that owns the weight ("conv2d_3"); for nested models the inner layer."""
        parts = self.name.split("/")
        return parts[-2] if len(parts) >= 2 else ""


@dataclass
class Keras2H5:
    """The contents of a Keras 2 .h5 file as data.

    Attributes:
        path: the file read.
        model_config: the parsed `model_config` JSON (None for weights-only files).
        keras_version: the Keras version that wrote the file ("" if absent).
        layers: layer name -> its weights in file order, layers in the file's order; layers without weights omitted.
    """

    path: str
    model_config: dict | None
    keras_version: str
    layers: dict[str, list[H5Weight]] = field(default_factory=dict)

    def config_layers(self) -> list[dict]:
        """The layer entries of the model configuration (class_name, config, name, inbound_nodes)."""
        if not self.model_config:
            return []
        return list(self.model_config.get("config", {}).get("layers", []))

    def weight_count(self) -> int:
        return sum(len(ws) for ws in self.layers.values())


def read_keras2_h5(path: str | Path, what: str = "checkpoint") -> Keras2H5:
    """Read every weight and the model configuration of a Keras 2 .h5 file.

    Raises:
        CheckpointError: the file is missing, not HDF5 (corrupt or truncated), or holds no Keras weights.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{what} file not found: {path}")
    try:
        with h5py.File(path, "r") as handle:
            config_raw = handle.attrs.get("model_config")
            model_config = json.loads(_decode(config_raw)) if config_raw is not None else None
            keras_version = _decode(handle.attrs.get("keras_version", ""))
            group = handle["model_weights"] if "model_weights" in handle else handle
            if "layer_names" not in group.attrs:
                raise CheckpointError(
                    f"{path} is an HDF5 file but holds no Keras weights (no 'layer_names'); "
                    f"it is not a {what} saved by Keras."
                )
            layers: dict[str, list[H5Weight]] = {}
            for layer_name in (_decode(n) for n in group.attrs["layer_names"]):
                layer_group = group[layer_name]
                names = [_decode(n) for n in layer_group.attrs.get("weight_names", [])]
                if names:
                    layers[layer_name] = [H5Weight(n, np.asarray(layer_group[n])) for n in names]
    except CheckpointError:
        raise
    except (OSError, KeyError, ValueError) as error:
        raise CheckpointError(
            f"cannot read {what} {path}: {error}. The file is corrupt or truncated (an interrupted download?); "
            "download it again."
        ) from error
    if not layers:
        raise CheckpointError(f"{path} holds no weights; it is not a {what}.")
    log.debug("read %d layers, %d weights from %s", len(layers), sum(len(w) for w in layers.values()), path)
    return Keras2H5(str(path), model_config, keras_version, layers)


def split_nested(weights: Sequence[H5Weight]) -> dict[str, list[H5Weight]]:
    """Group the weights of a nested-model layer group by their inner layer name, keeping file order."""
    groups: dict[str, list[H5Weight]] = {}
    for weight in weights:
        groups.setdefault(weight.owner, []).append(weight)
    return groups


def assign_strict(pairs: Iterable[tuple[str, Sequence[H5Weight], object]], path: str, all_sources: int | None = None):
    """Assign file weights to Keras 3 layers, one layer at a time, failing on any mismatch.

    Args:
        pairs: (description, file weights in order, target Keras layer) triples; the i-th file weight of a pair goes
            to the i-th variable of `layer.weights`.
        path: the file, for messages.
        all_sources: the number of weights in the file; when given, weights not covered by `pairs` are an error.

    Raises:
        CheckpointMismatchError: naming every offending weight with both shapes; nothing is assigned then.
    """
    problems: list[str] = []
    assignments = []
    used = 0
    for description, sources, layer in pairs:
        targets = list(layer.weights)
        used += len(sources)
        if len(sources) != len(targets):
            problems.append(
                f"{description}: file has {len(sources)} weight(s) "
                f"{[f'{w.name} {tuple(w.value.shape)}' for w in sources]}, model layer '{layer.name}' has "
                f"{len(targets)} {[f'{v.path} {tuple(v.shape)}' for v in targets]}"
            )
            continue
        for source, target in zip(sources, targets, strict=True):
            if tuple(source.value.shape) != tuple(target.shape):
                problems.append(
                    f"{source.name}: shape {tuple(source.value.shape)} in the file, {tuple(target.shape)} expected "
                    f"by {target.path}"
                )
            else:
                assignments.append((target, source.value))
    if all_sources is not None and used != all_sources:
        problems.append(f"the file holds {all_sources} weights but only {used} have a place in the model")
    if problems:
        raise CheckpointMismatchError(path, problems)
    for target, value in assignments:
        target.assign(value.astype(target.dtype) if hasattr(target, "dtype") else value)

