"""Head pose (yaw, pitch, roll in degrees) from 68 landmarks: the evaluation's pose metric (clipswap.evaluation.pose)
and the geometry network's pose labels (clipswap.training.geometry) use this one fit.

The pose is the rotation that best maps a generic 3D face onto six of dlib's landmarks (cv2.solvePnP, iterative
Levenberg-Marquardt from a frontal initial guess), seen by a pinhole camera with focal length = image width in
pixels (unless given), principal point = image centre and no lens distortion.

Generic 3D face model (fact, not code): the six-point average head popularised by S. Mallick, "Head Pose Estimation
using OpenCV and Dlib" (LearnOpenCV, 2016). There it is written with X to the face's left in the image, Y up and
Z toward the viewer, nose tip at the origin: nose tip (0, 0, 0), chin (0, -330, -65), image-left eye outer corner
(-225, 170, -135), image-right eye outer corner (225, 170, -135), image-left mouth corner (-150, -150, -125),
image-right mouth corner (150, -150, -125) (arbitrary units, about 0.1 mm). MODEL_POINTS below holds the same head
in OpenCV's camera axes (X right, Y down, Z away from the camera), i.e. with Y and Z negated, so that a face
looking straight into the camera has the identity rotation. dlib indices used: 30, 8, 36, 45, 48, 54.

Angles: the rotation R (model -> camera) is decomposed as R = Rz(roll) @ Ry(yaw) @ Rx(pitch), each a right-handed
rotation about the camera axis. Sign convention, in the image as you look at it:
* yaw > 0: the face turns toward the image's left (the nose points left; the person turns to their right);
* pitch > 0: the face tilts down (the nose points down);
* roll > 0: the face rotates clockwise in the image (its image-right side goes down).
A horizontal mirror therefore negates yaw and roll and keeps pitch.

The paper (its evaluation protocol) estimates pose with a Hopenet-style network; this geometric fit is a documented
substitute, so absolute numbers are comparable between our runs, not to the paper's.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from clipswap.face.landmarks68 import CHIN, MOUTH_LEFT, MOUTH_RIGHT, NOSE_TIP

#: dlib 68-point indices matched to MODEL_POINTS, row for row.
MODEL_LANDMARK_INDICES = (NOSE_TIP, CHIN, 36, 45, MOUTH_LEFT, MOUTH_RIGHT)

#: [6, 3] float64 generic head in OpenCV camera axes (X right, Y down, Z away from the camera); see module docstring.
MODEL_POINTS = np.array(
    [
        [0.0, 0.0, 0.0],  # nose tip
        [0.0, 330.0, 65.0],  # chin
        [-225.0, -170.0, 135.0],  # image-left eye outer corner
        [225.0, -170.0, 135.0],  # image-right eye outer corner
        [-150.0, 150.0, 125.0],  # image-left mouth corner
        [150.0, 150.0, 125.0],  # image-right mouth corner
    ],
    dtype=np.float64,
)

_MODEL_EYE_SPAN = float(np.linalg.norm(MODEL_POINTS[3] - MODEL_POINTS[2]))


@dataclass(frozen=True)
class HeadPose:
    """Head rotation in degrees (sign convention in the module docstring)."""

    yaw: float
    pitch: float
    roll: float

    def as_array(self) -> np.ndarray:
        return np.array([self.yaw, self.pitch, self.roll], dtype=np.float64)


def camera_matrix(width: int, height: int, focal: float | None = None) -> np.ndarray:
    """[3, 3] pinhole intrinsics: focal length `focal` pixels (None: the image width), principal point = image
    centre."""
    focal = float(width if focal is None else focal)
    return np.array([[focal, 0.0, width / 2.0], [0.0, focal, height / 2.0], [0.0, 0.0, 1.0]], dtype=np.float64)


def rotation_to_euler(rotation: np.ndarray) -> HeadPose:
    """Decompose R = Rz(roll) @ Ry(yaw) @ Rx(pitch) ([3, 3]) into degrees; yaw in [-90, 90]."""
    r = np.asarray(rotation, dtype=np.float64)
    yaw = np.arcsin(np.clip(-r[2, 0], -1.0, 1.0))
    pitch = np.arctan2(r[2, 1], r[2, 2])
    roll = np.arctan2(r[1, 0], r[0, 0])
    return HeadPose(*(float(np.degrees(v)) for v in (yaw, pitch, roll)))


def estimate_head_pose(landmarks68: np.ndarray, image_size: tuple[int, int], focal: float | None = None) -> HeadPose:
    """Head pose of one face.

    Args:
        landmarks68: [68, 2] (x, y) pixels, dlib layout.
        image_size: (width, height) of the image the landmarks were found in.
        focal: the camera's focal length in pixels; None: the image width (the evaluation's camera). Six points
            fix the rotation only loosely, so the fit depends on it: the same landmarks in an aligned crop read
            with focal = crop width and with the photo's camera differ by 9 degrees of yaw on average
            (clipswap.training.geometry.POSE_FOCAL).

    Raises:
        ValueError: wrong landmark shape, a focal length that is not positive, or solvePnP found no solution.
    """
    points = np.asarray(landmarks68, dtype=np.float64)
    if points.shape != (68, 2):
        raise ValueError(f"expected 68 (x, y) landmarks of shape (68, 2), got {points.shape}")
    width, height = image_size
    if focal is not None and not 0 < focal < np.inf:
        raise ValueError(f"focal must be a positive number of pixels, got {focal}")
    focal = float(width if focal is None else focal)
    intrinsics = camera_matrix(width, height, focal)
    image_points = points[list(MODEL_LANDMARK_INDICES)]
    # Frontal initial guess at the distance where the model's eye span matches the image's: without it the
    # iterative solver can settle on the mirror solution facing away from the camera.
    eye_span = max(float(np.linalg.norm(image_points[3] - image_points[2])), 1.0)
    depth = focal * _MODEL_EYE_SPAN / eye_span
    nose = image_points[0]
    translation = np.array(
        [[(nose[0] - width / 2.0) * depth / focal], [(nose[1] - height / 2.0) * depth / focal], [depth]]
    )
    rotation_vector = np.zeros((3, 1))
    found, rotation_vector, translation = cv2.solvePnP(
        MODEL_POINTS,
        image_points,
        intrinsics,
        None,
        rotation_vector,
        translation,
        useExtrinsicGuess=True,
        flags=cv2.SOLVEPNP_ITERATIVE,
    )
    if not found:
        raise ValueError("cv2.solvePnP found no head pose for these landmarks")
    rotation, _ = cv2.Rodrigues(rotation_vector)
    return rotation_to_euler(rotation)
