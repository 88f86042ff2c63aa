"""The teacher of a shape generator (ModelConfig.keypoint_shape): SwapLoss.read_batch moves the landmark swap's face
from the target's 68 points to the points the generator's own shape transfer gives, and only the face (the
background stays the target's), leaves reconstruction pairs'
teachers (the target itself) and every teacher of a generator without the transfer as they are, refuses a batch
without landmarks, and a training step with it stays finite."""

from __future__ import annotations

import numpy as np
import pytest

from clipswap.config import get_preset
from clipswap.losses.composite import LossWeights
from clipswap.training.assembly import build_networks
from clipswap.training.features import IdentityNetwork
from clipswap.training.loss import SwapLoss

from conftest import TRAINER_BATCH, TRAINER_SIZE, run_steps, tiny_identity_encoder

SIZE = 64
KEYPOINTS = get_preset("tiny").model.replace(conditioning="target+keypoint_flow", image_size=SIZE)


def _loss(model) -> SwapLoss:
    generator, discriminator = build_networks(model)
    return SwapLoss(generator, discriminator, IdentityNetwork(tiny_identity_encoder(), ()),
                     LossWeights(perceptual=0.0, att=0.0, contra=0.0))


def _face() -> np.ndarray:
    """68 points (fractions of the side) on an oval with a smooth wobble: a stand-in face whose points spread over
    the crop."""
    angle = np.linspace(0.0, 2.0 * np.pi, 68, endpoint=False)
    radius = 0.22 + 0.04 * np.sin(3.0 * angle)
    return np.stack([0.5 + radius * np.cos(angle), 0.52 + 1.2 * radius * np.sin(angle)], -1).astype("float32")


def _ramp(size: int) -> np.ndarray:
    """[size, size, 3]: channel 0 is x / size, 1 is y / size, 2 zero: a bilinear read of it returns where it read."""
    y, x = np.mgrid[0:size, 0:size].astype("float32")
    return np.stack([x / size, y / size, np.zeros_like(x)], -1).astype("float32")


def _data(target_points, source_points, same):
    batch = len(same)
    rng = np.random.default_rng(0)
    return {"target": rng.uniform(-1, 1, (batch, SIZE, SIZE, 3)).astype("float32"),
            "source": rng.uniform(-1, 1, (batch, SIZE, SIZE, 3)).astype("float32"),
            "same": np.asarray(same, "float32"),
            "teacher": np.repeat(_ramp(SIZE)[None], batch, 0),
            "target_68": np.repeat(target_points[None], batch, 0),
            "source_68": np.repeat(source_points[None], batch, 0)}


def test_the_teacher_face_moves_to_the_shape_transferred_points_and_reconstruction_pairs_keep_theirs():
    target_points = _face()
    # A wider, longer face: a shape the similarity alignment cannot remove.
    source_points = ((target_points - 0.5) * np.array([1.25, 0.9], "float32") + 0.5).astype("float32")
    loss = _loss(KEYPOINTS.replace(keypoint_shape=1.0))
    data = _data(target_points, source_points, same=[0.0, 1.0])
    teacher = np.asarray(loss.read_batch(data).teacher)

    np.testing.assert_array_equal(teacher[1], data["teacher"][1])
    destination = np.asarray(loss.shape([data["target_68"], data["source_68"]]))[0] * SIZE
    moved = (np.abs(destination - target_points * SIZE).max(axis=1) > 1.5) & (destination.min(1) > 1)
    assert moved.sum() >= 20
    # At the pixel nearest each moved destination, the ramp teacher reads where it sampled: the target's point
    # (plus the pixel's offset from the destination), not the destination itself.
    pixels = np.rint(destination[moved]).astype(int)
    read = teacher[0][pixels[:, 1], pixels[:, 0], :2] * SIZE
    expected = target_points[moved] * SIZE + (pixels - destination[moved])
    error = np.linalg.norm(read - expected, axis=1)
    unmoved = np.linalg.norm(destination[moved] - target_points[moved] * SIZE, axis=1)
    assert np.median(error) < 0.5 and np.all(error < 0.6 * unmoved), (np.median(error), error.max())


def test_only_the_face_moves_and_the_background_stays_the_targets():
    """Where the landmark swap left the target as it was (outside a disc here), a pixel keeps the teacher's value
    unless the spline reads it from inside the face; a pixel read from inside takes the moved face."""
    target_points = _face()
    source_points = ((target_points - 0.5) * np.array([1.25, 0.9], "float32") + 0.5).astype("float32")
    loss = _loss(KEYPOINTS.replace(keypoint_shape=1.0))
    data = _data(target_points, source_points, same=[0.0, 0.0])
    # Every pixel differs from the target: the whole ramp moves, and each pixel reads where the spline samples it.
    sampled = np.asarray(loss.read_batch(data).teacher)[0, ..., :2] * SIZE
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype("float32")
    face = np.hypot(x / SIZE - 0.5, y / SIZE - 0.52) < 0.3
    data["target"] = np.where(face[None, :, :, None], data["target"], data["teacher"])
    teacher = np.asarray(loss.read_batch(data).teacher)[0]

    distance = np.hypot(sampled[..., 0] / SIZE - 0.5, sampled[..., 1] / SIZE - 0.52) * SIZE
    outside, inside = distance > 0.3 * SIZE + 1.5, distance < 0.3 * SIZE - 1.5
    assert outside.sum() > 1000 and inside.sum() > 1000
    np.testing.assert_array_equal(teacher[outside], data["teacher"][0][outside])
    np.testing.assert_allclose(teacher[inside][:, :2] * SIZE, sampled[inside], atol=1e-4)
    assert np.abs(teacher[inside][:, :2] * SIZE - np.stack([x, y], -1)[inside]).max() > 1.5


