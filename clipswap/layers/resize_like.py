"""Nearest-neighbour resize of one feature map to the spatial size of another (the FPN top-down path)."""

from __future__ import annotations

import keras
from keras import ops


def nearest_source_indices(in_size, out_size):
    """[out_size] int32 source index of each output row (or column) of a nearest-neighbour resize with half-pixel
    centres: min(floor((i + 0.5) * in_size / out_size), in_size - 1), the scale and the product in float32, which is
    how TensorFlow's ResizeNearestNeighbor (tf.image.resize "nearest") picks them. Sizes may be run-time scalars."""
    scale = ops.cast(in_size, "float32") / ops.cast(out_size, "float32")
    centres = (ops.cast(ops.arange(out_size), "float32") + 0.5) * scale
    return ops.minimum(ops.cast(ops.floor(centres), "int32"), ops.cast(in_size, "int32") - 1)


@keras.saving.register_keras_serializable(package="clipswap")
class ResizeNearestLike(keras.layers.Layer):
    """Resize `x` to the height and width of `reference` with nearest-neighbour sampling.

    Called on `[x, reference]`: x [B, h, w, C], reference [B, H, W, any] -> [B, H, W, C], same dtype as x.

    The sizes are read at run time because a detector accepts any input size, and a stride-32 map is not always half
    of the stride-16 map (ceil(H / 32) vs ceil(H / 16)). `keras.ops.image.resize` needs a static size, so the rows
    and columns are gathered (nearest_source_indices): the source pixels of `tf.image.resize` (half-pixel centres),
    which is what the published RetinaFace graph calls, so odd sizes sample the same pixels on every backend.
    """

    def call(self, inputs):
        x, reference = inputs
        x_shape, reference_shape = ops.shape(x), ops.shape(reference)
        rows = nearest_source_indices(x_shape[1], reference_shape[1])
        columns = nearest_source_indices(x_shape[2], reference_shape[2])
        return ops.take(ops.take(x, rows, axis=1), columns, axis=2)

    def compute_output_shape(self, input_shape):
        x_shape, reference_shape = input_shape
        return (x_shape[0], reference_shape[1], reference_shape[2], x_shape[3])
