"""The geometry network: 68 facial landmarks and the head pose of an aligned face crop, in one small CNN.

It is the attribute network A of eq. 9 when `loss.attribute_network = "landmarks"` (clipswap.losses.geometry): a
frozen, differentiable reader of pose and expression, which pixel and perceptual distances cannot tell apart from
texture (measured in docs/demo_model.md). clipswap trains it itself (`clipswap train-geometry`) on aligned crops
labelled with dlib's 68 points and the solvePnP pose of those points (clipswap.face.head_pose), so the loss reads
the same geometry the evaluation measures.

Graph (MobileNet-v1 style depthwise-separable blocks, PFLD's size class; 696,363 parameters at the default widths):

    images [B, S, S, 3] RGB in [-1, 1], any S -> bilinear resize to input_size (96)
    stem        3x3 conv stride 2, BN, ReLU                       48 x 48 x 16
    block_k     3x3 depthwise (stride 2 where the width grows), BN, ReLU; 1x1 conv, BN, ReLU
                widths (32, 64, 64, 128, 128, 256) with strides (2, 2, 1, 2, 1, 2)        3 x 3 x 256
    head        flatten (keeps where each feature sits) -> dense 256, ReLU -> dense 136 + 3

The heatmap head (`head="heatmap"`; 228,711 parameters at the default widths, whatever the input size) replaces
the dense head, which pulls each face's points toward the average shape (its spread, clipswap.training.geometry),
by one that reads each point off its own heatmap:

    decoder     from the deepest map (S/32), x2 steps back to S/4: each a bilinear upsampling, added to a 1x1
                projection of the backbone's last map at that stride (the skip), and a separable block (width 128)
    heatmaps    1x1 conv -> 68 maps at S/4 (24 x 24 at 96 px)
    landmarks   spatial soft-argmax: the expected (x, y) under each map's softmax (clipswap.layers.soft_argmax)
    pose        global average pool of the deepest map -> dense 128, ReLU -> dense 3

Outputs (a dict):
    "landmarks": [B, 68, 2] float32, (x, y) of dlib's 68 points in units of the crop's side (0 = left/top edge,
                 1 = right/bottom edge), whatever S is;
    "pose":      [B, 3] float32, (yaw, pitch, roll) in degrees, clipswap.face.head_pose's sign convention.

The layout rules (the heads, the default side, widths and strides, which sides the heatmap head takes) live in
clipswap.models.geometry_layout, which a configuration reads without starting TensorFlow.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import layers, ops

from clipswap.layers.soft_argmax import SpatialSoftArgmax
from clipswap.models.geometry_layout import (
    HEADS,
    HEATMAP_STRIDE,
    INPUT_SIZE,
    STRIDES,
    WIDTHS,
    check_layout,
    level_strides,
    total_stride,
)

#: dlib's 68 points.
POINTS = 68
#: Output scaling: the dense head predicts (landmark - 0.5) / LANDMARK_SCALE and pose / POSE_SCALE, values of order
#: one, which plain Adam learns at one learning rate.
LANDMARK_SCALE = 0.5
POSE_SCALE = 45.0
#: head_width when none is given: the dense head's hidden layer; the heatmap head's decoder and pose layer.
HEAD_WIDTHS = {"dense": 256, "heatmap": 128}

#: Index permutation of dlib's 68 points under a horizontal flip: point k of the flipped face is point FLIP[k] of
#: the original, mirrored (jaw 0..16 reversed; brows 17..21 <-> 26..22; nose bridge 27..30 kept; nostrils 31..35
#: reversed; eyes 36..41 <-> 45..42, 46, 47; outer lips 48..54 reversed, 55..59 reversed; inner lips 60..64
#: reversed, 65..67 reversed).
FLIP = (
    tuple(range(16, -1, -1))
    + tuple(range(26, 16, -1))
    + (27, 28, 29, 30)
    + tuple(range(35, 30, -1))
    + (45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40)
    + tuple(range(54, 47, -1))
    + tuple(range(59, 54, -1))
    + tuple(range(64, 59, -1))
    + (67, 66, 65)
)
#: Points that move little with expression (nose bridge and base, the eyes' corners): the similarity alignment of
#: the attribute term fits on these, so what remains is expression, not where the face sits.
RIGID = (27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 39, 42, 45)


def similarity_align(points, reference, indices: Sequence[int] = RIGID):
    """`points` moved by the 2-D similarity fitted (least squares) from their `indices` to `reference`'s.

    The closed form treats (x, y) as x + iy: a = sum(conj(p) q) / sum(|p|^2) over the centred points, and every
    point maps to (z - mean_p) a + mean_q.

    Args:
        points, reference: [B, 68, 2] (x, y).

    Returns:
        [B, 68, 2] float32, differentiable in both inputs.
    """
    points = ops.cast(points, "float32")
    reference = ops.cast(reference, "float32")
    chosen = list(indices)
    p = ops.take(points, chosen, axis=1)
    q = ops.take(reference, chosen, axis=1)
    p_mean = ops.mean(p, axis=1, keepdims=True)
    q_mean = ops.mean(q, axis=1, keepdims=True)
    p, q = p - p_mean, q - q_mean
    norm = ops.sum(ops.square(p), axis=(1, 2)) + 1e-12
    a_re = ops.sum(p[..., 0] * q[..., 0] + p[..., 1] * q[..., 1], axis=1) / norm
    a_im = ops.sum(p[..., 0] * q[..., 1] - p[..., 1] * q[..., 0], axis=1) / norm
    centred = points - p_mean
    x, y = centred[..., 0], centred[..., 1]
    a_re, a_im = a_re[:, None], a_im[:, None]
    return ops.stack([a_re * x - a_im * y, a_im * x + a_re * y], axis=-1) + q_mean


def separable_block(x, filters: int, stride: int, name: str):
    """3x3 depthwise (stride `stride`), BN, ReLU; 1x1 conv to `filters`, BN, ReLU: MobileNet-v1's block, its layers
    named f"{name}_dw", f"{name}_pw" and their BN and ReLU."""
    x = layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False, name=f"{name}_dw")(x)
    x = layers.BatchNormalization(name=f"{name}_dw_bn")(x)
    x = layers.ReLU(name=f"{name}_dw_relu")(x)
    x = layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_pw")(x)
    x = layers.BatchNormalization(name=f"{name}_pw_bn")(x)
    return layers.ReLU(name=f"{name}_pw_relu")(x)


def _dense_head(x, head_width: int):
    """landmarks [B, 68, 2], pose [B, 3] regressed from the flattened deepest map (module docstring)."""
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(head_width, activation="relu", name="head_hidden")(x)
    raw = layers.Dense(2 * POINTS + 3, name="head_out")(x)
    points = layers.Reshape((POINTS, 2), name="landmarks_raw")(raw[:, : 2 * POINTS])
    landmarks = layers.Rescaling(LANDMARK_SCALE, offset=0.5, name="landmarks")(points)
    pose = layers.Rescaling(POSE_SCALE, name="pose")(raw[:, 2 * POINTS:])
    return landmarks, pose


def _heatmap_head(levels: dict[int, object], width: int):
    """landmarks [B, 68, 2] by soft-argmax of 68 heatmaps at stride HEATMAP_STRIDE, pose [B, 3] from the globally
    pooled deepest map. `levels`: the backbone's last feature map at each stride, {stride: [B, S/stride, ...]}."""
    deepest = max(levels)
    h = layers.Conv2D(width, 1, name=f"heatmap_lateral{deepest}")(levels[deepest])
    stride = deepest
    while stride > HEATMAP_STRIDE:
        stride //= 2
        h = layers.UpSampling2D(2, interpolation="bilinear", name=f"heatmap_up{stride}")(h)
        skip = layers.Conv2D(width, 1, name=f"heatmap_lateral{stride}")(levels[stride])
        h = layers.Add(name=f"heatmap_merge{stride}")([h, skip])
        h = separable_block(h, width, 1, f"heatmap_block{stride}")
    heatmaps = layers.Conv2D(POINTS, 1, name="heatmap_logits")(h)
    landmarks = SpatialSoftArgmax(name="landmarks")(heatmaps)
    pooled = layers.GlobalAveragePooling2D(name="pose_pool")(levels[deepest])
    pooled = layers.Dense(width, activation="relu", name="pose_hidden")(pooled)
    raw = layers.Dense(3, name="pose_out")(pooled)
    return landmarks, layers.Rescaling(POSE_SCALE, name="pose")(raw)


