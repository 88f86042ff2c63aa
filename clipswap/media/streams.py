"""The streams of an input video besides its picture (audio, subtitles, data, attachments) and which of them an
output container can carry: the writer copies every one it can and names, in one warning, each one it leaves out.

What each output keeps (ffmpeg's muxers decide what fits):

    mkv         every audio and attachment stream, copied as they are; every subtitle stream Matroska holds
                (SubRip, ASS, WebVTT, DVD, PGS, DVB) copied, other text subtitles (mp4's mov_text) as SubRip;
                not other bitmap subtitles (a mov's EIA-608 captions)
    mp4, mov    every audio stream (AAC), every text subtitle stream (mov_text); not bitmap subtitles (DVD, PGS)
    webm        every audio stream (Opus), every text subtitle stream (WebVTT); not bitmap subtitles
    gif         nothing: a GIF holds pictures only

Data streams (camera metadata, timecodes) and further video streams (cover pictures, other angles) are left out
of every output, with the warning.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: Subtitle codecs that are text, so any container's text format can take them; the others are pictures.
TEXT_SUBTITLES = frozenset({"subrip", "srt", "ass", "ssa", "webvtt", "mov_text", "text", "microdvd", "subviewer",
                            "jacosub", "sami", "realtext", "mpl2", "pjs", "vplayer", "stl"})

#: Per output suffix: the ffmpeg codec each kept stream kind is written with ("copy": as it is).
_CODECS: dict[str, dict[str, str]] = {
    ".mkv": {"audio": "copy", "subtitle": "copy", "attachment": "copy"},
    ".mp4": {"audio": "aac", "subtitle": "mov_text"},
    ".mov": {"audio": "aac", "subtitle": "mov_text"},
    ".webm": {"audio": "libopus", "subtitle": "webvtt"},
    ".gif": {},
}

_STREAM_LINE = re.compile(r"Stream #0:(\d+)[^:]*: (Video|Audio|Subtitle|Data|Attachment): ?(\w*)")


@dataclass(frozen=True)
class Stream:
    """One stream of the input: its index in the file, its kind ("video", "audio", "subtitle", "data",
    "attachment") and codec name."""

    index: int
    kind: str
    codec: str


def input_streams(probe_text: str) -> list[Stream]:
    """Every stream that `ffmpeg -i FILE` lists, in file order, once each."""
    streams: dict[int, Stream] = {}
    for index, kind, codec in _STREAM_LINE.findall(probe_text):
        streams.setdefault(int(index), Stream(int(index), kind.lower(), codec or "unknown"))
    return [streams[index] for index in sorted(streams)]


@dataclass(frozen=True)
class StreamPlan:
    """What a writer does with the input's other streams: `kept` goes into the output with `ffmpeg_args`; `left_out`
    does not fit the output container."""

    kept: tuple[Stream, ...]
    left_out: tuple[Stream, ...]
    ffmpeg_args: tuple[str, ...]

    def describe_kept(self) -> str:
        """e.g. "2 audio and 1 subtitle stream(s)", "no audio"."""
        return _count(self.kept) or "no audio"

    def describe_left_out(self) -> str:
        """e.g. "1 subtitle stream(s) (hdmv_pgs_subtitle)"."""
        return _count(self.left_out, codecs=True)


def _count(streams: tuple[Stream, ...], codecs: bool = False) -> str:
    parts = []
    for kind in ("audio", "subtitle", "attachment", "data", "video"):
        of_kind = [s for s in streams if s.kind == kind]
        if of_kind:
            names = f" ({', '.join(s.codec for s in of_kind)})" if codecs else ""
            label = "other video" if kind == "video" else kind
            parts.append(f"{len(of_kind)} {label}{names}")
    if not parts:
        return ""
    text = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return f"{text} stream(s)"


#: Subtitle codecs Matroska holds as they are; another text subtitle goes in as SubRip, another bitmap one not at
#: all (ffmpeg's matroska muxer refuses it, which would fail the whole write at its end).
MATROSKA_SUBTITLES = frozenset({"subrip", "srt", "ass", "ssa", "webvtt", "dvd_subtitle", "hdmv_pgs_subtitle",
                                "dvb_subtitle", "arib_caption"})


def _fits(stream: Stream, codecs: dict[str, str]) -> bool:
    """Whether an output whose kept kinds are `codecs` (a _CODECS row) can hold `stream`."""
    if stream.kind not in codecs:
        return False
    if stream.kind != "subtitle":
        return True
    return stream.codec in TEXT_SUBTITLES or (codecs["subtitle"] == "copy" and stream.codec in MATROSKA_SUBTITLES)


def _codec(stream: Stream, codecs: dict[str, str]) -> str:
    """The ffmpeg codec a stream that fits (see _fits) is written with."""
    if stream.kind == "subtitle" and codecs["subtitle"] == "copy" and stream.codec not in MATROSKA_SUBTITLES:
        return "srt"
    return codecs[stream.kind]


def plan_streams(streams: list[Stream], suffix: str) -> StreamPlan:
    """Which of `streams` (the input's, its first video stream excluded by the caller) an output with `suffix` keeps,
    and the ffmpeg arguments that map them from the writer's second input (1, the source file) and choose each one's
    codec (by its output stream index: the kept streams follow the video, output stream 0)."""
    suffix = suffix.lower()
    codecs = _CODECS.get(suffix, {})
    kept, left_out = [], []
    for stream in streams:
        (kept if _fits(stream, codecs) else left_out).append(stream)
    args: list[str] = []
    for stream in kept:
        args += ["-map", f"1:{stream.index}"]
    for position, stream in enumerate(kept, start=1):
        args += [f"-c:{position}", _codec(stream, codecs)]
    return StreamPlan(tuple(kept), tuple(left_out), tuple(args))
