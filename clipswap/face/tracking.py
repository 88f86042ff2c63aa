"""Face tracks across video frames: IoU matching, One Euro smoothing of each track's landmarks, bridging of missed
detections, and a reset at scene cuts.

A track is one face followed from frame to frame. Each frame's detections are matched to the live tracks by the IoU
of their boxes with the track's predicted box (its last box moved on by its velocity, so a face in a fast camera pan
keeps its track; greedy, best pair first, at `iou` or above). A matched track smooths its five landmarks and its box
with a One Euro filter (Casiez, Roussel and Vogel, CHI 2012: a low-pass filter whose cutoff rises with speed, so a
still face stops jittering and a moving one does not lag). The filter runs on coordinates divided by the face's
size, so its parameters mean the same for a small and a large face. A track that misses a detection coasts on its
velocity for up to `max_missed` frames (a one-frame detector miss would otherwise flash the original face); it is
dropped after that, or at once when it coasts over a face another track holds (so no face is swapped twice). A scene
cut (the frame's 32 x 32 grey thumbnail differs from the previous one by more than `scene_cut` grey levels on
average) ends every track.

Each track also keeps the swapper's identity evidence (`decisions`: its running similarity to the reference face and
to each --map reference), so a face is selected and mapped by its mean over the track: one poor view does not drop it
or hand it to another person, and one lucky frame does not select a stranger.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from clipswap.face.detection import Detection
from clipswap.options import SMOOTH_BETA, SMOOTH_MIN_CUTOFF

#: Defaults: MIN_CUTOFF and BETA live in clipswap.options (the command lines offer them; the reasons are
#: there), the rest are our choice.
MIN_CUTOFF = SMOOTH_MIN_CUTOFF
BETA = SMOOTH_BETA
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
    per-face evidence (`decisions`). `scale` (the first detection's size, sqrt of its box area) is the unit
    the filters see, so their parameters mean the same for a small and a large face."""

    id: int
    face: Detection
    filter: OneEuroFilter
    scale: float
    missed: int = 0
    decisions: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)
    #: pixels a frame the face's box moves (x1, y1, x2, y2), from the raw detections, averaged over two frames.
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(4))
    last_box: np.ndarray | None = None

    def predicted_box(self) -> np.ndarray:
        """Where the face should be in the next frame: its box moved on by its velocity (the matching uses this, so
        a face in a fast pan keeps its track)."""
        return self.face.box + self.velocity

    def observe(self, detection: Detection, smoothing: bool) -> None:
        """Continue the track with this frame's detection."""
        if self.last_box is not None:
            self.velocity = 0.5 * self.velocity + 0.5 * (detection.box - self.last_box)
        self.last_box = detection.box.astype(np.float64)
        if smoothing:
            values = np.concatenate([detection.landmarks.reshape(-1), detection.box]) / self.scale
            smoothed = self.filter(values) * self.scale
            detection = Detection(box=smoothed[10:], score=detection.score, landmarks=smoothed[:10].reshape(5, 2))
        self.face = detection
        self.missed = 0

    def coast(self) -> None:
        """No detection this frame: move the face on by its velocity (a bridged frame)."""
        shift = self.velocity.reshape(2, 2).mean(axis=0)
        self.face = Detection(box=self.face.box + self.velocity, score=self.face.score,
                              landmarks=self.face.landmarks + shift)
        if self.last_box is not None:
            self.last_box = self.last_box + self.velocity
        self.missed += 1

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
            boxes = np.stack([d.box for d in detections])
            overlap = iou_matrix(np.stack([t.predicted_box() for t in self.tracks]), boxes)
            for flat in np.argsort(overlap, axis=None)[::-1]:
                row, col = np.unravel_index(flat, overlap.shape)
                if overlap[row, col] < self.iou:
                    break
                if row in matched or col in used:
                    continue
                matched.add(int(row))
                used.add(int(col))
                self.tracks[row].observe(detections[col], self.smoothing)
        alive = [track for index, track in enumerate(self.tracks) if index in matched]
        for index, detection in enumerate(detections):
            if index not in used:
                track = Track(self._next_id, detection,
                              OneEuroFilter(self.fps, self.min_cutoff, self.beta, self.d_cutoff),
                              scale=max(1.0, math.sqrt(detection.area)))
                self._next_id += 1
                track.observe(detection, self.smoothing)
                alive.append(track)
        present = np.stack([track.face.box for track in alive]) if alive else np.zeros((0, 4))
        for index, track in enumerate(self.tracks):
            if index in matched or track.missed >= self.max_missed:
                continue
            track.coast()
            # A coasting track over a face that is tracked (or was just found) is that face's old track: dropped, so
            # no face is swapped twice.
            if len(present) and iou_matrix(track.face.box[None], present).max() >= self.iou:
                continue
            self.bridged += 1
            alive.append(track)
        alive.sort(key=lambda track: track.id)
        self.tracks = alive
        return list(alive)
