"""RetinaFace-R50: architecture, priors/decoding/NMS, the published-format .h5 loader and the detector."""

from __future__ import annotations

import logging
import shutil

import cv2
import h5py
import keras
import numpy as np
import pytest

from clipswap.checkpoints.errors import CheckpointError, CheckpointMismatchError
from clipswap.checkpoints.retinaface_h5 import load_retinaface_h5
from clipswap.face.detection import Detection
from clipswap.face.retinaface import (
    RetinaFaceDetector,
    decode_boxes,
    decode_landmarks,
    detection_scale,
    non_max_suppression,
    prior_boxes,
)
from clipswap.layers.caffe_preprocess import CaffePreprocess
from clipswap.models.resnet50 import resnet50_backbone
from clipswap.models.retinaface import RETINAFACE_PARAMS, build_retinaface

from conftest import FIXTURES, run_keras2_fixture

log = logging.getLogger(__name__)

FIXTURE_SCRIPT = FIXTURES / "keras2_retinaface.py"


@pytest.fixture(scope="module")
def model():
    return build_retinaface()


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """(path to a random-weight RetinaFace .h5 written by tf_keras, its reference outputs)."""
    folder = tmp_path_factory.mktemp("retinaface_h5")
    h5_path, npz_path = folder / "RetinaFace-Res50.h5", folder / "reference.npz"
    run_keras2_fixture(FIXTURE_SCRIPT.name, str(h5_path), str(npz_path))
    return h5_path, dict(np.load(npz_path))


@pytest.fixture(scope="module")
def loaded(published):
    return load_retinaface_h5(published[0])


# ---------------------------------------------------------------------------------------------------- architecture


def test_parameter_count_is_exact(model):
    assert model.count_params() == RETINAFACE_PARAMS == 27_378_144


def test_backbone_has_keras_applications_names_and_size():
    inputs = keras.Input((None, None, 3))
    stages = resnet50_backbone(inputs)
    trunk = keras.Model(inputs, stages["conv5_block3_out"])
    assert trunk.count_params() == 23_587_712
    names = {layer.name for layer in trunk.layers}
    assert {"conv1_conv", "conv2_block1_0_conv", "conv4_block6_out", "conv5_block3_3_bn"} <= names
    assert len(stages) == 16 and list(stages)[-1] == "conv5_block3_out"


@pytest.mark.parametrize("shape", [(1, 64, 96), (2, 100, 70)])
def test_output_shapes_match_priors_and_are_finite(model, shape):
    batch, height, width = shape
    images = np.random.default_rng(0).uniform(0, 255, (batch, height, width, 3)).astype(np.float32)
    outputs = model(images, training=False)
    priors = len(prior_boxes(height, width))
    for key, size in (("class", 2), ("box", 4), ("landmark", 10)):
        assert tuple(outputs[key].shape) == (batch, priors, size)
        assert np.all(np.isfinite(outputs[key].numpy()))
    np.testing.assert_allclose(outputs["class"].numpy().sum(-1), 1.0, atol=1e-5)


def test_caffe_preprocess_flips_to_bgr_and_subtracts_means():
    layer = CaffePreprocess.from_config(CaffePreprocess(name="pre").get_config())
    pixel = np.array([[[[10.0, 20.0, 30.0]]]], dtype=np.float32)  # R, G, B
    np.testing.assert_allclose(layer(pixel).numpy()[0, 0, 0], [30 - 103.939, 20 - 116.779, 10 - 123.68], rtol=1e-6)


# ------------------------------------------------------------------------------------------- priors, decode, NMS


def test_prior_count_at_640():
    assert prior_boxes(640, 640).shape == (16_800, 4)


def test_priors_by_hand():
    priors = prior_boxes(32, 64)  # levels: 4x8, 2x4, 1x2 cells, 2 sizes each
    assert len(priors) == (32 + 8 + 2) * 2
    np.testing.assert_allclose(priors[0], [4 / 64, 4 / 32, 16 / 64, 16 / 32])
    np.testing.assert_allclose(priors[1], [4 / 64, 4 / 32, 32 / 64, 32 / 32])
    np.testing.assert_allclose(priors[2], [12 / 64, 4 / 32, 16 / 64, 16 / 32])  # next column
    np.testing.assert_allclose(priors[16], [4 / 64, 12 / 32, 16 / 64, 16 / 32])  # next row (8 cells x 2)
    np.testing.assert_allclose(priors[64], [8 / 64, 8 / 32, 64 / 64, 64 / 32])  # first stride-16 prior
    np.testing.assert_allclose(priors[-1], [48 / 64, 16 / 32, 512 / 64, 512 / 32])  # not clipped
    assert prior_boxes(32, 64, clip=True).max() <= 1.0


