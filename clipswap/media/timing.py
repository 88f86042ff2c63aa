"""Frame timing of a video: when each decoded frame is shown, read from ffmpeg, and the ffmpeg filter that gives the
written frames those same times.

A swap keeps every frame's presentation time instead of resampling the video to a constant rate: phone recordings
are variable-frame-rate and GIF frames have delays of their own, and a constant-rate output either duplicates and
drops frames (a swapped face stutters) or, written at the average rate, drifts out of sync with the audio. The
reader decodes each frame once (`-fps_mode passthrough`); `frame_times` reads their timestamps from one decode of
the stream, and `timing_filter` is the `settb,setpts` chain that puts frame N of the writer's input at the N-th
time again.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction


@dataclass(frozen=True)
class FrameTimes:
    """Presentation times of the decoded frames of a video stream.

    Attributes:
        time_base: seconds per tick (the stream's own time base, e.g. 1/12800).
        ticks: each frame's presentation time in ticks, measured from the file's start (so the picture keeps its
            place against audio measured the same way), in decoding output order (increasing).
        last_ticks: how long the last frame is shown, in ticks (GIF: its delay).
    """

    time_base: Fraction
    ticks: tuple[int, ...]
    last_ticks: int

    @property
    def duration(self) -> float:
        """From the first frame's start to the last frame's end, in seconds."""
        if not self.ticks:
            return 0.0
        return float((self.ticks[-1] - self.ticks[0] + self.last_ticks) * self.time_base)

    @property
    def intervals(self) -> list[float]:
        """Seconds between consecutive frames, then the last frame's duration."""
        steps = [b - a for a, b in zip(self.ticks, self.ticks[1:], strict=False)] + [self.last_ticks]
        return [float(step * self.time_base) for step in steps]

    @property
    def variable(self) -> bool:
        """True when frame intervals differ by more than a millisecond (variable frame rate, GIF delays)."""
        steps = self.intervals[:-1] or self.intervals
        return max(steps) - min(steps) > 1e-3


#: One frame line of ffmpeg's framecrc muxer: stream, dts, pts, duration, size, checksum.
_FRAME_LINE = re.compile(r"^\s*0,\s*(-?\d+),\s*(-?\d+),\s*(-?\d+),")
_TIME_BASE = re.compile(r"#tb 0: (\d+)/(\d+)")


def frame_times(framecrc: Iterable[str], start_seconds: float = 0.0) -> FrameTimes | None:
    """The frame times in the output of `ffmpeg -i FILE -map 0:v:0 -fps_mode passthrough -enc_time_base demux -f
    framecrc -` (one line a decoded frame, in the stream's time base), read line by line (a text or an open text
    stream: the listing of a long video is never held whole); `start_seconds` is the file's start time, subtracted
    so that times count from the file's start as ffmpeg counts every other stream's. None when it holds no frame."""
    lines = framecrc.splitlines() if isinstance(framecrc, str) else framecrc
    time_base: Fraction | None = None
    offset = 0
    ticks: list[int] = []
    last = 0
    for line in lines:
        if time_base is None:
            match = _TIME_BASE.match(line)
            if match is not None:
                time_base = Fraction(int(match.group(1)), int(match.group(2)))
                offset = round(Fraction(start_seconds) / time_base)
            continue
        match = _FRAME_LINE.match(line)
        if match is None:
            continue
        # Times are made strictly increasing: a muxer refuses a timestamp that does not grow.
        ticks.append(max(int(match.group(2)) - offset, 0 if not ticks else ticks[-1] + 1))
        last = int(match.group(3))
    if time_base is None or not ticks:
        return None
    if last <= 0:
        last = ticks[-1] - ticks[-2] if len(ticks) > 1 else max(1, round(Fraction(1, 25) / time_base))
    return FrameTimes(time_base, tuple(ticks), last)


def _segments(ticks: tuple[int, ...], last_step: int) -> list[tuple[int, int, int]]:
    """(first frame index, its tick, ticks per frame) of each run of equally spaced frames; a last frame alone in
    its run is spaced by `last_step`."""
    segments = []
    index = 0
    while index < len(ticks):
        step = ticks[index + 1] - ticks[index] if index + 1 < len(ticks) else last_step
        end = index + 1
        while end < len(ticks) and ticks[end] - ticks[end - 1] == step:
            end += 1
        segments.append((index, ticks[index], step))
        index = end
    return segments


def _expression(segments: list[tuple[int, int, int]]) -> str:
    """A balanced if-tree over the frame number N: each frame's tick, in O(log segments) comparisons a frame."""
    if len(segments) == 1:
        first, tick, step = segments[0]
        return f"{tick}+(N-{first})*{step}"
    middle = len(segments) // 2
    return (f"if(lt(N,{segments[middle][0]}),{_expression(segments[:middle])},"
            f"{_expression(segments[middle:])})")


def timing_filter(times: FrameTimes) -> str:
    """The ffmpeg video filter that gives frame N of a constant-rate input the time `times.ticks[N]` (frames past
    the last keep the last frame's spacing). A constant-rate video is one run, so the filter stays a line long; a
    variable one grows with its number of rate changes (hence a filter file, not an argument)."""
    return (f"settb={times.time_base.numerator}/{times.time_base.denominator},"
            f"setpts='{_expression(_segments(times.ticks, times.last_ticks))}'")
