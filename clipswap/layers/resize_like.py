"""Nearest-neighbour resize of one feature map to the spatial size of another (the FPN top-down path)."""

from __future__ import annotations

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="clipswap")
class ResizeNearestLike(keras.layers.Layer):
    """Resize `x` to the height and width of `reference` with nearest-neighbour sampling.

    Called on `[x, reference]`: x [B, h, w, C], reference [B, H, W, any] -> [B, H, W, C], same dtype as x.

    The sizes are read at run time because a detector accepts any input size, and a stride-32 map is not always half
    of the stride-16 map (ceil(H / 32) vs ceil(H / 16)). `keras.ops.image.resize` needs a static size, so this uses
    `tf.image.resize` (half-pixel centres), which is also what the published RetinaFace graph calls, so odd sizes
    sample the same source pixels.
    """

    def call(self, inputs):
        x, reference = inputs
        size = tf.shape(reference)[1:3]
        return tf.cast(tf.image.resize(x, size, method="nearest"), x.dtype)

    def compute_output_shape(self, input_shape):
        x_shape, reference_shape = input_shape
        return (x_shape[0], reference_shape[1], reference_shape[2], x_shape[3])
