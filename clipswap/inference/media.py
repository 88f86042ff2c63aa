"""Reading and writing the swap pipeline's media: images whole, videos as a stream of frames.

Images: jpg/jpeg, png, webp, bmp, read with OpenCV (EXIF orientation applied) as [H, W, 3] uint8 RGB and written with
Pillow so the output can carry a metadata label saying it is synthetic: a PNG text chunk plus XMP, a JPEG comment
plus XMP, WebP XMP. BMP has no metadata field; such outputs are written unlabelled with a warning.

Videos: mp4, mov, mkv, webm, gif, decoded and encoded by the ffmpeg binary of imageio-ffmpeg one frame at a time
(never the whole video in memory). The writer keeps the input's frame rate, muxes the input's audio track back in
(AAC; Opus for webm), and sets the container's comment/description tags to the label. ffmpeg's GIF muxer writes no
metadata, so a GIF gets the label as a GIF89a comment extension, spliced in after ffmpeg finishes by copying the
file once as a byte stream (no re-encode, nothing held in memory).

Every image and video frame written also carries an invisible watermark in its pixels (clipswap.inference.watermark),
which survives the re-encodes that strip the metadata; `watermark=False` leaves it out.

Every write goes to a temporary file beside the destination and is renamed on success (clipswap.atomic).
"""

from __future__ import annotations

import io
import logging
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import cv2
import imageio_ffmpeg
import numpy as np
from PIL import Image, PngImagePlugin

from clipswap import __version__
from clipswap.atomic import atomic_path
from clipswap.errors import ClipswapError
from clipswap.inference import watermark as watermarking

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".gif")

LABEL = f"Synthetic image: faces were swapped by clipswap {__version__} (AI-generated face swap)."
#: IPTC digital source type for media made by a trained model.
IPTC_SYNTHETIC = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"


#: Largest image or video frame read, in pixels (`clipswap --max-pixels N` changes it; set_max_pixels). A 12000 x
#: 9000 JPEG took 4 GB through the swap, and a 1.9 MB PNG can declare 400 million pixels: the header is checked
#: before anything is decoded. 50 million covers 8K frames and the 48-50 MP photos of current phones.
DEFAULT_MAX_PIXELS = 50_000_000
_limits = {"pixels": DEFAULT_MAX_PIXELS}


class MediaError(ClipswapError, ValueError):
    """An input that cannot be read, or a file type the pipeline does not handle."""


def set_max_pixels(pixels: int) -> None:
    """Change the largest image or frame read (pixels, >= 1)."""
    if int(pixels) < 1:
        raise ValueError(f"the pixel limit must be at least 1, got {pixels}")
    _limits["pixels"] = int(pixels)


def check_pixels(path: str | Path, width: int, height: int, what: str = "image") -> None:
    """MediaError when width x height exceeds the limit, naming the limit and the option that raises it."""
    limit = _limits["pixels"]
    if int(width) * int(height) > limit:
        raise MediaError(
            f"{path} is a {width} x {height} {what} ({int(width) * int(height) / 1e6:.1f} million pixels), above the "
            f"limit of {limit / 1e6:g} million; downscale it, or raise the limit with `clipswap --max-pixels N`"
        )


def media_kind(path: str | Path) -> str:
    """"image" or "video" from the file suffix; MediaError for anything else."""
    suffix = Path(path).suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix in VIDEO_SUFFIXES:
        return "video"
    raise MediaError(
        f"{path} has an unsupported type {suffix or '(no suffix)'!r}; images: {', '.join(IMAGE_SUFFIXES)}, "
        f"videos: {', '.join(VIDEO_SUFFIXES)}"
    )


