"""CLIP image encoder: preprocessing, shapes, and loading a keras-hub preset directory."""

import keras
import numpy as np
import pytest

from clipswap.checkpoints.clip_preset import load_clip_image_encoder
from clipswap.checkpoints.errors import CheckpointError
from clipswap.models.clip_encoder import (
    CLIP_MEAN,
    CLIP_STD,
    ClipPreprocess,
    build_clip_image_encoder,
)


def test_preprocess_maps_range_and_normalises():
    layer = ClipPreprocess(8)
    x = np.full((1, 16, 16, 3), 0.2, np.float32)  # [-1, 1] -> 0.6 in [0, 1]
    y = layer(x).numpy()
    assert y.shape == (1, 8, 8, 3)
    np.testing.assert_allclose(y[0, 0, 0], (0.6 - np.array(CLIP_MEAN)) / np.array(CLIP_STD), atol=1e-5)


def test_tiny_encoder_shape_and_gradient():
    import tensorflow as tf

    model = build_clip_image_encoder("tiny", input_size=64)
    x = tf.Variable(np.random.default_rng(0).uniform(-1, 1, (2, 64, 64, 3)).astype(np.float32))
    with tf.GradientTape() as tape:
        y = model(x)
        loss = tf.reduce_sum(y)
    assert y.shape == (2, 32)
    assert np.abs(tape.gradient(loss, x).numpy()).sum() > 0


def test_full_b32_parameter_count():
    assert build_clip_image_encoder("clip_vit_base_patch32").count_params() == 87_849_266


def test_loads_keras_hub_preset_directory(tmp_path):
    import keras_hub

    vision = keras_hub.models.CLIPVisionEncoder(
        patch_size=8, hidden_dim=32, num_layers=2, num_heads=2, intermediate_dim=64, image_shape=(32, 32, 3)
    )
    text = keras_hub.models.CLIPTextEncoder(
        vocabulary_size=64,
        embedding_dim=32,
        hidden_dim=32,
        num_layers=1,
        num_heads=2,
        intermediate_dim=64,
        max_sequence_length=8,
    )
    backbone = keras_hub.models.CLIPBackbone(vision, text, projection_dim=32)
    backbone.save_to_preset(str(tmp_path / "preset"))
    model = load_clip_image_encoder(str(tmp_path / "preset"), input_size=64)
    images = np.random.default_rng(0).uniform(-1, 1, (2, 64, 64, 3)).astype(np.float32)
    expected = backbone.get_vision_embeddings(ClipPreprocess(32)(images))
    np.testing.assert_allclose(model(images).numpy(), keras.ops.convert_to_numpy(expected), atol=1e-5)


def test_missing_preset_is_clear(tmp_path):
    with pytest.raises(CheckpointError, match="cannot load the CLIP preset"):
        load_clip_image_encoder(str(tmp_path / "nowhere"))
