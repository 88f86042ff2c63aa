"""Click parameter types the verbs share (click only: importing them loads no model, so `--help` stays fast)."""

from __future__ import annotations

import math

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
