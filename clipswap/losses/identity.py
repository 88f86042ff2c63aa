"""Identity loss (ClipSwap paper eq. 6) and the guarded cosine helpers every direction-based loss shares.

L_id = mean_i [1 - cos(R(X_src)_i, R(X_swap)_i)], with R any identity encoder (ArcFace-R50, SFace, ...).
"""

from __future__ import annotations

from keras import ops

# Added under the square root of every norm: a zero vector (identical embeddings, a blank direction) then normalises
# to zero instead of NaN. 1e-6 rather than 1e-12 because the derivative of x/|x| grows like 1/max(|x|, eps): a tiny
# eps turns a near-zero direction into a gradient spike of 1e12.
NORM_EPS = 1e-6
#: Key of the identity embedding in the identity network's outputs (the other keys are layer names).
EMBEDDING = "embedding"
#: Added to the step's seed for the identity augmentation: its own stream, apart from the CLIP augmentations'.
ID_AUGMENT_SEED_OFFSET = 1 << 40


def l2_normalize(x, axis: int = -1, eps: float = NORM_EPS):
    """x / max(||x||_2, eps) along `axis`, computed in float32; zero vectors stay zero (no NaN value or gradient)."""
    x = ops.cast(x, "float32")
    squared = ops.sum(ops.square(x), axis=axis, keepdims=True)
    return x * ops.rsqrt(ops.maximum(squared, eps * eps))


def cosine_similarity(a, b, axis: int = -1, eps: float = NORM_EPS):
    """Cosine of the angle between a and b along `axis` (the axis is reduced), in [-1, 1]; 0 when either is zero."""
    return ops.sum(l2_normalize(a, axis, eps) * l2_normalize(b, axis, eps), axis=axis)


def identity_loss(z_src, z_swap):
    """Paper eq. 6: batch mean of 1 - cos(z_src, z_swap).

    Args:
        z_src: [B, D] identity embeddings of the source faces, R(X_src); raw or normalised (the cosine normalises).
            Computed outside the generator, so no gradient is expected through it (none is blocked either).
        z_swap: [B, D] identity embeddings of the swapped faces, R(X_swap); the generator's gradient flows here.

    Returns:
        Scalar float32 in [0, 2]: 0 for identical directions, 1 for orthogonal ones (or a zero embedding).
    """
    z_src = ops.convert_to_tensor(z_src)
    z_swap = ops.convert_to_tensor(z_swap)
    if ops.ndim(z_src) != 2 or ops.ndim(z_swap) != 2:
        raise ValueError(f"identity_loss expects [B, D] embeddings, got {z_src.shape} and {z_swap.shape}")
    return ops.mean(1.0 - cosine_similarity(z_src, z_swap))


def identity_term(step, id_augment: bool = False, id_augment_grey: float = 0.0):
    """The id row: eq. 6 between R(source) and R(swap), the swap first shifted and flipped by the step's seeded
    identity augmentation (its own stream, ID_AUGMENT_SEED_OFFSET) when `id_augment`, and each augmented swap turned
    grey with probability `id_augment_grey`."""
    if id_augment:
        parts = step.loss.parts
        shifted = parts.shift_seed(step.seed, ID_AUGMENT_SEED_OFFSET)
        augmented = parts.identity_augment(step.swap, shifted, grey_prob=id_augment_grey)
        swap_embedding = step.loss.identity(augmented)[EMBEDDING]
    else:
        swap_embedding = step.swap_out[EMBEDDING]
    return identity_loss(ops.stop_gradient(step.src_out[EMBEDDING]), swap_embedding)
