"""Perceptual loss (ClipSwap paper eq. 8) and the frozen feature networks it (and the attribute loss) reads.

L_p = sum_l w_l * mean |P_l(X_tgt) - P_l(X_swap)|, on same-identity pairs only (like eq. 7). The paper leaves P open;
the issue makes it selectable: ImageNet VGG16 pool outputs (FaceDancer's choice) or identity-encoder stages (the
trainer reads those from its identity pass, clipswap.training.trainer.FeatureSource).

Feature extractors take generator-space images, [B, H, W, 3] RGB in [-1, 1], and do their own pixel conversion and
resizing, so a loss never has to know what a feature network expects.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import keras
from keras import ops

from clipswap.checkpoints.registry import FILES
from clipswap.errors import ClipswapError
from clipswap.losses.reconstruction import SAME_PAIR_EPS, same_pair_average

logger = logging.getLogger(__name__)

# Outputs of the five VGG16 blocks (Keras applications names), [B, H/2^k, W/2^k, C] for k = 1..5.
VGG16_POOLS: tuple[str, ...] = ("block1_pool", "block2_pool", "block3_pool", "block4_pool", "block5_pool")
# FaceDancer scales both VGG feature maps by 0.85 before the L1, i.e. every block is weighted 0.85.
FACEDANCER_VGG_WEIGHTS: tuple[float, ...] = (0.85,) * len(VGG16_POOLS)
# The no-top ImageNet VGG16 file Keras applications downloads (clipswap.checkpoints.registry: name, URL and MD5).
VGG16_NOTOP_FILE = FILES["vgg16"].name
_VGG16_NOTOP_URL = FILES["vgg16"].source
_VGG16_NOTOP_MD5 = FILES["vgg16"].md5
# ImageNet channel means in BGR order on a [0, 255] scale: Keras applications' "caffe" preprocessing for VGG16.
_CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)

PixelTransform = Literal["none", "unit", "caffe"]
_PIXEL_TRANSFORMS = ("none", "unit", "caffe")


def to_network_pixels(images, pixel_transform: PixelTransform):
    """Convert [B, H, W, 3] RGB in [-1, 1] to what a feature network expects.

    "none": unchanged, [-1, 1] RGB (FaceDancer feeds VGG16 like this). "unit": (x + 1) / 2, [0, 1] RGB (ArcFace).
    "caffe": ImageNet VGG preprocessing: [0, 255], channels reversed to BGR, ImageNet BGR mean subtracted.
    """
    images = ops.cast(images, "float32")
    if pixel_transform == "none":
        return images
    if pixel_transform == "unit":
        return (images + 1.0) * 0.5
    if pixel_transform == "caffe":
        return (ops.flip(images, axis=-1) + 1.0) * 127.5 - ops.convert_to_tensor(_CAFFE_BGR_MEAN, "float32")
    raise ValueError(f"unknown pixel_transform {pixel_transform!r}; choose one of {_PIXEL_TRANSFORMS}")


@dataclass(frozen=True, eq=False)
class FeatureExtractor:
    """A multi-output network read at fixed layers: images [B, H, W, 3] RGB in [-1, 1] -> list of feature tensors.

    Attributes:
        model: keras.Model whose outputs are the features, in `layer_names` order. It may share layers with a model
            that is being trained (the discriminator): the extractor never changes `trainable` flags; which variables
            a loss updates is the trainer's choice. It is always called with training=False.
        layer_names: names of the tapped layers (or of the outputs of a model file).
        pixel_transform: see `to_network_pixels`.
        input_size: side the images are resized to (bilinear) before the network; None keeps the input size.
    """

    model: keras.Model
    layer_names: tuple[str, ...]
    pixel_transform: PixelTransform = "none"
    input_size: int | None = None

    def __post_init__(self) -> None:
        if self.pixel_transform not in _PIXEL_TRANSFORMS:
            raise ValueError(f"unknown pixel_transform {self.pixel_transform!r}; choose one of {_PIXEL_TRANSFORMS}")

    def __call__(self, images) -> list:
        x = to_network_pixels(images, self.pixel_transform)
        if self.input_size is not None:
            x = ops.image.resize(x, (self.input_size, self.input_size), interpolation="bilinear")
        outputs = self.model(x, training=False)
        if not isinstance(outputs, (list, tuple)):
            outputs = [outputs]
        return list(outputs)

    def named(self, images) -> dict:
        """Same as calling, keyed by layer name (what `ifsr_loss` takes)."""
        return dict(zip(self.layer_names, self(images), strict=True))


def tap_layers(model: keras.Model, layer_names: Sequence[str], name: str | None = None) -> keras.Model:
    """A functional model from `model`'s inputs to the outputs of the named layers (weights shared, not copied).

    Raises:
        ValueError: when a name is not a layer of `model` (nested sub-models are not searched: pass the sub-model).
    """
    if not layer_names:
        raise ValueError("tap_layers needs at least one layer name")
    available = {layer.name for layer in model.layers}
    missing = [layer_name for layer_name in layer_names if layer_name not in available]
    if missing:
        shown = ", ".join(sorted(available)[:40])
        raise ValueError(
            f"model {model.name!r} has no layer named {missing}; its top-level layers include: {shown}. "
            "If the layers live in a nested sub-model, pass that sub-model instead."
        )
    outputs = [model.get_layer(layer_name).output for layer_name in layer_names]
    # one input as a tensor, not a one-element list: callers pass a tensor, and Keras warns when the structures differ
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    return keras.Model(inputs, outputs, name=name or f"{model.name}_features")


def model_features(
    model: keras.Model,
    layer_names: Sequence[str],
    pixel_transform: PixelTransform = "none",
    input_size: int | None = None,
) -> FeatureExtractor:
    """Feature extractor over any functional keras.Model at the given layer names."""
    return FeatureExtractor(tap_layers(model, layer_names), tuple(layer_names), pixel_transform, input_size)


class WeightsDownloadError(ClipswapError, RuntimeError):
    """Pretrained weights of a feature network could not be downloaded (the message names the file to give)."""


def download_vgg16_weights() -> str:
    """Path of the cached no-top ImageNet VGG16 file, downloading it (once, into ~/.keras/models) when absent.

    Raises:
        WeightsDownloadError: the download failed (offline, proxy, checksum).
    """
    try:
        return keras.utils.get_file(
            VGG16_NOTOP_FILE, _VGG16_NOTOP_URL, cache_subdir="models", file_hash=_VGG16_NOTOP_MD5
        )
    except Exception as error:  # get_file re-raises HTTP/URL errors as a bare Exception: guard only this call.
        raise WeightsDownloadError(
            f"could not download the ImageNet VGG16 weights {VGG16_NOTOP_FILE} ({error}); download it elsewhere and "
            "pass its path"
        ) from error


def vgg16_features(
    weights: str | Path | None = "imagenet",
    vgg_preprocessing: bool = False,
    layer_names: Sequence[str] = VGG16_POOLS,
) -> FeatureExtractor:
    """Frozen ImageNet VGG16 (Keras applications, no top) read at its block pools.

    Args:
        weights: "imagenet" (Keras downloads and caches the file; needs network once), a path to a VGG16 no-top
            weights file (e.g. vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5), or None for random weights (tests).
        vgg_preprocessing: False (default, FaceDancer's behaviour): the [-1, 1] RGB images go in as they are, which is
            not what the ImageNet weights were trained on but is what FaceDancer's loss weights were tuned with.
            True: ImageNet "caffe" preprocessing ([0, 255], BGR, mean subtracted).
        layer_names: VGG16 layers to tap; default block1_pool..block5_pool, [B, H/2, W/2, 64] .. [B, H/32, W/32, 512].

    Returns:
        FeatureExtractor taking [B, H, W, 3] RGB in [-1, 1] with H, W >= 32.
    """
    if weights == "imagenet":
        weights = download_vgg16_weights()
    elif weights is not None:
        path = Path(weights)
        if not path.is_file():
            raise FileNotFoundError(
                f"VGG16 weights file {path} does not exist; give the no-top ImageNet file ({VGG16_NOTOP_FILE}) or "
                "'imagenet' to download it"
            )
        weights = str(path)
    vgg = keras.applications.VGG16(include_top=False, weights=weights, input_shape=(None, None, 3))
    vgg.trainable = False
    logger.info("VGG16 perceptual network: weights=%s, vgg_preprocessing=%s", weights, vgg_preprocessing)
    return FeatureExtractor(
        tap_layers(vgg, layer_names, name="vgg16_features"),
        tuple(layer_names),
        "caffe" if vgg_preprocessing else "none",
        None,
    )


def perceptual_loss(
    feats_target: Sequence,
    feats_swap: Sequence,
    same_mask,
    weights: Sequence[float] | None = None,
    eps: float = SAME_PAIR_EPS,
):
    """Paper eq. 8: sum_l w_l * per-sample mean |F_l(X_tgt) - F_l(X_swap)|, averaged over same-identity samples.

    Args:
        feats_target: L feature tensors of the targets, each [B, ...] (any per-layer shape).
        feats_swap: L feature tensors of the swaps, same shapes (gradient flows here).
        same_mask: [B] bool/{0, 1}: which samples are same-identity pairs.
        weights: L layer weights, default all 1; FACEDANCER_VGG_WEIGHTS reproduces FaceDancer's 0.85 scaling.
        eps: denominator guard of the same-pair average (reconstruction.SAME_PAIR_EPS).

    Returns:
        Scalar float32 >= 0; 0 when no sample is a same pair.
    """
    if len(feats_target) != len(feats_swap) or not feats_target:
        raise ValueError(
            f"need equally many target and swap features (>0), got {len(feats_target)} and {len(feats_swap)}"
        )
    if weights is None:
        weights = (1.0,) * len(feats_target)
    if len(weights) != len(feats_target):
        raise ValueError(f"{len(weights)} layer weights for {len(feats_target)} feature layers")
    per_sample = 0.0
    for weight, target, swap in zip(weights, feats_target, feats_swap, strict=True):
        difference = ops.abs(ops.cast(target, "float32") - ops.cast(swap, "float32"))
        per_sample += weight * ops.mean(ops.reshape(difference, (ops.shape(difference)[0], -1)), axis=1)
    return same_pair_average(per_sample, same_mask, eps)


def perceptual_term(step, perceptual_to_teacher: bool = False):
    """The perceptual row: eq. 8 of the loss's perceptual FeatureSource, the swap against the target on same pairs,
    or with `perceptual_to_teacher` against the teacher on every pair the teacher terms keep (SwapBatch.teacher_kept;
    on same pairs the teacher is the target, so eq. 8 is unchanged there)."""
    loss, batch = step.loss, step.batch
    source = loss.perceptual
    if perceptual_to_teacher and batch.teacher is not None:
        teacher_out = {k: ops.stop_gradient(v) for k, v in loss.identity(batch.teacher).items()}
        reference = [ops.stop_gradient(x) for x in source.features(batch.teacher, teacher_out)]
        compared = ops.ones_like(batch.same) if batch.teacher_kept is None else batch.teacher_kept
    else:
        reference = [ops.stop_gradient(x) for x in source.features(batch.target, step.tgt_out)]
        compared = batch.same
    swapped = source.features(step.swap, step.swap_out)
    return perceptual_loss(reference, swapped, compared, source.layer_weights)