def test_decode_by_hand():
    priors = np.array([[0.5, 0.5, 0.2, 0.4]], dtype=np.float32)
    deltas = np.array([[1.0, -2.0, 0.0, np.log(2.0) / 0.2]], dtype=np.float32)
    # centre (0.5 + 1*0.1*0.2, 0.5 - 2*0.1*0.4) = (0.52, 0.42); size (0.2, 0.4*2)
    np.testing.assert_allclose(decode_boxes(deltas, priors), [[0.42, 0.02, 0.62, 0.82]], atol=1e-6)
    landmark_deltas = np.array([[1.0, 1.0, -1.0, 0.0, 0.0, 0.0, 2.0, -2.0, 0.5, 0.5]], dtype=np.float32)
    expected = [[0.52, 0.54], [0.48, 0.5], [0.5, 0.5], [0.54, 0.42], [0.51, 0.52]]
    np.testing.assert_allclose(decode_landmarks(landmark_deltas, priors)[0], expected, atol=1e-6)


def test_nms_suppresses_overlaps_and_filters_scores():
    boxes = np.array(
        [[0, 0, 10, 10], [1, 0, 11, 10], [20, 20, 30, 30], [0, 0, 10, 5], [40, 40, 50, 50]], dtype=np.float32
    )
    scores = np.array([0.8, 0.9, 0.7, 0.6, 0.3], dtype=np.float32)
    # box 0 overlaps box 1 (IoU 9/11) -> suppressed; box 3 vs box 1: IoU 45/105 = 0.43 > 0.4 -> suppressed
    np.testing.assert_array_equal(non_max_suppression(boxes, scores, 0.4, 0.5), [1, 2])
    # a looser IoU threshold keeps box 3; a lower score threshold keeps box 4
    np.testing.assert_array_equal(non_max_suppression(boxes, scores, 0.5, 0.5), [1, 2, 3])
    np.testing.assert_array_equal(non_max_suppression(boxes, scores, 0.5, 0.2), [1, 2, 3, 4])
    assert non_max_suppression(np.zeros((0, 4)), np.zeros((0,)), 0.4, 0.5).shape == (0,)


def test_detection_scale_follows_release():
    assert [detection_scale(w) for w in (320, 640, 641, 1279, 1280, 1920)] == [1, 1, 1, 1, 2, 3]


# ------------------------------------------------------------------------------------ published-format .h5 loader


@pytest.mark.slow
def test_keras3_cannot_load_the_published_format(published):
    with pytest.raises(Exception, match="Unknown layer.*TFOpLambda"):
        keras.models.load_model(published[0], compile=False)


@pytest.mark.slow
def test_loader_parity_with_tf_keras(published, loaded):
    _, reference = published
    outputs = loaded(reference["image"].astype(np.float32), training=False)
    diffs = {key: float(np.max(np.abs(outputs[key].numpy() - reference[key]))) for key in ("class", "box", "landmark")}
    log.info("RetinaFace .h5 parity, max abs diff: %s", diffs)
    assert all(d <= 1e-4 for d in diffs.values()), diffs
    assert float(np.std(reference["box"])) > 0.1  # the fixture's outputs are not degenerate


