"""On a real photo, `--color-correction reinhard` brings a generator that returns a colour-shifted
copy of its input back within a set tolerance of the original face, and `--blend poisson` changes pixels only in the
face region (the face-outline mask warped back into the frame)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner

from clipswap.checkpoints.encoders import load_identity_encoder
from clipswap.cli import main
from clipswap.face.align import invert_affine
from clipswap.face.detection import sort_by_area
from clipswap.inference.blend import crop_region
from clipswap.inference.swapper import FaceSwapper
from clipswap.media.images import read_image

from conftest import shared_data

SIZE = 128
SHIFT = np.array([0.35, -0.25, 0.2], np.float32)  # in [-1, 1] units: about +45, -32, +25 grey levels


def shifted_copy(inputs):
    """A stand-in generator: its input with a colour cast."""
    target, _ = inputs
    return target + tf.constant(SHIFT)


@pytest.fixture(scope="module")
def parts():
    from clipswap.face.yunet import YuNetDetector

    return load_identity_encoder("sface"), YuNetDetector(), read_image(shared_data("lfw", "Aaron_Sorkin",
                                                                                     "Aaron_Sorkin_0001.jpg"))


def _swap(parts, **options) -> tuple[np.ndarray, FaceSwapper]:
    identity, detector, photo = parts
    swapper = FaceSwapper(shifted_copy, SIZE, identity.dim, identity, detector, **options)
    swapper.set_source(photo)
    swapped, faces = swapper.swap_frame(photo)
    assert faces == 1
    return swapped, swapper


def _face_region(parts, swapper) -> np.ndarray:
    """[H, W] bool: the frame pixels under the face-outline mask (> 0.5), warped back as the blends do."""
    _, detector, photo = parts
    face = sort_by_area(detector.detect(photo))[0]
    from clipswap.face.align import estimate_alignment

    matrix = estimate_alignment(face.landmarks, SIZE)
    mask = swapper._mask(face, matrix)
    region = np.zeros(photo.shape[:2], bool)
    x0, y0, x1, y1 = crop_region(matrix, SIZE, photo.shape)
    inverse = invert_affine(matrix)
    inverse[:, 2] -= (x0, y0)
    region[y0:y1, x0:x1] = cv2.warpAffine(mask, inverse, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR) > 0.5
    return region


def test_reinhard_correction_undoes_a_colour_cast(parts):
    photo = parts[2]
    cast, swapper = _swap(parts, blend="landmarks")
    corrected, _ = _swap(parts, blend="landmarks", color_correction="reinhard")
    core = _face_region(parts, swapper)
    core = cv2.erode(core.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0  # inside the feathered edge
    error_cast = np.abs(cast[core].astype(int) - photo[core].astype(int)).mean()
    error_corrected = np.abs(corrected[core].astype(int) - photo[core].astype(int)).mean()
    assert error_cast > 25.0
    assert error_corrected < 4.0, f"corrected face {error_corrected:.2f} grey levels from the original"


def test_poisson_blend_changes_only_the_face_region(parts):
    photo = parts[2]
    blended, swapper = _swap(parts, blend="poisson")
    changed = np.any(blended != photo, axis=2)
    region = _face_region(parts, swapper)
    assert changed.sum() > 0.5 * region.sum()  # the face did change
    assert not (changed & ~region).any(), f"{int((changed & ~region).sum())} pixels changed outside the face"
    # Poisson keeps the frame's colour at the face's edge: the cast is mostly gone there, unlike an alpha paste.
    alpha, _ = _swap(parts, blend="landmarks")
    ring = region & ~(cv2.erode(region.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0)
    assert (np.abs(blended[ring].astype(int) - photo[ring].astype(int)).mean()
            < 0.5 * np.abs(alpha[ring].astype(int) - photo[ring].astype(int)).mean())


def test_the_options_reach_the_command_line(tmp_path):
    face = shared_data("lfw", "Aaron_Sorkin", "Aaron_Sorkin_0001.jpg")
    result = CliRunner().invoke(main, ["swap", "--help"])
    assert "--color-correction [none|reinhard]" in result.output and "poisson" in result.output
    result = CliRunner().invoke(main, ["swap", "-s", str(face), "-t", str(face), "-o", str(tmp_path / "o.png"),
                                       "--color-correction", "sepia"])
    assert result.exit_code == 2
    with pytest.raises(ValueError, match="color_correction"):
        FaceSwapper(shifted_copy, SIZE, 128, load_identity_encoder("sface"), None, color_correction="sepia")


def test_detail_and_poisson_are_refused_together(tmp_path):
    face = shared_data("lfw", "Aaron_Sorkin", "Aaron_Sorkin_0001.jpg")
    result = CliRunner().invoke(main, ["swap", "-s", str(face), "-t", str(face), "-o", str(tmp_path / "o.png"),
                                       "--detail", "1", "--blend", "poisson"])
    assert result.exit_code == 2 and "--detail" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "o.png").exists()
    with pytest.raises(ValueError, match="poisson"):
        FaceSwapper(shifted_copy, SIZE, 128, load_identity_encoder("sface"), None, blend="poisson", detail=1.0)
    with pytest.raises(ValueError, match="detail"):
        FaceSwapper(shifted_copy, SIZE, 128, load_identity_encoder("sface"), None, detail=1.5)


def test_sharpen_and_poisson_are_refused_together(tmp_path):
    face = shared_data("lfw", "Aaron_Sorkin", "Aaron_Sorkin_0001.jpg")
    result = CliRunner().invoke(main, ["swap", "-s", str(face), "-t", str(face), "-o", str(tmp_path / "o.png"),
                                       "--sharpen", "0.5", "--blend", "poisson"])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert ("--sharpen sharpens the generated face of a mask-blended paste, and --blend poisson solves the face "
            "region anew: drop one of them") in " ".join(result.output.split())
    assert not (tmp_path / "o.png").exists()
    with pytest.raises(ValueError, match="poisson"):
        FaceSwapper(shifted_copy, SIZE, 128, load_identity_encoder("sface"), None, blend="poisson", sharpen=0.5)
    with pytest.raises(ValueError, match="sharpen must be in"):
        FaceSwapper(shifted_copy, SIZE, 128, load_identity_encoder("sface"), None, sharpen=2.5)
    assert FaceSwapper(shifted_copy, SIZE, 128, load_identity_encoder("sface"), None, sharpen=2.0).sharpen == 2.0


@pytest.mark.parametrize("value", ["3", "-0.5", "2.01"])
def test_sharpen_out_of_range_is_one_sentence(tmp_path, value):
    face = shared_data("lfw", "Aaron_Sorkin", "Aaron_Sorkin_0001.jpg")
    result = CliRunner().invoke(main, ["swap", "-s", str(face), "-t", str(face), "-o", str(tmp_path / "o.png"),
                                       "--sharpen", value])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    error = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(error) == 1 and "'--sharpen'" in error[0] and "0<=x<=2" in error[0].replace(" ", ""), result.stderr
    assert not (tmp_path / "o.png").exists()
