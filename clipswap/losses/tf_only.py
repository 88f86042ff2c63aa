"""The TensorFlow-only parts of the losses, which belong to our TensorFlow training step (clipswap.training):

- the R1 penalty, whose gradient w.r.t. D's weights is a double backprop through a GradientTape recorded inside the
  tape of D's update;
- the seeded stateless draws of the augmentations (Philox through tf.random.stateless_uniform: one seed gives the same
  draws eagerly, in a tf.function and under XLA, so a resumed run draws what the interrupted one would have);
- CLIP(X_mean)'s running state (ClipMeanTracker): tf.Variables aggregated across tf.distribute replicas and saved by
  tf.train.Checkpoint.

Everything else in clipswap.losses is keras.ops maths that runs on any Keras backend; the draws here feed the maths of
clipswap.losses.augment. This module imports those modules and none of them imports it, so the imports run one way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import tensorflow as tf

from clipswap.losses.adversarial import R1_GAMMA
from clipswap.losses.augment import (
    AUGMENT_DRAWS,
    CLIP_CROP_FRACTION,
    CLIP_DISTORTION,
    CLIP_FILL_VALUE,
    CLIP_N_AUG,
    apply_augment_params,
    augment_params_from_draws,
    check_augment_args,
    grey_where,
    shift_and_flip,
    shift_padding,
)
from clipswap.losses.contrastive import CLIP_MEAN_MOMENTUM
from clipswap.losses.identity import l2_normalize


def discriminator_logits_with_r1(
    real_images: tf.Tensor, d_fn: Callable[[tf.Tensor], tf.Tensor], gamma: float = R1_GAMMA,
    weights: tf.Tensor | None = None,
) -> tuple[tf.Tensor, tf.Tensor]:
    """D(real) and the R1 penalty 0.5 * gamma * mean_i sum_pixels (dD(x_i)/dx_i)^2, from one forward pass.

    D(x_i) is the mean of image i's logits (a patch D has several). Their sum over the batch is differentiated, so
    each sample's gradient is its own only if D treats samples independently (no batch statistics in training
    mode). Call it inside the tape that computes D's update: the inner gradient is recorded there, so the penalty
    has a gradient w.r.t. D's weights (double backprop).

    Args:
        real_images: [B, H, W, C] real images, RGB in [-1, 1].
        d_fn: images -> logits [B, ...], e.g. `lambda x: discriminator(x, training=True)`.
        gamma: R1 weight (10 in FaceDancer).
        weights: optional [B] of 0 or 1: the mean over the batch counts only the samples weighted 1 (the real pairs
            a paired discriminator has; 0 when there is none).

    Returns:
        (real_logits as d_fn returns them, scalar float32 penalty >= 0).
    """
    real_images = tf.convert_to_tensor(real_images)
    with tf.GradientTape() as tape:
        tape.watch(real_images)
        logits = d_fn(real_images)
        # Each image's logits are averaged first: a patch D's penalty is then that of the mean patch logit, the same
        # scale as a one-logit D's whatever the number of patches.
        flat = tf.reshape(tf.cast(logits, tf.float32), [tf.shape(logits)[0], -1])
        total = tf.reduce_sum(tf.reduce_mean(flat, axis=1))
    gradients = tf.cast(tape.gradient(total, real_images), tf.float32)
    squared_norm = tf.reduce_sum(tf.reshape(tf.square(gradients), [tf.shape(gradients)[0], -1]), axis=1)
    if weights is None:
        return logits, 0.5 * gamma * tf.reduce_mean(squared_norm)
    weights = tf.cast(weights, tf.float32)
    return logits, 0.5 * gamma * tf.reduce_sum(squared_norm * weights) / tf.maximum(tf.reduce_sum(weights), 1.0)


def r1_penalty(real_images: tf.Tensor, d_fn: Callable[[tf.Tensor], tf.Tensor], gamma: float = R1_GAMMA) -> tf.Tensor:
    """R1 penalty only; see `discriminator_logits_with_r1`."""
    return discriminator_logits_with_r1(real_images, d_fn, gamma)[1]


def seed_tensor(seed: int | Sequence[int] | tf.Tensor) -> tf.Tensor:
    """A stateless seed as a [2] int64 tensor: an int n becomes [n, 0]."""
    if isinstance(seed, int):
        return tf.constant([seed, 0], tf.int64)
    seed = tf.cast(tf.convert_to_tensor(seed), tf.int64)
    if seed.shape != (2,):
        raise ValueError(f"seed must be an int or a [2] integer tensor, got shape {seed.shape}")
    return seed


def step_seed(run_seed: int, step: tf.Tensor) -> tf.Tensor:
    """[2] int64 stateless seed [run seed, global step * replicas + replica id] of this step and replica."""
    context = tf.distribute.get_replica_context()
    replicas = tf.cast(tf.distribute.get_strategy().num_replicas_in_sync, tf.int64)
    replica = tf.cast(context.replica_id_in_sync_group if context is not None else 0, tf.int64)
    return tf.stack([tf.constant(run_seed, tf.int64), tf.cast(step, tf.int64) * replicas + replica])


def shift_seed(seed: tf.Tensor, offset: int) -> tf.Tensor:
    """A second stream of the same step's seed: [a, b] -> [a, b + offset] (offset far above any step count)."""
    return seed_tensor(seed) + tf.constant([0, offset], tf.int64)


