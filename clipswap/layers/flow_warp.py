"""A learned warp's layers: bilinear backward warping by a dense flow, a colour match over the template's face
region, and a gradient stop (the source_flow generator, clipswap.models.generator)."""

from __future__ import annotations

import keras
import numpy as np
from keras import ops


def bilinear_sample(image, x, y):
    """Bilinear samples of `image` [B, H, W, C] (static H, W) at the points (x, y), each [B, N] in pixels, clamped to
    the image (the border pixel repeats): [B, N, C] float32. The gradient reaches the image through the gathered
    pixels and the coordinates through the bilinear weights."""
    height, width, channels = image.shape[1], image.shape[2], image.shape[3]
    x = ops.clip(ops.cast(x, "float32"), 0.0, width - 1.0)
    y = ops.clip(ops.cast(y, "float32"), 0.0, height - 1.0)
    x0, y0 = ops.floor(x), ops.floor(y)
    wx, wy = ops.expand_dims(x - x0, -1), ops.expand_dims(y - y0, -1)
    x0, y0 = ops.cast(x0, "int32"), ops.cast(y0, "int32")
    x1, y1 = ops.minimum(x0 + 1, width - 1), ops.minimum(y0 + 1, height - 1)
    flat = ops.reshape(image, (-1, height * width, channels))

    def at(yi, xi):
        return ops.cast(ops.take_along_axis(flat, ops.expand_dims(yi * width + xi, -1), axis=1), "float32")

    top = (1.0 - wx) * at(y0, x0) + wx * at(y0, x1)
    bottom = (1.0 - wx) * at(y1, x0) + wx * at(y1, x1)
    return (1.0 - wy) * top + wy * bottom


@keras.saving.register_keras_serializable(package="clipswap")
class FlowWarp(keras.layers.Layer):
    """Backward warp with bilinear sampling: out[b, y, x] = image[b, y + flow[b, y, x, 1], x + flow[b, y, x, 0]].

    Called on `[image, flow]`: image [B, H, W, C], flow [B, H, W, 2] in pixels (x then y) -> [B, H, W, C] in the
    image's dtype. Sample points outside the image are clamped to its border (the border pixel repeats). The
    gradient reaches the flow through the bilinear weights (and the image through the gathered pixels), which is
    what lets a network learn the flow from a photometric loss. H and W must be static.
    """

    def call(self, inputs):
        image, flow = inputs
        height, width, channels = image.shape[1], image.shape[2], image.shape[3]
        flow = ops.cast(flow, "float32")
        x = ops.reshape(ops.arange(width, dtype="float32"), (1, 1, width)) + flow[..., 0]
        y = ops.reshape(ops.arange(height, dtype="float32"), (1, height, 1)) + flow[..., 1]
        sampled = bilinear_sample(image, ops.reshape(x, (-1, height * width)), ops.reshape(y, (-1, height * width)))
        return ops.cast(ops.reshape(sampled, (-1, height, width, channels)), image.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape[0]


def face_window(size: int) -> np.ndarray:
    """[size, size] float32 weights summing to 1: a Gaussian (sigma a quarter of the side) centred a little below
    the crop's centre, where the aligned template puts the face; the colour statistics of TemplateColourMatch."""
    coordinates = (np.arange(size, dtype=np.float64) + 0.5) / size
    column = np.exp(-0.5 * ((coordinates - 0.5) / 0.25) ** 2)
    row = np.exp(-0.5 * ((coordinates - 0.55) / 0.25) ** 2)
    window = np.outer(row, column)
    return (window / window.sum()).astype(np.float32)


@keras.saving.register_keras_serializable(package="clipswap")
class TemplateColourMatch(keras.layers.Layer):
    """Match `image`'s colours to `reference`'s: per sample and channel, (image - mean) / std * std_ref + mean_ref,
    the statistics weighted by face_window (the face region of an aligned crop).

    Called on `[image, reference]`, both [B, S, S, C] -> [B, S, S, C] in the image's dtype. This is Reinhard's
    transfer in RGB over a fixed window, which needs no landmarks: a source warped onto a target is matched to the
    target's skin and light before the generator reads it, as the landmark warp (warp_paste) is.
    """

    def __init__(self, epsilon: float = 1e-3, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)

    def call(self, inputs):
        image, reference = inputs
        size = image.shape[1]
        window = ops.reshape(ops.convert_to_tensor(face_window(size)), (1, size, size, 1))

        def statistics(x):
            mean = ops.sum(window * x, axis=(1, 2), keepdims=True)
            variance = ops.sum(window * ops.square(x - mean), axis=(1, 2), keepdims=True)
            return mean, ops.sqrt(variance + self.epsilon**2)

        x, r = ops.cast(image, "float32"), ops.cast(reference, "float32")
        mean, std = statistics(x)
        mean_ref, std_ref = statistics(r)
        return ops.cast((x - mean) / std * std_ref + mean_ref, image.dtype)

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}

    def compute_output_shape(self, input_shape):
        return input_shape[0]


@keras.saving.register_keras_serializable(package="clipswap")
class StopGradient(keras.layers.Layer):
    """Identity in the forward pass, no gradient back: a part of a model that another loss trains on its own."""

    def call(self, inputs):
        return ops.stop_gradient(inputs)

    def compute_output_shape(self, input_shape):
        return input_shape
