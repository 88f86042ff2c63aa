"""Reconstruction loss (ClipSwap paper eq. 7): L1 between target and swap on same-identity pairs only.

When source = target the swap should reproduce the target, so the pixel distance is a direct supervision signal;
for different identities it is meaningless and those samples contribute nothing.
"""

from __future__ import annotations

import tensorflow as tf

# Keeps the average finite when the batch holds no same-identity pair (the loss is then exactly 0). FaceDancer's value.
# It biases the average down by eps / (n_same + eps): 0.1 % with one same pair, less with more.
SAME_PAIR_EPS = 1e-3


def same_pair_average(per_sample: tf.Tensor, same_mask: tf.Tensor, eps: float = SAME_PAIR_EPS) -> tf.Tensor:
    """sum_i(flag_i * x_i) / (sum_i flag_i + eps): the mean of a per-sample loss over same-identity samples.

    Args:
        per_sample: [B] float loss per sample.
        same_mask: [B] bool or {0, 1} numbers; 1 where source and target are the same image/identity.
        eps: see SAME_PAIR_EPS.

    Returns:
        Scalar float32; 0 when no flag is set.
    """
    per_sample = tf.cast(per_sample, tf.float32)
    flags = tf.reshape(tf.cast(same_mask, tf.float32), [-1])
    return tf.reduce_sum(flags * per_sample) / (tf.reduce_sum(flags) + eps)


def reconstruction_loss(
    target: tf.Tensor, swap: tf.Tensor, same_mask: tf.Tensor, eps: float = SAME_PAIR_EPS, facedancer_clip: bool = False
) -> tf.Tensor:
    """Paper eq. 7: per-sample mean |X_tgt - X_swap|, averaged over same-identity samples.

    The paper leaves the norm open; we use L1 (mean absolute difference over H, W, C) as FaceDancer does.

    Args:
        target: [B, H, W, 3] target images, RGB in [-1, 1].
        swap: [B, H, W, 3] generated swaps, RGB in [-1, 1] (gradient flows here).
        same_mask: [B] bool/{0, 1}: which samples are same-identity pairs.
        eps: denominator guard, see SAME_PAIR_EPS.
        facedancer_clip: apply FaceDancer's post-processing: clip to [0, 100], halve, clip to [0, 5]
            (REFERENCE.md section 7). With [-1, 1] images the mean L1 is at most 2, so this only halves the value.

    Returns:
        Scalar float32 in [0, 2] (in [0, 1] with facedancer_clip); 0 when no sample is a same pair.
    """
    target = tf.cast(target, tf.float32)
    swap = tf.cast(swap, tf.float32)
    if target.shape.rank != 4 or swap.shape.rank != 4:
        raise ValueError(f"reconstruction_loss expects [B, H, W, C] images, got {target.shape} and {swap.shape}")
    per_sample = tf.reduce_mean(tf.abs(target - swap), axis=[1, 2, 3])
    loss = same_pair_average(per_sample, same_mask, eps)
    if facedancer_clip:
        loss = tf.clip_by_value(0.5 * tf.clip_by_value(loss, 0.0, 100.0), 0.0, 5.0)
    return loss
