"""`clipswap verify`: does a file say clipswap made it? Its metadata label and its invisible watermark."""

from __future__ import annotations

from pathlib import Path

import click

#: Frames of a video that are read for the watermark, spread over its length.
VIDEO_FRAMES_CHECKED = 30


class UnreadableError(click.ClickException):
    """A file verify cannot read: exit 2, so that scripts can tell it from "no mark" (exit 1)."""

    exit_code = 2


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


@click.command("verify")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
def verify(files):
    """Report, for each image or video FILE, the synthetic-content label in its metadata and the invisible watermark
    clipswap puts in its pixels.

    \b
    Exit status: 0 when every file carries a clipswap mark (label or watermark), 1 when one carries neither,
    2 when a file cannot be read.
    """
    from clipswap.media.common import MediaError

    unmarked = []
    for path in files:
        try:
            marked, lines = verify_file(path)
        except MediaError as error:
            raise UnreadableError(str(error)) from error
        click.echo("\n".join(lines))
        if not marked:
            unmarked.append(path)
    if unmarked:
        click.echo(f"no clipswap mark in {len(unmarked)} of {len(files)} file(s)", err=True)
        click.get_current_context().exit(1)
