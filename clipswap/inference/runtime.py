"""Which engine runs the generator in a swap: TensorFlow (the Keras model), OpenVINO or ONNX Runtime.

`--runtime` (swap, evaluate, inference.py):

    auto          TensorFlow when TensorFlow sees a GPU; on a CPU OpenVINO when it is installed (the `export` extra),
                  else TensorFlow
    tf            the Keras model through tf.function (fp32, or bf16 by rebuilding it under mixed_bfloat16)
    openvino      the generator exported to OpenVINO IR, compiled for the CPU with the f32 or bf16 precision hint
    onnxruntime   the generator exported to ONNX, run by ONNX Runtime's CPU provider (float32 only)

An exported runtime converts the generator once (clipswap.inference.export.export_network, which checks the export
against the Keras model) and caches the file in the user's cache folder (cache_dir: `$XDG_CACHE_HOME/clipswap`, else
`~/.cache/clipswap`), never beside the user's checkpoint, named by the checkpoint's SHA-256 and the inference graph's
revision (clipswap.options.INFERENCE_GRAPH_REVISION), so a changed checkpoint (or a changed inference graph) is
converted again and never run through a stale export. Where the cache folder cannot be written the generator is
converted into a temporary folder for this run alone, with one warning saying so.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clipswap.errors import ClipswapError
from clipswap.options import INFERENCE_GRAPH_REVISION
from clipswap.registry import UnknownComponentError
from clipswap.registry.runtimes import AUTO, KERAS_RUNTIME, RUNTIMES

log = logging.getLogger(__name__)


class RuntimeUnavailableError(ClipswapError, ValueError):
    """A runtime that cannot run here (not installed, a precision it lacks); the message names the fix."""


def gpu_visible() -> bool:
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def resolve_runtime(name: str, precision: str = "fp32") -> str:
    """The runtime `--runtime name` means here (module docstring; the rows of clipswap.registry.runtimes). Raises
    RuntimeUnavailableError."""
    if name == AUTO:
        if gpu_visible():
            return KERAS_RUNTIME
        ranked = sorted((row for row in RUNTIMES.rows() if row.auto_rank is not None), key=lambda row: row.auto_rank)
        return next((row.name for row in ranked if row.installed()), KERAS_RUNTIME)
    try:
        row = RUNTIMES.get(name)
    except UnknownComponentError as error:
        raise RuntimeUnavailableError(f"unknown runtime {name!r}; choose one of {AUTO}, "
                                      f"{', '.join(RUNTIMES.names())}") from error
    if row.modules:
        from clipswap.inference.export import require_modules

        try:
            require_modules(row.modules, f"--runtime {name}", row.extra or "export")
        except ValueError as error:
            raise RuntimeUnavailableError(str(error)) from error
    if precision not in row.precisions:
        raise RuntimeUnavailableError(
            f"--runtime {name} runs {' or '.join(row.precisions)} only, not {precision}; use --precision "
            "fp32 or another runtime")
    return name


def cache_dir() -> Path:
    """The user's cache folder of clipswap: $XDG_CACHE_HOME/clipswap, or ~/.cache/clipswap when that variable is
    unset, empty or relative (the XDG base directory rule: a relative value is ignored)."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    return (Path(base) if base and Path(base).is_absolute() else Path.home() / ".cache") / "clipswap"


def cache_path(checkpoint_path: str | Path, digest: str, fmt: str) -> Path:
    """Where the `fmt` export of the checkpoint with SHA-256 `digest` is kept: in cache_dir(), named by the
    checkpoint file's stem, the digest's first 16 digits and the inference graph's revision."""
    from clipswap.inference.export import get_format

    checkpoint_path = Path(checkpoint_path)
    name = get_format(fmt).file_name(f"{checkpoint_path.stem}-{digest[:16]}-g{INFERENCE_GRAPH_REVISION}")
    return cache_dir() / name


@dataclass
class ExportedGenerator:
    """A generator run by an exported runtime: called with numpy arrays in the Keras model's input order, returns
    [B, S, S, 3] float32 (FaceSwapper calls it directly, outside TensorFlow)."""

    runtime: str
    precision: str
    path: Path
    runner: Callable[[Sequence[np.ndarray]], np.ndarray]
    runs_numpy = True

    def __call__(self, inputs: Sequence[np.ndarray]) -> np.ndarray:
        return self.runner([np.ascontiguousarray(x, np.float32) for x in inputs])


def exported_generator(checkpoint, runtime: str, precision: str) -> ExportedGenerator:
    """The checkpoint's generator converted for `runtime` (cached; module docstring). Raises ExportError."""
    from clipswap.checkpoints.native import sha256_of
    from clipswap.inference.export import export_network, load_exported

    fmt = RUNTIMES.get(runtime).format
    path = cache_path(checkpoint.path, checkpoint.sha256 or sha256_of(checkpoint.path), fmt)
    if path.exists():
        return ExportedGenerator(runtime, precision, path, load_exported(fmt, path, precision))
    log.warning("converting the generator for %s once; cached in %s", runtime, path)
    try:
        difference = export_network(checkpoint.model, fmt, path, replace=True)
    except OSError as error:
        # A cache that cannot be written must not stop the swap: convert into a folder of this run's own, loaded
        # before the folder goes (every runtime reads the whole file when it compiles it).
        log.warning("cannot write the runtime cache %s (%s); converting into a temporary folder for this run only",
                    path.parent, error.strerror or error)
        with tempfile.TemporaryDirectory(prefix="clipswap-runtime-") as folder:
            path = Path(folder) / path.name
            difference = export_network(checkpoint.model, fmt, path)
            runner = load_exported(fmt, path, precision)
    else:
        runner = load_exported(fmt, path, precision)
    log.info("%s export of %s: max difference %.2e", runtime, checkpoint.path, difference)
    return ExportedGenerator(runtime, precision, path, runner)
