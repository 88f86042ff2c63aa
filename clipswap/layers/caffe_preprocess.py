"""Caffe-style image preprocessing inside the graph: RGB -> BGR and ImageNet mean subtraction, no scaling."""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import ops

# ImageNet channel means in BGR order, as Keras' `imagenet_utils.preprocess_input(mode="caffe")` subtracts them.
IMAGENET_MEAN_BGR: tuple[float, float, float] = (103.939, 116.779, 123.68)


@keras.saving.register_keras_serializable(package="clipswap")
class CaffePreprocess(keras.layers.Layer):
    """[B, H, W, 3] RGB float in [0, 255] -> [B, H, W, 3] BGR with the per-channel mean subtracted.

    This is what `keras.applications.resnet.preprocess_input` does (mode "caffe"); the published RetinaFace applies
    it to its RGB input before the ResNet50 backbone, so the backbone sees BGR.
    """

    def __init__(self, mean_bgr: Sequence[float] = IMAGENET_MEAN_BGR, **kwargs):
        super().__init__(**kwargs)
        if len(mean_bgr) != 3:
            raise ValueError(f"mean_bgr needs 3 values (B, G, R), got {list(mean_bgr)}")
        self.mean_bgr = tuple(float(v) for v in mean_bgr)

    def call(self, images):
        images = ops.cast(images, self.compute_dtype)
        bgr = ops.flip(images, axis=-1)
        return bgr - ops.convert_to_tensor(self.mean_bgr, dtype=self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "mean_bgr": list(self.mean_bgr)}
