"""Media I/O (clipswap.media): labelled images, streamed video round trips keeping fps, duration and audio."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
from PIL import Image

from clipswap.media.common import MediaError, media_kind
from clipswap.media.images import read_image, write_image
from clipswap.media.labels import label_gif, read_label
from clipswap.media.video import VideoReader, VideoWriter

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()


def make_clip(path: Path, seconds: float = 1.0, fps: int = 25, size: str = "96x64", audio: bool = True) -> Path:
    """A test-pattern video, with a 440 Hz sine tone muxed in when `audio`."""
    command = [FFMPEG, "-y", "-v", "error", "-f", "lavfi", "-i", f"testsrc=duration={seconds}:size={size}:rate={fps}"]
    if audio:
        command += ["-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}", "-c:a", "aac", "-shortest"]
    odd = any(int(side) % 2 for side in size.split("x"))  # 4:2:0 needs even sides
    command += ["-c:v", "libx264", "-pix_fmt", "yuv444p" if odd else "yuv420p", str(path)]
    subprocess.run(command, check=True, capture_output=True)
    return path


def probe(path: Path) -> dict:
    """Frame count (decoded), fps, duration and whether an audio stream exists, from ffmpeg's own report."""
    frames, seconds = imageio_ffmpeg.count_frames_and_secs(str(path))
    text = subprocess.run([FFMPEG, "-hide_banner", "-i", str(path)], capture_output=True, text=True).stderr
    fps = float(re.search(r"([\d.]+) fps", text).group(1))
    return {"frames": frames, "seconds": seconds, "fps": fps, "audio": "Audio:" in text}


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp"])
def test_image_round_trip_carries_the_label(tmp_path, suffix):
    image = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    image[:, :15] = (255, 0, 0)  # a red block checks the colour order
    path = write_image(image, tmp_path / f"out{suffix}")
    back = read_image(path)
    assert back.shape == image.shape
    if suffix == ".png":
        assert np.array_equal(back, image)
    assert back[10, 5, 0] > 200 and back[10, 5, 2] < 60
    label = read_label(path)
    assert label is not None and "clipswap" in label and "ynthetic" in label
    assert [p.name for p in tmp_path.iterdir()] == [f"out{suffix}"]  # no temporary left behind


def test_unsupported_and_unreadable_inputs(tmp_path):
    with pytest.raises(MediaError, match="unsupported type"):
        media_kind(tmp_path / "notes.txt")
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg at all")
    with pytest.raises(MediaError, match="cannot be read as an image"):
        read_image(broken)
    with pytest.raises(MediaError, match="does not exist"):
        read_image(tmp_path / "missing.png")
    fake_video = tmp_path / "broken.mp4"
    fake_video.write_bytes(b"\x00" * 100)
    with pytest.raises(MediaError, match="cannot be read as a video"):
        VideoReader(fake_video)


@pytest.mark.parametrize("audio", [True, False])
def test_video_round_trip_keeps_frames_fps_duration_and_audio(tmp_path, audio):
    source = make_clip(tmp_path / "in.mp4", seconds=1.2, audio=audio)
    output = tmp_path / "out.mp4"
    with VideoReader(source) as reader, VideoWriter(output, reader.info, source) as writer:
        assert reader.info.size == (96, 64) and reader.info.fps == 25.0
        assert (reader.info.audio_codec is not None) == audio
        for frame in reader:
            assert frame.shape == (64, 96, 3) and frame.dtype == np.uint8
            writer.write(frame)
    before, after = probe(source), probe(output)
    assert after["frames"] == before["frames"] == 30
    assert after["fps"] == before["fps"]
    assert abs(after["seconds"] - before["seconds"]) < 0.05
    assert after["audio"] == audio
    assert "clipswap" in (read_label(output) or "")
    # Pixels survive the re-encode closely (quality 8 ~ CRF 10).
    with VideoReader(source) as a, VideoReader(output) as b:
        first_a, first_b = next(iter(a)), next(iter(b))
    assert np.abs(first_a.astype(int) - first_b.astype(int)).mean() < 3


@pytest.mark.parametrize("suffix", [".webm", ".gif", ".mkv"])
def test_other_containers(tmp_path, suffix):
    source = make_clip(tmp_path / "in.mp4", seconds=0.4, audio=True)
    output = tmp_path / f"out{suffix}"
    with VideoReader(source) as reader, VideoWriter(output, reader.info, source) as writer:
        for frame in reader:
            writer.write(frame)
    result = probe(output)
    assert result["frames"] == 10
    assert result["audio"] == (suffix != ".gif")
    label = read_label(output)
    assert label is not None and "clipswap" in label and "ynthetic video" in label
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["in.mp4", f"out{suffix}"])


def _gif_frames(path: Path) -> list[np.ndarray]:
    with Image.open(path) as picture:
        frames = []
        for index in range(picture.n_frames):
            picture.seek(index)
            frames.append(np.asarray(picture.convert("RGB")))
        return frames


