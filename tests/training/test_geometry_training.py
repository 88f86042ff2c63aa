"""`clipswap train-geometry`: the labels and augmentation keep the landmarks on the face (mirror re-indexing, the
pose of a mirrored face), and a short run on real LFW faces writes a network that loads, with its accuracy."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from clipswap.checkpoints.geometry import load_geometry, read_geometry_manifest
from clipswap.checkpoints.native import sha256_of
from clipswap.cli import main
from clipswap.models.geometry import FLIP, GeometryNet, flip_landmarks, parameter_count
from clipswap.training.geometry import (
    POSE_CROP,
    POSE_FOCAL,
    GeometryBatches,
    accuracy,
    augment,
    load_geometry_data,
    pose_of,
    spread,
)

from conftest import lfw_pairs_folder


@pytest.fixture(scope="module")
def pairs_folder(tmp_path_factory):
    return lfw_pairs_folder(tmp_path_factory.mktemp("geometry"))


def test_flip_table_is_a_mirror_involution():
    assert sorted(FLIP) == list(range(68)) and all(FLIP[FLIP[k]] == k for k in range(68))
    # Left and right pairs swap: the outer eye corners, the mouth corners, the jaw ends; the midline stays.
    assert (FLIP[36], FLIP[48], FLIP[0], FLIP[8], FLIP[30], FLIP[62]) == (45, 54, 16, 8, 30, 62)
    points = np.random.default_rng(0).uniform(0, 1, (2, 68, 2)).astype("float32")
    np.testing.assert_allclose(np.asarray(flip_landmarks(flip_landmarks(points))), points, atol=1e-6)


def test_augmented_labels_follow_the_face(pairs_folder):
    data = load_geometry_data(pairs_folder, 96)
    assert data.images.shape[1:] == (96, 96, 3) and data.points.shape[1:] == (68, 2)
    assert data.heldout.any() and (~data.heldout).any()
    image, points = data.images[0], data.points[0]
    # The mirrored face's pose is the mirrored pose: yaw and roll change sign, pitch stays.
    mirrored = np.asarray(flip_landmarks(points))
    np.testing.assert_allclose(pose_of(mirrored) * [-1, 1, -1], pose_of(points), atol=1.0)
    # Anatomy keeps its image side after a flip: point 36 (image-left outer eye corner) stays left of 45.
    assert mirrored[36, 0] < mirrored[45, 0] and mirrored[48, 0] < mirrored[54, 0]
    for seed in range(6):
        moved_image, moved = augment(image, points, np.random.default_rng(seed))
        assert moved_image.shape == image.shape and moved_image.dtype == np.uint8
        assert moved[36, 0] < moved[45, 0] and moved[48, 0] < moved[54, 0]
    # The labels move with the pixels: a bright dot drawn at point 36 ends where the augmented label of point 36
    # says (or of 45, its mirror, when the draw flipped the face).
    side = image.shape[0]
    dot = np.zeros_like(image)
    x, y = np.round(points[36] * side - 0.5).astype(int)
    dot[y - 1:y + 2, x - 1:x + 2] = 255
    for seed in range(8):
        moved_image, moved = augment(dot, points, np.random.default_rng(seed))
        grey = moved_image.astype(float).sum(axis=2)
        found = np.array(np.unravel_index(np.argmax(grey), grey.shape)[::-1], float)
        labels = moved[[36, 45]] * side - 0.5
        assert np.linalg.norm(labels - found, axis=1).min() < 2.0, (seed, found, labels)
    images, labels = GeometryBatches(data.images, data.points, 4, 2, seed=3)[1]
    assert images.shape == (4, 96, 96, 3) and -1 <= images.min() and images.max() <= 1
    assert labels["landmarks"].shape == (4, 68, 2) and labels["pose"].shape == (4, 3)
    np.testing.assert_array_equal(GeometryBatches(data.images, data.points, 4, 2, seed=3)[1][0], images)


def test_a_short_run_writes_a_loadable_network_with_its_accuracy(pairs_folder, tmp_path):
    result = CliRunner().invoke(main, ["train-geometry", "--data", str(pairs_folder), "--output", str(tmp_path),
                                       "--steps", "3", "--batch-size", "4", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "NME" in result.output and "pose MAE" in result.output and "spread" in result.output
    manifest = read_geometry_manifest(tmp_path / "geometry.json")
    for key in ("nme_percent", "yaw_mae", "pitch_mae", "roll_mae", "pose_l2", "spread"):
        assert np.isfinite(manifest["accuracy"][key])
    assert manifest["parameters"] <= 2_000_000 and manifest["training"]["steps"] == 3
    assert manifest["pose_focal"] == POSE_FOCAL
    model = load_geometry(tmp_path / "geometry.keras")
    out = model(np.zeros((2, 128, 128, 3), "float32"))
    assert tuple(out["landmarks"].shape) == (2, 68, 2) and tuple(out["pose"].shape) == (2, 3)
    assert isinstance(model, GeometryNet)
    assert json.loads((tmp_path / "geometry.json").read_text())["sha256"] == sha256_of(tmp_path / "geometry.keras")


@pytest.mark.slow
def test_a_short_heatmap_run_at_128_px_writes_a_loadable_network(pairs_folder, tmp_path):
    result = CliRunner().invoke(main, ["train-geometry", "--data", str(pairs_folder), "--output", str(tmp_path),
                                       "--steps", "3", "--batch-size", "4", "--head", "heatmap", "--input-size",
                                       "128", "--no-progress"])
    assert result.exit_code == 0, result.output
    manifest = read_geometry_manifest(tmp_path / "geometry.json")
    assert manifest["config"]["head"] == "heatmap" and manifest["config"]["input_size"] == 128
    assert "--head heatmap --input-size 128" in manifest["training"]["command"]
    assert np.isfinite(manifest["accuracy"]["nme_percent"]) and manifest["parameters"] <= 2_000_000
    model = load_geometry(tmp_path / "geometry.keras")
    assert model.head == "heatmap" and model.input_size == 128
    points = np.asarray(model(np.zeros((2, 128, 128, 3), "float32"))["landmarks"])
    assert points.shape == (2, 68, 2) and 0 < points.min() and points.max() < 1


def test_train_geometry_refuses_an_input_size_the_backbone_cannot_divide(tmp_path):
    from clipswap.commands import train_geometry as command
    from clipswap.models import geometry

    # The command spells the heads and the stride itself (its --help starts no TensorFlow): they must agree.
    assert command.HEADS == geometry.HEADS and command.STRIDE == geometry.total_stride(geometry.STRIDES)
    result = CliRunner().invoke(main, ["train-geometry", "--data", str(tmp_path), "--output", str(tmp_path / "o"),
                                       "--input-size", "100"])
    assert result.exit_code == 2 and "not a multiple of 32" in result.output
    assert not (tmp_path / "o").exists()


def test_pose_labels_read_an_aligned_crop_as_the_evaluation_reads_its_photo():
    # A head projected into a 250 px photo by the evaluation's camera (focal = photo width), its six points mapped into
    # a 128 px crop by the similarity an LFW face's alignment has (POSE_FOCAL crop widths = the photo's focal length,
    # the face at the centre): the label fit gives back the rotation the evaluation's fit finds in the photo, where a
    # camera of one crop width (the labels' old camera) reads degrees away.
    from clipswap.face.head_pose import MODEL_LANDMARK_INDICES, MODEL_POINTS, camera_matrix, estimate_head_pose

    scale = POSE_FOCAL * POSE_CROP / 250.0
    for angles in ((25.0, -10.0, 5.0), (-35.0, 8.0, -3.0), (10.0, 15.0, 0.0)):
        rotation_vector = np.radians(np.array(angles))  # any rotation: the two fits are compared with each other
        projected, _ = cv2.projectPoints(MODEL_POINTS, rotation_vector, np.array([0.0, 0.0, 2600.0]),
                                         camera_matrix(250, 250), None)
        photo = np.full((68, 2), 125.0)
        photo[list(MODEL_LANDMARK_INDICES)] = projected.reshape(-1, 2)
        judged = estimate_head_pose(photo, (250, 250)).as_array()
        crop = (photo - 125.0) * scale + POSE_CROP / 2.0
        np.testing.assert_allclose(pose_of((crop + 0.5) / POSE_CROP), judged, atol=0.1)
        old = estimate_head_pose(crop, (POSE_CROP, POSE_CROP)).as_array()
        assert np.abs(old - judged).max() > 1.0


def test_spread_is_the_share_of_each_faces_offset_from_the_average_that_the_points_keep():
    rng = np.random.default_rng(0)
    mean_shape = rng.uniform(0.2, 0.8, (68, 2))
    points = mean_shape + rng.normal(0.0, 0.03, (50, 68, 2))
    assert spread(points, points, mean_shape) == pytest.approx(1.0)
    assert spread(mean_shape + 0.6 * (points - mean_shape), points, mean_shape) == pytest.approx(0.6)
    assert spread(np.broadcast_to(mean_shape, points.shape), points, mean_shape) == pytest.approx(0.0)
    # Noise independent of the face leaves the slope where it is; only the pull toward the average lowers it.
    noisy = mean_shape + 0.6 * (points - mean_shape) + rng.normal(0.0, 0.01, points.shape)
    assert spread(noisy, points, mean_shape) == pytest.approx(0.6, abs=0.05)
    poses = np.stack([pose_of(p) for p in points])
    assert accuracy(points, poses, points, mean_shape)["spread"] == pytest.approx(1.0)
    assert "spread" not in accuracy(points, poses, points)


def test_train_geometry_refuses_a_folder_that_is_not_pairs(tmp_path):
    result = CliRunner().invoke(main, ["train-geometry", "--data", str(tmp_path), "--output", str(tmp_path / "o")])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "is not a `clipswap pairs` folder" in result.output
    assert not (tmp_path / "o").exists()


def test_the_shipped_geometry_network_loads_and_beats_the_mean_shape():
    from clipswap.checkpoints.geometry import SHIPPED_GEOMETRY

    # Committed beside the demo: its absence is a failure, not a skip.
    assert SHIPPED_GEOMETRY.is_file(), f"{SHIPPED_GEOMETRY} is missing"
    model = load_geometry()
    manifest = read_geometry_manifest(SHIPPED_GEOMETRY)
    accuracy, baseline = manifest["accuracy"], manifest["mean_shape_baseline"]
    assert not model.trainable_weights  # frozen: the attribute term never trains it
    assert manifest["parameters"] == parameter_count(GeometryNet(**manifest["config"])) <= 2_000_000
    assert accuracy["faces"] >= 900 and accuracy["nme_percent"] < 0.7 * baseline["nme_percent"]
    assert accuracy["pose_mae"] < 0.6 * baseline["pose_mae"]
    # Its pose head learned the labels this code fits (the evaluation's camera), not an older camera's.
    assert manifest["pose_focal"] == POSE_FOCAL
    assert SHIPPED_GEOMETRY.stat().st_size < 5 * 1024 * 1024