def sample_augment_params(
    batch: int | tf.Tensor,
    height: int | tf.Tensor,
    width: int | tf.Tensor,
    n_aug: int = CLIP_N_AUG,
    distortion: float = CLIP_DISTORTION,
    crop_fraction: float = CLIP_CROP_FRACTION,
    seed: int | Sequence[int] | tf.Tensor = 0,
) -> dict[str, tf.Tensor]:
    """Draw the random crop boxes and perspective corners of `clip_augment`, one set per (sample, augmentation).

    Returns:
        "crop_box": [B, n_aug, 4] float32 (x0, y0, crop_w, crop_h) in input pixels (x0, y0 continuous).
        "corners": [B, n_aug, 4, 2] float32 (x, y) where the crop's corners top-left, top-right, bottom-right,
            bottom-left land, in unit-square coordinates of the crop (0 = first pixel centre, 1 = last).
    """
    check_augment_args(n_aug, distortion, crop_fraction)
    # Philox named explicitly: "auto_select" picks a different generator under XLA, changing the draws.
    draws = tf.random.stateless_uniform([batch, n_aug, AUGMENT_DRAWS], seed=seed_tensor(seed), dtype=tf.float32,
                                        alg="philox")
    return augment_params_from_draws(draws, height, width, distortion, crop_fraction)


def clip_augment(
    images: tf.Tensor,
    n_aug: int = CLIP_N_AUG,
    distortion: float = CLIP_DISTORTION,
    crop_fraction: float = CLIP_CROP_FRACTION,
    seed: int | Sequence[int] | tf.Tensor = 0,
    output_size: tuple[int, int] | None = None,
    fill_value: float = CLIP_FILL_VALUE,
) -> tf.Tensor:
    """X_aug: n_aug random crop + perspective augmentations of each image, differentiable w.r.t. the images
    (clipswap.losses.augment describes the recipe).

    Args:
        images: [B, H, W, 3] RGB in [-1, 1] (the swaps X_swap).
        n_aug: augmentations per image (4 by our decision).
        distortion: perspective strength in [0, 1); 0.5 as in CLIPStyler (torchvision distortion_scale).
        crop_fraction: side of the random crop as a fraction of the image side, in (0, 1]; 1 disables cropping.
        seed: int or [2] integer tensor for the stateless draws (vary it per step, e.g. [run_seed, step]).
        output_size: (Ho, Wo) the crops are resampled to; None keeps (H, W). CLIP's own resize to 224 happens in the
            CLIP encoder's preprocessing, not here.
        fill_value: value outside the warped quad; -1 is black in [-1, 1] (CLIPStyler fills 0 on [0, 1] images).

    Returns:
        [B, n_aug, Ho, Wo, 3] float32 in [-1, 1].
    """
    images = tf.convert_to_tensor(images)
    if images.shape.rank != 4:
        raise ValueError(f"clip_augment expects [B, H, W, C] images, got shape {images.shape}")
    shape = tf.shape(images)
    params = sample_augment_params(shape[0], shape[1], shape[2], n_aug, distortion, crop_fraction, seed)
    return apply_augment_params(images, params, output_size, fill_value)


