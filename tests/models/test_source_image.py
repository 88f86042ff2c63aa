"""Generators that read the source's aligned crop beside the target (ModelConfig.source_image): the graph stacks the
two images before its first conv, the output depends on the source pixels, gradients reach every weight, the
trainer and its wrong-source control feed (and roll) the source images, and FaceSwapper feeds G exactly the source's
aligned crop."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from test_generator import _assert_all_gradients

from clipswap.config import ModelConfig, get_preset
from clipswap.face.align import align_face, transform_points
from clipswap.face.detection import sort_by_area
from clipswap.losses.composite import LossWeights
from clipswap.models.generator import Generator, generator_inputs, inference_generator
from clipswap.training.features import EMBEDDING
from clipswap.training.trainer import SwapTrainer

from conftest import TRAINER_SIZE as SIZE
from conftest import build_tiny_trainer, require_module, run_steps, shared_data, synthetic_batches

TINY = get_preset("tiny").model


def _inputs(config: ModelConfig, seed: int = 0, batch: int = 2):
    rng = np.random.default_rng(seed)
    size = config.image_size
    target = rng.uniform(-1, 1, (batch, size, size, 3)).astype(np.float32)
    identity = rng.normal(size=(batch, config.id_input_dim)).astype(np.float32)
    source = rng.uniform(-1, 1, (batch, size, size, 3)).astype(np.float32)
    return target, identity, source


def test_the_source_crop_is_a_third_input_stacked_with_the_target():
    config = TINY.replace(source_image=True)
    model = Generator(config)
    # Only the first conv grows: 3 more input channels x 3 x 3 x base width.
    assert model.count_params() == Generator(TINY).count_params() + 3 * 3 * 3 * config.base_filters
    assert [tuple(i.shape) for i in model.inputs] == [(None, 64, 64, 3), (None, config.id_input_dim),
                                                      (None, 64, 64, 3)]
    target, identity, source = _inputs(config)
    y = model(generator_inputs(config, target, identity, source)).numpy()
    assert y.shape == target.shape and np.isfinite(y).all()
    other = model(generator_inputs(config, target, identity, -source)).numpy()
    assert np.abs(y - other).max() > 1e-3, "the output must depend on the source pixels"
    _assert_all_gradients(model, [target, identity, source], lambda out: tf.reduce_mean(tf.square(out - 0.3)))
    clone = Generator.from_config(model.get_config())
    assert clone.config_.source_image
    clone.set_weights(model.get_weights())
    np.testing.assert_array_equal(clone([target, identity, source]).numpy(), y)


def test_generator_inputs_needs_the_source_only_when_read():
    config = TINY.replace(source_image=True)
    with pytest.raises(ValueError, match="source's aligned crop"):
        generator_inputs(config, 1, 2)
    assert generator_inputs(TINY, 1, 2, 3) == [1, 2]
    with pytest.raises(ValueError, match="source_image must be true or false"):
        TINY.replace(source_image="yes")


def test_a_residual_source_image_generator_starts_as_the_target():
    config = TINY.replace(source_image=True, residual=True)
    target, identity, source = _inputs(config)
    np.testing.assert_array_equal(Generator(config)([target, identity, source]).numpy(), target)


#: The source_image and source_warp trainers' loss: no CLIP, no attribute term.
SOURCE_WEIGHTS = LossWeights(id=10.0, rec=5.0, perceptual=0.2, contra=0.0, att=0.0, adv=0.1)


def _source_image_trainer() -> SwapTrainer:
    return build_tiny_trainer(SOURCE_WEIGHTS, clip=False, model={"source_image": True})


def test_trainer_steps_feed_the_source_images_to_g():
    trainer = _source_image_trainer()
    kernel = trainer.generator.get_layer("generator_x0").kernel
    before = np.array(kernel)
    logs = run_steps(trainer, iter(synthetic_batches()), 2)
    assert all(np.isfinite(list(step.values())).all() for step in logs)
    # The first conv's weights on the source channels (3..5) moved: the step's loss saw the source pixels.
    assert np.abs(np.array(kernel)[:, :, 3:] - before[:, :, 3:]).max() > 1e-6


def test_the_wrong_source_control_rolls_the_source_images_too():
    loss = _source_image_trainer().swap_loss
    rng = np.random.default_rng(3)
    target = tf.constant(rng.uniform(-1, 1, (3, SIZE, SIZE, 3)).astype("float32"))
    sources = rng.uniform(-1, 1, (3, SIZE, SIZE, 3)).astype("float32")
    _, identity_in = loss.heldout_inputs(tf.constant(sources))
    swap = loss.heldout_swap_embedding(target, identity_in, source=tf.constant(sources)).numpy()
    # Shifting by the batch size gives every target its own source again: the same swaps.
    again = loss.heldout_swap_embedding(target, identity_in, shift=3, source=tf.constant(sources)).numpy()
    np.testing.assert_allclose(again, swap, atol=1e-5)
    # The same identity vector for all, different source pixels: the control still differs (the pixels are rolled).
    same_vector = tf.repeat(identity_in[:1], 3, axis=0)
    matched = loss.heldout_swap_embedding(target, same_vector, source=tf.constant(sources)).numpy()
    control = loss.heldout_swap_embedding(target, same_vector, shift=1, source=tf.constant(sources)).numpy()
    assert np.abs(matched - control).max() > 1e-6


class Spy:
    """A generator stand-in that returns the source crop it is given and keeps every input."""

    def __init__(self):
        self.inputs = []

    def __call__(self, inputs):
        target, identity, source = inputs
        kept = tf.numpy_function(self._keep, [target, identity, source], tf.float32)
        return tf.reshape(kept, tf.shape(source))

    def _keep(self, target, identity, source):
        self.inputs.append((target.copy(), identity.copy(), source.copy()))
        return source


def test_face_swapper_feeds_the_source_crop_beside_each_target_crop():
    from clipswap.checkpoints.encoders import load_identity_encoder
    from clipswap.face.yunet import YuNetDetector
    from clipswap.inference.swapper import FaceSwapper
    from clipswap.media.images import read_image

    source = read_image(shared_data("lfw", "Aaron_Sorkin", "Aaron_Sorkin_0001.jpg"))
    target = read_image(shared_data("lfw", "Abdullah_Gul", "Abdullah_Gul_0001.jpg"))
    identity, detector, spy = load_identity_encoder("sface"), YuNetDetector(), Spy()
    swapper = FaceSwapper(spy, 128, identity.dim, identity, detector, conditioning="target+source_crop")
    swapper.set_source(source)
    output, faces = swapper.swap_frame(target)
    assert faces == 1 and output.shape == target.shape
    fed_target, fed_identity, fed_source = spy.inputs[0]
    expected, _ = align_face(source, sort_by_area(detector.detect(source))[0].landmarks, 128)
    np.testing.assert_allclose(np.round((fed_source[0] + 1.0) * 127.5), expected, atol=0.51)
    np.testing.assert_allclose(fed_identity[0], swapper.source_vector)
    expected_target, _ = align_face(target, sort_by_area(detector.detect(target))[0].landmarks, 128)
    np.testing.assert_allclose(np.round((fed_target[0] + 1.0) * 127.5), expected_target, atol=0.51)


def test_face_swapper_mirrors_the_source_crop_for_a_target_turned_the_other_way():
    """mirror_source: Aaron Sorkin looks to one side and Abdullah Gul to the other (head_turn of opposite signs), so
    G reads Sorkin's crop mirrored for Gul and as it is for Gul's mirror image, whose turn is Sorkin's side; the
    identity vector is the source's own either way, and with mirror_source off the crop is never mirrored."""
    from clipswap.checkpoints.encoders import load_identity_encoder
    from clipswap.face.align import head_turn
    from clipswap.face.yunet import YuNetDetector
    from clipswap.inference.swapper import MIRROR_TURN_PRODUCT, FaceSwapper
    from clipswap.media.images import read_image

    source = read_image(shared_data("lfw", "Aaron_Sorkin", "Aaron_Sorkin_0001.jpg"))
    target = read_image(shared_data("lfw", "Abdullah_Gul", "Abdullah_Gul_0001.jpg"))
    turned = np.ascontiguousarray(target[:, ::-1])
    identity, detector = load_identity_encoder("sface"), YuNetDetector()
    turns = [head_turn(sort_by_area(detector.detect(image))[0].landmarks) for image in (source, target, turned)]
    assert turns[0] * turns[1] < -MIRROR_TURN_PRODUCT and turns[0] * turns[2] > 0, turns
    crop, _ = align_face(source, sort_by_area(detector.detect(source))[0].landmarks, 128)
    for mirror, expected in ((True, [crop[:, ::-1], crop]), (False, [crop, crop])):
        spy = Spy()
        swapper = FaceSwapper(spy, 128, identity.dim, identity, detector, conditioning="target+source_crop",
                              mirror_source=mirror)
        swapper.set_source(source)
        for image in (target, turned):
            assert swapper.swap_frame(image)[1] == 1
        for (_, fed_identity, fed_source), want in zip(spy.inputs, expected, strict=True):
            np.testing.assert_allclose(np.round((fed_source[0] + 1.0) * 127.5), want, atol=0.51)
            np.testing.assert_allclose(fed_identity[0], swapper.source_vector)