#: A small negative diagonal in the spline system's affine block: for points in general position it changes the
#: spline by far less than a pixel's thousandth, and it keeps the system invertible when they are not (an untrained
#: keypoint network can put every point in one place, where the exact system is singular).
AFFINE_SLACK = 1e-5


#: Newton-Schulz steps of linear_solve: from its starting point the error of an eigenvalue s of A X falls as
#: (1 - s) ** (2 ** steps), so 50 steps cover condition numbers to about 1e6, where float32 itself stops (the 68-point
#: systems of aligned faces: about 3.5e3, solved to a thousandth of a pixel in 30 steps).
NEWTON_SCHULZ_STEPS = 50


def linear_solve(system, right, steps: int = NEWTON_SCHULZ_STEPS):
    """x with system @ x = right, for `system` [B, n, n] invertible and `right` [B, n, k], float32, from matrix
    products alone: the inverse by Newton-Schulz iteration, X <- X (2I - A X) from X = A^T / (|A|_1 |A|_inf), which
    converges for any invertible A, then one step of iterative refinement. ONNX and OpenVINO have no linear-solve
    op (TensorFlow's MatrixSolve stops both converters); this graph converts, and its gradient is the products'."""
    transposed = ops.transpose(system, (0, 2, 1))
    magnitude = ops.abs(system)
    column_sums = ops.max(ops.sum(magnitude, axis=1), axis=-1)
    row_sums = ops.max(ops.sum(magnitude, axis=2), axis=-1)
    inverse = transposed / (column_sums * row_sums)[:, None, None]
    twice = ops.convert_to_tensor(2.0 * np.eye(system.shape[-1], dtype=np.float32)[None])
    for _ in range(steps):
        inverse = ops.matmul(inverse, twice - ops.matmul(system, inverse))
    solution = ops.matmul(inverse, right)
    return solution + ops.matmul(inverse, right - ops.matmul(system, solution))


def _tps_kernel(squared_distance):
    """The thin-plate spline's radial function U(r) = r^2 log r^2, taken as 0 at r = 0."""
    return squared_distance * ops.log(squared_distance + 1e-12)


@keras.saving.register_keras_serializable(package="clipswap")
class ThinPlateFlow(keras.layers.Layer):
    """A dense flow from point correspondences: the thin-plate spline through the displacements from each target
    point to its source point, evaluated at the centres of a cells x cells grid and upsampled bilinearly to size x
    size (FlowWarp's convention: pixels, x then y; out[p] reads source[p + flow(p)]).

    Called on `[target_points, source_points]`, each [B, N, 2] (x, y) in units of the crop side (pixel = unit x
    size) -> [B, size, size, 2] float32. `regularisation` is the spline's smoothing (added to the kernel's diagonal):
    points that nearly coincide or disagree with their neighbours bend the field less. Differentiable in both point
    sets, so the networks that predict them learn from what the warp does.
    """

    def __init__(self, size: int, cells: int, regularisation: float = 5e-3, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if size % cells:
            raise ValueError(f"size {size} must be a multiple of cells {cells}")
        self.size, self.cells, self.regularisation = int(size), int(cells), float(regularisation)

    def call(self, inputs):
        target, source = (ops.cast(x, "float32") for x in inputs)
        count = target.shape[1]
        displacement = (source - target) * self.size
        squared = ops.sum(ops.square(target[:, :, None, :] - target[:, None, :, :]), axis=-1)
        # identities as constants: a graph eye op (MatrixDiagV3) has no OpenVINO conversion
        smoothing = ops.convert_to_tensor(self.regularisation * np.eye(count, dtype=np.float32)[None])
        slack = ops.convert_to_tensor(-AFFINE_SLACK * np.eye(3, dtype=np.float32)[None])
        kernel = _tps_kernel(squared) + smoothing
        affine = ops.concatenate([ops.ones_like(target[..., :1]), target], axis=-1)
        system = ops.concatenate([ops.concatenate([kernel, affine], axis=-1),
                                  ops.concatenate([ops.transpose(affine, (0, 2, 1)),
                                                   slack + ops.zeros_like(squared[:, :3, :3])], axis=-1)], axis=1)
        # batch-sized zeros taken from a tensor, not built from its dynamic shape, which LiteRT cannot size
        right = ops.concatenate([displacement, ops.zeros_like(displacement[:, :3])], axis=1)
        solution = linear_solve(system, right)
        step = self.size / self.cells
        centres = (np.arange(self.cells) * step + (step - 1.0) / 2.0) / self.size
        grid_x, grid_y = np.meshgrid(centres, centres)
        grid = np.stack([grid_x.ravel(), grid_y.ravel()], axis=-1).astype(np.float32)
        to_points = ops.sum(ops.square(ops.convert_to_tensor(grid)[None, :, None, :] - target[:, None, :, :]),
                            axis=-1)
        grid_affine = np.concatenate([np.ones((len(grid), 1), np.float32), grid], axis=-1)
        flow = (ops.einsum("bmn,bnk->bmk", _tps_kernel(to_points), solution[:, :count])
                + ops.matmul(ops.convert_to_tensor(grid_affine[None]), solution[:, count:]))
        flow = ops.reshape(flow, (-1, self.cells, self.cells, 2))
        return ops.image.resize(flow, (self.size, self.size), interpolation="bilinear")

    def get_config(self):
        return {**super().get_config(), "size": self.size, "cells": self.cells,
                "regularisation": self.regularisation}

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], self.size, self.size, 2)
