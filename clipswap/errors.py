"""The common base of clipswap's own errors: the command lines catch this one class to turn an input error into one
sentence, instead of a tuple of every error class that can reach them."""

from __future__ import annotations


class ClipswapError(Exception):
    """An error clipswap raises for bad input, a missing file or a failed setup; its message is one sentence that
    says what was wrong and what to do, which the command lines print after "Error: " with exit status 1.

    Each subclass also keeps the built-in base it always had (ValueError, RuntimeError or OSError), so code that
    catches those still does. Anything else reaching a command line is a bug, turned into one sentence by its
    guard of last resort (clipswap.cli.GuardedGroup)."""


def unexpected_message(error: BaseException, traceback_option: str) -> str:
    """The one sentence for an exception nobody turned into a message: its type, its first line, and the option that
    shows the traceback (the guard of last resort in both command lines and the browser UI)."""
    detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return (f"unexpected {type(error).__name__}: {detail} (this is a bug or an unforeseen failure; re-run with "
            f"{traceback_option} for the traceback)")
