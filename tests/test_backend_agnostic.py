"""Models and losses on whatever Keras backend runs the test, against NumPy transcriptions (the layers' tests, written
the same way, are tests/layers/test_layers.py).

Nothing here imports TensorFlow unless the backend is TensorFlow: the suite runs as usual and again under JAX, with
TensorFlow unimportable, from tests/test_jax_backend.py, which also compares the models' outputs (discriminator,
ArcFace, SFace and RetinaFace included) with TensorFlow's. Gradients go through `gradient` (GradientTape or jax.grad).
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import ops

from clipswap.config import ModelConfig
from clipswap.layers.caffe_preprocess import IMAGENET_MEAN_BGR
from clipswap.losses import (
    adversarial,
    attribute,
    augment,
    contrastive,
    facedancer,
    identity,
    mirror,
    perceptual,
    reconstruction,
)
from clipswap.models.compile import compile_predict
from clipswap.models.generator import Generator, inference_generator

#: The small generator every test here builds (one build per config keeps JAX's compile time down).
TINY = ModelConfig(image_size=64, base_filters=8, mapping_width=32,
                   up_types=("no_skip", "concat", "affa", "add", "affa", "concat"))


def numpy(value) -> np.ndarray:
    return np.asarray(ops.convert_to_numpy(ops.cast(value, "float32")), dtype=np.float64)


def gradient(fn, *inputs):
    """(fn(*inputs), [d fn / d input for each input]) on the current backend; fn returns a scalar. An input that fn
    does not depend on gets a zero gradient. On JAX the gradient is compiled as one function (op by op, every
    primitive would be compiled on its own)."""
    inputs = [np.asarray(x, np.float32) for x in inputs]
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        value, grads = jax.jit(jax.value_and_grad(fn, argnums=tuple(range(len(inputs)))))(*inputs)
        return numpy(value), [numpy(g) for g in grads]
    if backend == "tensorflow":
        import tensorflow as tf

        tensors = [tf.convert_to_tensor(x) for x in inputs]
        with tf.GradientTape() as tape:
            for tensor in tensors:
                tape.watch(tensor)
            value = fn(*tensors)
        grads = tape.gradient(value, tensors)
        return numpy(value), [np.zeros(x.shape) if g is None else numpy(g) for x, g in zip(inputs, grads, strict=True)]
    pytest.skip(f"no gradient helper for the {backend} backend")


# -------------------------------------------------------------------------------------------------------- models


@pytest.fixture(scope="module")
def generator():
    return Generator(TINY)


@pytest.fixture(scope="module")
def predict(generator):
    """The generator's compiled predict function (one compile on JAX for the tests that share it)."""
    return compile_predict(generator)


def _generator_inputs(seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.uniform(-1, 1, (2, 64, 64, 3)).astype(np.float32), rng.normal(size=(2, 512)).astype(np.float32)]


def test_generator_compiled_predict_reads_the_current_weights(generator, predict):
    # outputs against TensorFlow's: tests/test_jax_backend.py; an eager call here would compile op by op on JAX
    inputs = _generator_inputs(6)
    before = numpy(predict(*inputs))
    assert before.shape == (2, 64, 64, 3) and np.all(np.isfinite(before))
    # JAX passes the weights in at each call rather than baking them into the compiled function
    kernel = generator.get_layer("generator_out_conv").kernel
    original = numpy(kernel)
    kernel.assign(original * 2.0)
    try:
        assert not np.allclose(numpy(predict(*inputs)), before, atol=1e-3)
    finally:
        kernel.assign(original)
    np.testing.assert_array_equal(numpy(predict(*inputs)), before)


def test_fused_bf16_generator_has_the_same_weights_and_stays_near_float32(generator, predict):
    bf16 = Generator(TINY, fused_norm=True, dtype="mixed_bfloat16")
    by_name = {layer.name: layer for layer in generator.layers}
    for layer in bf16.layers:
        if not layer.weights:
            continue
        if layer.name.endswith("_in_adain"):
            block = layer.name[: -len("_in_adain")]
            layer.set_weights(by_name[f"{block}_in"].get_weights() + by_name[f"{block}_adain"].get_weights())
        else:
            layer.set_weights(by_name[layer.name].get_weights())
    inputs = _generator_inputs(7)
    reference = numpy(predict(*inputs))
    np.testing.assert_allclose(numpy(compile_predict(bf16)(*inputs)), reference, atol=0.05 * np.abs(reference).max())


