"""Which streams an output keeps (clipswap.media.streams) and that ffmpeg accepts the plan: an mp4's mov_text
subtitles, which Matroska cannot hold as they are, go into an mkv as SubRip instead of failing the write."""

from __future__ import annotations

import re
import subprocess

import imageio_ffmpeg
import numpy as np
import pytest

from clipswap.media.streams import Stream, plan_streams
from clipswap.media.video import VideoReader, VideoWriter

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()

_MP4_STREAMS = [Stream(1, "audio", "aac"), Stream(2, "subtitle", "mov_text"), Stream(3, "data", "bin_data")]


def test_an_mkv_copies_audio_and_converts_mov_text_subtitles_to_subrip():
    plan = plan_streams(_MP4_STREAMS, ".mkv")
    assert [s.index for s in plan.kept] == [1, 2] and [s.index for s in plan.left_out] == [3]
    assert list(plan.ffmpeg_args) == ["-map", "1:1", "-map", "1:2", "-c:1", "copy", "-c:2", "srt"]


def test_each_container_keeps_what_it_can_hold_and_names_the_rest():
    pgs = Stream(4, "subtitle", "hdmv_pgs_subtitle")
    mp4 = plan_streams([*_MP4_STREAMS, pgs], ".MP4")
    assert list(mp4.ffmpeg_args) == ["-map", "1:1", "-map", "1:2", "-c:1", "aac", "-c:2", "mov_text"]
    assert mp4.describe_left_out() == "1 subtitle (hdmv_pgs_subtitle) and 1 data (bin_data) stream(s)"
    assert [s.index for s in plan_streams([*_MP4_STREAMS, pgs], ".mkv").kept] == [1, 2, 4]
    captions = Stream(5, "subtitle", "eia_608")  # a camera mov's closed captions: a bitmap-like stream
    assert plan_streams([captions], ".mkv").left_out == (captions,) == plan_streams([captions], ".mp4").left_out
    gif = plan_streams(_MP4_STREAMS, ".gif")
    assert gif.kept == () and gif.ffmpeg_args == () and gif.describe_kept() == "no audio"


def test_an_mp4_with_audio_and_mov_text_subtitles_written_as_mkv_keeps_both(tmp_path):
    subtitles = tmp_path / "subs.srt"
    subtitles.write_text("1\n00:00:00,000 --> 00:00:00,500\nHello\n\n")
    clip = tmp_path / "clip.mp4"
    subprocess.run([FFMPEG, "-nostdin", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=64x48:rate=10:duration=1",
                    "-f", "lavfi", "-i", "sine=duration=1", "-i", str(subtitles), "-map", "0", "-map", "1", "-map",
                    "2", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-c:s", "mov_text", str(clip)],
                   check=True, capture_output=True)
    output = tmp_path / "out.mkv"
    with VideoReader(clip) as reader, VideoWriter(output, reader.info, streams_from=clip, watermark=False) as writer:
        for frame in reader:
            writer.write(frame)
    text = subprocess.run([FFMPEG, "-hide_banner", "-i", str(output)], capture_output=True, text=True).stderr
    assert re.findall(r"Stream #0:\d+[^:]*: (\w+): (\w+)", text) == [("Video", "h264"), ("Audio", "aac"),
                                                                     ("Subtitle", "subrip")], text
    assert writer.frames_written == 10 and sorted(p.name for p in tmp_path.iterdir()) == [
        "clip.mp4", "out.mkv", "subs.srt"]


def test_a_failed_start_leaves_no_partial_file(tmp_path, monkeypatch):
    """Whatever stops the writer before ffmpeg runs (here the timing filter), nothing stays beside the output."""
    import clipswap.media.video as video

    clip = tmp_path / "clip.mp4"
    subprocess.run([FFMPEG, "-nostdin", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=64x48:rate=10:duration=1",
                    "-c:v", "libx264", "-preset", "ultrafast", str(clip)], check=True, capture_output=True)

    def broken(times):
        raise ValueError("a broken filter")

    monkeypatch.setattr(video, "timing_filter", broken)
    with VideoReader(clip) as reader:
        info = reader.info
    with pytest.raises(ValueError, match="a broken filter"), VideoWriter(tmp_path / "out.mp4", info,
                                                                       watermark=False) as writer:
        writer.write(np.zeros((48, 64, 3), np.uint8))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]
