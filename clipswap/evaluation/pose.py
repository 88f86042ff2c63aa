"""The pose error between target and swap (the paper's pose metric), from the head pose fit of
clipswap.face.head_pose (solvePnP of a generic head on six of dlib's 68 landmarks; its docstring gives the model and
the sign convention)."""

from __future__ import annotations

import numpy as np

from clipswap.face.head_pose import (
    MODEL_LANDMARK_INDICES,
    MODEL_POINTS,
    HeadPose,
    camera_matrix,
    estimate_head_pose,
    rotation_to_euler,
)

__all__ = ["MODEL_LANDMARK_INDICES", "MODEL_POINTS", "HeadPose", "camera_matrix", "estimate_head_pose", "pose_error",
           "rotation_to_euler"]


def pose_error(target: HeadPose, swap: HeadPose) -> float:
    """L2 distance in degrees between (yaw, pitch, roll) of target and swap."""
    return float(np.linalg.norm(target.as_array() - swap.as_array()))