class GeometryNet(keras.Model):
    """Landmarks and head pose of aligned faces (module docstring).

    Args:
        input_size: side the network reads; with head="heatmap", a multiple of the backbone's stride (total_stride).
        widths, strides: the separable blocks' output widths and depthwise strides (same length).
        stem_width: the stem convolution's width.
        head_width: the dense head's hidden layer width, or the heatmap head's decoder and pose layer width (default
            HEAD_WIDTHS[head]).
        head: "dense" or "heatmap" (module docstring); the outputs have the same format.

    Example:
        >>> net = GeometryNet(head="heatmap")
        >>> out = net(images)            # images [B, 128, 128, 3] in [-1, 1]
        >>> out["landmarks"].shape, out["pose"].shape
        ((B, 68, 2), (B, 3))
    """

    def __init__(self, input_size: int = INPUT_SIZE, widths: Sequence[int] = WIDTHS,
                 strides: Sequence[int] = STRIDES, stem_width: int = 16, head_width: int | None = None,
                 head: str = "dense", **kwargs):
        if len(widths) != len(strides):
            raise ValueError(f"widths and strides must have one entry a block, got {len(widths)} and {len(strides)}")
        check_layout(input_size, strides, head)
        head_width = HEAD_WIDTHS[head] if head_width is None else head_width
        images = keras.Input((None, None, 3), name="images")
        x = layers.Resizing(input_size, input_size, interpolation="bilinear", name="resize")(images)
        x = layers.Conv2D(stem_width, 3, strides=2, padding="same", use_bias=False, name="stem")(x)
        x = layers.BatchNormalization(name="stem_bn")(x)
        x = layers.ReLU(name="stem_relu")(x)
        levels = {2: x}
        for k, (width, step, level) in enumerate(zip(widths, strides, level_strides(strides), strict=True)):
            x = separable_block(x, width, step, f"block{k + 1}")
            levels[level] = x
        if head == "dense":
            landmarks, pose = _dense_head(x, head_width)
        else:
            landmarks, pose = _heatmap_head(levels, head_width)
        super().__init__(inputs=images, outputs={"landmarks": landmarks, "pose": pose}, **kwargs)
        self.input_size = int(input_size)
        self.widths = tuple(int(w) for w in widths)
        self.strides = tuple(int(s) for s in strides)
        self.stem_width = int(stem_width)
        self.head_width = int(head_width)
        self.head = head

    def get_config(self) -> dict:
        return {"input_size": self.input_size, "widths": list(self.widths), "strides": list(self.strides),
                "stem_width": self.stem_width, "head_width": self.head_width, "head": self.head, "name": self.name,
                "trainable": self.trainable}

    @classmethod
    def from_config(cls, config: dict) -> GeometryNet:
        return cls(**config)


