"""Does a file say clipswap made it? Its metadata label and its invisible watermark, read as `clipswap verify` and
the browser UI report them."""

from __future__ import annotations

from pathlib import Path

#: Frames of a video that are read for the watermark, spread over its length.
VIDEO_FRAMES_CHECKED = 30


def _video_watermark(path: Path) -> tuple[int, int]:
    """(frames where the watermark is found, frames checked)."""
    from clipswap.media import watermark
    from clipswap.media.video import VideoReader

    found = checked = 0
    with VideoReader(path) as reader:
        stride = max(1, reader.info.frame_estimate // VIDEO_FRAMES_CHECKED)
        for index, frame in enumerate(reader):
            if index % stride == 0:
                checked += 1
                found += watermark.read(frame).found
    return found, checked


def verify_file(path: Path) -> tuple[bool, list[str]]:
    """(whether the file carries a clipswap mark, the report lines). Raises MediaError when it cannot be read."""
    from clipswap.media import watermark
    from clipswap.media.common import MediaError, media_kind
    from clipswap.media.images import read_image
    from clipswap.media.labels import read_label

    kind = media_kind(path)
    if kind == "image":
        reading = watermark.read(read_image(path))
        mark, text = reading.found, reading.describe()
    else:
        found, checked = _video_watermark(path)
        if checked == 0:
            raise MediaError(f"{path} has no video frames")
        mark = 2 * found >= checked
        text = f"{'found' if mark else 'not found'} (in {found} of {checked} frames checked)"
    try:
        label = read_label(path)
    except OSError as error:  # Pillow or ffmpeg could not parse the metadata; the pixels were read above
        label = None
        text += f"; metadata unreadable ({error})"
    lines = [f"{path}:", f"  label      {label if label else 'none'}", f"  watermark  {text}"]
    return mark or label is not None, lines
