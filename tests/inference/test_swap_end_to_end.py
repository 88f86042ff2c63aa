"""End to end with full-size models: a random-weight 256 generator (`clipswap init`-style, SFace identity so it runs
offline) on a photo and on 2 seconds of video; `sh inference.sh` without checkpoints (clear message, no results/
folder made), run from another directory with relative SOURCE/TARGET/OUTPUT (resolved against the caller's
directory), on a fresh clone (the demo generator; a random stand-in here, tests/inference/test_demo_model.py runs the
real one), and with published-format fixture files for all three checkpoints in the release's layout (it runs)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
from click.testing import CliRunner

from clipswap.checkpoints.native import init_generator
from clipswap.checkpoints.pretrained import find_published
from clipswap.cli import main
from clipswap.config import ModelConfig, get_preset
from clipswap.media.images import read_image
from clipswap.media.labels import read_label
from clipswap.media.video import VideoReader

from conftest import REPO_ROOT, run_keras2_fixture, runtime_suffix, shared_data

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()


@pytest.fixture(scope="module")
def full_generator(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("full")
    return init_generator(ModelConfig(identity_encoder="sface"), folder / "g.keras").with_suffix(".keras")


def _video_facts(path: Path) -> dict:
    frames, seconds = imageio_ffmpeg.count_frames_and_secs(str(path))
    text = subprocess.run([FFMPEG, "-hide_banner", "-i", str(path)], capture_output=True, text=True).stderr
    with VideoReader(path) as reader:
        fps = reader.info.fps
    return {"frames": frames, "seconds": seconds, "fps": fps, "audio": "Audio:" in text}


@pytest.mark.slow
def test_full_size_generator_on_a_photo(full_generator, tmp_path):
    source = shared_data("lfw", "Aaron_Sorkin", "Aaron_Sorkin_0001.jpg")
    target = shared_data("wild", "couple.jpg")
    output = tmp_path / "swapped.jpg"
    result = CliRunner().invoke(main, ["swap", "-s", str(source), "-t", str(target), "-o", str(output),
                                       "--model", str(full_generator), "--precision", "bf16"])
    assert result.exit_code == 0, result.output
    assert "swapped 2 face(s)" in result.output
    before, after = read_image(target), read_image(output)
    assert after.shape == before.shape
    changed = np.any(np.abs(after.astype(int) - before.astype(int)) > 8, axis=2)
    assert 0.01 < changed.mean() < 0.5  # the faces changed, most of the photo did not
    assert "clipswap" in read_label(output)


@pytest.mark.slow
def test_full_size_generator_on_two_seconds_of_video(full_generator, tmp_path):
    clip = tmp_path / "two_seconds.mp4"
    # One face a frame (talking_head_2 has an audio track): the multi-face geometry is covered in
    # test_swap_geometry; here the point is a full-size generator over 50 streamed frames.
    subprocess.run([FFMPEG, "-v", "error", "-y", "-i", str(shared_data("video", "talking_head_2.mp4")), "-t", "2",
                    str(clip)], check=True)
    output = tmp_path / "swapped.mp4"
    source = shared_data("lfw", "Aaron_Sorkin", "Aaron_Sorkin_0001.jpg")
    result = CliRunner().invoke(main, ["swap", "-s", str(source), "-t", str(clip), "-o", str(output),
                                       "--model", str(full_generator), "--precision", "bf16", "--no-progress"])
    assert result.exit_code == 0, result.output
    before, after = _video_facts(clip), _video_facts(output)
    assert after["frames"] == before["frames"] == 50
    assert after["fps"] == before["fps"] == 25.0
    assert abs(after["seconds"] - before["seconds"]) < 0.1
    assert before["audio"] and after["audio"]
    assert "clipswap" in read_label(output)


def _inference_sh(env_extra: dict, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": sys.executable, "TF_CPP_MIN_LOG_LEVEL": "2", **env_extra}
    for name in ("SOURCE", "TARGET", "OUTPUT"):
        if name not in env_extra:
            env.pop(name, None)
    return subprocess.run(["sh", str(REPO_ROOT / "inference.sh"), *args], env=env, capture_output=True, text=True,
                          timeout=900, cwd=cwd)


def _last_line(text: str) -> str:
    """The message after TensorFlow's start-up log lines."""
    return text.strip().splitlines()[-1]


@pytest.fixture
def elsewhere(tmp_path) -> Path:
    """A working directory away from the repository holding src.jpg and tgt.jpg, and an empty checkpoint folder."""
    if find_published("generator"):
        pytest.skip("a generator is installed in pretrained_ckpts/; the missing-file message cannot show")
    folder = tmp_path / "work"
    folder.mkdir()
    (tmp_path / "empty").mkdir()
    shutil.copy(shared_data("lfw", "Aaron_Sorkin", "Aaron_Sorkin_0001.jpg"), folder / "src.jpg")
    shutil.copy(shared_data("wild", "couple.jpg"), folder / "tgt.jpg")
    return folder


def test_inference_sh_resolves_relative_paths_in_the_callers_directory(elsewhere):
    env = {"CLIPSWAP_CKPT_DIR": str(elsewhere.parent / "empty"), "CLIPSWAP_DEMO_DIR": str(elsewhere.parent / "empty"),
           "SOURCE": "src.jpg", "TARGET": "tgt.jpg", "OUTPUT": "out/swapped.png"}
    result = _inference_sh(env, cwd=elsewhere)
    # The inputs were found where the caller put them: the run got as far as the missing generator.
    assert result.returncode == 1, result.stderr
    assert "ClipSwap.h5" in result.stderr and "no generator was found" in result.stderr, result.stderr
    assert "does not exist" not in result.stderr and "Traceback" not in result.stderr
    # The output folder is checked before loading but made only when the result is written: the failed run leaves
    # none, beside the caller's files or in the repository.
    assert not (elsewhere / "out").exists() and not (REPO_ROOT / "out").exists()


