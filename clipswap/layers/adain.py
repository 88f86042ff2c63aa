"""Adaptive instance normalisation driven by the mapped identity vector w."""

from __future__ import annotations

import keras
from keras import ops

from clipswap.layers.instance_norm import plain_instance_norm, use_fused


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


@keras.saving.register_keras_serializable(package="clipswap")
class NormalisedAdaIN(keras.layers.Layer):
    """InstanceNormalization followed by AdaIN as one layer, for mixed-precision inference:
    y = s(w) * (gamma * (x - mean) / sqrt(var + eps) + beta) + b(w), which TensorFlow's fused batch-norm kernel
    computes in one pass with per-sample scale s * gamma and offset s * beta + b (clipswap.layers.tf_only). Training,
    float32 and other backends run the two layers' own maths.

    Weights, in the order of the two layers it replaces: gamma [C], beta [C], then AdaIN's scale kernel [D, C],
    scale bias [C], bias kernel [D, C], bias bias [C] (Generator(fused_norm=True) copies them by layer name).
    Call: `layer([x, w])` with x [B, H, W, C] and w [B, D]; returns [B, H, W, C].
    """

    def __init__(self, epsilon: float = 1e-3, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)
        self.scale_dense = None
        self.bias_dense = None

    def build(self, input_shape):
        x_shape, w_shape = input_shape
        channels = x_shape[-1]
        self.gamma = self.add_weight(shape=(channels,), initializer="ones", name="gamma")
        self.beta = self.add_weight(shape=(channels,), initializer="zeros", name="beta")
        self.scale_dense = keras.layers.Dense(channels, name="scale", dtype=self.dtype_policy)
        self.bias_dense = keras.layers.Dense(channels, name="bias", dtype=self.dtype_policy)
        self.scale_dense.build(w_shape)
        self.bias_dense.build(w_shape)

    def call(self, inputs, training=None):
        x, w = inputs
        scale = ops.cast(self.scale_dense(w), "float32")
        bias = ops.cast(self.bias_dense(w), "float32")
        gamma, beta = ops.cast(self.gamma, "float32"), ops.cast(self.beta, "float32")
        if use_fused(self, training):
            from clipswap.layers.tf_only import fused_instance_norm  # TensorFlow only, behind use_fused

            return fused_instance_norm(ops.cast(x, self.compute_dtype), scale * gamma, scale * beta + bias,
                                       self.epsilon)
        normalised = plain_instance_norm(x, gamma, beta, self.epsilon, self.compute_dtype)
        return ops.cast(scale[:, None, None, :], self.compute_dtype) * normalised + \
            ops.cast(bias[:, None, None, :], self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}
