"""Our checkpoint format: a Keras 3 `.keras` generator plus a JSON manifest beside it.

    generator.keras   the model file (its weights are what we read; its stored config is never deserialised)
    generator.json    {"format", "model": ModelConfig, "identity_encoder", "identity_dim", "clip_variant",
                       "image_size", "step", "weights_file", "sha256", "clipswap_version", ...}

Loading rebuilds the Generator from the manifest's configuration and reads the weights into it after checking the
weights file's SHA-256 against the manifest, so a changed, truncated or swapped file is refused.
"""

from __future__ import annotations

import hashlib
import json
import logging
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import keras

from clipswap import __version__
from clipswap.atomic import atomic_path, write_text_atomic
from clipswap.checkpoints.errors import CheckpointError
from clipswap.config import ModelConfig
from clipswap.jsonfile import JSONFileError, read_json_object
from clipswap.models.generator import Generator

log = logging.getLogger(__name__)

FORMAT = "clipswap-generator/1"


@dataclass(frozen=True)
class GeneratorCheckpoint:
    """A loaded generator with what its checkpoint says about it."""

    model: Generator
    config: ModelConfig
    path: str
    step: int
    source: str  # "clipswap" (our format) or "published-h5"
    sha256: str | None = None  # the weights file's SHA-256 when the loader already hashed it (our format)


