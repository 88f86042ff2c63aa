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

    Input and output: [B, H, W, C], channels last, any float dtype (statistics are computed in float32, the
    normalisation applied in the compute dtype).
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

    def call(self, inputs):
        # Statistics in float32; the normalisation itself runs in the compute dtype as (x - mean) * a + beta with
        # a = gamma / sqrt(var + eps): under mixed bf16 the big tensor is never cast back and forth, only the
        # [B, 1, 1, C] statistics are (issue 12). Subtracting the mean first keeps the error at the scale of the
        # input's own bf16 rounding when the mean is far from zero (a folded x * a + c would cancel there).
        mean, variance = ops.moments(ops.cast(inputs, "float32"), axes=[1, 2], keepdims=True)
        a = ops.rsqrt(variance + self.epsilon)
        if self.gamma is not None:
            a = a * ops.cast(self.gamma, "float32")
        dtype = self.compute_dtype
        y = (ops.cast(inputs, dtype) - ops.cast(mean, dtype)) * ops.cast(a, dtype)
        if self.beta is not None:
            y = y + ops.cast(self.beta, dtype)
        return y

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon, "center": self.center, "scale": self.scale}
