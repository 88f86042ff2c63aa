"""Blend masks and compositing (clipswap.inference.blend): the published mask's numbers, ROI compositing against the
a full-frame reference paste, the landmark mask's shape."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from clipswap.face.align import estimate_alignment, invert_affine
from clipswap.face.templates import arcface_template
from clipswap.inference.blend import composite, crop_region, landmark_mask, published_mask


def _blurred_box_1d(size: int, start: int, stop: int, sigma: float) -> np.ndarray:
    """Continuous approximation: a box of ones on [start, stop) pixels (pixel centres at i) blurred by a Gaussian."""
    centres = np.arange(size)
    low, high = start - 0.5, stop - 0.5
    erf = np.vectorize(math.erf)
    return 0.5 * (erf((centres - low) / (sigma * math.sqrt(2))) - erf((centres - high) / (sigma * math.sqrt(2))))


def test_published_mask_matches_the_release_numbers():
    mask = published_mask(256)
    assert mask.shape == (256, 256) and mask.dtype == np.float32
    # Separable: rows 77..239 and columns 32..223 of ones, sigma 7 (the release's inference.py).
    expected = np.outer(_blurred_box_1d(256, 77, 240, 7.0), _blurred_box_1d(256, 32, 224, 7.0))
    assert np.max(np.abs(mask - expected)) < 0.01
    assert mask[158, 128] > 0.999 and mask[0, 0] < 1e-6 and mask[255, 128] < 0.2
    # The edge of the box sits at about one half.
    assert 0.45 < mask[77, 128] < 0.6 and 0.45 < mask[158, 32] < 0.6


def test_published_mask_scales_with_the_crop():
    small, big = published_mask(128), published_mask(256)
    assert small.shape == (128, 128)
    # Sampling the 256 mask at the 128 mask's pixel centres gives nearly the same values.
    assert np.max(np.abs(small - (big[::2, ::2] + big[1::2, 1::2]) / 2)) < 0.07
    assert published_mask(256, sigma=0.0)[77, 32] == 1.0 and published_mask(256, sigma=0.0)[76, 32] == 0.0
    with pytest.raises(ValueError):
        published_mask(256, sigma=-1.0)


def test_landmark_mask_covers_the_face_and_not_the_corners():
    size = 256
    mask = landmark_mask(arcface_template(size), size)
    template = arcface_template(size)
    for x, y in template:
        assert mask[int(y), int(x)] > 0.9
    # Zero along the crop border, so no seam appears where the crop ends.
    for border in (mask[0], mask[-1], mask[:, 0], mask[:, -1]):
        assert border.max() < 0.05
    assert 0.3 < mask.mean() < 0.8


def _frame_and_faces(seed: int = 0):
    rng = np.random.default_rng(seed)
    frame = rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)
    size = 64
    landmarks = [arcface_template(112) * 1.2 + (60, 40), arcface_template(112) * 0.9 + (250, 150)]
    matrices = np.stack([estimate_alignment(points, size) for points in landmarks])
    # Smooth faces: OpenCV quantises warp coordinates to 1/32 pixel, relative to the output origin, so pixel-noise
    # faces would differ by several levels between a region warp and a full-frame warp for that reason alone.
    coarse = rng.uniform(0, 1, (2, 8, 8, 3)).astype(np.float32)
    faces = np.stack([cv2.resize(c, (size, size), interpolation=cv2.INTER_LINEAR) for c in coarse])
    masks = np.stack([published_mask(size)] * 2)
    return frame, faces, masks, matrices


def _full_frame_paste(frame: np.ndarray, face: np.ndarray, mask: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Reference: warp the whole crop and mask back over the whole frame ([H, W, 3] float in [0, 1]) and blend."""
    height, width = frame.shape[:2]
    inverse = invert_affine(matrix)
    face_full = cv2.warpAffine(face, inverse, (width, height), flags=cv2.INTER_LINEAR, borderValue=0.0)
    mask_full = np.clip(cv2.warpAffine(mask, inverse, (width, height), flags=cv2.INTER_LINEAR, borderValue=0.0), 0, 1)
    return face_full * mask_full[..., None] + frame * (1.0 - mask_full[..., None])


