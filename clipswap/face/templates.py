"""The one home of the 5-point landmark templates (ArcFace's 112 x 112 alignment template, which the release aligns to).

Point order everywhere in clipswap (ArcFace order): image-left eye, image-right eye, nose tip, left mouth
corner, right mouth corner. Coordinates are (x, y) pixels.
"""

from __future__ import annotations

import numpy as np

#: ArcFace template at 112x112, (x, y) pixels.
ARCFACE_112 = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float64,
)

ARCFACE_SIZE = 112


def arcface_template(size: int = ARCFACE_SIZE, shrink: float = 1.0) -> np.ndarray:
    """The ArcFace template for a square crop of `size` pixels.

    Args:
        size: crop side in pixels; the 112 template is scaled by size/112 (256 gives the generator crop).
        shrink: moves the points toward the crop centre, template*s + 56*(1-s), before scaling (1.0: none).

    Returns:
        [5, 2] float64 (x, y) pixel coordinates.
    """
    if size <= 0:
        raise ValueError(f"template size must be positive, got {size}")
    centre = ARCFACE_SIZE / 2.0
    points = ARCFACE_112 * shrink + centre * (1.0 - shrink)
    return points * (size / ARCFACE_SIZE)
