"""Videos as a stream of frames: mp4, mov, mkv, webm, gif, decoded and encoded by the ffmpeg binary of imageio-ffmpeg
one frame at a time (never the whole video in memory).

What a written video keeps of its input: every frame's presentation time (variable frame rates and GIF delays
included, clipswap.media.timing: the reader decodes each frame once, the writer gives it its time back), every
audio and subtitle stream the output container can hold (clipswap.media.streams; one warning names any stream left
out), the size. The writer labels the file (clipswap.media.labels) and watermarks every frame
(clipswap.media.watermark); every write goes to a temporary file beside the destination, renamed on success.
"""

from __future__ import annotations

import contextlib
import logging
import re
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import imageio_ffmpeg
import numpy as np

from clipswap.atomic import atomic_path
from clipswap.media import watermark as watermarking
from clipswap.media.common import MediaError, check_pixels, media_kind, probe
from clipswap.media.labels import LABEL, label_gif
from clipswap.media.streams import Stream, StreamPlan, input_streams, plan_streams
from clipswap.media.timing import FrameTimes, frame_times, timing_filter

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VideoInfo:
    """What the pipeline needs to know about an input video."""

    size: tuple[int, int]  # (width, height)
    fps: float
    duration: float
    audio_codec: str | None
    #: When each decoded frame is shown (None: unknown, the writer then writes `fps` constant-rate).
    times: FrameTimes | None = None
    #: The input's streams besides the first video stream (audio, subtitles, ...), which the writer copies.
    streams: tuple[Stream, ...] = ()

    @property
    def frame_estimate(self) -> int:
        if self.times is not None:
            return len(self.times.ticks)
        return max(1, round(self.fps * self.duration))

    def describe_timing(self) -> str:
        """How the frames are timed, for a run's summary."""
        if self.times is None:
            return f"constant {self.fps:g} fps"
        intervals = self.times.intervals
        if self.times.variable:
            return (f"variable frame rate ({1 / max(intervals):.3g}-{1 / min(intervals):.3g} fps), each frame's time "
                    "kept")
        text = f"constant {1 / intervals[0]:.4g} fps, each frame's time kept"
        if abs(intervals[-1] - intervals[0]) > 1e-3:
            text += f" (the last frame shown {intervals[-1]:.2f} s)"
        return text


