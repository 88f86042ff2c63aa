"""`clipswap swap` through the CLI: a successful tiny run on a photo and a video, the default generator (the shipped
demo when no published one is found) and `--model demo`, the one line naming the models, and every error the issue
lists, each with exit code 1, one clear message, and no output file left behind."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import cv2
import imageio_ffmpeg
import numpy as np
import pytest
from click.testing import CliRunner

from clipswap.checkpoints import pretrained
from clipswap.checkpoints.errors import CheckpointError
from clipswap.checkpoints.native import init_generator, load_generator
from clipswap.checkpoints.pretrained import find_published
from clipswap.cli import main
from clipswap.config import get_preset
from clipswap.inference.choice import shown
from clipswap.media.labels import read_label
from clipswap.media.video import VideoInfo as _Info
from clipswap.media.video import VideoReader, VideoWriter

from conftest import runtime_suffix, shared_data

TINY = get_preset("tiny").model


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    """Tiny random generators: SFace (runs offline), ArcFace (needs the missing file), CLIP (needs a preset)."""
    folder = tmp_path_factory.mktemp("ckpt")
    return {
        "sface": init_generator(TINY, folder / "sface.keras").with_suffix(".keras"),
        "arcface": init_generator(TINY.replace(identity_encoder="arcface"), folder / "arc.keras").with_suffix(".keras"),
        "clip": init_generator(TINY.replace(clip_variant="tiny"), folder / "clip.keras").with_suffix(".keras"),
    }


@pytest.fixture(scope="module")
def demo_standin(tmp_path_factory) -> Path:
    """A random-weight generator of the demo preset where the shipped demo would be (its folder)."""
    folder = tmp_path_factory.mktemp("demo")
    init_generator(get_preset("demo").model, folder / "generator.keras")
    return folder


def use_demo(monkeypatch, folder: Path) -> None:
    monkeypatch.setattr(pretrained, "DEMO_DIR", folder)
    monkeypatch.delenv("CLIPSWAP_DEMO_DIR", raising=False)


@pytest.fixture
def face() -> Path:
    return shared_data("lfw", "Aaron_Sorkin", "Aaron_Sorkin_0001.jpg")


@pytest.fixture
def blank(tmp_path) -> Path:
    path = tmp_path / "blank.png"
    cv2.imwrite(str(path), np.full((120, 160, 3), 128, np.uint8))
    return path


@pytest.fixture
def no_published(tmp_path, monkeypatch):
    """Run where no published checkpoint can be found."""
    if find_published("generator") or find_published("arcface") or find_published("retinaface"):
        pytest.skip("published checkpoints are installed in pretrained_ckpts/; the missing-file messages cannot show")
    empty = tmp_path / "empty_ckpts"
    empty.mkdir()
    monkeypatch.setenv("CLIPSWAP_CKPT_DIR", str(empty))
    monkeypatch.chdir(tmp_path)
    use_demo(monkeypatch, tmp_path / "no_demo")


def swap(*args: str | Path):
    return CliRunner().invoke(main, ["swap", "--no-progress", *map(str, args)])


def assert_error(result, *fragments: str, output: Path | None = None) -> None:
    assert result.exit_code == 1, result.output
    # One sentence on stderr; stdout holds at most the line naming the models, when they were loaded.
    assert result.stderr.startswith("Error: ") and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stdout == "" or (result.stdout.startswith("generator: ") and result.stdout.count("\n") == 1)
    for fragment in fragments:
        assert fragment in result.stderr, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    if output is not None:
        assert not output.exists()
        assert not [p for p in output.parent.glob(f".{output.stem}.*")], "a temporary file was left behind"


def test_tiny_swap_on_a_photo(checkpoints, face, tmp_path):
    target = shared_data("wild", "couple.jpg")
    output = tmp_path / "out" / "swapped.png"
    result = swap("-s", face, "-t", target, "-o", output, "--model", checkpoints["sface"], "--detector", "yunet")
    assert result.exit_code == 0, result.output
    line = f"generator: {shown(checkpoints['sface'])} (SFace identity), detector: YuNet{runtime_suffix()}"
    assert result.stdout.splitlines() == [line, f"swapped 2 face(s); wrote {output}"]
    assert output.is_file() and "clipswap" in read_label(output)


@pytest.mark.slow
def test_without_published_weights_the_demo_is_the_default(no_published, demo_standin, face, tmp_path, monkeypatch):
    use_demo(monkeypatch, demo_standin)
    line = (f"generator: demo ({shown(demo_standin / 'generator.keras')}, SFace identity, warping the "
            f"source onto the target by its own keypoints), detector: YuNet{runtime_suffix()}")
    for extra in ([], ["--model", "demo"], ["--model", "auto"]):
        output = tmp_path / f"out{len(extra)}" / "swapped.png"
        result = swap("-s", face, "-t", face, "-o", output, *extra)
        assert result.exit_code == 0, result.output
        assert result.stdout.splitlines() == [line, f"swapped 1 face(s); wrote {output}"], extra
        assert output.is_file()


def test_model_demo_without_the_demo_folder(no_published, face, tmp_path):
    output = tmp_path / "out" / "swapped.png"
    result = swap("-s", face, "-t", face, "-o", output, "--model", "demo")
    assert_error(result, f"the demo generator {tmp_path / 'no_demo' / 'generator.keras'} is missing: it ships with "
                 "the clipswap repository in pretrained_ckpts/demo/", output=output)
    # Checked, not created: the failed run leaves no output folder behind.
    assert not output.parent.exists()


def test_video_frames_without_faces_pass_through(checkpoints, face, tmp_path):
    picture = cv2.imread(str(face))[..., ::-1]
    target, output = tmp_path / "clip.mp4", tmp_path / "swapped.mp4"
    frames = [picture] * 3 + [np.full_like(picture, 90)] * 2
    with VideoWriter(target, _Info((picture.shape[1], picture.shape[0]), 25.0, 0.2, None), watermark=False) as writer:
        for frame in frames:
            writer.write(np.ascontiguousarray(frame))
    # --no-watermark: the watermark would change every written frame by a few grey levels.
    result = swap("-s", face, "-t", target, "-o", output, "--model", checkpoints["sface"], "--no-watermark")
    assert result.exit_code == 0, result.output
    assert "the invisible watermark is off (--no-watermark)" in result.output
    assert "in 3 of 5 frame(s)" in result.output and "2 frame(s) without a face passed through" in result.output
    with VideoReader(output) as reader:
        written = list(reader)
    assert len(written) == 5
    assert np.abs(written[4].astype(int) - 90).max() <= 3  # faceless frames are unchanged (up to the codec)


def test_missing_generator(no_published, face, tmp_path):
    output = tmp_path / "out.png"
    result = swap("-s", face, "-t", face, "-o", output)
    assert_error(result, "no generator was found: the ClipSwap generator (ClipSwap.h5) is not in pretrained_ckpts/ "
                 f"or CLIPSWAP_CKPT_DIR, and the demo generator {tmp_path / 'no_demo' / 'generator.keras'} is missing",
                 " and put it at pretrained_ckpts/ClipSwap.h5 or pretrained_ckpts/clipswap/ClipSwap.h5 (the release's "
                 "layout), or in the folder named by CLIPSWAP_CKPT_DIR", "pass a generator with --model PATH",
                 output=output)


def test_missing_generator_explicit_path(face, tmp_path):
    output = tmp_path / "out.png"
    result = swap("-s", face, "-t", face, "-o", output, "--model", tmp_path / "nowhere.h5")
    assert_error(result, f"the generator file {tmp_path / 'nowhere.h5'} does not exist. The published ClipSwap.h5 "
                 "can be downloaded from", output=output)
    # Our own .keras generators are not downloaded from anywhere: the message says only that the file is missing.
    result = swap("-s", face, "-t", face, "-o", output, "--model", tmp_path / "mine.keras")
    assert_error(result, f"the generator file {tmp_path / 'mine.keras'} does not exist.", output=output)
    assert "download" not in result.output.lower() and "ClipSwap.h5" not in result.output


def test_missing_arcface(no_published, checkpoints, face, tmp_path):
    output = tmp_path / "out.png"
    result = swap("-s", face, "-t", face, "-o", output, "--model", checkpoints["arcface"])
    assert_error(result, "ArcFace-Res50.h5", "pretrained_ckpts/", output=output)


def test_clip_generator_needs_a_preset(checkpoints, face, tmp_path):
    output = tmp_path / "out.png"
    result = swap("-s", face, "-t", face, "-o", output, "--model", checkpoints["clip"])
    assert_error(result, "--clip-preset", output=output)


def test_clip_preset_refused_for_a_generator_without_clip(checkpoints, face, tmp_path):
    output = tmp_path / "out.png"
    result = swap("-s", face, "-t", face, "-o", output, "--model", checkpoints["sface"], "--clip-preset", "x")
    assert_error(result, "takes no CLIP embedding", output=output)


def test_unsupported_and_unreadable_inputs(checkpoints, face, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    output = tmp_path / "out.png"
    assert_error(swap("-s", face, "-t", text, "-o", output, "--model", checkpoints["sface"]),
                 "unsupported type '.txt'", output=output)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 truncated")
    assert_error(swap("-s", face, "-t", broken, "-o", output, "--model", checkpoints["sface"]),
                 "cannot be read as an image", output=output)
    assert_error(swap("-s", face, "-t", tmp_path / "missing.jpg", "-o", output, "--model", checkpoints["sface"]),
                 "does not exist", output=output)
    assert_error(swap("-s", face, "-t", face, "-o", tmp_path / "out.mp4", "--model", checkpoints["sface"]),
                 "is an image but the output")


def test_truncated_video_target(checkpoints, face, tmp_path):
    whole, target, output = tmp_path / "whole.mp4", tmp_path / "cut.mp4", tmp_path / "out.mp4"
    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-v", "error", "-f", "lavfi",
               "-i", "testsrc=duration=4:size=160x120:rate=25", "-pix_fmt", "yuv420p", "-movflags", "+faststart"]
    subprocess.run(command + [str(whole)], check=True, capture_output=True)
    target.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    result = swap("-s", face, "-t", target, "-o", output, "--model", checkpoints["sface"], "--detector", "yunet")
    assert_error(result, "truncated or corrupt", output=output)


def test_no_face_in_the_source(checkpoints, blank, face, tmp_path):
    output = tmp_path / "out.png"
    result = swap("-s", blank, "-t", face, "-o", output, "--model", checkpoints["sface"])
    assert_error(result, "no face was found in the source image", output=output)


def test_no_face_in_the_target(checkpoints, blank, face, tmp_path):
    output = tmp_path / "out.png"
    result = swap("-s", face, "-t", blank, "-o", output, "--model", checkpoints["sface"])
    assert_error(result, "no face to swap was found in the target image", output=output)


def test_output_folder_not_writable(checkpoints, face, tmp_path, monkeypatch):
    occupied = tmp_path / "a_file"
    occupied.write_text("x")
    result = swap("-s", face, "-t", face, "-o", occupied / "out.png", "--model", checkpoints["sface"])
    assert_error(result, "cannot create the output folder")
    locked = tmp_path / "locked"
    locked.mkdir()
    # Tests may run as root, where permission bits do not stop writes: make the access check answer "no".
    real_access = os.access
    monkeypatch.setattr(
        "clipswap.atomic.os.access", lambda path, mode: Path(path) != locked and real_access(path, mode)
    )
    result = swap("-s", face, "-t", face, "-o", locked / "out.png", "--model", checkpoints["sface"])
    assert_error(result, "is not writable", output=locked / "out.png")


def test_checkpoint_not_matching_its_manifest(checkpoints, face, tmp_path):
    copy = tmp_path / "changed.keras"
    shutil.copy(checkpoints["sface"], copy)
    shutil.copy(checkpoints["sface"].with_suffix(".json"), copy.with_suffix(".json"))
    copy.with_suffix(".json").write_text(
        copy.with_suffix(".json").read_text().replace('"sface.keras"', '"changed.keras"')
    )
    with open(copy, "ab") as handle:
        handle.write(b"tampered")
    output = tmp_path / "out.png"
    result = swap("-s", face, "-t", face, "-o", output, "--model", copy)
    assert_error(result, "does not match its manifest", output=output)


def test_bad_faces_option(face, tmp_path):
    result = swap("-s", face, "-t", face, "-o", tmp_path / "o.png", "--faces", "several")
    assert result.exit_code == 2 and "--faces" in result.output


def _laplacian_variance(image: np.ndarray) -> float:
    return float(cv2.Laplacian(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float64), cv2.CV_64F).var())


@pytest.mark.slow
def test_sharpen_on_the_shipped_demo(face, tmp_path):
    """The real demo asks for `--sharpen 1` in its manifest: a swap with no --sharpen gets it, and differs from
    `--sharpen 0`'s by a crisper face."""
    demo = pretrained.DEMO_DIR / "generator.keras"
    if not demo.is_file():
        pytest.skip(f"the shipped demo generator {demo} is absent (it is committed to pretrained_ckpts/demo/)")
    assert json.loads(demo.with_suffix(".json").read_text(encoding="utf-8"))["paste_sharpen"] == 1.0
    target = shared_data("lfw", "Abdullah_Gul", "Abdullah_Gul_0001.jpg")
    outputs = {}
    for name, extra in (("plain", ["--sharpen", "0"]), ("sharpened", [])):
        outputs[name] = tmp_path / f"{name}.png"
        result = swap("-s", face, "-t", target, "-o", outputs[name], "--model", "demo", "--detector", "yunet",
                      "--no-watermark", *extra)
        assert result.exit_code == 0, result.output
        assert result.stdout.splitlines()[-1] == f"swapped 1 face(s); wrote {outputs[name]}"
    plain, sharpened = (cv2.imread(str(outputs[name]))[..., ::-1] for name in ("plain", "sharpened"))
    assert (plain != sharpened).any()
    # LFW crops hold the face in their middle.
    middle = (slice(90, 170), slice(90, 160))
    ratio = _laplacian_variance(sharpened[middle]) / _laplacian_variance(plain[middle])
    assert ratio > 1.2, ratio


