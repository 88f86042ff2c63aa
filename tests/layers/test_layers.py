"""Custom layers against direct NumPy transcriptions of their definitions, on whatever Keras backend runs the test.

Each test is written once for every backend: the suite runs it on TensorFlow, and tests/test_jax_backend.py runs
this file again under JAX with TensorFlow unimportable. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import ops

from clipswap.layers import AdaIN, AdaptiveAttention, InstanceNormalization, NormalisedAdaIN
from clipswap.layers.caffe_preprocess import IMAGENET_MEAN_BGR, CaffePreprocess
from clipswap.layers.resize_like import ResizeNearestLike
from clipswap.models.compile import compile_predict


def numpy(value) -> np.ndarray:
    """A tensor of any backend (or dtype) as a float64 NumPy array."""
    return np.asarray(ops.convert_to_numpy(ops.cast(value, "float32")), dtype=np.float64)


def instance_norm_numpy(x, gamma, beta, epsilon=1e-3):
    mean, var = x.mean(axis=(1, 2), keepdims=True), x.var(axis=(1, 2), keepdims=True)
    return (x - mean) / np.sqrt(var + epsilon) * gamma + beta


def nearest_numpy(x, height, width):
    """tf.image.resize(method="nearest") written out: source index floor((i + 0.5) * in / out), half-pixel centres."""
    rows = np.minimum(np.floor((np.arange(height) + 0.5) * np.float32(x.shape[1] / height)), x.shape[1] - 1)
    cols = np.minimum(np.floor((np.arange(width) + 0.5) * np.float32(x.shape[2] / width)), x.shape[2] - 1)
    return x[:, rows.astype(int)][:, :, cols.astype(int)]


def test_instance_norm_and_its_weight_names():
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, (2, 5, 7, 4)).astype(np.float32)
    gamma, beta = rng.normal(size=4).astype(np.float32), rng.normal(size=4).astype(np.float32)
    layer = InstanceNormalization(epsilon=1e-3)
    layer.build(x.shape)
    layer.set_weights([gamma, beta])
    np.testing.assert_allclose(numpy(layer(x)), instance_norm_numpy(x, gamma, beta), atol=1e-5)
    assert [w.name for w in layer.weights] == ["gamma", "beta"]


@pytest.mark.parametrize("offset", [0.0, 3.0, 20.0])
def test_instance_norm_in_bf16_is_the_float32_maths_rounded(offset):
    # Mixed bf16 inference on TensorFlow runs its fused batch-norm kernel over [1, H, W, B*C] (each sample its own
    # channels), every other backend (and training) the keras.ops maths. Both must give the float32 maths rounded
    # once, for each of three samples on its own, also when the activations' mean sits `offset` standard deviations
    # from zero, where bf16 arithmetic could cancel.
    rng = np.random.default_rng(1)
    x = (rng.normal(0.0, 1.5, (3, 16, 16, 8)) + offset * 1.5).astype(np.float32)
    weights = [rng.normal(size=8).astype(np.float32), rng.normal(size=8).astype(np.float32)]
    reference = InstanceNormalization(epsilon=1e-3)
    mixed = InstanceNormalization(epsilon=1e-3, dtype="mixed_bfloat16")
    for layer in (reference, mixed):
        layer.build(x.shape)
        layer.set_weights(weights)
    x_bf16 = ops.cast(x, "bfloat16")
    x_rounded = numpy(ops.cast(x_bf16, "float32"))
    expected = numpy(reference(x))
    error_rounded_once = np.abs(numpy(ops.cast(reference(x_rounded.astype(np.float32)), "bfloat16")) - expected).max()
    of_the_rounded_input = instance_norm_numpy(x_rounded, *weights)
    outputs = {}
    for training in (False, True):
        y = mixed(x_bf16, training=training)
        assert keras.backend.standardize_dtype(y.dtype) == "bfloat16"
        outputs[training] = numpy(y)
        np.testing.assert_allclose(outputs[training], of_the_rounded_input,
                                   atol=2.0**-7 * np.abs(of_the_rounded_input).max())
    error = np.abs(outputs[False] - expected).max()
    assert error <= 2.0 * error_rounded_once + 2.0**-7 * np.abs(expected).max(), (error, error_rounded_once)
    # The inference path and the training path (its gradient's ops) agree.
    assert np.abs(outputs[True] - outputs[False]).max() <= 2.0 * error_rounded_once + 1e-6


def test_adain_is_scale_times_x_plus_bias():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 3, 3, 6)).astype(np.float32)
    w = rng.normal(size=(2, 5)).astype(np.float32)
    layer = AdaIN()
    out = numpy(layer([x, w]))
    ks, bs, kb, bb = (numpy(v) for v in layer.weights)
    assert ks.shape == (5, 6) and bb.shape == (6,)
    np.testing.assert_allclose(out, (w @ ks + bs)[:, None, None] * x + (w @ kb + bb)[:, None, None], atol=1e-5)


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
def test_normalised_adain_is_instance_norm_then_adain(policy):
    # The fused layer of bf16 inference against the NumPy transcription of the two layers it replaces; under mixed
    # bf16 inference on TensorFlow it runs the fused kernel, in training the plain ops: both must match.
    rng = np.random.default_rng(2)
    x = rng.normal(1.0, 2.0, (3, 8, 8, 6)).astype(np.float32)
    w = rng.normal(size=(3, 5)).astype(np.float32)
    layer = NormalisedAdaIN(epsilon=1e-3, dtype=policy)
    layer.build((x.shape, w.shape))
    weights = [rng.normal(size=s).astype(np.float32) for s in [(6,), (6,), (5, 6), (6,), (5, 6), (6,)]]
    layer.set_weights(weights)
    assert [v.shape for v in layer.get_weights()] == [(6,), (6,), (5, 6), (6,), (5, 6), (6,)]
    assert [v.path.split("/", 1)[1] for v in layer.weights] == [
        "gamma", "beta", "scale/kernel", "scale/bias", "bias/kernel", "bias/bias"]
    gamma, beta, ks, bs, kb, bb = weights
    expected = (w @ ks + bs)[:, None, None] * instance_norm_numpy(x, gamma, beta) + (w @ kb + bb)[:, None, None]
    tolerance = 1e-4 if policy == "float32" else 0.05 * np.abs(expected).max()
    for training in (False, True):
        np.testing.assert_allclose(numpy(layer([x, w], training=training)), expected, atol=tolerance)


def test_adaptive_attention_blend():
    m = np.array([0.0, 0.25, 1.0], np.float32).reshape(1, 1, 3, 1)
    out = numpy(AdaptiveAttention()([m, np.full_like(m, 2.0), np.full_like(m, 10.0)])).ravel()
    np.testing.assert_allclose(out, [2.0, 4.0, 10.0])


def test_caffe_preprocess_flips_to_bgr_and_subtracts_the_means():
    rgb = np.random.default_rng(3).uniform(0, 255, (2, 3, 4, 3)).astype(np.float32)
    np.testing.assert_allclose(numpy(CaffePreprocess()(rgb)), rgb[..., ::-1] - np.array(IMAGENET_MEAN_BGR),
                               atol=1e-4)


@pytest.mark.parametrize("small, large", [((3, 4), (5, 7)), ((1, 1), (3, 2)), ((7, 11), (13, 21)), ((9, 6), (4, 5))])
def test_resize_nearest_samples_tensorflows_pixels(small, large):
    x = np.random.default_rng(4).normal(size=(2, *small, 3)).astype(np.float32)
    reference = np.zeros((2, *large, 1), np.float32)
    np.testing.assert_array_equal(numpy(ResizeNearestLike()([x, reference])), nearest_numpy(x, *large))


def test_resize_nearest_in_a_graph_with_unknown_sizes():
    x, reference = keras.Input((None, None, 3)), keras.Input((None, None, 1))
    model = keras.Model([x, reference], ResizeNearestLike()([x, reference]))
    assert model.output.shape == (None, None, None, 3)
    small = np.random.default_rng(5).normal(size=(1, 3, 5, 3)).astype(np.float32)
    out = compile_predict(model)(small, np.zeros((1, 5, 9, 1), np.float32))
    np.testing.assert_array_equal(numpy(out), nearest_numpy(small, 5, 9))


@pytest.mark.parametrize("cls", [InstanceNormalization, AdaIN, AdaptiveAttention, NormalisedAdaIN, CaffePreprocess,
                                 ResizeNearestLike])
def test_layers_serialise(cls):
    layer = cls(name="probe")
    clone = keras.layers.deserialize(keras.layers.serialize(layer))
    assert type(clone) is cls and clone.name == "probe"
    assert clone.get_config() == layer.get_config()
