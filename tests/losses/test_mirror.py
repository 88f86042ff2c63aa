"""weights.mirror (clipswap.losses.mirror): the swap against G's swap of the source crop mirrored left to right. The
L1 against numpy; the term through SwapLoss against G called by hand on the two crops; exactly 0 for a source that is
its own mirror image; its gradient reaching every weight of the U-Net; the configuration refusing it for a
generator that does not read the source crop as it is."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from clipswap.config import ConfigError, get_preset
from clipswap.losses.mirror import mirror_consistency_loss
from clipswap.training.assembly import build_networks
from clipswap.training.features import IdentityNetwork
from clipswap.training.loss import SwapLoss

from conftest import tiny_identity_encoder, tiny_train_config

SIZE = 64


def test_the_loss_is_the_mean_absolute_difference():
    rng = np.random.default_rng(0)
    a, b = rng.uniform(-1, 1, (2, 2, 8, 8, 3)).astype("float32")
    assert float(mirror_consistency_loss(a, b)) == pytest.approx(float(np.mean(np.abs(a - b))), rel=1e-6)
    assert float(mirror_consistency_loss(a, a)) == 0.0


def _loss(mirror: float = 1.0):
    weights = dataclasses.replace(get_preset("tiny").config.weights, contra=0.0, perceptual=0.0, att=0.0, flow=1.0,
                                  mirror=mirror)
    config = tiny_train_config(weights, clip=False, model={"conditioning": "target+keypoint_flow",
                                                           "image_size": SIZE})
    generator, discriminator = build_networks(config.model)
    identity = IdentityNetwork(tiny_identity_encoder(), ())
    return SwapLoss(generator, discriminator, identity, config.weights), generator


def _data(source: np.ndarray) -> dict:
    rng = np.random.default_rng(1)
    target, warped = rng.uniform(-1, 1, (2, *source.shape)).astype("float32")
    points = rng.uniform(0.2, 0.8, (2, len(source), 68, 2)).astype("float32")
    return {"target": target, "source": source, "same": np.zeros(len(source), "float32"), "warped": warped,
            "target_68": points[0], "source_68": points[1]}


def test_the_term_is_g_run_on_the_mirrored_source_crop_and_its_gradient_reaches_the_u_net():
    loss, generator = _loss()
    assert "mirror" in loss.generator_terms
    source = np.random.default_rng(2).uniform(-1, 1, (2, SIZE, SIZE, 3)).astype("float32")
    batch = loss.read_batch(_data(source))
    with tf.GradientTape() as tape:
        result = loss.generator_pass(batch, tf.constant(0, tf.int64))
        term = result.terms["mirror"]
    identity_in = loss.identity_input(batch.source)
    by_hand = [np.asarray(loss.run_generator(batch.target, identity_in, tf.constant(crop), training=True))
               for crop in (source, np.ascontiguousarray(source[:, :, ::-1]))]
    assert float(term) > 1e-4, "a random source and its mirror image give different swaps"
    assert float(term) == pytest.approx(float(np.mean(np.abs(by_hand[0] - by_hand[1]))), rel=1e-4)
    grads = dict(zip([w.path for w in generator.trainable_weights],
                     tape.gradient(term, generator.trainable_weights), strict=True))
    # The U-Net (generator_* layers) reads the warped crop; the keypoint network that places the warp is trained by
    # the flow term alone (the warp enters G through a StopGradient), so the mirror term leaves it alone.
    unet = {path: grad for path, grad in grads.items() if path.startswith("generator_")}
    keypoint = {path: grad for path, grad in grads.items() if not path.startswith("generator_")}
    assert len(unet) > 50 and len(keypoint) > 10
    assert all(grad is not None and np.isfinite(np.asarray(grad)).all() for grad in unet.values())
    # The last layers' biases add the same to both swaps and cancel in their difference; every other weight moves it.
    still = sorted(path for path, grad in unet.items() if not float(np.abs(np.asarray(grad)).max()) > 0)
    assert still == ["generator_out_conv/bias", "generator_out_skip/bias"]
    assert all(grad is None for grad in keypoint.values())


def test_a_source_that_is_its_own_mirror_image_costs_nothing():
    loss, _ = _loss()
    half = np.random.default_rng(3).uniform(-1, 1, (2, SIZE, SIZE // 2, 3)).astype("float32")
    symmetric = np.concatenate([half, half[:, :, ::-1]], axis=2)
    result = loss.generator_pass(loss.read_batch(_data(symmetric)), tf.constant(0, tf.int64))
    assert float(result.terms["mirror"]) < 1e-6


def test_off_by_default_and_refused_for_a_generator_that_does_not_read_the_crop_as_it_is():
    assert get_preset("demo").config.weights.mirror == 0.0
    assert "mirror" not in _loss(mirror=0.0)[0].generator_terms
    weights = dataclasses.replace(get_preset("tiny").config.weights, contra=0.0, mirror=1.0)
    assert tiny_train_config(weights, clip=False, model={"conditioning": "target+source_crop"}).weights.mirror == 1.0
    with pytest.raises(ConfigError, match="weights.mirror .* 'target' does not read it"):
        tiny_train_config(weights, clip=False)
    with pytest.raises(ConfigError, match="weights.mirror .* 'target\\+warp' reads a warp of it onto the target"):
        tiny_train_config(weights, clip=False, model={"conditioning": "target+warp"})