def test_a_generator_without_the_transfer_keeps_its_teachers_and_a_batch_without_landmarks_is_refused():
    target_points = _face()
    data = _data(target_points, target_points[::-1].copy(), same=[0.0, 0.0])
    plain = np.asarray(_loss(KEYPOINTS).read_batch(data).teacher)
    np.testing.assert_array_equal(plain, data["teacher"])

    shaped = _loss(KEYPOINTS.replace(keypoint_shape=0.5))
    del data["source_68"]
    with pytest.raises(ValueError, match=r"^a generator with a shape transfer .* moves its teacher along each pair's "
                                         r"landmarks: train it on `clipswap pairs` data"):
        shaped.read_batch(data)


def test_a_training_step_of_a_shape_generator_with_its_teacher_is_finite(make_trainer):
    import tensorflow as tf

    trainer = make_trainer(clip=False, model={"conditioning": "target+keypoint_flow", "keypoint_shape": 0.6},
                           weights=LossWeights(teacher=10.0, flow=1.0, perceptual=0.0, att=0.0, contra=0.0))
    layer = trainer.swap_loss.shape
    layer.pose_directions.assign(np.eye(136, 5, dtype="float32"))
    rng = np.random.default_rng(3)
    count = 2 * TRAINER_BATCH
    points = np.repeat(_face()[None], count, 0) + 0.01 * rng.standard_normal((count, 68, 2)).astype("float32")
    shape = (count, TRAINER_SIZE, TRAINER_SIZE, 3)
    data = {"target": rng.uniform(-1, 1, shape), "source": rng.uniform(-1, 1, shape),
            "same": np.array([0.0, 1.0] * TRAINER_BATCH), "teacher": rng.uniform(-1, 1, shape),
            "warped": rng.uniform(-1, 1, shape), "target_68": points, "source_68": points[::-1],
            "target_label": np.arange(count), "source_label": np.arange(count)}
    data = {key: value.astype("float32") if value.dtype == np.float64 else value for key, value in data.items()}
    iterator = iter(tf.data.Dataset.from_tensor_slices(data).batch(TRAINER_BATCH).repeat())
    logs = run_steps(trainer, iterator, 2)
    assert all(np.isfinite(value) for log in logs for value in log.values())
    assert logs[-1]["teacher"] > 0.0


#: Run under KERAS_BACKEND=jax: the shaped teacher of the same batch and pose directions, written to argv[2].
JAX_PROBE = """
import sys
import numpy as np
from clipswap.config import ModelConfig
from test_shaped_teacher import KEYPOINTS, _loss
data = dict(np.load(sys.argv[1]))
directions = data.pop("directions")
loss = _loss(KEYPOINTS.replace(keypoint_shape=0.6))
loss.shape.pose_directions.assign(directions)
np.save(sys.argv[2], np.asarray(loss.read_batch(data).teacher))
"""


@pytest.mark.slow
def test_the_jax_backend_moves_the_teacher_as_tensorflow_does(tmp_path):
    import os
    import subprocess
    import sys

    from conftest import REPO_ROOT

    target_points = _face()
    source_points = ((target_points - 0.5) * np.array([1.2, 0.95], "float32") + 0.5).astype("float32")
    data = _data(target_points, source_points, same=[0.0, 1.0])
    data["teacher"] = np.random.default_rng(5).uniform(-1, 1, data["teacher"].shape).astype("float32")
    directions, _ = np.linalg.qr(np.random.default_rng(6).standard_normal((136, 5)))
    directions = directions.astype("float32")
    loss = _loss(KEYPOINTS.replace(keypoint_shape=0.6))
    loss.shape.pose_directions.assign(directions)
    expected = np.asarray(loss.read_batch(data).teacher)
    np.savez(tmp_path / "in.npz", directions=directions, **data)

    paths = os.pathsep.join([str(REPO_ROOT), str(REPO_ROOT / "tests"), str(REPO_ROOT / "tests" / "training")])
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": paths}
    result = subprocess.run([sys.executable, "-c", JAX_PROBE, str(tmp_path / "in.npz"), str(tmp_path / "out.npy")],
                            capture_output=True, text=True, env=env, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    got = np.load(tmp_path / "out.npy")
    assert np.abs(expected[0] - data["teacher"][0]).max() > 0.1
    # The float32 spline solves of the two backends agree to about 1e-5 px; a random teacher changes by up to 2 a
    # pixel (measured at most 2.3e-4 apart).
    np.testing.assert_allclose(got, expected, atol=1e-3)
