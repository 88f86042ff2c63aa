"""Generators that refine the landmark swap (ModelConfig.pre_swap="landmarks", the demo model): FaceSwapper feeds G
exactly clipswap.face.landmark_swap of the source crop onto each target crop, an untrained residual demo generator
therefore already moves a real LFW face towards its source, a face whose landmarks cannot drive the swap is counted
and goes to G as its plain crop, and the trainer refuses to train such a G without teacher images."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from clipswap.checkpoints.encoders import load_identity_encoder
from clipswap.checkpoints.native import init_generator, load_generator
from clipswap.config import get_preset
from clipswap.face.align import align_face, transform_points
from clipswap.face.detection import sort_by_area
from clipswap.face.landmark_swap import landmark_swap
from clipswap.face.similarity import cosine_similarity
from clipswap.inference.swapper import FaceSwapper
from clipswap.media.images import read_image

from conftest import require_module, shared_data

DEMO = get_preset("demo_refiner").model


@pytest.fixture(scope="module")
def parts():
    """(SFace encoder, YuNet detector, dlib 68-point landmarker, source photo, target photo)."""
    require_module("dlib", "the pre-swap places dlib's 68 landmarks")
    from clipswap.face.landmarks68 import Landmarker68
    from clipswap.face.yunet import YuNetDetector

    source = read_image(shared_data("lfw", "Aaron_Sorkin", "Aaron_Sorkin_0001.jpg"))
    target = read_image(shared_data("lfw", "Abdullah_Gul", "Abdullah_Gul_0001.jpg"))
    return load_identity_encoder("sface"), YuNetDetector(), Landmarker68(), source, target


class Spy:
    """A generator stand-in that returns its input and keeps what it was given."""

    def __init__(self):
        self.inputs = []

    def __call__(self, inputs):  # traced by FaceSwapper's tf.function: the copy is taken by numpy_function
        target, _ = inputs
        return tf.reshape(tf.numpy_function(self._keep, [target], tf.float32), tf.shape(target))

    def _keep(self, target: np.ndarray) -> np.ndarray:
        self.inputs.append(target.copy())
        return target


def _largest(detector, image):
    return sort_by_area(detector.detect(image))[0]


def _fed_crop(parts, landmarker) -> tuple[np.ndarray, FaceSwapper]:
    """Swap the target once through a Spy generator: (the uint8 crop G was given, the swapper)."""
    identity, detector, _, source, target = parts
    spy = Spy()
    swapper = FaceSwapper(spy, DEMO.image_size, DEMO.id_input_dim, identity, detector,
                          conditioning="refine_landmark_swap", landmarker=landmarker)
    swapper.set_source(source)
    swapper.swap_frame(target)
    return np.round((spy.inputs[0][0] + 1.0) * 127.5), swapper


def test_the_generator_reads_the_landmark_swap_of_each_crop(parts):
    _, detector, landmarker, source, target = parts
    fed, swapper = _fed_crop(parts, landmarker)
    # The same swap computed here from the parts: source and target aligned to the generator's crop, their 68 points
    # mapped into it.
    face = _largest(detector, source)
    source_crop, matrix = align_face(source, face.landmarks, DEMO.image_size)
    source_68 = transform_points(matrix, landmarker(source, face))
    face = _largest(detector, target)
    target_crop, matrix = align_face(target, face.landmarks, DEMO.image_size)
    expected = landmark_swap(source_crop, source_68, target_crop, transform_points(matrix, landmarker(target, face)))
    np.testing.assert_allclose(fed, expected, atol=0.51)
    assert np.abs(expected.astype(int) - target_crop.astype(int)).mean() > 3.0  # the crop G reads is not the target
    assert swapper.pre_swap_failures == 0 and "pre_swap" in swapper.timer.seconds


def test_an_untrained_demo_generator_already_moves_the_face_towards_the_source(parts, tmp_path):
    identity, detector, landmarker, source, target = parts
    path = init_generator(DEMO, tmp_path / "generator.keras")
    swapper = FaceSwapper.from_checkpoint(load_generator(path), detector, landmarker=landmarker)
    assert swapper.pre_swap == "landmarks"
    swapper.set_source(source)
    swapped, faces = swapper.swap_frame(target)
    assert faces == 1 and swapped.shape == target.shape

    def embed(image):
        crop, _ = align_face(image, _largest(detector, image).landmarks, 112)
        return identity.embed(crop[None])[0]

    reference = embed(source)
    assert cosine_similarity(embed(swapped), reference) > cosine_similarity(embed(target), reference) + 0.03


def test_a_face_whose_landmarks_fail_goes_to_the_generator_as_its_crop(parts):
    _, detector, landmarker, _, target = parts
    calls = []

    def flaky(image, face):
        calls.append(1)
        points = landmarker(image, face)
        return points if len(calls) == 1 else points + 10_000.0  # the source's are fine, the target's are not

    fed, swapper = _fed_crop(parts, flaky)
    crop, _ = align_face(target, _largest(detector, target).landmarks, DEMO.image_size)
    np.testing.assert_allclose(fed, crop, atol=0.51)
    assert swapper.pre_swap_failures == 1


def test_the_trainer_feeds_the_teacher_to_a_pre_swap_generator_and_needs_it():
    from clipswap.training.loss import pre_swap_input

    target, teacher = tf.zeros((1, 8, 8, 3)), tf.ones((1, 8, 8, 3))
    assert pre_swap_input(None, target, teacher) is target
    assert pre_swap_input("landmarks", target, teacher) is teacher
    with pytest.raises(ValueError, match="clipswap pairs"):
        pre_swap_input("landmarks", target, None)
