"""ArcFace-R50 (Deng et al., CVPR 2019): the identity encoder of FaceDancer and ClipSwap.

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

from clipswap.models.resnet50 import RESNET50_STACKS, STAGE_OUTPUTS, resnet50_backbone
from clipswap.models.spec import NetworkSpec
from clipswap.registry.encoders import ENCODERS

#: What a caller needs to feed ArcFace-R50 and read it (the published .h5 converter is clipswap.checkpoints.arcface_h5);
#: stages are the outputs of the ResNet's four stacks (strides 4, 8, 16, 32).
ARCFACE_SPEC: NetworkSpec = ENCODERS.get("arcface").spec
INPUT_SIZE = ARCFACE_SPEC.input_size
EMBEDDING_SIZE = ARCFACE_SPEC.embedding_dim
# The head's BatchNorms were built with Keras defaults (epsilon 1e-3), not the backbone's 1.001e-5.
HEAD_BN_EPSILON = 1e-3
HEAD_DROPOUT = 0.5
WEIGHT_DECAY = 5e-4

# Output of every residual block, in graph order; the identity losses pick from these.
BLOCK_OUTPUTS: tuple[str, ...] = tuple(
    f"{stage}_block{i}_out" for stage, _, blocks, _ in RESNET50_STACKS for i in range(1, blocks + 1)
)
__all__ = ["ARCFACE_SPEC", "BLOCK_OUTPUTS", "STAGE_OUTPUTS", "arcface_features", "build_arcface", "head_layer_names"]


def head_layer_names(name: str = "arcface") -> dict[str, str]:
    """Roles of the output head -> our layer names (the checkpoint loader maps the file's head onto these)."""
    return {
        "bn_in": f"{name}_output_bn",
        "dropout": f"{name}_output_dropout",
        "flatten": f"{name}_output_flatten",
        "dense": f"{name}_embedding",
        "bn_out": f"{name}_embedding_bn",
    }


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
    x = resnet50_backbone(image)["conv5_block3_out"]
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
