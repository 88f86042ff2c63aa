"""Images whole: jpg/jpeg, png, webp, bmp, read with OpenCV (EXIF orientation applied) as [H, W, 3] uint8 RGB after a
Pillow check of the header (pixel limit, damage, animation), and written with Pillow, atomically, carrying the
synthetic-content label (clipswap.media.labels; BMP has no metadata field and is written unlabelled with a warning)
and the invisible watermark (clipswap.media.watermark)."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, PngImagePlugin

from clipswap import __version__
from clipswap.atomic import atomic_path
from clipswap.media import watermark as watermarking
from clipswap.media.common import MediaError, check_pixels, media_kind
from clipswap.media.labels import LABEL, xmp_packet

log = logging.getLogger(__name__)


#: Pillow modes with an alpha channel, which the swap (opaque RGB) drops.
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


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


def check_image(path: str | Path, data: np.ndarray, complete: bool = True) -> None:
    """Check an encoded image before OpenCV decodes it; one Pillow open. A file Pillow cannot open is left to OpenCV's
    decoder, which then refuses it.

    1. The size its header declares against the pixel limit (nothing decoded yet). Pillow's own decompression-bomb
       guard is off for the open, so the message gives the declared size even for hundreds of millions of pixels;
       what is decoded afterwards is within our limit.
    2. With `complete`: MediaError for a file cut short or damaged (OpenCV fills a truncated JPEG
       with grey and returns it; Pillow's full decode raises) and for an animated WebP/PNG (OpenCV returns its first
       frame); a warning for an alpha channel (the result is opaque) and for 16 bits per channel (the result has 8).
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
        if _png_bit_depth(data) == 16:
            log.warning("%s has 16 bits per channel; the swap works in 8 bits and is written with 8", path)


def _png_bit_depth(data: np.ndarray) -> int | None:
    """Bits per channel a PNG's header declares (the byte after width and height in IHDR), None for other files.
    Pillow cannot say: it opens a 16-bit RGB PNG as 8-bit RGB."""
    head = data[:25].tobytes()
    if len(head) < 25 or not head.startswith(b"\x89PNG\r\n\x1a\n") or head[12:16] != b"IHDR":
        return None
    return head[24]


def write_image(image: np.ndarray, path: str | Path, label: str = LABEL, quality: int = 95,
                watermark: bool = True) -> Path:
    """Write [H, W, 3] uint8 RGB atomically with the synthetic-content label in the file's metadata and, unless
    `watermark` is False, the invisible clipswap watermark in its pixels (clipswap.media.watermark).

    Raises:
        MediaError: unsupported suffix. OutputError: the folder cannot be written.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if media_kind(path) != "image":
        raise MediaError(f"{path}: an image target needs an image output (jpg, png, webp, bmp)")
    image = np.ascontiguousarray(image, dtype=np.uint8)
    picture = Image.fromarray(watermarking.embed(image) if watermark else image, mode="RGB")
    xmp = xmp_packet(label)
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
