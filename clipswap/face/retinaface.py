"""RetinaFace post-processing and the detector object: priors, decoding, NMS, coordinates of the original image.

The network (clipswap.models.retinaface) returns per-prior class probabilities and box/landmark deltas; this module
turns them into `Detection`s. Constants follow the published detector (peteryuX/retinaface-tf2 via FaceDancer):
min sizes ((16, 32), (64, 128), (256, 512)) for strides (8, 16, 32), priors not clipped, variances (0.1, 0.2).
The release freezes NMS IoU 0.4 / score 0.02 in its graph; here both are arguments.

Coordinates: priors, boxes and landmarks are normalised to [0, 1] of the detector input (x by width, y by height),
so the pixels of the original image are recovered by multiplying with its width and height, whatever downscale the
detector ran at (as the release does).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence

import cv2
import keras
import numpy as np

from clipswap.face.detection import Detection
from clipswap.models.compile import compile_predict

log = logging.getLogger(__name__)

MIN_SIZES: tuple[tuple[int, ...], ...] = ((16, 32), (64, 128), (256, 512))
STEPS: tuple[int, ...] = (8, 16, 32)
VARIANCES: tuple[float, float] = (0.1, 0.2)
# The release downscales frames wider than this by an integer factor before detection.
DETECTION_WIDTH = 640


def prior_boxes(
    height: int,
    width: int,
    min_sizes: Sequence[Sequence[int]] = MIN_SIZES,
    steps: Sequence[int] = STEPS,
    clip: bool = False,
) -> np.ndarray:
    """Prior (anchor) boxes for a detector input of `height` x `width` pixels.

    Returns:
        [N, 4] float32 (cx, cy, w, h) normalised by the input width (x, w) and height (y, h). Levels in `steps` order;
        within a level, cells row-major over ceil(height/step) x ceil(width/step), then each min size:
        cx = (col + 0.5) * step / width, cy = (row + 0.5) * step / height, w = size / width, h = size / height.
        640 x 640 gives 16,800 priors.
    """
    return _prior_boxes_cached(int(height), int(width), tuple(map(tuple, min_sizes)), tuple(steps), bool(clip)).copy()


@functools.lru_cache(maxsize=16)
def _prior_boxes_cached(height, width, min_sizes, steps, clip) -> np.ndarray:
    levels = []
    for sizes, step in zip(min_sizes, steps, strict=True):
        rows, cols = -(-height // step), -(-width // step)
        cy, cx = np.meshgrid((np.arange(rows) + 0.5) * step / height, (np.arange(cols) + 0.5) * step / width,
                             indexing="ij")
        centres = np.repeat(np.stack([cx.reshape(-1), cy.reshape(-1)], axis=1), len(sizes), axis=0)
        scales = np.tile(np.array([[s / width, s / height] for s in sizes]), (rows * cols, 1))
        levels.append(np.concatenate([centres, scales], axis=1))
    priors = np.concatenate(levels, axis=0).astype(np.float32)
    return np.clip(priors, 0.0, 1.0) if clip else priors


def decode_boxes(deltas: np.ndarray, priors: np.ndarray, variances: Sequence[float] = VARIANCES) -> np.ndarray:
    """[N, 4] (dx, dy, dw, dh) deltas -> [N, 4] (x1, y1, x2, y2) normalised.

    centre = prior_centre + d_xy * variances[0] * prior_wh; size = prior_wh * exp(d_wh * variances[1]).
    """
    deltas = np.asarray(deltas, dtype=np.float32)
    centres = priors[:, :2] + deltas[:, :2] * variances[0] * priors[:, 2:]
    sizes = priors[:, 2:] * np.exp(deltas[:, 2:4] * variances[1])
    return np.concatenate([centres - sizes / 2, centres + sizes / 2], axis=1)


def decode_landmarks(deltas: np.ndarray, priors: np.ndarray, variances: Sequence[float] = VARIANCES) -> np.ndarray:
    """[N, 10] deltas (5 x (dx, dy)) -> [N, 5, 2] (x, y) normalised: prior_centre + d * variances[0] * prior_wh."""
    deltas = np.asarray(deltas, dtype=np.float32).reshape(-1, 5, 2)
    return priors[:, None, :2] + deltas * variances[0] * priors[:, None, 2:]


def non_max_suppression(
    boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, score_threshold: float
) -> np.ndarray:
    """Indices of the kept boxes, highest score first: greedy NMS in NumPy that keeps what the published graph's
    tf.image.non_max_suppression (no output limit) keeps, in the same order (tests/face/test_retinaface_nms.py).

    Candidates are visited by descending score, equal scores by ascending index (TensorFlow's order); a candidate is
    kept unless its IoU with an already kept box exceeds `iou_threshold`. IoU is computed in float32 as TensorFlow's
    kernel does, a box of zero or negative area overlapping nothing; corners may come in either order.

    Args:
        boxes: [N, 4] (x1, y1, x2, y2), any consistent units.
        scores: [N]; boxes scoring at or below `score_threshold` are dropped.
        iou_threshold: a box overlapping a kept, higher-scoring box by more than this IoU is suppressed.

    Returns:
        [K] int64 indices into boxes.
    """
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float32).reshape(-1)
    candidates = np.flatnonzero(scores > np.float32(score_threshold))
    candidates = candidates[np.argsort(-scores[candidates], kind="stable")]
    low = np.minimum(boxes[:, :2], boxes[:, 2:])
    high = np.maximum(boxes[:, :2], boxes[:, 2:])
    areas = (high[:, 0] - low[:, 0]) * (high[:, 1] - low[:, 1])
    threshold = np.float32(iou_threshold)
    keep = []
    while len(candidates):
        best, rest = candidates[0], candidates[1:]
        keep.append(best)
        extent = np.maximum(np.minimum(high[best], high[rest]) - np.maximum(low[best], low[rest]), np.float32(0))
        intersection = extent[:, 0] * extent[:, 1]
        with np.errstate(divide="ignore", invalid="ignore"):
            iou = intersection / (areas[best] + areas[rest] - intersection)
        iou = np.where((areas[best] <= 0) | (areas[rest] <= 0), np.float32(0), iou)
        candidates = rest[~(iou > threshold)]
    return np.asarray(keep, dtype=np.int64)


def detection_scale(width: int) -> int:
    """Integer downscale factor the release applies before detection: width // 640 when wider than 640, else 1."""
    return width // DETECTION_WIDTH if width > DETECTION_WIDTH else 1


class RetinaFaceDetector:
    """Face detector around a RetinaFace network (clipswap.models.retinaface or the published-weight loader).

    Args:
        model: Keras model mapping [B, H, W, 3] RGB float 0-255 to {"class", "box", "landmark"} per-prior outputs.
        score_threshold: minimum face probability kept (the release's graph uses 0.02; 0.5 drops weak faces).
        iou_threshold: NMS overlap threshold (0.4 as released).

    Example:
        detector = RetinaFaceDetector(load_retinaface_h5("RetinaFace-Res50.h5"))
        faces = detector.detect(rgb_uint8_image)  # list[Detection], highest score first
    """

    def __init__(self, model, score_threshold: float = 0.5, iou_threshold: float = 0.4):
        if not 0.0 <= score_threshold < 1.0:
            raise ValueError(f"score_threshold must be in [0, 1), got {score_threshold}")
        if not 0.0 < iou_threshold <= 1.0:
            raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold}")
        self.model = model
        self.score_threshold = float(score_threshold)
        self.iou_threshold = float(iou_threshold)
        # On TensorFlow one trace serves every frame size: the spatial dimensions are left unknown.
        self._predict = compile_predict(model, input_signature=[((None, None, None, 3), "float32")])

    def predict_raw(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """[B, H, W, 3] RGB 0-255 -> {"class": [B, N, 2], "box": [B, N, 4], "landmark": [B, N, 10]} numpy arrays."""
        outputs = self._predict(np.asarray(images, dtype=np.float32))
        return {key: keras.ops.convert_to_numpy(value) for key, value in outputs.items()}

    def decode(self, outputs: dict[str, np.ndarray], height: int, width: int) -> tuple[np.ndarray, ...]:
        """Decode one image's raw outputs (batch element 0) for a detector input of height x width.

        Returns:
            (boxes [K, 4] normalised x1y1x2y2, landmarks [K, 5, 2] normalised, scores [K]) after NMS, best first.
        """
        priors = prior_boxes(height, width)
        scores = outputs["class"][0, :, 1]
        if len(scores) != len(priors):
            raise ValueError(
                f"the network returned {len(scores)} predictions for a {height}x{width} input, "
                f"the RetinaFace priors number {len(priors)}; is this a RetinaFace-R50 model?"
            )
        boxes = decode_boxes(outputs["box"][0], priors)
        landmarks = decode_landmarks(outputs["landmark"][0], priors)
        keep = non_max_suppression(boxes, scores, self.iou_threshold, self.score_threshold)
        return boxes[keep], landmarks[keep], scores[keep]

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Detect faces in one [H, W, 3] RGB uint8 image.

        Frames wider than 640 px are downscaled by the integer factor width // 640 for the network, as the release
        does; boxes and landmarks are returned in pixels of the ORIGINAL image, highest score first.
        """
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected one RGB image of shape (H, W, 3), got {image.shape}")
        height, width = image.shape[:2]
        scale = detection_scale(width)
        small = image
        if scale > 1:
            small = cv2.resize(image, (width // scale, height // scale), interpolation=cv2.INTER_LINEAR)
        outputs = self.predict_raw(small[None])
        boxes, landmarks, scores = self.decode(outputs, small.shape[0], small.shape[1])
        size = np.array([width, height], dtype=np.float32)
        detections = [
            Detection(box=box * np.tile(size, 2), score=float(score), landmarks=points * size)
            for box, points, score in zip(boxes, landmarks, scores, strict=True)
        ]
        log.debug("%d face(s) in a %dx%d image (detector scale 1/%d)", len(detections), width, height, scale)
        return detections


def open_retinaface(path, score_threshold: float) -> RetinaFaceDetector:
    """The registry's factory (clipswap.registry.detectors): RetinaFace-R50 with the published .h5's weights.

    Raises:
        CheckpointError: the file does not load."""
    from clipswap.checkpoints.retinaface_h5 import load_retinaface_h5

    return RetinaFaceDetector(load_retinaface_h5(path), score_threshold=score_threshold)
