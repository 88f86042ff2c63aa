"""Expression error: mean L2 distance between the 68 landmarks of target and swap, in aligned-crop pixels.

Both landmark sets are mapped through the TARGET's alignment (the ArcFace 5-point template scaled to 256, fitted
to the 5 points derived from the target's 68 landmarks), so they share one coordinate frame and a head that moves
between target and swap counts as error. The paper measures expression with dlib landmarks as well (its Tables I-III);
its crop size is not stated, our unit is pixels of the 256 crop.
"""

from __future__ import annotations

import numpy as np

from clipswap.face.align import estimate_alignment, transform_points
from clipswap.face.landmarks68 import five_from_68

CROP_SIZE = 256


def target_alignment(target_landmarks68: np.ndarray, size: int = CROP_SIZE) -> np.ndarray:
    """[2, 3] image -> crop matrix of the target (ArcFace template at `size`, from 5 points of the 68)."""
    return estimate_alignment(five_from_68(target_landmarks68), size)


def expression_error(target_landmarks68: np.ndarray, swap_landmarks68: np.ndarray, size: int = CROP_SIZE) -> float:
    """Mean over the 68 points of the L2 distance between target and swap landmarks, in pixels of the aligned
    `size` crop of the target. Inputs are [68, 2] (x, y) pixels of target and swap images (same size)."""
    target = np.asarray(target_landmarks68, dtype=np.float64)
    swap = np.asarray(swap_landmarks68, dtype=np.float64)
    if target.shape != (68, 2) or swap.shape != (68, 2):
        raise ValueError(f"expected two [68, 2] landmark sets, got {target.shape} and {swap.shape}")
    matrix = target_alignment(target, size)
    return float(np.linalg.norm(transform_points(matrix, target) - transform_points(matrix, swap), axis=1).mean())
