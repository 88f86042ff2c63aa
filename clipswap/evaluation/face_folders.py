"""Folder-per-identity face collections (LFW layout: <root>/<Person>/<Person>_NNNN.jpg) turned into aligned crops."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from clipswap.face.align import align_face
from clipswap.face.detection import Detection
from clipswap.media.images import read_image
from clipswap.registry.detectors import Detector

logger = logging.getLogger(__name__)

_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")  # LFW-style folders; all readable by read_image


def list_identities(root: str | Path, min_photos: int = 1) -> dict[str, list[Path]]:
    """Identity (folder name) -> sorted photo paths, for folders with at least `min_photos` images, sorted by name."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"face folder root {root} does not exist")
    identities = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        photos = sorted(p for p in folder.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES)
        if len(photos) >= min_photos:
            identities[folder.name] = photos
    return identities


def central_detection(detections: list[Detection], image_shape: tuple[int, ...]) -> Detection | None:
    """The detection whose box centre is nearest the image centre (LFW photos are centred on the labelled face)."""
    if not detections:
        return None
    centre = np.array([image_shape[1], image_shape[0]], dtype=np.float64) / 2.0

    def distance(detection: Detection) -> float:
        box_centre = (detection.box[:2] + detection.box[2:]) / 2.0
        return float(np.linalg.norm(box_centre - centre))

    return min(detections, key=distance)


def aligned_crops(paths: list[Path], detector: Detector, size: int = 112) -> tuple[np.ndarray, list[int]]:
    """Detect the central face of each photo and align it to the ArcFace template.

    Args:
        paths: image files.
        detector: anything with `detect(rgb_uint8) -> list[Detection]` (e.g. YuNetDetector).
        size: crop side (112 for SFace/ArcFace).

    Returns:
        (crops [N, size, size, 3] uint8 RGB, indices into `paths` of the photos kept); photos with no face are
        skipped and logged.
    """
    crops, kept = [], []
    for index, path in enumerate(paths):
        image = read_image(path)
        detection = central_detection(detector.detect(image), image.shape)
        if detection is None:
            logger.warning("no face found in %s; skipped", path)
            continue
        crop, _ = align_face(image, detection.landmarks, size)
        crops.append(crop)
        kept.append(index)
    if not crops:
        return np.zeros((0, size, size, 3), np.uint8), kept
    return np.stack(crops), kept
