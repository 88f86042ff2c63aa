"""The keypoint flow's shape transfer (ModelConfig.keypoint_shape): the destination points keep the target's six
pose points and take the source's pose-free shape elsewhere, in the share asked for; the pose directions are fitted
from labelled faces and travel with the checkpoint; tools/shape_transfer.py adds them to a trained generator."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import tensorflow as tf
from test_source_image import _inputs

from clipswap.config import ModelConfig, get_preset
from clipswap.face.head_pose import MODEL_LANDMARK_INDICES, MODEL_POINTS, estimate_head_pose
from clipswap.layers.shape_transfer import FIXED_POINTS, ShapeTransfer
from clipswap.models.geometry import RIGID
from clipswap.models.shape_directions import (
    ShapeDirectionsError,
    fit_pose_directions,
    pose_directions_from_pairs,
    pose_features,
)

from conftest import REPO_ROOT

KEYPOINTS = get_preset("tiny").model.replace(conditioning="target+keypoint_flow")
#: Points that are neither rigid (the alignment's) nor fixed (the pose fit's): where the source's shape shows.
FREE = [i for i in range(68) if i not in RIGID and i not in FIXED_POINTS]


def _face(rng, batch=2):
    return (0.5 + 0.15 * rng.standard_normal((batch, 68, 2))).astype("float32")


def _similarity(points, angle, scale, shift):
    c, s = np.cos(angle), np.sin(angle)
    return (scale * points @ np.array([[c, s], [-s, c]], "float32") + shift).astype("float32")


def _layer(share, directions=None):
    layer = ShapeTransfer(share)
    layer.build([(None, 68, 2), (None, 68, 2)])
    if directions is not None:
        layer.pose_directions.assign(directions)
    return layer


def test_the_destination_is_the_targets_points_with_the_sources_shape_moved_back_into_the_targets_frame():
    """A source that is the target moved by a similarity, with its brow and an eyelid raised: at share 1 the
    destination is the target with the same raise (in the target's frame), at share 0.5 half of it; the six pose
    points stay the target's although the source moved them too."""
    assert set(FIXED_POINTS) == set(MODEL_LANDMARK_INDICES)
    rng = np.random.default_rng(0)
    target = _face(rng)
    shaped = target.copy()
    shaped[:, [19, 37]] += np.array([0.0, -0.04], "float32")
    shaped[:, [8, 48, 54]] += 0.03  # the source's chin and mouth corners (pose points, not rigid) moved too
    assert not {19, 37, 8, 48, 54} & set(RIGID) and {8, 48, 54} < set(FIXED_POINTS)
    source = _similarity(shaped, 0.3, 1.4, np.array([0.1, -0.05], "float32"))
    expected = target.copy()
    expected[:, [19, 37]] += np.array([0.0, -0.04], "float32")
    np.testing.assert_allclose(_layer(1.0)([target, source]).numpy(), expected, atol=1e-5)
    half = target.copy()
    half[:, [19, 37]] += np.array([0.0, -0.02], "float32")
    np.testing.assert_allclose(_layer(0.5)([target, source]).numpy(), half, atol=1e-5)
    np.testing.assert_allclose(_layer(0.0)([target, source]).numpy(), target, atol=1e-6)


def test_the_pose_directions_are_removed_from_the_sources_shape():
    """A source that differs from the target along a fitted direction only keeps the target's points; a shape
    change orthogonal to the directions passes whole."""
    rng = np.random.default_rng(1)
    target = _face(rng)
    directions = np.zeros((68, 2, 5), "float32")
    directions[FREE, :, :] = rng.standard_normal((len(FREE), 2, 5))
    directions, _ = np.linalg.qr(directions.reshape(136, 5))
    turn = (directions @ np.array([0.3, -0.2, 0.1, 0.0, 0.05], "float32")).reshape(68, 2)
    layer = _layer(1.0, directions)
    assert layer.fitted and not _layer(1.0).fitted
    np.testing.assert_allclose(layer([target, target + turn]).numpy(), target, atol=1e-5)
    other = np.zeros((136,), "float32")
    other[2 * FREE[0]] = 0.05
    other -= directions @ (directions.T @ other)  # orthogonal to every direction, on free points only
    np.testing.assert_allclose(layer([target, target + turn + other.reshape(68, 2)]).numpy(),
                               target + other.reshape(68, 2), atol=1e-5)


def test_the_gradient_reaches_both_point_sets():
    rng = np.random.default_rng(2)
    target, source = (tf.constant(_face(rng)) for _ in range(2))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([target, source])
        out = tf.reduce_sum(tf.square(_layer(0.7)([target, source])))
    for grad in tape.gradient(out, [target, source]):
        assert np.isfinite(grad.numpy()).all() and np.abs(grad.numpy()).sum() > 0


def test_a_share_outside_zero_to_one_and_a_shape_without_a_keypoint_flow_are_refused():
    with pytest.raises(ValueError, match="share must be in"):
        ShapeTransfer(1.5)
    with pytest.raises(ValueError, match="keypoint_shape must be a number from 0 to 1, got -0.1"):
        KEYPOINTS.replace(keypoint_shape=-0.1)
    with pytest.raises(ValueError, match="it needs conditioning 'target\\+keypoint_flow', got 'target'"):
        get_preset("tiny").model.replace(keypoint_shape=0.5)
    assert ModelConfig.from_dict(KEYPOINTS.replace(keypoint_shape=0.5).to_dict()).keypoint_shape == 0.5
    older = {key: value for key, value in KEYPOINTS.to_dict().items() if key != "keypoint_shape"}
    assert ModelConfig.from_dict(older) == KEYPOINTS and KEYPOINTS.keypoint_shape == 0.0


def _head(yaw, pitch, rng_shape):
    """68 points [68, 2] of a generic 3-D head (the pose fit's six points plus fixed random others) turned by
    (yaw, pitch) and projected as the pose fit's camera sees a 128 px crop."""
    head = np.zeros((68, 3))
    head[list(MODEL_LANDMARK_INDICES)] = MODEL_POINTS
    others = [i for i in range(68) if i not in MODEL_LANDMARK_INDICES]
    head[others] = rng_shape
    y, p = np.radians(yaw), np.radians(pitch)
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    turned = head @ (ry @ rx).T / 900.0 + np.array([0, 0, 1.0])
    return 64.0 + 128.0 * turned[:, :2] / turned[:, 2:]


def _pairs_folder(path, rng, count=120):
    """A pairs folder holding only what the fit reads: the manifest's crop size and face_landmarks.npz."""
    path.mkdir()
    base = rng.uniform(-250, 250, (62, 3)) * np.array([1, 1, 0.3])
    poses = np.stack([rng.uniform(-30, 30, count), rng.uniform(-15, 15, count)], axis=1)
    points = np.stack([_head(yaw, pitch, base + rng.normal(0, 8, base.shape)) for yaw, pitch in poses])
    held = np.zeros(count, bool)
    held[:10] = True
    np.savez(path / "face_landmarks.npz", path=np.array([f"p{i}/a.jpg" for i in range(count)]),
             points=points.astype("float32"), heldout=held)
    (path / "pairs_manifest.json").write_text(json.dumps({"size": 128, "landmarks": True}))
    return points, poses, base


def test_the_fit_spans_the_directions_in_which_the_points_move_with_the_head(tmp_path):
    """Faces of one shape (plus noise) turned in yaw and pitch: their offsets from the mean shape lie almost all in
    the fitted directions, and the directions are orthonormal."""
    rng = np.random.default_rng(3)
    points, poses, base = _pairs_folder(tmp_path / "pairs", rng)
    directions = pose_directions_from_pairs(tmp_path / "pairs")
    assert directions.shape == (136, 5) and directions.dtype == np.float32
    np.testing.assert_allclose(directions.T @ directions, np.eye(5), atol=1e-5)
    # The synthetic heads are what the pose fit reads as turned heads (so the fit saw real pose labels).
    fitted = np.array([[estimate_head_pose(p, (128, 128)).yaw, estimate_head_pose(p, (128, 128)).pitch]
                       for p in points])
    for column in range(2):
        assert abs(np.corrcoef(fitted[:, column], poses[:, column])[0, 1]) > 0.95
    assert pose_features(np.array([[30.0, -15.0, 0.0]])).tolist() == [[30.0, -15.0, 30.0, 7.5, -15.0]]
    # The same head turned by 25 degrees against its frontal view: what is left after removing the directions is
    # a small part of the plain difference.
    frontal, turned = _head(0, 0, base) / 128.0, _head(25, 8, base) / 128.0
    layer = _layer(1.0, directions)
    kept = layer([frontal[None].astype("float32"), turned[None].astype("float32")]).numpy()[0] - frontal
    plain = _layer(1.0)([frontal[None].astype("float32"), turned[None].astype("float32")]).numpy()[0] - frontal
    assert np.linalg.norm(kept) < 0.25 * np.linalg.norm(plain), (np.linalg.norm(kept), np.linalg.norm(plain))


def test_a_folder_without_landmarks_and_too_few_faces_are_refused_in_one_sentence(tmp_path):
    with pytest.raises(ShapeDirectionsError, match=r"is not a `clipswap pairs` folder with its faces' landmarks"):
        pose_directions_from_pairs(tmp_path)
    (tmp_path / "pairs_manifest.json").write_text(json.dumps({"size": 128}))
    (tmp_path / "face_landmarks.npz").write_bytes(b"not an archive")
    with pytest.raises(ShapeDirectionsError, match=r"face_landmarks.npz is not a readable landmarks file"):
        pose_directions_from_pairs(tmp_path)
    with pytest.raises(ShapeDirectionsError, match="at least 50 labelled faces, got 3"):
        fit_pose_directions(np.zeros((3, 68, 2)), np.zeros((3, 3)))


def _tool():
    spec = importlib.util.spec_from_file_location("shape_transfer", REPO_ROOT / "tools" / "shape_transfer.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_tool_adds_the_shape_transfer_to_a_trained_generator_and_the_checkpoint_keeps_it(tmp_path, capsys):
    """Every weight of the input carried over, the fitted directions saved and loaded back, the inference form
    built with them, and the swap changes with the source's shape where the plain generator's would not."""
    from clipswap.checkpoints.native import load_generator, save_generator
    from clipswap.models.generator import Generator, inference_generator

    model = Generator(KEYPOINTS)
    for variable in model.trainable_variables:
        variable.assign(variable + np.random.default_rng(len(variable.path)).normal(0, 0.02, variable.shape)
                        .astype("float32"))
    save_generator(model, KEYPOINTS, tmp_path / "plain" / "generator.keras", step=7)
    _pairs_folder(tmp_path / "pairs", np.random.default_rng(4))
    output = tmp_path / "shape" / "generator.keras"
    assert _tool().main(["--generator", str(tmp_path / "plain" / "generator.keras"), "--pairs",
                         str(tmp_path / "pairs"), "--share", "0.8", "--output", str(output)]) == 0
    assert "keypoint_shape 0.8" in capsys.readouterr().out
    loaded = load_generator(output)
    assert loaded.config == KEYPOINTS.replace(keypoint_shape=0.8) and loaded.step == 7
    shape = loaded.model.get_layer("generator_flow_shape")
    assert shape.fitted and shape.share == 0.8
    np.testing.assert_array_equal(shape.pose_directions.numpy(), pose_directions_from_pairs(tmp_path / "pairs"))
    for layer in model.layers:
        for mine, theirs in zip(layer.get_weights(), loaded.model.get_layer(layer.name).get_weights(), strict=True):
            np.testing.assert_array_equal(mine, theirs)
    target, identity, source = _inputs(KEYPOINTS, seed=5)
    plain = model([target, identity, source], training=False).numpy()
    shaped = loaded.model([target, identity, source], training=False).numpy()
    assert np.isfinite(shaped).all() and np.abs(shaped - plain).max() > 1e-4
    folded = inference_generator(loaded.model)
    assert folded.get_layer("generator_flow_shape").fitted
    np.testing.assert_allclose(folded([target, identity, source], training=False).numpy(), shaped, atol=1e-4)


def test_the_tool_refuses_a_generator_without_a_keypoint_flow_in_one_sentence(tmp_path, capsys):
    from clipswap.checkpoints.native import save_generator
    from clipswap.models.generator import Generator

    tiny = get_preset("tiny").model
    save_generator(Generator(tiny), tiny, tmp_path / "generator.keras")
    _pairs_folder(tmp_path / "pairs", np.random.default_rng(6))
    output = tmp_path / "out" / "generator.keras"
    assert _tool().main(["--generator", str(tmp_path / "generator.keras"), "--pairs", str(tmp_path / "pairs"),
                         "--output", str(output)]) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "Traceback" not in error
    assert "needs conditioning 'target+keypoint_flow'" in error and not output.exists()


def test_training_refuses_a_shape_transfer_whose_directions_were_never_fitted():
    from clipswap.models.generator import Generator
    from clipswap.training.assembly import TrainingSetupError, check_shape_directions

    shaped = Generator(KEYPOINTS.replace(keypoint_shape=0.5))
    with pytest.raises(TrainingSetupError, match=r"^model.keypoint_shape needs the pose directions .* tools/shape"):
        check_shape_directions(shaped)
    layer = shaped.get_layer("generator_flow_shape")
    layer.pose_directions.assign(np.eye(136, 5, dtype="float32"))
    check_shape_directions(shaped)
    check_shape_directions(Generator(KEYPOINTS))


def test_the_geometry_term_of_a_shape_generator_compares_with_the_shape_transferred_targets():
    """The att row reads the target's points moved by the generator's own shape transfer towards the source's (the
    same attribute network on the source crop); without the layer, or for a row that is not a geometry row, the
    target's own points."""
    from types import SimpleNamespace

    from keras import ops

    from clipswap.losses.attribute import attribute_term
    from clipswap.models.generator import Generator
    from clipswap.training.features import FeatureSource

    rng = np.random.default_rng(7)
    target_points, source_points = _face(rng, batch=1), _face(rng, batch=1)

    def extractor(images):
        # The target images are 0, the sources 1: the points read are the target's or the source's.
        level = ops.mean(images, axis=(1, 2, 3))[:, None, None]
        return [target_points + level * (source_points - target_points), ops.zeros((images.shape[0], 3))]

    seen = []

    def compare(reference, swap):
        seen.append(np.asarray(reference[0]))
        return ops.sum(reference[0]) * 0.0

    shaped = Generator(KEYPOINTS.replace(keypoint_shape=0.7))
    directions, _ = np.linalg.qr(rng.standard_normal((136, 5)))
    shaped.get_layer("generator_flow_shape").pose_directions.assign(directions.astype("float32"))
    images = {"target": np.zeros((1, 8, 8, 3), "float32"), "source": np.ones((1, 8, 8, 3), "float32")}
    for generator, geometry_row, expected in [
        (shaped, True, _layer(0.7, directions.astype("float32"))([target_points, source_points]).numpy()),
        (shaped, False, target_points),
        (Generator(KEYPOINTS), True, target_points),
    ]:
        source = FeatureSource(extractor=extractor, compare=compare, landmarks_first=geometry_row)
        step = SimpleNamespace(loss=SimpleNamespace(attribute=source, generator=generator),
                               batch=SimpleNamespace(**images), tgt_out={}, src_out={}, swap_out={},
                               swap=np.full((1, 8, 8, 3), 0.5, "float32"))
        attribute_term(step)
        np.testing.assert_allclose(seen[-1], expected, atol=1e-5)
    assert np.abs(seen[0] - target_points).max() > 1e-3
