"""The `clipswap` command line: a click group; each verb lives in clipswap/commands/ and holds no model logic."""

from __future__ import annotations

import logging
import os

import click

from clipswap import __version__

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@click.group(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(__version__, prog_name="clipswap")
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
def main(verbose: int) -> None:
    """clipswap: high-fidelity face swapping (ClipSwap, FG 2024) in TensorFlow 2 / Keras 3."""
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


def _register() -> None:
    from clipswap.commands.info import info  # noqa: PLC0415
    from clipswap.commands.init import init  # noqa: PLC0415

    for command in (info, init):
        main.add_command(command)
    for module, name in (("swap", "swap"), ("train", "train"), ("align", "align"), ("evaluate", "evaluate")):
        try:
            imported = __import__(f"clipswap.commands.{module}", fromlist=[name])
        except ModuleNotFoundError as error:
            if error.name != f"clipswap.commands.{module}":
                raise
            continue
        main.add_command(getattr(imported, name))


_register()

if __name__ == "__main__":
    main()
