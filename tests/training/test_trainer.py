"""SwapTrainer over SwapLoss: a few steps on tiny models with synthetic data -- every term finite and named, G and D
updated, frozen encoders untouched, the CLIP mean updated, the step's losses what the code before the loss object
gave; checkpoint/resume gives the uninterrupted run's next losses. The trainers come from conftest (run.build_trainer,
the assembly `clipswap train` uses)."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import tensorflow as tf

from clipswap.losses.composite import LossWeights
from clipswap.training.checkpointing import TrainingCheckpoints
from clipswap.training.features import IdentityNetwork
from clipswap.training.loss import SwapLoss

from conftest import REPO_ROOT, run_steps, synthetic_batches, tiny_identity_encoder
from conftest import TRAINER_SIZE as SIZE


def snapshot(variables) -> list[np.ndarray]:
    return [np.array(v) for v in variables]


@pytest.mark.parametrize("eager", [True, pytest.param(False, marks=pytest.mark.slow)], ids=["eager", "tf.function"])
def test_steps_report_every_term_finite_and_update_only_g_and_d(make_trainer, eager):
    weights = LossWeights(id=10, rec=5, perceptual=0.2, contra=0.3, att=10, adv=1, cycle=1, ifsr=1)
    trainer = make_trainer(weights, eager=eager)
    loss = trainer.swap_loss
    g_before = snapshot(trainer.generator.trainable_variables)
    d_before = snapshot(trainer.discriminator.trainable_variables)
    frozen_before = snapshot(loss.identity.model.weights + loss.clip_encoder.weights)

    logs = run_steps(trainer, iter(synthetic_batches()), 2)

    expected = {"id", "rec", "perceptual", "contra", "att", "adv", "cycle", "ifsr", "g_total", "d_adv", "r1", "d_total"}
    assert set(logs[-1]) == expected
    for step_logs in logs:
        assert all(math.isfinite(v) for v in step_logs.values()), step_logs
    assert logs[-1]["contra"] > 0 and logs[-1]["r1"] >= 0 and 0 <= logs[-1]["id"] <= 2
    # The total is the weighted sum of the reported raw terms.
    total = sum(getattr(weights, name) * logs[-1][name] for name in expected - {"g_total", "d_adv", "r1", "d_total"})
    assert logs[-1]["g_total"] == pytest.approx(total, rel=1e-5)
    assert logs[-1]["d_total"] == pytest.approx(logs[-1]["d_adv"] + logs[-1]["r1"], rel=1e-5)

    g_after = trainer.generator.trainable_variables
    changed_g = [not np.allclose(a, np.array(b)) for a, b in zip(g_before, g_after, strict=True)]
    d_after = trainer.discriminator.trainable_variables
    changed_d = [not np.allclose(a, np.array(b)) for a, b in zip(d_before, d_after, strict=True)]
    assert sum(changed_g) > 0.8 * len(changed_g), "most generator weights must move"
    assert sum(changed_d) > 0.8 * len(changed_d), "most discriminator weights must move"
    frozen_after = snapshot(loss.identity.model.weights + loss.clip_encoder.weights)
    unchanged = [np.array_equal(a, b) for a, b in zip(frozen_before, frozen_after, strict=True)]
    assert all(unchanged), "frozen encoders must not change"
    assert int(trainer.step_counter.numpy()) == 2
    assert int(loss.clip_mean.count.numpy()) == 2
    assert np.linalg.norm(loss.clip_mean.value.numpy()) > 0
    assert int(trainer.g_optimizer.iterations.numpy()) == 2 and int(trainer.d_optimizer.iterations.numpy()) == 2


def test_inactive_terms_are_not_reported(make_trainer):
    trainer = make_trainer(LossWeights(perceptual=0, contra=0, att=0), clip=False)
    logs = run_steps(trainer, iter(synthetic_batches()), 1)[0]
    assert set(logs) == {"id", "rec", "adv", "g_total", "d_adv", "r1", "d_total"}
    assert trainer.swap_loss.metric_names == tuple(logs) == tuple(trainer.trackers)


def test_the_loss_refuses_missing_networks(make_trainer):
    trainer = make_trainer(LossWeights(contra=0, att=0), clip=False)
    generator, discriminator = trainer.generator, trainer.discriminator
    identity = IdentityNetwork(tiny_identity_encoder(), ("conv2_block3_out", "conv3_block4_out"))
    with pytest.raises(ValueError, match="CLIP encoder"):
        SwapLoss(generator, discriminator, identity, LossWeights(perceptual=0, att=0))
    with pytest.raises(ValueError, match="perceptual"):
        SwapLoss(generator, discriminator, identity, LossWeights(contra=0))
    with pytest.raises(ValueError, match="IFSR"):
        SwapLoss(generator, discriminator, identity, LossWeights(perceptual=0, contra=0, att=0, ifsr=1))
    with pytest.raises(ValueError, match="no layers"):
        IdentityNetwork(tiny_identity_encoder(), ("conv9_block9_out",))


#: The named terms of the two steps below, as the trainer gave them before the loss object existed (SwapTrainer
#: computing every term itself; commit e1e0b3f), recorded on a 2-core x86 CPU in fp32.
STEPS_BEFORE_THE_LOSS_OBJECT = [
    {"id": 0.009622544050216675, "rec": 0.579958438873291, "perceptual": 0.1163012832403183,
     "contra": 4.983806610107422, "att": 0.014474734663963318, "adv": 0.42221611738204956,
     "cycle": 0.6450096964836121, "ifsr": 1.051182746887207, "teacher": 0.6420477628707886,
     "g_total": 7.640391826629639, "d_adv": 1.426888346672058, "r1": 30.591751098632812,
     "d_total": 32.018638610839844},
    {"id": 0.009517908096313477, "rec": 0.6537816524505615, "perceptual": 0.14118437469005585,
     "contra": 0.07239541411399841, "att": 0.01898636296391487, "adv": 0.14902715384960175,
     "cycle": 0.6780392527580261, "ifsr": 1.4279354810714722, "teacher": 0.6785222291946411,
     "g_total": 6.901457786560059, "d_adv": 2.284014940261841, "r1": 26.460010528564453,
     "d_total": 28.74402618408203},
]


def test_two_steps_with_every_term_give_the_recorded_losses(make_trainer):
    """Every generator term on (CLIP, cycle, IFSR, the teacher over face and background), the identity augmentation
    and a one-step identity warm-up: the refactors of the step must not move its numbers beyond float32 noise."""
    weights = LossWeights(id=10, rec=5, perceptual=0.2, contra=0.3, att=0.5, adv=0.1, cycle=1, ifsr=1, teacher=2)
    trainer = make_trainer(weights, id_augment=True, id_warmup_steps=1, id_warmup_weight=20.0, teacher_face_only=True,
                           teacher_background=True)
    logs = run_steps(trainer, iter(synthetic_batches(extras=("teacher",))), 2)
    for step, (expected, got) in enumerate(zip(STEPS_BEFORE_THE_LOSS_OBJECT, logs, strict=True), start=1):
        assert set(got) == set(expected), step
        for term, value in expected.items():
            assert got[term] == pytest.approx(value, rel=1e-4, abs=1e-6), (step, term)


def test_checkpoint_resume_gives_the_uninterrupted_next_losses(make_trainer, tmp_path):
    weights = LossWeights(id=10, rec=5, perceptual=0.2, contra=0.3, att=10, adv=1)
    trainer = make_trainer(weights)
    iterator = iter(synthetic_batches(seed=3))
    checkpoints = TrainingCheckpoints(tmp_path, trainer, keep=2, data_iterator=iterator)
    run_steps(trainer, iterator, 2)
    checkpoints.save()
    uninterrupted = run_steps(trainer, iterator, 2)
    g_moment = np.array(trainer.g_optimizer.variables[-1])
    clip_mean = trainer.swap_loss.clip_mean.value.numpy()
    # One state file and its data position: nothing of the state written twice.
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "state-00000002.npz", "state-00000002.tfdata.data-00000-of-00001", "state-00000002.tfdata.index"]

    # A fresh process rebuilds everything and restores. The frozen encoders are not in the checkpoint (they come
    # from their files in a real run), so they are rebuilt from the same seed here; G, D and the rest must come back
    # from the checkpoint (the fresh G/D are at their step-0 initialisation).
    resumed = make_trainer(weights, seed=0)
    resumed_iterator = iter(synthetic_batches(seed=3))
    restored = TrainingCheckpoints(tmp_path, resumed, keep=2, data_iterator=resumed_iterator)
    assert restored.restore() == 2 and restored.data_restored
    assert int(resumed.step_counter.numpy()) == 2
    assert int(resumed.g_optimizer.iterations.numpy()) == 2 and int(resumed.d_optimizer.iterations.numpy()) == 2
    assert int(resumed.swap_loss.clip_mean.count.numpy()) == 2
    after_resume = run_steps(resumed, resumed_iterator, 2)
    for expected, got in zip(uninterrupted, after_resume, strict=True):
        assert got == pytest.approx(expected, rel=1e-6, abs=1e-7)
    np.testing.assert_allclose(np.array(resumed.g_optimizer.variables[-1]), g_moment, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(resumed.swap_loss.clip_mean.value.numpy(), clip_mean, rtol=1e-6)


@pytest.mark.slow
def test_an_earlier_versions_tf_train_checkpoint_resumes_and_ages_out(make_trainer, tmp_path):
    """Run folders of earlier versions hold tf.train checkpoints of the whole state under these object names: the
    loop resumes one exactly (data position included), and it is removed once `keep` state files are newer."""
    weights = LossWeights(id=10, rec=5, perceptual=0, contra=0.3, att=0, adv=1)
    trainer = make_trainer(weights)
    iterator = iter(synthetic_batches(seed=3))
    run_steps(trainer, iterator, 2)
    older = tf.train.Checkpoint(generator=trainer.generator, discriminator=trainer.discriminator,
                                g_optimizer=trainer.g_optimizer, d_optimizer=trainer.d_optimizer,
                                step=trainer.step_counter, clip_mean=trainer.swap_loss.clip_mean, data=iterator)
    tf.train.CheckpointManager(older, str(tmp_path), max_to_keep=3, checkpoint_name="ckpt").save(checkpoint_number=2)
    uninterrupted = run_steps(trainer, iterator, 2)

    resumed = make_trainer(weights, seed=0)
    resumed_iterator = iter(synthetic_batches(seed=3))
    checkpoints = TrainingCheckpoints(tmp_path, resumed, keep=2, data_iterator=resumed_iterator)
    assert checkpoints.latest == str(tmp_path / "ckpt-2")
    assert checkpoints.restore() == 2 and checkpoints.data_restored
    for expected in uninterrupted:
        assert run_steps(resumed, resumed_iterator, 1)[0] == pytest.approx(expected, rel=1e-6, abs=1e-7)
        checkpoints.save()
        if int(resumed.step_counter.numpy()) == 3:  # one state file: the older checkpoint is still one of the last 2
            assert (tmp_path / "ckpt-2.index").is_file()
    assert checkpoints.latest == str(tmp_path / "state-00000004.npz")
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("state-")) == []


def test_heldout_identity_loss_and_its_wrong_source_control(make_trainer):
    loss = make_trainer(LossWeights(id=10.0, rec=5.0, perceptual=0.0, contra=0.0, att=0.0, adv=0.0),
                        clip=False).swap_loss
    rng = np.random.default_rng(3)
    target = tf.constant(rng.uniform(-1, 1, (3, SIZE, SIZE, 3)).astype("float32"))
    sources = rng.uniform(-1, 1, (3, SIZE, SIZE, 3)).astype("float32")
    matched = float(loss.heldout_identity_loss(target, tf.constant(sources)))
    control = float(loss.heldout_wrong_source_loss(target, tf.constant(sources)))
    assert 0.0 <= matched <= 2.0 and 0.0 <= control <= 2.0
    assert abs(matched - control) > 1e-6, "the control must feed G another sample's identity"
    # With one source repeated, the next sample's identity is the same one: the control equals the loss.
    repeated = tf.constant(np.repeat(sources[:1], 3, axis=0))
    np.testing.assert_allclose(
        loss.heldout_wrong_source_loss(target, repeated), loss.heldout_identity_loss(target, repeated), atol=1e-6
    )


@pytest.mark.parametrize("encoder", ["sface", "arcface"])
def test_default_attribute_network_reads_only_the_early_identity_stages(encoder):
    """A (attribute_network="identity") compares target and swap on every pair, so it must not read the stages that
    carry identity: that would pull every swap back to the target's identity against the identity loss. The
    perceptual loss (same-identity pairs only) reads all four stages."""
    from clipswap.checkpoints.sface_onnx import load_sface
    from clipswap.config import resolve_config
    from clipswap.models.arcface import build_arcface
    from clipswap.models.resnet50 import STAGE_OUTPUTS
    from clipswap.models.sface import SFACE_SPEC
    from clipswap.training.run import build_trainer

    config = resolve_config("tiny", None, {"model.identity_encoder": encoder, "weights.contra": 0})
    assert config.loss.attribute_network == "identity" and config.loss.perceptual_network == "identity"
    identity_model = load_sface() if encoder == "sface" else build_arcface()
    stages = SFACE_SPEC.stages if encoder == "sface" else STAGE_OUTPUTS
    loss = build_trainer(config, identity_model, None).swap_loss
    assert loss.attribute.identity_layers == stages[:2]
    assert loss.perceptual.identity_layers == stages
    # The stride-16 and stride-32 stages are tapped for the perceptual loss only.
    assert {"conv4_block6_out", "conv5_block3_out", "sface_conv_12_relu", "sface_conv_14_relu"} & set(
        loss.attribute.identity_layers) == set()


def test_identity_warmup_weights_the_id_term_only_before_its_last_step(make_trainer):
    """id_warmup=(2, w): g_total carries (w - weights.id) * id more in steps 0 and 1, nothing more from step 2; the
    reported terms are the same as without the warm-up."""
    weights = LossWeights(id=2.0, rec=5.0, perceptual=0.0, contra=0.0, att=0.0, adv=0.0)
    plain = make_trainer(weights, clip=False)
    warm = make_trainer(weights, clip=False, id_warmup_steps=2, id_warmup_weight=10.0)
    assert warm.swap_loss.id_warmup == (2, 10.0)
    logs_plain = run_steps(plain, iter(synthetic_batches()), 1)
    logs_warm = run_steps(warm, iter(synthetic_batches()), 1)
    assert logs_warm[0]["id"] == pytest.approx(logs_plain[0]["id"], rel=1e-5)
    assert logs_warm[0]["g_total"] == pytest.approx(logs_plain[0]["g_total"] + 8.0 * logs_plain[0]["id"], rel=1e-4)
    logs = run_steps(warm, iter(synthetic_batches(seed=1)), 2)
    rest = logs[1]
    assert rest["g_total"] == pytest.approx(2.0 * rest["id"] + 5.0 * rest["rec"], rel=1e-4)  # step 2: warm-up over


#: What clipswap must not import: TensorFlow's private modules and APIs.
PRIVATE_TF = re.compile(r"tf\.__internal__|summary_pb2|tensorflow\.python|tensorflow\.core")


def test_the_package_uses_no_private_tensorflow_api():
    package = REPO_ROOT / "clipswap"
    found = [f"{path.relative_to(package.parent)}:{number}: {line.strip()}"
             for path in sorted(package.rglob("*.py"))
             for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
             if PRIVATE_TF.search(line)]
    assert not found, "\n".join(found)
