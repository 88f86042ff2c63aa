"""Adversarial losses: non-saturating logistic GAN loss for G and D, and the R1 gradient penalty on real images.

Not in the paper's loss sum, though it describes a discriminator; we keep FaceDancer's terms (REFERENCE.md section 7).
Logits are raw discriminator outputs of any shape [B, ...]; every element counts in the means.
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf

R1_GAMMA = 10.0


def generator_adversarial_loss(fake_logits: tf.Tensor) -> tf.Tensor:
    """G's non-saturating loss: mean softplus(-D(fake)) = mean -log sigmoid(D(fake)). Scalar float32 >= 0."""
    return tf.reduce_mean(tf.nn.softplus(-tf.cast(fake_logits, tf.float32)))


def discriminator_adversarial_loss(real_logits: tf.Tensor, fake_logits: tf.Tensor) -> tf.Tensor:
    """D's logistic loss: mean softplus(D(fake)) + mean softplus(-D(real)). Scalar float32 >= 0.

    The two means are taken separately, so real and fake logits may have different batch sizes.
    """
    fake = tf.reduce_mean(tf.nn.softplus(tf.cast(fake_logits, tf.float32)))
    real = tf.reduce_mean(tf.nn.softplus(-tf.cast(real_logits, tf.float32)))
    return fake + real


def discriminator_logits_with_r1(
    real_images: tf.Tensor, d_fn: Callable[[tf.Tensor], tf.Tensor], gamma: float = R1_GAMMA
) -> tuple[tf.Tensor, tf.Tensor]:
    """D(real) and the R1 penalty 0.5 * gamma * mean_i sum_pixels (dD(x_i)/dx_i)^2, from one forward pass.

    The sum of D's outputs is differentiated, so each sample's gradient is its own only if D treats samples
    independently (no batch statistics in training mode). Call it inside the tape that computes D's update: the
    inner gradient is recorded there, so the penalty has a gradient w.r.t. D's weights (double backprop).

    Args:
        real_images: [B, H, W, C] real images, RGB in [-1, 1].
        d_fn: images -> logits [B, ...], e.g. `lambda x: discriminator(x, training=True)`.
        gamma: R1 weight (10 in FaceDancer).

    Returns:
        (real_logits as d_fn returns them, scalar float32 penalty >= 0).
    """
    real_images = tf.convert_to_tensor(real_images)
    with tf.GradientTape() as tape:
        tape.watch(real_images)
        logits = d_fn(real_images)
        total = tf.reduce_sum(tf.cast(logits, tf.float32))
    gradients = tf.cast(tape.gradient(total, real_images), tf.float32)
    squared_norm = tf.reduce_sum(tf.reshape(tf.square(gradients), [tf.shape(gradients)[0], -1]), axis=1)
    return logits, 0.5 * gamma * tf.reduce_mean(squared_norm)


def r1_penalty(real_images: tf.Tensor, d_fn: Callable[[tf.Tensor], tf.Tensor], gamma: float = R1_GAMMA) -> tf.Tensor:
    """R1 penalty only; see `discriminator_logits_with_r1`."""
    return discriminator_logits_with_r1(real_images, d_fn, gamma)[1]
