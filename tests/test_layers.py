"""Custom layers against direct NumPy transcriptions of their definitions."""

import keras
import numpy as np
import pytest

from clipswap.layers import AdaIN, AdaptiveAttention, InstanceNormalization


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


def test_adaptive_attention_blend():
    m = np.array([0.0, 0.25, 1.0], np.float32).reshape(1, 1, 3, 1)
    a = np.full((1, 1, 3, 1), 2.0, np.float32)
    i = np.full((1, 1, 3, 1), 10.0, np.float32)
    out = AdaptiveAttention()([m, a, i]).numpy().ravel()
    np.testing.assert_allclose(out, [2.0, 4.0, 10.0])


@pytest.mark.parametrize("cls", [InstanceNormalization, AdaIN, AdaptiveAttention])
def test_layers_serialise(cls):
    layer = cls(name="probe")
    clone = keras.layers.deserialize(keras.layers.serialize(layer))
    assert type(clone) is cls and clone.name == "probe"
    assert clone.get_config() == layer.get_config()
