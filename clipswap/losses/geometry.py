"""The geometry attribute term: eq. 9 with A = the geometry network (68 landmarks and head pose).

L_att = || lm~(X_swap) - lm(X_tgt) ||^2 / (0.1 d_io)^2 + w_pose || pose(X_swap) - pose(X_tgt) ||^2 / (10 deg)^2,

each squared difference averaged over its elements (attribute_loss's convention) and over the batch, where lm~ is
the swap's landmarks after the 2-D similarity (rotation, scale, shift) that best maps its rigid points
(models.geometry.RIGID: nose and eye corners) onto the target's, so that the landmark part compares expression and
not where the face sits, and d_io is the target's inter-ocular distance (outer eye corners). The units make a
landmark off by a tenth of the eye distance, or an angle off by 10 degrees, cost one: a source's expression carried
over (about 10 px in a 128 crop, measured in docs/demo_model.md) costs several, the target itself zero. w_pose
(LossOptions.geometry_pose_weight, default 1) weighs the head pose against the landmarks.

The network is frozen, but the swap's side stays on the gradient tape: the term's gradient reaches G through it
(tests/losses/test_geometry.py checks that it does); only the target's side is a constant.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import keras
from keras import ops

from clipswap.face.head_pose import MODEL_LANDMARK_INDICES
from clipswap.losses.attribute import attribute_loss
from clipswap.models.geometry import similarity_align

#: The target's inter-ocular distance's share that counts as one unit of landmark error.
LANDMARK_UNIT = 0.1
#: Degrees of pose error that count as one unit.
POSE_UNIT = 10.0
EYE_CORNERS = (36, 45)
#: The points of the "pose_expression" attribute row: the eyes (36-47) and the mouth (48-67), which open, close and
#: stretch with expression. The jaw line, brows and nose are left out: their shape is much of what tells one person
#: from another, so holding them to the target's holds the swap to the target's identity.
EXPRESSION_POINTS = tuple(range(36, 68))
#: The points of the "pose" attribute row: the six of the generic-head pose fit (nose tip, chin, outer eye corners,
#: mouth corners; clipswap.face.head_pose), which place the head. Every other point, and so the shape of the face,
#: its features and the expression, is left to the identity loss and the other terms.
POSE_POINTS = tuple(sorted(MODEL_LANDMARK_INDICES))


def geometry_attribute_loss(target_features: Sequence, swap_features: Sequence, points: Sequence[int] | None = None,
                            pose_weight: float = 1.0):
    """The term of the module docstring.

    Args:
        target_features: [landmarks [B, 68, 2] in units of the side, pose [B, 3] degrees] of the targets (constants).
        swap_features: the same of the swaps (the gradient flows through these).
        points: the landmarks compared after the alignment (default all 68; EXPRESSION_POINTS for the
            "pose_expression" row, POSE_POINTS for "pose"). The alignment always uses the rigid points.
        pose_weight: w_pose, >= 0.

    Returns:
        Scalar float32 >= 0.
    """
    if pose_weight < 0:
        raise ValueError(f"pose_weight must be >= 0, got {pose_weight}")
    target_points, target_pose = (ops.cast(x, "float32") for x in target_features)
    swap_points, swap_pose = (ops.cast(x, "float32") for x in swap_features)
    eyes = target_points[:, EYE_CORNERS[0]] - target_points[:, EYE_CORNERS[1]]
    unit = LANDMARK_UNIT * ops.sqrt(ops.sum(ops.square(eyes), axis=-1) + 1e-12)[:, None, None]
    aligned = similarity_align(swap_points, target_points)
    if points is not None:
        chosen = list(points)
        target_points, aligned = ops.take(target_points, chosen, axis=1), ops.take(aligned, chosen, axis=1)
    # The difference is squared, so w_pose scales both sides by its square root.
    pose_scale = float(pose_weight) ** 0.5 / POSE_UNIT
    return attribute_loss([target_points / unit, target_pose * pose_scale],
                          [aligned / unit, swap_pose * pose_scale])


def geometry_features(model: keras.Model) -> Callable:
    """The extractor of a FeatureSource over the geometry network: images [B, S, S, 3] in [-1, 1] -> [landmarks,
    pose] float32 (GeometryNet's outputs), the network in inference mode."""

    def extract(images):
        outputs = model(images, training=False)
        return [ops.cast(outputs["landmarks"], "float32"), ops.cast(outputs["pose"], "float32")]

    return extract


__all__ = ["EXPRESSION_POINTS", "LANDMARK_UNIT", "POSE_POINTS", "POSE_UNIT", "geometry_attribute_loss",
           "geometry_features", "similarity_align"]
