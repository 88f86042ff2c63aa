"""The JAX-only parts of the losses, the counterparts of clipswap.losses.tf_only for the JAX training step
(clipswap.training.jax_step), with the same names and contracts:

- the R1 penalty, whose gradient w.r.t. D's weights is a nested differentiation: jax.grad of D's logits w.r.t. the
  real images, traced inside the jax.value_and_grad of D's loss;
- the seeded draws of the augmentations, through keras.random with a JAX key made from [run seed, step]: one seed
  gives the same draws in every trace, so a resumed run draws what the uninterrupted one would have (the draws are
  JAX's threefry, not TensorFlow's Philox: the two backends draw alike, not identically);
- CLIP(X_mean)'s running state (ClipMeanTracker) as keras.Variables, which the jitted step threads through a
  keras.StatelessScope.

Everything else in clipswap.losses is keras.ops maths shared with TensorFlow.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import keras
from keras import ops

from clipswap.losses import augment
from clipswap.losses.adversarial import R1_GAMMA
from clipswap.losses.augment import CLIP_CROP_FRACTION, CLIP_DISTORTION, CLIP_FILL_VALUE, CLIP_N_AUG
from clipswap.losses.contrastive import CLIP_MEAN_MOMENTUM
from clipswap.losses.identity import l2_normalize


def discriminator_logits_with_r1(real_images, d_fn: Callable, gamma: float = R1_GAMMA, weights=None) -> tuple:
    """D(real) and the R1 penalty 0.5 * gamma * mean_i sum_pixels (dD(x_i)/dx_i)^2 (Mescheder et al. 2018, eq. 9),
    from one forward pass; tf_only.discriminator_logits_with_r1's contract.

    D(x_i) is the mean of image i's logits (a patch D has several); their sum over the batch is differentiated with
    jax.grad, so each sample's gradient is its own when D treats samples independently. Traced inside the
    differentiation of D's loss, the penalty has a gradient w.r.t. D's weights (nested differentiation).

    Args:
        real_images: [B, H, W, C] real images, RGB in [-1, 1].
        d_fn: images -> logits [B, ...].
        gamma: R1 weight.
        weights: optional [B] of 0 or 1: the mean over the batch counts only the samples weighted 1 (a paired
            discriminator's real pairs; 0 when there is none).

    Returns:
        (real logits as d_fn returns them, scalar float32 penalty >= 0).
    """
    real_images = ops.convert_to_tensor(real_images)

    def summed(images):
        logits = d_fn(images)
        flat = ops.reshape(ops.cast(logits, "float32"), (logits.shape[0], -1))
        return ops.sum(ops.mean(flat, axis=1)), logits

    gradients, logits = jax.grad(summed, has_aux=True)(real_images)
    gradients = ops.cast(gradients, "float32")
    squared_norm = ops.sum(ops.reshape(ops.square(gradients), (gradients.shape[0], -1)), axis=1)
    if weights is None:
        return logits, 0.5 * gamma * ops.mean(squared_norm)
    weights = ops.cast(weights, "float32")
    return logits, 0.5 * gamma * ops.sum(squared_norm * weights) / ops.maximum(ops.sum(weights), 1.0)


def r1_penalty(real_images, d_fn: Callable, gamma: float = R1_GAMMA):
    """R1 penalty only; see `discriminator_logits_with_r1`."""
    return discriminator_logits_with_r1(real_images, d_fn, gamma)[1]


def seed_tensor(seed: int | Sequence[int] | jax.Array) -> jax.Array:
    """A keras.random seed under JAX: a [2] uint32 key. An int n becomes [n, 0]; [a, b] keeps the low 32 bits of
    each (the run seed and the step)."""
    if isinstance(seed, int):
        seed = [seed, 0]
    seed = jnp.asarray(seed)
    if seed.shape != (2,):
        raise ValueError(f"seed must be an int or a [2] integer tensor, got shape {seed.shape}")
    return seed.astype(jnp.uint32)


def shift_seed(seed, offset: int) -> jax.Array:
    """A second stream of the same step's seed (tf_only.shift_seed's contract): the key folded with the high and
    then the low 32-bit word of `offset`, 0 <= offset < 2**64, so that every offset (the identity augmentation's is
    2**40) gives its own stream, as it does on TensorFlow."""
    if not 0 <= offset < 1 << 64:
        raise ValueError(f"a seed offset is in [0, 2**64), got {offset}")
    key = jax.random.fold_in(seed_tensor(seed), (offset >> 32) & 0xFFFFFFFF)
    return jax.random.fold_in(key, offset & 0xFFFFFFFF)


def step_seed(run_seed: int, step) -> jax.Array:
    """[2] uint32 key of this global step (the JAX step runs one replica)."""
    return jnp.stack([jnp.uint32(run_seed & 0xFFFFFFFF), jnp.asarray(step).astype(jnp.uint32)])


def sample_augment_params(batch: int, height: int, width: int, n_aug: int = CLIP_N_AUG,
                          distortion: float = CLIP_DISTORTION, crop_fraction: float = CLIP_CROP_FRACTION,
                          seed=0) -> dict:
    """tf_only.sample_augment_params's crop boxes and perspective corners, drawn by keras.random under JAX."""
    augment.check_augment_args(n_aug, distortion, crop_fraction)
    draws = keras.random.uniform((batch, n_aug, augment.AUGMENT_DRAWS), dtype="float32", seed=seed_tensor(seed))
    return augment.augment_params_from_draws(draws, height, width, distortion, crop_fraction)