def _last_line(error: BaseException) -> str:
    """The last non-empty line of an imageio-ffmpeg error (ffmpeg's own verdict comes last in its stderr dump)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else "ffmpeg failed"


def _has_video_stream(path: Path) -> bool:
    """Whether ffmpeg lists a video stream in the file (True when it cannot tell: the caller's error then stands)."""
    streams = re.findall(r"Stream #\d+:\d+.*?: (\w+):", probe(path))
    return not streams or "Video" in streams


def _start_seconds(probe_text: str) -> float:
    """The file's start time (`start: X` of ffmpeg's Duration line), 0 when it says none."""
    match = re.search(r"Duration: [^,]*, start: (-?[\d.]+)", probe_text)
    return float(match.group(1)) if match else 0.0


_PIXEL_FORMAT = re.compile(r"Stream #0:\d+[^:]*: Video: [^\n]*?, ([a-z]+[a-z0-9]*?)(\d+)(?:le|be)\b")
#: Packed RGB formats, whose number is the bits of a whole pixel (rgb48le: 3 x 16) or of each channel (rgb565le),
#: with their channel count.
_PACKED_CHANNELS = {"rgb": 3, "bgr": 3, "rgba": 4, "bgra": 4, "argb": 4, "abgr": 4, "rgbx": 4, "bgrx": 4}


def bits_per_channel(probe_text: str) -> int | None:
    """Bits per channel of the first video stream in ffmpeg's description of a file, from its pixel format's name
    (yuv420p10le: 10, rgb48le: 16, rgb565le: 6); None for a format without a bit count in its name (yuv420p,
    rgb24: 8 bits)."""
    match = _PIXEL_FORMAT.search(probe_text)
    if match is None:
        return None
    name, digits = match.group(1), match.group(2)
    channels = _PACKED_CHANNELS.get(name)
    if channels is None:
        return int(digits)
    if len(digits) == channels:  # rgb565le, bgr444be: one digit a channel
        return max(int(digit) for digit in digits)
    return int(digits) // channels


#: Decode options of the reader and of its scan: the first video stream, each decoded frame exactly once at its
#: own time (without it ffmpeg resamples a variable-rate stream to a constant rate, duplicating frames).
_DECODE_OPTIONS = ["-map", "0:v:0", "-fps_mode", "passthrough"]


class VideoReader:
    """Iterate the frames of a video as [H, W, 3] uint8 RGB, decoded by ffmpeg one at a time.

    Example:
        with VideoReader("in.mp4") as video:
            for frame in video: ...

    Timing and damage: before the frames, a first ffmpeg decodes the video stream once with only errors logged
    (`-v error`) and lists each frame's timestamp (`info.times`, which the writer gives back to the frames); its
    error lines are the damage report. A damaged stream (random bytes over part of the file, a cut-off file) raises
    MediaError at the end of the iteration, so a writer fed from it is discarded; `allow_damaged=True` keeps the
    frames and leaves the count in `decode_errors`.

    Raises:
        MediaError: on open when the file is missing or ffmpeg cannot decode it.
    """

    def __init__(self, path: str | Path, allow_damaged: bool = False):
        self.path = Path(path)
        self.allow_damaged = bool(allow_damaged)
        #: ffmpeg's decoding error lines for the video stream (filled when the frames are exhausted).
        self.decode_errors: list[str] = []
        self._scan_errors: list[str] = []
        if media_kind(self.path) != "video":
            raise MediaError(f"{self.path} is not a video (mp4, mov, mkv, webm, gif)")
        if not self.path.is_file():
            raise MediaError(f"{self.path} does not exist")
        self._frames = imageio_ffmpeg.read_frames(str(self.path), pix_fmt="rgb24", output_params=_DECODE_OPTIONS)
        try:
            meta = next(self._frames)
        except (OSError, RuntimeError, StopIteration) as error:
            if not _has_video_stream(self.path):
                raise MediaError(f"{self.path} holds no video stream (only audio or data); give a video with "
                                 "pictures") from error
            raise MediaError(f"{self.path} cannot be read as a video ({_last_line(error)})") from error
        width, height = meta["size"]
        try:
            check_pixels(self.path, width, height, "video")
        except MediaError:
            self.close()
            raise
        fps = float(meta.get("fps") or 0.0)
        if fps <= 0 or width <= 0 or height <= 0:
            self.close()
            raise MediaError(f"{self.path} has no usable video stream (size {meta['size']}, {fps} fps)")
        try:
            description = probe(self.path)
            times, self._scan_errors = self._scan(_start_seconds(description))
        except BaseException:
            self.close()
            raise
        depth = bits_per_channel(description)
        if depth is not None and depth > 8:
            log.warning("%s has %d bits per channel; the swap works in 8 bits and is written with 8", self.path,
                        depth)
        others = input_streams(description)
        first_video = next((stream for stream in others if stream.kind == "video"), None)
        self.info = VideoInfo((int(width), int(height)), fps, float(meta.get("duration") or 0.0),
                              meta.get("audio_codec"), times,
                              tuple(stream for stream in others if stream is not first_video))

    def _scan(self, start_seconds: float) -> tuple[FrameTimes | None, list[str]]:
        """Decode the video stream once: each frame's time (ffmpeg's framecrc lines, read as they come) and its
        error lines."""
        command = [imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-hide_banner", "-v", "error", "-i", str(self.path),
                   *_DECODE_OPTIONS, "-enc_time_base", "demux", "-f", "framecrc", "-"]
        with tempfile.TemporaryFile() as errors:
            with subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errors,
                                  text=True, encoding="ascii", errors="replace", start_new_session=True) as scan:
                try:
                    times = frame_times(scan.stdout, start_seconds)
                except BaseException:
                    scan.kill()  # Ctrl-C, or a failure: no ffmpeg outlives the reader
                    raise
            return times, _log_lines(errors)

    def __iter__(self) -> Iterator[np.ndarray]:
        """Frames in order. Raises MediaError when ffmpeg fails part-way or the stream ends far too early."""
        width, height = self.info.size
        count = 0
        while True:
            try:
                raw = next(self._frames)
            except StopIteration:
                break
            except (OSError, RuntimeError) as error:
                raise MediaError(
                    f"{self.path} could not be decoded past frame {count} ({_last_line(error)}); "
                    "the file is truncated or corrupt"
                ) from error
            count += 1
            yield np.frombuffer(raw, dtype=np.uint8).reshape(height, width, 3)
        # ffmpeg stops quietly at the end of a cut-off file (imageio-ffmpeg does not report its exit status), so a
        # stream far shorter than its container says is one sign of one; half is well beyond rounding. The frames'
        # own times say how much of the container they cover (a long last GIF frame is one frame, not many).
        times = self.info.times
        covered = times.duration if times is not None else count / self.info.fps
        expected = round(self.info.fps * self.info.duration) if times is None else len(times.ticks)
        if self.info.duration > 0 and (covered < 0.5 * self.info.duration or count < 0.5 * expected):
            raise MediaError(
                f"{self.path} ended after {count} frames ({covered:.2f} of {self.info.duration:.2f} s); the file is "
                "truncated or corrupt"
            )
        self.decode_errors = list(self._scan_errors)
        if self.decode_errors and not self.allow_damaged:
            raise MediaError(
                f"{self.path} is damaged: ffmpeg reported {len(self.decode_errors)} decoding error(s) in its video "
                f"stream (first: {self.decode_errors[0][:120]}), so its frames would be garbage. Re-run with "
                "--allow-damaged to process it anyway"
            )

    def close(self) -> None:
        self._frames.close()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _video_codec_args(suffix: str, size: tuple[int, int]) -> list[str]:
    """ffmpeg's video encoder arguments for an output suffix."""
    # 4:2:0 chroma needs even sides; odd-sized frames keep their size in 4:4:4 instead of being rescaled.
    chroma = "yuv444p" if size[0] % 2 or size[1] % 2 else "yuv420p"
    if suffix == ".gif":
        return ["-c:v", "gif", "-pix_fmt", "rgb8"]
    if suffix == ".webm":
        return ["-c:v", "libvpx-vp9", "-pix_fmt", chroma, "-crf", "30", "-b:v", "0"]
    # -crf 10 is near-transparent. x264's preset "veryfast" instead of its default "medium" leaves the generator
    # the CPU it needs on a 2-core machine: a 6 s 720p swap (OpenVINO bf16) took 17.4 s instead of 20.9 s, for a
    # file 3 % larger at the same CRF.
    return ["-c:v", "libx264", "-pix_fmt", chroma, "-crf", "10", "-preset", "veryfast"]


