"""The classical landmark swap (clipswap.face.landmark_swap): warp, colour transfer, blending, errors."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from clipswap.face.landmark_swap import (
    FOREHEAD,
    WARP_POINTS,
    LandmarkSwapError,
    face_hull_mask,
    landmark_swap,
    reinhard_transfer,
    swap_region,
    triangle_transforms,
    warp_paste,
    warp_to_landmarks,
    with_forehead,
)

SIZE = 128


def _face_points(scale: float = 1.0, shift=(0.0, 0.0)) -> np.ndarray:
    """68 points shaped like a face (jaw arc, brows, nose, eyes, lips) in a SIZE x SIZE image."""
    centre = np.array([64.0, 68.0]) + np.asarray(shift)
    jaw = [centre + scale * np.array([40 * np.cos(a), 10 + 40 * np.sin(a)]) for a in np.linspace(np.pi, 0, 17)[::-1]]
    jaw = [np.array([2 * centre[0] - p[0], p[1]]) for p in jaw]  # left to right, below the eyes
    jaw = [np.array([p[0], centre[1] + abs(p[1] - centre[1])]) for p in jaw]
    brows = [centre + scale * np.array([x, -22.0]) for x in np.linspace(-32, 32, 10)]
    nose = [centre + scale * np.array([0.0, y]) for y in (-14, -8, -2, 4)]
    nose += [centre + scale * np.array([x, 9.0]) for x in (-8, -4, 0, 4, 8)]
    eyes = [centre + scale * np.array([dx + 6 * np.cos(a), -12 + 3 * np.sin(a)])
            for dx in (-18, 18) for a in np.linspace(np.pi, -np.pi, 6, endpoint=False)]
    lips = [centre + scale * np.array([14 * np.cos(a), 22 + 6 * np.sin(a)]) for a in np.linspace(np.pi, -np.pi, 12,
                                                                                            endpoint=False)]
    inner = [centre + scale * np.array([9 * np.cos(a), 22 + 2 * np.sin(a)]) for a in np.linspace(np.pi, -np.pi, 8,
                                                                                           endpoint=False)]
    points = np.array(jaw + brows + nose + eyes + lips + inner)
    assert points.shape == (68, 2)
    return points


def _textured(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(40, 215, size=(16, 16, 3), dtype=np.uint8)
    return cv2.resize(small, (SIZE, SIZE), interpolation=cv2.INTER_CUBIC)


def test_warp_with_equal_landmarks_is_the_identity_inside_the_face():
    source, points = _textured(0), _face_points()
    warped = warp_to_landmarks(source, points, points, (SIZE, SIZE))
    inside = face_hull_mask(points, (SIZE, SIZE)) > 0
    assert np.abs(warped[inside].astype(int) - source[inside].astype(int)).max() <= 1


def test_warp_follows_a_shifted_face():
    # The target's face is the source's moved by (5, 3) px: the warp moves the texture with it.
    source = _textured(1)
    src_points, dst_points = _face_points(), _face_points(shift=(5.0, 3.0))
    warped = warp_to_landmarks(source, src_points, dst_points, (SIZE, SIZE))
    expected = np.roll(source, shift=(3, 5), axis=(0, 1))
    inside = face_hull_mask(dst_points, (SIZE, SIZE), shrink=0.8) > 0
    assert np.abs(warped[inside].astype(int) - expected[inside].astype(int)).mean() < 1.0


def test_reinhard_transfer_matches_the_reference_statistics():
    image, reference = _textured(2), np.clip(_textured(3).astype(int) // 2 + 90, 0, 255).astype(np.uint8)
    mask = np.ones((SIZE, SIZE), np.uint8)
    out = reinhard_transfer(image, reference, mask)
    lab_out = cv2.cvtColor(out, cv2.COLOR_RGB2LAB).reshape(-1, 3).astype(float)
    lab_ref = cv2.cvtColor(reference, cv2.COLOR_RGB2LAB).reshape(-1, 3).astype(float)
    np.testing.assert_allclose(lab_out.mean(0), lab_ref.mean(0), atol=1.5)
    np.testing.assert_allclose(lab_out.std(0), lab_ref.std(0), rtol=0.1, atol=1.0)


@pytest.mark.parametrize("blend", ["poisson", "alpha"])
def test_swap_changes_only_the_face_region_and_brings_the_source_in(blend):
    source, target = _textured(4), _textured(5)
    points = _face_points()
    out = landmark_swap(source, points, target, points, blend=blend, color_transfer=False)
    assert out.shape == target.shape and out.dtype == np.uint8
    outside = face_hull_mask(with_forehead(points, FOREHEAD, (SIZE, SIZE)), (SIZE, SIZE)) == 0
    assert np.array_equal(out[outside], target[outside])
    core = face_hull_mask(points, (SIZE, SIZE), shrink=0.6) > 0
    to_source = np.abs(out[core].astype(int) - source[core].astype(int)).mean()
    to_target = np.abs(out[core].astype(int) - target[core].astype(int)).mean()
    assert to_source < 0.5 * to_target


def test_forehead_points_sit_above_the_brows_inside_the_image():
    points = _face_points()
    extended = with_forehead(points, 0.3, (SIZE, SIZE))
    assert extended.shape == (78, 2) and np.array_equal(extended[:68], points)
    height = np.linalg.norm(points[27] - points[8])
    # The face in _face_points is upright: "up" is -y, by 0.3 of the chin-to-bridge length.
    np.testing.assert_allclose(points[17:27, 1] - extended[68:, 1], 0.3 * height, atol=1e-6)
    assert np.array_equal(with_forehead(points, 0.0), points)
    clipped = with_forehead(points, 5.0, (SIZE, SIZE))
    assert clipped[68:].min() >= 0.0 and clipped[68:].max() <= SIZE - 1


def test_forehead_swaps_the_band_above_the_brows_and_zero_keeps_it():
    source, target = _textured(7), _textured(8)
    points = _face_points()
    band = (face_hull_mask(with_forehead(points, 0.3), (SIZE, SIZE), shrink=0.85) > 0) & (
        face_hull_mask(points, (SIZE, SIZE)) == 0)
    assert band.sum() > 50
    with_band = landmark_swap(source, points, target, points, color_transfer=False, forehead=0.3)
    without = landmark_swap(source, points, target, points, color_transfer=False, forehead=0.0)
    assert np.array_equal(without[band], target[band])
    to_source = np.abs(with_band[band].astype(int) - source[band].astype(int)).mean()
    to_target = np.abs(with_band[band].astype(int) - target[band].astype(int)).mean()
    # The band lies near the mask's edge, where the Poisson solution meets the target: nearer the source, not equal.
    assert to_source < 0.75 * to_target


def test_bad_landmarks_and_options_are_refused():
    image, points = _textured(6), _face_points()
    with pytest.raises(LandmarkSwapError, match="68 finite"):
        landmark_swap(image, points[:5], image, points)
    with pytest.raises(LandmarkSwapError, match="68 finite"):
        landmark_swap(image, points, image, np.full((68, 2), np.nan))
    with pytest.raises(LandmarkSwapError, match="uint8"):
        landmark_swap(image.astype(np.float32), points, image, points)
    with pytest.raises(LandmarkSwapError, match="blend"):
        landmark_swap(image, points, image, points, blend="magic")
    with pytest.raises(LandmarkSwapError, match="forehead"):
        landmark_swap(image, points, image, points, forehead=-0.1)
    with pytest.raises(LandmarkSwapError, match="empty|outside"):
        landmark_swap(image, points, image, points + 1000.0)


def test_a_face_that_fills_its_crop_is_still_poisson_blended():
    """The forehead points reach the top of an aligned crop: the Poisson solve runs in a padded copy instead of
    giving up (the old alpha fallback kept far less of the source)."""
    source, target = _textured(9), _textured(10)
    points = _face_points(scale=1.45, shift=(0.0, -4.0))
    region = swap_region(points, (SIZE, SIZE))
    ys, xs = np.nonzero(region)
    assert ys.min() == 0 or xs.min() == 0 or xs.max() == SIZE - 1 or ys.max() == SIZE - 1  # touches the border
    out = landmark_swap(source, points, target, points, color_transfer=False)
    assert np.array_equal(out[region == 0], target[region == 0])
    # Over nearly the whole face (the alpha blend's feather, eroded inwards, measured equally near both here).
    core = face_hull_mask(points, (SIZE, SIZE), shrink=0.9) > 0
    to_source = np.abs(out[core].astype(int) - source[core].astype(int)).mean()
    to_target = np.abs(out[core].astype(int) - target[core].astype(int)).mean()
    assert to_source < 0.5 * to_target


def test_numpy_triangle_transforms_are_qhulls():
    from scipy.spatial import Delaunay

    rng = np.random.default_rng(7)
    for points in [with_forehead(_face_points(), FOREHEAD, (SIZE, SIZE))[np.r_[WARP_POINTS, 68:78]],
                   *(rng.uniform(-5, 130, (70, 2)) for _ in range(20))]:
        triangulation = Delaunay(points)
        ours = triangle_transforms(points, triangulation.simplices)
        assert np.array_equal(np.isnan(ours), np.isnan(triangulation.transform))
        np.testing.assert_allclose(ours, triangulation.transform, rtol=0, atol=1e-9)
    # Three points on a line make a flat triangle: no transform, as qhull marks it.
    flat = triangle_transforms(np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]]), np.array([[0, 1, 2]]))
    assert np.isnan(flat).all()


@pytest.mark.parametrize(("scale", "shift"), [(1.0, (0.0, 0.0)), (0.9, (4.0, -3.0)), (1.15, (-2.5, 1.5))])
def test_the_live_streams_numpy_transforms_warp_exactly_as_qhulls(scale, shift):
    """The cheaper transforms leave the warp's output unchanged, pixel for pixel (here and on 300 random point sets
    measured), so the live stream shows what a video swap would."""
    source, src_points = _textured(11), _face_points()
    dst_points = with_forehead(_face_points(scale, shift), FOREHEAD, (SIZE, SIZE))
    src_points = with_forehead(src_points, FOREHEAD, (SIZE, SIZE))
    reference = warp_to_landmarks(source, src_points, dst_points, (SIZE, SIZE))
    assert np.array_equal(warp_to_landmarks(source, src_points, dst_points, (SIZE, SIZE), transforms="numpy"),
                          reference)
    target, points68 = _textured(12), _face_points(scale, shift)
    for qhull, numpy_ in [(warp_paste(source, _face_points(), target, points68),
                           warp_paste(source, _face_points(), target, points68, transforms="numpy")),
                          ((landmark_swap(source, _face_points(), target, points68),),
                           (landmark_swap(source, _face_points(), target, points68, transforms="numpy"),))]:
        for expected, got in zip(qhull, numpy_, strict=True):
            assert np.array_equal(expected, got)
    with pytest.raises(LandmarkSwapError, match="transforms must be one of"):
        warp_to_landmarks(source, src_points, dst_points, (SIZE, SIZE), transforms="lapack")
