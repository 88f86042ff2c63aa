"""The `clipswap` command line: a click group; each verb lives in clipswap/commands/ and holds no model logic."""

from __future__ import annotations

import logging
import os
import signal
import threading

import click

from clipswap import __version__, quiet_start
from clipswap.commands.align import align
from clipswap.commands.doctor import doctor
from clipswap.commands.evaluate import evaluate
from clipswap.commands.export import export
from clipswap.commands.info import info
from clipswap.commands.init import init
from clipswap.commands.pack import pack
from clipswap.commands.pairs import pairs
from clipswap.commands.swap import swap
from clipswap.commands.train import train
from clipswap.commands.train_geometry import train_geometry
from clipswap.commands.train_occluder import train_occluder
from clipswap.commands.ui import ui
from clipswap.commands.verify import verify
from clipswap.errors import unexpected_message

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
quiet_start.install()  # the commands import tensorflow lazily, after this


class Terminated(BaseException):
    """SIGTERM arrived: raised in the main thread so that every open writer cleans up as for Ctrl-C (a BaseException,
    so no `except Exception` on the way swallows it)."""


def _terminate(signum, frame) -> None:
    raise Terminated()


def install_sigterm_handler() -> None:
    """SIGTERM unwinds like Ctrl-C (temporary files removed, ffmpeg closed) and exits 143."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)


class OptionError(click.UsageError):
    """A wrong, missing or unknown option: exit 2 (click's and the shell's convention for usage errors) with one
    line, "Error: <what was wrong>; see '<command> --help'", instead of click's usage block."""

    def __init__(self, error: click.UsageError, command_path: str):
        super().__init__(error.format_message(), error.ctx)
        #: The command whose help to read (click's parser leaves `ctx` unset for a missing option value).
        self.command_path = error.ctx.command_path if error.ctx is not None else command_path

    def show(self, file=None) -> None:
        click.echo(f"Error: {self.format_message().rstrip('.')}; see '{self.command_path} --help'", file=file,
                   err=file is None)


class GuardedGroup(click.Group):
    """The command group with a last line of defence: an exception no command turned into a clear message (a bug,
    or a failure nobody foresaw) becomes one sentence and exit 1 instead of a traceback; -vv shows the traceback.
    Every known failure is still handled where it happens, with its own message."""

    def make_context(self, info_name, args, parent=None, **extra) -> click.Context:
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as error:
            raise OptionError(error, info_name or self.name) from error

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except OptionError:
            raise
        except click.UsageError as error:
            verb = ctx.invoked_subcommand  # click sets it before the verb parses its options
            raise OptionError(error, f"{ctx.command_path} {verb}" if verb else ctx.command_path) from error
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            ctx.exit(130)
        except Terminated:
            click.echo("Terminated.", err=True)
            ctx.exit(143)
        except Exception as error:  # noqa: BLE001 -- the guard of last resort, see the class docstring
            if ctx.params.get("verbose", 0) >= 2:
                raise
            raise click.ClickException(unexpected_message(error, "-vv")) from error


@click.group(cls=GuardedGroup, context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(__version__, prog_name="clipswap")
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
# The default is clipswap.media.common.DEFAULT_MAX_PIXELS (not imported here: it would load OpenCV for --help).
@click.option("--max-pixels", type=click.IntRange(min=1), default=50_000_000,
              help="Largest image or video frame read, in pixels (bounds memory; bigger files are refused).")
def main(verbose: int, max_pixels: int) -> None:
    """clipswap: high-fidelity face swapping (ClipSwap, FG 2024) in TensorFlow 2 / Keras 3."""
    install_sigterm_handler()
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    from clipswap.media.common import set_max_pixels  # imports numpy, cv2, Pillow only

    set_max_pixels(max_pixels)


# Command modules import only click and plain-Python configuration; each command imports TensorFlow inside itself.
for _command in (info, init, swap, verify, doctor, train, train_geometry, train_occluder, align, pairs, pack,
                 evaluate, export, ui):
    main.add_command(_command)


if __name__ == "__main__":
    main()
