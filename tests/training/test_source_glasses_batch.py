"""augmentation.source_glasses in the loss: SwapLoss.read_batch gives G the batch's "drawn_source" (the source crop
with drawn glasses) and leaves `source`, which the identity terms read, as it is; without one G reads the source."""

from __future__ import annotations

import dataclasses

import numpy as np

from clipswap.config import get_preset
from clipswap.training.assembly import build_networks
from clipswap.training.features import IdentityNetwork
from clipswap.training.loss import SwapLoss

from conftest import tiny_identity_encoder, tiny_train_config

SIZE = 64


def test_g_reads_the_drawn_source_and_the_identity_terms_the_source():
    weights = dataclasses.replace(get_preset("tiny").config.weights, contra=0.0, perceptual=0.0, att=0.0, flow=1.0)
    config = tiny_train_config(weights, clip=False, model={"conditioning": "target+keypoint_flow",
                                                           "image_size": SIZE})
    generator, discriminator = build_networks(config.model)
    loss = SwapLoss(generator, discriminator, IdentityNetwork(tiny_identity_encoder(), ()), config.weights)
    rng = np.random.default_rng(0)
    target, source, drawn = (rng.uniform(-1, 1, (2, SIZE, SIZE, 3)).astype("float32") for _ in range(3))
    points = rng.uniform(0.2, 0.8, (2, 2, 68, 2)).astype("float32")
    data = {"target": target, "source": source, "teacher": target, "same": np.zeros(2, "float32"), "warped": target,
            "target_68": points[0], "source_68": points[1]}
    plain = loss.read_batch(data)
    np.testing.assert_array_equal(np.asarray(plain.generator_source), source)
    batch = loss.read_batch({**data, "drawn_source": drawn})
    np.testing.assert_array_equal(np.asarray(batch.generator_source), drawn)
    np.testing.assert_array_equal(np.asarray(batch.source), source)
    step = np.int64(0)
    swap = np.asarray(loss.generator_pass(batch, step).swap)
    identity = loss.identity_input(batch.source, loss.identity(batch.source), None)
    expected = np.asarray(loss.run_generator(loss.generator_input(batch.target, batch.teacher), identity,
                                             batch.generator_source, training=True))
    np.testing.assert_allclose(swap, expected, atol=1e-5)
    assert np.abs(swap - np.asarray(loss.generator_pass(plain, step).swap)).max() > 1e-4
