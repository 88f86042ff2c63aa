"""The directions in which a face's 68 points move with head pose, fitted on labelled faces: what the keypoint
flow's shape transfer (clipswap.layers.shape_transfer) removes from the source's shape so that its head turn does
not come along.

Each face's points are mapped by the 2-D similarity fitted on the rigid points
(clipswap.models.geometry.similarity_align) onto the mean shape (three rounds of the mean of the aligned faces), and
their offsets from the mean are regressed by least squares on (yaw, pitch, yaw^2 / 30, pitch^2 / 30,
yaw x pitch / 30) and a constant, angles in degrees from the pose fit of clipswap.face.head_pose. The five
coefficient columns, orthonormalised, span the pose directions.
Roll is left out: the similarity already removes it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from clipswap.errors import ClipswapError
from clipswap.models.geometry import similarity_align

#: Faces whose fitted yaw or pitch is beyond this many degrees are left out (solvePnP flips on a few).
POSE_LIMIT = 60.0
#: Scale of the quadratic features, degrees (keeps the regression's columns of similar size).
QUADRATIC_SCALE = 30.0


class ShapeDirectionsError(ClipswapError, ValueError):
    """The faces given cannot fit the directions (too few, or a pairs folder without landmarks)."""


def pose_features(poses: np.ndarray) -> np.ndarray:
    """[N, 3] (yaw, pitch, roll) degrees -> [N, 5] regressors (module docstring)."""
    yaw, pitch = poses[:, 0], poses[:, 1]
    return np.stack([yaw, pitch, yaw ** 2 / QUADRATIC_SCALE, pitch ** 2 / QUADRATIC_SCALE,
                     yaw * pitch / QUADRATIC_SCALE], axis=-1)


def fit_pose_directions(points: np.ndarray, poses: np.ndarray) -> np.ndarray:
    """Orthonormal pose directions [136, 5] float32 (flattened (x, y) of the 68 points).

    Args:
        points: [N, 68, 2] landmarks of aligned crops, in any one unit (crop-side units for the keypoint flow).
        poses: [N, 3] (yaw, pitch, roll) degrees of the same faces.

    Raises:
        ShapeDirectionsError: fewer than 50 usable faces.
    """
    points = np.asarray(points, np.float64)
    poses = np.asarray(poses, np.float64)
    usable = np.isfinite(points).all(axis=(1, 2)) & np.isfinite(poses).all(axis=1)
    usable &= (np.abs(poses[:, :2]) < POSE_LIMIT).all(axis=1)
    points, poses = points[usable], poses[usable]
    if len(points) < 50:
        raise ShapeDirectionsError(f"the pose directions need at least 50 labelled faces, got {len(points)}")
    mean = points.mean(axis=0)
    for _ in range(3):
        aligned = np.asarray(similarity_align(points, np.broadcast_to(mean, points.shape)), np.float64)
        mean = aligned.mean(axis=0)
    offsets = (aligned - mean).reshape(len(points), 136)
    design = np.concatenate([pose_features(poses), np.ones((len(poses), 1))], axis=1)
    coefficients, *_ = np.linalg.lstsq(design, offsets, rcond=None)
    directions, _ = np.linalg.qr(coefficients[:5].T)
    return directions.astype(np.float32)


def pose_directions_from_pairs(folder: str | Path) -> np.ndarray:
    """fit_pose_directions on a `clipswap pairs` folder's training faces (its face_landmarks.npz; held-out people
    left out), points in crop-side units, poses from clipswap.face.head_pose.

    Raises:
        ShapeDirectionsError: the folder has no readable landmarks file or crop size, or too few faces.
    """
    from clipswap.face.head_pose import estimate_head_pose
    from clipswap.facedata.pairs import FACE_LANDMARKS, read_manifest

    folder = Path(folder)
    path = folder / FACE_LANDMARKS
    size = read_manifest(folder).get("size")
    if not path.is_file() or not isinstance(size, int) or size < 1:
        raise ShapeDirectionsError(f"{folder} is not a `clipswap pairs` folder with its faces' landmarks "
                                   f"({FACE_LANDMARKS} and the manifest's crop size); make it again with "
                                   "`clipswap pairs`, which labels every face with dlib's 68 points")
    try:
        with np.load(path, allow_pickle=False) as data:
            points = data["points"][~data["heldout"]].astype(np.float64)
    except (OSError, KeyError, ValueError, IndexError) as error:
        raise ShapeDirectionsError(f"{path} is not a readable landmarks file ({error}); make the pairs again with "
                                   "`clipswap pairs`") from error
    if points.ndim != 3 or points.shape[1:] != (68, 2):
        raise ShapeDirectionsError(f"{path} holds points of shape {points.shape[1:]}, not 68 (x, y) points a face")
    points = points[np.isfinite(points).all(axis=(1, 2))]
    poses = np.full((len(points), 3), np.nan)
    for i, face in enumerate(points):
        try:
            pose = estimate_head_pose(face, (size, size))
        except ValueError:
            continue
        poses[i] = (pose.yaw, pose.pitch, pose.roll)
    return fit_pose_directions(points / size, poses)


__all__ = ["ShapeDirectionsError", "fit_pose_directions", "pose_directions_from_pairs", "pose_features"]
