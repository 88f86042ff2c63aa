"""Adversarial losses: non-saturating logistic GAN loss for G and D, and the R1 gradient penalty on real images.

Not in the paper's loss sum, though it describes a discriminator; we keep FaceDancer's adversarial terms (FaceDancer,
Rosberg et al., WACV 2023). Logits are raw discriminator outputs of any shape [B, ...]; every element counts in the
means.

The R1 penalty (discriminator_logits_with_r1, r1_penalty) is a double backprop and lives in each backend's module
(clipswap.losses.tf_only, clipswap.losses.jax_only), which import this module, never the other way round; the D pass
(clipswap.training.loss.DiscriminatorForward) computes it with D's real logits, and the r1 row reads it.
"""

from __future__ import annotations

from keras import ops

R1_GAMMA = 10.0


def generator_adversarial_loss(fake_logits):
    """G's non-saturating loss: mean softplus(-D(fake)) = mean -log sigmoid(D(fake)). Scalar float32 >= 0."""
    return ops.mean(ops.softplus(-ops.cast(fake_logits, "float32")))


def discriminator_adversarial_loss(real_logits, fake_logits, real_weights=None):
    """D's logistic loss: mean softplus(D(fake)) + mean softplus(-D(real)). Scalar float32 >= 0.

    The two means are taken separately, so real and fake logits may have different batch sizes. `real_weights`
    ([B] of 0 or 1, optional) leaves the real samples weighted 0 out of the real mean (a batch with none adds 0):
    a paired discriminator's real pairs exist only for people with a second photo.
    """
    fake = ops.mean(ops.softplus(ops.cast(fake_logits, "float32")))
    real = ops.softplus(-ops.cast(real_logits, "float32"))
    if real_weights is None:
        return fake + ops.mean(real)
    weights = ops.reshape(ops.cast(real_weights, "float32"), (-1,) + (1,) * (len(real.shape) - 1))
    weights = ops.broadcast_to(weights, ops.shape(real))
    return fake + ops.sum(real * weights) / ops.maximum(ops.sum(weights), 1.0)


def discriminator_adversarial_term(step):
    """The d_adv row: discriminator_adversarial_loss of the D pass's real and fake logits (the real ones counted
    where step.real_weights is 1)."""
    return discriminator_adversarial_loss(step.real_logits, step.fake_logits, step.real_weights)


def r1_term(step):
    """The r1 row: the R1 penalty of the D pass's real logits, gamma applied (computed with them, since it
    differentiates that call of D)."""
    return step.r1


def generator_adversarial_term(step):
    """The adv row: generator_adversarial_loss of D (training mode) on the swap as the loss's D reads it."""
    loss = step.loss
    logits = loss.discriminator(loss.discriminator_input(step.swap, step.batch), training=True)
    return generator_adversarial_loss(logits)
