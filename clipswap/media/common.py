"""What every media module shares: the file types the pipeline handles, the pixel limit on what it reads, MediaError,
and ffmpeg's description of a file."""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

from clipswap.errors import ClipswapError

log = logging.getLogger(__name__)


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")


VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".gif")


#: Largest image or video frame read, in pixels (`clipswap --max-pixels N` changes it; set_max_pixels). A 12000 x
#: 9000 JPEG took 4 GB through the swap, and a 1.9 MB PNG can declare 400 million pixels: the header is checked
#: before anything is decoded. 50 million covers 8K frames and the 48-50 MP photos of current phones.
DEFAULT_MAX_PIXELS = 50_000_000


#: The option that raises the limit, as the refusal names it: the command line that set the limit says which.
DEFAULT_PIXELS_OPTION = "clipswap --max-pixels N"

_limits = {"pixels": DEFAULT_MAX_PIXELS, "option": DEFAULT_PIXELS_OPTION}


class MediaError(ClipswapError, ValueError):
    """An input that cannot be read, or a file type the pipeline does not handle."""


def set_max_pixels(pixels: int, option: str = DEFAULT_PIXELS_OPTION) -> None:
    """Change the largest image or frame read (pixels, >= 1); `option` is how the refusal tells the user to raise
    it (each command line names its own)."""
    if int(pixels) < 1:
        raise ValueError(f"the pixel limit must be at least 1, got {pixels}")
    _limits["pixels"] = int(pixels)
    _limits["option"] = option


@contextlib.contextmanager
def pixel_limit(pixels: int, option: str) -> Iterator[None]:
    """set_max_pixels for the duration of a `with` block, then the limit and option that were set before."""
    before = dict(_limits)
    set_max_pixels(pixels, option)
    try:
        yield
    finally:
        _limits.update(before)


def check_pixels(path: str | Path, width: int, height: int, what: str = "image") -> None:
    """MediaError when width x height exceeds the limit, naming the limit and the option that raises it."""
    limit = _limits["pixels"]
    if int(width) * int(height) > limit:
        raise MediaError(
            f"{path} is a {width} x {height} {what} ({int(width) * int(height) / 1e6:.1f} million pixels), above the "
            f"limit of {limit / 1e6:g} million; downscale it, or raise the limit with `{_limits['option']}`"
        )


def _folder_key(folder: Path) -> tuple[int, int] | None:
    """(device, inode) of the real folder `folder` leads to (through links), or None when it cannot be read."""
    try:
        info = folder.stat()
    except OSError:
        return None
    return info.st_dev, info.st_ino


def walk_files(root: Path, exclude: Path | None = None) -> list[Path]:
    """Every non-hidden file under the folder `root`, sorted. Identity folders are often symbolic links into another
    dataset, so links are followed, but each real folder is entered once (a link back up the tree would otherwise
    loop forever); hidden folders and the folder `exclude` (resolved) are skipped."""
    exclude = exclude.resolve() if exclude is not None else None
    files: list[Path] = []
    seen = {_folder_key(root)}
    for folder, subfolders, names in os.walk(root, followlinks=True):
        folder_path = Path(folder)
        kept = []
        for name in sorted(subfolders):
            if name.startswith(".") or (exclude is not None and (folder_path / name).resolve() == exclude):
                continue
            key = _folder_key(folder_path / name)
            if key is not None and key not in seen:
                seen.add(key)
                kept.append(name)
        subfolders[:] = kept
        files.extend(folder_path / name for name in names if not name.startswith("."))
    return sorted(files)


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


def probe(path: str | Path) -> str:
    """What `ffmpeg -i FILE` says of a file (its stderr: container tags and streams)."""
    # Imported here: every command loads this module, and training runs where imageio-ffmpeg is not installed.
    import imageio_ffmpeg

    return subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path)],
                          capture_output=True, text=True, check=False, errors="replace").stderr
