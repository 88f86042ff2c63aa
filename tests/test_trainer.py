"""SwapTrainer: a few steps on tiny models with synthetic data -- every term finite and named, G and D updated,
frozen encoders untouched, the CLIP mean updated; checkpoint/resume gives the uninterrupted run's next losses."""

from __future__ import annotations

import json
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from clipswap.config import ModelConfig
from clipswap.losses.composite import LossWeights
from clipswap.models.clip_encoder import build_clip_image_encoder
from clipswap.models.discriminator import Discriminator
from clipswap.models.generator import Generator
from clipswap.training.callbacks import NonFiniteGuard, NonFiniteLossError, image_grid
from clipswap.training.checkpointing import TrainingCheckpoints
from clipswap.training.trainer import FeatureSource, IdentityNetwork, SwapTrainer, make_optimizer

SIZE = 32
BATCH = 2
# Named like ArcFace's backbone outputs so the IFSR term (which looks margins up by these names) can run.
FEATURE_LAYERS = ("conv2_block3_out", "conv3_block4_out")


def tiny_identity_encoder(dim: int = 128) -> keras.Model:
    """A small stand-in for SFace: [B, 112, 112, 3] in [0, 1] -> [B, dim], with two named feature layers."""
    image = keras.Input((112, 112, 3))
    x = keras.layers.Conv2D(8, 3, strides=4, padding="same", activation="relu", name=FEATURE_LAYERS[0])(image)
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu", name=FEATURE_LAYERS[1])(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(image, keras.layers.Dense(dim, name="embedding_dense")(x), name="tiny_id")


def build_trainer(weights: LossWeights, clip: bool = True, seed: int = 0, eager: bool = True) -> SwapTrainer:
    """Eager by default: tracing the double-backprop step costs far more than a few tiny eager steps."""
    keras.utils.set_random_seed(seed)
    config = ModelConfig(image_size=SIZE, base_filters=4, mapping_depth=1, mapping_width=8, identity_encoder="sface",
                         clip_variant="tiny" if clip else None)
    features = FeatureSource(identity_layers=FEATURE_LAYERS)
    trainer = SwapTrainer(
        Generator(config), Discriminator(SIZE, 4), IdentityNetwork(tiny_identity_encoder(), FEATURE_LAYERS), weights,
        clip_encoder=build_clip_image_encoder("tiny", input_size=SIZE) if clip else None,
        perceptual=features, attribute=features, ifsr_layers=FEATURE_LAYERS if weights.ifsr else (), n_aug=2,
        seed=seed,
    )
    trainer.compile(make_optimizer(1e-3, 0.0, 0.999, 1.0, 1, False, "g"),
                    make_optimizer(1e-3, 0.0, 0.999, 1.0, 1, False, "d"))
    trainer.run_eagerly = eager
    trainer.make_train_function()
    return trainer


def synthetic_dataset(seed: int = 0, nan_from: int | None = None) -> tf.data.Dataset:
    """The data pipeline's structure: {"target", "source" [B, S, S, 3] in [-1, 1], "same" [B], labels [B]}."""
    rng = np.random.default_rng(seed)
    n = 16
    images = rng.uniform(-1, 1, (n, SIZE, SIZE, 3)).astype("float32")
    if nan_from is not None:
        images[nan_from * BATCH:] = np.nan
    sources = rng.uniform(-1, 1, (n, SIZE, SIZE, 3)).astype("float32")
    same = np.zeros(n, "float32")
    same[::3] = 1.0
    sources[same == 1] = images[same == 1]
    data = {"target": images, "source": sources, "same": same,
            "target_label": np.arange(n, dtype="int64"), "source_label": np.arange(n, dtype="int64")}
    dataset = tf.data.Dataset.from_tensor_slices(data)
    if nan_from is None:
        dataset = dataset.shuffle(8, seed=seed)
    return dataset.batch(BATCH, drop_remainder=True).repeat()


