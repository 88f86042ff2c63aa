"""Live swapping: webcam frames in, swapped frames out, one at a time, with the video path's tracking and One Euro
smoothing on. The page's Live tab and `benchmarks/live.py` call the same LiveSwapper.process."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

import numpy as np

from clipswap.media import watermark as watermarking
from clipswap.options import SMOOTH_BETA, SMOOTH_MIN_CUTOFF

#: The frame rate the tracker's One Euro filter assumes (the webcam's frames arrive at about this rate; the filter's
#: cutoffs are in Hz, so a rough rate is enough).
LIVE_FPS = 15.0
#: Seconds of recent frames the shown frame rate is measured over.
FPS_WINDOW = 2.0


@dataclass(frozen=True)
class LiveFrame:
    """One processed frame: [H, W, 3] uint8 RGB, the faces swapped in it, the seconds process() took, and the frames
    per second processed over the last FPS_WINDOW seconds (0 until two frames were processed)."""

    image: np.ndarray
    faces: int
    latency: float
    fps: float

    def describe(self) -> str:
        return f"{self.fps:.1f} fps, {1000 * self.latency:.0f} ms a frame, {self.faces} face(s) swapped"


class LiveSwapper:
    """Swap the source face onto a stream of frames.

    Args:
        swapper: a FaceSwapper (or LandmarkSwapper) of its own: its source and face tracks are set here.
        source: [H, W, 3] uint8 RGB photo of the identity to put in.
        source_face: its N-th face from the left (None: the most confident; as --source-face).
        watermark: put the invisible watermark into every frame returned, as every frame `clipswap swap` writes has
            it (on by default: a screen recording of the stream still carries it).
        fps: the rate the tracker assumes (LIVE_FPS).

    Raises:
        NoFaceError: the source holds no usable face.
    """

    def __init__(self, swapper, source: np.ndarray, source_face: int | None = None, *, watermark: bool = True,
                 fps: float = LIVE_FPS):
        self.swapper = swapper
        self.watermark = watermark
        swapper.set_source(source, source_face)
        if hasattr(swapper, "start_tracking"):
            swapper.start_tracking(fps, smoothing=True, min_cutoff=SMOOTH_MIN_CUTOFF, beta=SMOOTH_BETA)
        self._finished: deque[float] = deque()

    def process(self, frame: np.ndarray) -> LiveFrame:
        """Swap one frame ([H, W, 3] uint8 RGB) of the stream, in order."""
        start = time.perf_counter()
        output, faces = self.swapper.swap_frame(np.ascontiguousarray(frame[..., :3], dtype=np.uint8))
        if self.watermark:
            output = watermarking.embed(output)
        now = time.perf_counter()
        self._finished.append(now)
        while now - self._finished[0] > FPS_WINDOW:
            self._finished.popleft()
        span = self._finished[-1] - self._finished[0]
        fps = (len(self._finished) - 1) / span if span > 0 else 0.0
        return LiveFrame(output, faces, now - start, fps)