def read_image(path: str | Path) -> np.ndarray:
    """[H, W, 3] uint8 RGB. Grey and alpha images become 3-channel RGB.

    Raises:
        MediaError: missing file, unsupported suffix, or content OpenCV cannot decode.
    """
    path = Path(path)
    if media_kind(path) != "image":
        raise MediaError(f"{path} is a video; an image (jpg, png, webp, bmp) is needed here")
    if not path.is_file():
        raise MediaError(f"{path} does not exist")
    # Bytes read by Python, decoded by OpenCV: cv2.imread crashes (SIGSEGV) on a file name that is not valid UTF-8
    # (a Latin-1 `t\xe9.jpg` reaches it surrogate-escaped), and Python opens any name the file system holds.
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as error:
        raise MediaError(f"{path} cannot be read: {error.strerror or error}") from None
    check_image(path, data)
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if bgr is None:
        raise MediaError(f"{path} cannot be read as an image (corrupt or not really a {path.suffix} file)")
    return np.ascontiguousarray(bgr[..., ::-1])


#: Pillow modes with an alpha channel, which the swap (opaque RGB) drops.
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


def check_image(path: str | Path, data: np.ndarray, complete: bool = True) -> None:
    """Check an encoded image before OpenCV decodes it; one Pillow open. A file Pillow cannot open is left to OpenCV's
    decoder, which then refuses it.

    1. The size its header declares against the pixel limit (nothing decoded yet). Pillow's own decompression-bomb
       guard is off for the open, so the message gives the declared size even for hundreds of millions of pixels;
       what is decoded afterwards is within our limit.
    2. With `complete` (issue 11 item 3): MediaError for a file cut short or damaged (OpenCV fills a truncated JPEG
       with grey and returns it; Pillow's full decode raises) and for an animated WebP/PNG (OpenCV returns its first
       frame); a warning for an alpha channel (the result is opaque).
    """
    guard = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        picture = Image.open(io.BytesIO(data.tobytes()))
    except (OSError, ValueError):
        return
    finally:
        Image.MAX_IMAGE_PIXELS = guard
    with picture:
        check_pixels(path, *picture.size)
        if not complete:
            return
        frames = int(getattr(picture, "n_frames", 1) or 1)
        if frames > 1:
            raise MediaError(
                f"{path} is an animated image ({frames} frames); swap it as a video (convert it to mp4 or gif) or "
                "save the frame you want as a still image"
            )
        try:
            picture.load()
        except (OSError, ValueError, SyntaxError) as error:
            raise MediaError(f"{path} is damaged or cut short ({error}); re-export or re-download it") from None
        if picture.mode in _ALPHA_MODES or "transparency" in picture.info:
            log.warning("%s has an alpha channel; it is dropped: the swap is written opaque", path)


def _xmp(label: str) -> str:
    return (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/" '
        'xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/" xmlns:xmp="http://ns.adobe.com/xap/1.0/">'
        f"<dc:description><rdf:Alt><rdf:li xml:lang=\"x-default\">{label}</rdf:li></rdf:Alt></dc:description>"
        f"<Iptc4xmpExt:DigitalSourceType>{IPTC_SYNTHETIC}</Iptc4xmpExt:DigitalSourceType>"
        f"<xmp:CreatorTool>clipswap {__version__}</xmp:CreatorTool>"
        "</rdf:Description></rdf:RDF></x:xmpmeta>"
    )