def run_steps(trainer: SwapTrainer, iterator, steps: int) -> list[dict[str, float]]:
    logs = []
    for _ in range(steps):
        trainer.reset_metrics()
        logs.append({name: float(value) for name, value in trainer.train_function(iterator).items()})
    return logs


def snapshot(variables) -> list[np.ndarray]:
    return [np.array(v) for v in variables]


@pytest.mark.parametrize("eager", [True, pytest.param(False, marks=pytest.mark.slow)], ids=["eager", "tf.function"])
def test_steps_report_every_term_finite_and_update_only_g_and_d(eager):
    weights = LossWeights(id=10, rec=5, perceptual=0.2, contra=0.3, att=10, adv=1, cycle=1, ifsr=1)
    trainer = build_trainer(weights, eager=eager)
    g_before = snapshot(trainer.generator.trainable_variables)
    d_before = snapshot(trainer.discriminator.trainable_variables)
    frozen_before = snapshot(trainer.identity.model.weights + trainer.clip_encoder.weights)

    logs = run_steps(trainer, iter(synthetic_dataset()), 2)

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
    frozen_after = snapshot(trainer.identity.model.weights + trainer.clip_encoder.weights)
    unchanged = [np.array_equal(a, b) for a, b in zip(frozen_before, frozen_after, strict=True)]
    assert all(unchanged), "frozen encoders must not change"
    assert int(trainer.step_counter.numpy()) == 2
    assert int(trainer.clip_mean.count.numpy()) == 2
    assert np.linalg.norm(trainer.clip_mean.value.numpy()) > 0
    assert int(trainer.g_optimizer.iterations.numpy()) == 2 and int(trainer.d_optimizer.iterations.numpy()) == 2


def test_inactive_terms_are_not_reported():
    trainer = build_trainer(LossWeights(perceptual=0, contra=0, att=0), clip=False)
    logs = run_steps(trainer, iter(synthetic_dataset()), 1)[0]
    assert set(logs) == {"id", "rec", "adv", "g_total", "d_adv", "r1", "d_total"}


def test_trainer_refuses_missing_networks():
    config = ModelConfig(image_size=SIZE, base_filters=4, mapping_depth=1, mapping_width=8, identity_encoder="sface")
    identity = IdentityNetwork(tiny_identity_encoder(), FEATURE_LAYERS)
    with pytest.raises(ValueError, match="CLIP encoder"):
        SwapTrainer(Generator(config), Discriminator(SIZE, 4), identity, LossWeights(perceptual=0, att=0))
    with pytest.raises(ValueError, match="perceptual"):
        SwapTrainer(Generator(config), Discriminator(SIZE, 4), identity, LossWeights(contra=0))
    with pytest.raises(ValueError, match="no layers"):
        IdentityNetwork(tiny_identity_encoder(), ("conv9_block9_out",))


