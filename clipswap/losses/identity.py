"""Identity loss (ClipSwap paper eq. 6) and the guarded cosine helpers every direction-based loss shares.

L_id = mean_i [1 - cos(R(X_src)_i, R(X_swap)_i)], with R any identity encoder (ArcFace-R50, SFace, ...).
"""

from __future__ import annotations

import tensorflow as tf

# Added under the square root of every norm: a zero vector (identical embeddings, a blank direction) then normalises
# to zero instead of NaN. 1e-6 rather than 1e-12 because the derivative of x/|x| grows like 1/max(|x|, eps): a tiny
# eps turns a near-zero direction into a gradient spike of 1e12.
NORM_EPS = 1e-6


def l2_normalize(x: tf.Tensor, axis: int = -1, eps: float = NORM_EPS) -> tf.Tensor:
    """x / max(||x||_2, eps) along `axis`, computed in float32; zero vectors stay zero (no NaN value or gradient)."""
    x = tf.cast(x, tf.float32)
    squared = tf.reduce_sum(tf.square(x), axis=axis, keepdims=True)
    return x * tf.math.rsqrt(tf.maximum(squared, eps * eps))


def cosine_similarity(a: tf.Tensor, b: tf.Tensor, axis: int = -1, eps: float = NORM_EPS) -> tf.Tensor:
    """Cosine of the angle between a and b along `axis` (the axis is reduced), in [-1, 1]; 0 when either is zero."""
    return tf.reduce_sum(l2_normalize(a, axis, eps) * l2_normalize(b, axis, eps), axis=axis)


def identity_loss(z_src: tf.Tensor, z_swap: tf.Tensor) -> tf.Tensor:
    """Paper eq. 6: batch mean of 1 - cos(z_src, z_swap).

    Args:
        z_src: [B, D] identity embeddings of the source faces, R(X_src); raw or normalised (the cosine normalises).
            Computed outside the generator, so no gradient is expected through it (none is blocked either).
        z_swap: [B, D] identity embeddings of the swapped faces, R(X_swap); the generator's gradient flows here.

    Returns:
        Scalar float32 in [0, 2]: 0 for identical directions, 1 for orthogonal ones (or a zero embedding).
    """
    z_src = tf.convert_to_tensor(z_src)
    z_swap = tf.convert_to_tensor(z_swap)
    if z_src.shape.rank != 2 or z_swap.shape.rank != 2:
        raise ValueError(f"identity_loss expects [B, D] embeddings, got {z_src.shape} and {z_swap.shape}")
    return tf.reduce_mean(1.0 - cosine_similarity(z_src, z_swap))
