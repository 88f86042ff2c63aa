"""Export formats (`clipswap export --format`) and the runtimes that run the generator in a swap (`--runtime`).

An export format row:

    keras_format   the name Keras' Model.export gives it
    suffix         the file's suffix ("" for a folder); companions: suffixes of files written beside it, written
                   before it so that a reader that finds the file finds them (an OpenVINO IR's .bin)
    write_modules  (module, pip package) pairs that writing it needs; run_modules: that running it needs
    runner         "module:class" (path, precision) -> a callable list of float32 arrays (the model's input order)
                   -> float32 array
    precisions     the precisions its runner can run
    extra          the pyproject extra that installs its packages

A runtime row names the export format it runs (None: the Keras model itself, through TensorFlow), its precisions
and the extra it needs. "auto" (AUTO) is TensorFlow on a GPU, else the first runtime by auto_rank whose packages are
installed, else TensorFlow.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from clipswap.registry import Choices, Registry

Modules = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class ExportFormatRow:
    name: str
    keras_format: str
    suffix: str
    runner: str | Callable
    write_modules: Modules = ()
    run_modules: Modules = ()
    precisions: tuple[str, ...] = ("fp32",)
    extra: str = "export"
    companions: tuple[str, ...] = ()

    @property
    def install(self) -> str:
        """The command that installs its packages."""
        return install_command(self.extra)

    def file_name(self, stem: str) -> str:
        return stem + self.suffix

    def files(self, path: Path) -> list[Path]:
        """Everything the export at `path` consists of, companions first."""
        return [path.with_suffix(suffix) for suffix in self.companions] + [path]


@dataclass(frozen=True)
class RuntimeRow:
    name: str
    format: str | None
    precisions: tuple[str, ...]
    extra: str | None = None
    auto_rank: int | None = None

    @property
    def modules(self) -> Modules:
        """The packages running it needs: its export format's write and run modules (it converts the generator once
        before running it)."""
        if self.format is None:
            return ()
        row = FORMATS.get(self.format)
        return tuple(dict.fromkeys(row.write_modules + row.run_modules))

    def installed(self) -> bool:
        return all(importlib.util.find_spec(module) is not None for module, _ in self.modules)


def install_command(extra: str) -> str:
    return f"pip install -e \".[{extra}]\""


FORMATS: Registry[ExportFormatRow] = Registry("export format")
for _row in (
    ExportFormatRow("litert", "litert", ".tflite", "clipswap.inference.export:LiteRtRunner"),
    ExportFormatRow("onnx", "onnx", ".onnx", "clipswap.inference.export:OnnxRunner",
                    write_modules=(("tf2onnx", "tf2onnx"), ("onnxruntime", "onnxruntime")),
                    run_modules=(("onnxruntime", "onnxruntime"),)),
    ExportFormatRow("openvino", "openvino", ".xml", "clipswap.inference.export:OpenVinoRunner",
                    write_modules=(("openvino", "openvino"),), run_modules=(("openvino", "openvino"),),
                    precisions=("fp32", "bf16"), companions=(".bin",)),
    ExportFormatRow("savedmodel", "tf_saved_model", "", "clipswap.inference.export:SavedModelRunner", extra=""),
):
    FORMATS.register(_row)

#: The name that picks a runtime by what this machine has.
AUTO = "auto"
#: The runtime that runs the Keras model itself.
KERAS_RUNTIME = "tf"

RUNTIMES: Registry[RuntimeRow] = Registry("runtime")
for _row in (
    RuntimeRow(KERAS_RUNTIME, None, ("fp32", "bf16")),
    RuntimeRow("openvino", "openvino", ("fp32", "bf16"), extra="export", auto_rank=0),
    RuntimeRow("onnxruntime", "onnx", ("fp32",), extra="export"),
):
    RUNTIMES.register(_row)

#: What `clipswap export --format` accepts (live).
FORMAT_CHOICES = Choices(FORMATS)
#: What `--runtime` accepts: "auto", then every runtime (live).
RUNTIME_CHOICES = Choices(RUNTIMES, before=(AUTO,))

__all__ = ["AUTO", "FORMATS", "FORMAT_CHOICES", "KERAS_RUNTIME", "RUNTIMES", "RUNTIME_CHOICES", "ExportFormatRow",
           "RuntimeRow", "install_command"]
