"""What a swapped video keeps of its input, on real clips cut from ../shared/data/video at test time: every frame's
presentation time (a variable-frame-rate phone-style mp4, GIFs with uneven delays and a long last frame), every
audio and subtitle stream the output container holds (or a warning naming what is left out), and a warning for a
16-bit PNG written with 8 bits. The swap runs the real pipeline (clipswap.inference.pipeline.run_swap) with a
stand-in swapper, so decoding, the background writer and the encoder are the ones a user runs; the checks read the
output with ffmpeg directly, not with the code under test."""

from __future__ import annotations

import logging
import re
import subprocess
from fractions import Fraction
from pathlib import Path

import cv2
import imageio_ffmpeg
import numpy as np
import pytest
from PIL import Image

from clipswap.inference.pipeline import SwapRequest, run_swap
from clipswap.media.images import read_image

from conftest import shared_data

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()


class _Painter:
    """A stand-in swapper: every frame has one face, and is returned as it came."""

    def set_source(self, source, number=None):
        pass

    def swap_frame(self, frame):
        return frame, 1


def _ffmpeg(*args: str) -> None:
    subprocess.run([FFMPEG, "-nostdin", "-v", "error", "-y", *args], check=True, capture_output=True)


def _talking_head() -> Path:
    return shared_data("video", "talking_head_1.mp4")


def _frame_times(path: Path) -> list[float]:
    """Each decoded frame's presentation time in seconds, as ffmpeg reports it (one decode, no resampling)."""
    text = subprocess.run([FFMPEG, "-nostdin", "-v", "error", "-i", str(path), "-map", "0:v:0", "-fps_mode",
                           "passthrough", "-enc_time_base", "demux", "-f", "framecrc", "-"],
                          capture_output=True, text=True, check=True).stdout
    base = Fraction(re.search(r"#tb 0: (\d+/\d+)", text).group(1))
    return [float(int(line.split(",")[2]) * base) for line in text.splitlines() if line.startswith("0,")]


def _streams(path: Path) -> list[str]:
    """The kind of every stream ffmpeg lists in the file ("Video", "Audio", "Subtitle", ...)."""
    text = subprocess.run([FFMPEG, "-nostdin", "-hide_banner", "-i", str(path)], capture_output=True,
                          text=True).stderr
    return re.findall(r"Stream #0:\d+[^:]*: (\w+):", text)


def _duration(path: Path) -> float:
    text = subprocess.run([FFMPEG, "-nostdin", "-hide_banner", "-i", str(path)], capture_output=True,
                          text=True).stderr
    hours, minutes, seconds = re.search(r"Duration: (\d+):(\d+):([\d.]+)", text).groups()
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def _swap(tmp_path: Path, target: Path, output: Path):
    source = tmp_path / "source.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(source)
    request = SwapRequest(source=source, target=target, output=output, progress=False, watermark=False)
    return run_swap(request, swapper=_Painter())


def _gif_delays(path: Path) -> list[int]:
    """Each GIF frame's delay in ms, as Pillow reads the file."""
    delays = []
    with Image.open(path) as picture:
        for index in range(picture.n_frames):
            picture.seek(index)
            delays.append(int(picture.info["duration"]))
    return delays


# ------------------------------------------------------------------------------------------------------ timing


def test_a_variable_frame_rate_video_keeps_every_frame_time_and_its_audio(tmp_path):
    """25 frames 40 ms apart, then 25 frames 100 ms apart, with a 4 s audio track (a phone-style recording)."""
    clip = tmp_path / "vfr.mp4"
    _ffmpeg("-i", str(_talking_head()), "-f", "lavfi", "-i", "sine=frequency=440:duration=4",
            "-map", "0:v:0", "-map", "1:a:0",
            "-vf", "trim=end_frame=50,scale=160:-2,setpts='if(lt(N,25),N*0.04,1+(N-25)*0.1)/TB'",
            "-fps_mode", "vfr", "-enc_time_base", "1/12800", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac",
            str(clip))
    before = _frame_times(clip)
    assert len(before) == 50 and before[25] - before[24] == pytest.approx(0.04, abs=1e-3)
    assert _duration(clip) == pytest.approx(4.0, abs=0.05)  # the audio outlasts the picture (3.5 s)
    output = tmp_path / "out.mp4"
    summary = _swap(tmp_path, clip, output)
    after = _frame_times(output)
    assert len(after) == len(before) == summary.frames
    assert np.abs(np.array(after) - np.array(before)).max() < 1e-3, (before, after)
    # The picture ends where the input's does (within its last frame), and the audio track is there.
    assert after[-1] == pytest.approx(before[-1], abs=1e-3)
    assert _duration(output) == pytest.approx(_duration(clip), abs=0.11)
    assert _streams(output) == ["Video", "Audio"]
    assert "variable frame rate" in summary.describe() and "each frame's time kept" in summary.describe()


