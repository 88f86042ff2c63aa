"""Spatial soft-argmax (integral regression): the expected position under each channel's spatial softmax, the last
layer of the geometry network's heatmap head (clipswap.models.geometry)."""

from __future__ import annotations

import keras
import numpy as np
from keras import ops


def pixel_centres(height: int, width: int) -> np.ndarray:
    """[height * width, 2] float32 (x, y) of each pixel's centre in units of the side, row-major: ((j + 0.5) / width,
    (i + 0.5) / height), the landmarks' convention (0 = left/top edge, 1 = right/bottom edge)."""
    x = (np.arange(width, dtype=np.float64) + 0.5) / width
    y = (np.arange(height, dtype=np.float64) + 0.5) / height
    grid_x, grid_y = np.meshgrid(x, y)
    return np.stack([grid_x.ravel(), grid_y.ravel()], axis=-1).astype(np.float32)


@keras.saving.register_keras_serializable(package="clipswap")
class SpatialSoftArgmax(keras.layers.Layer):
    """The expected (x, y) under softmax(logits / temperature) over each channel's H x W positions.

    Called on logits [B, H, W, K] (static H, W) -> [B, K, 2] float32, (x, y) in units of the map's side with pixel
    centres at (i + 0.5) / W: a map peaked at one pixel gives that pixel's centre, a uniform map (0.5, 0.5). Every
    output is inside the map, and the gradient reaches every logit (unlike an argmax), so point losses train the
    heatmaps directly. Computed in float32 whatever the policy: bf16 would round a 24-cell map's positions to about
    a tenth of a cell.

    Args:
        temperature: divides the logits (fixed; the convolution before it learns the scale it needs).
    """

    def __init__(self, temperature: float = 1.0, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = float(temperature)

    def call(self, logits):
        height, width, channels = logits.shape[1], logits.shape[2], logits.shape[3]
        logits = ops.cast(logits, "float32") / self.temperature
        flat = ops.reshape(ops.transpose(logits, (0, 3, 1, 2)), (-1, channels, height * width))
        probabilities = ops.softmax(flat, axis=-1)
        return ops.matmul(probabilities, ops.convert_to_tensor(pixel_centres(height, width)))

    def get_config(self):
        return {**super().get_config(), "temperature": self.temperature}

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[3], 2)


__all__ = ["SpatialSoftArgmax", "pixel_centres"]
