"""Hostile video and disk cases: a damaged video is refused unless --allow-damaged (which reports the count); a
video with no face anywhere is an error like an image without one; SIGTERM mid-video exits 143 and leaves no
temporary file or ffmpeg behind; a full disk is one sentence. Each case makes its bad file on the fly and checks
that nothing is left in the output folder."""

from __future__ import annotations

import errno
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from clipswap.cli import main
from clipswap.face.detection import NoFaceError
from clipswap.inference.pipeline import SwapRequest, run_swap
from clipswap.media.common import MediaError
from clipswap.media.video import VideoInfo, VideoReader, VideoWriter

from conftest import shared_data


class _Painter:
    """A stand-in swapper: one face per frame unless the frame is flat grey."""

    def set_source(self, source, number=None):
        pass

    def swap_frame(self, frame):
        return frame, int(frame.std() > 1)


def _video(path: Path, frames: int = 40, flat: bool = False) -> Path:
    rng = np.random.default_rng(0)
    with VideoWriter(path, VideoInfo((160, 120), 20.0, frames / 20.0, None), watermark=False) as writer:
        for _ in range(frames):
            writer.write(np.full((120, 160, 3), 90, np.uint8) if flat
                         else rng.integers(0, 255, (120, 160, 3), dtype=np.uint8))
    return path


def _source(folder: Path) -> Path:
    path = folder / "source.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(path)
    return path


def _leftovers(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir() if path.name.startswith("."))


def test_random_bytes_over_a_video_are_refused_then_allowed(tmp_path):
    clip = _video(tmp_path / "clip.mp4")
    data = bytearray(clip.read_bytes())
    third = len(data) // 3
    data[third:2 * third] = np.random.default_rng(2).integers(0, 256, third, dtype=np.uint8).tobytes()
    clip.write_bytes(bytes(data))
    out = tmp_path / "out"
    request = SwapRequest(source=_source(tmp_path), target=clip, output=out / "swapped.mp4", progress=False)
    with pytest.raises(MediaError, match="is damaged: ffmpeg reported .* decoding error.*--allow-damaged"):
        run_swap(request, swapper=_Painter())
    assert not (out / "swapped.mp4").exists() and (not out.exists() or not list(out.iterdir()))
    summary = run_swap(SwapRequest(source=request.source, target=clip, output=out / "swapped.mp4", progress=False,
                                   allow_damaged=True), swapper=_Painter())
    assert summary.decode_errors > 0 and "decoding error(s) in the damaged input" in summary.describe()
    assert (out / "swapped.mp4").is_file() and _leftovers(out) == []


def test_a_cut_off_video_is_refused(tmp_path):
    clip = _video(tmp_path / "clip.mp4")
    data = clip.read_bytes()
    clip.write_bytes(data[: int(0.75 * len(data))])
    with pytest.raises(MediaError):
        with VideoReader(clip) as reader:
            for _ in reader:
                pass


def test_an_intact_video_reports_no_damage(tmp_path):
    with VideoReader(_video(tmp_path / "clip.mp4")) as reader:
        assert sum(1 for _ in reader) == 40
        assert reader.decode_errors == []


def test_a_video_without_any_face_is_an_error(tmp_path):
    clip = _video(tmp_path / "wall.mp4", flat=True)
    out = tmp_path / "out"
    with pytest.raises(NoFaceError, match="no face to swap was found in any of the 40 frames"):
        run_swap(SwapRequest(source=_source(tmp_path), target=clip, output=out / "swapped.mp4", progress=False),
                 swapper=_Painter())
    assert not out.exists()


def test_disk_full_is_one_sentence(tmp_path, monkeypatch):
    face = shared_data("lfw", "Aaron_Sorkin", "Aaron_Sorkin_0001.jpg")

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", full)
    out = tmp_path / "swapped.png"
    result = CliRunner().invoke(main, ["swap", "-s", str(face), "-t", str(face), "-o", str(out), "--model",
                                       "landmarks"])
    assert result.exit_code == 1, result.output
    assert "No space left on device" in result.output and "free some space" in result.output
    assert "Traceback" not in result.output and "unexpected" not in result.output
    assert list(tmp_path.iterdir()) == []


