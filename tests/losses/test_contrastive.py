import math

import numpy as np
import pytest
import tensorflow as tf

from clipswap.losses.contrastive import clip_contrastive_loss
from clipswap.losses.tf_only import ClipMeanTracker


def _unit(v):
    v = np.asarray(v, np.float64)
    n = math.sqrt(float(np.sum(v * v)))
    return v / n if n > 1e-6 else v * 0.0


def _eq5_numpy(e_ref, e_swap, e_aug, e_mean, tau=0.1):
    """Paper eq. 5 written out term by term with loops, independent of the TensorFlow implementation."""
    batch, n_aug, _ = e_aug.shape
    mean = _unit(e_mean)
    negatives = [_unit(_unit(e_swap[j]) - mean) for j in range(batch)]
    total = 0.0
    for i in range(batch):
        swap = _unit(e_swap[i])
        ref = _unit(e_ref[i])
        s1 = _unit(ref - swap)
        s2 = _unit(ref - mean)
        for k in range(n_aug):
            q = _unit(_unit(e_aug[i, k]) - swap)
            for positive in (s1, s2):
                numerator = math.exp(float(q @ positive) / tau)
                denominator = numerator + sum(math.exp(float(q @ s) / tau) for s in negatives)
                total += -math.log(numerator / denominator)
    return total / (batch * n_aug)


def test_hand_computed_single_sample():
    # swap [1,0], aug [0,1] -> Q = [-1,1]/sqrt2; ref [0,1] -> S1+ = Q (Q.S1+ = 1);
    # mean [-1,0] -> S- = [1,0] (Q.S- = -1/sqrt2), S2+ = [1,1]/sqrt2 (Q.S2+ = 0).
    loss = clip_contrastive_loss(
        tf.constant([[0.0, 1.0]]), tf.constant([[1.0, 0.0]]), tf.constant([[[0.0, 1.0]]]), tf.constant([-1.0, 0.0])
    )
    s = 1 / math.sqrt(2)
    expected = math.log(1 + math.exp((-s - 1) / 0.1)) + math.log(1 + math.exp(-s / 0.1))
    assert float(loss) == pytest.approx(expected, rel=1e-5)


def test_matches_loop_transcription_of_eq5():
    rng = np.random.default_rng(1)
    e_ref, e_swap = rng.normal(size=(3, 6)), rng.normal(size=(3, 6))
    e_aug = e_swap[:, None, :] + 0.3 * rng.normal(size=(3, 2, 6))
    e_mean = rng.normal(size=6) * 3.0
    expected = _eq5_numpy(e_ref, e_swap, e_aug, e_mean)
    inputs = [tf.constant(a, tf.float32) for a in (e_ref, e_swap, e_aug, e_mean)]
    assert float(clip_contrastive_loss(*inputs)) == pytest.approx(expected, rel=1e-5)
    hot = _eq5_numpy(e_ref, e_swap, e_aug, e_mean, tau=0.5)
    assert float(clip_contrastive_loss(*inputs, tau=0.5)) == pytest.approx(hot, rel=1e-5)


def test_gradients_flow_through_swap_and_aug_only():
    rng = np.random.default_rng(2)
    tensors = [tf.constant(rng.normal(size=s), tf.float32) for s in ((2, 5), (2, 5), (2, 3, 5), (5,))]
    with tf.GradientTape() as tape:
        tape.watch(tensors)
        loss = clip_contrastive_loss(*tensors)
    g_ref, g_swap, g_aug, g_mean = tape.gradient(loss, tensors)
    assert g_ref is None and g_mean is None
    for gradient in (g_swap, g_aug):
        assert np.all(np.isfinite(gradient.numpy())) and np.abs(gradient.numpy()).max() > 0


def test_identical_embeddings_no_nan():
    e = tf.constant([[0.2, 0.4, -0.1], [0.2, 0.4, -0.1]])
    e_aug = tf.stack([e, e], axis=1)
    with tf.GradientTape() as tape:
        tape.watch([e, e_aug])
        loss = clip_contrastive_loss(e, e, e_aug, e[0])
    # every direction is the zero vector: each term is -log(1 / (1 + B)) = log 3
    assert float(loss) == pytest.approx(2 * math.log(3), rel=1e-6)
    for gradient in tape.gradient(loss, [e, e_aug]):
        assert np.all(np.isfinite(gradient.numpy()))


def test_shape_error():
    with pytest.raises(ValueError, match="n_aug"):
        clip_contrastive_loss(tf.zeros([2, 4]), tf.zeros([2, 4]), tf.zeros([2, 4]), tf.zeros([4]))


def test_clip_mean_tracker_ema_and_checkpoint(tmp_path):
    tracker = ClipMeanTracker(2)
    assert np.all(tracker.value.numpy() == 0)
    first = tracker.update(tf.constant([[2.0, 0.0], [0.0, 5.0]]))  # normalised: [1,0], [0,1]
    assert np.allclose(first.numpy(), [0.5, 0.5])
    second = tf.function(tracker.update)(tf.constant([[0.0, -3.0]]))
    assert np.allclose(second.numpy(), [0.99 * 0.5, 0.99 * 0.5 - 0.01], atol=1e-7)
    assert int(tracker.count.numpy()) == 2 and not tracker.mean.trainable

    path = tf.train.Checkpoint(tracker=tracker).write(str(tmp_path / "ckpt"))
    restored = ClipMeanTracker(2)
    tf.train.Checkpoint(tracker=restored).read(path).assert_consumed()
    assert np.allclose(restored.value.numpy(), second.numpy()) and int(restored.count.numpy()) == 2
    with pytest.raises(ValueError, match="momentum"):
        ClipMeanTracker(2, momentum=1.0)
