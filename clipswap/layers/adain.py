"""Adaptive instance normalisation driven by the mapped identity vector w."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="clipswap")
class AdaIN(keras.layers.Layer):
    """y = s(w) * x + b(w), with s and b two dense projections of w (FaceDancer's form: no "+1" on the scale).

    The input x is expected to be instance-normalised already (a separate InstanceNormalization with its own
    gamma/beta precedes this layer in the generator).

    Call: `layer([x, w])` with x [B, H, W, C] and w [B, D]; returns [B, H, W, C].
    Weight order: scale kernel [D, C], scale bias [C], bias kernel [D, C], bias bias [C].
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.scale_dense = None
        self.bias_dense = None

    def build(self, input_shape):
        x_shape, w_shape = input_shape
        channels = x_shape[-1]
        self.scale_dense = keras.layers.Dense(channels, name="scale", dtype=self.dtype_policy)
        self.bias_dense = keras.layers.Dense(channels, name="bias", dtype=self.dtype_policy)
        self.scale_dense.build(w_shape)
        self.bias_dense.build(w_shape)

    def call(self, inputs):
        x, w = inputs
        scale = self.scale_dense(w)[:, None, None, :]
        bias = self.bias_dense(w)[:, None, None, :]
        return ops.cast(scale, x.dtype) * x + ops.cast(bias, x.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape[0]
