"""Generator and discriminator: exact sizes, shapes, gradients, mixed precision, MACs."""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from clipswap.config import ModelConfig, get_preset
from clipswap.models.cost import count_macs
from clipswap.models.discriminator import Discriminator
from clipswap.models.generator import (
    Generator,
    copy_into_inference_form,
    fold_pooled_kernel,
    inference_generator,
)

TINY = get_preset("tiny").model


@pytest.mark.parametrize(
    ("mapping", "clip", "expected"),
    [
        (256, None, 22_473_254),
        (512, None, 24_505_894),
        (256, "clip_vit_base_patch32", 22_604_326),
        (512, "clip_vit_base_patch32", 24_768_038),
    ],
)
def test_generator_parameter_counts(mapping, clip, expected):
    model = Generator(ModelConfig(mapping_width=mapping, clip_variant=clip))
    assert model.count_params() == expected


def test_generator_layout_and_macs():
    model = Generator(ModelConfig())
    assert len(model.layers) == 121
    conv, dense = count_macs(model, [(256, 256, 3), (512,)])
    assert conv == 28_852_617_216  # 28.8526 G, the sum of the release generator's conv layers at 256 px
    assert dense == 1_638_400


def test_discriminator_parameter_count_and_macs():
    model = Discriminator(256)
    assert model.count_params() == 23_972_353
    conv, _ = count_macs(model, (256, 256, 3))
    assert round(conv / 1e9, 2) == 27.79


@pytest.mark.parametrize("size", [64, 128])
def test_generator_shapes_and_finite(size):
    config = TINY.replace(image_size=size)
    model = Generator(config)
    x = np.random.default_rng(0).uniform(-1, 1, (2, size, size, 3)).astype(np.float32)
    z = np.random.default_rng(1).normal(size=(2, config.id_input_dim)).astype(np.float32)
    y = model([x, z]).numpy()
    assert y.shape == (2, size, size, 3)
    assert np.isfinite(y).all()


def test_generator_identity_changes_output():
    model = Generator(TINY)
    x = np.random.default_rng(0).uniform(-1, 1, (1, 64, 64, 3)).astype(np.float32)
    z1 = np.random.default_rng(1).normal(size=(1, TINY.id_input_dim)).astype(np.float32)
    y1, y2 = model([x, z1]).numpy(), model([x, -z1]).numpy()
    assert np.abs(y1 - y2).mean() > 1e-4


@pytest.mark.parametrize("up_types", [("concat", "add", "affa", "no_skip", "concat", "affa")])
def test_generator_all_block_types(up_types):
    model = Generator(TINY.replace(up_types=up_types))
    y = model([np.zeros((1, 64, 64, 3), np.float32), np.ones((1, TINY.id_input_dim), np.float32)])
    assert y.shape == (1, 64, 64, 3)


def _assert_all_gradients(model, inputs, loss_fn):
    with tf.GradientTape() as tape:
        loss = loss_fn(model(inputs, training=True))
    grads = tape.gradient(loss, model.trainable_variables)
    missing = [v.path for v, g in zip(model.trainable_variables, grads, strict=True) if g is None]
    assert not missing, f"no gradient for {missing}"
    zero = [v.path for v, g in zip(model.trainable_variables, grads, strict=True) if not np.any(g.numpy())]
    assert not zero, f"all-zero gradient for {zero}"
    assert all(np.isfinite(g.numpy()).all() for g in grads)


def test_gradient_reaches_every_generator_weight():
    model = Generator(TINY)
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (2, 64, 64, 3)).astype(np.float32)
    z = rng.normal(size=(2, TINY.id_input_dim)).astype(np.float32)
    _assert_all_gradients(model, [x, z], lambda y: tf.reduce_mean(tf.square(y - 0.3)))


def test_gradient_reaches_every_discriminator_weight():
    model = Discriminator(64, base_filters=8)
    x = np.random.default_rng(0).uniform(-1, 1, (2, 64, 64, 3)).astype(np.float32)
    _assert_all_gradients(model, x, lambda y: tf.reduce_sum(tf.nn.softplus(-y)))


def test_residual_generator_starts_as_its_input_and_learns_everywhere():
    config = TINY.replace(residual=True, pre_swap="landmarks")
    model = Generator(config)
    assert model.count_params() == Generator(TINY).count_params()  # same layers, only the output is target + out
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (2, 64, 64, 3)).astype(np.float32)
    z = rng.normal(size=(2, config.id_input_dim)).astype(np.float32)
    np.testing.assert_array_equal(model([x, z]).numpy(), x)
    assert model.get_layer("generator_final").__class__.__name__ == "Add"
    # The output block starts at zero, so at first only its own weights get a gradient; after one SGD step on them
    # the gradient reaches every weight.
    loss_fn = lambda y: tf.reduce_mean(tf.square(y - 0.3))  # noqa: E731
    with tf.GradientTape() as tape:
        loss = loss_fn(model([x, z], training=True))
    grads = tape.gradient(loss, model.trainable_variables)
    for variable, grad in zip(model.trainable_variables, grads, strict=True):
        if variable.path.startswith("generator_out_") and "kernel" in variable.path:
            variable.assign_sub(0.1 * grad)
    _assert_all_gradients(model, [x, z], loss_fn)
    clone = Generator.from_config(model.get_config())
    assert clone.config_.residual and clone.config_.pre_swap == "landmarks"


