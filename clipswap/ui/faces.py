"""The faces a user chooses from: every usable face of a photo or of one video frame, numbered from the left as
`--source-face` counts them, with a crop to show and a crop file that the CLI's `--map` can read."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clipswap.inference.swapper import source_faces
from clipswap.media.common import MediaError, media_kind
from clipswap.media.images import read_image
from clipswap.registry.detectors import Detector

#: How far a face's crop reaches beyond its box, in box sides on each side: enough context for the detector to find
#: the face again in the crop (the --map reference and source images are detected anew).
CROP_MARGIN = 0.5


@dataclass(frozen=True)
class FoundFace:
    """One face: its number from the left (1 = leftmost), box (x1, y1, x2, y2) pixels, detector score, and its crop
    [h, w, 3] uint8 RGB with CROP_MARGIN around the box."""

    number: int
    box: tuple[int, int, int, int]
    score: float
    crop: np.ndarray


def frame_at(path: str | Path, seconds: float = 0.0) -> np.ndarray:
    """The frame of a photo ([H, W, 3] uint8 RGB), or of a video the frame shown at `seconds` (the last frame when
    the video is shorter). Raises MediaError as the CLI's readers do."""
    if media_kind(path) == "image":
        return read_image(path)
    from clipswap.media.video import VideoReader

    with VideoReader(path) as reader:
        wanted = max(0, int(round(float(seconds) * reader.info.fps)))
        frame = None
        for index, decoded in enumerate(reader):
            frame = decoded
            if index >= wanted:
                break
    if frame is None:
        raise MediaError(f"{path} has no video frames")
    return frame


def find_faces(detector: Detector, image: np.ndarray) -> list[FoundFace]:
    """Every face of `image` large enough to carry an identity, numbered from the left (source_faces)."""
    height, width = image.shape[:2]
    found = []
    for number, face in enumerate(source_faces(detector.detect(image)), start=1):
        x1, y1, x2, y2 = (float(v) for v in face.box)
        margin = CROP_MARGIN * max(x2 - x1, y2 - y1)
        left, top = max(0, int(x1 - margin)), max(0, int(y1 - margin))
        right, bottom = min(width, int(np.ceil(x2 + margin))), min(height, int(np.ceil(y2 + margin)))
        found.append(FoundFace(number, (int(x1), int(y1), int(x2), int(y2)), float(face.score),
                               image[top:bottom, left:right].copy()))
    return found
