"""The detector-independent result type: one detected face in pixel coordinates of the original image."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from clipswap.errors import ClipswapError


class NoFaceError(ClipswapError, ValueError):
    """No face was detected where one is required (the source, or a target image)."""


@dataclass(frozen=True)
class Detection:
    """One face.

    Attributes:
        box: [4] float (x1, y1, x2, y2) pixels of the original image.
        score: face confidence in [0, 1].
        landmarks: [5, 2] float (x, y) pixels, ArcFace order (image-left eye, image-right eye, nose,
            left mouth corner, right mouth corner).
    """

    box: np.ndarray
    score: float
    landmarks: np.ndarray

    def __post_init__(self):
        box = np.asarray(self.box, dtype=np.float32).reshape(-1)
        landmarks = np.asarray(self.landmarks, dtype=np.float32)
        if box.shape != (4,):
            raise ValueError(f"box must have 4 values (x1, y1, x2, y2), got shape {box.shape}")
        if landmarks.shape != (5, 2):
            raise ValueError(f"landmarks must have shape (5, 2), got {landmarks.shape}")
        object.__setattr__(self, "box", box)
        object.__setattr__(self, "landmarks", landmarks)
        object.__setattr__(self, "score", float(self.score))

    @property
    def area(self) -> float:
        return float(max(0.0, self.box[2] - self.box[0]) * max(0.0, self.box[3] - self.box[1]))


def sort_by_area(detections: list[Detection]) -> list[Detection]:
    """Largest face first."""
    return sorted(detections, key=lambda d: d.area, reverse=True)
