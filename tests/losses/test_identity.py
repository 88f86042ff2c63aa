import math

import numpy as np
import pytest
import tensorflow as tf

from clipswap.losses.identity import cosine_similarity, identity_loss, l2_normalize


def test_identity_loss_hand_values():
    # cos([1,0],[0,1]) = 0 and cos([1,1],[2,2]) = 1 -> mean(1, 0) = 0.5
    assert float(identity_loss([[1.0, 0.0], [1.0, 1.0]], [[0.0, 1.0], [2.0, 2.0]])) == pytest.approx(0.5, abs=1e-7)
    # cos([3,4],[4,3]) = 24/25
    assert float(identity_loss([[3.0, 4.0]], [[4.0, 3.0]])) == pytest.approx(1 / 25, abs=1e-7)
    # opposite directions give the maximum 2
    assert float(identity_loss([[1.0, -2.0]], [[-3.0, 6.0]])) == pytest.approx(2.0, abs=1e-6)


def test_identity_loss_matches_numpy_on_random_embeddings():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(4, 16)), rng.normal(size=(4, 16))
    expected = np.mean([1 - a[i] @ b[i] / (np.linalg.norm(a[i]) * np.linalg.norm(b[i])) for i in range(4)])
    assert float(identity_loss(a.astype(np.float32), b.astype(np.float32))) == pytest.approx(expected, abs=1e-6)


def test_identity_loss_identical_and_zero_inputs_have_no_nan():
    z = tf.constant([[0.3, -0.2, 0.9], [0.0, 0.0, 0.0]])
    with tf.GradientTape() as tape:
        tape.watch(z)
        loss = identity_loss(z, z)
    gradient = tape.gradient(loss, z)
    # identical -> 0; the zero row has cosine 0 -> 1
    assert float(loss) == pytest.approx(0.5, abs=1e-6)
    assert np.all(np.isfinite(gradient.numpy()))


def test_gradient_reaches_swap_embedding():
    z_src = tf.constant([[1.0, 0.0]])
    z_swap = tf.Variable([[0.5, 0.5]])
    with tf.GradientTape() as tape:
        loss = identity_loss(z_src, z_swap)
    gradient = tape.gradient(loss, z_swap).numpy()
    # turning z_swap towards z_src ([1, 0]) lowers the loss: the gradient is negative in x and positive in y
    assert gradient[0, 0] < 0 < gradient[0, 1]


def test_helpers_and_shape_errors():
    assert np.allclose(l2_normalize(tf.constant([[3.0, 4.0]])).numpy(), [[0.6, 0.8]])
    assert float(cosine_similarity(tf.constant([1.0, 0.0]), tf.constant([1.0, 1.0]))) == pytest.approx(
        1 / math.sqrt(2), abs=1e-6
    )
    with pytest.raises(ValueError, match=r"\[B, D\]"):
        identity_loss(tf.zeros([2, 3, 4]), tf.zeros([2, 3, 4]))
