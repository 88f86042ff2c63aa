"""--reference-face / --similarity on wild/couple.jpg with the real (embedded) SFace encoder and YuNet.

A constant-colour test generator paints every swapped face magenta, so the pixels that change show exactly which
faces were swapped: with a crop of one partner as the reference only that partner's face region changes and the
other face keeps its bytes; a reference image without a face gives one clear error (swapper, pipeline and CLI).
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner

from clipswap.checkpoints.encoders import load_identity_encoder
from clipswap.checkpoints.native import init_generator
from clipswap.cli import main
from clipswap.config import get_preset
from clipswap.face.align import estimate_alignment, invert_affine
from clipswap.face.detection import NoFaceError
from clipswap.face.yunet import YuNetDetector
from clipswap.inference.pipeline import SwapRequest, run_swap
from clipswap.inference.swapper import FaceSwapper
from clipswap.media.images import read_image

from conftest import shared_data

SIZE = 256
MAGENTA = np.array([255, 0, 255], np.uint8)


def constant_generator(inputs):
    """Paints every crop magenta ([1, -1, 1] in the generator's [-1, 1] range)."""
    return tf.ones_like(inputs[0]) * tf.constant([1.0, -1.0, 1.0])


@pytest.fixture(scope="module")
def couple() -> np.ndarray:
    return read_image(shared_data("wild", "couple.jpg"))


@pytest.fixture(scope="module")
def swapper() -> FaceSwapper:
    swapper = FaceSwapper(constant_generator, SIZE, 128, load_identity_encoder("sface"), YuNetDetector())
    swapper.source_vector = np.ones(128, np.float32)  # the test generator ignores the identity
    return swapper


@pytest.fixture(scope="module")
def partners(swapper, couple) -> list:
    faces = swapper.detector.detect(couple)
    assert len(faces) == 2
    return sorted(faces, key=lambda face: face.box[0])  # left partner, right partner


def _crop_of(image: np.ndarray, face, margin: float = 0.5) -> np.ndarray:
    """The face's box grown by `margin` of its size on every side: a photo of that person alone."""
    x1, y1, x2, y2 = face.box
    width, height = x2 - x1, y2 - y1
    top, left = max(0, int(y1 - margin * height)), max(0, int(x1 - margin * width))
    return np.ascontiguousarray(image[top : int(y2 + margin * height), left : int(x2 + margin * width)])


def _crop_region(face, shape) -> np.ndarray:
    """Pixels the face's 256 crop covers when warped back into the frame (2 px margin)."""
    inverse = invert_affine(estimate_alignment(face.landmarks, SIZE))
    corners = np.array([[0, 0, 1], [SIZE, 0, 1], [SIZE, SIZE, 1], [0, SIZE, 1]], float) @ inverse.T
    region = np.zeros(shape[:2], np.uint8)
    cv2.fillConvexPoly(region, np.round(corners).astype(np.int32), 1)
    return cv2.dilate(region, np.ones((5, 5), np.uint8)).astype(bool)


@pytest.mark.parametrize("chosen", [0, 1])
def test_only_the_reference_person_is_swapped(swapper, couple, partners, chosen):
    swapper.set_reference(_crop_of(couple, partners[chosen]))
    try:
        output, count = swapper.swap_frame(couple)
    finally:
        swapper.reference_vector = None
    assert count == 1
    changed = np.any(output != couple, axis=2)
    kept, other = partners[chosen], partners[1 - chosen]
    assert not changed[~_crop_region(kept, couple.shape)].any(), "pixels changed outside the reference person's face"
    x1, y1, x2, y2 = kept.box.astype(int)
    assert changed[y1:y2, x1:x2].mean() > 0.3
    centre = kept.landmarks.mean(axis=0).round().astype(int)
    assert np.abs(output[centre[1], centre[0]].astype(int) - MAGENTA).max() <= 2
    # The other partner's face, box and crop region, keeps its bytes.
    assert np.array_equal(output[_crop_region(other, couple.shape)], couple[_crop_region(other, couple.shape)])


def test_similarity_threshold_decides_the_match(swapper, couple, partners):
    swapper.set_reference(_crop_of(couple, partners[0]))
    try:
        swapper.similarity = -1.0  # every face matches
        _, everyone = swapper.swap_frame(couple)
        swapper.similarity = 1.0  # a different photo of the face is never exactly the same vector
        frame, nobody = swapper.swap_frame(couple)
    finally:
        swapper.reference_vector, swapper.similarity = None, 0.35
    assert (everyone, nobody) == (2, 0)
    assert frame is couple


def test_reference_without_a_face_is_a_clear_error(swapper, tmp_path):
    blank = np.full((120, 160, 3), 128, np.uint8)
    with pytest.raises(NoFaceError, match="no face was found in the reference face image"):
        swapper.set_reference(blank)
    path = tmp_path / "blank.png"
    cv2.imwrite(str(path), blank)
    face = shared_data("lfw", "Aaron_Sorkin", "Aaron_Sorkin_0001.jpg")
    output = tmp_path / "out.png"
    request = SwapRequest(source=face, target=shared_data("wild", "couple.jpg"), output=output, reference_face=path)
    with pytest.raises(NoFaceError, match="reference face image"):
        run_swap(request, swapper=swapper)
    assert not output.exists()


@pytest.mark.slow
def test_cli_reference_face(tmp_path, couple, partners):
    """`clipswap swap --reference-face`: a tiny SFace generator swaps one partner; a faceless reference fails."""
    model = init_generator(get_preset("tiny").model, tmp_path / "g.keras").with_suffix(".keras")
    reference, blank = tmp_path / "partner.png", tmp_path / "blank.png"
    cv2.imwrite(str(reference), _crop_of(couple, partners[1])[..., ::-1])
    cv2.imwrite(str(blank), np.full((120, 160, 3), 128, np.uint8))
    source, target = shared_data("lfw", "Aaron_Sorkin", "Aaron_Sorkin_0001.jpg"), shared_data("wild", "couple.jpg")
    common = ["swap", "--no-progress", "-s", str(source), "-t", str(target), "--model", str(model),
              "--detector", "yunet"]
    result = CliRunner().invoke(main, [*common, "-o", str(tmp_path / "one.png"), "--reference-face", str(reference)])
    assert result.exit_code == 0, result.output
    assert "swapped 1 face(s)" in result.output
    result = CliRunner().invoke(main, [*common, "-o", str(tmp_path / "none.png"), "--reference-face", str(blank)])
    assert result.exit_code == 1 and "no face was found in the reference face image" in result.output
    assert not (tmp_path / "none.png").exists()