@pytest.mark.slow
def test_a_manifest_recommends_its_paste_sharpen(checkpoints, face, tmp_path):
    """A checkpoint manifest's "paste_sharpen" is the --sharpen of a swap that gives none; a bad one is refused with
    one sentence."""
    from clipswap.inference.pipeline import SwapRequest, build_swapper, recommended_detail, recommended_sharpen

    original = checkpoints["sface"]
    folder = tmp_path / "recommends"
    folder.mkdir()
    model = folder / original.name
    shutil.copyfile(original, model)
    manifest = json.loads(original.with_suffix(".json").read_text())
    assert "paste_sharpen" not in manifest

    def recommend(value) -> None:
        model.with_suffix(".json").write_text(json.dumps({**manifest, "paste_sharpen": value}))

    recommend(1.0)
    outputs = {}
    for name, model_path, extra in (("recommended", model, []), ("given", original, ["--sharpen", "1"]),
                                    ("plain", original, [])):
        outputs[name] = tmp_path / f"{name}.png"
        result = swap("-s", face, "-t", face, "-o", outputs[name], "--model", model_path, "--detector", "yunet",
                      "--no-watermark", *extra)
        assert result.exit_code == 0, result.output
    recommended, given, plain = (cv2.imread(str(outputs[name])) for name in ("recommended", "given", "plain"))
    np.testing.assert_array_equal(recommended, given)
    assert (recommended != plain).any()
    # An explicit --sharpen wins, and the poisson blend takes none.
    request = SwapRequest(source=None, target=None, output=None, model=str(model), detector="yunet")
    assert build_swapper(request)[0].sharpen == 1.0
    assert build_swapper(replace(request, sharpen=0.25))[0].sharpen == 0.25
    assert build_swapper(replace(request, blend="poisson"))[0].sharpen == 0.0
    assert recommended_sharpen(None) == 0.0
    sentence = "{} recommends paste_sharpen {}, but it must be a number in [0, 2]: correct or remove it."
    for bad, shown_value in ((2.5, "2.5"), (True, "true"), (-1, "-1"), (None, "null")):
        recommend(bad)
        with pytest.raises(CheckpointError) as refused:
            recommended_sharpen(load_generator(model))
        assert str(refused.value) == sentence.format(model.with_suffix(".json"), shown_value)
    # paste_detail is read the same way.
    model.with_suffix(".json").write_text(json.dumps({**manifest, "paste_detail": 1.5}))
    with pytest.raises(CheckpointError, match=r"recommends paste_detail 1.5, but it must be a number in \[0, 1\]"):
        recommended_detail(load_generator(model))
    recommend("crisp")
    output = tmp_path / "bad.png"
    result = swap("-s", face, "-t", face, "-o", output, "--model", model, "--detector", "yunet")
    assert_error(result, sentence.format(model.with_suffix(".json"), '"crisp"'), output=output)


