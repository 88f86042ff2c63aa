"""Which target faces get swapped: --faces all|largest|N, and --reference-face with a similarity threshold.

Identity matching compares L2-normalised identity vectors (the same encoder the generator uses) by cosine
similarity; a face is swapped when its similarity to the reference face is at least the threshold.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from clipswap.face.detection import Detection, sort_by_area
from clipswap.face.similarity import cosine_similarity

#: Cosine similarity above which two faces are taken as the same person. OpenCV's SFace threshold is 0.363 and
#: ArcFace-R50 same-person pairs sit well above 0.35, so one default serves both encoders.
DEFAULT_SIMILARITY = 0.35


@dataclass(frozen=True)
class FaceSelection:
    """all: every detected face; largest: the biggest box; count N: the N biggest boxes."""

    mode: str = "all"
    count: int | None = None

    @classmethod
    def parse(cls, text: str) -> FaceSelection:
        """'all', 'largest' or a positive integer N."""
        value = str(text).strip().lower()
        if value in ("all", "largest"):
            return cls(value, None if value == "all" else 1)
        if value.isdigit() and int(value) > 0:
            return cls("count", int(value))
        raise ValueError(f"--faces must be 'all', 'largest' or a positive number of faces, got {text!r}")

    @staticmethod
    def check(text: str) -> str:
        """`text` unchanged when it is a valid --faces value; the ValueError of `parse` otherwise.

        The one --faces check of both command lines (click turns the ValueError into a usage error by itself,
        inference.py's argparse wrapper into ArgumentTypeError).
        """
        FaceSelection.parse(text)
        return text

    def apply(self, detections: list[Detection]) -> list[Detection]:
        """The selected faces, largest first."""
        ordered = sort_by_area(detections)
        return ordered if self.count is None else ordered[: self.count]


def matching_faces(vectors: np.ndarray, reference: np.ndarray, threshold: float) -> np.ndarray:
    """[N] bool: which faces' identity vectors match the reference at `threshold` or above."""
    if not -1.0 <= threshold <= 1.0:
        raise ValueError(f"--similarity must be a cosine similarity in [-1, 1], got {threshold}")
    if len(vectors) == 0:
        return np.zeros((0,), dtype=bool)
    return np.atleast_1d(cosine_similarity(vectors, np.asarray(reference).reshape(1, -1))) >= threshold
