"""The release-style inference.py: out-of-range options are one-line usage errors (exit 2, no traceback), --faces is
checked by the same function as `clipswap swap`, --reference-face / --similarity reach the pipeline, and the
release's defaults (its pretrained_ckpts/ layout, --output output/result.jpg) work, with the demo generator when no
published one is found and a printed line naming the models."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from clipswap.checkpoints import pretrained
from clipswap.checkpoints.native import init_generator
from clipswap.cli import main as cli_main
from clipswap.config import get_preset
from clipswap.face.detection import NoFaceError
from clipswap.face.detectors import resolve_detector
from clipswap.inference import pipeline
from clipswap.inference.choice import resolve_model
from clipswap.inference.pipeline import SwapRequest
from clipswap.inference.selection import DEFAULT_SIMILARITY

from conftest import load_inference_script, runtime_suffix, shared_data


@pytest.fixture(scope="module")
def inference():
    return load_inference_script("inference_script")


REQUIRED = ["--target", "t.jpg", "--source", "s.jpg", "--output", "o.png"]


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--det-threshold", "2", "argument --det-threshold: must be a number in [0, 1), got '2'"),
        ("--det-threshold", "1", "argument --det-threshold: must be a number in [0, 1), got '1'"),
        ("--feather", "-3", "argument --feather: must be a number in [0, 64], got '-3'"),
        ("--feather", "nan", "argument --feather: must be a number in [0, 64], got 'nan'"),
        ("--similarity", "1.5", "argument --similarity: must be a number in [-1, 1], got '1.5'"),
        ("--similarity", "high", "argument --similarity: must be a number in [-1, 1], got 'high'"),
        ("--faces", "several", "argument --faces: --faces must be 'all', 'largest' or a positive number"),
        ("--faces", "0", "argument --faces: --faces must be 'all', 'largest' or a positive number"),
        ("--source-face", "0", "argument --source-face: must be a whole number of 1 or more, got '0'"),
        ("--source-face", "first", "argument --source-face: must be a whole number of 1 or more, got 'first'"),
        ("--max-pixels", "0", "argument --max-pixels: must be a whole number of 1 or more, got '0'"),
        ("--smooth-beta", "inf", "argument --smooth-beta: must be a number in [0, 1e+06], got 'inf'"),
    ],
)
def test_out_of_range_options_are_usage_errors(inference, capsys, option, value, message):
    with pytest.raises(SystemExit) as stopped:
        inference.main([*REQUIRED, option, value])
    assert stopped.value.code == 2
    error = capsys.readouterr().err
    assert message in error and "Traceback" not in error
    assert error.strip().splitlines()[-1].startswith("inference.py: error: ")


def test_faces_message_is_the_same_in_both_command_lines(inference, capsys):
    with pytest.raises(SystemExit):
        inference.main([*REQUIRED, "--faces", "several"])
    script = capsys.readouterr().err.strip().splitlines()[-1].split("argument --faces: ")[1]
    result = CliRunner().invoke(cli_main, ["swap", "-s", "s.jpg", "-t", "t.jpg", "-o", "o.png", "--faces", "several"])
    assert result.exit_code == 2 and script in result.output


def test_in_range_options_reach_the_request(inference, monkeypatch, tmp_path, capsys):
    seen: list[SwapRequest] = []

    def fake_run_swap(request, announce=None):
        seen.append(request)
        raise NoFaceError("stopped before any model was loaded")

    monkeypatch.setattr(pipeline, "run_swap", fake_run_swap)
    code = inference.main([*REQUIRED, "--det-threshold", "0", "--feather", "64", "--faces", "largest",
                           "--reference-face", str(tmp_path / "her.jpg"), "--similarity", "-1"])
    assert code == 1
    assert capsys.readouterr().err == "Error: stopped before any model was loaded\n"
    request = seen[0]
    assert (request.det_threshold, request.feather, request.faces, request.similarity) == (0.0, 64.0, "largest", -1.0)
    assert request.reference_face == tmp_path / "her.jpg"
    defaults = inference.parse_args(REQUIRED)
    assert defaults.similarity == DEFAULT_SIMILARITY and defaults.reference_face is None


def test_release_defaults(inference, monkeypatch, capsys):
    defaults = inference.parse_args(["--target", "t.jpg", "--source", "s.jpg"])
    assert defaults.output == Path("output/result.jpg")
    assert (defaults.model_path, defaults.arcface_path, defaults.retina_path) == (None, None, None)
    seen: list[SwapRequest] = []

    def fake_run_swap(request, announce=None):
        seen.append(request)
        raise NoFaceError("stopped")

    monkeypatch.setattr(pipeline, "run_swap", fake_run_swap)
    assert inference.main(["--target", "t.jpg", "--source", "s.jpg", "--model_path", "demo"]) == 1
    assert seen[0].output == Path("output/result.jpg") and seen[0].model == "demo"


def test_release_layout_is_what_the_defaults_find(tmp_path, monkeypatch):
    """pretrained_ckpts/ unpacked as the ClipSwap README says: the path options left at their defaults find all
    three files (empty stand-ins: resolving only finds files)."""
    files = {key: tmp_path / "pretrained_ckpts" / name for key, name in (
        ("generator", "clipswap/clipswap.h5"), ("arcface", "arcface/ArcFace-Res50.h5"),
        ("retinaface", "retinaface/RetinaFace-Res50.h5"))}
    for path in files.values():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CLIPSWAP_CKPT_DIR", raising=False)
    monkeypatch.setattr(pretrained, "REPO_ROOT", tmp_path / "checkout")
    choice = resolve_model(None)
    assert (choice.kind, choice.path.resolve()) == ("published", files["generator"].resolve())
    assert pretrained.require_published("arcface").resolve() == files["arcface"].resolve()
    kind, path = resolve_detector("auto")
    assert (kind, path.resolve()) == ("retinaface", files["retinaface"].resolve())


@pytest.mark.slow
def test_demo_run_with_the_default_output(inference, tmp_path, monkeypatch, capsys):
    face = shared_data("lfw", "Aaron_Sorkin", "Aaron_Sorkin_0001.jpg")
    demo = tmp_path / "demo"
    init_generator(get_preset("demo").model, demo / "generator.keras")
    monkeypatch.setattr(pretrained, "DEMO_DIR", demo)
    monkeypatch.delenv("CLIPSWAP_DEMO_DIR", raising=False)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert inference.main(["--target", str(face), "--source", str(face), "--model_path", "demo",
                           "--detector", "yunet"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [f"generator: demo ({demo / 'generator.keras'}, SFace identity, warping the source onto the target "
                   f"by its own keypoints), "
                   f"detector: YuNet{runtime_suffix()}",
                   "swapped 1 face(s); wrote output/result.jpg"]
    assert (work / "output" / "result.jpg").is_file()