def test_the_inference_form_computes_the_same_function(generator, predict):
    # the folded down blocks (stride-2 4x4 convs) on this backend's conv, against the trained graph
    folded = inference_generator(generator)
    assert any(layer.name.endswith("_conv_pooled") for layer in folded.layers)
    inputs = _generator_inputs(9)
    reference = numpy(predict(*inputs))
    assert reference.std() > 0.05
    np.testing.assert_allclose(numpy(compile_predict(folded)(*inputs)), reference, atol=1e-4 * np.abs(reference).max())


def test_every_generator_weight_gets_a_gradient(generator):
    # the generator holds every custom layer (instance norm, AdaIN, AFFA); the discriminator's are stock Keras ones
    inputs = _generator_inputs(8)
    weights = generator.trainable_weights

    def loss(*values):
        with keras.StatelessScope(state_mapping=list(zip(weights, values, strict=True))):
            return ops.mean(ops.square(generator(inputs, training=True)))

    _, grads = gradient(loss, *(numpy(v) for v in weights))
    missing = [v.path for v, g in zip(weights, grads, strict=True) if not np.any(g)]
    assert not missing, missing



# -------------------------------------------------------------------------------------------------------- losses


def test_identity_loss_values_and_no_nan_at_zero():
    np.testing.assert_allclose(numpy(identity.identity_loss([[1.0, 0.0], [1.0, 1.0]], [[0.0, 1.0], [2.0, 2.0]])),
                               0.5, atol=1e-7)
    np.testing.assert_allclose(numpy(identity.l2_normalize(np.array([[3.0, 4.0]], np.float32))), [[0.6, 0.8]])
    z = np.array([[0.3, -0.2, 0.9], [0.0, 0.0, 0.0]], np.float32)
    value, (grad_src, grad_swap) = gradient(identity.identity_loss, z, z)
    assert value == pytest.approx(0.5, abs=1e-6)
    assert np.all(np.isfinite(grad_src)) and np.all(np.isfinite(grad_swap))
    with pytest.raises(ValueError, match=r"\[B, D\]"):
        identity.identity_loss(np.zeros(3, np.float32), np.zeros(3, np.float32))


def test_contrastive_loss_matches_eq5_and_stops_the_reference_gradient():
    rng = np.random.default_rng(9)
    e_ref, e_swap = rng.normal(size=(3, 6)), rng.normal(size=(3, 6))
    e_aug, e_mean = e_swap[:, None] + 0.3 * rng.normal(size=(3, 2, 6)), 3.0 * rng.normal(size=6)

    def unit(v):
        return v / np.linalg.norm(v, axis=-1, keepdims=True)

    swap, ref, mean = unit(e_swap), unit(e_ref), unit(e_mean)
    query = unit(unit(e_aug) - swap[:, None])
    negatives = unit(swap - mean)
    expected = 0.0
    for positive in (unit(ref - swap), unit(ref - mean)):
        logits = np.concatenate([np.einsum("bkd,bd->bk", query, positive)[..., None],
                                 np.einsum("bkd,nd->bkn", query, negatives)], axis=-1) / 0.1
        expected += np.mean(np.log(np.exp(logits).sum(-1)) - logits[..., 0])
    value, grads = gradient(contrastive.clip_contrastive_loss, e_ref, e_swap, e_aug, e_mean)
    assert value == pytest.approx(expected, rel=1e-5)
    assert not np.any(grads[0]) and not np.any(grads[3])
    assert np.any(grads[1]) and np.any(grads[2]) and all(np.all(np.isfinite(g)) for g in grads)


