"""The common base of clipswap's own errors (issue 10: one class to catch instead of tuples of four to ten)."""

from __future__ import annotations


class ClipswapError(Exception):
    """An error clipswap raises for bad input, a missing file or a failed setup; its message is one sentence that
    says what was wrong and what to do, which the command lines print after "Error: " with exit status 1.

    Each subclass also keeps the built-in base it always had (ValueError, RuntimeError or OSError), so code that
    catches those still does. Anything else reaching a command line is a bug, turned into one sentence by its
    guard of last resort (clipswap.cli.GuardedGroup)."""