def test_a_constant_rate_video_keeps_its_rate_and_frame_count(tmp_path):
    clip = tmp_path / "cfr.mp4"
    _ffmpeg("-i", str(_talking_head()), "-t", "1", "-vf", "scale=128:-2", "-c:v", "libx264", "-preset", "ultrafast",
            str(clip))
    output = tmp_path / "out.mp4"
    summary = _swap(tmp_path, clip, output)
    before, after = _frame_times(clip), _frame_times(output)
    assert len(after) == len(before) == 25
    assert np.abs(np.array(after) - np.array(before)).max() < 1e-3
    assert "constant 25 fps" in summary.describe()


@pytest.mark.parametrize("delays", [[40, 80] * 5, [100] * 9 + [2000]], ids=["40-80 ms", "2000 ms last frame"])
def test_a_gif_keeps_every_frame_delay(tmp_path, delays):
    frames = []
    with VideoFrames(_talking_head(), len(delays)) as pictures:
        frames = [Image.fromarray(picture).resize((96, 96)) for picture in pictures]
    clip = tmp_path / "clip.gif"
    frames[0].save(clip, save_all=True, append_images=frames[1:], duration=delays, loop=0)
    assert _gif_delays(clip) == delays
    output = tmp_path / "out.gif"
    _swap(tmp_path, clip, output)
    assert _gif_delays(output) == delays


class VideoFrames:
    """The first `count` frames of a clip as RGB arrays, decoded by ffmpeg (the GIFs' pictures)."""

    def __init__(self, path: Path, count: int):
        self.reader = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
        meta = next(self.reader)
        self.size = meta["size"]
        self.count = count

    def __enter__(self):
        width, height = self.size
        return [np.frombuffer(next(self.reader), np.uint8).reshape(height, width, 3) for _ in range(self.count)]

    def __exit__(self, *exc):
        self.reader.close()


# ----------------------------------------------------------------------------------------------------- streams


@pytest.fixture(scope="module")
def two_audio_and_subtitles(tmp_path_factory) -> Path:
    """An mkv of 2 s of talking_head_1: its picture, two audio tracks (440 and 660 Hz, English and Spanish) and an
    SRT subtitle track."""
    folder = tmp_path_factory.mktemp("streams")
    subtitles = folder / "subs.srt"
    subtitles.write_text("1\n00:00:00,000 --> 00:00:01,000\nHello\n\n2\n00:00:01,000 --> 00:00:02,000\nWorld\n")
    clip = folder / "clip.mkv"
    _ffmpeg("-i", str(_talking_head()), "-f", "lavfi", "-i", "sine=frequency=440:duration=2",
            "-f", "lavfi", "-i", "sine=frequency=660:duration=2", "-i", str(subtitles),
            "-map", "0:v:0", "-map", "1:a", "-map", "2:a", "-map", "3:s", "-t", "2", "-vf", "scale=128:-2",
            "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-c:s", "srt",
            "-metadata:s:a:0", "language=eng", "-metadata:s:a:1", "language=spa", str(clip))
    assert _streams(clip) == ["Video", "Audio", "Audio", "Subtitle"]
    return clip


@pytest.mark.parametrize("suffix", [".mkv", ".mp4", ".mov"])
def test_every_audio_and_subtitle_stream_is_copied(tmp_path, two_audio_and_subtitles, suffix, caplog):
    output = tmp_path / f"out{suffix}"
    with caplog.at_level(logging.WARNING):
        summary = _swap(tmp_path, two_audio_and_subtitles, output)
    assert _streams(output) == ["Video", "Audio", "Audio", "Subtitle"]
    assert "2 audio and 1 subtitle stream(s) copied" in summary.describe()
    assert "left out" not in caplog.text
    text = subprocess.run([FFMPEG, "-hide_banner", "-i", str(output)], capture_output=True, text=True).stderr
    assert "(eng)" in text and "(spa)" in text  # the tracks keep their languages


