"""The data recipe's numbers and choices without TensorFlow: the colour jitter, the same-identity draw and the
fixed evaluation batch's record choice. The tf.data pipeline (clipswap.training.data) and the face-pack stream
(clipswap.training.pack_data) both read these, so the two backends train on the same recipe.

Plain NumPy; importing it starts no TensorFlow.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: Colour jitter ranges of the recipe, applied to images in [-1, 1].
BRIGHTNESS_DELTA = 0.3
CONTRAST_RANGE = (0.9, 1.1)
SATURATION_RANGE = (0.9, 1.1)
#: ITU-R BT.601 luma weights (RGB), the grey image saturation interpolates from.
LUMA = (0.299, 0.587, 0.114)


def derive_seeds(seed: int, count: int) -> list[int]:
    """`count` independent non-negative int32 seeds from one user seed."""
    return [int(s) & 0x7FFFFFFF for s in np.random.SeedSequence(int(seed)).generate_state(count)]


def jitter_numpy(images: np.ndarray, draws: Sequence[float]) -> np.ndarray:
    """The recipe's colour jitter of a batch from three uniform draws in [0, 1) (clipswap.training.data.color_jitter
    is the same maths on tf.data): x + b, b = (2 u0 - 1) * 0.3; per image and channel mean + c (x - mean),
    c = 0.9 + 0.2 u1; grey + s (x - grey), s = 0.9 + 0.2 u2, grey the BT.601 luma; clipped to [-1, 1].

    Args:
        images: [B, S, S, 3] float32 RGB in [-1, 1].
        draws: three floats in [0, 1).

    Returns:
        [B, S, S, 3] float32 in [-1, 1].
    """
    brightness = (2.0 * draws[0] - 1.0) * BRIGHTNESS_DELTA
    contrast = CONTRAST_RANGE[0] + (CONTRAST_RANGE[1] - CONTRAST_RANGE[0]) * draws[1]
    saturation = SATURATION_RANGE[0] + (SATURATION_RANGE[1] - SATURATION_RANGE[0]) * draws[2]
    images = images + np.float32(brightness)
    mean = images.mean(axis=(1, 2), keepdims=True)
    images = mean + np.float32(contrast) * (images - mean)
    grey = (images * np.asarray(LUMA, np.float32)).sum(axis=-1, keepdims=True)
    images = grey + np.float32(saturation) * (images - grey)
    return np.clip(images, -1.0, 1.0).astype(np.float32)


def same_identity_numpy(rng: np.random.Generator, batch_size: int, probability: float) -> np.ndarray:
    """[B] bool: each sample True with `probability`; when none is and probability > 0, one random sample is (at
    least one reconstruction pair a batch, as FaceDancer and clipswap.training.data.same_identity_mask)."""
    mask = rng.random(batch_size) < probability
    if probability > 0.0 and not mask.any():
        mask[rng.integers(batch_size)] = True
    return mask


def eval_batch_indices(labels: Sequence[int], n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Which records make the fixed evaluation batch: (target indices [n], source indices [n]) into `labels` (the
    identity labels of the pool, the first max(16 n, 512) records of the held-out shards in file order).

    Targets are drawn by numpy default_rng(seed); each source is another record of a different identity where the
    pool has one, and not yet used where possible.
    """
    rng = np.random.default_rng(seed)
    target_index = rng.choice(len(labels), size=n, replace=n > len(labels))
    used = set(target_index.tolist())
    source_index = []
    for index in target_index:
        order = rng.permutation(len(labels))
        candidates = [j for j in order if labels[j] != labels[index]] or order.tolist()
        fresh = [j for j in candidates if j not in used] or candidates
        source_index.append(int(fresh[0]))
        used.add(int(fresh[0]))
    return target_index, np.asarray(source_index, np.int64)


def eval_pool_size(n: int) -> int:
    """How many leading records of the held-out shards the evaluation batch draws from."""
    return max(16 * n, 512)