def test_bf16_forward(restore_policy):
    keras.config.set_dtype_policy("mixed_bfloat16")
    g = Generator(TINY)
    d = Discriminator(64, base_filters=8)
    x = np.random.default_rng(0).uniform(-1, 1, (2, 64, 64, 3)).astype(np.float32)
    z = np.random.default_rng(1).normal(size=(2, TINY.id_input_dim)).astype(np.float32)
    y = g([x, z])
    assert y.dtype == "bfloat16"
    assert np.isfinite(tf.cast(y, tf.float32).numpy()).all()
    assert np.isfinite(tf.cast(d(y), tf.float32).numpy()).all()
    assert g.trainable_variables[0].dtype == "float32"


@pytest.mark.parametrize("preset", ["tiny", "demo"])
def test_bf16_generator_stays_within_bf16_tolerance_of_float32(preset):
    """The mixed-bf16 rebuild (generator_in_precision) gives the float32 model's output within bf16 rounding."""
    from clipswap.config import get_preset
    from clipswap.inference.swapper import generator_in_precision

    # a dense output path, two inputs
    config = get_preset(preset).model.replace(conditioning="target", keypoint_shape=0.0, residual=False)
    keras.utils.set_random_seed(0)
    model = Generator(config)
    mixed = generator_in_precision(model, "bf16")
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (2, config.image_size, config.image_size, 3)).astype(np.float32)
    z = rng.normal(size=(2, config.id_input_dim)).astype(np.float32)
    expected = model([x, z]).numpy()
    got = tf.cast(mixed([x, z]), tf.float32).numpy()
    scale = expected.std()
    assert scale > 0.05  # a random model's output is not flat, so the comparison means something
    # measured (seed 0): mean 1.0 % / 0.8 % of the output's spread, max 6 % / 5 % (tiny / demo), with the fused
    # instance norm and the folded down blocks of bf16 inference (before the fold: 1.3 % / 0.8 %, 9 % / 6 %)
    difference = np.abs(got - expected) / scale
    assert difference.mean() < 0.02 and difference.max() < 0.15, (difference.mean(), difference.max())


@pytest.mark.parametrize(("height", "width", "cin", "cout"), [(8, 8, 3, 5), (16, 6, 7, 2), (2, 4, 1, 1)])
def test_a_folded_kernel_is_the_3x3_conv_then_the_2x2_average_pool(height, width, cin, cout):
    """Independent reference: TensorFlow's own conv2d ('SAME', stride 1) + avg_pool2d (2x2, 'VALID') against one
    stride-2 'SAME' conv2d with the folded 4x4 kernel, on even sizes (the generator's are)."""
    rng = np.random.default_rng(height * width + cin)
    x = tf.constant(rng.normal(size=(2, height, width, cin)), tf.float64)
    kernel = rng.normal(size=(3, 3, cin, cout))
    expected = tf.nn.avg_pool2d(tf.nn.conv2d(x, kernel, 1, "SAME"), 2, 2, "VALID").numpy()
    folded = fold_pooled_kernel(kernel)
    assert folded.shape == (4, 4, cin, cout) and folded.dtype == kernel.dtype
    got = tf.nn.conv2d(x, folded, 2, "SAME").numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="3x3 kernel"):
        fold_pooled_kernel(np.zeros((1, 1, cin, cout)))