def sha256_of(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def manifest_path(weights_path: str | Path) -> Path:
    return Path(weights_path).with_suffix(".json")


def save_generator(model: Generator, config: ModelConfig, path: str | Path, step: int = 0, **extra) -> Path:
    """Write `path` (.keras) and its manifest atomically; returns the manifest path."""
    path = Path(path)
    if path.suffix != ".keras":
        raise ValueError(f"our generator checkpoints end in .keras, got {path}")
    with atomic_path(path) as temporary:
        model.save(temporary)
        digest = sha256_of(temporary)
    manifest = {
        "format": FORMAT,
        "model": config.to_dict(),
        "identity_encoder": config.identity_encoder,
        "identity_dim": config.identity_dim,
        "clip_variant": config.clip_variant,
        "image_size": config.image_size,
        "step": int(step),
        "weights_file": path.name,
        "sha256": digest,
        "clipswap_version": __version__,
        **extra,
    }
    target = manifest_path(path)
    write_text_atomic(target, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    log.info("saved generator checkpoint %s (step %d)", path, step)
    return target


#: Manifest keys every loader relies on, with their types.
REQUIRED_KEYS = {"format": str, "model": dict, "sha256": str, "weights_file": str, "step": int}


def read_manifest(path: str | Path) -> tuple[dict, ModelConfig, Path]:
    """(manifest, its model configuration, weights path) for a .keras file or its .json manifest.

    The weights are the .keras file beside the manifest with the same stem (the pair is renamed or copied together);
    the manifest's `weights_file` only records the name it was written with.

    Raises:
        CheckpointError: the manifest is missing, unreadable, malformed or disagrees with itself.
    """
    path = Path(path)
    manifest_file = path if path.suffix == ".json" else manifest_path(path)
    weights = manifest_file.with_suffix(".keras")
    if not manifest_file.is_file():
        raise CheckpointError(
            f"no manifest {manifest_file} beside the checkpoint; clipswap checkpoints are a .keras file plus a .json "
            "manifest written together (clipswap init / clipswap train)."
        )
    try:
        manifest = read_json_object(manifest_file)
    except JSONFileError as error:
        raise CheckpointError(f"cannot read the manifest: {error}") from error
    if manifest.get("format") != FORMAT:
        raise CheckpointError(
            f"{manifest_file} is not a clipswap generator manifest (format {manifest.get('format')!r})"
        )
    problems = [
        f"'{key}' missing or not a {kind.__name__}"
        for key, kind in REQUIRED_KEYS.items()
        if not isinstance(manifest.get(key), kind)
    ]
    if not problems:
        try:
            config = ModelConfig.from_dict(manifest["model"])
        except (TypeError, ValueError) as error:
            problems.append(f"invalid model configuration: {error}")
        else:
            for key in ("image_size", "identity_encoder", "clip_variant"):
                if key in manifest and manifest[key] != getattr(config, key):
                    problems.append(
                        f"'{key}' is {manifest[key]!r} but the model configuration says {getattr(config, key)!r}"
                    )
    if problems:
        raise CheckpointError(
            f"the manifest {manifest_file} is malformed: {'; '.join(problems)}. Re-export the checkpoint."
        )
    return manifest, config, weights


def load_generator(path: str | Path) -> GeneratorCheckpoint:
    """Load one of our checkpoints; the weights file must match the manifest's SHA-256."""
    manifest, config, weights = read_manifest(path)
    if not weights.is_file():
        raise CheckpointError(f"the weights file {weights} of the manifest {manifest_path(weights)} does not exist")
    digest = sha256_of(weights)
    if digest != manifest["sha256"]:
        raise CheckpointError(
            f"{weights} does not match its manifest (SHA-256 {digest[:16]}... vs {manifest['sha256'][:16]}...): the "
            "file was changed, truncated or replaced. Restore it or re-export the checkpoint."
        )
    _check_archive_config(weights, config)
    model = Generator(config)
    try:
        # Keras only warns when a saved layer has no counterpart and leaves it randomly initialised; a checkpoint
        # must fill every variable, so those warnings are errors here.
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)
            model.load_weights(weights)
    except zipfile.BadZipFile as error:
        # A .keras file is a zip archive; one that is not (a manifest rewritten to match it) gets this sentence.
        raise CheckpointError(
            f"{weights} is not a Keras weights archive ({error}); restore the file or re-export the checkpoint."
        ) from error
    except (ValueError, OSError, KeyError, UserWarning) as error:
        raise CheckpointError(
            f"the weights in {weights} do not fit the architecture its manifest describes ({error}); re-export the "
            "checkpoint."
        ) from error
    return GeneratorCheckpoint(model, config, str(weights), int(manifest.get("step", 0)), "clipswap", digest)


def _check_archive_config(weights: Path, config: ModelConfig) -> None:
    """The model configuration saved inside the .keras archive (covered by the weights' SHA-256) must be the
    manifest's: a manifest edited to other sizes is refused before anything is built."""
    try:
        with zipfile.ZipFile(weights) as archive:
            info = archive.getinfo("config.json")
            if info.file_size > 1 << 20:
                raise CheckpointError(f"{weights} holds a {info.file_size}-byte config.json; not a clipswap generator")
            saved = json.loads(archive.read(info))
    except zipfile.BadZipFile as error:
        raise CheckpointError(
            f"{weights} is not a Keras weights archive ({error}); restore the file or re-export the checkpoint."
        ) from error
    except (KeyError, ValueError) as error:
        raise CheckpointError(f"{weights} has no readable config.json ({error}); re-export the checkpoint.") from error
    inner = saved.get("config", {}).get("config") if isinstance(saved, dict) else None
    if isinstance(inner, dict):
        try:
            same = ModelConfig.from_dict(inner) == config
        except (TypeError, ValueError):
            same = False
        if not same:
            raise CheckpointError(
                f"the manifest of {weights} describes another model than the one saved in the weights file "
                "(which its SHA-256 covers): the manifest was edited; restore it or re-export the checkpoint."
            )


def load_any_generator(path: str | Path) -> GeneratorCheckpoint:
    """A published .h5 generator or one of our .keras/.json checkpoints."""
    path = Path(path)
    if path.suffix.lower() == ".h5":
        from clipswap.checkpoints.generator_h5 import load_generator_h5

        model, config = load_generator_h5(path)
        return GeneratorCheckpoint(model, config, str(path), 0, "published-h5")
    if path.suffix.lower() in (".keras", ".json"):
        return load_generator(path)
    raise CheckpointError(f"unknown generator checkpoint type {path.suffix!r} ({path}); expected .h5, .keras or .json")


def init_generator(config: ModelConfig, path: str | Path, seed: int = 0) -> Path:
    """Write a randomly initialised generator in our format (benchmarks and pipeline tests)."""
    keras.utils.set_random_seed(seed)
    model = Generator(config)
    return save_generator(model, config, path, step=0, initialised="random", seed=int(seed))