# --- source_warp: the third input is the source's face warped onto the target ---------------------------------------


def test_source_warp_needs_a_source_image_and_no_pre_swap():
    assert TINY.replace(source_image=True, source_warp=True).source_warp
    with pytest.raises(ValueError, match="source_warp replaces the source crop"):
        TINY.replace(source_warp=True)
    with pytest.raises(ValueError, match="source_warp replaces the source crop"):
        TINY.replace(source_image=True, source_warp=True, pre_swap="landmarks")
    with pytest.raises(ValueError, match="source_warp must be true or false"):
        TINY.replace(source_image=True, source_warp=1)
    config = TINY.replace(source_image=True, source_warp=True)
    assert ModelConfig.from_dict(config.to_dict()) == config
    # A manifest written before the field existed loads with it off.
    old = {k: v for k, v in TINY.replace(source_image=True).to_dict().items() if k != "source_warp"}
    assert ModelConfig.from_dict(old).source_warp is False


def _warp_trainer() -> SwapTrainer:
    return build_tiny_trainer(SOURCE_WEIGHTS, clip=False, model={"source_image": True, "source_warp": True})


def test_a_source_warp_trainer_feeds_g_the_warped_images_not_the_sources():
    trainer = _warp_trainer()
    loss = trainer.swap_loss
    assert loss.source_warp
    batch = next(iter(synthetic_batches()))
    with pytest.raises(ValueError, match="warped source"):
        trainer.train_step(batch)
    warped = tf.constant(np.random.default_rng(4).uniform(-1, 1, batch["target"].shape).astype("float32"))
    seen = []
    run_generator = loss.run_generator

    def spy(target, identity_in, source, training=False):
        seen.append(np.array(source))
        return run_generator(target, identity_in, source, training=training)

    loss.run_generator = spy
    logs = trainer.train_step({**batch, "warped": warped})
    assert np.isfinite(float(logs["g_total"]))
    np.testing.assert_array_equal(seen[0], warped.numpy())