@pytest.mark.parametrize("preset", ["tiny", "demo"])
def test_the_inference_form_computes_the_trained_generator_in_fewer_macs(preset):
    """inference_generator (what every engine runs) matches the trained model in float32 and needs fewer MACs."""
    # residual off: its output block starts at zero, which would leave the target alone to compare
    config = dataclasses.replace(get_preset(preset).model, residual=False)
    keras.utils.set_random_seed(1)
    model = Generator(config)
    folded = inference_generator(model)
    assert folded.fold_pooling and not model.fold_pooling and folded.name == model.name
    assert [w.shape for w in folded.inputs] == [w.shape for w in model.inputs]
    rng = np.random.default_rng(1)
    size = config.image_size
    inputs = [rng.uniform(-1, 1, (2, size, size, 3)).astype(np.float32),
              rng.normal(size=(2, config.id_input_dim)).astype(np.float32)]
    if config.source_image:
        inputs.append(rng.uniform(-1, 1, (2, size, size, 3)).astype(np.float32))
    expected, got = model(inputs).numpy(), folded(inputs).numpy()
    assert expected.std() > 0.05  # a random model's output is not flat, so the comparison means something
    np.testing.assert_allclose(got, expected, atol=2e-5 * max(1.0, np.abs(expected).max()))
    # an inference form (or a fused model) converts again to the same function
    again = inference_generator(folded)
    for layer in again.layers:
        for mine, theirs in zip(layer.get_weights(), folded.get_layer(layer.name).get_weights(), strict=True):
            np.testing.assert_array_equal(mine, theirs)
    fused = Generator(config, fused_norm=True)
    copy_into_inference_form(model, fused)
    from_fused = inference_generator(fused)
    assert from_fused.fused_norm
    np.testing.assert_allclose(from_fused(inputs).numpy(), expected, atol=2e-5 * max(1.0, np.abs(expected).max()))
    specs = [tuple(x.shape[1:]) for x in inputs]
    trained_macs, folded_macs = sum(count_macs(model, specs)), sum(count_macs(folded, specs))
    assert 0.5 * trained_macs < folded_macs < 0.75 * trained_macs, (trained_macs, folded_macs)


def test_the_release_generator_folds_to_17_66_gmacs():
    """The figure the generator module and the benchmark quote (28.85 GMACs trained, SFace input)."""
    model = Generator(ModelConfig(identity_encoder="sface"))
    specs = [(256, 256, 3), (128,)]
    assert sum(count_macs(model, specs)) == pytest.approx(28.854e9, rel=1e-3)
    assert sum(count_macs(inference_generator(model), specs)) == pytest.approx(17.664e9, rel=1e-3)


def test_config_validation():
    with pytest.raises(ValueError, match="up_types"):
        ModelConfig(up_types=("affa",))
    with pytest.raises(ValueError, match="multiple of 32"):
        ModelConfig(image_size=100)
    with pytest.raises(ValueError, match="identity_encoder"):
        ModelConfig(identity_encoder="facenet")
    with pytest.raises(ValueError, match="pre_swap"):
        ModelConfig().replace(pre_swap="poisson")
    with pytest.raises(ValueError, match="residual"):
        ModelConfig(residual="yes")


def test_a_generator_built_in_a_dtype_policy_leaves_the_global_policy_alone():
    from clipswap.config import get_preset

    config = get_preset("tiny").model
    before = keras.config.dtype_policy().name
    mixed = Generator(config, dtype="mixed_bfloat16")
    assert keras.config.dtype_policy().name == before
    assert mixed.get_layer("generator_x0").compute_dtype == "bfloat16"
    assert mixed.get_layer("generator_x0").kernel.dtype == "float32"
    clone = Generator.from_config(mixed.get_config())
    assert clone.get_layer("generator_x0").compute_dtype == "bfloat16"
    assert Generator(config).get_layer("generator_x0").compute_dtype == "float32"
    with pytest.raises(ValueError):
        Generator(config, dtype="no_such_policy")
    assert keras.config.dtype_policy().name == before


def test_a_patch_discriminator_scores_each_cell_of_its_map():
    keras.utils.set_random_seed(0)  # the corner-against-quarter ratio below is measured on these weights
    model = Discriminator(64, base_filters=8, patch_blocks=2)
    assert [layer.name for layer in model.layers if layer.name.endswith("_out")] == [
        "discriminator_block1_out", "discriminator_block2_out"]
    images = np.random.default_rng(0).uniform(-1, 1, (2, 64, 64, 3)).astype(np.float32)
    logits = model(images).numpy()
    assert logits.shape == (2, 256) and np.isfinite(logits).all()
    # A cell is judged on its own receptive field (instance norm shares each image's statistics, so far cells move a
    # little too): changing the top-left corner moves the top-left cell far more than the bottom-right quarter.
    changed = images.copy()
    changed[:, :8, :8] = -changed[:, :8, :8]
    moved = np.abs(model(changed).numpy() - logits).reshape(2, 16, 16).max(axis=0)
    assert moved[0, 0] > 5 * moved[8:, 8:].max()
    _assert_all_gradients(model, images, lambda y: tf.reduce_sum(tf.nn.softplus(-y)))
    twin = Discriminator.from_config(model.get_config())
    assert twin.patch_blocks == 2 and twin.count_params() == model.count_params()
    for bad in (5, -1, True):
        with pytest.raises(ValueError, match="patch_blocks must be an integer from 0 to 4 at 64 px"):
            Discriminator(64, base_filters=8, patch_blocks=bad)


