"""LandmarkSwapper: `--model landmarks`, the classical non-learned swap, behind FaceSwapper's interface
(set_source, set_reference, swap_frame, timer), so `clipswap swap` (photos and videos) and `clipswap evaluate` run
it like a generator.

Source (once per run): detect, take the best-scoring face, place dlib's 68 landmarks in its box
(clipswap.face.landmarks68.Landmarker68), keep the region of the image around them.
Target (every frame): detect, select faces (--faces, --reference-face), place the 68 landmarks of every selected face
on the frame as it came in, then swap each face with clipswap.face.landmark_swap.landmark_swap (piecewise-affine
warp of the source face onto the target's landmarks, Reinhard colour transfer, Poisson blending) on a region around
it, pasted back in place. Pixels outside each face's hull are the frame's own.

No network and no weights: the evaluation baseline beside "output = target" and "output = source".
Colour order RGB; frames [H, W, 3] uint8. Needs dlib (the `eval` extra).
"""

from __future__ import annotations

import logging
import math

import numpy as np

from clipswap.checkpoints.encoders import IDENTITY_SIZE, IdentityEncoder
from clipswap.face.align import align_face
from clipswap.face.landmark_swap import LandmarkSwapError, landmark_swap
from clipswap.inference.selection import DEFAULT_SIMILARITY, FaceSelection
from clipswap.inference.swapper import SOURCE_STAGE, StageTimer, best_face, matching_detections

log = logging.getLogger(__name__)

#: A face's swap works on the box of its 68 points grown on every side by this fraction of the box's larger side:
#: room for the Poisson solve around the face hull, which OpenCV cannot clone when it touches the border (our choice).
REGION_MARGIN = 0.2


def face_region(points: np.ndarray, shape: tuple[int, ...], margin: float = REGION_MARGIN) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) pixel bounds, clipped to the image `shape` [H, W, ...], of the region around the [68, 2]
    points; empty (x1 <= x0 or y1 <= y0) when they lie outside the image."""
    points = np.asarray(points, dtype=np.float64)
    low, high = points.min(axis=0), points.max(axis=0)
    grow = margin * float(np.max(high - low))
    height, width = shape[:2]
    x0, y0 = (max(0, math.floor(v - grow)) for v in low)
    x1, y1 = min(width, math.ceil(high[0] + grow) + 1), min(height, math.ceil(high[1] + grow) + 1)
    return x0, y0, x1, y1


class LandmarkSwapper:
    """Swap the source face onto the faces of target frames by landmarks (module docstring).

    Args:
        detector: an object with detect([H, W, 3] uint8 RGB) -> list[Detection] (YuNetDetector, RetinaFaceDetector).
        landmarker: (image, Detection) -> [68, 2] landmarks; None: clipswap.face.landmarks68.Landmarker68
            (raises DlibUnavailableError without the `eval` extra).
        selection: which detected faces to swap.
        similarity: cosine threshold for faces matching a reference face (set_reference).
        identity: the identity encoder for --reference-face matching (only needed with set_reference).
    """

    def __init__(self, detector, landmarker=None, *, selection: FaceSelection | None = None,
                 similarity: float = DEFAULT_SIMILARITY, identity: IdentityEncoder | None = None):
        if landmarker is None:
            from clipswap.face.landmarks68 import Landmarker68  # needs dlib

            landmarker = Landmarker68()
        self.detector = detector
        self.landmarker = landmarker
        self.selection = selection or FaceSelection()
        self.similarity = float(similarity)
        self.identity = identity
        #: Where the warp takes its triangle transforms (clipswap.face.landmark_swap.TRANSFORMS; FaceSwapper's).
        self.warp_transforms = "qhull"
        self.source: np.ndarray | None = None
        self.source_68: np.ndarray | None = None
        self.reference_vector: np.ndarray | None = None
        self.timer = StageTimer()

    def set_source(self, image: np.ndarray, number: int | None = None) -> np.ndarray:
        """Keep the best face of `image`, or its `number`-th from the left (--source-face; best_face), and its 68
        landmarks (timed as SOURCE_STAGE); returns the landmarks in the kept region's pixels. Raises NoFaceError."""
        with self.timer.stage(SOURCE_STAGE):
            face = best_face(self.detector, image, "source image", say_which=True, number=number)
            points = self.landmarker(image, face)
            x0, y0, x1, y1 = face_region(points, image.shape)
            self.source = np.ascontiguousarray(image[y0:y1, x0:x1])
            self.source_68 = points - [x0, y0]
        return self.source_68

    def set_reference(self, image: np.ndarray) -> None:
        """Only faces whose identity matches the best face of `image` will be swapped. Raises NoFaceError."""
        if self.identity is None:
            raise ValueError("matching a reference face needs an identity encoder: pass identity= to LandmarkSwapper")
        with self.timer.stage(SOURCE_STAGE):
            face = best_face(self.detector, image, "reference face image")
            crop112, _ = align_face(image, face.landmarks, IDENTITY_SIZE)
            self.reference_vector = self.identity.embed(crop112[None])[0]

    def swap_frame(self, frame: np.ndarray) -> tuple[np.ndarray, int]:
        """Swap the selected faces of one frame.

        Args:
            frame: [H, W, 3] uint8 RGB.

        Returns:
            ([H, W, 3] uint8 RGB, number of faces swapped). With no face swapped the frame itself is returned.
        """
        if self.source is None:
            raise RuntimeError("call set_source() before swap_frame()")
        self.timer.frames += 1
        with self.timer.stage("detect"):
            detections = self.detector.detect(frame)
        if self.reference_vector is not None and detections:
            with self.timer.stage("identity"):
                detections = matching_detections(frame, detections, self.identity, self.reference_vector,
                                                 self.similarity)
        faces = self.selection.apply(detections)
        if not faces:
            return frame, 0
        with self.timer.stage("align"):
            # Every face's landmarks come from the frame as it came in, before any face of it is replaced.
            landmarks = [self.landmarker(frame, face) for face in faces]
        output, swapped = frame.copy(), 0
        with self.timer.stage("generate"):
            for points in landmarks:
                x0, y0, x1, y1 = face_region(points, frame.shape)
                if x1 <= x0 or y1 <= y0:
                    log.warning("a face's landmarks lie outside the frame; left unchanged")
                    continue
                try:
                    target = np.ascontiguousarray(output[y0:y1, x0:x1])
                    region = landmark_swap(self.source, self.source_68, target, points - [x0, y0],
                                           transforms=self.warp_transforms)
                except LandmarkSwapError as error:
                    log.warning("a face could not be swapped by landmarks (%s); left unchanged", error)
                    continue
                output[y0:y1, x0:x1] = region
                swapped += 1
        self.timer.faces += swapped
        return (output, swapped) if swapped else (frame, 0)
