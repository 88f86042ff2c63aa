"""--source-face N: a source photo with several faces uses its N-th face from the left; without
the option the most confident face is used and a warning says which one it was and how to choose another."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from clipswap.checkpoints.native import init_generator
from clipswap.cli import main
from clipswap.config import get_preset
from clipswap.face.detection import Detection, NoFaceError
from clipswap.inference.swapper import best_face
from clipswap.media.images import read_image

from conftest import shared_data


class Listed:
    """A detector returning fixed detections."""

    def __init__(self, detections):
        self.detections = detections

    def detect(self, image):
        return list(self.detections)


def face_at(x: float, score: float) -> Detection:
    landmarks = np.array([[x + 20, 40], [x + 60, 40], [x + 40, 60], [x + 25, 80], [x + 55, 80]], np.float32)
    return Detection(box=np.array([x, 10, x + 80, 100], np.float32), score=score, landmarks=landmarks)


#: Three faces, given out of left-to-right order; the middle one (x=200) is the most confident.
FACES = [face_at(400, 0.8), face_at(200, 0.99), face_at(10, 0.7)]
IMAGE = np.zeros((120, 500, 3), np.uint8)


@pytest.mark.parametrize(("number", "left"), [(1, 10), (2, 200), (3, 400)])
def test_number_counts_from_the_left(number, left):
    assert best_face(Listed(FACES), IMAGE, "source image", number=number).box[0] == left


def test_without_a_number_the_most_confident_face_is_used_and_named(caplog):
    with caplog.at_level(logging.WARNING):
        chosen = best_face(Listed(FACES), IMAGE, "source image", say_which=True)
    assert chosen.box[0] == 200
    assert "holds 3 faces; using the most confident one, face 2 from the left" in caplog.text
    assert "--source-face N" in caplog.text


@pytest.mark.parametrize("number", [0, 4])
def test_a_number_past_the_faces_is_an_error(number):
    with pytest.raises(NoFaceError, match=rf"--source-face {number} asks for a face the source image does not have: "
                       r"it holds 3 face\(s\); choose 1 to 3 \(counted from the left\)"):
        best_face(Listed(FACES), IMAGE, "source image", number=number)


# --------------------------------------------------------------------------------------------- through the CLI


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return init_generator(get_preset("tiny").model, tmp_path_factory.mktemp("ckpt") / "tiny.keras")


def swap(*args: str | Path):
    return CliRunner().invoke(main, ["swap", "--no-progress", "--no-watermark", *map(str, args)])


def test_each_face_of_a_two_face_source_gives_its_own_swap(tiny, tmp_path):
    couple = shared_data("wild", "couple.jpg")
    target = shared_data("lfw", "Aaron_Sorkin", "Aaron_Sorkin_0001.jpg")
    outputs = []
    for number in (1, 2):
        output = tmp_path / f"face{number}.png"
        result = swap("-s", couple, "-t", target, "-o", output, "--model", tiny, "--detector", "yunet",
                      "--source-face", number)
        assert result.exit_code == 0, result.output
        outputs.append(read_image(output).astype(np.int16))
    # Two identities through the same generator: the swaps differ.
    assert np.abs(outputs[0] - outputs[1]).max() > 0


def test_a_face_the_source_does_not_have_is_refused(tiny, tmp_path):
    output = tmp_path / "out.png"
    result = swap("-s", shared_data("wild", "couple.jpg"), "-t", shared_data("lfw", "Aaron_Sorkin",
                  "Aaron_Sorkin_0001.jpg"), "-o", output, "--model", tiny, "--detector", "yunet", "--source-face", 3)
    assert result.exit_code == 1, result.output
    assert result.stderr.strip().splitlines() == [
        "Error: --source-face 3 asks for a face the source image does not have: it holds 2 face(s); choose 1 to 2 "
        "(counted from the left)"
    ]
    assert not output.exists()


def test_source_face_zero_is_a_usage_error(tmp_path):
    result = swap("-s", "a.jpg", "-t", "b.jpg", "-o", tmp_path / "o.png", "--source-face", 0)
    assert result.exit_code == 2 and "--source-face" in result.stderr


def test_source_face_with_only_map_sources_is_a_usage_error(tmp_path):
    # --map sources take their most confident face; a --source-face that would pick nothing must not pass silently.
    ref, src, target = (tmp_path / name for name in ("ref.jpg", "src.jpg", "t.jpg"))
    for path in (ref, src, target):
        path.write_bytes(b"not read: the usage check comes first")
    output = tmp_path / "o.png"
    result = swap("-t", target, "-o", output, "--map", f"{ref}={src}", "--source-face", 2)
    assert result.exit_code == 2
    assert "--source-face picks a face of the --source image, and none was given" in result.stderr
    assert not output.exists()