def _ffmpeg_writing(fragment: str) -> list[int]:
    """PIDs of processes whose command line mentions `fragment`."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if fragment in (entry / "cmdline").read_bytes().decode("utf-8", "replace"):
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
@pytest.mark.slow
def test_sigterm_mid_video_leaves_nothing(tmp_path):
    clip = tmp_path / "clip.mp4"
    subprocess.run([__import__("imageio_ffmpeg").get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-i",
                    str(shared_data("video", "talking_head_1.mp4")), "-t", "6", "-c:v", "libx264", "-an",
                    str(clip)], check=True)
    out = tmp_path / "out"
    out.mkdir()
    face = shared_data("lfw", "Aaron_Sorkin", "Aaron_Sorkin_0001.jpg")
    process = subprocess.Popen([sys.executable, "-m", "clipswap.cli", "swap", "--no-progress", "-s", str(face), "-t",
                                str(clip), "-o", str(out / "swapped.mp4")],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not _leftovers(out) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.2)  # wait until the hidden temporary output exists: frames are being written
    assert _leftovers(out), "the swap never started writing"
    temporary = _leftovers(out)[0]
    time.sleep(1.0)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143, stderr
    assert "Terminated." in stderr and "Traceback" not in stderr
    time.sleep(0.5)
    assert list(out.iterdir()) == []
    assert _ffmpeg_writing(temporary) == [], "ffmpeg still writes the removed temporary file"


#: A child that writes a video to argv[1] until it is killed (the writer a swap uses, without a model to load).
_ENDLESS_WRITER = """
import sys
import numpy as np
from clipswap.media.video import VideoInfo, VideoWriter
with VideoWriter(sys.argv[1], VideoInfo((64, 48), 10.0, 1.0, None), watermark=False) as writer:
    while True:
        writer.write(np.zeros((48, 64, 3), np.uint8))
"""


def test_a_new_run_removes_the_partial_file_a_sigkilled_run_left(tmp_path):
    """SIGKILL cannot be trapped: the killed run's hidden temporary output stays. The next swap to the same output
    removes it (and leaves nothing else)."""
    out = tmp_path / "out"
    out.mkdir()
    child = subprocess.Popen([sys.executable, "-c", _ENDLESS_WRITER, str(out / "swapped.mp4")],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not _leftovers(out) and time.monotonic() < deadline and child.poll() is None:
        time.sleep(0.1)
    time.sleep(0.5)
    child.kill()
    child.wait()
    stale = _leftovers(out)
    assert len(stale) == 1 and stale[0].startswith(".swapped.clipswap-partial.") and stale[0].endswith(".mp4"), stale
    summary = run_swap(SwapRequest(source=_source(tmp_path), target=_video(tmp_path / "clip.mp4"),
                                   output=out / "swapped.mp4", progress=False), swapper=_Painter())
    assert summary.frames == 40
    assert sorted(path.name for path in out.iterdir()) == ["swapped.mp4"]


def test_audio_only_mp4_is_named_as_such(tmp_path):
    audio = tmp_path / "sound.mp4"
    subprocess.run([__import__("imageio_ffmpeg").get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-f",
                    "lavfi", "-i", "sine=frequency=440:duration=1", "-c:a", "aac", str(audio)], check=True)
    with pytest.raises(MediaError, match="holds no video stream"):
        VideoReader(audio)


def test_a_tiny_source_finds_no_face(tmp_path):
    """A 20 x 20 copy of a face photo: YuNet once returned a face with infinite coordinates, which crashed dlib."""
    face = Image.open(shared_data("lfw", "Aaron_Sorkin", "Aaron_Sorkin_0001.jpg")).resize((20, 20))
    face.save(tmp_path / "tiny.png")
    target = shared_data("lfw", "Aaron_Sorkin", "Aaron_Sorkin_0001.jpg")
    result = CliRunner().invoke(main, ["swap", "-s", str(tmp_path / "tiny.png"), "-t", str(target), "-o",
                                       str(tmp_path / "out.png"), "--model", "landmarks"])
    assert result.exit_code == 1
    assert "source image" in result.output and "unexpected" not in result.output
    assert not (tmp_path / "out.png").exists()


def test_binary_yaml_names_the_file(tmp_path):
    junk = tmp_path / "junk.yaml"
    junk.write_bytes(bytes(range(128, 256)) * 8)
    result = CliRunner().invoke(main, ["train", "--data", str(tmp_path), "--run-dir", str(tmp_path / "run"),
                                       "--preset", "tiny", "--config", str(junk), "--dry-run"])
    assert result.exit_code != 0
    assert f"{junk} is not a text (UTF-8) YAML file" in result.output
    assert not (tmp_path / "run").exists()


def test_info_refuses_a_checkpoint_that_would_not_load(tmp_path):
    from clipswap.checkpoints.native import init_generator
    from clipswap.config import get_preset

    path = tmp_path / "g.keras"
    init_generator(get_preset("tiny").model, path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    result = CliRunner().invoke(main, ["info", "--checkpoint", str(path), "--no-detector"])
    assert result.exit_code == 1 and "does not match the SHA-256" in result.output
