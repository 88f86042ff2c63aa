import numpy as np
import pytest
import tensorflow as tf

from clipswap.losses.reconstruction import SAME_PAIR_EPS, reconstruction_loss, same_pair_average


def _batch():
    target = np.zeros([3, 2, 2, 3], np.float32)
    swap = np.stack([np.full([2, 2, 3], v, np.float32) for v in (0.5, 1.0, -0.25)])
    return tf.constant(target), tf.Variable(swap)


def test_average_over_same_pairs_only():
    target, swap = _batch()
    # per-sample L1 = 0.5, 1.0, 0.25; samples 0 and 2 are same pairs
    loss = reconstruction_loss(target, swap, tf.constant([True, False, True]))
    assert float(loss) == pytest.approx((0.5 + 0.25) / (2 + SAME_PAIR_EPS), abs=1e-7)
    assert float(reconstruction_loss(target, swap, [1.0, 0.0, 1.0], facedancer_clip=True)) == pytest.approx(
        0.5 * 0.75 / (2 + SAME_PAIR_EPS), abs=1e-7
    )


def test_zero_without_same_pair_and_gradient_only_on_flagged_samples():
    target, swap = _batch()
    with tf.GradientTape(persistent=True) as tape:
        none = reconstruction_loss(target, swap, tf.constant([0, 0, 0]))
        some = reconstruction_loss(target, swap, tf.constant([0, 1, 0]))
    assert float(none) == 0.0
    assert np.all(tape.gradient(none, swap).numpy() == 0.0)
    gradient = tape.gradient(some, swap).numpy()
    assert np.all(gradient[[0, 2]] == 0.0)
    # d/dswap of mean|swap - 0| / (1 + eps) over 12 elements, swap > 0
    assert np.allclose(gradient[1], 1 / 12 / (1 + SAME_PAIR_EPS))


def test_identical_images_give_zero_and_finite_gradient():
    image = tf.Variable(tf.random.uniform([2, 4, 4, 3], -1, 1))
    with tf.GradientTape() as tape:
        loss = reconstruction_loss(image, image, [1, 1])
    assert float(loss) == 0.0
    assert np.all(np.isfinite(tape.gradient(loss, image).numpy()))


def test_same_pair_average_and_shape_error():
    assert float(same_pair_average(tf.constant([2.0, 4.0]), tf.constant([True, True]), eps=0.0)) == 3.0
    with pytest.raises(ValueError, match="H, W, C"):
        reconstruction_loss(tf.zeros([2, 3]), tf.zeros([2, 3]), [1, 1])
