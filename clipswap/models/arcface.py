"""ArcFace-R50: the identity encoder of FaceDancer and ClipSwap (REFERENCE.md section 3).

A Keras-applications ResNet50 backbone (no top) followed by the ArcFace output head
(BatchNorm -> Dropout 0.5 -> Flatten -> Dense 512 -> BatchNorm), built as one flat functional graph. The backbone
layers carry exactly the names `keras.applications.ResNet50` gives them ("conv1_conv", "conv2_block1_1_conv", ...,
"conv5_block3_out") so that the published `ArcFace-Res50.h5` maps onto them by name and the identity losses can tap
stage outputs by name (`arcface_features`). The head layers are named f"{name}_...".

Input: [B, 112, 112, 3] RGB float in [0, 1] (aligned ArcFace crop / 255; no mean/std normalisation).
Output: [B, 512] raw embedding (not L2-normalised).
Parameters: 40,375,680 (backbone 23,587,712), BatchNorm moving statistics included.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras

INPUT_SIZE = 112
EMBEDDING_SIZE = 512
# Keras applications' ResNet50 uses this epsilon in every backbone BatchNorm; the published weights expect it.
BACKBONE_BN_EPSILON = 1.001e-5
# The head's BatchNorms were built with Keras defaults (epsilon 1e-3), not the backbone's value.
HEAD_BN_EPSILON = 1e-3
HEAD_DROPOUT = 0.5
WEIGHT_DECAY = 5e-4

# (stage name, bottleneck width, number of blocks, stride of the first block): ResNet50 v1.
RESNET50_STAGES: tuple[tuple[str, int, int, int], ...] = (
    ("conv2", 64, 3, 1),
    ("conv3", 128, 4, 2),
    ("conv4", 256, 6, 2),
    ("conv5", 512, 3, 2),
)

# Output of every residual block, in graph order; the identity losses pick from these.
BLOCK_OUTPUTS: tuple[str, ...] = tuple(
    f"{stage}_block{i}_out" for stage, _, blocks, _ in RESNET50_STAGES for i in range(1, blocks + 1)
)
# Last block output of each stage: [B, 28, 28, 256], [B, 14, 14, 512], [B, 7, 7, 1024], [B, 4, 4, 2048] at 112.
STAGE_OUTPUTS: tuple[str, ...] = ("conv2_block3_out", "conv3_block4_out", "conv4_block6_out", "conv5_block3_out")


def head_layer_names(name: str = "arcface") -> dict[str, str]:
    """Roles of the output head -> our layer names (the checkpoint loader maps the file's head onto these)."""
    return {
        "bn_in": f"{name}_output_bn",
        "dropout": f"{name}_output_dropout",
        "flatten": f"{name}_output_flatten",
        "dense": f"{name}_embedding",
        "bn_out": f"{name}_embedding_bn",
    }


def _batch_norm(name: str) -> keras.layers.BatchNormalization:
    return keras.layers.BatchNormalization(axis=-1, epsilon=BACKBONE_BN_EPSILON, name=name)


def bottleneck_block(x, filters: int, stride: int = 1, project_shortcut: bool = False, name: str = "block"):
    """ResNet v1 bottleneck: 1x1 (stride) -> 3x3 -> 1x1 (4x filters), plus identity or 1x1-projected shortcut.

    The stride sits on the first 1x1 convolution, as in Keras applications (not on the 3x3 as in torchvision).

    Args:
        x: [B, H, W, C] feature map.
        filters: bottleneck width; the block outputs 4 * filters channels.
        stride: 1 or 2 (spatial reduction of the whole block).
        project_shortcut: True for the first block of a stage, whose input has a different shape.
        name: prefix, e.g. "conv3_block1"; sub-layers are "{name}_0_conv", "{name}_1_bn", ..., "{name}_out".

    Returns:
        [B, ceil(H / stride), ceil(W / stride), 4 * filters].
    """
    if project_shortcut:
        shortcut = keras.layers.Conv2D(4 * filters, 1, strides=stride, name=f"{name}_0_conv")(x)
        shortcut = _batch_norm(f"{name}_0_bn")(shortcut)
    else:
        shortcut = x
    y = keras.layers.Conv2D(filters, 1, strides=stride, name=f"{name}_1_conv")(x)
    y = _batch_norm(f"{name}_1_bn")(y)
    y = keras.layers.Activation("relu", name=f"{name}_1_relu")(y)
    y = keras.layers.Conv2D(filters, 3, padding="same", name=f"{name}_2_conv")(y)
    y = _batch_norm(f"{name}_2_bn")(y)
    y = keras.layers.Activation("relu", name=f"{name}_2_relu")(y)
    y = keras.layers.Conv2D(4 * filters, 1, name=f"{name}_3_conv")(y)
    y = _batch_norm(f"{name}_3_bn")(y)
    y = keras.layers.Add(name=f"{name}_add")([shortcut, y])
    return keras.layers.Activation("relu", name=f"{name}_out")(y)


def resnet50_stage(x, filters: int, blocks: int, stride: int, name: str):
    """One ResNet50 stage ("conv2" ... "conv5"): a projecting first block, then identity blocks."""
    x = bottleneck_block(x, filters, stride=stride, project_shortcut=True, name=f"{name}_block1")
    for index in range(2, blocks + 1):
        x = bottleneck_block(x, filters, name=f"{name}_block{index}")
    return x


def resnet50_backbone(x):
    """Keras-applications ResNet50 without top, on [B, H, W, 3]; returns [B, H/32, W/32, 2048] ("conv5_block3_out").

    No input preprocessing happens here: ArcFace feeds the [0, 1] RGB crop straight in.
    """
    x = keras.layers.ZeroPadding2D(padding=3, name="conv1_pad")(x)
    x = keras.layers.Conv2D(64, 7, strides=2, name="conv1_conv")(x)
    x = _batch_norm("conv1_bn")(x)
    x = keras.layers.Activation("relu", name="conv1_relu")(x)
    x = keras.layers.ZeroPadding2D(padding=1, name="pool1_pad")(x)
    x = keras.layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)
    for stage, filters, blocks, stride in RESNET50_STAGES:
        x = resnet50_stage(x, filters, blocks, stride, name=stage)
    return x