def test_the_wrong_source_control_reads_the_control_warps():
    loss = _warp_trainer().swap_loss
    rng = np.random.default_rng(5)
    target = tf.constant(rng.uniform(-1, 1, (3, SIZE, SIZE, 3)).astype("float32"))
    warped, control = (tf.constant(rng.uniform(-1, 1, (3, SIZE, SIZE, 3)).astype("float32")) for _ in range(2))
    _, identity_in = loss.heldout_inputs(warped)
    rolled = loss.heldout_swap_embedding(target, identity_in, shift=1, source=warped).numpy()
    given = loss.heldout_swap_embedding(target, identity_in, shift=1, source=warped, control_source=control)
    direct = loss.run_generator(target, tf.roll(identity_in, -1, axis=0), control)
    np.testing.assert_allclose(given.numpy(), loss.identity(direct)[EMBEDDING].numpy(), atol=1e-5)
    assert np.abs(given.numpy() - rolled).max() > 1e-6


def test_face_swapper_feeds_the_source_face_warped_onto_each_target_crop():
    from clipswap.checkpoints.encoders import load_identity_encoder
    from clipswap.face.landmark_swap import swap_region, warp_paste
    from clipswap.face.yunet import YuNetDetector
    from clipswap.inference.swapper import FaceSwapper
    from clipswap.media.images import read_image
    require_module("dlib", "the warp needs dlib's 68 landmarks")

    source = read_image(shared_data("lfw", "Aaron_Sorkin", "Aaron_Sorkin_0001.jpg"))
    target = read_image(shared_data("lfw", "Abdullah_Gul", "Abdullah_Gul_0001.jpg"))
    identity, detector, spy = load_identity_encoder("sface"), YuNetDetector(), Spy()
    swapper = FaceSwapper(spy, 128, identity.dim, identity, detector, conditioning="target+warp")
    swapper.set_source(source)
    output, faces = swapper.swap_frame(target)
    assert faces == 1 and output.shape == target.shape and swapper.pre_swap_failures == 0
    fed_target, _, fed_source = spy.inputs[0]
    target_crop = np.round((fed_target[0] + 1.0) * 127.5).astype(np.uint8)
    face = sort_by_area(detector.detect(target))[0]
    _, matrix = align_face(target, face.landmarks, 128)
    points = transform_points(matrix, swapper.landmarker(target, face))
    expected, region = warp_paste(swapper.source_crop, swapper.source_68, target_crop, points)
    np.testing.assert_allclose(np.round((fed_source[0] + 1.0) * 127.5), expected, atol=0.51)
    assert (region == swap_region(points, (128, 128))).all()
    # The spy returns its source input, so the frame now holds the pasted source face: it changed inside the face
    # only (the paste-back follows the warp's region).
    changed = np.abs(output.astype(int) - target.astype(int)).max(axis=-1) > 0
    box = face.box.astype(int)
    assert changed.any() and not changed[: max(0, box[1] - 40)].any()


