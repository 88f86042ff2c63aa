"""Attribute-preservation loss (ClipSwap paper eq. 9) and its pluggable attribute network A.

L_att = sum_{l=1..N} ||A_l(X_tgt) - A_l(X_swap)||^2. The paper's A (a FaceNet model plus an MXNet face-attribute
classifier) has no Keras version, so A is chosen by the user. The identity encoder's stages (the default
A) are read from the trainer's identity pass (clipswap.training.trainer.FeatureSource); this module builds the others:
  "discriminator"  features of the discriminator (or any functional keras.Model) at given layers,
  "file"           a Keras model file (.keras) that maps a face to an attribute vector (or several outputs).
"""

from __future__ import annotations

import logging
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import keras
from keras import ops

from clipswap.errors import ClipswapError
from clipswap.losses.perceptual import FeatureExtractor, PixelTransform, model_features

logger = logging.getLogger(__name__)

AttributeKind = Literal["discriminator", "file"]
ATTRIBUTE_KINDS: tuple[str, ...] = ("discriminator", "file")


class AttributeModelError(ClipswapError, ValueError):
    """The user's attribute model file is missing, of the wrong format, or does not load (the message says which)."""


def attribute_loss(feats_target, feats_swap):
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
        squared = ops.square(ops.cast(target, "float32") - ops.cast(swap, "float32"))
        per_sample += ops.mean(ops.reshape(squared, (ops.shape(squared)[0], -1)), axis=1)
    return ops.mean(per_sample)


def check_attribute_file(path: str | Path) -> Path:
    """The attribute model path if it names an existing .keras file, else AttributeModelError (cheap: call early)."""
    path = Path(path)
    if path.suffix != ".keras":
        raise AttributeModelError(
            f"attribute model {path} must be a Keras 3 .keras file (model.save('attributes.keras')); other formats "
            "are refused because they cannot be loaded without running code from the file"
        )
    if not path.is_file():
        raise AttributeModelError(f"attribute model file {path} does not exist")
    return path


def load_attribute_model(path: str | Path) -> keras.Model:
    """Load a user's attribute model from a .keras file, in safe mode (no code from the file is ever run).

    Raises:
        AttributeModelError: the file is missing, not .keras, or does not load (corrupt archive, Lambda layers,
            custom objects).
    """
    path = check_attribute_file(path)
    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    # Keras reports a bad archive or config as ValueError, TypeError, KeyError, OSError or zipfile.BadZipFile.
    except (ValueError, TypeError, KeyError, OSError, zipfile.BadZipFile) as error:
        raise AttributeModelError(
            f"could not load attribute model {path} in safe mode ({type(error).__name__}: {error}). It must be a "
            "Keras 3 .keras file built from built-in layers (Lambda layers and custom objects are refused)."
        ) from error
    model.trainable = False
    return model


def make_attribute_extractor(
    kind: AttributeKind,
    *,
    model: keras.Model | None = None,
    layer_names: Sequence[str] | None = None,
    path: str | Path | None = None,
    pixel_transform: PixelTransform | None = None,
    input_size: int | None = None,
) -> FeatureExtractor:
    """Build the attribute network A: images [B, H, W, 3] RGB in [-1, 1] -> list of N feature tensors [B, ...].

    Args:
        kind: "discriminator" or "file" (see the module docstring).
        model: the discriminator ("discriminator"); unused for "file".
        layer_names: layers to read. "discriminator": required; "file": ignored (the file's outputs are the
            attributes).
        path: the .keras file ("file" only).
        pixel_transform: how [-1, 1] images are converted for the network (perceptual.to_network_pixels).
            Defaults: "none" for the discriminator (it sees [-1, 1] images), "unit" for a file.
        input_size: square side to resize to. Defaults: none for the discriminator, the file model's input side
            when it is static and square.
    """
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


def attribute_term(step):
    """The att row: eq. 9 between the loss's attribute features of the target and of the swap (or the feature
    source's own comparison, e.g. the geometry network's).

    With a geometry row (FeatureSource.landmarks_first) and a generator whose keypoint flow carries the source's
    face shape, the target's landmarks are first moved by the generator's own shape transfer towards the source's
    (read by the same network on the source crop): the swap is asked for the target's pose and expression in the
    source's shape, the points its flow was built to reach, not pulled back to the target's shape."""
    source = step.loss.attribute
    reference = [ops.stop_gradient(x) for x in source.features(step.batch.target, step.tgt_out)]
    from clipswap.layers.shape_transfer import shape_transfer_layer

    shape = shape_transfer_layer(step.loss.generator) if source.landmarks_first else None
    if shape is not None:
        source_points = source.features(step.batch.source, step.src_out)[0]
        reference[0] = ops.stop_gradient(shape([reference[0], source_points]))
    compare = source.compare or attribute_loss
    return compare(reference, source.features(step.swap, step.swap_out))