def test_reconstruction_and_teacher_losses():
    rng = np.random.default_rng(10)
    target, swap = rng.uniform(-1, 1, (2, 4, 8, 8, 3))
    target, swap = target.astype(np.float32), swap.astype(np.float32)
    same = np.array([1, 0, 1, 0], bool)
    per_sample = np.abs(target - swap).mean(axis=(1, 2, 3))
    expected = (per_sample * same).sum() / (same.sum() + reconstruction.SAME_PAIR_EPS)
    value, (_, grad_swap) = gradient(lambda a, b: reconstruction.reconstruction_loss(a, b, same), target, swap)
    assert value == pytest.approx(expected, rel=1e-5)
    assert np.any(grad_swap[0]) and not np.any(grad_swap[1])
    clipped = reconstruction.reconstruction_loss(target, swap, same, facedancer_clip=True)
    assert float(numpy(clipped)) == pytest.approx(0.5 * expected, rel=1e-5)
    teacher = target.copy()
    teacher[0, 2:5, 1:6] = swap[0, 2:5, 1:6] + 0.5
    region = (np.abs(teacher - target).max(-1, keepdims=True) > 1 / 255).astype(np.float64)
    face = (region * np.abs(teacher - swap)).sum(axis=(1, 2, 3))[0] / (3 * region[0].sum())
    rest = ((1 - region) * np.abs(teacher - swap)).sum(axis=(1, 2, 3)) / (3 * (1 - region).sum(axis=(1, 2, 3)))
    assert float(numpy(reconstruction.teacher_loss(teacher, swap))) == pytest.approx(
        np.abs(teacher - swap).mean(), rel=1e-5)
    assert float(numpy(reconstruction.teacher_loss(teacher, swap, target))) == pytest.approx(face, rel=1e-5)
    assert float(numpy(reconstruction.teacher_loss(teacher, swap, target, background=True))) == pytest.approx(
        face + rest.mean(), rel=1e-5)


def test_facedancer_cycle_and_ifsr_losses():
    rng = np.random.default_rng(11)
    a, b = rng.uniform(-1, 1, (2, 2, 4, 4, 3)).astype(np.float32)
    assert float(numpy(facedancer.cycle_loss(a, b))) == pytest.approx(np.abs(a - b).mean(), rel=1e-5)
    margins = {"one": 0.05, "two": 0.1}
    target = {k: rng.normal(size=(3, 2, 2, 4)).astype(np.float32) for k in margins}
    swap = {k: v + rng.normal(scale=0.6, size=v.shape).astype(np.float32) for k, v in target.items()}
    expected = 0.0
    for k, margin in margins.items():
        t, s = target[k].reshape(3, -1), swap[k].reshape(3, -1)
        cosine = (t * s).sum(-1) / (np.linalg.norm(t, axis=-1) * np.linalg.norm(s, axis=-1))
        expected += max(0.0, np.mean(1 - cosine) - 1.2 * margin)
    assert expected > 0
    value, grads = gradient(lambda *s: facedancer.ifsr_loss(target, dict(zip(margins, s, strict=True)), margins),
                            *swap.values())
    assert value == pytest.approx(expected, rel=1e-5)
    zero = {k: np.zeros_like(v) for k, v in target.items()}
    _, grads = gradient(lambda *s: facedancer.ifsr_loss(zero, dict(zip(margins, s, strict=True)), margins),
                        *zero.values())
    assert all(np.all(np.isfinite(g)) for g in grads)


def test_mirror_consistency_of_an_image_against_its_mirror_image():
    """The mirror term's maths (clipswap.losses.mirror.mirror_term): L1 between an image and its left-right flip by
    ops.flip, with the gradient through both; a symmetric image costs 0."""
    rng = np.random.default_rng(13)
    x = rng.uniform(-1, 1, (2, 5, 6, 3)).astype(np.float32)
    value, (grad,) = gradient(lambda v: mirror.mirror_consistency_loss(v, ops.flip(v, axis=2)), x)
    difference = x - x[:, :, ::-1]
    assert value == pytest.approx(np.abs(difference).mean(), rel=1e-5)
    # d/dx of mean |x - flip(x)|: each element enters once directly and once through its mirror partner.
    expected = (np.sign(difference) - np.sign(difference)[:, :, ::-1]) / difference.size
    np.testing.assert_allclose(grad, expected, atol=1e-7)
    symmetric = np.concatenate([x[:, :, :3], x[:, :, :3][:, :, ::-1]], axis=2)
    assert float(numpy(mirror.mirror_consistency_loss(symmetric, ops.flip(symmetric, axis=2)))) == 0.0


