"""Click parameter types the verbs share (click only: importing them loads no model, so `--help` stays fast)."""

from __future__ import annotations

import math
from pathlib import Path

import click


class FiniteFloatRange(click.FloatRange):
    """click.FloatRange that also refuses NaN and infinities: NaN compares false with both bounds, so a plain range
    lets `--feather nan` through to fail deep inside a run. Same arguments as click.FloatRange."""

    def convert(self, value, param, ctx):
        number = click.FLOAT.convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return super().convert(number, param, ctx)


class LiveChoice(click.Choice):
    """click.Choice over a live list of names (a registry's Choices): the names are read when a value is checked or
    the help is shown, so a component registered after the command line was built is offered too."""

    def __init__(self, names, case_sensitive: bool = True):
        super().__init__((), case_sensitive)
        self._names = names

    @property
    def choices(self):
        return tuple(self._names)

    @choices.setter
    def choices(self, value):
        pass  # click.Choice.__init__ sets a copy; the live names are read instead


def parse_model_files(ctx, param, values) -> dict[str, str]:
    """--file KEY=PATH values -> {KEY: PATH}: a model file by its key in clipswap.checkpoints.registry.FILES, for
    any component whose file the user gives (the named flags such as --arcface fill the same mapping)."""
    from clipswap.checkpoints.registry import FILES

    keys = [key for key, spec in FILES.items() if spec.origin == "published"]
    files = {}
    for value in values:
        key, sep, path = value.partition("=")
        if not sep or not path:
            raise click.BadParameter(f"{value!r} is not KEY=PATH (e.g. arcface=ArcFace-Res50.h5)", ctx, param)
        if key not in keys:
            raise click.BadParameter(f"{key!r} is not a model file key; the keys are {', '.join(keys)}", ctx, param)
        # Checked here as the named flags are (click.Path(exists=True)), so a mistyped path stops before any work.
        if not Path(path).expanduser().is_file():
            raise click.BadParameter(f"{key}={path}: no such file; give the path of the {key} model file", ctx, param)
        files[key] = path
    return files


def model_files_option(function):
    """The shared `--file KEY=PATH` option (repeatable) of the verbs that load models."""
    return click.option("--file", "model_files", multiple=True, callback=parse_model_files, metavar="KEY=PATH",
                        help="A model file by its key (e.g. arcface=ArcFace-Res50.h5, retinaface=RetinaFace-Res50.h5); "
                             "repeatable. The named flags (--arcface, --retinaface) do the same.")(function)
