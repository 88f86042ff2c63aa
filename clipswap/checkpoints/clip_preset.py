"""CLIP's image tower from a keras-hub CLIP preset (a local preset directory, or a handle when online) into the
encoder graph of clipswap.models.clip_encoder: the vision tower's weights and the vision projection are copied one
to one, shapes checked; the text tower is ignored."""

from __future__ import annotations

import logging

import keras

from clipswap.checkpoints.errors import CheckpointError
from clipswap.config import CLIP_SPECS
from clipswap.models.clip_encoder import build_clip_image_encoder

log = logging.getLogger(__name__)


def load_clip_image_encoder(preset: str, variant: str | None = None, input_size: int = 256) -> keras.Model:
    """Build the encoder and fill it from a keras-hub CLIP preset (a local preset directory or a handle).

    The vision tower's weights and the vision projection are copied; the text tower is ignored.

    Raises:
        CheckpointError: the preset cannot be loaded or its vision tower does not match `variant`.
    """
    import keras_hub

    try:
        backbone = keras_hub.models.CLIPBackbone.from_preset(preset)
    except (OSError, ValueError, FileNotFoundError) as error:
        raise CheckpointError(
            f"cannot load the CLIP preset {preset!r}: {error}. Give a local keras-hub preset directory "
            "(see pretrained_ckpts/README.md) or a preset handle when online."
        ) from error
    source = backbone.vision_encoder
    if variant is None:
        variant = next(
            (
                key
                for key, spec in CLIP_SPECS.items()
                if spec["patch_size"] == source.patch_size
                and spec["hidden_dim"] == source.hidden_dim
                and spec["num_layers"] == source.num_layers
                and spec["projection_dim"] == backbone.projection_dim
            ),
            None,
        )
        if variant is None:
            raise CheckpointError(f"the CLIP preset {preset!r} matches none of the known variants {sorted(CLIP_SPECS)}")
    model = build_clip_image_encoder(variant, input_size=input_size)
    tower = model.get_layer(f"{model.name}_vision_encoder")
    projection = model.get_layer(f"{model.name}_projection")
    targets = list(tower.weights) + list(projection.weights)
    sources = list(source.weights) + list(backbone.vision_projection.weights)
    problems = [
        f"{s.path} {tuple(s.shape)} -> {t.path} {tuple(t.shape)}"
        for s, t in zip(sources, targets, strict=False)
        if tuple(s.shape) != tuple(t.shape)
    ]
    if len(sources) != len(targets) or problems:
        raise CheckpointError(
            f"the CLIP preset {preset!r} does not match variant {variant!r}: {len(sources)} weights vs "
            f"{len(targets)} expected; mismatches: {problems[:10]}"
        )
    for s, t in zip(sources, targets, strict=True):
        t.assign(s)
    log.info("loaded CLIP %s image encoder from %s", variant, preset)
    return model
