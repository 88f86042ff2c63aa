"""ArcFace-R50 (clipswap.models.arcface) and its loader for the published Keras 2 .h5 (clipswap.checkpoints.arcface_h5).

Parity reference: tests/fixtures/keras2_arcface.py builds the same architecture with tf_keras (Keras 2) the way the
published file was built (nested ResNet50 + "OutputLayer" sub-model), randomises every weight, BatchNorm statistics
included, saves a full-model .h5 and tf_keras's outputs on a fixed input; it runs in a subprocess because tf_keras
and Keras 3 do not share a process.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf

from clipswap.checkpoints.arcface_h5 import load_arcface_h5
from clipswap.checkpoints.errors import CheckpointError, CheckpointMismatchError
from clipswap.models.arcface import BLOCK_OUTPUTS, STAGE_OUTPUTS, arcface_features, build_arcface, head_layer_names

from conftest import FIXTURES, run_keras2_fixture

FIXTURE_SCRIPT = FIXTURES / "keras2_arcface.py"
PARITY_TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def model() -> keras.Model:
    return build_arcface()


@pytest.fixture(scope="module")
def keras2_file(tmp_path_factory) -> tuple[Path, dict[str, np.ndarray]]:
    """(path of a random-weight Keras 2 ArcFace .h5, {"input", "embedding", stage name: tf_keras output})."""
    folder = tmp_path_factory.mktemp("keras2_arcface")
    h5, npz = folder / "ArcFace-Res50.h5", folder / "reference.npz"
    run_keras2_fixture(FIXTURE_SCRIPT.name, str(h5), str(npz))
    with np.load(npz) as stored:
        return h5, dict(stored)


@pytest.fixture(scope="module")
def loaded(keras2_file) -> keras.Model:
    return load_arcface_h5(keras2_file[0])


def test_parameter_count(model):
    assert model.count_params() == 40_375_680
    head = set(head_layer_names(model.name).values())
    backbone = sum(layer.count_params() for layer in model.layers if layer.name not in head)
    assert backbone == 23_587_712


def test_keras_applications_names(model):
    names = [layer.name for layer in model.layers]
    for expected in (
        "conv1_conv",
        "conv1_bn",
        "pool1_pool",
        "conv2_block1_0_conv",
        "conv2_block1_1_conv",
        "conv3_block4_out",
        "conv4_block6_out",
        "conv5_block3_3_bn",
        "conv5_block3_out",
    ):
        assert expected in names
    assert len(BLOCK_OUTPUTS) == 16 and all(n in names for n in BLOCK_OUTPUTS)
    assert model.get_layer("conv4_block2_1_bn").epsilon == pytest.approx(1.001e-5)


def test_forward_shape_and_finite(model):
    image = np.random.default_rng(0).uniform(0, 1, (2, 112, 112, 3)).astype("float32")
    embedding = np.asarray(model(image))
    assert embedding.shape == (2, 512)
    assert np.isfinite(embedding).all()
    assert not np.allclose(embedding[0], embedding[1])


def test_stage_outputs_by_name(model):
    features = arcface_features(model, ("conv1_relu", *STAGE_OUTPUTS))
    outputs = features(np.zeros((1, 112, 112, 3), "float32"))
    shapes = {name: tuple(value.shape) for name, value in outputs.items()}
    assert shapes == {
        "conv1_relu": (1, 56, 56, 64),
        "conv2_block3_out": (1, 28, 28, 256),
        "conv3_block4_out": (1, 14, 14, 512),
        "conv4_block6_out": (1, 7, 7, 1024),
        "conv5_block3_out": (1, 4, 4, 2048),
        "embedding": (1, 512),
    }
    with pytest.raises(ValueError, match="conv9_block1_out"):
        arcface_features(model, ["conv9_block1_out"])


def test_gradient_reaches_input(model):
    image = tf.constant(np.random.default_rng(1).uniform(0, 1, (1, 112, 112, 3)).astype("float32"))
    with tf.GradientTape() as tape:
        tape.watch(image)
        loss = tf.reduce_sum(tf.square(model(image)))
    gradient = tape.gradient(loss, image).numpy()
    assert gradient.shape == (1, 112, 112, 3)
    assert np.isfinite(gradient).all() and np.abs(gradient).max() > 0


def test_bfloat16_forward(model):
    previous = keras.config.dtype_policy()
    try:
        keras.config.set_dtype_policy("mixed_bfloat16")
        half = build_arcface()
    finally:
        keras.config.set_dtype_policy(previous)
    assert keras.config.dtype_policy().name == previous.name
    half.set_weights(model.get_weights())
    image = np.random.default_rng(2).uniform(0, 1, (1, 112, 112, 3)).astype("float32")
    low = half(image)
    assert low.dtype == "bfloat16"
    low = np.asarray(tf.cast(low, tf.float32))[0]
    full = np.asarray(model(image))[0]
    assert np.isfinite(low).all()
    cosine = float(low @ full / (np.linalg.norm(low) * np.linalg.norm(full)))
    assert cosine > 0.98, f"bf16 embedding drifted from fp32: cosine {cosine:.4f}"


def _max_differences(model: keras.Model, reference: dict[str, np.ndarray]) -> dict[str, float]:
    stages = [k for k in reference if k not in ("input", "embedding")]
    outputs = arcface_features(model, stages)(reference["input"])
    return {name: float(np.abs(np.asarray(outputs[name]) - reference[name]).max()) for name in [*stages, "embedding"]}


def test_loader_parity_with_keras2(loaded, keras2_file):
    _, reference = keras2_file
    differences = _max_differences(loaded, reference)
    assert set(differences) >= {"embedding", *STAGE_OUTPUTS}
    assert max(differences.values()) <= PARITY_TOLERANCE, f"max abs difference to tf_keras: {differences}"
    # The random weights must make the check meaningful: outputs far from zero and distinct per sample.
    assert np.abs(reference["embedding"]).max() > 1.0
    assert not np.allclose(reference["embedding"][0], reference["embedding"][1], atol=1e-2)


def test_loader_reads_weights_only_file(keras2_file, tmp_path):
    source, reference = keras2_file
    weights_only = tmp_path / "weights_only.h5"
    with h5py.File(source, "r") as full, h5py.File(weights_only, "w") as out:
        # A Keras 2 `save_weights` file: the model_weights group's content at the root, no model_config.
        for key, value in full["model_weights"].attrs.items():
            out.attrs[key] = value
        for name in full["model_weights"]:
            full.copy(full["model_weights"][name], out, name=name)
    model = load_arcface_h5(weights_only)
    embedding = np.asarray(model(reference["input"]))
    assert np.abs(embedding - reference["embedding"]).max() <= PARITY_TOLERANCE


def test_truncated_file_is_refused(keras2_file, tmp_path):
    source, _ = keras2_file
    truncated = tmp_path / "truncated.h5"
    with open(source, "rb") as handle:
        truncated.write_bytes(handle.read(source.stat().st_size // 2))
    with pytest.raises(CheckpointError, match="corrupt or truncated") as caught:
        load_arcface_h5(truncated)
    assert not isinstance(caught.value, CheckpointMismatchError)
    assert "truncated.h5" in str(caught.value)


def test_256_d_head_is_refused_with_both_shapes(keras2_file, tmp_path):
    source, _ = keras2_file
    wrong = tmp_path / "arcface_256.h5"
    shutil.copyfile(source, wrong)
    with h5py.File(wrong, "r+") as handle:
        head = handle["model_weights"]["OutputLayer"]
        names = [n.decode() if isinstance(n, bytes) else n for n in head.attrs["weight_names"]]
        for name in names:
            value = head[name][()]
            if value.shape[-1] == 512:  # the Dense and the last BatchNorm: a 256-d embedding instead
                del head[name]
                head.create_dataset(name, data=value[..., :256])
    with pytest.raises(CheckpointMismatchError) as caught:
        load_arcface_h5(wrong)
    message = str(caught.value)
    assert "dense/kernel:0" in message and "(32768, 256)" in message and "(32768, 512)" in message


def test_foreign_model_is_refused(tmp_path):
    foreign = tmp_path / "tiny.h5"
    with h5py.File(foreign, "w") as handle:
        handle.attrs["layer_names"] = [b"dense"]
        group = handle.create_group("dense")
        group.attrs["weight_names"] = [b"dense/kernel:0", b"dense/bias:0"]
        group.create_dataset("dense/kernel:0", data=np.zeros((4, 2), "float32"))
        group.create_dataset("dense/bias:0", data=np.zeros((2,), "float32"))
    with pytest.raises(CheckpointMismatchError, match="resnet50") as caught:
        load_arcface_h5(foreign)
    assert "'dense'" in str(caught.value)


def test_wrong_batchnorm_epsilon_is_refused(keras2_file, tmp_path):
    source, _ = keras2_file
    wrong = tmp_path / "arcface_eps.h5"
    shutil.copyfile(source, wrong)
    with h5py.File(wrong, "r+") as handle:
        config = json.loads(handle.attrs["model_config"])
        for entry in config["config"]["layers"][1]["config"]["layers"]:
            if entry["name"] == "conv3_block2_2_bn":
                entry["config"]["epsilon"] = 1e-3
        handle.attrs["model_config"] = json.dumps(config)
    with pytest.raises(CheckpointMismatchError, match="conv3_block2_2_bn: BatchNormalization epsilon 0.001"):
        load_arcface_h5(wrong)