def _downstream_of_source(model, stop: str) -> list:
    """The layers of a functional `model` that the "source" input reaches by a path that does not pass through the
    layer `stop` (which is itself listed)."""
    producer = {id(layer.output): layer for layer in model.layers if not isinstance(layer.output, (list, tuple))}
    reached = {model.get_layer("source").name}
    changed = True
    while changed:
        changed = False
        for layer in model.layers:
            if layer.name in reached:
                continue
            parents = [producer.get(id(t)) for t in tf.nest.flatten(layer.input)]
            if any(p is not None and p.name in reached and p.name != stop for p in parents):
                reached.add(layer.name)
                changed = True
    return [model.get_layer(name) for name in sorted(reached - {"source"})]


@pytest.mark.parametrize("level", [1, 3])
def test_a_source_level_generator_reads_the_source_only_below_full_resolution(level):
    config = TINY.replace(source_image=True, source_level=level)
    model = Generator(config)
    size = config.image_size
    # Up to the join, the source reaches only its own encoder: no path around S / 2**level, so no pixel overlay.
    reached = _downstream_of_source(model, stop="generator_source_join")
    assert reached and all(layer.name.startswith("generator_source_") for layer in reached), \
        [layer.name for layer in reached if not layer.name.startswith("generator_source_")]
    join = model.get_layer("generator_source_concat")
    assert join.output.shape[1] == size // 2 ** level
    assert model.get_layer("generator_x0").kernel.shape[2] == 3, "the target's first conv reads the target only"
    assert model.get_layer("generator_source_join").kernel.shape[:3] == (1, 1, 2 * join.input[0].shape[-1])
    assert {layer.output.shape[1] for layer in reached
            if "_source_down" in layer.name and layer.name.endswith("_out")} == {
        size // 2 ** k for k in range(1, level + 1)}
    target, identity, source = _inputs(config)
    y = model(generator_inputs(config, target, identity, source)).numpy()
    assert y.shape == target.shape and np.isfinite(y).all()
    assert np.abs(y - model([target, identity, -source]).numpy()).max() > 1e-3, "the output must read the source"
    _assert_all_gradients(model, [target, identity, source], lambda out: tf.reduce_mean(tf.square(out - 0.3)))
    clone = Generator.from_config(model.get_config())
    assert clone.config_.source_level == level
    clone.set_weights(model.get_weights())
    np.testing.assert_array_equal(clone([target, identity, source]).numpy(), y)
    # The inference form folds the source's down blocks too and computes the same function.
    np.testing.assert_allclose(inference_generator(model)([target, identity, source]).numpy(), y, atol=1e-4)


def test_source_level_is_checked():
    with pytest.raises(ValueError, match="source_level must be an integer from 0 to 5"):
        TINY.replace(source_image=True, source_level=6)
    with pytest.raises(ValueError, match="source_level must be an integer from 0 to 5"):
        TINY.replace(source_image=True, source_level=True)
    with pytest.raises(ValueError, match="it needs source_image true"):
        TINY.replace(source_level=2)
    assert ModelConfig.from_dict(TINY.replace(source_image=True, source_level=2).to_dict()).source_level == 2


# --- source_flow: G warps the source crop onto the target itself ---------------------------------------------------

FLOW = TINY.replace(source_image=True, source_flow=True, residual=True)


def test_source_flow_needs_a_source_image_and_nothing_else_warping_it():
    assert FLOW.source_flow and ModelConfig.from_dict(FLOW.to_dict()) == FLOW
    for changes in ({"source_image": False}, {"source_warp": True}, {"pre_swap": "landmarks"},
                    {"source_level": 2}):
        with pytest.raises(ValueError, match="source_flow warps the source crop"):
            TINY.replace(**{"source_image": True, "source_flow": True, **changes})
    old = {k: v for k, v in TINY.replace(source_image=True).to_dict().items() if k != "source_flow"}
    assert ModelConfig.from_dict(old).source_flow is False


def test_an_untrained_flow_is_the_colour_matched_source_and_g_reads_it():
    from clipswap.layers.flow_warp import TemplateColourMatch

    model = Generator(FLOW)
    target, identity, source = _inputs(FLOW, seed=6)
    warp, flow = model.flow_warp(target, source)
    assert flow.shape == (2, 64, 64, 2) and not np.any(np.asarray(flow))
    np.testing.assert_allclose(np.asarray(warp), np.asarray(TemplateColourMatch()([source, target])), atol=1e-5)
    y = model([target, identity, source]).numpy()
    np.testing.assert_allclose(y, target, atol=1e-6)  # residual: the output block starts at zero
    with pytest.raises(ValueError, match="source_flow generator"):
        Generator(TINY).flow_warp(target, source)


def test_g_losses_stop_at_the_flow_and_the_flow_term_reaches_every_flow_weight():
    from clipswap.losses.flow import flow_loss, landmark_flow_loss

    model = Generator(FLOW)
    target, identity, source = _inputs(FLOW, seed=7)
    flow_weights = [v for v in model.trainable_variables if "_flow_" in v.path]
    assert len(flow_weights) == 16
    for v in model.trainable_variables:  # move every weight off its initial value, so no gradient is zero by init
        v.assign(v + np.random.default_rng(len(v.path)).normal(0, 0.02, v.shape).astype("float32"))
    with tf.GradientTape() as tape:
        out = model([target, identity, source], training=True)
        loss = tf.reduce_mean(tf.square(out - 0.3))
    grads = dict(zip([v.path for v in model.trainable_variables],
                     tape.gradient(loss, model.trainable_variables), strict=True))
    assert all(grads[v.path] is None for v in flow_weights)
    assert all(g is not None for path, g in grads.items() if "_flow_" not in path)
    rng = np.random.default_rng(8)
    points = rng.uniform(0.3, 0.7, (2, 68, 2)).astype("float32")
    warped = target.copy()
    warped[:, 16:48, 16:48] = source[:, 16:48, 16:48]
    with tf.GradientTape() as tape:
        predicted, flow = model.flow_warp(target, source)
        loss = landmark_flow_loss(flow, points, points + 0.02, 4.0) + flow_loss(predicted, warped, target)
    grads = tape.gradient(loss, flow_weights)
    assert all(g is not None and np.any(g.numpy()) and np.isfinite(g.numpy()).all() for g in grads)


def test_a_source_flow_generator_saves_loads_and_folds_to_the_same_function(tmp_path):
    from clipswap.checkpoints.native import load_generator, save_generator

    model = Generator(FLOW)
    for v in model.trainable_variables:
        v.assign(v + np.random.default_rng(len(v.path)).normal(0, 0.02, v.shape).astype("float32"))
    target, identity, source = _inputs(FLOW, seed=9)
    y = model([target, identity, source]).numpy()
    loaded = load_generator(save_generator(model, FLOW, tmp_path / "g.keras")).model
    assert loaded.config_.source_flow
    np.testing.assert_allclose(loaded([target, identity, source]).numpy(), y, atol=1e-5)
    folded = inference_generator(model)
    np.testing.assert_allclose(folded([target, identity, source]).numpy(), y, atol=1e-4)


def test_a_source_flow_trainer_trains_the_flow_from_the_landmarks_and_warps():
    from clipswap.config import ConfigError

    weights = LossWeights(id=10.0, rec=5.0, perceptual=0.2, contra=0.0, att=0.0, adv=0.1, flow=1.0)
    trainer = build_tiny_trainer(weights, clip=False, model={"source_image": True, "source_flow": True})
    batch = next(iter(synthetic_batches(extras=("warped",))))
    with pytest.raises(ValueError, match="landmarks and landmark warp"):
        trainer.train_step(batch)
    rng = np.random.default_rng(10)
    points = rng.uniform(0.3, 0.7, (batch["target"].shape[0], 68, 2)).astype("float32")
    batch = {**batch, "target_68": tf.constant(points), "source_68": tf.constant(points + 0.03)}
    kernel = trainer.generator.get_layer("generator_flow_field").kernel
    before = np.array(kernel)
    logs = trainer.train_step(batch)
    assert np.isfinite(float(logs["flow"])) and float(logs["flow"]) > 0
    assert np.abs(np.array(kernel) - before).max() > 0
    with pytest.raises(ConfigError, match="source_flow and weights.flow"):
        build_tiny_trainer(weights, clip=False)
    with pytest.raises(ConfigError, match="source_flow and weights.flow"):
        build_tiny_trainer(SOURCE_WEIGHTS, clip=False, model={"source_image": True, "source_flow": True})


def test_init_generator_copies_the_layers_of_the_same_name_and_shape(tmp_path):
    """--init-generator's copy: a source_flow checkpoint starts a source_image generator everywhere but its first
    conv (6 input channels both, but the flow layers do not exist there); another layout is refused."""
    from clipswap.checkpoints.native import save_generator
    from clipswap.training.assembly import TrainingSetupError, init_generator_from

    flow = Generator(FLOW)
    for v in flow.trainable_variables:
        v.assign(v + 0.01)
    path = tmp_path / "flow.keras"
    save_generator(flow, FLOW, path)
    fresh = Generator(FLOW)
    copied, left = init_generator_from(fresh, str(path))
    assert left == [] and copied == len([layer for layer in fresh.layers if layer.weights])
    for a, b in zip(fresh.weights, flow.weights, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    other = Generator(TINY.replace(source_image=True, residual=True))
    copied, left = init_generator_from(other, str(path))
    assert copied > 0 and left == []  # the flow layers are extra in the checkpoint, nothing of G is left out
    np.testing.assert_array_equal(np.asarray(other.get_layer("generator_x0").kernel),
                                  np.asarray(flow.get_layer("generator_x0").kernel))
    wide = Generator(TINY.replace(base_filters=16, mapping_width=64, mapping_depth=1))
    with pytest.raises(TrainingSetupError, match="no layer"):
        init_generator_from(wide, str(path))
    with pytest.raises(TrainingSetupError, match="--init-generator"):
        init_generator_from(wide, str(tmp_path / "absent.keras"))
