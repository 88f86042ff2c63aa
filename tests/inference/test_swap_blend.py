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


@pytest.mark.parametrize("amount", [1.0, 0.7, 2.0])
def test_unsharp_matches_a_scipy_unsharp_mask(amount):
    """face + A * (face - Gaussian), the Gaussian of SHARPEN_SIGMA crop pixels, against scipy's per-channel
    Gaussian with OpenCV's default border (reflect 101 = scipy's "mirror")."""
    from scipy.ndimage import gaussian_filter

    from clipswap.inference.blend import SHARPEN_SIGMA, unsharp

    assert SHARPEN_SIGMA == 1.0
    face = np.random.default_rng(5).uniform(0, 1, (40, 52, 3)).astype(np.float32)
    blurred = np.stack([gaussian_filter(face[..., c].astype(np.float64), SHARPEN_SIGMA, mode="mirror")
                        for c in range(3)], -1)
    expected = face + amount * (face - blurred)
    sharpened = unsharp(face, amount)
    assert sharpened.dtype == np.float32 and sharpened.shape == face.shape
    # Values leave [0, 1]: the caller clips.
    assert sharpened.min() < 0 and sharpened.max() > 1
    np.testing.assert_allclose(sharpened, expected, atol=1e-4)
    np.testing.assert_array_equal(unsharp(face, 0.0), face)
    # A flat crop stays flat up to its edge: the reflected border adds no rim.
    np.testing.assert_allclose(unsharp(np.full((16, 16, 3), 0.6, np.float32), 1.0), 0.6, atol=1e-6)


def _blurred_paste():
    """(frame [200, 200, 3] uint8, a blurred 64 px crop of its middle enlarged twice, the crop's matrix): a
    low-resolution generator that keeps the target but loses its edges."""
    rng = np.random.default_rng(3)
    smooth = cv2.GaussianBlur(rng.uniform(0, 255, (200, 200, 3)), (0, 0), 6)
    frame = np.clip(smooth * 2 - 128 + rng.normal(0, 20, (200, 200, 3)), 0, 255).astype(np.uint8)
    matrix = np.array([[0.5, 0.0, -18.0], [0.0, 0.5, -18.0]])
    crop = cv2.warpAffine(cv2.resize(frame, (100, 100), interpolation=cv2.INTER_AREA), np.float32([[1, 0, -18],
                                                                                                  [0, 1, -18]]),
                          (64, 64)).astype(np.float32) / 255.0
    return frame, cv2.GaussianBlur(crop, (0, 0), 1.0), matrix


def test_sharpen_crisps_the_pasted_face_and_nothing_outside_its_mask():
    from clipswap.evaluation.image_quality import face_sharpness_ratio

    frame, crop, matrix = _blurred_paste()
    # Ones over the crop's middle 40 px only: frame pixels 84..115 and a bilinear pixel around them.
    masks = np.zeros((1, 64, 64), np.float32)
    masks[0, 12:52, 12:52] = 1.0
    plain = composite(frame, crop[None], masks, matrix[None])
    np.testing.assert_array_equal(composite(frame, crop[None], masks, matrix[None], sharpen=0.0), plain)
    sharpened = composite(frame, crop[None], masks, matrix[None], sharpen=1.0)
    angles = np.linspace(0, 2 * np.pi, 68, endpoint=False)
    ring = np.stack([100 + 35 * np.cos(angles), 100 + 35 * np.sin(angles)], axis=1)
    plain_ratio = face_sharpness_ratio(frame, plain, ring)
    sharpened_ratio = face_sharpness_ratio(frame, sharpened, ring)
    assert sharpened_ratio > 1.5 * plain_ratio, (plain_ratio, sharpened_ratio)
    stronger_ratio = face_sharpness_ratio(frame, composite(frame, crop[None], masks, matrix[None], sharpen=2.0), ring)
    assert stronger_ratio > 1.2 * sharpened_ratio, (sharpened_ratio, stronger_ratio)
    # Where the warped mask is zero the frame's bytes stay.
    outside = np.ones(frame.shape[:2], bool)
    outside[59:142, 59:142] = False
    np.testing.assert_array_equal(sharpened[outside], frame[outside])
    assert (sharpened[84:116, 84:116] != plain[84:116, 84:116]).mean() > 0.5


def test_sharpen_sharpens_the_generated_face_not_the_frames_detail():
    """With both, the paste is the sharpened face plus the frame's detail as `detail` alone adds it: the
    sharpen's change does not depend on `detail` (it would, were the frame's detail sharpened too)."""
    frame, crop, matrix = _blurred_paste()
    masks = np.ones((1, 64, 64), np.float32)
    paste = {(s, d): composite(frame, crop[None], masks, matrix[None], detail=d, sharpen=s).astype(int)
             for s in (0.0, 1.0) for d in (0.0, 1.0)}
    with_detail = paste[1.0, 1.0] - paste[0.0, 1.0]
    without_detail = paste[1.0, 0.0] - paste[0.0, 0.0]
    assert np.abs(without_detail[80:120, 80:120]).mean() > 0.5
    # Inside the crop, away from its edge, and where no paste was clipped: equal but for rounding.
    inner = (slice(50, 150), slice(50, 150))
    unclipped = np.all([(p[inner] > 0) & (p[inner] < 255) for p in paste.values()], axis=0)
    assert unclipped.mean() > 0.9
    assert np.abs(with_detail[inner] - without_detail[inner])[unclipped].max() <= 2
