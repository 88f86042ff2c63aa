"""Training state as NumPy files that either backend writes and reads: the checkpoints of the JAX loop, which the
TensorFlow loop also writes beside its tf.train checkpoints, so a run started on one backend resumes on the other.

One file a checkpoint, `checkpoints/state-<step, 8 digits>.npz`, written atomically (a temporary file renamed into
place when complete, clipswap.atomic), the last K kept. It holds, for each group of variables (G's weights, D's
weights, each optimiser's variables, the CLIP mean's state), every variable's value in the group's order with its
name and shape, and the global step. The order is the Keras order, which is the same on both backends (the weight
names and shapes are checked on restore; a mismatch is a CheckpointRestoreError naming the first difference). The
data position needs no saving on the JAX path (a pack batch is a function of the seed and the step).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from clipswap.atomic import atomic_path
from clipswap.errors import ClipswapError

logger = logging.getLogger(__name__)

STATE_FORMAT = "clipswap-training-state-1"
_NAME = re.compile(r"state-(\d{8})\.npz")


class CheckpointRestoreError(ClipswapError, RuntimeError):
    """A state file exists but does not match what this run built."""


def _describe(variable) -> str:
    """A Keras variable's path and shape (the same on both backends); a bare tf.Variable (the TensorFlow CLIP mean's)
    by its shape alone, since its name is TensorFlow's own."""
    shape = tuple(int(d) for d in variable.shape)
    path = getattr(variable, "path", None)
    return f"{path} {shape}" if path else f"{shape}"


def _value(variable) -> np.ndarray:
    value = getattr(variable, "value", variable)
    value = value() if callable(value) else value
    return np.asarray(value)


def latest_state(directory: str | Path) -> tuple[int, Path] | None:
    """(step, path) of the newest state file in `directory`, or None."""
    found = [(int(match.group(1)), path) for path in Path(directory).glob("state-*.npz")
             if (match := _NAME.fullmatch(path.name))]
    return max(found) if found else None


class StateCheckpoints:
    """Save and restore groups of variables (Keras or TensorFlow variables) as state files in `directory`.

    Args:
        directory: the checkpoint folder (created when needed).
        groups: group name -> its variables, in a fixed order ("generator", "discriminator", "g_optimizer",
            "d_optimizer", and "clip_mean" when the loss has one).
        keep: how many recent state files to keep.
        step: returns the global step to number a save by.
    """

    def __init__(self, directory: str | Path, groups: Mapping[str, Sequence], keep: int, step):
        self.directory = Path(directory)
        self.groups = {name: list(variables) for name, variables in groups.items()}
        self.keep = int(keep)
        self.step = step

    @property
    def latest(self) -> str | None:
        """Path of the newest complete state file, or None."""
        found = latest_state(self.directory)
        return str(found[1]) if found else None

    def save(self) -> str:
        """Write the variables' current values as state-<step>.npz and drop all but the last `keep` files."""
        step = int(self.step())
        arrays: dict[str, np.ndarray] = {"format": np.asarray(STATE_FORMAT), "step": np.asarray(step, np.int64)}
        for group, variables in self.groups.items():
            arrays[f"{group}/names"] = np.asarray([_describe(v) for v in variables], dtype=str)
            arrays.update({f"{group}/{index:05d}": _value(v) for index, v in enumerate(variables)})
        path = self.directory / f"state-{step:08d}.npz"
        with atomic_path(path) as temporary:
            with open(temporary, "wb") as handle:
                np.savez(handle, **arrays)
        kept = sorted(self.directory.glob("state-*.npz"))
        for old in kept[:-self.keep]:
            old.unlink(missing_ok=True)
        logger.info("saved training state %s", path)
        return str(path)

    def restore(self, path: str | Path | None = None) -> int:
        """Assign the variables from `path` (default: the newest) and return its step.

        Raises:
            FileNotFoundError: no state file.
            CheckpointRestoreError: a file of another format, or whose groups, names or shapes differ from this
                run's (another configuration).
        """
        path = Path(path or self.latest or "")
        if not path.is_file():
            raise FileNotFoundError(f"no training state file in {self.directory}")
        try:
            with np.load(path, allow_pickle=False) as data:
                stored = {key: data[key] for key in data.files}
        except (OSError, ValueError) as error:
            raise CheckpointRestoreError(f"{path} cannot be read ({error}); remove it to resume from the one "
                                         "before") from error
        if str(stored.get("format", "")) != STATE_FORMAT:
            raise CheckpointRestoreError(f"{path} is not a clipswap training state file ({STATE_FORMAT})")
        for group, variables in self.groups.items():
            names = stored.get(f"{group}/names")
            if names is None:
                raise CheckpointRestoreError(f"{path} has no {group} (was it written with another configuration?)")
            expected = [_describe(v) for v in variables]
            if names.tolist() != expected:
                first = next((i for i, (a, b) in enumerate(zip(names.tolist(), expected, strict=False))
                              if a != b),
                             min(len(names), len(expected)))
                theirs = names[first] if first < len(names) else "nothing"
                ours = expected[first] if first < len(expected) else "nothing"
                raise CheckpointRestoreError(
                    f"{path} does not match this run's {group} ({len(names)} variables saved, {len(expected)} built; "
                    f"the first difference: {theirs} saved, {ours} built): was it written with another "
                    "configuration?")
        for group, variables in self.groups.items():
            for index, variable in enumerate(variables):
                value = stored[f"{group}/{index:05d}"]
                variable.assign(value.astype(np.dtype(str(getattr(variable.dtype, "name", variable.dtype)))))
        step = int(stored["step"])
        logger.info("restored training state %s (step %d)", path, step)
        return step


def state_groups(generator, discriminator, g_optimizer, d_optimizer, clip_mean) -> dict[str, list]:
    """The variables a state file holds, by group, in the order both backends build them (state_files)."""
    groups = {"generator": generator.weights, "discriminator": discriminator.weights,
              "g_optimizer": g_optimizer.variables, "d_optimizer": d_optimizer.variables}
    if clip_mean is not None:
        groups["clip_mean"] = [clip_mean.mean, clip_mean.count]
    return groups