def test_perceptual_attribute_and_adversarial_losses():
    rng = np.random.default_rng(12)
    target = [rng.normal(size=(4, 4, 4, 2)).astype(np.float32), rng.normal(size=(4, 6)).astype(np.float32)]
    swap = [rng.normal(size=(4, 4, 4, 2)).astype(np.float32), rng.normal(size=(4, 6)).astype(np.float32)]
    same = np.array([0, 1, 1, 0])
    levels = zip((0.85, 0.3), target, swap, strict=True)
    per_sample = sum(w * np.abs(t - s).reshape(4, -1).mean(1) for w, t, s in levels)
    expected = (per_sample * same).sum() / (same.sum() + reconstruction.SAME_PAIR_EPS)
    loss = perceptual.perceptual_loss(target, swap, same, weights=(0.85, 0.3))
    assert float(numpy(loss)) == pytest.approx(expected, rel=1e-5)
    squared = sum(np.square(t - s).reshape(4, -1).mean(1) for t, s in zip(target, swap, strict=True))
    assert float(numpy(attribute.attribute_loss(target, swap))) == pytest.approx(squared.mean(), rel=1e-5)
    fake, real = rng.normal(size=(4, 1)).astype(np.float32), rng.normal(size=(3, 1)).astype(np.float32)
    assert float(numpy(adversarial.generator_adversarial_loss(fake))) == pytest.approx(
        np.log1p(np.exp(-fake)).mean(), rel=1e-5)
    assert float(numpy(adversarial.discriminator_adversarial_loss(real, fake))) == pytest.approx(
        np.log1p(np.exp(fake)).mean() + np.log1p(np.exp(-real)).mean(), rel=1e-5)


def test_feature_extractor_converts_pixels_and_resizes():
    images = np.random.default_rng(13).uniform(-1, 1, (2, 16, 16, 3)).astype(np.float32)
    caffe = numpy(perceptual.to_network_pixels(images, "caffe"))
    np.testing.assert_allclose(caffe, (images[..., ::-1] + 1) * 127.5 - np.array(IMAGENET_MEAN_BGR), atol=1e-4)
    np.testing.assert_allclose(numpy(perceptual.to_network_pixels(images, "unit")), (images + 1) / 2, atol=1e-6)
    inputs = keras.Input((None, None, 3))
    pooled = keras.layers.AveragePooling2D(2, name="pool")(inputs)
    extractor = perceptual.model_features(keras.Model(inputs, pooled), ["pool"], "none", input_size=8)
    (features,) = extractor(images)
    assert tuple(features.shape) == (2, 4, 4, 3)


def test_augment_maths_from_given_draws():
    rng = np.random.default_rng(14)
    images = rng.uniform(-1, 1, (2, 12, 16, 3)).astype(np.float32)
    # no crop and no distortion: the augmentation is the image itself, whatever the draws
    params = augment.augment_params_from_draws(rng.uniform(size=(2, 3, augment.AUGMENT_DRAWS)), 12, 16, 0.0, 1.0)
    out = numpy(augment.apply_augment_params(images, params))
    np.testing.assert_allclose(out, np.repeat(images[:, None], 3, axis=1), atol=1e-5)
    # perspective warps: finite, filled outside, differentiable w.r.t. the images
    params = augment.augment_params_from_draws(rng.uniform(size=(2, 2, augment.AUGMENT_DRAWS)), 12, 16, 0.5, 0.75)
    value, (grad,) = gradient(lambda x: ops.sum(augment.apply_augment_params(x, params, (8, 8))), images)
    assert np.isfinite(value) and np.all(np.isfinite(grad)) and np.any(grad)
    source = rng.uniform(size=(3, 4, 2)).astype(np.float32)
    destination = (source + rng.uniform(-0.2, 0.2, source.shape)).astype(np.float32)
    matrices = numpy(augment.homography_from_points(source, destination))
    projected = np.einsum("nij,nkj->nki", matrices, np.concatenate([source, np.ones((3, 4, 1))], axis=-1))
    np.testing.assert_allclose(projected[..., :2] / projected[..., 2:], destination, atol=1e-4)


