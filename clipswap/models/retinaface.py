"""RetinaFace with a ResNet50 backbone: the face detector of FaceDancer and the ClipSwap release.

The graph ends at the raw per-prior predictions; prior boxes, decoding and non-maximum suppression live in
clipswap.face.retinaface so that the thresholds stay configurable (the published .h5 freezes them in its graph).

Architecture (peteryuX/retinaface-tf2 as shipped with FaceDancer):
  RGB [0, 255] -> caffe preprocessing (RGB->BGR, minus ImageNet BGR means) -> ResNet50 taps
  conv3_block4_out (stride 8, 512 ch), conv4_block6_out (stride 16, 1024), conv5_block3_out (stride 32, 2048)
  -> FPN (256 ch): 1x1 lateral ConvUnits; P5 lateral resized (nearest) onto the P4 lateral, summed, 3x3 ConvUnit
     ("merge2"); that merged P4 resized onto the P3 lateral, summed, 3x3 ConvUnit ("merge1")
  -> one SSH module per level -> 1x1 heads with 2 anchors per cell: class 2x2, box 2x4, landmarks 2x10
  -> each head reshaped to [B, h*w*2, k] (cell row-major, then the two anchor sizes) and concatenated over the
     levels stride 8 -> 16 -> 32; softmax over the class logits (index 1 = face).

ConvUnit = conv (no bias) -> BatchNorm (epsilon 1e-5) -> ReLU (LeakyReLU 0.1 when <= 64 channels) or nothing.
27,378,144 parameters including BN moving statistics.
"""

from __future__ import annotations

import keras

from clipswap.layers.caffe_preprocess import CaffePreprocess
from clipswap.layers.resize_like import ResizeNearestLike
from clipswap.models.resnet50 import resnet50_backbone

FPN_CHANNELS = 256
ANCHORS_PER_CELL = 2
BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9
# Backbone taps, one per detection level (strides 8, 16, 32).
BACKBONE_TAPS: tuple[str, ...] = ("conv3_block4_out", "conv4_block6_out", "conv5_block3_out")
# Head output name -> values per anchor.
HEAD_SIZES: dict[str, int] = {"class": 2, "box": 4, "landmark": 10}
RETINAFACE_PARAMS = 27_378_144


def conv_unit(x, filters: int, kernel_size: int, activation: str | None, name: str):
    """Conv (no bias, 'same') -> BatchNorm -> activation ("relu", "lrelu" = LeakyReLU 0.1, or None).

    Layers: "{name}_conv", "{name}_bn" and, with an activation, "{name}_act".
    """
    x = keras.layers.Conv2D(
        filters,
        kernel_size,
        padding="same",
        use_bias=False,
        kernel_initializer="he_normal",
        kernel_regularizer=keras.regularizers.L2(5e-4),
        name=f"{name}_conv",
    )(x)
    x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
    if activation == "relu":
        x = keras.layers.ReLU(name=f"{name}_act")(x)
    elif activation == "lrelu":
        x = keras.layers.LeakyReLU(negative_slope=0.1, name=f"{name}_act")(x)
    elif activation is not None:
        raise ValueError(f"unknown ConvUnit activation {activation!r}; use 'relu', 'lrelu' or None")
    return x


def _activation_for(channels: int) -> str:
    # The published design switches to LeakyReLU for thin (<= 64 channel) variants.
    return "lrelu" if channels <= 64 else "relu"


def feature_pyramid(c3, c4, c5, channels: int, name: str):
    """FPN over the three backbone taps -> (P3, P4, P5), each [B, h_l, w_l, channels].

    Sub-unit names follow the published layer's attributes: output1..3 (laterals), merge2 (P4), merge1 (P3).
    """
    act = _activation_for(channels)
    lateral3 = conv_unit(c3, channels, 1, act, f"{name}_output1")
    lateral4 = conv_unit(c4, channels, 1, act, f"{name}_output2")
    p5 = conv_unit(c5, channels, 1, act, f"{name}_output3")
    up5 = ResizeNearestLike(name=f"{name}_up5")([p5, lateral4])
    p4 = keras.layers.Add(name=f"{name}_add4")([lateral4, up5])
    p4 = conv_unit(p4, channels, 3, act, f"{name}_merge2")
    up4 = ResizeNearestLike(name=f"{name}_up4")([p4, lateral3])
    p3 = keras.layers.Add(name=f"{name}_add3")([lateral3, up4])
    p3 = conv_unit(p3, channels, 3, act, f"{name}_merge1")
    return p3, p4, p5


