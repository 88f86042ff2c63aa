"""Identity-model registry and the InceptionV3 feature extractor of FID."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from clipswap.evaluation import identity_models
from clipswap.evaluation.identity_models import (
    IDENTITY_MODELS,
    ArcFaceH5Model,
    IdentityModelChoiceError,
    choose_identity_model,
    load_identity_model,
)
from clipswap.face.detection import Detection
from clipswap.face.templates import arcface_template

from conftest import SHARED_DATA as DATA


def test_registry_names_and_unknown_model_error(tmp_path):
    assert set(IDENTITY_MODELS) == {"sface", "dlib"}
    with pytest.raises(ValueError, match="unknown identity model 'cosface'.*existing"):
        load_identity_model("cosface")
    with pytest.raises(ValueError, match="unknown identity model"):
        load_identity_model(str(tmp_path / "absent.h5"))


def test_auto_identity_model_differs_from_the_training_encoder(monkeypatch):
    assert choose_identity_model("auto", None).spec == "sface"
    assert choose_identity_model("auto", "arcface").spec == "sface"
    monkeypatch.setattr(identity_models, "dlib_missing_reason", lambda *files: None)
    choice = choose_identity_model("auto", "sface")
    assert choice.spec == "dlib" and "training encoder sface" in choice.note
    monkeypatch.setattr(identity_models, "dlib_missing_reason", lambda *files: "dlib is not installed")
    with pytest.raises(IdentityModelChoiceError, match=r"auto picks dlib.*clipswap\[eval\].*--identity-model"):
        choose_identity_model("auto", "sface")


def test_the_training_encoder_family_is_refused_unless_allowed(tmp_path):
    arcface = tmp_path / "ArcFace-Res50.h5"
    arcface.write_bytes(b"only its existence matters here")
    for requested, encoder in (("sface", "sface"), ("SFace", "sface"), (str(arcface), "arcface")):
        with pytest.raises(IdentityModelChoiceError, match="--allow-training-identity-model"):
            choose_identity_model(requested, encoder)
        allowed = choose_identity_model(requested, encoder, allow_training_model=True)
        assert allowed.spec == requested and "--allow-training-identity-model" in allowed.note
    # Other families pass; so do given swaps (no generator) and names load_identity_model will reject itself.
    assert choose_identity_model("dlib", "sface").spec == "dlib"
    assert choose_identity_model(str(arcface), "sface").spec == str(arcface)
    assert choose_identity_model("sface", "arcface").spec == "sface"
    assert choose_identity_model("sface", None).spec == "sface"
    assert choose_identity_model("cosface", "arcface").spec == "cosface"


def test_arcface_h5_path_is_loaded_through_the_checkpoint_loader(tmp_path, monkeypatch):
    arcface_h5 = pytest.importorskip("clipswap.checkpoints.arcface_h5")
    import keras

    from clipswap.checkpoints.encoders import IdentityEncoder

    seen = {}

    def fake_loader(path):
        """A stand-in network whose embedding is the crop's mean colour: it shows the crop and its scaling."""
        seen["path"] = Path(path)
        crops = keras.Input((112, 112, 3))
        return keras.Model(crops, keras.layers.GlobalAveragePooling2D()(crops))

    monkeypatch.setattr(arcface_h5, "load_arcface_h5", fake_loader)
    weights = tmp_path / "CosFace-R50.h5"
    weights.write_bytes(b"not read by the fake loader")
    model = load_identity_model(str(weights))
    assert isinstance(model, ArcFaceH5Model) and seen["path"] == weights
    assert model.name == "arcface-h5 (CosFace-R50.h5)"
    assert isinstance(model._encoder, IdentityEncoder) and model._encoder.dim == 3
    # A face whose landmarks are the 112 template itself: the crop is the image's top-left 112 square, pure red,
    # so the mean colour of the crop in [0, 1] is (1, 0, 0), already unit length.
    image = np.zeros((150, 150, 3), np.uint8)
    image[:112, :112] = (255, 0, 0)
    detection = Detection(box=[0, 0, 112, 112], score=1.0, landmarks=arcface_template(112))
    embedding = model.embed(image, detection)
    np.testing.assert_allclose(embedding, [1.0, 0.0, 0.0], atol=1e-3)
    image[:112, :112] = (0, 0, 255)  # same traced function, another face: the colour order is kept
    np.testing.assert_allclose(model.embed(image, detection), [0.0, 0.0, 1.0], atol=1e-3)


