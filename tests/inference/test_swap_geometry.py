"""Pipeline geometry with test generators (clipswap.inference.swapper) on real photos and video frames.

* a generator returning its input crop leaves the whole photo unchanged within PSNR >= 40 dB;
* a generator painting a constant colour changes pixels only inside each detected face's crop region, and does
  change every detected face, in wild/couple.jpg and in frames of video/multi_face_1080p.mp4;
* all faces of a frame go through one tf.function trace whatever their number.
"""

from __future__ import annotations

import cv2
import keras
import numpy as np
import pytest
import tensorflow as tf

from clipswap.checkpoints.encoders import IdentityEncoder
from clipswap.face.align import invert_affine
from clipswap.face.yunet import YuNetDetector
from clipswap.inference.selection import FaceSelection
from clipswap.inference.swapper import FaceSwapper, generator_in_precision
from clipswap.media.images import read_image
from clipswap.media.video import VideoReader

from conftest import shared_data

SIZE = 256
MAGENTA = np.array([255, 0, 255], np.uint8)


def identity_generator(inputs):
    """Returns the aligned target crop itself: a perfect swap is then no change at all."""
    return inputs[0]


def constant_generator(inputs):
    """Paints every crop magenta ([1, -1, 1] in the generator's [-1, 1] range)."""
    return tf.ones_like(inputs[0]) * tf.constant([1.0, -1.0, 1.0])


@pytest.fixture(scope="module")
def fake_identity():
    """A small random encoder with SFace's interface (112 crops in [0, 1] -> 128-d)."""
    keras.utils.set_random_seed(0)
    crops = keras.Input((112, 112, 3))
    vector = keras.layers.Dense(128)(keras.layers.GlobalAveragePooling2D()(crops))
    return IdentityEncoder("sface", 128, keras.Model(crops, vector))


@pytest.fixture(scope="module")
def detector():
    return YuNetDetector()


def _swapper(generator, identity, detector, **options) -> FaceSwapper:
    swapper = FaceSwapper(generator, SIZE, 128, identity, detector, **options)
    swapper.source_vector = np.ones(128, np.float32)  # test generators ignore the identity
    return swapper


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def _face_regions(swapper: FaceSwapper, frame: np.ndarray) -> tuple[list, np.ndarray]:
    """The detections and a mask of the union of their warped 256-crop quadrilaterals (2 px margin)."""
    from clipswap.face.align import estimate_alignment

    detections = swapper.detector.detect(frame)
    region = np.zeros(frame.shape[:2], np.uint8)
    for face in detections:
        inverse = invert_affine(estimate_alignment(face.landmarks, SIZE))
        corners = np.array([[0, 0, 1], [SIZE, 0, 1], [SIZE, SIZE, 1], [0, SIZE, 1]], float) @ inverse.T
        cv2.fillConvexPoly(region, np.round(corners).astype(np.int32), 1)
    return detections, cv2.dilate(region, np.ones((5, 5), np.uint8)).astype(bool)


def _check_constant_swap(swapper: FaceSwapper, frame: np.ndarray, minimum_faces: int) -> None:
    detections, region = _face_regions(swapper, frame)
    assert len(detections) >= minimum_faces
    output, count = swapper.swap_frame(frame)
    assert count == len(detections)
    changed = np.any(output != frame, axis=2)
    assert changed.any()
    assert not changed[~region].any(), f"{changed[~region].sum()} pixels changed outside the face regions"
    for face in detections:
        # Between the eyes and the mouth the published mask is 1: the pixel is the generator's colour.
        centre = face.landmarks.mean(axis=0).round().astype(int)
        assert np.abs(output[centre[1], centre[0]].astype(int) - MAGENTA).max() <= 2
        x1, y1, x2, y2 = face.box.astype(int)
        assert changed[max(y1, 0) : y2, max(x1, 0) : x2].mean() > 0.3


def test_identity_generator_leaves_the_photo_unchanged(fake_identity, detector):
    image = read_image(shared_data("wild", "couple.jpg"))
    swapper = _swapper(identity_generator, fake_identity, detector)
    output, count = swapper.swap_frame(image)
    assert count == 2
    assert _psnr(output, image) >= 40.0
    # The faces were really rewritten (resampled twice), not skipped.
    assert np.any(output != image)