def ssh_module(x, channels: int, name: str):
    """Single Stage Headless context module: [B, h, w, C] -> [B, h, w, channels].

    Branch A: 3x3 -> channels/2 (no activation). Branch B: 3x3 -> channels/4 (act) -> 3x3 -> channels/4.
    Branch C reuses B's first output: 3x3 -> channels/4 (act) -> 3x3 -> channels/4. Concatenate, ReLU.
    """
    if channels % 4:
        raise ValueError(f"SSH channels must be a multiple of 4, got {channels}")
    act = _activation_for(channels)
    branch_a = conv_unit(x, channels // 2, 3, None, f"{name}_conv_3x3")
    shared = conv_unit(x, channels // 4, 3, act, f"{name}_conv_5x5_1")
    branch_b = conv_unit(shared, channels // 4, 3, None, f"{name}_conv_5x5_2")
    branch_c = conv_unit(shared, channels // 4, 3, act, f"{name}_conv_7x7_2")
    branch_c = conv_unit(branch_c, channels // 4, 3, None, f"{name}_conv_7x7_3")
    x = keras.layers.Concatenate(axis=-1, name=f"{name}_concat")([branch_a, branch_b, branch_c])
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def prediction_head(x, values_per_anchor: int, name: str):
    """1x1 conv with bias -> [B, h*w*ANCHORS_PER_CELL, values_per_anchor] (cell row-major, then anchor)."""
    x = keras.layers.Conv2D(ANCHORS_PER_CELL * values_per_anchor, 1, name=f"{name}_conv")(x)
    return keras.layers.Reshape((-1, values_per_anchor), name=f"{name}_reshape")(x)


def build_retinaface(name: str = "retinaface") -> keras.Model:
    """Build RetinaFace-R50 for any input size.

    Input:
        "{name}_image": [B, H, W, 3] RGB float in [0, 255] (uint8 values as floats). Any H and W; the published
        pipeline runs batch 1 on the whole (downscaled) frame without padding.

    Outputs (dict), N = sum over strides s in (8, 16, 32) of ceil(H/s) * ceil(W/s) * 2 priors, ordered stride 8
    -> 16 -> 32, each level row-major over cells, then the two anchor sizes:
        "class": [B, N, 2] softmax probabilities (index 1 = face).
        "box": [B, N, 4] box deltas (dx, dy, dw, dh) before decoding.
        "landmark": [B, N, 10] landmark deltas (5 x (dx, dy)) before decoding, ArcFace point order.
    """
    images = keras.Input((None, None, 3), name=f"{name}_image")
    x = CaffePreprocess(name=f"{name}_preprocess")(images)
    stages = resnet50_backbone(x)
    c3, c4, c5 = (stages[tap] for tap in BACKBONE_TAPS)
    levels = feature_pyramid(c3, c4, c5, FPN_CHANNELS, f"{name}_fpn")
    features = [ssh_module(level, FPN_CHANNELS, f"{name}_ssh_{i}") for i, level in enumerate(levels)]
    outputs = {}
    for head, size in HEAD_SIZES.items():
        per_level = [prediction_head(f, size, f"{name}_{head}_head_{i}") for i, f in enumerate(features)]
        outputs[head] = keras.layers.Concatenate(axis=1, name=f"{name}_{head}_concat")(per_level)
    outputs["class"] = keras.layers.Softmax(axis=-1, name=f"{name}_class_softmax")(outputs["class"])
    return keras.Model(images, outputs, name=name)
