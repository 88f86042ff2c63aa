"""The worked example of adding a loss term, of either side: one function (here in this file; in the package, in a
module of clipswap/losses/) and one row of the loss-term table. Nothing else changes: the weight becomes a field of
LossWeights with the row's default, the training loss computes, checks, weights and reports the term, its gradient
reaches the generator, and the configuration takes `--set weights.<name>=x`, config files and old run folders."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from keras import ops

from clipswap.config import loss_weights_class
from clipswap.losses.terms import TERMS, LossTerm
from clipswap.training.features import IdentityNetwork
from clipswap.training.loss import SwapLoss
from clipswap.training.run import make_optimizers
from clipswap.training.trainer import SwapTrainer

from conftest import REPO_ROOT, run_steps, synthetic_batches, tiny_identity_encoder, tiny_train_config


def colour_shift_term(step, scale: float = 1.0):
    """The toy term: `scale` times the squared difference of the swap's and the target's mean colour."""
    swap_mean = ops.mean(step.swap, axis=(1, 2))
    target_mean = ops.mean(step.batch.target, axis=(1, 2))
    return scale * ops.mean(ops.square(swap_mean - target_mean))


#: The one row that adds it.
COLOUR_SHIFT = LossTerm(
    "colour_shift",
    "G",
    "test: squared difference of the mean colours of swap and target",
    "colour_shift",
    colour_shift_term,
    needs=("target",),
    default=0.5,
    options={"scale": 1.0},
)
TABLE = (*TERMS, COLOUR_SHIFT)
Weights = loss_weights_class(TABLE)


def build_loss(weights, **options) -> SwapLoss:
    from clipswap.training.assembly import build_networks

    config = tiny_train_config(clip=False)
    generator, discriminator = build_networks(config.model)
    identity = IdentityNetwork(tiny_identity_encoder(), ())
    return SwapLoss(generator, discriminator, identity, weights, terms=TABLE, **options)


def test_a_new_term_is_one_function_and_one_row():
    assert Weights().colour_shift == 0.5, "the row's default is the weight's"
    assert Weights(colour_shift=2.0).colour_shift == 2.0
    with pytest.raises(ValueError, match="colour_shift"):
        Weights(colour_shift=-1.0)
    weights = Weights(perceptual=0, contra=0, att=0, colour_shift=2.0)
    loss = build_loss(weights, scale=3.0)
    assert "colour_shift" in loss.generator_terms and "colour_shift" in loss.metric_names
    assert loss.options["scale"] == 3.0
    with pytest.raises(TypeError, match="no loss term takes"):
        build_loss(weights, sclae=3.0)
    assert "colour_shift" not in build_loss(Weights(perceptual=0, contra=0, att=0, colour_shift=0)).generator_terms

    data = next(iter(synthetic_batches()))
    batch = loss.read_batch(data)
    with tf.GradientTape() as tape:
        result = loss.generator_pass(batch, tf.constant(0, tf.int64))
    term = result.terms["colour_shift"]
    expected = 3.0 * np.mean(np.square(np.mean(result.swap, axis=(1, 2)) - np.mean(data["target"], axis=(1, 2))))
    assert float(term) == pytest.approx(float(expected), rel=1e-5)
    total = sum(getattr(weights, name) * float(value) for name, value in result.terms.items() if name != "g_total")
    assert float(result.total) == pytest.approx(total, rel=1e-5), "the term enters g_total with its weight"
    gradients = tape.gradient(term, loss.generator.trainable_variables)
    assert sum(g is not None and float(tf.reduce_max(tf.abs(g))) > 0 for g in gradients) > 0


def test_a_new_term_trains_and_is_reported_by_the_trainer():
    loss = build_loss(Weights(perceptual=0, contra=0, att=0, colour_shift=2.0))
    trainer = SwapTrainer(loss)
    trainer.compile(*make_optimizers(tiny_train_config(clip=False)))
    trainer.run_eagerly = True
    trainer.make_train_function()
    logs = run_steps(trainer, iter(synthetic_batches()), 1)[0]
    assert tuple(logs) == loss.metric_names and "colour_shift" in logs
    assert math.isfinite(logs["colour_shift"])


# --- a discriminator term: one function and one row of side "D" -----------------------------------------------------


def logit_drift_term(step, drift: float = 1e-3):
    """The toy D term (ProGAN's drift penalty): `drift` times the mean square of D's real logits."""
    return drift * ops.mean(ops.square(ops.cast(step.real_logits, "float32")))


#: The one row that adds it: no weight (D's terms enter its total unweighted), computed on every step.
LOGIT_DRIFT = LossTerm(
    "logit_drift",
    "D",
    "test: mean square of D's real logits",
    None,
    logit_drift_term,
    always=True,
    needs=("source", "discriminator"),
    options={"drift": 1e-3},
)
D_TABLE = (*TERMS, LOGIT_DRIFT)


def test_a_new_discriminator_term_is_one_function_and_one_row():
    from clipswap.config import LossWeights
    from clipswap.training.assembly import build_networks

    generator, discriminator = build_networks(tiny_train_config(clip=False).model)
    identity = IdentityNetwork(tiny_identity_encoder(), ())
    weights = LossWeights(perceptual=0, contra=0, att=0)
    loss = SwapLoss(generator, discriminator, identity, weights, terms=D_TABLE, drift=0.5)
    plain = SwapLoss(generator, discriminator, identity, weights)
    assert loss.discriminator_terms == ("d_adv", "r1", "logit_drift") and loss.options["drift"] == 0.5
    assert loss.metric_names[-2:] == ("logit_drift", "d_total")

    data = next(iter(synthetic_batches()))
    batch = loss.read_batch(data)
    swap = loss.swap(batch.target, batch.source)
    with tf.GradientTape() as tape:
        result = loss.discriminator_pass(batch, swap)
    term = result.terms["logit_drift"]
    real_logits = discriminator(batch.source, training=True)
    assert float(term) == pytest.approx(0.5 * float(np.mean(np.square(real_logits))), rel=1e-5)
    terms = result.terms
    assert float(result.total) == pytest.approx(float(terms["d_adv"] + terms["r1"] + term), rel=1e-5)
    assert float(terms["d_total"]) == float(result.total)
    # The table's other rows are computed as without the new one.
    before = plain.discriminator_pass(batch, swap).terms
    for name in ("d_adv", "r1"):
        assert float(terms[name]) == pytest.approx(float(before[name]), rel=1e-6), name
    gradients = tape.gradient(term, discriminator.trainable_variables)
    assert sum(g is not None and float(tf.reduce_max(tf.abs(g))) > 0 for g in gradients) > 0

    trainer = SwapTrainer(loss)
    trainer.compile(*make_optimizers(tiny_train_config(clip=False)))
    trainer.run_eagerly = True
    trainer.make_train_function()
    logs = run_steps(trainer, iter(synthetic_batches()), 1)[0]
    assert tuple(logs) == loss.metric_names and math.isfinite(logs["logit_drift"])
    assert logs["d_total"] == pytest.approx(logs["d_adv"] + logs["r1"] + logs["logit_drift"], rel=1e-5)


def test_a_new_row_is_a_key_of_the_configuration(tmp_path):
    """The same addition made to a copy of the package, as source edits: a new module in clipswap/losses/ and a
    row in the table. The configuration then takes `--set weights.colour_shift=x` and YAML files, writes the key to
    config.json, and reads a run folder's config.json written before the term existed with the row's default."""
    package = tmp_path / "clipswap"
    shutil.copytree(REPO_ROOT / "clipswap", package, ignore=shutil.ignore_patterns("__pycache__"))
    (package / "losses" / "colour.py").write_text(
        '"""A toy colour term."""\n\nfrom keras import ops\n\n\n'
        "def colour_shift_term(step, scale: float = 1.0):\n"
        "    return scale * ops.mean(ops.square(ops.mean(step.swap, axis=(1, 2))"
        " - ops.mean(step.batch.target, axis=(1, 2))))\n"
    )
    terms = package / "losses" / "terms.py"
    text = terms.read_text()
    end = "\n)\n\n\ndef check_table"
    assert text.count(end) == 1
    row = (
        '    LossTerm("colour_shift", "G", "toy", "colour_shift", "colour.colour_shift_term", needs=("target",),\n'
        '             default=0.5, options={"scale": 1.0}),'
    )
    terms.write_text(text.replace(end, f"\n{row}{end}"))
    (tmp_path / "run.yaml").write_text("weights:\n  colour_shift: 4\n")
    script = """
import json
from clipswap.config import TrainConfig, parse_set_options, resolve_config
from clipswap.losses.terms import GENERATOR_TERMS, active_generator_terms
config = resolve_config("tiny", None, parse_set_options(["weights.colour_shift=2"]))
assert config.weights.colour_shift == 2.0 and "colour_shift" in active_generator_terms(config.weights)
assert GENERATOR_TERMS[-1] == "colour_shift"
assert resolve_config("tiny", "run.yaml").weights.colour_shift == 4.0
written = json.loads(config.to_json())
assert written["weights"]["colour_shift"] == 2.0
assert TrainConfig.from_dict(written) == config
del written["weights"]["colour_shift"]
assert TrainConfig.from_dict(written).weights.colour_shift == 0.5
assert resolve_config("tiny").weights.colour_shift == 0.5
print("ok")
"""
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
    assert "colour_shift" not in Path(REPO_ROOT / "clipswap" / "losses" / "terms.py").read_text()
