"""The JAX step's seeded streams (clipswap.losses.jax_only): shift_seed keeps every bit of its offset, so the
identity augmentation's stream (offset 2**40) is its own, apart from the step's key that the CLIP augmentations draw
from and from any other offset, as tf_only.shift_seed's [a, b + offset] is on TensorFlow. The keys are plain JAX
arrays, so this runs under either Keras backend."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import require_module


@pytest.fixture(scope="module")
def jax_only():
    require_module("jax", "the JAX step's seeds are JAX keys")
    from clipswap.losses import jax_only

    return jax_only


def test_every_offset_gives_its_own_stream(jax_only):
    from clipswap.losses.identity import ID_AUGMENT_SEED_OFFSET

    key = jax_only.step_seed(1234, 7)
    offsets = [0, 1, 2**31, 2**32, ID_AUGMENT_SEED_OFFSET, 2**41, ID_AUGMENT_SEED_OFFSET + 1, 2**64 - 1]
    keys = {offset: np.asarray(jax_only.shift_seed(key, offset)) for offset in offsets}
    distinct = {tuple(value.tolist()) for value in keys.values()} | {tuple(np.asarray(key).tolist())}
    assert len(distinct) == len(offsets) + 1, "two offsets (or an offset and the step's key) share a stream"
    for value in keys.values():
        assert value.shape == (2,) and value.dtype == np.uint32
    again = np.asarray(jax_only.shift_seed(jax_only.step_seed(1234, 7), ID_AUGMENT_SEED_OFFSET))
    np.testing.assert_array_equal(again, keys[ID_AUGMENT_SEED_OFFSET])
    other_step = np.asarray(jax_only.shift_seed(jax_only.step_seed(1234, 8), ID_AUGMENT_SEED_OFFSET))
    assert not np.array_equal(other_step, keys[ID_AUGMENT_SEED_OFFSET])


@pytest.mark.parametrize("offset", [-1, 2**64])
def test_an_offset_outside_64_bits_is_refused(jax_only, offset):
    with pytest.raises(ValueError, match=r"a seed offset is in \[0, 2\*\*64\)"):
        jax_only.shift_seed(jax_only.step_seed(0, 0), offset)
