"""The geometry network's files: `geometry.keras` (weights) and `geometry.json` (manifest), as for the generator.

    geometry.json   {"format": "clipswap-geometry/1", "config": GeometryNet.get_config(), "weights_file",
                     "sha256", "clipswap_version", "accuracy": {held-out NME and pose errors}, "training": {...}}

A manifest written before the heatmap head existed has no "head" in its config: it is a dense network.

Loading rebuilds GeometryNet from the manifest's configuration and reads the weights after checking their SHA-256,
so a changed, truncated or swapped file is refused with one sentence; the archive's own stored config is never
deserialised.
"""

from __future__ import annotations

import json
import warnings
import zipfile
from pathlib import Path

import keras

from clipswap import __version__
from clipswap.atomic import atomic_path, write_text_atomic
from clipswap.checkpoints.errors import CheckpointError
from clipswap.checkpoints.native import sha256_of
from clipswap.jsonfile import JSONFileError, read_json_object
from clipswap.models.geometry import GeometryNet

FORMAT = "clipswap-geometry/1"
#: The geometry network shipped beside the demo generator (`attribute_network="landmarks"` reads it by default).
SHIPPED_GEOMETRY = Path(__file__).resolve().parents[2] / "pretrained_ckpts" / "demo" / "geometry.keras"
_CONFIG_KEYS = {"input_size", "widths", "strides", "stem_width", "head_width", "head"}
#: Keys a manifest may leave out, with the value the files written before them meant.
_CONFIG_DEFAULTS = {"head": "dense"}


def _float32_net(config: dict, name: str) -> GeometryNet:
    """GeometryNet of `config` built in float32 whatever the global policy: bf16 would quantise a 128 px crop's
    landmarks to about a quarter pixel."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        return GeometryNet(**config, name=name)
    finally:
        keras.config.set_dtype_policy(previous)


def save_geometry(model: GeometryNet, path: str | Path, **extra) -> Path:
    """Write `path` (.keras) and its manifest (.json) atomically; returns the manifest path."""
    path = Path(path)
    if path.suffix != ".keras":
        raise ValueError(f"geometry network files end in .keras, got {path}")
    config = {key: value for key, value in model.get_config().items() if key in _CONFIG_KEYS}
    # An uncompiled copy: the file holds the weights only, not the optimiser's state (a third of the size).
    clean = _float32_net(config, model.name)
    clean.set_weights(model.get_weights())
    with atomic_path(path) as temporary:
        clean.save(temporary)
        digest = sha256_of(temporary)
    manifest = {"format": FORMAT, "config": config, "weights_file": path.name, "sha256": digest,
                "clipswap_version": __version__, **extra}
    target = path.with_suffix(".json")
    write_text_atomic(target, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return target


def read_geometry_manifest(path: str | Path) -> dict:
    """The manifest beside a geometry .keras file (or the .json itself); CheckpointError when it is missing or
    malformed."""
    path = Path(path)
    manifest_file = path if path.suffix == ".json" else path.with_suffix(".json")
    if not manifest_file.is_file():
        raise CheckpointError(f"no manifest {manifest_file} beside the geometry network; it is a .keras file plus a "
                              "geometry.json written together by `clipswap train-geometry`")
    try:
        manifest = read_json_object(manifest_file)
    except JSONFileError as error:
        raise CheckpointError(f"cannot read the geometry manifest: {error}") from error
    config = manifest.get("config")
    if isinstance(config, dict):
        config = manifest["config"] = {**_CONFIG_DEFAULTS, **config}
    if (manifest.get("format") != FORMAT or not isinstance(config, dict) or set(config) != _CONFIG_KEYS
            or not isinstance(manifest.get("sha256"), str)):
        raise CheckpointError(f"{manifest_file} is not a clipswap geometry manifest ({FORMAT} with its config and "
                              "sha256); write it again with `clipswap train-geometry`")
    return manifest


def load_geometry(path: str | Path | None = None) -> GeometryNet:
    """The frozen geometry network of `path` (default: the one shipped beside the demo), weights checked against
    the manifest's SHA-256.

    Raises:
        CheckpointError: the file or its manifest is missing, changed or does not fit the architecture.
    """
    path = Path(path) if path is not None else SHIPPED_GEOMETRY
    weights = path.with_suffix(".keras")
    manifest = read_geometry_manifest(path)
    if not weights.is_file():
        raise CheckpointError(f"the geometry network {weights} does not exist; train one with "
                              "`clipswap train-geometry` or point --attribute-file PATH at one")
    digest = sha256_of(weights)
    if digest != manifest["sha256"]:
        raise CheckpointError(f"{weights} does not match its manifest (SHA-256 {digest[:16]}... vs "
                              f"{manifest['sha256'][:16]}...): restore the file or train it again")
    try:
        model = _float32_net(manifest["config"], "geometry")
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)
            model.load_weights(weights)
    except (zipfile.BadZipFile, ValueError, TypeError, OSError, KeyError, UserWarning) as error:
        raise CheckpointError(f"the weights in {weights} do not fit the geometry network its manifest describes "
                              f"({error}); train it again") from error
    model.trainable = False
    return model


__all__ = ["FORMAT", "SHIPPED_GEOMETRY", "load_geometry", "read_geometry_manifest", "save_geometry"]