#: The "[matroska @ 0x55bb4db089c0] " that starts an ffmpeg log line: where, not what.
_LOG_CONTEXT = re.compile(r"^\[[^\]]* @ 0x[0-9a-f]+\]\s*")


def _log_lines(log_file) -> list[str]:
    """The non-empty lines of an ffmpeg stderr log file (a binary temporary file), stripped."""
    log_file.seek(0)
    lines = log_file.read().decode("utf-8", "replace").splitlines()
    return [line.strip() for line in lines if line.strip()]


def _ffmpeg_failure(log_file) -> str:
    """ffmpeg's first error line from its stderr log file (the cause: the lines after it report what it stopped,
    e.g. "Nothing was written into output file"), without its "[component @ address]" prefix."""
    lines = [_LOG_CONTEXT.sub("", line) for line in _log_lines(log_file)]
    lines = [line for line in lines if line]
    return lines[0].rstrip(".") if lines else "ffmpeg failed"


class VideoWriter:
    """Write RGB frames to a video through ffmpeg, atomically, keeping the input's frame times and streams.

    Args:
        path: destination (mp4, mov, mkv, webm or gif).
        info: the input's VideoInfo: its size is kept; with `info.times` frame N is shown at the input's N-th frame
            time (a GIF's last frame keeps its delay), without it the frames are written at a constant `info.fps`;
            `info.streams` are the streams copied from `streams_from`.
        streams_from: the input file whose audio, subtitle and attachment streams are copied into the output, as
            far as its container holds them (clipswap.media.streams; a warning names those left out).
        label: written to the container's comment and description tags (a GIF: its comment extension).
        watermark: put the invisible clipswap watermark in every frame (clipswap.media.watermark).
    """

    def __init__(self, path: str | Path, info: VideoInfo, streams_from: str | Path | None = None,
                 label: str = LABEL, watermark: bool = True):
        self.path = Path(path)
        if media_kind(self.path) != "video":
            raise MediaError(f"{self.path}: a video target needs a video output (mp4, mov, mkv, webm, gif)")
        self.info = info
        self.streams_from = streams_from
        suffix = self.path.suffix.lower()
        if streams_from is not None:
            #: What happens to the input's other streams (kept, or left out with a warning).
            self.streams = plan_streams(list(info.streams), suffix)
        else:
            self.streams = StreamPlan((), (), ())
        self.label = label.replace("Synthetic image", "Synthetic video")
        self.watermark = bool(watermark)
        self.frames_written = 0
        self._atomic = None
        self._temporary: Path | None = None
        self._process: subprocess.Popen | None = None
        self._log = None
        self._filter_file = None

    def describe(self) -> str:
        """What the output keeps of the input, for a run's summary."""
        text = f"{self.info.describe_timing()}; {self.streams.describe_kept()} copied"
        if self.streams.left_out:
            text += f"; left out: {self.streams.describe_left_out()}"
        return text

    def _command(self, temporary: Path) -> list[str]:
        width, height = self.info.size
        suffix = self.path.suffix.lower()
        rate = Fraction(self.info.fps).limit_denominator(1001)
        command = [imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-hide_banner", "-y", "-v", "error",
                   "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-framerate", str(rate),
                   "-i", "-"]
        if self.streams.kept:
            command += ["-i", str(self.streams_from)]
        if self.info.times is not None:
            # The filter grows with the rate changes of a variable-rate video: read from a file, not the command.
            self._filter_file = tempfile.NamedTemporaryFile("w", suffix=".txt", prefix="clipswap-timing-")
            self._filter_file.write(timing_filter(self.info.times))
            self._filter_file.flush()
            command += ["-/filter:v", self._filter_file.name, "-fps_mode:v", "passthrough",
                        "-enc_time_base:v", "filter"]
        command += ["-map", "0:v:0", *self.streams.ffmpeg_args, *_video_codec_args(suffix, self.info.size)]
        if suffix == ".gif" and self.info.times is not None:
            # The GIF muxer times a frame by the next one's timestamp; the last one has none.
            last = float(self.info.times.last_ticks * self.info.times.time_base)
            command += ["-final_delay", str(max(1, round(last * 100)))]
        command += ["-metadata", f"comment={self.label}", "-metadata", f"description={self.label}", str(temporary)]
        return command

    def __enter__(self) -> VideoWriter:
        if self.streams.left_out:
            log.warning("%s cannot hold %s of %s: left out (write .mkv to keep every audio and subtitle stream)",
                        self.path, self.streams.describe_left_out(), self.streams_from)
        self._atomic = atomic_path(self.path)
        temporary = self._temporary = self._atomic.__enter__()
        try:
            self._log = tempfile.TemporaryFile()
            # A session of its own: Ctrl-C reaches clipswap, which stops ffmpeg itself after removing the file.
            self._process = subprocess.Popen(self._command(temporary), stdin=subprocess.PIPE,
                                             stdout=subprocess.DEVNULL, stderr=self._log, start_new_session=True)
        except BaseException as error:
            # __exit__ will not run for a failed __enter__: stop ffmpeg and remove the temporary file here.
            failure = (MediaError(f"ffmpeg cannot start writing {self.path} ({error})")
                       if isinstance(error, (OSError, RuntimeError)) else error)
            self._cleanup()
            self._atomic.__exit__(type(failure), failure, failure.__traceback__)
            if failure is error:
                raise
            raise failure from error
        return self

    def write(self, frame: np.ndarray) -> None:
        """One [H, W, 3] uint8 RGB frame of the input's size."""
        width, height = self.info.size
        if frame.shape != (height, width, 3) or frame.dtype != np.uint8:
            raise ValueError(f"frames must be [{height}, {width}, 3] uint8, got {frame.shape} {frame.dtype}")
        if self.watermark:
            frame = watermarking.embed(frame)
        try:
            self._process.stdin.write(np.ascontiguousarray(frame).tobytes())
        except (OSError, ValueError) as error:
            self._process.wait()
            raise MediaError(
                f"writing {self.path} failed at frame {self.frames_written + 1} ({_ffmpeg_failure(self._log)}); "
                "check the free disk space and that this ffmpeg has the encoder for the format"
            ) from error
        self.frames_written += 1

    def _finish(self) -> None:
        """Close ffmpeg's input and wait for it to finish the file; MediaError when it failed."""
        with contextlib.suppress(BrokenPipeError):  # ffmpeg already exited: its status and log say why
            self._process.stdin.close()
        if self._process.wait() != 0:
            raise MediaError(f"finishing {self.path} failed ({_ffmpeg_failure(self._log)})")

    def _cleanup(self) -> None:
        """Stop ffmpeg if it still runs, and close the log and the filter file."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        for handle in (self._log, self._filter_file):
            if handle is not None:
                handle.close()

    def __exit__(self, exc_type, exc, traceback) -> bool:
        try:
            try:
                if exc_type is None:
                    self._finish()
                    if self.path.suffix.lower() == ".gif":
                        label_gif(self._temporary, self.label)
            finally:
                self._cleanup()
        except BaseException as error:
            # A failed encode must not be renamed into place: hand the error to the atomic writer, which deletes.
            self._atomic.__exit__(type(error), error, error.__traceback__)
            raise
        self._atomic.__exit__(exc_type, exc, traceback)
        return False
