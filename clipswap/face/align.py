"""Similarity alignment of faces to the ArcFace template, and its inverse (pasting back: inference/blend.py)."""

from __future__ import annotations

import cv2
import numpy as np
from skimage.transform import SimilarityTransform

from clipswap.face.templates import arcface_template


def _check_landmarks(landmarks: np.ndarray) -> np.ndarray:
    points = np.asarray(landmarks, dtype=np.float64)
    if points.shape != (5, 2):
        raise ValueError(f"expected 5 (x, y) landmarks of shape (5, 2), got shape {points.shape}")
    if not np.all(np.isfinite(points)):
        raise ValueError("landmarks contain NaN or infinite values")
    return points


def estimate_alignment(landmarks: np.ndarray, size: int, shrink: float = 1.0) -> np.ndarray:
    """Least-squares similarity transform from image landmarks to the template at `size`.

    Args:
        landmarks: [5, 2] (x, y) pixels in the image, ArcFace order.
        size: side of the aligned crop (112 for ArcFace, 256 for the generator).

    Returns:
        [2, 3] float64 affine matrix mapping image pixels to crop pixels.
    """
    points = _check_landmarks(landmarks)
    transform = SimilarityTransform.from_estimate(points, arcface_template(size, shrink))
    if not transform:
        raise ValueError(f"could not fit a similarity transform to landmarks {points.tolist()}")
    return np.asarray(transform.params[:2], dtype=np.float64)


def transform_points(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map [N, 2] (x, y) points through a [2, 3] affine matrix (e.g. image landmarks into the aligned crop)."""
    matrix = np.asarray(matrix, dtype=np.float64)
    return np.asarray(points, dtype=np.float64) @ matrix[:, :2].T + matrix[:, 2]


def head_turn(landmarks: np.ndarray) -> float:
    """Signed left-right turn of a face from its 5 landmarks (ArcFace order, pixels of any image): the nose tip's
    offset from the eyes' midpoint along the line through the eyes, in eye distances. About 0 for a frontal face,
    growing with yaw, and of the opposite sign in the mirror image; a cheap stand-in for yaw that needs no 68-point
    landmarker (FaceSwapper's mirror_source compares a source's with each target's)."""
    points = _check_landmarks(landmarks)
    eyes = points[1] - points[0]
    distance = float(np.hypot(*eyes))
    if distance == 0.0:
        return 0.0
    return float(np.dot(points[2] - (points[0] + points[1]) / 2.0, eyes) / distance ** 2)


def warp_face(image: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """Warp `image` ([H, W, C], any dtype) with `matrix` into a [size, size, C] crop (bilinear, border 0)."""
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderValue=0.0)


def align_face(
    image: np.ndarray, landmarks: np.ndarray, size: int, shrink: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Align one face: returns (crop [size, size, C] same dtype as image, [2, 3] image->crop matrix)."""
    matrix = estimate_alignment(landmarks, size, shrink)
    return warp_face(image, matrix, size), matrix


def invert_affine(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a [2, 3] affine matrix (crop -> image)."""
    return cv2.invertAffineTransform(np.asarray(matrix, dtype=np.float64))