@pytest.mark.parametrize("blend", ["published", "landmarks"])
def test_constant_generator_changes_only_the_faces_of_a_photo(fake_identity, detector, blend):
    image = read_image(shared_data("wild", "couple.jpg"))
    _check_constant_swap(_swapper(constant_generator, fake_identity, detector, blend=blend), image, 2)


def test_constant_generator_changes_only_the_faces_of_video_frames(fake_identity, detector):
    swapper = _swapper(constant_generator, fake_identity, detector)
    with VideoReader(shared_data("video", "multi_face_1080p.mp4")) as video:
        for index, frame in enumerate(video):
            if index % 10 == 0:
                _check_constant_swap(swapper, frame, 2)
            if index >= 20:
                break


def test_largest_selection_swaps_one_face_and_reuses_the_trace(fake_identity, detector):
    image = read_image(shared_data("wild", "couple.jpg"))
    swapper = _swapper(constant_generator, fake_identity, detector)
    _, both = swapper.swap_frame(image)
    swapper.selection = FaceSelection.parse("largest")
    output, one = swapper.swap_frame(image)
    assert (both, one) == (2, 1)
    largest = max(detector.detect(image), key=lambda d: d.area)
    smallest = min(detector.detect(image), key=lambda d: d.area)
    for face, expected in ((largest, True), (smallest, False)):
        x, y = face.landmarks.mean(axis=0).round().astype(int)
        assert (np.abs(output[y, x].astype(int) - MAGENTA).max() <= 2) == expected
    # Two faces, then one: a single trace of the [None, S, S, 3] signature served both batches.
    assert swapper._compiled.experimental_get_tracing_count() == 1


def test_face_selection_parsing():
    assert FaceSelection.parse("all").count is None
    assert FaceSelection.parse("largest").count == 1
    assert FaceSelection.parse("3").count == 3
    for bad in ("0", "-1", "some", ""):
        with pytest.raises(ValueError, match="--faces"):
            FaceSelection.parse(bad)


def test_bf16_rebuilds_a_generator_from_its_own_config_and_refuses_other_callables(fake_identity, detector):
    from clipswap.config import get_preset
    from clipswap.models.generator import Generator, fold_pooled_kernel

    generator = Generator(get_preset("tiny").model)
    mixed = generator_in_precision(generator, "bf16")
    assert isinstance(mixed, Generator) and mixed.config_ == generator.config_ and mixed.fold_pooling
    assert mixed.dtype_policy.name == "mixed_bfloat16" and keras.config.dtype_policy().name == "float32"
    # each up block's instance norm + AdaIN pair is one fused layer holding both layers' weights; the rest one to one
    fused = [layer.name for layer in mixed.layers if layer.__class__.__name__ == "NormalisedAdaIN"]
    assert len(fused) == 7 and not any(layer.__class__.__name__ == "AdaIN" for layer in mixed.layers)
    for layer in mixed.layers:
        if layer.name in fused:
            block = layer.name.removesuffix("_in_adain")
            expected = generator.get_layer(f"{block}_in").get_weights() + \
                generator.get_layer(f"{block}_adain").get_weights()
        elif layer.name.endswith("_conv_pooled"):
            kernel, bias = generator.get_layer(layer.name.removesuffix("_pooled")).get_weights()
            expected = [fold_pooled_kernel(kernel), bias]
        else:
            expected = generator.get_layer(layer.name).get_weights()
        for before, after in zip(expected, layer.get_weights(), strict=True):
            np.testing.assert_array_equal(before, after)
    # the 5 resampling down blocks' 3x3 kernels became 4x4 ones: 7 more taps per input and output channel
    grown = sum(7 * layer.kernel.shape[2] * layer.kernel.shape[3] for layer in mixed.layers
                if layer.name.endswith("_conv_pooled"))
    assert grown and mixed.count_params() == generator.count_params() + grown
    # fp32: the folded graph without the fused norm, in float32
    folded = generator_in_precision(generator, "fp32")
    assert folded.fold_pooling and not folded.fused_norm and folded.dtype_policy.name == "float32"
    with pytest.raises(ValueError, match="needs a clipswap Generator"):
        FaceSwapper(identity_generator, SIZE, 128, fake_identity, detector, precision="bf16")
