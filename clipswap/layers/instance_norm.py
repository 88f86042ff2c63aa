"""Instance normalisation, a stand-in for tensorflow-addons' InstanceNormalization (tfa is dead under Keras 3)."""

from __future__ import annotations

import keras
from keras import ops


def use_fused(layer: keras.layers.Layer, training) -> bool:
    """Whether `layer` runs fused_instance_norm: TensorFlow backend, mixed precision, not training."""
    return not training and layer.compute_dtype != "float32" and keras.backend.backend() == "tensorflow"


def plain_instance_norm(x, gamma, beta, epsilon: float, dtype: str):
    """Instance norm of x [B, H, W, C] with per-channel gamma and beta ([C], or None for 1 and 0), all in float32,
    the result cast to `dtype` once: the maths every training step, float32 model and export runs."""
    xf = ops.cast(x, "float32")
    mean, variance = ops.moments(xf, axes=[1, 2], keepdims=True)
    y = (xf - mean) * ops.rsqrt(variance + epsilon)
    if gamma is not None:
        y = y * ops.cast(gamma, "float32")
    if beta is not None:
        y = y + ops.cast(beta, "float32")
    return ops.cast(y, dtype)


def fused_instance_norm(x, scale, offset, epsilon: float):
    """Instance norm of x [B, H, W, C] (any float dtype) then `scale` * . + `offset`, per channel ([C]) or per sample
    and channel ([B, C], float32), through TensorFlow's fused batch-norm kernel in training mode: each sample's
    channels become channels of one sample ([1, H, W, B*C]), so batch statistics are instance statistics. One pass,
    statistics in float32, output in x's dtype rounded once. On the release generator in bf16 the plain ops were
    34 % of the forward pass (benchmarks/generator_profile.py); this kernel is 2-4x faster."""
    import tensorflow as tf  # only on the TensorFlow backend (use_fused)

    shape = tf.shape(x)
    batch, height, width, channels = shape[0], shape[1], shape[2], shape[3]
    if len(scale.shape) == 1:
        scale, offset = tf.tile(scale, [batch]), tf.tile(offset, [batch])
    else:
        scale, offset = tf.reshape(scale, [-1]), tf.reshape(offset, [-1])
    stacked = tf.reshape(tf.transpose(x, [1, 2, 0, 3]), [1, height, width, batch * channels])
    empty = tf.zeros([0], tf.float32)
    y = tf.raw_ops.FusedBatchNormV3(x=stacked, scale=scale, offset=offset, mean=empty, variance=empty,
                                    epsilon=epsilon, is_training=True)[0]
    y = tf.transpose(tf.reshape(y, [height, width, batch, channels]), [2, 0, 1, 3])
    return tf.ensure_shape(y, x.shape)


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
        if use_fused(self, training):
            return self._fused(inputs)
        return plain_instance_norm(inputs, self.gamma, self.beta, self.epsilon, self.compute_dtype)

    def _fused(self, inputs):
        """The same normalisation through fused_instance_norm (mixed-precision inference only: training keeps the
        plain ops above for their gradient, and float32 models keep them too, which is what every export traces;
        LiteRT gave wrong outputs from the second call on with the fused op, and the float32 gain is small)."""
        channels = inputs.shape[-1]
        gamma = ops.cast(self.gamma, "float32") if self.gamma is not None else ops.ones([channels], "float32")
        beta = ops.cast(self.beta, "float32") if self.beta is not None else ops.zeros([channels], "float32")
        return fused_instance_norm(ops.cast(inputs, self.compute_dtype), gamma, beta, self.epsilon)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon, "center": self.center, "scale": self.scale}
