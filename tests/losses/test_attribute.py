import keras
import numpy as np
import pytest
import tensorflow as tf

from clipswap.losses.attribute import AttributeModelError, attribute_loss, make_attribute_extractor


def test_attribute_loss_hand_values():
    # level 1 [2, 2]: per-sample mean squared diff 2.5 and 0; level 2 [2, 1, 2]: 1 and 4
    t1 = tf.constant([[0.0, 0.0], [1.0, 1.0]])
    s1 = tf.constant([[1.0, 2.0], [1.0, 1.0]])
    t2 = tf.zeros([2, 1, 2])
    s2 = tf.constant([[[1.0, -1.0]], [[2.0, 2.0]]])
    assert float(attribute_loss([t1, t2], [s1, s2])) == pytest.approx((2.5 + 1.0 + 0.0 + 4.0) / 2, rel=1e-6)
    # one attribute vector as a bare tensor
    assert float(attribute_loss(t1, s1)) == pytest.approx(1.25, rel=1e-6)
    with pytest.raises(ValueError, match="levels"):
        attribute_loss([t1], [s1, s2])


def test_attribute_loss_zero_and_gradient():
    swap = tf.Variable(tf.ones([2, 3]))
    with tf.GradientTape() as tape:
        loss = attribute_loss([tf.ones([2, 3])], [swap])
    assert float(loss) == 0.0
    assert np.all(tape.gradient(loss, swap).numpy() == 0)


def _tiny_discriminator():
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(4, 3, strides=2, padding="same", name="d_conv1")(inputs)
    x = keras.layers.LeakyReLU(0.2, name="d_act1")(x)
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", name="d_conv2")(x)
    return keras.Model(inputs, keras.layers.Dense(1, name="d_logit")(keras.layers.Flatten()(x)), name="d")


def test_discriminator_kind():
    model = _tiny_discriminator()
    extractor = make_attribute_extractor("discriminator", model=model, layer_names=["d_act1", "d_conv2"])
    images = tf.random.uniform([2, 16, 16, 3], -1, 1)
    features = extractor(images)
    assert [f.shape for f in features] == [(2, 8, 8, 4), (2, 4, 4, 8)]
    # the discriminator sees [-1, 1] images unchanged
    assert np.allclose(features[1].numpy(), keras.Model(model.input, model.get_layer("d_conv2").output)(images))
    assert len(model.trainable_weights) == 6
    with pytest.raises(ValueError, match="layer_names"):
        make_attribute_extractor("discriminator", model=model)


def test_file_kind_loads_safely(tmp_path):
    inputs = keras.Input((8, 8, 3))
    vector = keras.layers.Dense(5, name="attributes")(keras.layers.Flatten()(inputs))
    model = keras.Model(inputs, vector)
    path = tmp_path / "attributes.keras"
    model.save(path)
    extractor = make_attribute_extractor("file", path=path)
    assert extractor.input_size == 8 and extractor.pixel_transform == "unit"
    images = tf.random.uniform([2, 8, 8, 3], -1, 1)
    (features,) = extractor(images)
    assert np.allclose(features.numpy(), model((images + 1) / 2).numpy(), atol=1e-6)
    assert extractor.model.trainable_weights == []

    lambda_model = keras.Sequential([keras.Input((4,)), keras.layers.Lambda(lambda x: x * 2)])
    lambda_path = tmp_path / "lambda.keras"
    lambda_model.save(lambda_path)
    with pytest.raises(AttributeModelError, match="safe mode"):
        make_attribute_extractor("file", path=lambda_path)
    with pytest.raises(AttributeModelError, match=r"\.keras"):
        (tmp_path / "attributes.h5").write_bytes(b"")
        make_attribute_extractor("file", path=tmp_path / "attributes.h5")
    with pytest.raises(AttributeModelError, match="does not exist"):
        make_attribute_extractor("file", path=tmp_path / "nope.keras")
    corrupt = tmp_path / "corrupt.keras"
    corrupt.write_bytes(b"not a zip archive")
    with pytest.raises(AttributeModelError, match="could not load"):
        make_attribute_extractor("file", path=corrupt)
    with pytest.raises(ValueError, match="unknown attribute kind"):
        make_attribute_extractor("facenet")