def clip_augment(images, n_aug: int = CLIP_N_AUG, distortion: float = CLIP_DISTORTION,
                 crop_fraction: float = CLIP_CROP_FRACTION, seed=0, output_size: tuple[int, int] | None = None,
                 fill_value: float = CLIP_FILL_VALUE):
    """X_aug (paper eq. 2): tf_only.clip_augment's contract, [B, H, W, 3] -> [B, n_aug, Ho, Wo, 3] float32."""
    images = ops.convert_to_tensor(images)
    if len(images.shape) != 4:
        raise ValueError(f"clip_augment expects [B, H, W, C] images, got shape {images.shape}")
    batch, height, width = images.shape[:3]
    params = sample_augment_params(batch, height, width, n_aug, distortion, crop_fraction, seed)
    return augment.apply_augment_params(images, params, output_size, fill_value)


def identity_augment(images, seed, max_shift: float = 1 / 16, grey_prob: float = 0.0):
    """tf_only.identity_augment's random shift (one for the batch), per-image horizontal flip and grey draw, drawn by
    keras.random under JAX; [B, S, S, 3] float32 -> the same."""
    key = seed_tensor(seed)
    pad = augment.shift_padding(images.shape[1], max_shift)
    offsets = keras.random.randint((2,), 0, 2 * pad + 1, dtype="int32", seed=key)
    flips = keras.random.uniform((images.shape[0],), seed=jax.random.fold_in(key, 1)) < 0.5
    moved = augment.shift_and_flip(images, offsets, flips, pad)
    if not grey_prob:
        return moved
    greys = keras.random.uniform((images.shape[0],), seed=jax.random.fold_in(key, 2)) < grey_prob
    return augment.grey_where(moved, greys)


class ClipMeanTracker:
    """CLIP(X_mean) as tf_only.ClipMeanTracker keeps it (`mean` [D] float32, `count` int64 updates so far; the first
    update sets the mean, later ones blend with `momentum`), in keras.Variables: inside the jitted step a
    keras.StatelessScope maps them to the traced state and collects the update.
    """

    def __init__(self, dim: int, momentum: float = CLIP_MEAN_MOMENTUM, name: str = "clip_mean_tracker"):
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        self.momentum = float(momentum)
        self.mean = keras.Variable(ops.zeros((dim,), "float32"), trainable=False, name=f"{name}_mean")
        self.count = keras.Variable(0, dtype="int32", trainable=False, name=f"{name}_count")

    @property
    def variables(self) -> list:
        """The state, in checkpoint order: mean, count."""
        return [self.mean, self.count]

    @property
    def value(self):
        """[D] current mean embedding (not normalised); zeros before the first update."""
        return self.mean.value

    def update(self, e_swap):
        """Fold swap embeddings [B, D] (no gradient) into the mean; returns the new [D] mean."""
        batch_mean = ops.mean(l2_normalize(ops.stop_gradient(e_swap)), axis=0)
        blended = self.momentum * self.mean.value + (1.0 - self.momentum) * batch_mean
        self.mean.assign(ops.where(self.count.value > 0, blended, batch_mean))
        self.count.assign(self.count.value + 1)
        return self.mean.value
