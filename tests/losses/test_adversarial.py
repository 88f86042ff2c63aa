import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from clipswap.losses.adversarial import discriminator_adversarial_loss, generator_adversarial_loss
from clipswap.losses.tf_only import discriminator_logits_with_r1, r1_penalty


def _softplus(x):
    return math.log1p(math.exp(x))


def test_logistic_losses_hand_values():
    assert float(generator_adversarial_loss(tf.constant([[0.0], [2.0]]))) == pytest.approx(
        (math.log(2) + _softplus(-2.0)) / 2, rel=1e-6
    )
    d = discriminator_adversarial_loss(tf.constant([1.0]), tf.constant([0.0, -1.0]))
    assert float(d) == pytest.approx((math.log(2) + _softplus(-1.0)) / 2 + _softplus(-1.0), rel=1e-6)
    # large logits stay finite
    assert np.isfinite(float(generator_adversarial_loss(tf.constant([-1e4, 1e4]))))


def _tiny_discriminator():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((5, 5, 2), dtype="float64")
    x = keras.layers.Conv2D(3, 3, activation="tanh", dtype="float64", name="d_conv")(inputs)
    x = keras.layers.Flatten(dtype="float64")(x)
    logits = keras.layers.Dense(1, dtype="float64", name="d_logit")(x)
    return keras.Model(inputs, logits)


def test_r1_matches_finite_differences():
    model = _tiny_discriminator()
    images = np.random.default_rng(0).uniform(-1, 1, size=(2, 5, 5, 2))
    step = 1e-6
    size = images[0].size
    expected_norms = []
    for i in range(2):
        offsets = np.eye(size).reshape(size, 5, 5, 2) * step
        batch = np.concatenate([images[i] + offsets, images[i] - offsets])
        logits = model(tf.constant(batch), training=False).numpy()[:, 0]
        gradient = (logits[:size] - logits[size:]) / (2 * step)
        expected_norms.append(np.sum(gradient**2))
    expected = 0.5 * 10.0 * np.mean(expected_norms)
    penalty = r1_penalty(tf.constant(images), lambda x: model(x, training=False), gamma=10.0)
    assert float(penalty) == pytest.approx(expected, rel=1e-6)


def test_r1_has_gradient_for_discriminator_weights_and_returns_logits():
    model = _tiny_discriminator()
    images = tf.constant(np.random.default_rng(1).uniform(-1, 1, size=(3, 5, 5, 2)))
    with tf.GradientTape() as tape:
        logits, penalty = discriminator_logits_with_r1(images, lambda x: model(x, training=True))
    # dD/dx does not depend on the last bias; every other weight gets a second-order gradient
    variables = [v for v in model.trainable_variables if v.path != "d_logit/bias"]
    assert len(variables) == len(model.trainable_variables) - 1
    gradients = tape.gradient(penalty, variables)
    assert all(g is not None and np.all(np.isfinite(g.numpy())) for g in gradients)
    assert max(float(tf.reduce_max(tf.abs(g))) for g in gradients) > 0
    assert np.allclose(logits.numpy(), model(images).numpy())


def _patch_discriminator():
    keras.utils.set_random_seed(1)
    inputs = keras.Input((5, 5, 2), dtype="float64")
    x = keras.layers.Conv2D(1, 3, activation="tanh", dtype="float64", name="d_conv")(inputs)
    return keras.Model(inputs, keras.layers.Reshape((9,), dtype="float64")(x))


def test_r1_of_a_patch_discriminator_is_that_of_its_mean_patch_logit():
    # A D with 9 patch logits is penalised as the one-logit D that averages them: the penalty does not grow with
    # the number of patches (the sum of 9 patch logits would give about 9x the mean's squared gradient and more).
    model = _patch_discriminator()
    images = tf.constant(np.random.default_rng(2).uniform(-1, 1, size=(3, 5, 5, 2)))
    patches = r1_penalty(images, lambda x: model(x, training=False))
    mean = r1_penalty(images, lambda x: tf.reduce_mean(model(x, training=False), axis=1, keepdims=True))
    assert float(patches) == pytest.approx(float(mean), rel=1e-5)
    summed = r1_penalty(images, lambda x: tf.reduce_sum(model(x, training=False), axis=1, keepdims=True))
    assert float(summed) == pytest.approx(81 * float(mean), rel=1e-5)


def test_weighted_real_samples_leave_the_unweighted_out_of_d_loss_and_r1():
    # A paired discriminator has a real pair only where the person has a second photo: the others weigh 0.
    real, fake = tf.constant([[1.0], [-3.0]]), tf.constant([[0.0]])
    kept = discriminator_adversarial_loss(real, fake, tf.constant([1.0, 0.0]))
    assert float(kept) == pytest.approx(math.log(2) + _softplus(-1.0), rel=1e-6)
    assert float(discriminator_adversarial_loss(real, fake, tf.constant([0.0, 0.0]))) == pytest.approx(math.log(2))
    assert float(discriminator_adversarial_loss(real, fake, tf.constant([1.0, 1.0]))) == pytest.approx(
        float(discriminator_adversarial_loss(real, fake)), rel=1e-6)
    model = _tiny_discriminator()
    images = tf.constant(np.random.default_rng(3).uniform(-1, 1, size=(3, 5, 5, 2)))
    d_fn = lambda x: model(x, training=False)  # noqa: E731
    weighted = discriminator_logits_with_r1(images, d_fn, 10.0, tf.constant([1.0, 0.0, 1.0]))[1]
    subset = r1_penalty(tf.gather(images, [0, 2]), d_fn, 10.0)
    assert float(weighted) > 0 and float(weighted) == pytest.approx(float(subset), rel=1e-6)
    assert float(discriminator_logits_with_r1(images, d_fn, 10.0, tf.zeros([3]))[1]) == 0.0
