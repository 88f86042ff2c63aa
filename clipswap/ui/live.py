"""Live swapping: webcam frames in, swapped frames out, one at a time, with the video path's tracking and One Euro
smoothing on. The page's Live tab and `benchmarks/live.py` call the same LiveSwapper.process.

Two things differ from a video swap, for speed (benchmarks/live.py measures them): faces are detected on the frame
shrunk to LIVE_DETECT_SIDE (ScaledDetector; the 68 landmarks of the demo's warp are still placed on the full frame),
and the demo's warp solves its triangles in numpy (clipswap.face.landmark_swap.TRANSFORMS, the same maps)."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

import cv2
import numpy as np

from clipswap.face.detection import Detection
from clipswap.media import watermark as watermarking
from clipswap.options import SMOOTH_BETA, SMOOTH_MIN_CUTOFF

#: The frame rate the tracker's One Euro filter assumes (the webcam's frames arrive at about this rate; the filter's
#: cutoffs are in Hz, so a rough rate is enough).
LIVE_FPS = 15.0
#: Seconds of recent frames the shown frame rate is measured over.
FPS_WINDOW = 2.0
#: Longer side of the frame the live detector sees (pixels): a webcam face is large in its frame, and at 640 x 480
#: YuNet costs four times what it does at 320 x 240.
LIVE_DETECT_SIDE = 320


class ScaledDetector:
    """A detector that looks at the image shrunk so its longer side is at most `side` (INTER_AREA) and returns its
    Detections scaled back to the image's pixels (boxes and five landmarks). Same interface as the detector it
    wraps; images already small enough are passed as they are."""

    def __init__(self, detector, side: int = LIVE_DETECT_SIDE):
        if side < 32:
            raise ValueError(f"side must be at least 32 pixels, got {side}")
        self.detector = detector
        self.side = int(side)

    def detect(self, image: np.ndarray) -> list[Detection]:
        height, width = image.shape[:2]
        if max(height, width) <= self.side:
            return self.detector.detect(image)
        scale = self.side / max(height, width)
        small = cv2.resize(image, (max(1, round(width * scale)), max(1, round(height * scale))),
                           interpolation=cv2.INTER_AREA)
        factors = np.array([width / small.shape[1], height / small.shape[0]])
        return [Detection(box=(face.box.reshape(2, 2) * factors).reshape(4), score=face.score,
                          landmarks=face.landmarks * factors) for face in self.detector.detect(small)]


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
        swapper: a FaceSwapper (or LandmarkSwapper) of its own: its source and face tracks are set here, and its
            detector (wrapped in a ScaledDetector) and warp transforms ("numpy") are changed for the stream.
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
        # After set_source, so the source face is found at full resolution, as `clipswap swap` finds it.
        swapper.detector = ScaledDetector(swapper.detector)
        swapper.warp_transforms = "numpy"
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
