"""The generator's inputs by name, so callers name what they feed instead of restating the positional input order.

The names are those of the Generator's keras.Input layers (clipswap.models.generator):

    target    [B, S, S, 3] RGB in [-1, 1]: the aligned target crop, or with config.pre_swap its landmark swap
    identity  [B, D]: the identity vector (D = config.id_input_dim: the identity encoder's width, plus CLIP's)
    source    [B, S, S, 3] RGB in [-1, 1], only with config.source_image: the source's aligned crop, or with
              config.source_warp its face warped onto the target's landmarks

Plain Python: importing it starts no TensorFlow.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from clipswap.config import ModelConfig

TARGET = "target"
IDENTITY = "identity"
SOURCE = "source"


def input_specs(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Name -> per-sample shape (no batch axis) of every input a Generator built from `config` reads."""
    size = config.image_size
    specs = {TARGET: (size, size, 3), IDENTITY: (config.id_input_dim,)}
    if config.source_image:
        specs[SOURCE] = (size, size, 3)
    return specs


def describe_inputs(config: ModelConfig) -> str:
    """The inputs in a few words for tables such as `clipswap info`'s, e.g. "256px + 512-d" or "128px + 128-d +
    source"."""
    described = f"{config.image_size}px + {config.id_input_dim}-d"
    return described + " + source" if config.source_image else described


def input_list(model: Any, named: Mapping[str, Any]) -> list:
    """The values of `named` ({input name: value}) in the order `model` (a Keras functional model) takes its
    inputs; a Keras call is positional, so this is where a name becomes a position.

    Raises:
        ValueError: `named` lacks an input of the model or holds a name the model does not read.
    """
    order = [tensor.name for tensor in model.inputs]
    missing = [name for name in order if name not in named]
    unexpected = sorted(set(named) - set(order))
    if missing or unexpected:
        raise ValueError(f"{model.name} reads the inputs {order}; missing {missing}, unexpected {unexpected}")
    return [named[name] for name in order]
