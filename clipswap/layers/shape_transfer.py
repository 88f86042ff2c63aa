"""The keypoint flow's destination points with the source's face shape: the target's head pose and expression
points, the source's shape elsewhere (ModelConfig.keypoint_shape).

A swap that puts the source's features exactly on the target's 68 points gives the source's texture the target's
face shape (its outline, brows, nose and the size of its eyes and mouth), and much of what an identity network
reads is that shape (docs/demo_model.md). Shape-aware swappers carry the source's shape with the target's pose and
expression (HifiFace, Wang et al., IJCAI 2021, with 3-D face coefficients); this is the same idea on the 2-D
points the flow already has:

    D = T + share * M * P (align(S -> T) - T)

where T, S are the target's and source's points (crop-side units), align the 2-D similarity fitted on the rigid
points (clipswap.models.geometry.similarity_align: the face's position, size and roll are the target's), P the
projector that removes the directions in which 2-D points move with yaw and pitch (fitted on labelled faces by
clipswap.models.shape_directions; without it the source's head turn would come along), and M zero on the six points
of the pose fit (nose tip, chin, outer eye corners, mouth corners: clipswap.face.head_pose), which stay the target's.
The spline then maps D to S, so the source's features land where the source's shape puts them. The directions are
fitted in the mean shape's upright frame and applied in the target's: on aligned crops the two differ by little
rotation and the scale cancels in the projection.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from clipswap.face.head_pose import MODEL_LANDMARK_INDICES

#: Columns of the pose directions: yaw, pitch, yaw^2, pitch^2, yaw x pitch (clipswap.models.shape_directions).
POSE_DIRECTIONS = 5
#: The points that keep the target's place at every share: the six of the pose fit.
FIXED_POINTS = tuple(sorted(MODEL_LANDMARK_INDICES))


@keras.saving.register_keras_serializable(package="clipswap")
class ShapeTransfer(keras.layers.Layer):
    """[target_points, source_points] ([B, 68, 2] each, crop-side units) -> destination points [B, 68, 2] (module
    docstring). `share` in [0, 1]: 0 returns the target's points, 1 the source's whole pose-free shape.

    Its one weight, `pose_directions` [136, 5], holds orthonormal columns (the flattened (x, y) of the 68 points);
    it is not trained, and starts at zero (no direction removed) until clipswap.models.shape_directions fits it
    (tools/shape_transfer.py); `fitted` says whether it was. Differentiable in both point sets.
    """

    #: Its weight is fitted on labelled faces, never trained (test harnesses expect no trainable weight).
    constant_weights = True

    def __init__(self, share: float, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        share = float(share)
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"share must be in [0, 1], got {share}")
        self.share = share
        mask = np.full((1, 68, 1), share, np.float32)
        mask[0, list(FIXED_POINTS)] = 0.0
        self._mask = mask

    def build(self, input_shape):
        self.pose_directions = self.add_weight(name="pose_directions", shape=(136, POSE_DIRECTIONS),
                                               initializer="zeros", trainable=False, dtype="float32")
        super().build(input_shape)

    @property
    def fitted(self) -> bool:
        """Whether the pose directions were set (an unfitted layer would carry the source's head turn)."""
        return bool(np.any(keras.ops.convert_to_numpy(self.pose_directions)))

    def call(self, inputs):
        from clipswap.models.geometry import similarity_align

        target, source = (ops.cast(x, "float32") for x in inputs)
        difference = ops.reshape(similarity_align(source, target) - target, (-1, 136))
        directions = ops.cast(self.pose_directions, "float32")
        difference = difference - ops.matmul(ops.matmul(difference, directions), ops.transpose(directions))
        return target + ops.convert_to_tensor(self._mask) * ops.reshape(difference, (-1, 68, 2))

    def get_config(self):
        return {**super().get_config(), "share": self.share}

    def compute_output_shape(self, input_shape):
        return input_shape[0]


def shape_transfer_layer(generator) -> ShapeTransfer | None:
    """The generator's keypoint-flow shape transfer (its layer "<name>_flow_shape"), or None without one."""
    for layer in getattr(generator, "layers", ()):
        if isinstance(layer, ShapeTransfer):
            return layer
    return None


__all__ = ["FIXED_POINTS", "POSE_DIRECTIONS", "ShapeTransfer", "shape_transfer_layer"]
