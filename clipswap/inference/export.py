"""Export a network (the generator, the identity encoder) to a deployment format, and run an exported file.

Formats (rows of clipswap.registry.runtimes.FORMATS; Keras 3's `Model.export`, TensorFlow backend, float32, a fixed
input signature with a free batch axis):

    savedmodel  a TensorFlow SavedModel folder (endpoint `serve`)              TensorFlow itself
    onnx        one .onnx file (converted by tf2onnx)                           run by onnxruntime
    openvino    an OpenVINO IR pair, .xml + .bin                                run by openvino
    litert      one .tflite file (TensorFlow's LiteRT converter)                run by ai-edge-litert (or tf.lite)

Every export is checked the keras-hub converter way: the exported file is loaded back, run beside the Keras model
on one batch, and the largest difference must stay within `TOLERANCE`; otherwise the export is refused and nothing
is left at the destination. The packages each format needs are the `export` extra (EXTRA). A network that has its
own file in the format (the bundled SFace in ONNX) can be written by a writer of its own instead of being converted,
and is checked the same way (export_network's `write`).

A clipswap Generator is exported in its inference form (clipswap.models.generator.inference_generator: the same
function with the down blocks' conv + pool folded, 0.61x the MACs) and checked against the trained model itself.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from clipswap.errors import ClipswapError
from clipswap.models.compile import sample_inputs as check_batch  # the export check's fixed batch
from clipswap.options import EXPORT_TOLERANCE
from clipswap.registry import UnknownComponentError, load_object
from clipswap.registry.runtimes import (
    FORMATS,  # export formats by name: the rows own runners, precisions, extras
    ExportFormatRow,
    install_command,
)

log = logging.getLogger(__name__)

#: The install command that brings every format's packages.
EXTRA = install_command("export")
TOLERANCE = EXPORT_TOLERANCE


class ExportError(ClipswapError, ValueError):
    """An export cannot be written or does not reproduce the model; the message says why and what to do."""


def _converter_errors() -> tuple[type[BaseException], ...]:
    """The converters' own failure types that derive from no built-in error: OpenVINO's OpConversionFailure (an op
    it cannot convert) when OpenVINO is installed."""
    try:
        from openvino._pyopenvino import OpConversionFailure
    except ImportError:
        return ()
    return (OpConversionFailure,)


def first_line(error: BaseException) -> str:
    """The first non-empty line of an error's message (converters print whole reports)."""
    return next((line.strip() for line in str(error).splitlines() if line.strip()), type(error).__name__)


def get_format(name: str) -> ExportFormatRow:
    try:
        return FORMATS.get(name)
    except UnknownComponentError as error:
        raise ExportError(str(error)) from None


def require_modules(modules: Sequence[tuple[str, str]], what: str, extra: str = "export") -> None:
    """ExportError naming the pip packages and the extra that installs them when a module is missing."""
    missing = [package for module, package in modules if importlib.util.find_spec(module) is None]
    if missing:
        raise ExportError(f"{what} needs {', '.join(missing)}, which is not installed: run "
                          f"{install_command(extra)}")


def input_signature(model: keras.Model, batch: int | None = None) -> list:
    """The model's inputs as TensorSpecs named like its Input layers, batch axis `batch` (None: any), float32.

    Keras' export reads a list argument as ONE positional input, hence the outer list for a multi-input model."""
    specs = [tf.TensorSpec((batch, *tensor.shape[1:]), tf.float32, name=tensor.name.split(":")[0])
             for tensor in model.inputs]
    return [specs] if len(specs) > 1 else specs


def load_exported(fmt: str, path: str | Path, precision: str = "fp32") -> Callable[[Sequence[np.ndarray]], np.ndarray]:
    """A runner for an exported network: list of float32 arrays (the model's input order) -> float32 array.

    `precision` "bf16" asks OpenVINO for bfloat16 inference (on CPUs with AMX or AVX512-BF16); the other formats run
    float32. Raises ExportError when the runtime is not installed or the file does not load.
    """
    spec = get_format(fmt)
    path = Path(path)
    try:
        require_modules(spec.run_modules, f"running a {fmt} model", spec.extra)
        return load_object(spec.runner)(path, precision)
    except ExportError:
        raise
    except (OSError, RuntimeError, ValueError) as error:
        raise ExportError(f"{path} does not load as a {fmt} model: {error}") from error


# The formats' runners (their rows' `runner`): (path, precision) -> a callable from float32 arrays in the model's
# input order to one float32 array.


class SavedModelRunner:
    def __init__(self, path: Path, precision: str = "fp32"):
        self.loaded = tf.saved_model.load(str(path))  # kept: the endpoint's variables live as long as this object

    def __call__(self, inputs):
        # The endpoint was traced on input_signature: one list argument for a multi-input model, else one tensor.
        tensors = [tf.constant(x) for x in inputs]
        return np.asarray(self.loaded.serve(tensors if len(tensors) > 1 else tensors[0]), np.float32)


class OnnxRunner:
    def __init__(self, path: Path, precision: str = "fp32"):
        import onnxruntime  # the export extra

        self.session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        self.names = [i.name for i in self.session.get_inputs()]

    def __call__(self, inputs):
        return np.asarray(self.session.run(None, dict(zip(self.names, inputs, strict=True)))[0], np.float32)