def test_composite_equals_a_full_frame_paste():
    frame, faces, masks, matrices = _frame_and_faces()
    expected = frame.astype(np.float32) / 255.0
    for face, mask, matrix in zip(faces, masks, matrices, strict=True):
        expected = _full_frame_paste(expected, face, mask, matrix)
    expected = np.clip(np.round(expected * 255.0), 0, 255).astype(np.uint8)
    result = composite(frame, faces, masks, matrices)
    # Per-face rounding in the region vs one final rounding, and the 1/32-pixel warp grid: one or two levels.
    difference = np.abs(result.astype(int) - expected.astype(int))
    assert difference.max() <= 2 and difference.mean() < 0.05
    assert np.mean(result != frame) > 0.01


def test_composite_leaves_pixels_outside_the_crops_untouched():
    frame, faces, masks, matrices = _frame_and_faces(1)
    result = composite(frame, faces, masks, matrices)
    inside = np.zeros(frame.shape[:2], bool)
    for matrix in matrices:
        x0, y0, x1, y1 = crop_region(matrix, faces.shape[1], frame.shape)
        inside[y0:y1, x0:x1] = True
    assert np.array_equal(result[~inside], frame[~inside])


def test_crop_region_outside_the_frame_is_none():
    matrix = estimate_alignment(arcface_template(112) + (5000, 5000), 64)
    assert crop_region(matrix, 64, (100, 100, 3)) is None


def test_detail_gives_an_enlarged_crop_back_the_frames_fine_detail():
    from clipswap.evaluation.image_quality import face_sharpness_ratio
    from clipswap.inference.blend import magnification

    rng = np.random.default_rng(3)
    smooth = cv2.GaussianBlur(rng.uniform(0, 255, (200, 200, 3)), (0, 0), 6)
    frame = np.clip(smooth * 2 - 128 + rng.normal(0, 20, (200, 200, 3)), 0, 255).astype(np.uint8)
    # A 64 px crop of the frame's middle 128 px (image -> crop scale 0.5): the generator "returns" that crop.
    matrix = np.array([[0.5, 0.0, -18.0], [0.0, 0.5, -18.0]])
    assert magnification(matrix) == pytest.approx(2.0)
    crop = cv2.warpAffine(cv2.resize(frame, (100, 100), interpolation=cv2.INTER_AREA), np.float32([[1, 0, -18],
                                                                                                  [0, 1, -18]]),
                          (64, 64)).astype(np.float32) / 255.0
    masks = np.ones((1, 64, 64), np.float32)
    plain = composite(frame, crop[None], masks, matrix[None])
    detailed = composite(frame, crop[None], masks, matrix[None], detail=1.0)
    np.testing.assert_array_equal(composite(frame, crop[None], masks, matrix[None], detail=0.0), plain)
    angles = np.linspace(0, 2 * np.pi, 68, endpoint=False)
    ring = np.stack([100 + 50 * np.cos(angles), 100 + 50 * np.sin(angles)], axis=1)
    plain_ratio = face_sharpness_ratio(frame, plain, ring)
    detailed_ratio = face_sharpness_ratio(frame, detailed, ring)
    assert plain_ratio < 0.5 and detailed_ratio > 0.8, (plain_ratio, detailed_ratio)
    inside = (slice(60, 140), slice(60, 140))
    error = [np.abs(out[inside].astype(float) - frame[inside]).mean() for out in (plain, detailed)]
    assert error[1] < 0.6 * error[0]
    # Outside the crop the frame's bytes stay.
    np.testing.assert_array_equal(detailed[:30], frame[:30])