def write_image(image: np.ndarray, path: str | Path, label: str = LABEL, quality: int = 95,
                watermark: bool = True) -> Path:
    """Write [H, W, 3] uint8 RGB atomically with the synthetic-content label in the file's metadata and, unless
    `watermark` is False, the invisible clipswap watermark in its pixels (clipswap.inference.watermark).

    Raises:
        MediaError: unsupported suffix. OutputError: the folder cannot be written.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if media_kind(path) != "image":
        raise MediaError(f"{path}: an image target needs an image output (jpg, png, webp, bmp)")
    image = np.ascontiguousarray(image, dtype=np.uint8)
    picture = Image.fromarray(watermarking.embed(image) if watermark else image, mode="RGB")
    xmp = _xmp(label)
    options: dict = {}
    if suffix == ".png":
        info = PngImagePlugin.PngInfo()
        info.add_text("Description", label)
        info.add_text("Software", f"clipswap {__version__}")
        info.add_itxt("XML:com.adobe.xmp", xmp)
        options = {"pnginfo": info}
    elif suffix in (".jpg", ".jpeg"):
        options = {"quality": quality, "comment": label.encode("utf-8"), "xmp": xmp.encode("utf-8")}
    elif suffix == ".webp":
        options = {"quality": quality, "xmp": xmp.encode("utf-8")}
    else:
        log.warning("BMP has no metadata field: %s is written without the synthetic-content label", path)
    with atomic_path(path) as temporary:
        picture.save(temporary, **options)
    return path


def _gif_comment(text: str) -> bytes:
    """A GIF89a comment extension: introducer 0x21, label 0xFE, data sub-blocks of at most 255 bytes, terminator."""
    data = text.encode("utf-8")
    blocks = b"".join(bytes([len(part)]) + part for part in (data[i : i + 255] for i in range(0, len(data), 255)))
    return b"\x21\xfe" + blocks + b"\x00"


def _skip_sub_blocks(handle) -> bytes:
    """Read data sub-blocks up to and including the zero-length terminator; returns the bytes read."""
    chunks = []
    while True:
        size = handle.read(1)
        if not size:
            raise MediaError("truncated GIF extension block")
        chunks.append(size + handle.read(size[0]))
        if size[0] == 0:
            return b"".join(chunks)


def label_gif(path: str | Path, label: str = LABEL) -> None:
    """Insert `label` as a comment extension into the GIF at `path`, atomically.

    The comment goes after the header, the global colour table and any leading application extensions (the
    NETSCAPE2.0 loop block, which some decoders expect first), before the first frame; the rest of the file is
    copied as it is. Raises MediaError when the file is not a GIF.
    """
    path = Path(path)
    with open(path, "rb") as source, atomic_path(path) as temporary:
        head = source.read(13)  # signature (6) + logical screen descriptor (7)
        if len(head) < 13 or head[:6] not in (b"GIF87a", b"GIF89a"):
            raise MediaError(f"{path} is not a GIF file")
        packed = head[10]
        prefix = [b"GIF89a" + head[6:]]  # extensions need the 89a signature
        if packed & 0x80:
            prefix.append(source.read(3 * 2 ** ((packed & 0x07) + 1)))
        while True:
            position = source.tell()
            introducer = source.read(2)
            if introducer != b"\x21\xff":
                source.seek(position)
                break
            prefix.append(introducer + _skip_sub_blocks(source))  # the 11-byte identifier is one sub-block
        with open(temporary, "wb") as target:
            target.write(b"".join(prefix) + _gif_comment(label))
            shutil.copyfileobj(source, target)


def read_label(path: str | Path) -> str | None:
    """The synthetic-content label of a file written here (image metadata, GIF comment or video container tag),
    or None."""
    path = Path(path)
    if path.suffix.lower() == ".gif":
        with Image.open(path) as picture:
            value = picture.info.get("comment")
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        return value if value and "clipswap" in value else None
    if media_kind(path) == "image":
        with Image.open(path) as picture:
            info = picture.info
            text = getattr(picture, "text", {}) or {}
        for value in (text.get("Description"), info.get("comment"), info.get("xmp")):
            if isinstance(value, bytes):
                value = value.decode("utf-8", "replace")
            if value and "clipswap" in value:
                return value
        return None
    match = re.search(r"^\s*(?:comment|description)\s*:\s*(.*clipswap.*)$", _probe(path), re.MULTILINE | re.IGNORECASE)
    return match.group(1).strip() if match else None


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


def _probe(path: str | Path) -> str:
    """What `ffmpeg -i FILE` says of a file (its stderr: container tags and streams)."""
    return subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path)],
                          capture_output=True, text=True, check=False, errors="replace").stderr


def _has_video_stream(path: Path) -> bool:
    """Whether ffmpeg lists a video stream in the file (True when it cannot tell: the caller's error then stands)."""
    streams = re.findall(r"Stream #\d+:\d+.*?: (\w+):", _probe(path))
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
        watermark: put the invisible clipswap watermark in every frame (clipswap.inference.watermark).
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
