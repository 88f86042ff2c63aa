"""The ONNX export of the bundled SFace identity encoder, written from OpenCV Zoo's own ONNX file instead of converting
our Keras graph back (tf2onnx needs over 2 GiB of memory for the 36 MB Keras graph; this needs a few MB).

The file gets the contract of the Keras encoder's export (clipswap.models.sface.build_sface, and what tf2onnx wrote
for it), so a deployment reads it exactly like the converted one:

    sface_image [B, 112, 112, 3] float32 RGB in [0, 1], NHWC       (the Keras model's input, free batch axis)
      Transpose to NCHW, Mul 255                                    the prefix written here
    data [B, 3, 112, 112] RGB 0..255                                the original graph, node for node: its own
      (x - 127.5) * 0.0078125, convs, BN, PReLU, Gemm, BN           normalisation, int8 block-quantised weights with
                                                                    their DequantizeLinear nodes (opset 21)
    fc1 -> Identity:0 [B, 128] float32 raw feature                  the output name tf2onnx gives a one-output model

onnxruntime dequantises the int8 weights exactly as the Keras converter does ((q - zero_point) * scale, ONNX
DequantizeLinear), so both compute in float32 with the same weights; clipswap.inference.export.export_network checks
the file against the Keras model as it checks every export.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import TensorProto, helper, numpy_helper

from clipswap.inference.export import ExportError
from clipswap.models.sface import SFACE_DIM, SFACE_SIZE

#: The names the Keras encoder's ONNX export has always had: the Keras Input's name, and tf2onnx's output name.
INPUT_NAME = "sface_image"
OUTPUT_NAME = "Identity:0"
#: The original graph's data input: [B, 3, 112, 112] RGB 0..255.
SOURCE_INPUT = "data"
#: ONNX IR version 10 is the first that may declare opset 21 (blocked DequantizeLinear); the OpenCV Zoo file says 6.
IR_VERSION = 10
BATCH = "batch"


def _dims(value: onnx.ValueInfoProto) -> list[int | str]:
    return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]


def _check_source(model: onnx.ModelProto, path: Path) -> None:
    """The file must read SFace's data input and write one 128-d feature; ExportError naming what differs."""
    graph = model.graph
    inputs = {i.name: _dims(i) for i in graph.input}
    if SOURCE_INPUT not in inputs or inputs[SOURCE_INPUT][1:] != [3, SFACE_SIZE, SFACE_SIZE]:
        raise ExportError(f"{path} has no [B, 3, {SFACE_SIZE}, {SFACE_SIZE}] input {SOURCE_INPUT!r}, so it is not the "
                          "SFace file this export rewrites")
    if len(graph.output) != 1 or _dims(graph.output[0])[1:] != [SFACE_DIM]:
        raise ExportError(f"{path} does not have one [B, {SFACE_DIM}] output, so it is not the SFace file this export "
                          "rewrites")


def sface_onnx_model(source: str | Path) -> onnx.ModelProto:
    """OpenCV Zoo's SFace graph behind the NHWC [0, 1] prefix (module docstring), checked by onnx.checker.

    The original's unused declarations go: the float weight names it lists as graph inputs (nothing reads them),
    initializers no node reads, and its value_info (every shape there has batch 1; the batch axis is free here).

    Raises:
        ExportError: the file does not parse, is not SFace's graph, or the result fails the ONNX checker.
    """
    path = Path(source)
    try:
        original = onnx.load(str(path))
    except (OSError, DecodeError) as error:
        raise ExportError(f"cannot read the SFace ONNX file {path}: {error}") from error
    _check_source(original, path)
    graph = original.graph
    scale = numpy_helper.from_array(np.asarray(255.0, np.float32), name=f"{INPUT_NAME}_255")
    nchw = f"{INPUT_NAME}_nchw"
    prefix = [
        helper.make_node("Transpose", [INPUT_NAME], [nchw], name=nchw, perm=[0, 3, 1, 2]),
        helper.make_node("Mul", [nchw, scale.name], [SOURCE_INPUT], name=f"{INPUT_NAME}_to_0_255"),
    ]
    suffix = [helper.make_node("Identity", [graph.output[0].name], [OUTPUT_NAME], name="output")]
    nodes = [*prefix, *graph.node, *suffix]
    read = {name for node in nodes for name in node.input}
    rewritten = helper.make_graph(
        nodes,
        graph.name or "sface",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [BATCH, SFACE_SIZE, SFACE_SIZE, 3])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, [BATCH, SFACE_DIM])],
        initializer=[*(tensor for tensor in graph.initializer if tensor.name in read), scale],
    )
    model = helper.make_model(rewritten, opset_imports=list(original.opset_import), producer_name="clipswap",
                              doc_string=f"OpenCV Zoo SFace ({path.name}) with an NHWC RGB [0, 1] input")
    model.ir_version = IR_VERSION
    try:
        onnx.checker.check_model(model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as error:
        raise ExportError(f"the SFace graph rewritten from {path} is not valid ONNX: {error}") from error
    return model


def write_sface_onnx(source: str | Path, destination: str | Path) -> None:
    """Write sface_onnx_model(source) to `destination` (one .onnx file, the weights inside it)."""
    onnx.save(sface_onnx_model(source), str(destination))
