"""The learned warp's layers and losses (clipswap.layers.flow_warp, clipswap.losses.flow) against independent
references: OpenCV's remap for the bilinear warp, numpy for the colour statistics and the sampled points, scipy's
RBFInterpolator for the thin-plate spline."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import tensorflow as tf

from clipswap.layers.flow_warp import (
    FlowWarp,
    StopGradient,
    TemplateColourMatch,
    ThinPlateFlow,
    face_window,
    linear_solve,
)
from clipswap.losses.flow import flow_loss, landmark_flow_loss, sample_points


def _images(seed: int, batch: int = 2, size: int = 32) -> np.ndarray:
    rng = np.random.default_rng(seed)
    smooth = cv2.GaussianBlur(rng.uniform(-1, 1, (batch * size, size, 3)).astype(np.float32), (0, 0), 2.0)
    return smooth.reshape(batch, size, size, 3) * 3.0


def test_flow_warp_matches_opencv_remap_with_replicated_borders():
    images = _images(0)
    rng = np.random.default_rng(1)
    flow = rng.uniform(-6, 6, (2, 32, 32, 2)).astype(np.float32)
    out = np.asarray(FlowWarp()([images, flow]))
    grid_x, grid_y = np.meshgrid(np.arange(32, dtype=np.float32), np.arange(32, dtype=np.float32))
    for i in range(2):
        map_x = np.clip(grid_x + flow[i, ..., 0], 0, 31)
        map_y = np.clip(grid_y + flow[i, ..., 1], 0, 31)
        expected = cv2.remap(images[i], map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        # OpenCV's remap quantises the bilinear weights to 1/32: compare to that resolution.
        np.testing.assert_allclose(out[i], expected, atol=0.06 * np.abs(images).max())


def test_zero_flow_is_the_identity_and_a_whole_pixel_flow_shifts_with_border_clamp():
    images = _images(2)
    zero = np.zeros((2, 32, 32, 2), np.float32)
    np.testing.assert_allclose(np.asarray(FlowWarp()([images, zero])), images, atol=1e-6)
    shift = zero.copy()
    shift[..., 0] = 3.0  # out[y, x] = image[y, x + 3]
    out = np.asarray(FlowWarp()([images, shift]))
    np.testing.assert_allclose(out[:, :, :29], images[:, :, 3:], atol=1e-6)
    np.testing.assert_allclose(out[:, :, 29:], np.repeat(images[:, :, 31:], 3, axis=2), atol=1e-6)


def test_the_gradient_reaches_the_flow_and_the_image():
    images = tf.constant(_images(3))
    flow = tf.Variable(np.full((2, 32, 32, 2), 0.3, np.float32))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(images)
        loss = tf.reduce_sum(tf.square(FlowWarp()([images, flow])))
    assert np.abs(tape.gradient(loss, flow).numpy()).sum() > 0
    assert np.abs(tape.gradient(loss, images).numpy()).sum() > 0
    with tf.GradientTape() as tape:
        stopped = tf.reduce_sum(StopGradient()(flow * 2.0))
    assert tape.gradient(stopped, flow) is None


def test_colour_match_gives_the_references_windowed_mean_and_deviation():
    image, reference = _images(4), _images(5) * 0.3 + 0.5
    out = np.asarray(TemplateColourMatch(epsilon=1e-6)([image, reference]))
    window = face_window(32)[None, :, :, None]
    assert window.sum() == pytest.approx(1.0, abs=1e-5)

    def statistics(x):
        mean = (window * x).sum(axis=(1, 2))
        return mean, np.sqrt((window * (x - mean[:, None, None]) ** 2).sum(axis=(1, 2)))

    for got, wanted in zip(statistics(out), statistics(reference), strict=True):
        np.testing.assert_allclose(got, wanted, rtol=1e-3, atol=1e-4)


def test_flow_loss_reads_only_the_pasted_region_and_is_zero_for_the_same_warp():
    target = _images(6)
    warped = target.copy()
    warped[:, 8:24, 8:24] = _images(7)[:, 8:24, 8:24]
    assert float(flow_loss(warped, warped, target)) == pytest.approx(0.0, abs=1e-5)
    # A brightness and contrast change is normalised away; a change outside the region is not read.
    predicted = warped * 1.7 + 0.2
    predicted[:, :4] = 5.0
    assert float(flow_loss(predicted, warped, target)) == pytest.approx(0.0, abs=1e-3)
    shifted = np.roll(warped, 3, axis=2)
    assert float(flow_loss(shifted, warped, target)) > 0.1
    # A sample whose warp is its target has no region and is left out of the mean.
    mixed = np.concatenate([warped[:1], target[1:]])
    alone = float(flow_loss(shifted[:1], warped[:1], target[:1]))
    assert float(flow_loss(shifted, mixed, target)) == pytest.approx(alone, rel=1e-5)


def test_sampled_points_match_numpy_bilinear_interpolation():
    rng = np.random.default_rng(8)
    field = rng.normal(size=(2, 16, 16, 2)).astype(np.float32)
    points = rng.uniform(0, 15, (2, 5, 2)).astype(np.float32)
    got = np.asarray(sample_points(field, points))
    for b in range(2):
        for n in range(5):
            x, y = points[b, n]
            x0, y0 = int(x), int(y)
            fx, fy = x - x0, y - y0
            x1, y1 = min(x0 + 1, 15), min(y0 + 1, 15)
            expected = ((1 - fy) * ((1 - fx) * field[b, y0, x0] + fx * field[b, y0, x1])
                        + fy * ((1 - fx) * field[b, y1, x0] + fx * field[b, y1, x1]))
            np.testing.assert_allclose(got[b, n], expected, rtol=1e-5, atol=1e-5)


def test_landmark_flow_loss_is_zero_for_the_displacement_and_measured_in_units():
    rng = np.random.default_rng(9)
    target_points = rng.uniform(0.2, 0.8, (2, 68, 2)).astype(np.float32)
    displacement = np.array([0.05, -0.025], np.float32)  # 1.6 and -0.8 px at 32 px
    source_points = target_points + displacement
    flow = np.broadcast_to(displacement * 32, (2, 32, 32, 2)).astype(np.float32)
    assert float(landmark_flow_loss(flow, target_points, source_points, unit=2.0)) == pytest.approx(0.0, abs=1e-5)
    zero = np.zeros_like(flow)
    assert float(landmark_flow_loss(zero, target_points, source_points, unit=2.0)) == pytest.approx(
        (1.6 + 0.8) / 2 / 2.0, rel=1e-4)


def _point_pairs(seed: int, batch: int = 2, count: int = 20):
    rng = np.random.default_rng(seed)
    target = rng.uniform(0.2, 0.8, (batch, count, 2)).astype(np.float32)
    return target, (target + rng.normal(0.0, 0.03, target.shape)).astype(np.float32)


def test_thin_plate_flow_matches_scipys_thin_plate_spline():
    from scipy.interpolate import RBFInterpolator

    target, source = _point_pairs(0)
    smoothing = 5e-3
    # One cell a pixel: the spline itself at every pixel, no upsampling.
    flow = np.asarray(ThinPlateFlow(32, 32, regularisation=smoothing)([target, source]))
    grid = np.stack(np.meshgrid(np.arange(32) / 32, np.arange(32) / 32), axis=-1).reshape(-1, 2)
    for b in range(len(target)):
        # scipy's kernel is r^2 log r, half of r^2 log r^2: the same spline with half the smoothing.
        spline = RBFInterpolator(target[b].astype(np.float64), (source[b] - target[b]).astype(np.float64) * 32,
                                 kernel="thin_plate_spline", smoothing=smoothing / 2)
        np.testing.assert_allclose(flow[b], spline(grid).reshape(32, 32, 2), atol=2e-3)


def test_thin_plate_flow_moves_its_points_onto_their_partners_and_keeps_an_affine_map_exact():
    rng = np.random.default_rng(1)
    # Points on distinct whole pixels of a 64 px crop (sampled there without interpolation between pixels).
    cells = rng.choice(48 * 48, size=(2, 20), replace=False)
    target = (np.stack([cells % 48, cells // 48], axis=-1) + 8).astype(np.float32) / 64
    source = (target + rng.normal(0.0, 0.03, target.shape)).astype(np.float32)
    flow = ThinPlateFlow(64, 64, regularisation=1e-6)([target, source])
    moved = np.asarray(sample_points(flow, tf.constant(target * 64)))
    np.testing.assert_allclose(moved, (source - target) * 64, atol=0.05)
    assert np.abs(np.asarray(ThinPlateFlow(64, 16)([target, target]))).max() < 1e-4
    # An affine displacement is in the spline's own span: the S/4 grid upsampled gives it inside the crop.
    scaled = (target * 1.05 - 0.02).astype(np.float32)
    coarse = np.asarray(ThinPlateFlow(64, 16)([target, scaled]))
    x, y = np.meshgrid(np.arange(64, dtype=np.float32), np.arange(64, dtype=np.float32))
    exact = np.stack([x * 0.05 - 0.02 * 64, y * 0.05 - 0.02 * 64], axis=-1)
    assert coarse.shape == (2, 64, 64, 2)
    np.testing.assert_allclose(coarse[:, 2:-2, 2:-2], np.broadcast_to(exact, coarse.shape)[:, 2:-2, 2:-2], atol=0.02)


def test_thin_plate_flow_passes_gradients_to_both_point_sets():
    target, source = (tf.Variable(x) for x in _point_pairs(2))
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(tf.square(ThinPlateFlow(16, 8)([target, source])))
    for gradient in tape.gradient(total, [target, source]):
        assert np.all(np.isfinite(gradient)) and np.abs(gradient).max() > 0


def test_linear_solve_matches_numpy_on_general_and_spline_systems():
    """The matrix-product solve (exportable; no MatrixSolve op) against numpy's LU solve in float64: a random
    well-conditioned system, and the spline's own systems for 68 points at two smoothings (condition numbers up to
    about 1e5)."""
    rng = np.random.default_rng(3)
    general = rng.normal(size=(2, 12, 12)) + 6.0 * np.eye(12)
    right = rng.normal(size=(2, 12, 3))
    np.testing.assert_allclose(np.asarray(linear_solve(general.astype(np.float32), right.astype(np.float32))),
                               np.linalg.solve(general, right), rtol=1e-4, atol=1e-5)
    target, source = _point_pairs(4, count=68)
    for smoothing in (5e-3, 1e-5):
        layer = ThinPlateFlow(16, 4, regularisation=smoothing)
        systems = []
        for points in target.astype(np.float64):
            squared = ((points[:, None] - points[None]) ** 2).sum(-1)
            kernel = squared * np.log(squared + 1e-12) + smoothing * np.eye(68)
            affine = np.concatenate([np.ones((68, 1)), points], axis=1)
            systems.append(np.block([[kernel, affine], [affine.T, -1e-5 * np.eye(3)]]))
        systems = np.stack(systems)
        right = np.concatenate([(source - target) * 16, np.zeros((len(target), 3, 2))], axis=1).astype(np.float64)
        exact = np.linalg.solve(systems, right)
        solved = np.asarray(linear_solve(systems.astype(np.float32), right.astype(np.float32)))
        # what the spline uses: the displacement it gives at the points themselves, in pixels
        np.testing.assert_allclose(systems[:, :68] @ solved, systems[:, :68] @ exact, atol=2e-3)
        assert np.isfinite(np.asarray(layer([target, source]))).all()


def test_thin_plate_flow_refuses_a_grid_that_does_not_divide_the_crop():
    with pytest.raises(ValueError, match="multiple of cells"):
        ThinPlateFlow(30, 8)