@pytest.mark.parametrize("count", [3, 1])
def test_gif_label_is_spliced_in_without_touching_the_frames(tmp_path, count):
    rng = np.random.default_rng(1)
    frames = [Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)).quantize(16) for _ in range(count)]
    path = tmp_path / "plain.gif"
    if count > 1:  # GIF89a with a NETSCAPE2.0 loop block before the first frame
        frames[0].save(path, save_all=True, append_images=frames[1:], loop=0, duration=80)
    else:  # one plain frame: Pillow writes GIF87a, which has no extensions
        frames[0].save(path)
        assert path.read_bytes()[:6] == b"GIF87a"
    before = _gif_frames(path)
    assert read_label(path) is None
    text = "Synthetic video: clipswap test label " + "x" * 300  # longer than one 255-byte sub-block
    label_gif(path, text)
    assert path.read_bytes()[:6] == b"GIF89a"
    assert read_label(path) == text
    after = _gif_frames(path)
    assert len(after) == count and all(np.array_equal(a, b) for a, b in zip(before, after, strict=True))
    if count > 1:
        with Image.open(path) as picture:
            assert picture.info.get("loop") == 0  # the NETSCAPE loop block survived
    assert imageio_ffmpeg.count_frames_and_secs(str(path))[0] == count
    assert [p.name for p in tmp_path.iterdir()] == ["plain.gif"]


def test_gif_label_refuses_a_file_that_is_not_a_gif(tmp_path):
    fake = tmp_path / "fake.gif"
    fake.write_bytes(b"\x89PNG not a gif")
    with pytest.raises(MediaError, match="not a GIF"):
        label_gif(fake)
    assert fake.read_bytes() == b"\x89PNG not a gif"
    assert [p.name for p in tmp_path.iterdir()] == ["fake.gif"]


def test_odd_frame_size_is_kept(tmp_path):
    source = make_clip(tmp_path / "in.mp4", seconds=0.2, size="95x63", audio=False)
    output = tmp_path / "out.mp4"
    with VideoReader(source) as reader, VideoWriter(output, reader.info) as writer:
        for frame in reader:
            writer.write(frame)
    with VideoReader(output) as reader:
        assert reader.info.size == (95, 63)


def test_failed_video_write_leaves_nothing(tmp_path):
    source = make_clip(tmp_path / "in.mp4", seconds=0.2, audio=False)
    output = tmp_path / "out.mp4"
    with pytest.raises(ValueError, match="frames must be"):
        with VideoReader(source) as reader, VideoWriter(output, reader.info) as writer:
            writer.write(np.zeros((10, 10, 3), np.uint8))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


def cut_in_half(path: Path, faststart: bool) -> Path:
    """A 4 s clip cut after half its bytes: with the index at the front (faststart) ffmpeg decodes the first part
    and stops quietly; with the index at the end the file does not open at all."""
    whole = path.with_name(f"whole_{path.name}")
    command = [FFMPEG, "-y", "-v", "error", "-f", "lavfi", "-i", "testsrc=duration=4:size=160x120:rate=25",
               "-c:v", "libx264", "-pix_fmt", "yuv420p"] + (["-movflags", "+faststart"] if faststart else [])
    subprocess.run(command + [str(whole)], check=True, capture_output=True)
    data = whole.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    whole.unlink()
    return path


@pytest.mark.parametrize("faststart", [True, False])
def test_truncated_video_is_a_media_error_and_leaves_no_output(tmp_path, faststart):
    source = cut_in_half(tmp_path / "cut.mp4", faststart)
    output = tmp_path / "out.mp4"
    with pytest.raises(MediaError, match="truncated or corrupt" if faststart else "cannot be read as a video"):
        with VideoReader(source) as reader, VideoWriter(output, reader.info) as writer:
            for frame in reader:
                writer.write(frame)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.mp4"]


def test_ffmpeg_failures_mid_stream_become_media_errors(tmp_path):
    source = make_clip(tmp_path / "in.mp4", seconds=0.2, audio=False)
    output = tmp_path / "out.mp4"

    def failing_frames(frames):
        yield next(frames)
        raise RuntimeError("Could not read frame 2:\nEnd of file reached\n=== stderr ===\nInvalid NAL unit size")

    with pytest.raises(MediaError, match=r"past frame 1 \(Invalid NAL unit size\)"):
        with VideoReader(source) as reader, VideoWriter(output, reader.info) as writer:
            reader._frames = failing_frames(reader._frames)
            for frame in reader:
                writer.write(frame)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]

    # The encoder dies (a full disk, a missing encoder): the next frame meets a broken pipe.
    with pytest.raises(MediaError, match="failed at frame 1 .*disk space"):
        with VideoReader(source) as reader, VideoWriter(output, reader.info) as writer:
            writer._process.kill()
            writer._process.wait()
            writer.write(next(iter(reader)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]
