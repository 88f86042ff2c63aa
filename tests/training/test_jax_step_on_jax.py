"""The JAX training step on JAX itself, run by the JAX job (tests/test_jax_backend.py, TensorFlow unimportable): the
jitted step of the tiny trainer (every generator term whose maths both backends share, the CLIP contrastive term with
its running mean, the identity augmentation, D's logistic loss and R1) reports every term finite, moves G and D and
nothing frozen, and a state file written after step 2 and restored into scrambled variables gives step 3's figures
exactly: the state file holds all a step reads, and the draws depend on the step alone.

Under the TensorFlow backend (the main suite) these tests skip: tests/training/test_jax_step.py compares the two
steps from there, in a subprocess.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from clipswap.losses.composite import LossWeights

from conftest import TRAINER_BATCH, TRAINER_SIZE, tiny_identity_encoder, tiny_train_config

pytestmark = pytest.mark.skipif(keras.backend.backend() != "jax",
                                reason="runs under KERAS_BACKEND=jax, in the JAX job (tests/test_jax_backend.py)")

WEIGHTS = LossWeights(id=10, rec=5, perceptual=0.2, contra=0.3, att=10, adv=1)


def _batch(index: int) -> dict[str, np.ndarray]:
    """Batch `index` of random faces in [-1, 1], its first sample a same-identity pair (its source its target)."""
    rng = np.random.default_rng(index)
    shape = (TRAINER_BATCH, TRAINER_SIZE, TRAINER_SIZE, 3)
    target = rng.uniform(-1, 1, shape).astype(np.float32)
    source = rng.uniform(-1, 1, shape).astype(np.float32)
    source[0] = target[0]
    return {"target": target, "source": source, "same": np.array([1.0] + [0.0] * (TRAINER_BATCH - 1), np.float32)}


def _snapshot(variables) -> list[np.ndarray]:
    return [np.array(keras.ops.convert_to_numpy(v.value)) for v in variables]


@pytest.fixture(scope="module")
def jax_step():
    """(JaxSwapStep, the state groups a checkpoint holds) of the tiny trainer with CLIP and the identity
    augmentation, as `clipswap train --backend jax` assembles it."""
    from clipswap.models.clip_encoder import build_clip_image_encoder
    from clipswap.training.assembly import build_loss, build_networks, make_optimizers
    from clipswap.training.jax_step import JaxSwapStep
    from clipswap.training.state_files import state_groups

    config = tiny_train_config(WEIGHTS, clip=True, id_augment=True, id_augment_grey=0.5)
    keras.utils.set_random_seed(config.seed)
    identity = tiny_identity_encoder(config.model.identity_encoder)
    clip = build_clip_image_encoder("tiny", input_size=TRAINER_SIZE)
    generator, discriminator = build_networks(config.model)
    loss = build_loss(config, generator, discriminator, identity, clip)
    g_optimizer, d_optimizer = make_optimizers(config)
    step = JaxSwapStep(loss, g_optimizer, d_optimizer)
    return step, state_groups(generator, discriminator, g_optimizer, d_optimizer, loss.clip_mean)


def test_jax_steps_are_finite_move_g_and_d_and_resume_exactly_from_a_state_file(jax_step, tmp_path):
    from clipswap.training.state_files import StateCheckpoints

    step, groups = jax_step
    loss = step.loss
    g_before = _snapshot(step.generator.trainable_variables)
    d_before = _snapshot(step.discriminator.trainable_variables)
    frozen_before = _snapshot(step.frozen_variables)

    state = step.initial_state()
    logs = []
    for index in range(2):
        state, figures = step(state, _batch(index))
        logs.append({name: float(np.asarray(value)) for name, value in figures.items()})
    assert set(logs[-1]) == {"id", "rec", "perceptual", "contra", "att", "adv", "g_total", "d_adv", "r1", "d_total"}
    for figures in logs:
        assert all(math.isfinite(value) for value in figures.values()), figures
    assert logs[-1]["contra"] > 0 and logs[-1]["r1"] >= 0 and 0 <= logs[-1]["id"] <= 2
    assert int(state.step) == 2

    step.write_back(state)
    changed_g = [not np.allclose(a, b) for a, b in zip(g_before, _snapshot(step.generator.trainable_variables),
                                                        strict=True)]
    changed_d = [not np.allclose(a, b) for a, b in zip(d_before, _snapshot(step.discriminator.trainable_variables),
                                                        strict=True)]
    assert sum(changed_g) > 0.8 * len(changed_g), "most generator weights must move"
    assert sum(changed_d) > 0.8 * len(changed_d), "most discriminator weights must move"
    assert all(np.array_equal(a, b) for a, b in zip(frozen_before, _snapshot(step.frozen_variables), strict=True))
    assert int(np.asarray(loss.clip_mean.count.value)) == 2
    assert int(np.asarray(step.g_optimizer.iterations.value)) == 2

    checkpoints = StateCheckpoints(tmp_path, groups, keep=1, step=lambda: int(state.step))
    checkpoints.save()
    state, figures = step(state, _batch(2))
    uninterrupted = {name: float(np.asarray(value)) for name, value in figures.items()}

    # Every variable the file holds is scrambled, then restored: step 3 again must give the same figures.
    for variables in groups.values():
        for variable in variables:
            variable.assign(np.full(variable.shape, 7, np.dtype(variable.dtype)))
    assert checkpoints.restore() == 2
    _, figures = step(step.initial_state(2), _batch(2))
    assert {name: float(np.asarray(value)) for name, value in figures.items()} == uninterrupted