def test_shift_and_flip_moves_pixels_exactly():
    images = np.random.default_rng(15).uniform(-1, 1, (3, 8, 8, 3)).astype(np.float32)
    flips = np.array([True, False, False])
    out = numpy(augment.shift_and_flip(images, np.array([3, 1], np.int32), flips, 2))
    padded = np.pad(images, ((0, 0), (2, 2), (2, 2), (0, 0)), mode="reflect")
    expected = padded[:, 3:11, 1:9]
    expected[0] = expected[0, :, ::-1]
    np.testing.assert_array_equal(out, expected)
    with pytest.raises(ValueError, match="distortion"):
        augment.check_augment_args(2, 1.0, 0.5)


def test_composite_losses_weigh_and_name_every_term():
    from clipswap.config import LossWeights
    from clipswap.losses.composite import discriminator_loss, generator_loss

    weights = LossWeights(id=10.0, rec=5.0, perceptual=0.2, contra=0.0, att=0.0, adv=1.0)
    total, named = generator_loss({"id": ops.convert_to_tensor(0.5), "rec": 0.1, "adv": np.float32(0.7),
                                   "contra": 2.0}, weights)
    assert numpy(total) == pytest.approx(10.0 * 0.5 + 5.0 * 0.1 + 1.0 * 0.7)
    assert numpy(named["contra"]) == pytest.approx(2.0) and numpy(named["contra_weighted"]) == 0.0
    assert numpy(named["perceptual"]) == 0.0 and numpy(named["total"]) == pytest.approx(numpy(total))
    d_total, d_named = discriminator_loss({"d_adv": 1.25})
    assert numpy(d_total) == pytest.approx(1.25) and numpy(d_named["r1"]) == 0.0
    with pytest.raises(ValueError, match="must be a scalar"):
        generator_loss({"id": np.zeros(3, np.float32)}, weights)
    with pytest.raises(ValueError, match="unknown generator loss terms"):
        generator_loss({"idd": 1.0}, weights)


def test_geometry_term_aligns_landmarks_and_sends_a_gradient_to_the_swap_only():
    from clipswap.losses.geometry import geometry_attribute_loss, similarity_align
    from clipswap.models.geometry import GeometryNet

    rng = np.random.default_rng(7)
    target = (0.5 + 0.2 * rng.standard_normal((2, 68, 2))).astype("float32")
    angle, scale = 0.4, 1.3
    rotation = np.array([[np.cos(angle), np.sin(angle)], [-np.sin(angle), np.cos(angle)]], "float32")
    moved = (scale * target @ rotation + 0.1).astype("float32")
    np.testing.assert_allclose(numpy(similarity_align(moved, target)), target, atol=1e-4)
    pose = rng.uniform(-20, 20, (2, 3)).astype("float32")
    swap_pose = pose + np.array([[10, 0, 0], [0, 0, 0]], "float32")
    # Pose off by 10 degrees on one angle of one sample of two: 1/3 of a unit in that sample, 1/6 over the batch.
    value, grads = gradient(lambda p, q: geometry_attribute_loss([target, pose], [moved, q]), moved, swap_pose)
    assert float(value) == pytest.approx(1 / 6, rel=1e-4)
    # Sample 1's pose is the target's: no gradient there (up to XLA's reciprocal for a division by a constant).
    assert np.abs(grads[1][0, 0]) > 0 and np.abs(grads[1][1]).max() < 1e-6 * np.abs(grads[1][0, 0])
    net = GeometryNet(input_size=32, widths=(8,), strides=(2,), stem_width=4, head_width=8)
    out = net(np.zeros((1, 40, 40, 3), "float32"))
    assert tuple(out["landmarks"].shape) == (1, 68, 2) and tuple(out["pose"].shape) == (1, 3)