class OpenVinoRunner:
    def __init__(self, path: Path, precision: str = "fp32"):
        import openvino  # the export extra

        hint = {"fp32": "f32", "bf16": "bf16"}[precision]
        self.model = openvino.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": hint})
        self.output = self.model.outputs[0]

    def __call__(self, inputs):
        return np.asarray(self.model(list(inputs))[self.output], np.float32)


class LiteRtRunner:
    def __init__(self, path: Path, precision: str = "fp32"):
        if importlib.util.find_spec("ai_edge_litert") is not None:
            from ai_edge_litert.interpreter import Interpreter  # the export extra
        else:
            Interpreter = tf.lite.Interpreter  # noqa: N806 -- TensorFlow's own copy of the same interpreter
        self.interpreter = Interpreter(model_path=str(path))
        # The converter names inputs "serving_default_<name>:0" in an order of its own: put them in the Keras
        # model's order (target, identity, then source) by their names.
        order = ("target", "identity", "source")
        self.inputs = sorted(self.interpreter.get_input_details(),
                             key=lambda d: next((i for i, key in enumerate(order) if key in d["name"]), len(order)))
        self.shapes = None

    def __call__(self, inputs):
        shapes = [tuple(x.shape) for x in inputs]
        if shapes != self.shapes:
            for detail, x in zip(self.inputs, inputs, strict=True):
                self.interpreter.resize_tensor_input(detail["index"], x.shape)
            self.interpreter.allocate_tensors()
            self.shapes = shapes
        for detail, x in zip(self.inputs, inputs, strict=True):
            self.interpreter.set_tensor(detail["index"], np.ascontiguousarray(x, np.float32))
        self.interpreter.invoke()
        return np.array(self.interpreter.get_tensor(self.interpreter.get_output_details()[0]["index"]), np.float32)


def max_difference(model: keras.Model, runner: Callable, inputs: Sequence[np.ndarray]) -> float:
    """max |runner(inputs) - model(inputs)| over the batch (float32)."""
    reference = keras.ops.convert_to_numpy(model(list(inputs) if len(inputs) > 1 else inputs[0], training=False))
    exported = runner(inputs)
    if exported.shape != reference.shape:
        raise ExportError(f"the exported model returns shape {exported.shape}, the Keras model {reference.shape}")
    return float(np.max(np.abs(exported.astype(np.float32) - reference.astype(np.float32))))


def deployable(model: keras.Model) -> keras.Model:
    """The network an export writes for `model`: a Generator's inference form, any other model itself."""
    from clipswap.models.generator import Generator, inference_generator

    return inference_generator(model) if isinstance(model, Generator) else model


def export_network(model: keras.Model, fmt: str, destination: str | Path, tolerance: float = TOLERANCE,
                   replace: bool = False, write: Callable[[Path], None] | None = None) -> float:
    """Write `model` to `destination` in `fmt` and check it; returns the measured max difference.

    A clipswap Generator is written in its inference form (module docstring) and checked against `model`. The export
    is written in a temporary folder beside the destination, checked there, then moved into place, so a
    failed conversion or check leaves nothing behind. `replace`: an existing destination is replaced (the runtime
    cache, where two runs may convert at once); otherwise it is an error. `write(path)`: writes the file in `fmt`
    itself instead of Keras' export converting `model` (a network that has its own file in that format, e.g. the
    bundled SFace, clipswap.inference.sface_export); the check against `model` is the same. Raises ExportError
    (missing package, conversion failure, a difference above `tolerance`, a destination that exists).
    """
    spec = get_format(fmt)
    destination = Path(destination)
    require_modules(spec.write_modules, f"exporting to {fmt}", spec.extra)
    for path in spec.files(destination):
        if path.exists() and not replace:
            raise ExportError(f"{path} already exists; remove it or choose another --output")
    parent = destination.parent
    parent.mkdir(parents=True, exist_ok=True)
    network = deployable(model)
    workdir = Path(tempfile.mkdtemp(prefix=f".{destination.name}.", dir=parent))
    try:
        staged = workdir / destination.name
        try:
            if write is not None:
                write(staged)
            else:
                with warnings.catch_warnings():
                    # tf2onnx's own deprecation notices (np.object, ...) are not the user's business.
                    warnings.simplefilter("ignore", FutureWarning)
                    network.export(str(staged), format=spec.keras_format, input_signature=input_signature(network),
                                   verbose=False)
        except (ValueError, TypeError, RuntimeError, NotImplementedError, ImportError, *_converter_errors()) as error:
            raise ExportError(f"converting {model.name} to {fmt} failed: {first_line(error)}") from error
        difference = max_difference(model, load_exported(fmt, staged), check_batch(model))
        if not np.isfinite(difference) or difference > tolerance:
            raise ExportError(
                f"the {fmt} export of {model.name} differs from the Keras model by {difference:.3g} (tolerance "
                f"{tolerance:g}); it was not written"
            )
        for path in spec.files(staged):
            os.replace(path, destination.parent / path.name)
        return difference
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
