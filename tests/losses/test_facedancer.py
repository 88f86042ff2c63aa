import numpy as np
import pytest
import tensorflow as tf

from clipswap.losses.facedancer import IFSR_LAYERS, IFSR_MARGIN_SCALE, IFSR_MARGINS, cycle_loss, ifsr_loss


def test_cycle_loss_hand_value():
    target = tf.zeros([2, 2, 2, 3])
    cycled = tf.concat([tf.fill([1, 2, 2, 3], 0.4), tf.fill([1, 2, 2, 3], -0.2)], axis=0)
    assert float(cycle_loss(cycled, target)) == pytest.approx(0.3, abs=1e-7)


def test_ifsr_hand_values():
    # layer "a": cos = 0 for sample 0, 1 for sample 1 -> d = 0.5 -> 0.5 - 1.2 * 0.1 = 0.38
    # layer "b": d = 0 (identical) -> below the margin -> 0
    target = {"a": tf.constant([[[[1.0, 0.0]]], [[[1.0, 0.0]]]]), "b": tf.ones([2, 2, 2, 1])}
    swap = {"a": tf.constant([[[[0.0, 1.0]]], [[[2.0, 0.0]]]]), "b": tf.ones([2, 2, 2, 1])}
    loss = ifsr_loss(target, swap, margins={"a": 0.1, "b": 0.05})
    assert float(loss) == pytest.approx(0.5 - IFSR_MARGIN_SCALE * 0.1, abs=1e-6)


def test_ifsr_zero_features_no_nan_and_gradient():
    target = {"a": tf.zeros([2, 3, 3, 4])}
    swap = tf.Variable(tf.zeros([2, 3, 3, 4]))
    with tf.GradientTape() as tape:
        loss = ifsr_loss(target, {"a": swap}, margins={"a": 0.1})
    assert np.isfinite(float(loss))
    assert np.all(np.isfinite(tape.gradient(loss, swap).numpy()))


def test_margin_table_and_missing_layer():
    assert len(IFSR_LAYERS) == 11
    assert IFSR_MARGINS["conv4_block6_out"] == 0.121357 and IFSR_MARGINS["conv2_block3_out"] == 0.035144
    assert sum(IFSR_MARGINS.values()) == pytest.approx(0.888137, abs=1e-9)
    with pytest.raises(KeyError, match="conv2_block3_out"):
        ifsr_loss({}, {})
