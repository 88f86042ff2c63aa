"""loss.teacher_turn_gap: a cross-identity pair whose source is turned far from its target keeps no teacher face.
The head turn from 68 points against the 5-point measure (clipswap.face.align.head_turn) on the same faces, the kept
mask by hand, teacher_loss's face part without the left-out samples, SwapLoss.read_batch building the mask from the
batch's landmarks (and refusing a batch without them), and the configuration refusing what cannot use it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from clipswap.config import ConfigError, get_preset
from clipswap.face.align import head_turn
from clipswap.losses.composite import LossWeights
from clipswap.losses.reconstruction import head_turn_68, teacher_kept, teacher_loss
from clipswap.training.assembly import build_networks
from clipswap.training.features import IdentityNetwork
from clipswap.training.loss import SwapLoss

from conftest import tiny_identity_encoder, tiny_train_config

SIZE = 64


def _face(rng, turn: float) -> np.ndarray:
    """[68, 2] points: eye rings around two centres, the nose tip shifted by `turn` eye distances along the eye
    line, everything else scattered; rotated and scaled at random."""
    points = rng.uniform(-0.5, 0.5, (68, 2))
    ring = 0.08 * np.stack([np.cos(np.arange(6) / 6 * 2 * np.pi), np.sin(np.arange(6) / 6 * 2 * np.pi)], -1)
    points[36:42] = np.array([-0.5, 0.0]) + ring
    points[42:48] = np.array([0.5, 0.0]) + ring
    points[30] = [turn, 0.6]
    angle, scale = rng.uniform(-0.5, 0.5), rng.uniform(20, 60)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return (scale * points @ rotation.T + rng.uniform(50, 100, 2)).astype("float32")


def _five(points: np.ndarray) -> np.ndarray:
    """ArcFace-order 5 points of a 68-point face: eye centres, nose tip, mouth corners."""
    return np.stack([points[36:42].mean(0), points[42:48].mean(0), points[30], points[48], points[54]])


def test_head_turn_68_is_the_five_point_turn_and_reads_the_nose_offset_in_eye_distances():
    rng = np.random.default_rng(0)
    turns = [-0.3, -0.1, 0.0, 0.15, 0.4]
    faces = np.stack([_face(rng, t) for t in turns])
    got = np.asarray(head_turn_68(faces))
    np.testing.assert_allclose(got, turns, atol=1e-5)
    np.testing.assert_allclose(got, [head_turn(_five(f)) for f in faces], atol=1e-5)
    mirrored = faces.copy()
    mirrored[..., 0] *= -1.0  # the mirror image, with the eyes renamed (the left one is now on the right)
    mirrored[:, 36:42], mirrored[:, 42:48] = faces[:, 42:48] * [-1, 1], faces[:, 36:42] * [-1, 1]
    np.testing.assert_allclose(np.asarray(head_turn_68(mirrored)), -np.asarray(turns), atol=1e-5)


def test_only_cross_identity_pairs_turned_apart_by_more_than_the_gap_lose_their_teacher():
    rng = np.random.default_rng(1)
    target = np.stack([_face(rng, t) for t in (0.0, 0.0, 0.2, -0.2)])
    source = np.stack([_face(rng, t) for t in (0.3, 0.1, -0.2, 0.3)])
    same = np.array([0.0, 0.0, 1.0, 0.0], "float32")
    # gaps 0.3, 0.1, 0.4 (a same-identity pair), 0.5
    np.testing.assert_array_equal(np.asarray(teacher_kept(same, target, source, 0.25)), [0, 1, 1, 0])
    np.testing.assert_array_equal(np.asarray(teacher_kept(same, target, source, 0.6)), [1, 1, 1, 1])


def test_teacher_loss_leaves_the_faces_of_left_out_samples_out_and_keeps_their_background():
    target = np.zeros([2, 4, 4, 3], "float32")
    teacher = target.copy()
    teacher[:, :2] = 0.5  # the face region: the top half
    swap = np.full_like(target, 0.25)
    swap[1] = 1.0
    # Sample 0: face off by 0.25, background 0.25; sample 1: face off by 0.5, background 1.0.
    assert float(teacher_loss(teacher, swap, target)) == pytest.approx((0.25 + 0.5) / 2)
    assert float(teacher_loss(teacher, swap, target, kept=np.array([1.0, 0.0], "float32"))) == pytest.approx(0.25)
    assert float(teacher_loss(teacher, swap, target, background=True, kept=np.array([1.0, 0.0], "float32"))) == \
        pytest.approx(0.25 + (0.25 + 1.0) / 2)
    assert float(teacher_loss(teacher, swap, target, kept=np.zeros(2, "float32"))) == 0.0


def test_read_batch_marks_the_pairs_from_their_landmarks_and_refuses_a_batch_without_them():
    model = get_preset("tiny").model.replace(conditioning="target+keypoint_flow", image_size=SIZE)
    generator, discriminator = build_networks(model)
    loss = SwapLoss(generator, discriminator, IdentityNetwork(tiny_identity_encoder(), ()),
                    LossWeights(perceptual=0.0, att=0.0, contra=0.0), teacher_turn_gap=0.25)
    rng = np.random.default_rng(2)
    target = np.stack([_face(rng, t) for t in (0.0, 0.0, 0.1)]) / 150.0
    source = np.stack([_face(rng, t) for t in (0.4, 0.1, -0.1)]) / 150.0
    images = rng.uniform(-1, 1, (3, SIZE, SIZE, 3)).astype("float32")
    data = {"target": images, "source": images[::-1].copy(), "teacher": images, "same": np.zeros(3, "float32"),
            "target_68": target.astype("float32"), "source_68": source.astype("float32")}
    np.testing.assert_array_equal(np.asarray(loss.read_batch(data).teacher_kept), [0, 1, 1])
    with pytest.raises(ValueError, match="teacher_turn_gap compares each pair's landmarks"):
        loss.read_batch({k: v for k, v in data.items() if not k.endswith("_68")})
    loss.teacher_turn_gap = 0.0
    assert loss.read_batch(data).teacher_kept is None


def test_the_configuration_refuses_a_gap_it_cannot_use():
    weights = dataclasses.replace(get_preset("tiny").config.weights, flow=1.0, contra=0.0)
    keypoints = {"model": {"conditioning": "target+keypoint_flow"}, "weights": weights}
    config = tiny_train_config(clip=False, **keypoints, teacher_turn_gap=0.25, teacher_face_only=True)
    assert config.loss.teacher_turn_gap == 0.25
    with pytest.raises(ConfigError, match="only a conditioning that reads them"):
        tiny_train_config(clip=False, teacher_turn_gap=0.25, teacher_face_only=True)
    with pytest.raises(ConfigError, match="needs loss.teacher_face_only=true"):
        tiny_train_config(clip=False, **keypoints, teacher_turn_gap=0.25)
    for bad in (-0.1, float("nan")):
        with pytest.raises(ConfigError, match="teacher_turn_gap must be a finite number"):
            tiny_train_config(clip=False, **keypoints, teacher_turn_gap=bad, teacher_face_only=True)