def build_arcface(
    input_size: int = INPUT_SIZE, embedding_size: int = EMBEDDING_SIZE, name: str = "arcface"
) -> keras.Model:
    """Build ArcFace-R50 (random weights; load the published ones with `load_arcface_h5`).

    Args:
        input_size: side of the square input crop; 112 for the published model (the Dense layer's size depends on it).
        embedding_size: 512 for the published model.
        name: model name and prefix of the head's layer names.

    Returns:
        keras.Model: [B, input_size, input_size, 3] RGB in [0, 1] -> [B, embedding_size] raw embedding.

    Example:
        >>> model = build_arcface()
        >>> model(np.zeros((1, 112, 112, 3), "float32")).shape
        TensorShape([1, 512])
    """
    names = head_layer_names(name)
    image = keras.Input((input_size, input_size, 3), name=f"{name}_image")
    x = resnet50_backbone(image)
    x = keras.layers.BatchNormalization(epsilon=HEAD_BN_EPSILON, name=names["bn_in"])(x)
    x = keras.layers.Dropout(HEAD_DROPOUT, name=names["dropout"])(x)
    x = keras.layers.Flatten(name=names["flatten"])(x)
    decay = keras.regularizers.L2(WEIGHT_DECAY)
    x = keras.layers.Dense(embedding_size, kernel_regularizer=decay, name=names["dense"])(x)
    embedding = keras.layers.BatchNormalization(epsilon=HEAD_BN_EPSILON, name=names["bn_out"])(x)
    return keras.Model(image, embedding, name=name)


def arcface_features(model: keras.Model, layer_names: Sequence[str] = STAGE_OUTPUTS) -> keras.Model:
    """A model sharing `model`'s weights that returns named intermediate outputs and the embedding.

    Args:
        model: a model from `build_arcface` (or `load_arcface_h5`).
        layer_names: backbone layer names to tap, e.g. STAGE_OUTPUTS or BLOCK_OUTPUTS.

    Returns:
        keras.Model: same input as `model` -> dict {layer name: [B, h, w, c], ..., "embedding": [B, 512]}.

    Raises:
        ValueError: a name is not a layer of `model`.
    """
    known = {layer.name for layer in model.layers}
    missing = [n for n in layer_names if n not in known]
    if missing:
        raise ValueError(f"{missing} are not layers of {model.name}; choose from {list(BLOCK_OUTPUTS)}")
    if "embedding" in layer_names:
        raise ValueError("'embedding' is reserved for the model output")
    outputs = {n: model.get_layer(n).output for n in layer_names}
    outputs["embedding"] = model.output
    return keras.Model(model.input, outputs, name=f"{model.name}_features")