def test_sface_embeddings_are_unit_vectors_and_stable():
    image_path = DATA / "lfw" / "Colin_Powell" / "Colin_Powell_0001.jpg"
    if not image_path.is_file():
        pytest.skip("../shared/data is absent")
    import cv2

    from clipswap.face.detection import sort_by_area
    from clipswap.face.yunet import YuNetDetector

    image = cv2.cvtColor(cv2.imread(str(image_path)), cv2.COLOR_BGR2RGB)
    face = sort_by_area(YuNetDetector().detect(image))[0]
    model = load_identity_model("sface")
    first, second = model.embed(image, face), model.embed(image, face)
    assert first.shape == (128,) and np.linalg.norm(first) == pytest.approx(1.0)
    assert np.array_equal(first, second)


@pytest.mark.slow
def test_inception_features_and_fid_of_identical_sets(tmp_path):
    keras = pytest.importorskip("keras")
    from clipswap.evaluation import fid as fid_module
    from clipswap.evaluation.fid import FEATURE_SIZE, InceptionFeatures, fid_from_features

    # Random weights stand in for the user's file: the test checks loading, preprocessing and shapes, not quality.
    keras.utils.set_random_seed(0)
    reference = keras.applications.InceptionV3(
        include_top=False, pooling="avg", weights=None, input_shape=(299, 299, 3)
    )
    weights = tmp_path / "inception_notop.weights.h5"
    reference.save_weights(str(weights))
    features = InceptionFeatures(weights, batch_size=2)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, size=(64 + 8 * i, 80, 3), dtype=np.uint8) for i in range(3)]
    out = features(images)
    assert out.shape == (3, FEATURE_SIZE) and np.all(np.isfinite(out))
    # Independent path: resize with TensorFlow and call the reference model directly.
    import tensorflow as tf

    direct = np.concatenate(
        [np.asarray(reference(tf.image.resize(im[None].astype("float32"), (299, 299)) / 127.5 - 1.0)) for im in images]
    )
    assert np.allclose(out, direct, atol=1e-3 * max(1.0, float(np.abs(direct).max())))
    assert fid_from_features(out, out) == pytest.approx(0.0, abs=1e-6)
    # Through the runner: swaps equal to their targets give FID 0 over the readable pairs; a missing file is counted.
    import cv2

    from clipswap.evaluation.pairs import Pair
    from clipswap.evaluation.runner import run_evaluation

    paths = []
    for i, image in enumerate(images):
        paths.append(tmp_path / f"{i}.png")
        cv2.imwrite(str(paths[-1]), image)
    pairs = [Pair(p, p, p) for p in paths] + [Pair(paths[0], paths[0], tmp_path / "missing.png")]
    result = run_evaluation(pairs, tmp_path / "eval", fid_weights=weights, progress=False)["aggregate"]["fid"]
    assert result["value"] == pytest.approx(0.0, abs=1e-6)
    assert (result["n"], result["failed"]) == (3, 1) and weights.name in result["note"]
    skipped = run_evaluation(pairs, tmp_path / "skipped", progress=False)["aggregate"]["fid"]
    assert skipped["note"].startswith("skipped: no InceptionV3 weights file")
    with pytest.raises(FileNotFoundError, match="InceptionV3 weights file"):
        InceptionFeatures(tmp_path / "absent.h5")
    # Weights of another network: a clear FidWeightsError, not a Keras traceback.
    other = tmp_path / "other.weights.h5"
    keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]).save_weights(str(other))
    with pytest.raises(fid_module.FidWeightsError, match="cannot load InceptionV3 weights from .*other.weights.h5"):
        InceptionFeatures(other)