def identity_augment(images: tf.Tensor, seed: int | Sequence[int] | tf.Tensor, max_shift: float = 1 / 16,
                     grey_prob: float = 0.0) -> tf.Tensor:
    """Random shift and horizontal flip of the swap before the identity encoder (the identity loss's expectation
    over transformations): a pattern that steers the encoder only at one exact pixel placement no longer pays.

    One integer shift (dx, dy), each uniform in [-max_shift * S, max_shift * S], for the whole batch (reflected
    border), and a horizontal flip of each image with probability 1/2 (clipswap.losses.augment.shift_and_flip);
    then each image turned grey with probability `grey_prob` (augment.grey_where), so that a colour pattern which
    steers the encoder pays only on the coloured draws.

    Args:
        images: [B, S, S, 3] float32 in [-1, 1].
        seed: stateless seed (int or [2] int tensor).
        max_shift: largest shift as a fraction of the side.
        grey_prob: probability in [0, 1] of the grey draw (0: none, the draw is skipped).

    Returns:
        [B, S, S, 3] float32.
    """
    seed = seed_tensor(seed)
    pad = shift_padding(images.shape[1], max_shift)
    offsets = tf.random.stateless_uniform([2], seed=seed, minval=0, maxval=2 * pad + 1, dtype=tf.int32)
    flips = tf.random.stateless_uniform([tf.shape(images)[0]], seed=seed + tf.constant([0, 1], tf.int64)) < 0.5
    moved = shift_and_flip(images, offsets, flips, pad)
    if not grey_prob:
        return moved
    greys = tf.random.stateless_uniform([tf.shape(images)[0]], seed=seed + tf.constant([0, 2], tf.int64)) < grey_prob
    return grey_where(moved, greys)


class ClipMeanTracker(tf.Module):
    """CLIP(X_mean): EMA of the batch mean of L2-normalised CLIP embeddings of generated swaps.

    State lives in tf.Variables (`mean` [D] float32, `count` int64 updates so far) so tf.train.Checkpoint saves and
    restores it, also when it is an attribute of a Keras model in the checkpoint. It is not among `model.weights`,
    so Keras' own save_weights/.keras files do not hold it. The first update sets the mean to that batch's mean;
    later ones do mean <- momentum * mean + (1 - momentum) * batch_mean. The stored mean is not renormalised
    (the loss normalises it). Create it under the distribution strategy's scope: `mean` aggregates by MEAN, so an
    update in replica context averages the replicas' batch means.

    Typical step: `e_mean = tracker.update(e_swap)` then `clip_contrastive_loss(e_ref, e_swap, e_aug, e_mean)`.
    """

    def __init__(self, dim: int, momentum: float = CLIP_MEAN_MOMENTUM, name: str = "clip_mean_tracker"):
        super().__init__(name=name)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        self.momentum = float(momentum)
        self.mean = tf.Variable(
            tf.zeros([dim], tf.float32), trainable=False, name="mean", aggregation=tf.VariableAggregation.MEAN
        )
        self.count = tf.Variable(
            tf.constant(0, tf.int64), trainable=False, name="count",
            aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
        )

    @property
    def value(self) -> tf.Tensor:
        """[D] current mean embedding (not normalised); zeros before the first update."""
        return self.mean.read_value()

    def update(self, e_swap: tf.Tensor) -> tf.Tensor:
        """Fold swap embeddings [B, D] (raw or normalised; no gradient) into the mean; returns the new [D] mean."""
        batch_mean = tf.reduce_mean(l2_normalize(tf.stop_gradient(e_swap)), axis=0)
        blended = self.momentum * self.mean + (1.0 - self.momentum) * batch_mean
        self.mean.assign(tf.where(self.count > 0, blended, batch_mean))
        self.count.assign_add(1)
        return self.mean.read_value()
