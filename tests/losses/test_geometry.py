"""The geometry attribute term (eq. 9 with the landmark and pose network): its similarity alignment against an
independent least-squares fit, its units, and that its gradient reaches every generator weight through the frozen
network (a term computed outside the tape would do nothing)."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from clipswap.checkpoints.errors import CheckpointError
from clipswap.checkpoints.geometry import load_geometry, save_geometry
from clipswap.config import RunFiles
from clipswap.losses.composite import LossWeights
from clipswap.losses.geometry import geometry_attribute_loss, geometry_features, similarity_align
from clipswap.models.geometry import RIGID, GeometryNet
from clipswap.training.features import FeatureSource
from clipswap.training.loss import SwapBatch, SwapLoss
from clipswap.training.run import TrainingSetupError, feature_source

from conftest import TRAINER_SIZE, tiny_train_config


def _face(rng, batch=3):
    """[B, 68, 2] points spread like a face in unit coordinates."""
    return (0.5 + 0.2 * rng.standard_normal((batch, 68, 2))).astype("float32")


def _similarity(points, angle, scale, shift):
    c, s = np.cos(angle), np.sin(angle)
    return (scale * points @ np.array([[c, s], [-s, c]], "float32") + shift).astype("float32")


def _lstsq_similarity(points, reference, indices):
    """Independent reference: solve [x -y 1 0; y x 0 1] [a b tx ty]^T = [x' y']^T by least squares."""
    out = []
    for p, q in zip(points, reference, strict=True):
        rows, rhs = [], []
        for i in indices:
            x, y = p[i]
            rows += [[x, -y, 1, 0], [y, x, 0, 1]]
            rhs += [q[i][0], q[i][1]]
        a, b, tx, ty = np.linalg.lstsq(np.array(rows), np.array(rhs), rcond=None)[0]
        out.append(np.stack([a * p[:, 0] - b * p[:, 1] + tx, b * p[:, 0] + a * p[:, 1] + ty], axis=1))
    return np.stack(out)


def test_similarity_align_matches_a_least_squares_fit_and_undoes_a_similarity():
    rng = np.random.default_rng(0)
    reference, points = _face(rng), _face(rng)
    np.testing.assert_allclose(similarity_align(points, reference).numpy(),
                               _lstsq_similarity(points, reference, RIGID), atol=2e-5)
    moved = _similarity(reference, 0.3, 1.4, np.array([0.1, -0.2], "float32"))
    np.testing.assert_allclose(similarity_align(moved, reference).numpy(), reference, atol=2e-5)


def test_geometry_term_is_zero_for_the_target_ignores_position_and_counts_expression_in_its_units():
    rng = np.random.default_rng(1)
    points, pose = _face(rng), rng.uniform(-20, 20, (3, 3)).astype("float32")
    assert float(geometry_attribute_loss([points, pose], [points, pose])) == pytest.approx(0.0, abs=1e-8)
    moved = _similarity(points, -0.2, 0.8, np.array([0.05, 0.03], "float32"))
    assert float(geometry_attribute_loss([points, pose], [moved, pose])) == pytest.approx(0.0, abs=1e-6)
    # Pose off by 10 degrees on one angle of three: 1/3 of a unit.
    off = pose + np.array([10.0, 0.0, 0.0], "float32")
    assert float(geometry_attribute_loss([points, pose], [points, off])) == pytest.approx(1 / 3, rel=1e-5)
    # Every mouth point (48..67, never among the rigid points) moved down by a tenth of the eye distance: 20 of 68
    # points off by one unit in y, the fit unchanged.
    eyes = np.linalg.norm(points[:, 36] - points[:, 45], axis=1)
    opened = points.copy()
    opened[:, 48:, 1] += 0.1 * eyes[:, None]
    expected = 20 / 136
    assert float(geometry_attribute_loss([points, pose], [opened, pose])) == pytest.approx(expected, rel=1e-4)


def test_the_term_reaches_every_generator_weight_through_the_frozen_network(tmp_path):
    from clipswap.training.run import build_networks

    from conftest import tiny_identity_encoder

    config = tiny_train_config(clip=False)
    generator, discriminator = build_networks(config.model)
    net = GeometryNet(input_size=32, widths=(8, 16), strides=(2, 2), stem_width=4, head_width=16, name="geometry")
    save_geometry(net, tmp_path / "geometry.keras")
    frozen = load_geometry(tmp_path / "geometry.keras")
    assert not frozen.trainable_weights
    identity = tiny_identity_encoder("arcface")
    from clipswap.training.features import IdentityNetwork

    source = FeatureSource(extractor=geometry_features(frozen), compare=geometry_attribute_loss)
    loss = SwapLoss(generator, discriminator, IdentityNetwork(identity), LossWeights(perceptual=0, contra=0, att=1),
                    attribute=source)
    rng = np.random.default_rng(2)
    images = [tf.constant(rng.uniform(-1, 1, (2, TRAINER_SIZE, TRAINER_SIZE, 3)).astype("float32")) for _ in "ts"]
    batch = SwapBatch(images[0], images[1], tf.zeros([2]), None, images[1])
    with tf.GradientTape(persistent=True) as tape:
        forward = loss.generator_pass(batch, tf.constant(0, tf.int64))
        att, identity_term = forward.terms["att"], forward.terms["id"]
    assert float(att) > 0 and np.isfinite(float(att))

    def reached(term):
        gradients = tape.gradient(term, generator.trainable_variables)
        return {v.path for v, g in zip(generator.trainable_variables, gradients, strict=True)
                if g is not None and np.any(g.numpy())}

    # At 32 px the tiny generator's 1x1 bottleneck is instance-normalised to zero, so a few weights get no gradient
    # from any term; the geometry term must reach every weight the identity term reaches.
    by_geometry, by_identity = reached(att), reached(identity_term)
    assert len(by_identity) > 0.8 * len(generator.trainable_variables)
    assert by_identity <= by_geometry, f"the geometry term sends no gradient to {sorted(by_identity - by_geometry)}"
    # A copy of the target scores zero: the term compares the swap's geometry with the target's.
    target_features = source.extractor(images[0])
    assert float(geometry_attribute_loss(target_features, source.extractor(images[0]))) == pytest.approx(0.0, abs=1e-6)


def test_the_landmarks_attribute_network_loads_from_the_run_files_or_says_what_is_missing(tmp_path):
    config = tiny_train_config(clip=False, attribute_network="landmarks")
    net = GeometryNet(input_size=32, widths=(8,), strides=(2,), stem_width=4, head_width=8, name="geometry")
    save_geometry(net, tmp_path / "geometry.keras")
    source = feature_source("landmarks", config, RunFiles(attribute_file=str(tmp_path / "geometry.keras")), (), None)
    assert source.compare.func is geometry_attribute_loss
    assert source.compare.keywords == {"pose_weight": 1.0}
    features = source.extractor(tf.zeros([1, 48, 48, 3]))
    assert [tuple(f.shape) for f in features] == [(1, 68, 2), (1, 3)]
    with pytest.raises(TrainingSetupError, match="no manifest .* --attribute-file"):
        feature_source("landmarks", config, RunFiles(attribute_file=str(tmp_path / "absent.keras")), (), None)
    # A changed weights file is refused by its hash.
    with open(tmp_path / "geometry.keras", "ab") as handle:
        handle.write(b"x")
    with pytest.raises(CheckpointError, match="does not match its manifest"):
        load_geometry(tmp_path / "geometry.keras")
    # A manifest without its weights names the option that points at another file (a flag that exists).
    (tmp_path / "geometry.keras").unlink()
    with pytest.raises(CheckpointError, match="does not exist; .* --attribute-file PATH"):
        load_geometry(tmp_path / "geometry.keras")


def test_the_pose_expression_row_compares_the_pose_and_the_eyes_and_mouth_only(tmp_path):
    """Moving the jaw or brows (identity's shape) costs nothing in "pose_expression" and the plain amount in
    "landmarks"; moving a mouth point or the pose costs the hand-computed amount in both."""
    from clipswap.losses.geometry import EXPRESSION_POINTS, LANDMARK_UNIT, POSE_UNIT

    rng = np.random.default_rng(5)
    target = _face(rng, batch=2)
    pose = np.array([[10.0, -5.0, 2.0], [0.0, 3.0, -1.0]], "float32")
    config = tiny_train_config(clip=False, attribute_network="pose_expression")
    net = GeometryNet(input_size=32, widths=(8,), strides=(2,), stem_width=4, head_width=8, name="geometry")
    save_geometry(net, tmp_path / "geometry.keras")
    compare = feature_source("pose_expression", config, RunFiles(attribute_file=str(tmp_path / "geometry.keras")),
                             (), None).compare
    unit = LANDMARK_UNIT * np.linalg.norm(target[:, 36] - target[:, 45], axis=-1)

    outline = target.copy()
    outline[:, [0, 8, 16, 19, 24]] += 0.03  # jaw and brows: neither rigid nor expression points
    assert not set(RIGID) & {0, 8, 16, 19, 24}
    assert float(compare([target, pose], [outline, pose])) == pytest.approx(0.0, abs=1e-9)
    expected_all = np.mean([np.mean(np.square((outline[b] - target[b]) / unit[b])) for b in range(2)])
    assert float(geometry_attribute_loss([target, pose], [outline, pose])) == pytest.approx(expected_all, rel=1e-4)

    mouth = target.copy()
    mouth[:, 57, 1] += 0.02  # the lower lip opens
    moved_pose = pose + np.array([5.0, 0.0, 0.0], "float32")
    expected = np.mean([np.sum(np.square((mouth[b, 57, 1] - target[b, 57, 1]) / unit[b])) / (2 * len(EXPRESSION_POINTS))
                        + np.mean(np.square((moved_pose[b] - pose[b]) / POSE_UNIT)) for b in range(2)])
    assert float(compare([target, pose], [mouth, moved_pose])) == pytest.approx(expected, rel=1e-4)


def test_the_pose_row_compares_the_pose_and_the_six_points_of_the_pose_fit_only(tmp_path):
    """Moving the brows, an eyelid or the upper lip (shape and expression) costs nothing in "pose"; moving the chin
    or the pose angles costs the hand-computed amount, averaged over the six points."""
    from clipswap.face.head_pose import MODEL_LANDMARK_INDICES
    from clipswap.losses.geometry import LANDMARK_UNIT, POSE_POINTS, POSE_UNIT

    assert sorted(POSE_POINTS) == sorted(MODEL_LANDMARK_INDICES) and len(POSE_POINTS) == 6
    rng = np.random.default_rng(6)
    target = _face(rng, batch=2)
    pose = np.array([[-8.0, 4.0, 1.0], [2.0, -3.0, 0.5]], "float32")
    config = tiny_train_config(clip=False, attribute_network="pose")
    net = GeometryNet(input_size=32, widths=(8,), strides=(2,), stem_width=4, head_width=8, name="geometry")
    save_geometry(net, tmp_path / "geometry.keras")
    compare = feature_source("pose", config, RunFiles(attribute_file=str(tmp_path / "geometry.keras")), (),
                             None).compare
    unit = LANDMARK_UNIT * np.linalg.norm(target[:, 36] - target[:, 45], axis=-1)

    shape = target.copy()
    shape[:, [19, 24, 37, 51]] += 0.03  # brows, an upper eyelid, the upper lip: none rigid, none of the six
    assert not set(RIGID) & {19, 24, 37, 51} and not set(POSE_POINTS) & {19, 24, 37, 51}
    assert float(compare([target, pose], [shape, pose])) == pytest.approx(0.0, abs=1e-9)
    assert float(geometry_attribute_loss([target, pose], [shape, pose])) > 0.01

    chin = target.copy()
    chin[:, 8, 1] += 0.02  # the chin drops: not rigid, so the alignment leaves it moved
    assert 8 not in RIGID
    moved_pose = pose + np.array([0.0, 6.0, 0.0], "float32")
    expected = np.mean([np.sum(np.square((chin[b, 8, 1] - target[b, 8, 1]) / unit[b])) / (2 * len(POSE_POINTS))
                        + np.mean(np.square((moved_pose[b] - pose[b]) / POSE_UNIT)) for b in range(2)])
    assert float(compare([target, pose], [chin, moved_pose])) == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize("row", ["landmarks", "pose"])
def test_geometry_pose_weight_scales_the_pose_part_only(tmp_path, row):
    """loss.geometry_pose_weight multiplies the pose part of the term and leaves the landmark part alone: at 4 an
    angle error costs four times the plain term's, at 0 nothing; a moved chin costs the same at any weight."""
    from clipswap.config import ConfigError

    rng = np.random.default_rng(7)
    target = _face(rng, batch=2)
    pose = np.array([[-8.0, 4.0, 1.0], [2.0, -3.0, 0.5]], "float32")
    moved_pose = pose + np.array([6.0, 0.0, 0.0], "float32")
    chin = target.copy()
    chin[:, 8, 1] += 0.02
    net = GeometryNet(input_size=32, widths=(8,), strides=(2,), stem_width=4, head_width=8, name="geometry")
    save_geometry(net, tmp_path / "geometry.keras")
    files = RunFiles(attribute_file=str(tmp_path / "geometry.keras"))

    def compare(weight):
        config = tiny_train_config(clip=False, attribute_network=row, geometry_pose_weight=weight)
        return feature_source(row, config, files, (), None).compare

    plain_pose = float(compare(1.0)([target, pose], [target, moved_pose]))
    assert plain_pose == pytest.approx(36 / 100 / 3, rel=1e-4)  # 6 degrees of 10 on one angle of three
    assert float(compare(4.0)([target, pose], [target, moved_pose])) == pytest.approx(4 * plain_pose, rel=1e-5)
    assert float(compare(0.0)([target, pose], [target, moved_pose])) == pytest.approx(0.0, abs=1e-9)
    plain_chin = float(compare(1.0)([target, pose], [chin, pose]))
    assert plain_chin > 1e-3
    assert float(compare(4.0)([target, pose], [chin, pose])) == pytest.approx(plain_chin, rel=1e-5)
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ConfigError, match="geometry_pose_weight"):
            tiny_train_config(clip=False, attribute_network=row, geometry_pose_weight=bad)
