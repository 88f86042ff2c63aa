"""The JAX training step against the TensorFlow one: from the same weights and batch, one step of each gives the same
losses, the same gradients of G's total and of D's logistic loss, and the same updated weights of G wherever their
gradient decides Adam's step, within float32 tolerances; D's R1 gradients (the nested differentiation) match an
independent float64 reference.

The TensorFlow side is the tiny trainer of conftest (run.build_trainer) at 64 px; the JAX side runs in a subprocess
under KERAS_BACKEND=jax with TensorFlow unimportable (tests/jax_step_probe.py), after assigning it every weight of
this side. The configuration turns on every term whose maths is the same on both backends (id, rec, perceptual, att,
adv, FaceDancer's cycle and IFSR, and D's logistic loss and R1); the CLIP contrastive term and the identity
augmentation are off, because their seeded draws are TensorFlow's Philox on one side and JAX's threefry on the other
(the same recipe, not the same numbers).
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from clipswap.losses.composite import LossWeights

from conftest import REPO_ROOT, TRAINER_BATCH, build_tiny_trainer, run_steps

WEIGHTS = LossWeights(id=10, rec=5, perceptual=0.2, contra=0, att=10, adv=1, cycle=1, ifsr=1)
#: 64 px (the tiny preset's side), not conftest's 32: at 32 px G's bottleneck is 1 x 1, where an instance
#: normalisation's output is its beta whatever its input, and the gradients behind it are rounding noise that no two
#: backends share (measured: a factor 5 apart).
MODEL = {"image_size": 64}
SIZE = MODEL["image_size"]
#: |JAX - TF| / max(|TF|, 1e-3) allowed for a loss figure: float32 maths in another op order (convolutions, the
#: bilinear resize to 112 px, reductions) differs in the 6th-7th digit; measured at most about 1e-5.
LOSS_RTOL = 1e-4
#: R1 is a second derivative (the gradient of D w.r.t. its input, squared and summed), where the op-order
#: differences of the first derivative are amplified: measured about 1e-5 relative; allowed 1e-3.
R1_RTOL = 1e-3
#: G's gradients of g_total (the JAX side's from jax.grad of the generator pass, op by op), to 1e-4 of each weight's
#: largest (measured at most 8e-6 on a 2-core AMD EPYC with AVX2).
G_GRAD_RTOL = 1e-4
#: G's updated weights after the jitted step: Adam's first step (beta1 = 0) moves each weight by lr * g / (|g| + e),
#: e = eps / sqrt(1 - beta2) = 3.2e-6, i.e. by about +-lr wherever |g| >> e; they are compared as their updates, in
#: units of lr, at most 0.05 lr apart (a wrong gradient sign is up to 2 lr) wherever the gradient is at least 1 % of
#: its weight's largest. Below that the sign is not decided: XLA compiles the whole step (G's and D's passes and
#: both optimisers) into one program whose fused op order moves G's gradients by up to 8e-4 of a weight's largest
#: (measured on a 2-core AVX2 EPYC; the op-by-op gradients above agree to 8e-6), enough to flip the update of a
#: gradient 1e-4 of the largest (measured 1.7 lr). Those elements are few: at least 80 % of G's weights are compared
#: (measured 86 %), at most 0.008 lr apart.
UPDATE_ATOL_IN_LR = 0.05
UPDATE_GRAD_FLOOR = 1e-2
UPDATE_COMPARED_SHARE = 0.8
#: D's gradients, compared instead of its updated weights. d_adv's (first derivatives) with TensorFlow's, to 1e-4
#: of the largest. R1's (second derivatives) with an independent float64 reference (the penalty written out in the
#: probe, differentiated twice in float64), to 1e-4 of the largest (measured 1.2e-5 of 27), not with TensorFlow's:
#: TensorFlow's R1 gradients depart from that reference by 2-6 % of the largest, differently from run to run
#: (measured 0.63 and 1.41 of 27 at the bias of a convolution right before an instance normalisation, whose R1
#: gradient is analytically zero; a few percent on the kernels). Adam's sign-like first step turns such differences
#: into +-lr, so D's updated weights cannot be compared element by element either; that they moved is checked.
D_ADV_GRAD_RTOL = 1e-4
R1_REFERENCE_RTOL = 1e-4


def _names(model) -> np.ndarray:
    return np.array([f"{v.path} {tuple(v.shape)}" for v in model.weights])


@pytest.mark.slow
def test_one_jax_step_matches_the_tensorflow_step(tmp_path):
    trainer = build_tiny_trainer(WEIGHTS, clip=False, model=MODEL)
    config_lr = trainer.g_optimizer.learning_rate
    models = {"identity": trainer.swap_loss.identity.model, "generator": trainer.generator,
              "discriminator": trainer.discriminator}
    rng = np.random.default_rng(3)
    shape = (TRAINER_BATCH, SIZE, SIZE, 3)
    batch = {"target": rng.uniform(-1, 1, shape).astype(np.float32),
             "source": rng.uniform(-1, 1, shape).astype(np.float32), "same": np.array([1, 0], np.float32)}
    batch["source"][0] = rng.uniform(-1, 1, shape[1:])  # a same-identity pair of two different images

    data = {"weights_json": json.dumps(dataclasses.asdict(WEIGHTS)), "model_json": json.dumps(MODEL)}
    for name, model in models.items():
        data[f"{name}_names"] = _names(model)
        data.update({f"{name}_{i}": np.asarray(v) for i, v in enumerate(model.weights)})
    data.update({f"batch_{key}": value for key, value in batch.items()})
    before = {name: [np.asarray(v) for v in models[name].trainable_weights] for name in ("generator", "discriminator")}
    assert all(np.isfinite(np.asarray(v)).all() for v in trainer.generator.weights)
    np.savez(tmp_path / "in.npz", **data)

    paths = os.pathsep.join([str(REPO_ROOT), str(REPO_ROOT / "tests")])
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": paths}
    result = subprocess.run([sys.executable, str(REPO_ROOT / "tests" / "jax_step_probe.py"), str(tmp_path / "in.npz"),
                             str(tmp_path / "out.npz")], capture_output=True, text=True, env=env, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    jax_out = dict(np.load(tmp_path / "out.npz"))
    result = subprocess.run([sys.executable, str(REPO_ROOT / "tests" / "jax_step_probe.py"), str(tmp_path / "in.npz"),
                             str(tmp_path / "r1.npz"), "--r1-float64"], capture_output=True, text=True, env=env,
                            timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    reference = dict(np.load(tmp_path / "r1.npz"))
    largest = max(np.abs(g).max() for g in reference.values())
    for index in range(len(reference)):
        difference = np.abs(jax_out[f"dgrad_r1_{index}"] - reference[f"r1_{index}"]).max()
        assert difference <= R1_REFERENCE_RTOL * largest, f"R1 gradient {index}: {difference} of {largest}"
    # The nested differentiation reaches D's weights: most of R1's gradients are far from zero.
    assert sum(np.abs(g).max() > 0.05 * largest for g in reference.values()) > len(reference) // 2

    loss = trainer.swap_loss
    swap_batch = loss.read_batch(batch)
    with tf.GradientTape() as tape:
        g_pass = loss.generator_pass(swap_batch, tf.constant(0, tf.int64))
    swap = g_pass.swap
    variables_g = trainer.generator.trainable_variables
    g_grads = [np.asarray(g) for g in tape.gradient(g_pass.total, variables_g)]
    for index, tf_grad in enumerate(g_grads):
        difference = np.abs(jax_out[f"ggrad_{index}"] - tf_grad).max()
        assert difference <= G_GRAD_RTOL * np.abs(tf_grad).max(), f"d g_total / d {variables_g[index].path}"
    with tf.GradientTape() as tape:
        value = loss.discriminator_pass(swap_batch, swap).terms["d_adv"]
    variables = trainer.discriminator.trainable_variables
    tf_grads = [np.asarray(g) for g in tape.gradient(value, variables)]
    largest = max(np.abs(g).max() for g in tf_grads)
    for index, tf_grad in enumerate(tf_grads):
        difference = np.abs(jax_out[f"dgrad_d_adv_{index}"] - tf_grad).max()
        assert difference <= D_ADV_GRAD_RTOL * largest, f"d d_adv / d {variables[index].path}: {difference}"

    dataset = tf.data.Dataset.from_tensors({key: tf.constant(value) for key, value in batch.items()}).repeat()
    logs = run_steps(trainer, iter(dataset), 1)[0]

    assert int(jax_out["step"]) == 1
    assert set(logs) == {key[4:] for key in jax_out if key.startswith("log_")}
    for name, value in logs.items():
        rtol = R1_RTOL if name in ("r1", "d_total") else LOSS_RTOL
        got = float(jax_out[f"log_{name}"])
        assert np.isfinite(got), name
        assert abs(got - value) <= rtol * max(abs(value), 1e-3), f"{name}: JAX {got} vs TensorFlow {value}"

    lr = float(np.asarray(config_lr))
    moved, compared = 0, 0
    for index, variable in enumerate(trainer.generator.trainable_weights):
        tf_update = (np.asarray(variable) - before["generator"][index]) / lr
        jax_update = (jax_out[f"generator_{index}"] - before["generator"][index]) / lr
        decided = np.abs(g_grads[index]) >= UPDATE_GRAD_FLOOR * np.abs(g_grads[index]).max()
        assert np.abs(jax_update - tf_update)[decided].max() <= UPDATE_ATOL_IN_LR, f"generator weight {variable.path}"
        compared += decided.sum()
        moved += bool(np.abs(jax_update).max() > 0.5)
    assert compared >= UPDATE_COMPARED_SHARE * sum(g.size for g in g_grads), f"only {compared} updates compared"
    # The JAX step's gradients reach every trainable weight of G (each moves by about lr somewhere) and every kernel
    # and scale of D (a conv bias of D right before an instance normalisation has an analytically zero gradient).
    assert moved == len(trainer.generator.trainable_weights), f"{moved} of G's weights moved"
    for index, variable in enumerate(trainer.discriminator.trainable_weights):
        if variable.path.endswith(("kernel", "gamma")):
            assert np.abs(jax_out[f"discriminator_{index}"] - before["discriminator"][index]).max() > 0.5 * lr, \
                variable.path


def test_the_jax_step_sends_every_batch_entry_a_term_may_read():
    """The step copies only BATCH_KEYS to the device: an optional entry left out (the pairs' landmarks, which the
    flow term and a shape generator's teacher read) would refuse those runs on JAX."""
    from clipswap.losses.terms import OPTIONAL_BATCH
    from clipswap.training.jax_step import BATCH_KEYS

    assert set(OPTIONAL_BATCH) <= set(BATCH_KEYS)
