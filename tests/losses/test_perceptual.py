import keras
import numpy as np
import pytest
import tensorflow as tf

from clipswap.losses.perceptual import (
    FACEDANCER_VGG_WEIGHTS,
    WeightsDownloadError,
    model_features,
    perceptual_loss,
    tap_layers,
    to_network_pixels,
    vgg16_features,
)
from clipswap.losses.reconstruction import SAME_PAIR_EPS
from clipswap.models.resnet50 import STAGE_OUTPUTS


def test_perceptual_loss_hand_values():
    # layer 1 [2, 2, 2, 1]: per-sample mean |diff| = 1.0 and 0.5; layer 2 [2, 3]: 2.0 and 4.0
    t1 = tf.zeros([2, 2, 2, 1])
    s1 = tf.concat([tf.ones([1, 2, 2, 1]), tf.fill([1, 2, 2, 1], -0.5)], axis=0)
    t2 = tf.constant([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    s2 = tf.constant([[2.0, -2.0, 2.0], [5.0, -3.0, 5.0]])
    both = perceptual_loss([t1, t2], [s1, s2], tf.constant([True, True]))
    assert float(both) == pytest.approx((1.0 + 2.0 + 0.5 + 4.0) / (2 + SAME_PAIR_EPS), rel=1e-6)
    second = perceptual_loss([t1, t2], [s1, s2], [0, 1], weights=[2.0, 0.5])
    assert float(second) == pytest.approx((2.0 * 0.5 + 0.5 * 4.0) / (1 + SAME_PAIR_EPS), rel=1e-6)
    assert float(perceptual_loss([t1], [s1], [0, 0])) == 0.0
    with pytest.raises(ValueError, match="layer weights"):
        perceptual_loss([t1, t2], [s1, s2], [1, 1], weights=[1.0])


def test_facedancer_weights_equal_scaling_both_maps():
    rng = np.random.default_rng(0)
    target = [tf.constant(rng.normal(size=(2, 3, 3, 4)), tf.float32) for _ in range(5)]
    swap = [tf.constant(rng.normal(size=(2, 3, 3, 4)), tf.float32) for _ in range(5)]
    scaled = perceptual_loss([0.85 * t for t in target], [0.85 * s for s in swap], [1, 1])
    weighted = perceptual_loss(target, swap, [1, 1], FACEDANCER_VGG_WEIGHTS)
    assert float(weighted) == pytest.approx(float(scaled), rel=1e-6)


def test_pixel_transforms():
    pixel = tf.constant([[[[1.0, -1.0, 0.0]]]])
    assert np.allclose(to_network_pixels(pixel, "none").numpy(), [1.0, -1.0, 0.0])
    assert np.allclose(to_network_pixels(pixel, "unit").numpy(), [1.0, 0.0, 0.5])
    # RGB (255, 0, 127.5) -> BGR (127.5, 0, 255) minus the ImageNet BGR mean
    assert np.allclose(to_network_pixels(pixel, "caffe").numpy(), [127.5 - 103.939, -116.779, 255 - 123.68], atol=1e-4)
    with pytest.raises(ValueError, match="pixel_transform"):
        to_network_pixels(pixel, "torch")


def test_vgg16_features_shapes_frozen_and_weights_file(tmp_path):
    extractor = vgg16_features(weights=None)
    images = tf.random.uniform([1, 32, 32, 3], -1, 1)
    features = extractor(images)
    shapes = [(1, 16, 16, 64), (1, 8, 8, 128), (1, 4, 4, 256), (1, 2, 2, 512), (1, 1, 1, 512)]
    assert [f.shape for f in features] == shapes
    assert extractor.model.trainable_weights == []
    assert extractor.pixel_transform == "none"
    # the same weights from a file give the same features; caffe preprocessing changes them
    path = tmp_path / "vgg16_notop.weights.h5"
    extractor.model.save_weights(path)
    from_file = vgg16_features(weights=path, vgg_preprocessing=True)
    assert from_file.pixel_transform == "caffe"
    expected = extractor.model(to_network_pixels(images, "caffe"))
    assert all(np.allclose(a.numpy(), b.numpy(), atol=1e-4) for a, b in zip(from_file(images), expected, strict=True))
    with pytest.raises(FileNotFoundError, match="notop"):
        vgg16_features(weights=tmp_path / "missing.h5")


def _tiny_backbone():
    inputs = keras.Input((16, 16, 3))
    a = keras.layers.Conv2D(4, 3, strides=2, padding="same", activation="relu", name="conv2_block3_out")(inputs)
    b = keras.layers.Conv2D(8, 3, strides=2, padding="same", name="conv3_block4_out")(a)
    return keras.Model(inputs, keras.layers.GlobalAveragePooling2D(name="pool")(b), name="tiny")


def test_unit_pixel_stage_extractor_on_tiny_model():
    model = _tiny_backbone()
    extractor = model_features(model, ("conv2_block3_out", "conv3_block4_out"), "unit", input_size=16)
    images = tf.random.uniform([2, 24, 24, 3], -1, 1)
    features = extractor.named(images)
    assert list(features) == ["conv2_block3_out", "conv3_block4_out"]
    unit = tf.image.resize((images + 1) / 2, (16, 16))
    reference = keras.Model(model.input, model.get_layer("conv3_block4_out").output)(unit)
    assert np.allclose(features["conv3_block4_out"].numpy(), reference.numpy(), atol=1e-6)
    # the tapped model shares the weights and leaves them trainable (a discriminator must stay trainable)
    assert model.get_layer("conv2_block3_out").trainable
    with pytest.raises(ValueError, match="conv4_block6_out"):
        model_features(model, STAGE_OUTPUTS)


def test_vgg16_download_failure_names_the_file(monkeypatch):
    def offline(*args, **kwargs):
        raise Exception("URL fetch failure: [Errno -3] Temporary failure in name resolution")  # what get_file raises

    monkeypatch.setattr(keras.utils, "get_file", offline)
    with pytest.raises(WeightsDownloadError, match="vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"):
        vgg16_features("imagenet")


def test_gradient_flows_through_extractor_to_images():
    extractor = model_features(_tiny_backbone(), ["conv3_block4_out"])
    target = tf.random.uniform([2, 16, 16, 3], -1, 1)
    swap = tf.Variable(tf.random.uniform([2, 16, 16, 3], -1, 1))
    with tf.GradientTape() as tape:
        loss = perceptual_loss(extractor(target), extractor(swap), [1, 0])
    gradient = tape.gradient(loss, swap).numpy()
    assert np.abs(gradient[0]).max() > 0 and np.all(gradient[1] == 0)
    with pytest.raises(ValueError, match="at least one"):
        tap_layers(_tiny_backbone(), [])