def test_checkpoint_resume_gives_the_uninterrupted_next_losses(tmp_path):
    weights = LossWeights(id=10, rec=5, perceptual=0.2, contra=0.3, att=10, adv=1)
    trainer = build_trainer(weights)
    iterator = iter(synthetic_dataset(seed=3))
    checkpoints = TrainingCheckpoints(tmp_path, trainer, keep=2, data_iterator=iterator)
    run_steps(trainer, iterator, 2)
    checkpoints.save()
    uninterrupted = run_steps(trainer, iterator, 2)
    g_moment = np.array(trainer.g_optimizer.variables[-1])
    clip_mean = trainer.clip_mean.value.numpy()

    # A fresh process rebuilds everything and restores. The frozen encoders are not in the checkpoint (they come
    # from their files in a real run), so they are rebuilt from the same seed here; G, D and the rest must come back
    # from the checkpoint (the fresh G/D are at their step-0 initialisation).
    resumed = build_trainer(weights, seed=0)
    resumed_iterator = iter(synthetic_dataset(seed=3))
    restored = TrainingCheckpoints(tmp_path, resumed, keep=2, data_iterator=resumed_iterator)
    assert restored.restore() == 2
    assert int(resumed.g_optimizer.iterations.numpy()) == 2 and int(resumed.d_optimizer.iterations.numpy()) == 2
    assert int(resumed.clip_mean.count.numpy()) == 2
    after_resume = run_steps(resumed, resumed_iterator, 2)
    for expected, got in zip(uninterrupted, after_resume, strict=True):
        assert got == pytest.approx(expected, rel=1e-6, abs=1e-7)
    np.testing.assert_allclose(np.array(resumed.g_optimizer.variables[-1]), g_moment, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(resumed.clip_mean.value.numpy(), clip_mean, rtol=1e-6)


def test_nonfinite_guard_message_names_the_term_and_the_kept_checkpoint():
    guard = NonFiniteGuard(lambda: "/run/checkpoints/ckpt-40")
    guard.on_step_end(41, {"id": 0.5, "rec": 0.1})
    with pytest.raises(NonFiniteLossError, match=r"step 42: rec=nan.*ckpt-40"):
        guard.on_step_end(42, {"id": 0.5, "rec": float("nan")})
    with pytest.raises(NonFiniteLossError, match="no checkpoint had been written"):
        NonFiniteGuard().on_step_end(1, {"g_total": float("inf")})


def test_image_grid_layout():
    target = np.full((2, 4, 4, 3), -1.0, "float32")
    source = np.zeros((2, 4, 4, 3), "float32")
    swap = np.full((2, 4, 4, 3), 2.0, "float32")  # out of range: clipped to white
    grid = image_grid(target, source, swap)
    assert grid.shape == (8, 12, 3) and grid.dtype == np.uint8
    assert (grid[:, :4] == 0).all() and (grid[:, 4:8] == 128).all() and (grid[:, 8:] == 255).all()


def test_heldout_identity_loss_and_its_wrong_source_control():
    trainer = build_trainer(LossWeights(id=10.0, rec=5.0, perceptual=0.0, contra=0.0, att=0.0, adv=0.0), clip=False)
    rng = np.random.default_rng(3)
    target = tf.constant(rng.uniform(-1, 1, (3, SIZE, SIZE, 3)).astype("float32"))
    sources = rng.uniform(-1, 1, (3, SIZE, SIZE, 3)).astype("float32")
    matched = float(trainer.heldout_identity_loss(target, tf.constant(sources)))
    control = float(trainer.heldout_wrong_source_loss(target, tf.constant(sources)))
    assert 0.0 <= matched <= 2.0 and 0.0 <= control <= 2.0
    assert abs(matched - control) > 1e-6, "the control must feed G another sample's identity"
    # With one source repeated, the next sample's identity is the same one: the control equals the loss.
    repeated = tf.constant(np.repeat(sources[:1], 3, axis=0))
    np.testing.assert_allclose(
        trainer.heldout_wrong_source_loss(target, repeated), trainer.heldout_identity_loss(target, repeated), atol=1e-6
    )


@pytest.mark.parametrize("encoder", ["sface", "arcface"])
def test_default_attribute_network_reads_only_the_early_identity_stages(encoder):
    """A (attribute_network="identity") compares target and swap on every pair, so it must not read the stages that
    carry identity: that would pull every swap back to the target's identity against the identity loss. The
    perceptual loss (same-identity pairs only) reads all four stages."""
    from clipswap.checkpoints.sface_onnx import load_sface
    from clipswap.models.arcface import build_arcface
    from clipswap.models.resnet50 import STAGE_OUTPUTS
    from clipswap.training.config import resolve_config
    from clipswap.training.run import build_trainer as build_run_trainer
    from clipswap.training.trainer import SFACE_STAGES

    config = resolve_config("tiny", None, {"model.identity_encoder": encoder, "weights.contra": 0})
    assert config.attribute_network == "identity" and config.perceptual_network == "identity"
    identity_model = load_sface() if encoder == "sface" else build_arcface()
    stages = SFACE_STAGES if encoder == "sface" else STAGE_OUTPUTS
    trainer = build_run_trainer(config, identity_model, None)
    assert trainer.attribute.identity_layers == stages[:2]
    assert trainer.perceptual.identity_layers == stages
    # The stride-16 and stride-32 stages are tapped for the perceptual loss only.
    assert {"conv4_block6_out", "conv5_block3_out", "sface_conv_12_relu", "sface_conv_14_relu"} & set(
        trainer.attribute.identity_layers) == set()


class _FixedEmbeddings:
    """Stands in for SwapTrainer in HeldoutIdentity: the swaps' embeddings are the sources' rolled by `shift`."""

    def __init__(self, sources: np.ndarray, shift: int):
        self.sources, self.shift = tf.constant(sources), shift

    def heldout_inputs(self, source):
        return self.sources, self.sources

    def heldout_swap_embedding(self, target, identity_in, shift=0, source=None):
        return tf.roll(identity_in, -(self.shift + shift), axis=0)


@pytest.mark.parametrize(("shift", "loss", "retrieval"), [(0, 0.0, 100.0), (1, 1.0, 0.0)])
def test_heldout_callback_logs_loss_control_and_id_retrieval(tmp_path, shift, loss, retrieval):
    """Orthogonal source embeddings: swaps that carry their own source's identity score loss 0 and 100 % retrieval,
    swaps that carry the next sample's score loss 1 (orthogonal) and 0 %."""
    from clipswap.training.callbacks import HeldoutIdentity

    sources = np.eye(4, 8, dtype="float32")
    batch = {"target": np.zeros((4, SIZE, SIZE, 3), "float32"), "source": np.zeros((4, SIZE, SIZE, 3), "float32"),
             "source_label": np.array([3, 5, 7, 9])}
    callback = HeldoutIdentity(_FixedEmbeddings(sources, shift), batch, every=2, writer=None,
                               jsonl_path=tmp_path / "heldout.jsonl")
    callback.on_step_end(1, {})  # not an evaluation step
    callback.on_step_end(2, {})
    records = [json.loads(line) for line in (tmp_path / "heldout.jsonl").read_text().splitlines()]
    assert len(records) == 1 and records[0]["step"] == 2
    assert records[0]["heldout_id_loss"] == pytest.approx(loss, abs=1e-6)
    assert records[0]["heldout_id_loss_wrong_source"] == pytest.approx(1.0, abs=1e-6)  # one more roll: orthogonal
    assert records[0]["heldout_id_retrieval"] == retrieval


def test_identity_warmup_weights_the_id_term_only_before_its_last_step():
    """id_warmup=(2, w): g_total carries (w - weights.id) * id more in steps 0 and 1, nothing more from step 2; the
    reported terms are the same as without the warm-up."""
    weights = LossWeights(id=2.0, rec=5.0, perceptual=0.0, contra=0.0, att=0.0, adv=0.0)
    plain = build_trainer(weights, clip=False)
    warm = build_trainer(weights, clip=False)
    warm.id_warmup = (2, 10.0)
    logs_plain = run_steps(plain, iter(synthetic_dataset()), 1)
    logs_warm = run_steps(warm, iter(synthetic_dataset()), 1)
    assert logs_warm[0]["id"] == pytest.approx(logs_plain[0]["id"], rel=1e-5)
    assert logs_warm[0]["g_total"] == pytest.approx(logs_plain[0]["g_total"] + 8.0 * logs_plain[0]["id"], rel=1e-4)
    logs = run_steps(warm, iter(synthetic_dataset(seed=1)), 2)
    rest = logs[1]
    assert rest["g_total"] == pytest.approx(2.0 * rest["id"] + 5.0 * rest["rec"], rel=1e-4)  # step 2: warm-up over
