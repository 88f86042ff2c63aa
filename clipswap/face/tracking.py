"""Face tracks across video frames: IoU matching, One Euro smoothing of each track's landmarks, bridging of missed
detections, and a reset at scene cuts (issue 13 item 1).

A track is one face followed from frame to frame. Each frame's detections are matched to the live tracks by box IoU
(greedy, best pair first, at `iou` or above); a matched track smooths its five landmarks and its box with a One Euro
filter (Casiez, Roussel and Vogel, CHI 2012: a low-pass filter whose cutoff rises with speed, so a still face stops
jittering and a moving one does not lag). The filter runs on coordinates divided by the face's size, so its
parameters mean the same for a small and a large face. A track that misses a detection keeps its last smoothed face
for up to `max_missed` frames (a one-frame detector miss would otherwise flash the original face), and is dropped
after that. A scene cut (the frame's 32 x 32 grey thumbnail differs from the previous one by more than `scene_cut`
grey levels on average) ends every track.

Each track also keeps whatever per-face decision the swapper makes once (whether it matches the reference face,
which --map source it takes), so a face keeps its selection through the video.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from clipswap.face.detection import Detection

#: Defaults (our choice, checked with `clipswap evaluate`'s flicker metric on ../shared/data/video clips).
MIN_CUTOFF = 1.0  # Hz: the cutoff of a still face
BETA = 1.0  # cutoff rise per (face sizes per second) of speed
D_CUTOFF = 1.0  # Hz: the cutoff of the speed estimate
IOU = 0.3
MAX_MISSED = 3
SCENE_CUT = 40.0


def _alpha(cutoff: np.ndarray | float, rate: float) -> np.ndarray | float:
    tau = 1.0 / (2.0 * math.pi * cutoff)
    return 1.0 / (1.0 + tau * rate)


class OneEuroFilter:
    """One Euro filter over an array of values sampled at `rate` Hz (one call per sample)."""

    def __init__(self, rate: float, min_cutoff: float = MIN_CUTOFF, beta: float = BETA, d_cutoff: float = D_CUTOFF):
        if rate <= 0 or min_cutoff <= 0 or d_cutoff <= 0 or beta < 0:
            raise ValueError(f"One Euro needs rate, min_cutoff, d_cutoff > 0 and beta >= 0; got {rate}, "
                             f"{min_cutoff}, {d_cutoff}, {beta}")
        self.rate, self.min_cutoff = float(rate), float(min_cutoff)
        self.beta, self.d_cutoff = float(beta), float(d_cutoff)
        self._value: np.ndarray | None = None
        self._speed: np.ndarray | None = None

    def __call__(self, value: np.ndarray) -> np.ndarray:
        value = np.asarray(value, np.float64)
        if self._value is None:
            self._value, self._speed = value.copy(), np.zeros_like(value)
            return value.copy()
        speed = (value - self._value) * self.rate
        self._speed = self._speed + _alpha(self.d_cutoff, self.rate) * (speed - self._speed)
        cutoff = self.min_cutoff + self.beta * np.abs(self._speed)
        self._value = self._value + _alpha(cutoff, self.rate) * (value - self._value)
        return self._value.copy()


def iou_matrix(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """[A, B] intersection over union of (x1, y1, x2, y2) boxes."""
    a, b = np.asarray(boxes_a, np.float64).reshape(-1, 4), np.asarray(boxes_b, np.float64).reshape(-1, 4)
    x1, y1 = np.maximum(a[:, None, 0], b[None, :, 0]), np.maximum(a[:, None, 1], b[None, :, 1])
    x2, y2 = np.minimum(a[:, None, 2], b[None, :, 2]), np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = lambda boxes: np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)  # noqa: E731
    union = area(a)[:, None] + area(b)[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)


@dataclass
class Track:
    """One face through the video: its id, smoothed face, frames since its last detection, and the swapper's
    once-per-face decisions (`decisions`). `scale` (the first detection's size, sqrt of its box area) is the unit
    the filters see, so their parameters mean the same for a small and a large face."""

    id: int
    face: Detection
    filter: OneEuroFilter
    scale: float
    missed: int = 0
    decisions: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)

    def smooth(self, detection: Detection) -> None:
        values = np.concatenate([detection.landmarks.reshape(-1), detection.box]) / self.scale
        smoothed = self.filter(values) * self.scale
        self.face = Detection(box=smoothed[10:], score=detection.score, landmarks=smoothed[:10].reshape(5, 2))
        self.missed = 0

    def smooth_points(self, name: str, points: np.ndarray) -> np.ndarray:
        """Smooth another set of this face's points (e.g. dlib's 68) with a filter of its own, same parameters."""
        if name not in self.extra:
            self.extra[name] = OneEuroFilter(self.filter.rate, self.filter.min_cutoff, self.filter.beta,
                                             self.filter.d_cutoff)
        return (self.extra[name](np.asarray(points, np.float64) / self.scale) * self.scale).astype(np.float32)


class FaceTracker:
    """Follow the faces of a video; `update(frame, detections)` once per frame returns the tracks to swap.

    Args:
        fps: the video's frame rate (the One Euro filter's sampling rate).
        min_cutoff, beta, d_cutoff: One Euro parameters (cutoffs in Hz, beta per face size per second).
        smoothing: False keeps tracking (matching, bridging, decisions) but uses the raw detections.
        iou: smallest box IoU that continues a track.
        max_missed: frames a track is bridged without a detection.
        scene_cut: mean grey-level change of the 32 x 32 thumbnail that ends every track.
    """

    def __init__(self, fps: float, *, min_cutoff: float = MIN_CUTOFF, beta: float = BETA, d_cutoff: float = D_CUTOFF,
                 smoothing: bool = True, iou: float = IOU, max_missed: int = MAX_MISSED, scene_cut: float = SCENE_CUT):
        OneEuroFilter(fps, min_cutoff, beta, d_cutoff)  # checks the parameters now, not at the first face
        self.fps, self.min_cutoff, self.beta, self.d_cutoff = fps, min_cutoff, beta, d_cutoff
        self.smoothing, self.iou, self.max_missed, self.scene_cut = smoothing, iou, int(max_missed), scene_cut
        self.tracks: list[Track] = []
        self.scene_cuts = 0
        self.bridged = 0  # frames a track was kept without a detection
        self._next_id = 0
        self._thumbnail: np.ndarray | None = None

    @property
    def started(self) -> int:
        """Tracks started so far."""
        return self._next_id

    def _is_cut(self, frame: np.ndarray) -> bool:
        thumbnail = cv2.resize(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), (32, 32), interpolation=cv2.INTER_AREA)
        previous, self._thumbnail = self._thumbnail, thumbnail.astype(np.float32)
        return previous is not None and float(np.mean(np.abs(self._thumbnail - previous))) > self.scene_cut

    def update(self, frame: np.ndarray, detections: list[Detection]) -> list[Track]:
        """The tracks present in this frame (matched or bridged), oldest first."""
        if self._is_cut(frame) and self.tracks:
            self.scene_cuts += 1
            self.tracks = []
        matched: set[int] = set()
        used: set[int] = set()
        if self.tracks and detections:
            overlap = iou_matrix(np.stack([t.face.box for t in self.tracks]), np.stack([d.box for d in detections]))
            for flat in np.argsort(overlap, axis=None)[::-1]:
                row, col = np.unravel_index(flat, overlap.shape)
                if overlap[row, col] < self.iou:
                    break
                if row in matched or col in used:
                    continue
                matched.add(int(row))
                used.add(int(col))
                self._continue(self.tracks[row], detections[col])
        alive = []
        for index, track in enumerate(self.tracks):
            if index not in matched:
                track.missed += 1
                if track.missed > self.max_missed:
                    continue
                self.bridged += 1
            alive.append(track)
        for index, detection in enumerate(detections):
            if index not in used:
                track = Track(self._next_id, detection,
                              OneEuroFilter(self.fps, self.min_cutoff, self.beta, self.d_cutoff),
                              scale=max(1.0, math.sqrt(detection.area)))
                self._next_id += 1
                self._continue(track, detection)
                alive.append(track)
        self.tracks = alive
        return list(alive)

    def _continue(self, track: Track, detection: Detection) -> None:
        if self.smoothing:
            track.smooth(detection)
        else:
            track.face, track.missed = detection, 0