def flip_landmarks(points, width: float = 1.0):
    """The 68 landmarks of the horizontally mirrored image: x -> width - x, then re-indexed by FLIP.

    Args:
        points: [..., 68, 2] (x, y), in pixels of an image `width` wide (or in units of the side with width 1).
    """
    points = ops.convert_to_tensor(points)
    mirrored = ops.stack([width - points[..., 0], points[..., 1]], axis=-1)
    return ops.take(mirrored, list(FLIP), axis=-2)


def pixels_to_unit(points, size: float):
    """Crop pixels (OpenCV's convention: pixel centres at integers) -> units of the side (0 and 1 the edges)."""
    return (ops.convert_to_tensor(points) + 0.5) / size


def unit_to_pixels(points, size: float):
    """The inverse of pixels_to_unit."""
    return ops.convert_to_tensor(points) * size - 0.5


def parameter_count(model: keras.Model) -> int:
    return int(sum(int(ops.size(w)) for w in model.weights if w.trainable))


__all__ = ["FLIP", "GeometryNet", "HEADS", "HEATMAP_STRIDE", "INPUT_SIZE", "POINTS", "RIGID", "flip_landmarks",
           "parameter_count", "pixels_to_unit", "separable_block", "similarity_align", "total_stride",
           "unit_to_pixels"]