@pytest.mark.slow
def test_detector_reproduces_the_file_graph_in_pixels(published, loaded):
    _, reference = published
    image = reference["image"][0]
    height, width = image.shape[:2]
    detector = RetinaFaceDetector(
        loaded, score_threshold=float(reference["score_threshold"]), iou_threshold=float(reference["iou_threshold"])
    )
    faces = detector.detect(image)
    expected = reference["detections"]  # normalised rows [x1 y1 x2 y2, 5x(x y), 1, score], best first
    assert len(expected) > 5 and len(faces) == len(expected)
    assert all(isinstance(face, Detection) for face in faces)
    scale = np.array([width, height], dtype=np.float32)
    np.testing.assert_allclose([f.score for f in faces], expected[:, 15], atol=1e-4)
    np.testing.assert_allclose([f.box for f in faces], expected[:, :4] * np.tile(scale, 2), atol=2e-2)
    np.testing.assert_allclose([f.landmarks for f in faces], expected[:, 4:14].reshape(-1, 5, 2) * scale, atol=2e-2)


@pytest.mark.slow
def test_detector_downscales_wide_frames_but_reports_original_pixels(loaded):
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (64, 1300, 3), dtype=np.uint8)  # scale 2 -> the network sees 650 x 32
    detector = RetinaFaceDetector(loaded, score_threshold=0.3)
    faces = detector.detect(image)
    assert faces, "random weights should give some detections above 0.3"
    raw = detector.predict_raw(cv2.resize(image, (650, 32))[None].astype(np.float32))
    boxes, landmarks, scores = detector.decode(raw, 32, 650)
    np.testing.assert_allclose([f.box for f in faces], boxes * [1300, 64, 1300, 64], rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose([f.landmarks for f in faces], landmarks * [1300, 64], rtol=1e-5, atol=1e-3)
    assert [f.score for f in faces] == sorted((f.score for f in faces), reverse=True)


@pytest.mark.slow
def test_truncated_file_is_a_checkpoint_error(published, tmp_path):
    truncated = tmp_path / "truncated.h5"
    data = published[0].read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_retinaface_h5(truncated)


def test_other_architecture_is_a_mismatch(tmp_path):
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as handle:
        group = handle.create_group("model_weights")
        group.attrs["layer_names"] = [b"dense"]
        dense = group.create_group("dense")
        dense.attrs["weight_names"] = [b"dense/kernel:0", b"dense/bias:0"]
        dense.create_dataset("dense/kernel:0", data=np.zeros((4, 2), np.float32))
        dense.create_dataset("dense/bias:0", data=np.zeros((2,), np.float32))
    with pytest.raises(CheckpointMismatchError, match="fpn"):
        load_retinaface_h5(path)


@pytest.mark.slow
def test_wrong_shape_is_a_mismatch_naming_the_weight(published, tmp_path):
    path = tmp_path / "reshaped.h5"
    shutil.copyfile(published[0], path)
    with h5py.File(path, "r+") as handle:
        group = handle["model_weights"]["ClassHead_1"]
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in group.attrs["weight_names"]]
        name = next(n for n in names if n.endswith("kernel:0"))
        del group[name]
        group.create_dataset(name, data=np.zeros((1, 1, 256, 6), np.float32))  # 3 anchors instead of 2
    with pytest.raises(CheckpointMismatchError, match=r"\(1, 1, 256, 6\).*\(1, 1, 256, 4\)"):
        load_retinaface_h5(path)


@pytest.mark.slow
def test_loader_accepts_unscoped_convunit_names(published, tmp_path):
    """Some Keras 2 versions name nested-layer variables without the ConvUnit scope ("conv2d_5/kernel:0")."""
    path = tmp_path / "flat.h5"
    shutil.copyfile(published[0], path)
    with h5py.File(path, "r+") as handle:
        for group_name in ("fpn", "ssh", "ssh_1", "ssh_2"):
            group = handle["model_weights"][group_name]
            names = [n.decode() if isinstance(n, bytes) else str(n) for n in group.attrs["weight_names"]]
            values = {name: group[name][()] for name in names}
            for key in list(group.keys()):
                del group[key]
            flat = ["/".join(name.split("/")[-2:]) for name in names]
            for name, new_name in zip(names, flat, strict=True):
                group.create_dataset(new_name, data=values[name])
            group.attrs["weight_names"] = [name.encode() for name in flat]
    model = load_retinaface_h5(path)
    reference = published[1]
    outputs = model(reference["image"].astype(np.float32), training=False)
    np.testing.assert_allclose(outputs["box"].numpy(), reference["box"], atol=1e-4)
    np.testing.assert_allclose(outputs["class"].numpy(), reference["class"], atol=1e-4)
