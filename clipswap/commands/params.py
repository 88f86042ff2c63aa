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
