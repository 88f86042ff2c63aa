"""The files of the small networks clipswap trains beside a generator (the geometry and occluder networks):
`NAME.keras` (weights) and `NAME.json` (manifest), written together.

    NAME.json   {"format": FORMAT, "config": the network's constructor arguments, "weights_file", "sha256",
                 "clipswap_version", ...what the training adds (its accuracy, its command)}

Loading rebuilds the network from the manifest's configuration and reads the weights after checking their SHA-256,
so a changed, truncated or swapped file is refused with one sentence; the archive's own stored config is never
deserialised (nothing in a user's file decides what code runs).
"""

from __future__ import annotations

import json
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import keras

from clipswap import __version__
from clipswap.atomic import atomic_path, write_text_atomic
from clipswap.checkpoints.errors import CheckpointError
from clipswap.checkpoints.native import sha256_of
from clipswap.jsonfile import JSONFileError, read_json_object


@dataclass(frozen=True)
class SmallNetFiles:
    """What tells one kind of small network's files apart.

    Attributes:
        what: its name in messages ("geometry network").
        format: the manifest's "format".
        config_keys: the constructor arguments a manifest's "config" holds, exactly.
        build: config -> the network (called in float32, see `float32_net`).
        command: the command that writes such files, for the messages.
        defaults: config keys a manifest may leave out, with the values older files meant.
    """

    what: str
    format: str
    config_keys: frozenset[str]
    build: Callable[..., keras.Model]
    command: str
    defaults: dict = field(default_factory=dict)


def float32_net(kind: SmallNetFiles, config: dict, name: str) -> keras.Model:
    """The network of `config` built in float32 whatever the global policy: bf16 would quantise a 128 px crop's
    coordinates and masks to about a quarter pixel."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        return kind.build(**config, name=name)
    finally:
        keras.config.set_dtype_policy(previous)


def save_small_net(kind: SmallNetFiles, model: keras.Model, path: str | Path, **extra) -> Path:
    """Write `path` (.keras) and its manifest (.json) atomically; returns the manifest path."""
    path = Path(path)
    if path.suffix != ".keras":
        raise ValueError(f"{kind.what} files end in .keras, got {path}")
    config = {key: value for key, value in model.get_config().items() if key in kind.config_keys}
    # An uncompiled copy: the file holds the weights only, not the optimiser's state (a third of the size).
    clean = float32_net(kind, config, model.name)
    clean.set_weights(model.get_weights())
    with atomic_path(path) as temporary:
        clean.save(temporary)
        digest = sha256_of(temporary)
    manifest = {"format": kind.format, "config": config, "weights_file": path.name, "sha256": digest,
                "clipswap_version": __version__, **extra}
    target = path.with_suffix(".json")
    write_text_atomic(target, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return target


def read_small_manifest(kind: SmallNetFiles, path: str | Path) -> dict:
    """The manifest beside a .keras file (or the .json itself); CheckpointError when it is missing or malformed."""
    path = Path(path)
    manifest_file = path if path.suffix == ".json" else path.with_suffix(".json")
    if not manifest_file.is_file():
        raise CheckpointError(f"no manifest {manifest_file} beside the {kind.what}; it is a .keras file plus a "
                              f"{manifest_file.name} written together by `{kind.command}`")
    try:
        manifest = read_json_object(manifest_file)
    except JSONFileError as error:
        raise CheckpointError(f"cannot read the {kind.what}'s manifest: {error}") from error
    config = manifest.get("config")
    if isinstance(config, dict):
        config = manifest["config"] = {**kind.defaults, **config}
    if (manifest.get("format") != kind.format or not isinstance(config, dict) or set(config) != kind.config_keys
            or not isinstance(manifest.get("sha256"), str)):
        raise CheckpointError(f"{manifest_file} is not a clipswap {kind.what} manifest ({kind.format} with its config "
                              f"and sha256); write it again with `{kind.command}`")
    return manifest


def load_small_net(kind: SmallNetFiles, path: str | Path, name: str, hint: str) -> keras.Model:
    """The frozen network of `path`, weights checked against the manifest's SHA-256; `hint` ends the message when
    the file is missing (where else to find one).

    Raises:
        CheckpointError: the file or its manifest is missing, changed or does not fit the architecture.
    """
    weights = Path(path).with_suffix(".keras")
    manifest = read_small_manifest(kind, path)
    if not weights.is_file():
        raise CheckpointError(f"the {kind.what} {weights} does not exist; train one with `{kind.command}` {hint}")
    digest = sha256_of(weights)
    if digest != manifest["sha256"]:
        raise CheckpointError(f"{weights} does not match its manifest (SHA-256 {digest[:16]}... vs "
                              f"{manifest['sha256'][:16]}...): restore the file or train it again")
    try:
        model = float32_net(kind, manifest["config"], name)
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)
            model.load_weights(weights)
    except (zipfile.BadZipFile, ValueError, TypeError, OSError, KeyError, UserWarning) as error:
        raise CheckpointError(f"the weights in {weights} do not fit the {kind.what} its manifest describes "
                              f"({error}); train it again") from error
    model.trainable = False
    return model


__all__ = ["SmallNetFiles", "float32_net", "load_small_net", "read_small_manifest", "save_small_net"]
