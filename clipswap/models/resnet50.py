"""ResNet50 (v1, bottleneck blocks) as a functional-graph builder with the Keras-applications layer names.

Both published checkpoints we read (RetinaFace-Res50.h5 and ArcFace-Res50.h5) embed a `keras.applications.ResNet50`
(include_top=False). Writing the backbone ourselves with the same layer names ("conv1_conv", "conv2_block1_0_conv",
..., "conv5_block3_out") keeps every stored weight addressable by name, and lets FaceDancer's IFSR loss fetch block
outputs ("conv4_block6_out") by name, without calling `keras.applications` (whose graph we do not control).

One function builds the whole trunk into the caller's graph; the detector (clipswap.models.retinaface) and the
identity encoder (clipswap.models.arcface) share it.

Structure (Keras applications ResNet50): 7x7/2 conv 64 -> 3x3/2 max pool -> four stacks of bottleneck blocks
(64 x3, 128 x4, 256 x6, 512 x3 filters; 4x expansion). The first block of each stack has a projection shortcut
(1x1 conv + BN) and carries the stack's stride (1 for conv2, 2 for conv3..conv5) on its first 1x1 conv. Every conv
has a bias; BatchNormalization uses epsilon 1.001e-5 as in Keras applications. 23,587,712 parameters including BN
moving statistics.
"""

from __future__ import annotations

import keras

BN_EPSILON = 1.001e-5

# (stage name, bottleneck width, number of blocks, stride of the first block)
RESNET50_STACKS: tuple[tuple[str, int, int, int], ...] = (
    ("conv2", 64, 3, 1),
    ("conv3", 128, 4, 2),
    ("conv4", 256, 6, 2),
    ("conv5", 512, 3, 2),
)

# The last block of each stage: strides 4, 8, 16, 32 with 256, 512, 1024, 2048 channels.
STAGE_OUTPUTS: tuple[str, ...] = ("conv2_block3_out", "conv3_block4_out", "conv4_block6_out", "conv5_block3_out")


def _conv_bn(x, filters: int, kernel_size: int, strides: int, name: str, padding: str = "valid"):
    x = keras.layers.Conv2D(filters, kernel_size, strides=strides, padding=padding, name=f"{name}_conv")(x)
    return keras.layers.BatchNormalization(axis=-1, epsilon=BN_EPSILON, name=f"{name}_bn")(x)


def bottleneck_block(x, filters: int, stride: int, projection: bool, name: str):
    """One ResNet50 v1 bottleneck block: 1x1 (stride) -> 3x3 -> 1x1 (4*filters), plus the shortcut, then ReLU.

    Args:
        x: [B, H, W, C] feature map.
        filters: bottleneck width; the block outputs 4 * filters channels.
        stride: applied by the first 1x1 conv and by the projection shortcut.
        projection: use a 1x1 conv + BN shortcut ("{name}_0_conv"/"{name}_0_bn"); otherwise identity.
        name: block name prefix, e.g. "conv3_block1".

    Returns:
        [B, ceil(H / stride), ceil(W / stride), 4 * filters], the output of layer "{name}_out".
    """
    if projection:
        shortcut = _conv_bn(x, 4 * filters, 1, stride, f"{name}_0")
    else:
        shortcut = x
    y = _conv_bn(x, filters, 1, stride, f"{name}_1")
    y = keras.layers.Activation("relu", name=f"{name}_1_relu")(y)
    y = _conv_bn(y, filters, 3, 1, f"{name}_2", padding="same")
    y = keras.layers.Activation("relu", name=f"{name}_2_relu")(y)
    y = _conv_bn(y, 4 * filters, 1, 1, f"{name}_3")
    y = keras.layers.Add(name=f"{name}_add")([shortcut, y])
    return keras.layers.Activation("relu", name=f"{name}_out")(y)


def resnet50_backbone(inputs, name_prefix: str = "") -> dict[str, object]:
    """Build the ResNet50 trunk (no top, no pooling) on `inputs` inside the caller's functional graph.

    Args:
        inputs: [B, H, W, 3] symbolic tensor, already preprocessed the way the checkpoint expects (the backbone
            itself does no scaling or colour conversion).
        name_prefix: prepended to every layer name; "" gives exactly the Keras-applications names.

    Returns:
        Every block output by its unprefixed Keras name ("conv2_block1_out" ... "conv5_block3_out"), in graph order;
        the stage outputs are listed in STAGE_OUTPUTS (strides 4/8/16/32, 256/512/1024/2048 channels, spatial size
        ceil(H / stride) for the strided stages).
    """
    p = name_prefix
    x = keras.layers.ZeroPadding2D(padding=3, name=f"{p}conv1_pad")(inputs)
    x = _conv_bn(x, 64, 7, 2, f"{p}conv1")
    x = keras.layers.Activation("relu", name=f"{p}conv1_relu")(x)
    x = keras.layers.ZeroPadding2D(padding=1, name=f"{p}pool1_pad")(x)
    x = keras.layers.MaxPooling2D(3, strides=2, name=f"{p}pool1_pool")(x)
    outputs: dict[str, object] = {}
    for stage, filters, blocks, stride in RESNET50_STACKS:
        for index in range(1, blocks + 1):
            block = f"{stage}_block{index}"
            x = bottleneck_block(
                x, filters, stride if index == 1 else 1, projection=index == 1, name=f"{p}{block}"
            )
            outputs[f"{block}_out"] = x
    return outputs
