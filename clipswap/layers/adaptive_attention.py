"""Adaptive attention: the fusion step of the AFFA decoder block."""

from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="clipswap")
class AdaptiveAttention(keras.layers.Layer):
    """fused = (1 - m) * a + m * i.

    Call: `layer([m, a, i])` with the mask m in [0, 1] (sigmoid output, [B, H, W, C]), a the encoder skip feature
    (target attributes) and i the decoder feature (identity-driven), both [B, H, W, C]. No weights.
    """

    def call(self, inputs):
        mask, attributes, identity = inputs
        # (1 - m) * a + m * i written with three element-wise passes instead of four: same value, less memory traffic
        return attributes + mask * (identity - attributes)

    def compute_output_shape(self, input_shape):
        return input_shape[1]
