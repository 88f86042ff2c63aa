"""Checkpoint errors: each says what is wrong and what to do."""

from __future__ import annotations

from clipswap.errors import ClipswapError


class CheckpointError(ClipswapError, RuntimeError):
    """A checkpoint file is missing, unreadable, corrupt or does not match the model."""


class CheckpointMismatchError(CheckpointError):
    """Weights in a file do not map one-to-one, shape for shape, onto the model's variables."""

    def __init__(self, path: str, problems: list[str]):
        self.problems = list(problems)
        shown = "\n  ".join(self.problems[:40])
        more = f"\n  ... and {len(self.problems) - 40} more" if len(self.problems) > 40 else ""
        super().__init__(
            f"{path} does not match the expected architecture ({len(self.problems)} problem(s)):\n  {shown}{more}\n"
            "Check that the file is the right checkpoint for this model (generator, ArcFace or RetinaFace)."
        )
