"""Attribute-preservation loss (ClipSwap paper eq. 9) and its pluggable attribute network A.

L_att = sum_{l=1..N} ||A_l(X_tgt) - A_l(X_swap)||^2. The paper's A (a FaceNet model plus an MXNet face-attribute
classifier) has no Keras version, so A is chosen by the user (issue 4):
  "arcface"        multi-level ArcFace backbone features (default; REFERENCE.md section 3 model, stage outputs),
  "discriminator"  features of the discriminator (or any functional keras.Model) at given layers,
  "file"           a Keras model file (.keras) that maps a face to an attribute vector (or several outputs).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import keras
import tensorflow as tf

from clipswap.losses.perceptual import (
    ARCFACE_INPUT_SIZE,
    ARCFACE_STAGES,
    FeatureExtractor,
    PixelTransform,
    arcface_stage_features,
    model_features,
)

logger = logging.getLogger(__name__)

AttributeKind = Literal["arcface", "discriminator", "file"]
ATTRIBUTE_KINDS: tuple[str, ...] = ("arcface", "discriminator", "file")


def attribute_loss(
    feats_target: Sequence[tf.Tensor] | tf.Tensor, feats_swap: Sequence[tf.Tensor] | tf.Tensor
) -> tf.Tensor:
    """Paper eq. 9: sum over levels of the per-sample mean squared difference, averaged over the batch.

    We take the mean (not the sum) over each level's elements: the levels then count alike whatever their size
    (a 28x28x256 map would otherwise outweigh a 512-d vector 400 times), and lambda_att = 10 stays meaningful for
    any choice of A. The squared L2 distance of the paper is this times the level's element count.

    Args:
        feats_target: N tensors [B, ...] (or one tensor) of A(X_tgt); no gradient is needed through them.
        feats_swap: the same for A(X_swap); gradient flows here.

    Returns:
        Scalar float32 >= 0.
    """
    # A single tensor or array (an attribute vector) is one level.
    if hasattr(feats_target, "shape"):
        feats_target = [feats_target]
    if hasattr(feats_swap, "shape"):
        feats_swap = [feats_swap]
    if len(feats_target) != len(feats_swap) or not feats_target:
        raise ValueError(
            f"need equally many target and swap levels (>0), got {len(feats_target)} and {len(feats_swap)}"
        )
    per_sample = 0.0
    for target, swap in zip(feats_target, feats_swap, strict=True):
        squared = tf.square(tf.cast(target, tf.float32) - tf.cast(swap, tf.float32))
        per_sample += tf.reduce_mean(tf.reshape(squared, [tf.shape(squared)[0], -1]), axis=1)
    return tf.reduce_mean(per_sample)


def load_attribute_model(path: str | Path) -> keras.Model:
    """Load a user's attribute model from a .keras file, in safe mode (no code from the file is ever run)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"attribute model file {path} does not exist")
    if path.suffix != ".keras":
        raise ValueError(
            f"attribute model {path} must be a Keras 3 .keras file (model.save('attributes.keras')); other formats "
            "are refused because they cannot be loaded without running code from the file"
        )
    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except ValueError as error:
        raise ValueError(
            f"could not load attribute model {path} in safe mode ({error}). Models with Lambda layers or custom "
            "objects are refused: rebuild it from built-in layers."
        ) from error
    model.trainable = False
    return model


def make_attribute_extractor(
    kind: AttributeKind = "arcface",
    *,
    model: keras.Model | None = None,
    layer_names: Sequence[str] | None = None,
    path: str | Path | None = None,
    pixel_transform: PixelTransform | None = None,
    input_size: int | None = None,
) -> FeatureExtractor:
    """Build the attribute network A: images [B, H, W, 3] RGB in [-1, 1] -> list of N feature tensors [B, ...].

    Args:
        kind: "arcface", "discriminator" or "file" (see the module docstring).
        model: the ArcFace model ("arcface") or the discriminator ("discriminator"); unused for "file".
        layer_names: layers to read. "arcface": default the four ResNet stage outputs; "discriminator": required;
            "file": ignored (the file's outputs are the attributes).
        path: the .keras file ("file" only).
        pixel_transform: how [-1, 1] images are converted for the network (perceptual.to_network_pixels).
            Defaults: "unit" for ArcFace, "none" for the discriminator (it sees [-1, 1] images), "unit" for a file.
        input_size: square side to resize to. Defaults: 112 for ArcFace, none for the discriminator, the file
            model's input side when it is static and square.
    """
    if kind == "arcface":
        if model is None:
            raise ValueError("attribute kind 'arcface' needs the ArcFace keras.Model (model=...)")
        if pixel_transform not in (None, "unit"):
            raise ValueError("the ArcFace attribute network takes [0, 1] images; leave pixel_transform unset")
        return arcface_stage_features(
            model, tuple(layer_names or ARCFACE_STAGES), input_size=input_size or ARCFACE_INPUT_SIZE
        )
    if kind == "discriminator":
        if model is None or not layer_names:
            raise ValueError("attribute kind 'discriminator' needs the discriminator model and layer_names to read")
        return model_features(model, tuple(layer_names), pixel_transform or "none", input_size)
    if kind == "file":
        if path is None:
            raise ValueError("attribute kind 'file' needs path=... to a .keras model that outputs attribute vectors")
        loaded = load_attribute_model(path)
        if input_size is None:
            _, height, width, _ = loaded.inputs[0].shape
            if height is not None and height == width:
                input_size = int(height)
        names = tuple(output.name for output in loaded.outputs)
        logger.info("attribute network from %s: outputs %s, input side %s", path, names, input_size)
        return FeatureExtractor(loaded, names, pixel_transform or "unit", input_size)
    raise ValueError(f"unknown attribute kind {kind!r}; choose one of {ATTRIBUTE_KINDS}")
