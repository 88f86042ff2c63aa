"""Custom layers against direct NumPy transcriptions of their definitions."""

import keras
import numpy as np
import pytest

from clipswap.layers import AdaIN, AdaptiveAttention, InstanceNormalization, NormalisedAdaIN


def test_instance_norm_matches_numpy():
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, (2, 5, 7, 4)).astype(np.float32)
    layer = InstanceNormalization(epsilon=1e-3)
    layer.build(x.shape)
    gamma = rng.normal(size=4).astype(np.float32)
    beta = rng.normal(size=4).astype(np.float32)
    layer.set_weights([gamma, beta])
    mean = x.mean(axis=(1, 2), keepdims=True)
    var = x.var(axis=(1, 2), keepdims=True)
    expected = (x - mean) / np.sqrt(var + 1e-3) * gamma + beta
    np.testing.assert_allclose(layer(x).numpy(), expected, atol=1e-5)
    assert [w.name for w in layer.weights] == ["gamma", "beta"]


@pytest.mark.parametrize("offset", [0.0, 3.0, 20.0])
def test_instance_norm_in_bf16_matches_the_float32_maths_rounded_once(offset):
    # mixed bf16 inference uses TensorFlow's fused batch-norm kernel over [1, H, W, B*C] (each sample its own
    # channels); it must match the float32 maths rounded once, for each of three samples on its own, also when the
    # activations' mean sits `offset` standard deviations from zero (where bf16 arithmetic could cancel)
    rng = np.random.default_rng(1)
    x = (rng.normal(0.0, 1.5, (3, 16, 16, 8)) + offset * 1.5).astype(np.float32)
    reference = InstanceNormalization(epsilon=1e-3)
    mixed = InstanceNormalization(epsilon=1e-3, dtype="mixed_bfloat16")
    reference.build(x.shape)
    mixed.build(x.shape)
    weights = [rng.normal(size=8).astype(np.float32), rng.normal(size=8).astype(np.float32)]
    reference.set_weights(weights)
    mixed.set_weights(weights)
    expected = reference(x).numpy()
    x_bf16 = keras.ops.cast(x, "bfloat16")
    rounded_once = keras.ops.cast(keras.ops.cast(reference(keras.ops.cast(x_bf16, "float32")), "bfloat16"),
                                  "float32").numpy()
    y = mixed(x_bf16)
    assert y.dtype == "bfloat16"
    error = np.abs(keras.ops.cast(y, "float32").numpy() - expected).max()
    error_rounded_once = np.abs(rounded_once - expected).max()
    assert error <= 2.0 * error_rounded_once + 2.0**-7 * np.abs(expected).max(), (error, error_rounded_once)
    # inference runs TensorFlow's fused kernel, training the plain ops (their gradient): the two agree
    trained = keras.ops.cast(mixed(x_bf16, training=True), "float32").numpy()
    assert np.abs(trained - keras.ops.cast(y, "float32").numpy()).max() <= 2.0 * error_rounded_once + 1e-6


def test_adain_is_scale_times_x_plus_bias():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 3, 3, 6)).astype(np.float32)
    w = rng.normal(size=(2, 5)).astype(np.float32)
    layer = AdaIN()
    out = layer([x, w]).numpy()
    ks, bs, kb, bb = [v.numpy() for v in layer.weights]
    assert ks.shape == (5, 6) and bb.shape == (6,)
    scale = w @ ks + bs
    bias = w @ kb + bb
    np.testing.assert_allclose(out, scale[:, None, None, :] * x + bias[:, None, None, :], atol=1e-5)


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
def test_normalised_adain_is_instance_norm_then_adain(policy):
    # the fused layer of bf16 inference against the NumPy transcription of the two layers it replaces; under
    # mixed bf16 inference it runs TensorFlow's fused kernel, in training the plain ops: both must match
    rng = np.random.default_rng(2)
    x = rng.normal(1.0, 2.0, (3, 8, 8, 6)).astype(np.float32)
    w = rng.normal(size=(3, 5)).astype(np.float32)
    layer = NormalisedAdaIN(epsilon=1e-3, dtype=policy)
    layer.build((x.shape, w.shape))
    weights = [rng.normal(size=6), rng.normal(size=6), rng.normal(size=(5, 6)), rng.normal(size=6),
               rng.normal(size=(5, 6)), rng.normal(size=6)]
    layer.set_weights([np.asarray(v, np.float32) for v in weights])
    assert [v.shape for v in layer.get_weights()] == [(6,), (6,), (5, 6), (6,), (5, 6), (6,)]
    gamma, beta, ks, bs, kb, bb = weights
    normalised = (x - x.mean((1, 2), keepdims=True)) / np.sqrt(x.var((1, 2), keepdims=True) + 1e-3) * gamma + beta
    expected = (w @ ks + bs)[:, None, None, :] * normalised + (w @ kb + bb)[:, None, None, :]
    tolerance = 1e-4 if policy == "float32" else 0.05 * np.abs(expected).max()
    for training in (False, True):
        out = keras.ops.convert_to_numpy(keras.ops.cast(layer([x, w], training=training), "float32"))
        np.testing.assert_allclose(out, expected, atol=tolerance)


def test_adaptive_attention_blend():
    m = np.array([0.0, 0.25, 1.0], np.float32).reshape(1, 1, 3, 1)
    a = np.full((1, 1, 3, 1), 2.0, np.float32)
    i = np.full((1, 1, 3, 1), 10.0, np.float32)
    out = AdaptiveAttention()([m, a, i]).numpy().ravel()
    np.testing.assert_allclose(out, [2.0, 4.0, 10.0])


@pytest.mark.parametrize("cls", [InstanceNormalization, AdaIN, AdaptiveAttention, NormalisedAdaIN])
def test_layers_serialise(cls):
    layer = cls(name="probe")
    clone = keras.layers.deserialize(keras.layers.serialize(layer))
    assert type(clone) is cls and clone.name == "probe"
    assert clone.get_config() == layer.get_config()