def test_an_output_that_cannot_hold_the_streams_says_which_are_left_out(tmp_path, two_audio_and_subtitles, caplog):
    output = tmp_path / "out.gif"
    with caplog.at_level(logging.WARNING):
        summary = _swap(tmp_path, two_audio_and_subtitles, output)
    assert _streams(output) == ["Video"]
    warnings = [r.getMessage() for r in caplog.records if "left out" in r.getMessage()]
    assert len(warnings) == 1 and "2 audio (aac, aac) and 1 subtitle (subrip) stream(s)" in warnings[0], warnings
    assert "left out: 2 audio (aac, aac) and 1 subtitle (subrip) stream(s)" in summary.describe()


# --------------------------------------------------------------------------------------------------- bit depth


@pytest.mark.parametrize("bits", [8, 16])
def test_a_16_bit_png_is_read_with_a_warning_that_the_output_has_8(tmp_path, caplog, bits):
    picture = np.random.default_rng(0).integers(0, 255, (32, 48, 3), dtype=np.uint8)
    path = tmp_path / "deep.png"
    cv2.imwrite(str(path), picture.astype(np.uint16) * 257 if bits == 16 else picture)
    with caplog.at_level(logging.WARNING):
        image = read_image(path)
    assert image.dtype == np.uint8 and image.shape == (32, 48, 3)
    warned = "16 bits per channel; the swap works in 8 bits and is written with 8" in caplog.text
    assert warned == (bits == 16), caplog.text


def test_the_writer_gives_back_irregular_frame_times(tmp_path):
    """A phone's jittery timing: every interval different (300 frames, 150 runs of the timing filter's tree)."""
    from clipswap.media.timing import FrameTimes
    from clipswap.media.video import VideoInfo, VideoWriter

    rng = np.random.default_rng(3)
    ticks = np.concatenate([[0], np.cumsum(rng.integers(300, 700, 299))]).astype(int)  # 1/12800 s: 23-55 ms
    times = FrameTimes(Fraction(1, 12800), tuple(int(t) for t in ticks), 512)
    output = tmp_path / "jitter.mp4"
    with VideoWriter(output, VideoInfo((32, 32), 25.0, 0.0, None, times), watermark=False) as writer:
        for index in range(300):
            writer.write(np.full((32, 32, 3), index % 256, np.uint8))
    written = _frame_times(output)
    assert len(written) == 300
    assert np.abs(np.array(written) - ticks / 12800).max() < 1e-4


@pytest.mark.parametrize("pixel_format", ["yuv420p", "yuv420p10le"])
def test_a_10_bit_video_is_read_with_a_warning_that_the_output_has_8(tmp_path, caplog, pixel_format):
    from clipswap.media.video import VideoReader

    clip = tmp_path / "deep.mp4"
    _ffmpeg("-i", str(_talking_head()), "-t", "0.2", "-vf", "scale=64:64", "-c:v", "libx264", "-pix_fmt",
            pixel_format, str(clip))
    with caplog.at_level(logging.WARNING), VideoReader(clip) as reader:
        assert sum(1 for _ in reader) == 5
    warned = "10 bits per channel; the swap works in 8 bits and is written with 8" in caplog.text
    assert warned == (pixel_format == "yuv420p10le"), caplog.text


@pytest.mark.parametrize(("pixel_format", "bits"), [
    ("yuv420p", None), ("rgb24", None), ("yuv420p10le", 10), ("p010le", 10), ("yuv444p12le", 12),
    ("gray16le", 16), ("rgb48le", 16), ("rgba64be", 16), ("rgb565le", 6), ("x2rgb10le", 10),
])
def test_bits_per_channel_reads_the_pixel_format_name(pixel_format, bits):
    """Packed RGB names count the bits of a whole pixel (rgb48le is 16 a channel, not 48) or one digit a channel."""
    from clipswap.media.video import bits_per_channel

    assert bits_per_channel(f"  Stream #0:0[0x1](und): Video: h264 (High 10), {pixel_format}(tv, progressive), "
                            "64x64, 25 fps") == bits