def test_training_steps_with_a_patch_discriminator():
    from clipswap.config import ConfigError, get_preset, validate

    from conftest import build_tiny_trainer, run_steps, synthetic_batches

    trainer = build_tiny_trainer(clip=False, discriminator_patch_blocks=2)
    assert trainer.discriminator.output.shape[1:] == (64,)
    before = [np.array(v) for v in trainer.discriminator.trainable_variables]
    logs = run_steps(trainer, iter(synthetic_batches()), 2)
    assert all(np.isfinite(list(step.values())).all() for step in logs)
    assert all(np.abs(np.array(v) - b).max() > 0 for v, b in zip(trainer.discriminator.trainable_variables, before,
                                                                  strict=True))
    with pytest.raises(ConfigError, match="discriminator_patch_blocks must be an integer from 0 to 4 at 64 px"):
        validate(get_preset("tiny").config.replace(discriminator_patch_blocks=5))


def test_a_paired_discriminator_reads_an_image_beside_its_reference():
    model = Discriminator(64, base_filters=8, patch_blocks=2, paired=True)
    assert model.input.shape[1:] == (64, 64, 6) and model.output.shape[1:] == (256,)
    pairs = np.random.default_rng(0).uniform(-1, 1, (2, 64, 64, 6)).astype(np.float32)
    logits = model(pairs).numpy()
    # The reference half is read: changing it alone changes the logits.
    other = pairs.copy()
    other[..., 3:] = -other[..., 3:]
    assert np.abs(model(other).numpy() - logits).max() > 1e-3
    _assert_all_gradients(model, pairs, lambda y: tf.reduce_sum(tf.nn.softplus(-y)))
    twin = Discriminator.from_config(model.get_config())
    assert twin.paired and twin.input.shape[-1] == 6 and twin.count_params() == model.count_params()
    assert Discriminator(64, base_filters=8).get_config().get("paired") is None
    # Only the stem's input width differs from the one-image D: 3 more channels of 3x3 x 8 kernels.
    assert model.count_params() - Discriminator(64, base_filters=8, patch_blocks=2).count_params() == 3 * 9 * 8
    with pytest.raises(ValueError, match="paired must be True or False"):
        Discriminator(64, base_filters=8, paired=1)


def test_training_steps_with_a_paired_discriminator():
    from types import SimpleNamespace

    from clipswap.config import ConfigError, get_preset, validate
    from clipswap.training.run import TrainingSetupError, _check_pairs_folder

    from conftest import build_tiny_trainer, run_steps, synthetic_batches

    trainer = build_tiny_trainer(clip=False, discriminator_patch_blocks=2, discriminator_paired=True)
    assert trainer.discriminator.input.shape[-1] == 6
    before = [np.array(v) for v in trainer.discriminator.trainable_variables]
    logs = run_steps(trainer, iter(synthetic_batches(extras=("mate",))), 2)
    assert all(np.isfinite(list(step.values())).all() for step in logs)
    assert all(np.abs(np.array(v) - b).max() > 0 for v, b in zip(trainer.discriminator.trainable_variables, before,
                                                                  strict=True))
    # The real pairs of samples without a mate are left out: changing their mate images changes nothing.
    loss = trainer.swap_loss
    data = next(iter(synthetic_batches(extras=("mate",), shuffle=False)))
    batch, swap = loss.read_batch(data), data["target"] * 0.5
    changed = dict(data, mate=tf.where(data["has_mate"][:, None, None, None] > 0, data["mate"], -data["mate"]))
    first = loss.discriminator_pass(batch, swap).terms
    second = loss.discriminator_pass(loss.read_batch(changed), swap).terms
    assert float(tf.reduce_min(data["has_mate"])) == 0.0 and float(tf.reduce_max(data["has_mate"])) == 1.0
    for name in ("d_adv", "r1"):
        assert float(first[name]) == pytest.approx(float(second[name]), rel=1e-6)
    # The fake pairs put the swap beside its source (what G's adversarial term scores too): the source matters.
    assert float(loss.discriminator_pass(loss.read_batch(dict(data, source=-data["source"])), swap).terms["d_adv"]) \
        != pytest.approx(float(first["d_adv"]), rel=1e-6)
    with pytest.raises(ValueError, match="paired discriminator takes its real pairs from two photos"):
        loss.read_batch({key: value for key, value in data.items() if key not in ("mate", "has_mate")})
    # Refused where its inputs cannot exist: data without mates, or a feature term that reads D's one image.
    config = get_preset("tiny").config.replace(discriminator_paired=True)
    with pytest.raises(TrainingSetupError, match="paired discriminator takes its real pairs"):
        _check_pairs_folder(SimpleNamespace(config=config, data_dir="aligned"), pairs=False)
    with pytest.raises(ConfigError, match="attribute term reads the discriminator's features of one image"):
        validate(config.replace(attribute_network="discriminator"))
    with pytest.raises(ConfigError, match="discriminator_paired must be true or false"):
        get_preset("tiny").config.replace(discriminator_paired="maybe")
