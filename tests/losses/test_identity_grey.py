"""The identity augmentation's grey draw (augmentation.id_augment_grey): grey_where gives OpenCV's BT.601 grey in
every channel of the flagged images and leaves the others alone, identity_augment draws it per image from its own
stream on top of the same shift and flip, the id term reads the option, and the configuration refuses a grey draw
without the augmentation it belongs to."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import tensorflow as tf

from clipswap.config import ConfigError, get_preset, validate
from clipswap.losses.augment import grey_where
from clipswap.losses.composite import LossWeights
from clipswap.losses.tf_only import identity_augment

from conftest import run_steps, synthetic_batches


def test_grey_where_is_opencvs_grey_in_the_flagged_images_only():
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 1, (3, 16, 16, 3)).astype(np.float32)
    out = np.asarray(grey_where(tf.constant(images), tf.constant([True, False, True])))
    for i in (0, 2):
        reference = cv2.cvtColor(images[i], cv2.COLOR_RGB2GRAY)
        for channel in range(3):
            np.testing.assert_allclose(out[i, ..., channel], reference, atol=1e-6)
    np.testing.assert_array_equal(out[1], images[1])
    # Linear: a grey image's gradient reaches each input channel with its luma weight.
    x = tf.constant(images)
    with tf.GradientTape() as tape:
        tape.watch(x)
        total = tf.reduce_sum(grey_where(x, tf.constant([True, False, True])))
    gradient = tape.gradient(total, x).numpy()
    np.testing.assert_allclose(gradient[0, 5, 5], 3 * np.array([0.299, 0.587, 0.114]), rtol=1e-6)
    np.testing.assert_allclose(gradient[1], 1.0)


def test_identity_augment_greys_on_top_of_the_same_shift_and_flip():
    images = tf.random.stateless_uniform([64, 16, 16, 3], seed=[1, 2], minval=-1, maxval=1)
    moved = identity_augment(images, seed=[4, 5]).numpy()
    np.testing.assert_array_equal(identity_augment(images, seed=[4, 5], grey_prob=0.0).numpy(), moved)
    all_grey = identity_augment(images, seed=[4, 5], grey_prob=1.0).numpy()
    np.testing.assert_allclose(all_grey, np.asarray(grey_where(tf.constant(moved), tf.ones([64], bool))), atol=1e-6)
    half = identity_augment(images, seed=[4, 5], grey_prob=0.5).numpy()
    np.testing.assert_array_equal(half, identity_augment(images, seed=[4, 5], grey_prob=0.5).numpy())
    grey = np.all(np.abs(half - half[..., :1]) < 1e-6, axis=(1, 2, 3))
    assert 16 <= grey.sum() <= 48  # about half of 64 draws
    np.testing.assert_array_equal(half[~grey], moved[~grey])
    np.testing.assert_allclose(half[grey], all_grey[grey], atol=1e-6)


def test_the_id_term_reads_the_grey_option(make_trainer):
    """Same seed, same batches: the grey draw changes only the identity term of the first step."""
    weights = LossWeights(id=10, rec=5, perceptual=0.2, contra=0.0, att=0.0, adv=0.1)
    logs = {}
    for grey in (0.0, 1.0):
        trainer = make_trainer(weights, clip=False, id_augment=True, id_augment_grey=grey)
        logs[grey] = run_steps(trainer, iter(synthetic_batches()), 1)[0]
    assert np.isfinite(logs[1.0]["id"]) and logs[1.0]["id"] != pytest.approx(logs[0.0]["id"], abs=1e-6)
    assert logs[1.0]["rec"] == pytest.approx(logs[0.0]["rec"], rel=1e-5)


@pytest.mark.parametrize(("changes", "message"), [
    ({"id_augment": False, "id_augment_grey": 0.5}, "needs augmentation.id_augment=true; got 0.5 with"),
    ({"id_augment": True, "id_augment_grey": 1.5}, "probability in \\[0, 1\\]"),
    ({"id_augment": True, "id_augment_grey": -0.1}, "probability in \\[0, 1\\]"),
])
def test_a_grey_draw_outside_the_identity_augmentation_is_refused(changes, message):
    config = get_preset("demo").config
    with pytest.raises(ConfigError, match=message):
        validate(config.replace(**changes))
    validate(config.replace(id_augment=True, id_augment_grey=0.5))
