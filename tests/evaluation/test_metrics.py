"""Evaluation metrics checked against independent computations (no shared data needed)."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest
import scipy.linalg
from skimage.metrics import structural_similarity

from clipswap.evaluation.expression import expression_error, target_alignment
from clipswap.evaluation.fid import fid_from_features, frechet_distance
from clipswap.evaluation.image_quality import face_sharpness_ratio, psnr, ssim
from clipswap.evaluation.pose import (
    MODEL_LANDMARK_INDICES,
    MODEL_POINTS,
    HeadPose,
    camera_matrix,
    estimate_head_pose,
    pose_error,
    rotation_to_euler,
)
from clipswap.evaluation.report import json_safe, render_markdown
from clipswap.evaluation.runner import resolve_cost
from clipswap.face.align import transform_points
from clipswap.face.retrieval import closer_to_source, retrieval_accuracy, retrieve_top1


def _random_covariance(rng: np.random.Generator, dim: int) -> np.ndarray:
    a = rng.normal(size=(dim, dim))
    return a @ a.T / dim + 0.1 * np.eye(dim)


def _scipy_frechet(mu1, sigma1, mu2, sigma2) -> float:
    root = scipy.linalg.sqrtm(sigma1 @ sigma2)
    root = np.real(root)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(sigma1 + sigma2 - 2.0 * root))


@pytest.mark.parametrize("dim", [2, 16, 64])
def test_frechet_distance_matches_scipy_sqrtm(dim):
    rng = np.random.default_rng(dim)
    mu1, mu2 = rng.normal(size=dim), rng.normal(size=dim)
    sigma1, sigma2 = _random_covariance(rng, dim), _random_covariance(rng, dim)
    ours = frechet_distance(mu1, sigma1, mu2, sigma2)
    reference = _scipy_frechet(mu1, sigma1, mu2, sigma2)
    assert ours == pytest.approx(reference, rel=1e-7, abs=1e-7)


def test_fid_from_random_gaussian_samples_matches_scipy_and_is_zero_for_itself():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(400, 8))
    b = rng.normal(loc=0.5, scale=1.5, size=(300, 8))
    reference = _scipy_frechet(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    assert fid_from_features(a, b) == pytest.approx(reference, rel=1e-7)
    assert fid_from_features(a, a) == pytest.approx(0.0, abs=1e-9)
    # Two samples of N(0, I) and N(0.5, 2.25 I) in 8-d: 8 * 0.25 + 8 * (1 + 2.25 - 2 * 1.5) = 4.0 in expectation.
    assert 2.5 < fid_from_features(a, b) < 5.5


@pytest.mark.parametrize(("n_a", "n_b"), [(12, 9), (30, 30)])
def test_fid_with_fewer_samples_than_dimensions_matches_scipy(n_a, n_b):
    # Rank-deficient covariances: the N x M singular-value route must agree with sqrtm on the D x D product.
    rng = np.random.default_rng(n_a)
    a = rng.normal(size=(n_a, 40))
    b = rng.normal(loc=0.3, size=(n_b, 40)) @ rng.normal(size=(40, 40)) / 6.0
    reference = _scipy_frechet(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    assert fid_from_features(a, b) == pytest.approx(reference, rel=1e-6)
    assert fid_from_features(a, b) == pytest.approx(
        frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False)), rel=1e-6
    )


def test_frechet_distance_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="shape mismatch"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))


def test_psnr_matches_direct_computation_and_identical_images_give_inf():
    rng = np.random.default_rng(1)
    target = rng.integers(0, 256, size=(32, 40, 3), dtype=np.uint8)
    swap = np.clip(target.astype(int) + rng.integers(-20, 21, size=target.shape), 0, 255).astype(np.uint8)
    mse = np.mean((target.astype(np.float64) - swap.astype(np.float64)) ** 2)
    assert psnr(target, swap) == pytest.approx(10.0 * math.log10(255.0**2 / mse), abs=1e-9)
    assert psnr(target, target) == math.inf


def test_face_sharpness_ratio_is_one_for_the_target_and_falls_with_blur():
    rng = np.random.default_rng(0)
    target = rng.uniform(0, 255, (120, 120, 3))
    # A face-sized ring of 68 points around the centre, eyes 40 px apart (points 36 and 45).
    angles = np.linspace(0, 2 * np.pi, 68, endpoint=False)
    points = np.stack([60 + 40 * np.cos(angles), 60 + 40 * np.sin(angles)], axis=1)
    points[36], points[45] = (40, 50), (80, 50)
    assert face_sharpness_ratio(target, target, points) == pytest.approx(1.0)
    ratios = [face_sharpness_ratio(target, cv2.GaussianBlur(target, (0, 0), sigma), points) for sigma in (0.5, 1, 2)]
    assert 1 > ratios[0] > ratios[1] > ratios[2] > 0
    # Only the face counts: blurring everything outside the hull changes nothing.
    outside = cv2.GaussianBlur(target, (0, 0), 3)
    mask = np.zeros((120, 120), np.uint8)
    cv2.fillConvexPoly(mask, cv2.convexHull(np.round(points).astype(np.int32)), 255)
    outside[mask > 0] = target[mask > 0]
    assert face_sharpness_ratio(target, outside, points) == pytest.approx(1.0, abs=0.02)
    # By hand: the Laplacian variance inside the eroded hull, swap over target.
    swap = target * 0.5
    assert face_sharpness_ratio(target, swap, points) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="flat"):
        face_sharpness_ratio(np.full((120, 120, 3), 7.0), target, points)


def test_ssim_equals_scikit_image_and_is_one_for_identical_images():
    rng = np.random.default_rng(2)
    target = rng.integers(0, 256, size=(48, 48, 3), dtype=np.uint8)
    swap = cv2.GaussianBlur(target, (5, 5), 1.0)
    reference = structural_similarity(target, swap, channel_axis=-1, data_range=255)
    assert abs(ssim(target, swap) - reference) < 1e-6
    assert ssim(target, target) == pytest.approx(1.0, abs=1e-12)
    with pytest.raises(ValueError, match="same size"):
        ssim(target, target[:, :40])


# scikit-image's SSIM defaults as ssim() uses them: 7x7 uniform window, K1 = 0.01, K2 = 0.03, L = 255, sample
# (N - 1) covariances, mean over the windows that lie wholly inside the image, then over channels.
_WIN, _C1, _C2 = 7, (0.01 * 255.0) ** 2, (0.03 * 255.0) ** 2


def _ssim_by_hand(x: np.ndarray, y: np.ndarray) -> float:
    """The SSIM formula transcribed window by window (no filtering library), for [H, W, C] images."""
    x, y = x.astype(np.float64), y.astype(np.float64)
    height, width, channels = x.shape
    per_channel = []
    for c in range(channels):
        values = []
        for i in range(height - _WIN + 1):
            for j in range(width - _WIN + 1):
                a = x[i : i + _WIN, j : j + _WIN, c].ravel()
                b = y[i : i + _WIN, j : j + _WIN, c].ravel()
                mu_a, mu_b = a.mean(), b.mean()
                var_a, var_b = a.var(ddof=1), b.var(ddof=1)
                cov = ((a - mu_a) * (b - mu_b)).sum() / (a.size - 1)
                values.append(
                    (2 * mu_a * mu_b + _C1) * (2 * cov + _C2) / ((mu_a**2 + mu_b**2 + _C1) * (var_a + var_b + _C2))
                )
        per_channel.append(np.mean(values))
    return float(np.mean(per_channel))


def test_ssim_of_a_constant_offset_matches_the_formula_by_hand():
    # Flat images: no variance, so every window's SSIM is the luminance term (2 m n + C1) / (m^2 + n^2 + C1).
    target = np.full((20, 24, 3), 100, np.uint8)
    swap = target + np.uint8(20)
    expected = (2 * 100 * 120 + _C1) / (100**2 + 120**2 + _C1)
    assert ssim(target, swap) == pytest.approx(expected, abs=1e-9)
    assert abs(expected - 0.98361) < 1e-4  # 24006.5025 / 24406.5025


def test_ssim_matches_a_numpy_transcription_of_the_formula():
    rng = np.random.default_rng(7)
    target = rng.integers(0, 256, size=(12, 14, 3), dtype=np.uint8)
    swap = np.clip(target.astype(int) + rng.integers(-90, 91, size=target.shape), 0, 255).astype(np.uint8)
    reference = _ssim_by_hand(target, swap)
    assert 0.5 < reference < 0.9
    assert abs(ssim(target, swap) - reference) < 1e-6


def euler_to_rotation(pose: HeadPose) -> np.ndarray:
    """[3, 3] R = Rz(roll) @ Ry(yaw) @ Rx(pitch), the composition pose.rotation_to_euler decomposes."""
    yaw, pitch, roll = np.radians(pose.as_array())
    rx = np.array([[1, 0, 0], [0, np.cos(pitch), -np.sin(pitch)], [0, np.sin(pitch), np.cos(pitch)]])
    ry = np.array([[np.cos(yaw), 0, np.sin(yaw)], [0, 1, 0], [-np.sin(yaw), 0, np.cos(yaw)]])
    rz = np.array([[np.cos(roll), -np.sin(roll), 0], [np.sin(roll), np.cos(roll), 0], [0, 0, 1]])
    return rz @ ry @ rx


def _projected_landmarks(pose: HeadPose, width: int = 640, height: int = 480) -> np.ndarray:
    """68 landmarks whose six model-matched points are the exact projection of the generic head at `pose`."""
    rotation_vector, _ = cv2.Rodrigues(euler_to_rotation(pose))
    translation = np.array([30.0, -20.0, 2500.0])
    points, _ = cv2.projectPoints(MODEL_POINTS, rotation_vector, translation, camera_matrix(width, height), None)
    landmarks = np.zeros((68, 2))
    landmarks[list(MODEL_LANDMARK_INDICES)] = points.reshape(-1, 2)
    return landmarks


def test_euler_round_trip():
    pose = HeadPose(yaw=25.0, pitch=-12.0, roll=7.5)
    assert np.allclose(rotation_to_euler(euler_to_rotation(pose)).as_array(), pose.as_array())


@pytest.mark.parametrize("angles", [(0.0, 0.0, 0.0), (30.0, 0.0, 0.0), (-20.0, 10.0, 5.0), (15.0, -15.0, -10.0)])
def test_head_pose_recovers_the_rotation_of_projected_model_points(angles):
    pose = estimate_head_pose(_projected_landmarks(HeadPose(*angles)), (640, 480))
    assert np.allclose(pose.as_array(), angles, atol=0.05)


def test_head_pose_fits_with_the_camera_it_is_given():
    # The six points of a head turned 30 degrees, seen by a long lens (focal 1,600 px in a 640 px image): the fit with
    # that focal length recovers the rotation; the default camera (focal = width) reads another one, since six points
    # fix the rotation only loosely against the perspective.
    angles = (30.0, -12.0, 4.0)
    rotation_vector, _ = cv2.Rodrigues(euler_to_rotation(HeadPose(*angles)))
    points, _ = cv2.projectPoints(MODEL_POINTS, rotation_vector, np.array([0.0, 0.0, 4000.0]),
                                  camera_matrix(640, 480, focal=1600.0), None)
    landmarks = np.zeros((68, 2))
    landmarks[list(MODEL_LANDMARK_INDICES)] = points.reshape(-1, 2)
    assert camera_matrix(640, 480)[0, 0] == 640 and camera_matrix(640, 480, focal=1600.0)[1, 1] == 1600
    assert np.allclose(estimate_head_pose(landmarks, (640, 480), focal=1600.0).as_array(), angles, atol=0.05)
    assert np.abs(estimate_head_pose(landmarks, (640, 480)).as_array() - angles).max() > 1.0
    for focal in (0.0, -5.0, float("nan")):
        with pytest.raises(ValueError, match="focal must be a positive number"):
            estimate_head_pose(landmarks, (640, 480), focal=focal)


def test_head_pose_sign_convention_and_mirror():
    landmarks = _projected_landmarks(HeadPose(yaw=25.0, pitch=8.0, roll=6.0))
    # Positive yaw = the nose points to the image's left: the nose tip lies left of the outer eye corners' midpoint.
    assert landmarks[30, 0] < landmarks[[36, 45], 0].mean()
    # Mirror horizontally; dlib numbers points by image side, so left and right points exchange indices.
    mirrored = landmarks.copy()
    mirrored[:, 0] = 640 - landmarks[:, 0]
    for a, b in ((36, 45), (48, 54)):
        mirrored[[a, b]] = mirrored[[b, a]]
    pose = estimate_head_pose(mirrored, (640, 480))
    assert np.allclose(pose.as_array(), [-25.0, 8.0, -6.0], atol=0.05)
    # Error = L2 over (yaw, pitch, roll): sqrt(50^2 + 0^2 + 12^2).
    assert pose_error(HeadPose(25.0, 8.0, 6.0), pose) == pytest.approx(math.hypot(50.0, 12.0), abs=0.1)


def _face68(rng: np.random.Generator) -> np.ndarray:
    """A plausible 68-point face: random points plus eyes, nose and mouth where a frontal face has them."""
    points = rng.uniform(80, 170, size=(68, 2))
    points[36:42] = [100, 110] + rng.normal(scale=2, size=(6, 2))
    points[42:48] = [150, 110] + rng.normal(scale=2, size=(6, 2))
    points[30] = [125, 135]
    points[48], points[54] = [105, 160], [145, 160]
    return points


def test_expression_error_is_zero_for_same_landmarks_and_measured_in_crop_pixels():
    rng = np.random.default_rng(3)
    target = _face68(rng)
    assert expression_error(target, target) == 0.0
    matrix = target_alignment(target)
    scale = math.sqrt(abs(np.linalg.det(matrix[:, :2])))
    # A rigid 3-pixel shift of every swap landmark in the image is 3 * scale pixels in the 256 crop.
    assert expression_error(target, target + [3.0, 0.0]) == pytest.approx(3.0 * scale, rel=1e-9)
    # Target eye centres land on the template's eye points (ArcFace at 256) up to the least-squares residual.
    eyes = transform_points(matrix, np.stack([target[36:42].mean(0), target[42:48].mean(0)]))
    assert np.allclose(eyes, [[87.53, 118.16], [168.07, 117.72]], atol=6.0)


def test_top1_retrieval():
    gallery = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.1]])
    predicted = retrieve_top1(np.array([[0.9, 0.1], [0.1, 0.8], [-0.5, 0.0]]), gallery, ["a", "b", "c"])
    assert predicted == ["a", "b", "c"]
    assert (
        retrieve_top1(np.array([[0.9, 0.1], [0.1, 0.8], [-0.5, 0.0]]), gallery, ["a", "b", "c"], block=1) == predicted
    )
    assert retrieval_accuracy(predicted, ["a", "x", "c"]) == pytest.approx(200.0 / 3.0)
    with pytest.raises(ValueError, match="zero or non-finite norm"):
        retrieve_top1(np.zeros((1, 2)), gallery, ["a", "b", "c"])


def test_closer_to_source_with_known_embeddings():
    source, target = np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
    assert closer_to_source(np.array([0.9, 0.1, 0.2]), source, target)
    assert not closer_to_source(np.array([0.1, 0.9, 0.2]), source, target)
    # Output = source and output = target, the two baselines: always and never closer.
    assert closer_to_source(source, source, target) and not closer_to_source(target, source, target)
    # A tie is not closer; raw (not unit-length) vectors compare by direction only.
    assert not closer_to_source(np.array([1.0, 1.0, 0.0]), source, target)
    assert closer_to_source(np.array([30.0, 20.0, 0.0]), 5.0 * source, 0.01 * target)
    # For unit vectors, a higher cosine is a smaller Euclidean distance.
    rng = np.random.default_rng(0)
    for _ in range(50):
        swap, a, b = (v / np.linalg.norm(v) for v in rng.normal(size=(3, 8)))
        assert closer_to_source(swap, a, b) == (np.linalg.norm(swap - a) < np.linalg.norm(swap - b))
    with pytest.raises(ValueError, match="zero or non-finite norm"):
        closer_to_source(np.zeros(3), source, target)


def test_json_safe_writes_strict_json():
    data = {"psnr": math.inf, "bad": math.nan, "nested": [1.0, -math.inf]}
    text = json.dumps(json_safe(data), allow_nan=False)
    assert json.loads(text) == {"psnr": "inf", "bad": None, "nested": [1.0, "-inf"]}


def test_resolve_cost_from_mapping_objects_and_callables():
    class Part:
        def __init__(self, name, params, macs):
            self.name, self.params, self.macs = name, params, macs

    assert resolve_cost(None)["params"] is None
    assert resolve_cost({"params": 10, "macs": 20}) == {"params": 10, "macs": 20, "note": ""}
    summed = resolve_cost(lambda: [Part("generator", 5, 7), Part("arcface", 1, 2)])
    assert summed == {"params": 6, "macs": 9, "note": "generator + arcface"}


def test_markdown_puts_our_row_beside_the_paper():
    aggregate = {
        "id_retrieval": {"value": 50.0, "n": 4, "failed": 1},
        "id_similarity": {"value": 0.5, "n": 4, "failed": 1},
        "closer_to_source": {"value": 75.0, "n": 4, "failed": 1},
        "psnr": {"value": math.inf, "n": 5, "failed": 0},
        "cost": {"params": 174_230_000, "macs": 53_560_000_000},
    }
    text = render_markdown({"num_pairs": 5, "identity_model": "sface", "aggregate": aggregate, "failures": {}})
    assert "| Closer to source % ↑ | 75.00 | 4 | 1 |" in text
    assert "| ClipSwap (paper) | 98.91 | 1.73 | 5.76 | 0.98 | 33.04 | 53.56 | 174.23 |" in text
    assert "| **this run** | 50.00 | — | — | — | ∞ | 53.56 | 174.23 |" in text
    assert "identity model: sface" in text


def test_the_metric_registry_drives_the_report_and_the_aggregate():
    from clipswap.evaluation.metrics import BY_KEY, COST_METRICS, METRICS, PAIR_METRICS, SWAP_METRICS, Metric
    from clipswap.evaluation.report import METRIC_COLUMNS, OUR_METRICS
    from clipswap.evaluation.runner import _aggregate

    assert list(METRIC_COLUMNS) == [m.key for m in METRICS] and OUR_METRICS == SWAP_METRICS
    assert COST_METRICS == ("gmacs", "params_m", "latency_ms") and set(SWAP_METRICS).isdisjoint(COST_METRICS)
    assert all(("↑" in m.heading) == (m.higher_is_better is True) for m in METRICS)
    assert all(("↓" in m.heading) == (m.higher_is_better is False) for m in METRICS)
    with pytest.raises(ValueError, match="kind must be one of"):
        Metric("x", "X", "{}", True, "mean")
    with pytest.raises(ValueError, match="exactly for kind 'pair'"):
        Metric("x", "X", "{}", True, "pair")

    class NoGallery:
        identity_model = None

        def __call__(self, *args, **kwargs):
            raise AssertionError("no pair has an output, so nothing is analysed")

    # Every pair metric is summarised from its per-pair field: two records, one of them missing each field.
    records = [{m.field: 1.0 for m in PAIR_METRICS}, {}]
    records[0]["closer_to_source"] = True
    aggregate = _aggregate([], records, NoGallery())
    for metric in PAIR_METRICS:
        entry = aggregate[metric.key]
        assert entry["value"] == pytest.approx(metric.scale) and entry["n"] == 1 and entry["failed"] == 1
    assert BY_KEY["closer_to_source"].note in aggregate["closer_to_source"]["note"]
    assert aggregate["id_retrieval"]["value"] is None