@pytest.mark.slow
def test_inference_sh_names_a_missing_relative_input_as_given(elsewhere):
    env = {"CLIPSWAP_CKPT_DIR": str(elsewhere.parent / "empty"), "OUTPUT": "swapped.png"}
    result = _inference_sh({**env, "SOURCE": "src.jpg", "TARGET": "photos/missing.jpg"}, cwd=elsewhere)
    assert result.returncode == 1
    assert _last_line(result.stderr) == "Error: the target photos/missing.jpg does not exist"
    result = _inference_sh({**env, "SOURCE": "nobody.jpg", "TARGET": "tgt.jpg"}, cwd=elsewhere)
    assert result.returncode == 1
    assert _last_line(result.stderr) == "Error: the source nobody.jpg does not exist"
    # Relative paths among the extra options are the caller's too.
    result = _inference_sh({**env, "SOURCE": "src.jpg", "TARGET": "tgt.jpg"}, "--model_path", "mine.keras",
                           cwd=elsewhere)
    assert result.returncode == 1
    assert _last_line(result.stderr) == "Error: the generator file mine.keras does not exist."
    assert not (elsewhere / "swapped.png").exists()


def test_inference_sh_without_checkpoints_says_what_is_missing(tmp_path):
    if find_published("generator"):
        pytest.skip("a generator is installed in pretrained_ckpts/; the missing-file message cannot show")
    empty = tmp_path / "empty"
    empty.mkdir()
    results = REPO_ROOT / "results"
    existed = results.exists()
    # The default OUTPUT (results/inference_example.png in the checkout).
    result = _inference_sh({"CLIPSWAP_CKPT_DIR": str(empty), "CLIPSWAP_DEMO_DIR": str(empty)})
    assert result.returncode == 1, result.stderr
    message = _last_line(result.stderr)
    assert message.startswith("Error: no generator was found: ") and "ClipSwap.h5" in message
    assert f"the demo generator {empty / 'generator.keras'} is missing" in message and "pretrained_ckpts/" in message
    assert "Traceback" not in result.stderr
    assert existed or not results.exists(), "a failed inference.sh created results/ in the checkout"


@pytest.fixture(scope="module")
def demo_standin(tmp_path_factory) -> Path:
    """A random-weight generator of the demo preset, as pretrained_ckpts/demo/ would hold it."""
    folder = tmp_path_factory.mktemp("demo")
    init_generator(get_preset("demo").model, folder / "generator.keras")
    return folder


def test_inference_sh_on_a_fresh_clone_uses_the_demo(demo_standin, tmp_path):
    """No published weights: the demo generator swaps the script's two example faces and the run names it."""
    if find_published("generator"):
        pytest.skip("a generator is installed in pretrained_ckpts/; it would be the default, not the demo")
    empty = tmp_path / "empty"
    empty.mkdir()
    output = tmp_path / "example.png"
    result = _inference_sh({"CLIPSWAP_CKPT_DIR": str(empty), "CLIPSWAP_DEMO_DIR": str(demo_standin),
                            "OUTPUT": str(output)})
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.splitlines() == [
        f"generator: demo ({demo_standin / 'generator.keras'}, SFace identity, warping the source onto the target "
        f"by its own keypoints), "
        f"detector: YuNet{runtime_suffix()}",
        f"swapped 1 face(s); wrote {output}",
    ]
    assert output.is_file() and "clipswap" in read_label(output)


@pytest.mark.slow
def test_inference_sh_runs_with_published_format_checkpoints(tmp_path):
    """The three files unpacked as the ClipSwap README says (pretrained_ckpts/clipswap/, arcface/, retinaface/)."""
    folder = tmp_path / "pretrained_ckpts"
    files = {"generator": folder / "clipswap" / "clipswap.h5", "arcface": folder / "arcface" / "ArcFace-Res50.h5",
             "retinaface": folder / "retinaface" / "RetinaFace-Res50.h5"}
    for path in files.values():
        path.parent.mkdir(parents=True)
    run_keras2_fixture("keras2_generator.py", str(files["generator"]), str(tmp_path / "g.npz"))
    run_keras2_fixture("keras2_arcface.py", str(files["arcface"]), str(tmp_path / "a.npz"))
    run_keras2_fixture("keras2_retinaface.py", str(files["retinaface"]), str(tmp_path / "r.npz"))
    output = tmp_path / "out.png"
    # Random RetinaFace weights score every prior near 0.5: keep every candidate and swap only the largest.
    result = _inference_sh({"CLIPSWAP_CKPT_DIR": str(folder), "OUTPUT": str(output)},
                           "--det-threshold", "0", "--faces", "largest")
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.splitlines() == [
        f"generator: {files['generator']} (published, ArcFace-R50 identity from {files['arcface']}), "
        f"detector: RetinaFace-R50 ({files['retinaface']}){runtime_suffix()}",
        f"swapped 1 face(s); wrote {output}",
    ]
    assert output.is_file() and "clipswap" in read_label(output)
