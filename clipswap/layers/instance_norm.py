"""Instance normalisation, a stand-in for tensorflow-addons' InstanceNormalization (tfa is dead under Keras 3)."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="clipswap")
class InstanceNormalization(keras.layers.Layer):
    """Per-sample, per-channel normalisation over the spatial axes, with learnable per-channel gamma and beta.

    Matches tfa.layers.InstanceNormalization(epsilon=1e-3) as FaceDancer used it: mean and variance over (H, W)
    for each sample and channel, y = gamma * (x - mean) / sqrt(var + epsilon) + beta. Weight order: gamma, beta
    (tfa's order, which the published .h5 files store).

    Input and output: [B, H, W, C], channels last, any float dtype (statistics are computed in float32).
    """

    def __init__(self, epsilon: float = 1e-3, center: bool = True, scale: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)
        self.center = bool(center)
        self.scale = bool(scale)

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is None:
            raise ValueError("InstanceNormalization needs a known channel count")
        self.gamma = self.add_weight(shape=(channels,), initializer="ones", name="gamma") if self.scale else None
        self.beta = self.add_weight(shape=(channels,), initializer="zeros", name="beta") if self.center else None

    def call(self, inputs, training=None):
        if not training and self.compute_dtype != "float32" and keras.backend.backend() == "tensorflow":
            return self._fused(inputs)
        x = ops.cast(inputs, "float32")
        mean, variance = ops.moments(x, axes=[1, 2], keepdims=True)
        y = (x - mean) * ops.rsqrt(variance + self.epsilon)
        if self.gamma is not None:
            y = y * ops.cast(self.gamma, "float32")
        if self.beta is not None:
            y = y + ops.cast(self.beta, "float32")
        return ops.cast(y, self.compute_dtype)

    def _fused(self, inputs):
        """The same normalisation through TensorFlow's fused batch-norm kernel in training mode (statistics over
        N, H, W in float32, one pass, output in the input's dtype): each sample's channels become channels of one
        sample ([B, H, W, C] -> [1, H, W, B*C]), so batch statistics are instance statistics.

        Used for mixed-precision inference only: training keeps the plain ops above (their gradient), and float32
        models keep them too, which is what every export traces (LiteRT gave wrong outputs from the second call on
        with this op, and the float32 gain is small). On the release generator in bf16 the plain ops were 34 % of
        the forward pass (benchmarks/generator_profile.py); the fused kernel is 2-4x faster and rounds once."""
        import tensorflow as tf  # noqa: PLC0415 -- only on the TensorFlow backend

        x = tf.cast(inputs, self.compute_dtype)
        shape = tf.shape(x)
        batch, height, width, channels = shape[0], shape[1], shape[2], shape[3]
        gamma = tf.cast(self.gamma, tf.float32) if self.gamma is not None else tf.ones([channels], tf.float32)
        beta = tf.cast(self.beta, tf.float32) if self.beta is not None else tf.zeros([channels], tf.float32)
        stacked = tf.reshape(tf.transpose(x, [1, 2, 0, 3]), [1, height, width, batch * channels])
        empty = tf.zeros([0], tf.float32)
        y = tf.raw_ops.FusedBatchNormV3(x=stacked, scale=tf.tile(gamma, [batch]), offset=tf.tile(beta, [batch]),
                                        mean=empty, variance=empty, epsilon=self.epsilon, is_training=True)[0]
        y = tf.transpose(tf.reshape(y, [height, width, batch, channels]), [2, 0, 1, 3])
        return tf.ensure_shape(y, inputs.shape)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon, "center": self.center, "scale": self.scale}
