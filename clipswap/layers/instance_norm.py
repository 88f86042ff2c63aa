"""Instance normalisation, a stand-in for tensorflow-addons' InstanceNormalization (tfa is dead under Keras 3)."""

from __future__ import annotations

import keras
from keras import ops


def use_fused(layer: keras.layers.Layer, training) -> bool:
    """Whether `layer` runs TensorFlow's fused kernel (clipswap.layers.tf_only.fused_instance_norm): TensorFlow
    backend, mixed precision, not training."""
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
        """The same normalisation through TensorFlow's fused_instance_norm (mixed-precision inference only: training
        keeps the plain ops above for their gradient, and float32 models keep them too, which is what every export
        traces; LiteRT gave wrong outputs from the second call on with the fused op, and the float32 gain is small)."""
        from clipswap.layers.tf_only import fused_instance_norm  # TensorFlow only, behind use_fused

        channels = inputs.shape[-1]
        gamma = ops.cast(self.gamma, "float32") if self.gamma is not None else ops.ones([channels], "float32")
        beta = ops.cast(self.beta, "float32") if self.beta is not None else ops.zeros([channels], "float32")
        return fused_instance_norm(ops.cast(inputs, self.compute_dtype), gamma, beta, self.epsilon)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon, "center": self.center, "scale": self.scale}
