"""`clipswap train-occluder`: the drawn occluders land where they should and are labelled as drawn, the accuracy
figures are what their definitions say, and a short run on real LFW faces writes a network that loads (and a changed
file is refused)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from clipswap.checkpoints.errors import CheckpointError
from clipswap.checkpoints.native import sha256_of
from clipswap.checkpoints.occluder import load_occluder, read_occluder_manifest
from clipswap.cli import main
from clipswap.models.occluder import OccluderNet
from clipswap.training.geometry import load_geometry_data
from clipswap.training.occluder import (
    CLEAN,
    CLEAR_LENS_OPACITY,
    accuracy,
    draw_clear_glasses,
    draw_object,
    draw_sunglasses,
    face_hulls,
    glasses_on_faces,
    occlude,
)

from conftest import lfw_pairs_folder

SIDE = 96


@pytest.fixture(scope="module")
def pairs_folder(tmp_path_factory):
    return lfw_pairs_folder(tmp_path_factory.mktemp("occluder"))


@pytest.fixture(scope="module")
def faces(pairs_folder):
    return load_geometry_data(pairs_folder, SIDE)


def _at(image: np.ndarray, point: np.ndarray) -> float:
    x, y = np.round(point).astype(int)
    return float(image[y, x])


def _drawn(faces, draw):
    """(eye centres, mouth centre, colour, opacity) of `draw` on every face, five seeds each, in crop pixels."""
    for k in range(len(faces.images)):
        pixels = faces.points[k] * SIDE - 0.5
        eyes = pixels[36:42].mean(axis=0), pixels[42:48].mean(axis=0)
        mouth = pixels[60:68].mean(axis=0)
        for seed in range(5):
            yield (eyes, mouth, *draw(SIDE, pixels, np.random.default_rng([k, seed])))


def test_drawn_sunglasses_cover_both_eyes_and_leave_the_mouth(faces):
    for eyes, mouth, colour, opacity in _drawn(faces, draw_sunglasses):
        assert colour.shape == (SIDE, SIDE, 3) and opacity.shape == (SIDE, SIDE)
        assert 0.0 <= opacity.min() and opacity.max() <= 1.0 and 0.0 <= colour.min() and colour.max() <= 255.0
        for eye in eyes:
            assert _at(opacity, eye) >= 0.8
        assert _at(opacity, mouth) == 0.0
        # Dark lenses (a frame may be metallic, a glint white): the colour around each eye is dark.
        for eye in eyes:
            x, y = np.round(eye).astype(int)
            assert np.median(colour[y - 2 : y + 3, x - 2 : x + 3]) < 130


def test_clear_glasses_show_the_eyes_through_the_lenses_behind_an_opaque_frame(faces):
    for eyes, mouth, colour, opacity in _drawn(faces, draw_clear_glasses):
        assert 0.0 <= colour.min() and colour.max() <= 255.0
        for eye in eyes:
            assert _at(opacity, eye) <= CLEAR_LENS_OPACITY[1] + 1e-6
        assert opacity.max() > 0.95 and _at(opacity, mouth) == 0.0


def test_glasses_on_faces_draws_with_its_probability_from_its_seed(faces):
    images = np.repeat(faces.images.astype(np.float32) / 127.5 - 1.0, 4, axis=0)[:32]
    points = np.repeat(faces.points, 4, axis=0)[:32]
    kept = images.copy()
    np.testing.assert_array_equal(glasses_on_faces(images, points, 0.0, [1, 2]), images)
    drawn = glasses_on_faces(images, points, 1.0, [1, 2])
    np.testing.assert_array_equal(images, kept)  # a new array; the input is left as it was
    assert drawn.dtype == np.float32 and -1.0 <= drawn.min() and drawn.max() <= 1.0
    np.testing.assert_array_equal(drawn, glasses_on_faces(images, points, 1.0, [1, 2]))
    assert not np.array_equal(drawn, glasses_on_faces(images, points, 1.0, [1, 3]))
    assert (np.abs(drawn - images).max(axis=(1, 2, 3)) > 0.1).all()
    half = np.abs(glasses_on_faces(images, points, 0.5, [7]) - images).max(axis=(1, 2, 3)) > 0
    assert 4 <= half.sum() <= 28
    unknown = points.copy()
    unknown[0, 5] = np.nan
    np.testing.assert_array_equal(glasses_on_faces(images, unknown, 1.0, [1, 2])[0], images[0])


def test_a_drawn_object_overlaps_the_face(faces):
    hulls = face_hulls(faces.points, SIDE)
    for seed in range(20):
        rng = np.random.default_rng(seed)
        pixels = faces.points[0] * SIDE - 0.5
        colour, opacity = draw_object(SIDE, pixels, faces.images[1], rng)
        assert colour.shape == (SIDE, SIDE, 3) and colour.dtype == np.float32
        assert (opacity >= 0.5).any() and ((opacity >= 0.5) & hulls[0]).any()
        assert ((opacity >= 0.5) & hulls[0]).sum() < hulls[0].sum()  # never the whole face


def test_occlude_labels_what_it_draws_and_leaves_a_share_clean(faces):
    clean = empty_forced = 0
    draws = 120
    for seed in range(draws):
        rng = np.random.default_rng(seed)
        composite, label = occlude(faces.images[0], faces.points[0], faces.images[1], rng)
        assert composite.shape == (SIDE, SIDE, 3) and composite.dtype == np.uint8
        assert label.shape == (SIDE, SIDE) and set(np.unique(label)) <= {0.0, 1.0}
        clean += not label.any()
        _, forced = occlude(faces.images[0], faces.points[0], faces.images[1], np.random.default_rng(seed), force=True)
        empty_forced += not forced.any()
    assert abs(clean / draws - CLEAN) < 0.12
    # A forced draw is always labelled but for a rare object too thin to reach opacity one half (1 in 300 here).
    assert empty_forced <= 2


def test_accuracy_by_hand():
    labels = np.zeros((2, 4, 4), np.float32)
    labels[0, :2] = 1  # 8 occluded pixels
    predicted = np.zeros((2, 4, 4), np.float32)
    predicted[0, :1] = 0.9  # 4 of them found
    predicted[0, 3, 0] = 0.7  # and one false pixel
    hulls = np.zeros((2, 4, 4), bool)
    hulls[:, 1:3, 1:3] = True
    clean = np.zeros((2, 4, 4), np.float32)
    clean[0, 1, 1] = 0.6  # a quarter of face 0's hull; none of face 1's
    result = accuracy(predicted, labels, clean, hulls)
    assert result["iou_percent"] == pytest.approx(100 * 4 / 9)
    assert result["recall_percent"] == pytest.approx(50.0)
    assert result["false_positive_percent"] == pytest.approx(12.5)
    assert result["faces"] == 2


def test_a_short_run_writes_a_loadable_network_with_its_accuracy(pairs_folder, tmp_path):
    result = CliRunner().invoke(main, ["train-occluder", "--data", str(pairs_folder), "--output", str(tmp_path),
                                       "--steps", "3", "--batch-size", "4", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "IoU" in result.output and "recall" in result.output and "called occluded" in result.output
    manifest = read_occluder_manifest(tmp_path / "occluder.json")
    for key in ("iou_percent", "recall_percent", "false_positive_percent"):
        assert 0.0 <= manifest["accuracy"][key] <= 100.0
    assert manifest["training"]["steps"] == 3 and "--batch-size 4" in manifest["training"]["command"]
    assert json.loads((tmp_path / "occluder.json").read_text())["sha256"] == sha256_of(tmp_path / "occluder.keras")
    model = load_occluder(tmp_path / "occluder.keras")
    assert isinstance(model, OccluderNet) and not model.trainable_weights
    out = np.asarray(model(np.zeros((2, 128, 128, 3), "float32")))
    assert out.shape == (2, SIDE, SIDE, 1) and 0.0 <= out.min() and out.max() <= 1.0


def test_a_changed_or_unmanifested_occluder_file_is_refused(pairs_folder, tmp_path):
    result = CliRunner().invoke(main, ["train-occluder", "--data", str(pairs_folder), "--output", str(tmp_path),
                                       "--steps", "1", "--batch-size", "2", "--no-progress"])
    assert result.exit_code == 0, result.output
    weights = tmp_path / "occluder.keras"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="does not match its manifest"):
        load_occluder(weights)
    (tmp_path / "occluder.json").unlink()
    with pytest.raises(CheckpointError, match="no manifest .* beside the occluder network"):
        load_occluder(weights)


def test_train_occluder_refuses_a_folder_that_is_not_pairs(tmp_path):
    result = CliRunner().invoke(main, ["train-occluder", "--data", str(tmp_path), "--output", str(tmp_path / "o")])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "is not a `clipswap pairs` folder" in result.output
    assert not (tmp_path / "o").exists()


def test_the_occluder_net_refuses_a_side_its_encoder_cannot_halve():
    with pytest.raises(ValueError, match="multiple of 32"):
        OccluderNet(input_size=100)