def test_mirror_source_is_on_by_default_and_the_flag_turns_it_off(checkpoints, face, tmp_path, monkeypatch):
    """SwapRequest and `clipswap swap` mirror the source for a target turned the other way unless
    --no-mirror-source says not to; the swapper build_swapper makes carries the choice."""
    import clipswap.inference.pipeline as pipeline

    request = pipeline.SwapRequest(source=None, target=None, output=None, model=str(checkpoints["sface"]),
                                   detector="yunet")
    assert pipeline.build_swapper(request)[0].mirror_source is True
    assert pipeline.build_swapper(replace(request, mirror_source=False))[0].mirror_source is False
    seen = []
    real = pipeline.build_swapper
    monkeypatch.setattr(pipeline, "build_swapper", lambda given: seen.append(given.mirror_source) or real(given))
    for extra in ([], ["--no-mirror-source"]):
        result = swap("-s", face, "-t", face, "-o", tmp_path / "out.png", "--model", checkpoints["sface"],
                      "--detector", "yunet", "--no-watermark", *extra)
        assert result.exit_code == 0, result.output
    assert seen == [True, False]


@pytest.mark.slow
def test_occlusion_mask_is_off_by_default_and_the_flags_reach_the_swapper(checkpoints, face, tmp_path, monkeypatch):
    """SwapRequest and `clipswap swap` paste around occluders with the shipped occluder network only when
    --occlusion-mask asks for it; --occluder without it is a usage error."""
    import clipswap.inference.pipeline as pipeline
    from clipswap.checkpoints.occluder import SHIPPED_OCCLUDER
    from clipswap.inference.occlusion import OcclusionMasker

    request = pipeline.SwapRequest(source=None, target=None, output=None, model=str(checkpoints["sface"]),
                                   detector="yunet")
    assert pipeline.build_swapper(request)[0].occluder is None
    assert isinstance(pipeline.build_swapper(replace(request, occlusion_mask=True))[0].occluder, OcclusionMasker)
    seen = []
    real = pipeline.build_swapper
    monkeypatch.setattr(pipeline, "build_swapper",
                        lambda given: seen.append((given.occlusion_mask, given.occluder)) or real(given))
    for extra in ([], ["--occlusion-mask"], ["--occlusion-mask", "--occluder", SHIPPED_OCCLUDER]):
        result = swap("-s", face, "-t", face, "-o", tmp_path / "out.png", "--model", checkpoints["sface"],
                      "--detector", "yunet", "--no-watermark", *map(str, extra))
        assert result.exit_code == 0, result.output
    assert seen == [(False, None), (True, None), (True, SHIPPED_OCCLUDER)]
    result = swap("-s", face, "-t", face, "-o", tmp_path / "other.png", "--model", checkpoints["sface"],
                  "--occluder", SHIPPED_OCCLUDER)
    assert result.exit_code == 2 and "add --occlusion-mask, or drop --occluder" in result.output
    assert not (tmp_path / "other.png").exists()


def test_a_changed_occluder_file_is_one_clear_sentence(checkpoints, face, tmp_path):
    from clipswap.checkpoints.occluder import SHIPPED_OCCLUDER

    copy = tmp_path / "occluder.keras"
    shutil.copy(SHIPPED_OCCLUDER, copy)
    shutil.copy(SHIPPED_OCCLUDER.with_suffix(".json"), tmp_path / "occluder.json")
    with open(copy, "ab") as handle:
        handle.write(b"x")
    output = tmp_path / "out.png"
    result = swap("-s", face, "-t", face, "-o", output, "--model", checkpoints["sface"], "--detector", "yunet",
                  "--occlusion-mask", "--occluder", copy)
    assert_error(result, "does not match its manifest", output=output)


def test_the_landmark_model_refuses_the_occlusion_mask(face, tmp_path):
    output = tmp_path / "out.png"
    result = swap("-s", face, "-t", face, "-o", output, "--model", "landmarks", "--occlusion-mask")
    assert_error(result, "--model landmarks Poisson-blends its own region and takes no occlusion mask", output=output)
