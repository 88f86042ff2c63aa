"""`clipswap verify`: does a file say clipswap made it? Its metadata label and its invisible watermark."""

from __future__ import annotations

from pathlib import Path

import click


class UnreadableError(click.ClickException):
    """A file verify cannot read: exit 2, so that scripts can tell it from "no mark" (exit 1)."""

    exit_code = 2


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
    from clipswap.media.verification import verify_file

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
