"""Videos as a stream of frames: mp4, mov, mkv, webm, gif, decoded and encoded by the ffmpeg binary of imageio-ffmpeg
one frame at a time (never the whole video in memory). The writer keeps the input's frame rate, muxes the input's
audio track back in (AAC; Opus for webm), labels the file (clipswap.media.labels) and watermarks every frame
(clipswap.media.watermark); every write goes to a temporary file beside the destination, renamed on success."""

from __future__ import annotations

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

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VideoInfo:
    """What the pipeline needs to know about an input video."""

    size: tuple[int, int]  # (width, height)
    fps: float
    duration: float
    audio_codec: str | None

    @property
    def frame_estimate(self) -> int:
        return max(1, round(self.fps * self.duration))


def _last_line(error: BaseException) -> str:
    """The last non-empty line of an imageio-ffmpeg error (ffmpeg's own verdict comes last in its stderr dump)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else "ffmpeg failed"


def _has_video_stream(path: Path) -> bool:
    """Whether ffmpeg lists a video stream in the file (True when it cannot tell: the caller's error then stands)."""
    streams = re.findall(r"Stream #\d+:\d+.*?: (\w+):", probe(path))
    return not streams or "Video" in streams


class VideoReader:
    """Iterate the frames of a video as [H, W, 3] uint8 RGB, decoded by ffmpeg one at a time.

    Example:
        with VideoReader("in.mp4") as video:
            for frame in video: ...

    Damage: beside the decode that yields the frames, a second ffmpeg decodes the video stream at its own pace with
    only errors logged (`-v error`); when the frames are done, its error lines are the damage report. A damaged
    stream (random bytes over part of the file, a cut-off file) raises MediaError at the end of the iteration, so a
    writer fed from it is discarded; `allow_damaged=True` keeps the frames and leaves the count in `decode_errors`.

    Raises:
        MediaError: on open when the file is missing or ffmpeg cannot decode it.
    """

    def __init__(self, path: str | Path, allow_damaged: bool = False):
        self.path = Path(path)
        self.allow_damaged = bool(allow_damaged)
        #: ffmpeg's decoding error lines for the video stream (filled when the frames are exhausted).
        self.decode_errors: list[str] = []
        self._scan = self._scan_log = None
        if media_kind(self.path) != "video":
            raise MediaError(f"{self.path} is not a video (mp4, mov, mkv, webm, gif)")
        if not self.path.is_file():
            raise MediaError(f"{self.path} does not exist")
        self._frames = imageio_ffmpeg.read_frames(str(self.path), pix_fmt="rgb24")
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
        self.info = VideoInfo((int(width), int(height)), fps, float(meta.get("duration") or 0.0),
                              meta.get("audio_codec"))
        self._scan_log = tempfile.TemporaryFile()
        self._scan = subprocess.Popen(
            [imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-hide_banner", "-v", "error", "-i", str(self.path),
             "-map", "0:v:0", "-f", "null", "-"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._scan_log,
        )

    def _damage(self) -> list[str]:
        """The scan's error lines (waits for it: it decodes faster than any swap consumes frames)."""
        if self._scan is None:
            return []
        self._scan.wait()
        self._scan_log.seek(0)
        lines = self._scan_log.read().decode("utf-8", "replace").splitlines()
        return [line.strip() for line in lines if line.strip()]

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
        # stream far shorter than its container says is one sign of one; half is well beyond fps rounding.
        expected = self.info.fps * self.info.duration
        if expected > 0 and count < 0.5 * expected:
            raise MediaError(
                f"{self.path} ended after {count} of about {round(expected)} frames; the file is truncated or corrupt"
            )
        self.decode_errors = self._damage()
        if self.decode_errors and not self.allow_damaged:
            raise MediaError(
                f"{self.path} is damaged: ffmpeg reported {len(self.decode_errors)} decoding error(s) in its video "
                f"stream (first: {self.decode_errors[0][:120]}), so its frames would be garbage. Re-run with "
                "--allow-damaged to process it anyway"
            )

    def close(self) -> None:
        self._frames.close()
        if self._scan is not None and self._scan.poll() is None:
            self._scan.kill()
            self._scan.wait()
        if self._scan_log is not None:
            self._scan_log.close()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _encoder_options(suffix: str, size: tuple[int, int]) -> dict:
    odd = size[0] % 2 or size[1] % 2
    if suffix == ".gif":
        return {"codec": "gif", "pix_fmt_out": "rgb8", "quality": None, "macro_block_size": 1}
    if suffix == ".webm":
        return {"codec": "libvpx-vp9", "pix_fmt_out": "yuv444p" if odd else "yuv420p", "quality": None,
                "macro_block_size": 1, "output_params": ["-crf", "30", "-b:v", "0"], "audio_codec": "libopus"}
    # 4:2:0 chroma needs even sides; odd-sized frames keep their size in 4:4:4 instead of being rescaled.
    # quality 8 is imageio-ffmpeg's -crf 10 (near-transparent). x264's preset "veryfast" instead of its default
    # "medium" leaves the generator the CPU it needs on a 2-core machine: a 6 s 720p swap (OpenVINO bf16) took
    # 17.4 s instead of 20.9 s, for a file 3 % larger at the same CRF (issue 12)
    return {"codec": "libx264", "pix_fmt_out": "yuv444p" if odd else "yuv420p", "quality": 8, "macro_block_size": 1,
            "output_params": ["-preset", "veryfast"], "audio_codec": "aac"}


class VideoWriter:
    """Write RGB frames to a video through ffmpeg, atomically, keeping the source's fps and audio.

    Args:
        path: destination (mp4, mov, mkv, webm or gif).
        info: the input's VideoInfo (size and fps are kept).
        audio_from: the input file whose first audio stream is muxed in (ignored for gif or when it has none).
        label: written to the container's comment and description tags (a GIF: its comment extension).
        watermark: put the invisible clipswap watermark in every frame (clipswap.media.watermark).
    """

    def __init__(self, path: str | Path, info: VideoInfo, audio_from: str | Path | None = None, label: str = LABEL,
                 watermark: bool = True):
        self.path = Path(path)
        if media_kind(self.path) != "video":
            raise MediaError(f"{self.path}: a video target needs a video output (mp4, mov, mkv, webm, gif)")
        self.info = info
        self.audio_from = audio_from if info.audio_codec and self.path.suffix.lower() != ".gif" else None
        self.label = label.replace("Synthetic image", "Synthetic video")
        self.watermark = bool(watermark)
        self.frames_written = 0
        self._atomic = None
        self._temporary: Path | None = None
        self._writer = None

    def __enter__(self) -> VideoWriter:
        self._atomic = atomic_path(self.path)
        temporary = self._temporary = self._atomic.__enter__()
        options = _encoder_options(self.path.suffix.lower(), self.info.size)
        audio_codec = options.pop("audio_codec", None)
        output_params = options.pop("output_params", []) + [
            "-metadata", f"comment={self.label}", "-metadata", f"description={self.label}",
        ]
        try:
            self._writer = imageio_ffmpeg.write_frames(
                str(temporary), self.info.size, fps=Fraction(self.info.fps).limit_denominator(1001),
                output_params=output_params, audio_path=None if self.audio_from is None else str(self.audio_from),
                audio_codec=audio_codec if self.audio_from is not None else None, ffmpeg_log_level="error", **options,
            )
            self._writer.send(None)
        except (OSError, RuntimeError) as error:
            # __exit__ will not run for a failed __enter__: remove the temporary file here.
            failure = MediaError(f"ffmpeg cannot start writing {self.path} ({_last_line(error)})")
            self._atomic.__exit__(MediaError, failure, None)
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
            self._writer.send(np.ascontiguousarray(frame))
        except (OSError, RuntimeError, StopIteration) as error:
            raise MediaError(
                f"writing {self.path} failed at frame {self.frames_written + 1} ({_last_line(error)}); "
                "check the free disk space and that this ffmpeg has the encoder for the format"
            ) from error
        self.frames_written += 1

    def __exit__(self, exc_type, exc, traceback) -> bool:
        try:
            # Closing the generator waits for ffmpeg to finish the file (or stops it after a failure).
            try:
                self._writer.close()
            except (OSError, RuntimeError) as error:
                raise MediaError(f"finishing {self.path} failed ({_last_line(error)})") from error
            if exc_type is None and self.path.suffix.lower() == ".gif":
                label_gif(self._temporary, self.label)
        except BaseException as error:
            # A failed encode must not be renamed into place: hand the error to the atomic writer, which deletes.
            self._atomic.__exit__(type(error), error, error.__traceback__)
            raise
        self._atomic.__exit__(exc_type, exc, traceback)
        return False
