"""`--model landmarks`, the classical 68-point swap as a model: `clipswap swap` on real LFW photos (only the face
changes, and it moves towards the source in SFace), several faces and a video, `clipswap evaluate --model
landmarks` (and `--model warp`, the other model without a network) with the closer-to-source figure, and the one
sentence without dlib."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from clipswap.checkpoints.dlib_models import DlibUnavailableError
from clipswap.cli import main
from clipswap.face.detection import sort_by_area
from clipswap.face.similarity import cosine_similarity
from clipswap.inference.choice import WARP_LABEL
from clipswap.inference.pipeline import NO_WATERMARK_WARNING
from clipswap.media.images import read_image
from clipswap.media.labels import read_label
from clipswap.media.video import VideoInfo, VideoReader, VideoWriter

from conftest import require_module, shared_data

LINE = "generator: landmarks (classical 68-point warp, no network), detector: YuNet"
PEOPLE = ("Aaron_Sorkin", "Abdullah_Gul", "Adrien_Brody", "Albert_Costa")


@pytest.fixture(scope="module")
def photos() -> list:
    """The first LFW photo of four different people."""
    require_module("dlib", "the landmark model places dlib's 68 landmarks")
    return [shared_data("lfw", name, f"{name}_0001.jpg") for name in PEOPLE]


@pytest.fixture(scope="module")
def analysis():
    """(embed(image) -> SFace unit vector of its largest face, landmarks(image) -> its 68 points)."""
    from clipswap.evaluation.identity_models import SFaceModel
    from clipswap.face.landmarks68 import Landmarker68
    from clipswap.face.yunet import YuNetDetector

    model, detector, landmarker = SFaceModel(), YuNetDetector(), Landmarker68()

    def face(image):
        return sort_by_area(detector.detect(image))[0]

    return (lambda image: model.embed(image, face(image))), (lambda image: landmarker(image, face(image)))


def swap(*args):
    return CliRunner().invoke(main, ["swap", "--no-progress", "--model", "landmarks", *map(str, args)])


def test_landmark_swap_of_an_lfw_pair(photos, analysis, tmp_path):
    from clipswap.inference.landmark_swapper import face_region

    source_path, target_path = photos[0], photos[1]
    output = tmp_path / "swapped.png"
    # --no-watermark: the pixels outside the face are compared exactly below (the watermark changes every pixel).
    result = swap("-s", source_path, "-t", target_path, "-o", output, "--detector", "yunet", "--no-watermark")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [LINE, NO_WATERMARK_WARNING, f"swapped 1 face(s); wrote {output}"]
    assert "clipswap" in read_label(output)
    source, target, swapped = read_image(source_path), read_image(target_path), read_image(output)
    assert swapped.shape == target.shape
    embed, landmarks = analysis
    # Only the face changed: outside the region around the target's 68 points the output is the target, exactly.
    x0, y0, x1, y1 = face_region(landmarks(target), target.shape)
    outside = np.ones(target.shape[:2], bool)
    outside[y0:y1, x0:x1] = False
    assert np.array_equal(swapped[outside], target[outside])
    changed = np.any(np.abs(swapped.astype(int) - target.astype(int)) > 8, axis=2)
    assert 0.05 < changed.mean() < 0.5 * (1.0 - outside.mean())
    # The face moved towards the source in SFace: the swap is closer to the source than the target's own face
    # (measured 0.25 against 0.12).
    source_vector = embed(source)
    assert cosine_similarity(embed(swapped), source_vector) > cosine_similarity(embed(target), source_vector) + 0.05


def test_every_selected_face_and_video_frames(photos, tmp_path):
    output = tmp_path / "couple.png"
    result = swap("-s", photos[0], "-t", shared_data("wild", "couple.jpg"), "-o", output)
    assert result.exit_code == 0, result.output
    assert "swapped 2 face(s)" in result.stdout
    # A video streams through the same swap_frame: frames without a face pass through.
    picture = read_image(photos[1])
    clip, swapped = tmp_path / "clip.mp4", tmp_path / "swapped.mp4"
    with VideoWriter(clip, VideoInfo((picture.shape[1], picture.shape[0]), 25.0, 0.2, None)) as writer:
        for frame in [picture] * 2 + [np.full_like(picture, 90)]:
            writer.write(np.ascontiguousarray(frame))
    result = swap("-s", photos[0], "-t", clip, "-o", swapped)
    assert result.exit_code == 0, result.output
    assert "in 2 of 3 frame(s)" in result.stdout
    with VideoReader(swapped) as reader:
        assert len(list(reader)) == 3


def test_without_dlib_one_sentence(photos, tmp_path, monkeypatch):
    def missing():
        raise DlibUnavailableError("dlib is not installed; install the evaluation extra: pip install 'clipswap[eval]'")

    monkeypatch.setattr("clipswap.face.landmarks68.import_dlib", missing)
    output = tmp_path / "out.png"
    result = swap("-s", photos[0], "-t", photos[1], "-o", output)
    assert result.exit_code == 1, result.output
    assert result.stderr == ("Error: --model landmarks places dlib's 68 landmarks, but dlib is not installed; install "
                             "the evaluation extra: pip install 'clipswap[eval]'\n")
    assert not output.exists()


# The network-free models: the landmark swap and the landmark warp alone (`--model warp`).
EVALUATED = [("landmarks", LINE, "landmark baseline", "LandmarkSwapper"),
             ("warp", f"generator: {WARP_LABEL}, detector: YuNet", "warp baseline", "warped input")]


@pytest.mark.parametrize(("model", "line", "note", "timing"), EVALUATED, ids=[row[0] for row in EVALUATED])
def test_evaluate_the_landmark_model_with_closer_to_source(photos, tmp_path, model, line, note, timing):
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("".join(f"{photos[i]} {photos[(i + 1) % 4]} -\n" for i in range(4)))
    out = tmp_path / "eval"
    result = CliRunner().invoke(main, ["evaluate", "--pairs", str(pairs), "--output-dir", str(out),
                                       "--model", model, "--detector", "yunet", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == line
    metrics = json.loads((out / "metrics.json").read_text())
    # No identity encoder to avoid: auto scores with SFace, and says why.
    assert metrics["identity_model"].startswith("sface") and note in metrics["identity_model_note"]
    closer = metrics["aggregate"]["closer_to_source"]
    assert (closer["n"], closer["failed"]) == (4, 0)
    records = metrics["pairs"]
    assert closer["value"] == pytest.approx(100.0 * sum(r["closer_to_source"] for r in records) / 4)
    for record in records:
        assert record["closer_to_source"] == (record["id_similarity"] > record["id_similarity_target"])
    assert "Closer to source % ↑" in (out / "metrics.md").read_text(encoding="utf-8")
    cost = metrics["aggregate"]["cost"]
    assert cost["params"] == 0 and cost["latency_n"] == 3 and timing in cost["latency_note"]
