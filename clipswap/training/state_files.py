"""Training state as NumPy files that both backends write and read: the one checkpoint format of the TensorFlow and
the JAX training loops, so a run checkpointed by either resumes in the other, at one copy of the state per step.

One file a checkpoint, `checkpoints/state-<step, 8 digits>.npz`, written atomically (a temporary file renamed into
place when complete, clipswap.atomic), the last K kept. It holds, for each group of variables (G's weights, D's
weights, each optimiser's variables, the CLIP mean's state), every variable's value in the group's order with its
name and shape, and the global step. The order is the Keras order, which is the same on both backends (the weight
names and shapes are checked on restore; a mismatch is a CheckpointRestoreError naming the first difference); the
CLIP mean is checked by shape alone, since TensorFlow keeps it in bare tf.Variables and JAX in keras.Variables.

A checkpoint may have companions of the same stem, `state-<step>.<anything>` (the TensorFlow loop's tf.data position,
`state-<step>.tfdata.*`): they are written before the state file, which commits the step, and dropped with it. The
data position needs no saving on the JAX path (a pack batch is a function of the seed and the step).

Run folders of earlier versions hold the TensorFlow loop's tf.train checkpoints (`ckpt-<step>.index` and data
files); older_checkpoint_steps finds them without TensorFlow so that either loop can tell such a folder apart.
"""

from __future__ import annotations

import logging
import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from clipswap.atomic import atomic_path
from clipswap.errors import ClipswapError

logger = logging.getLogger(__name__)

STATE_FORMAT = "clipswap-training-state-1"
_NAME = re.compile(r"state-(\d{8})\.npz")
#: A state file or one of its companions: the step is the stem's number.
_STEM = re.compile(r"state-(\d{8})\..+")
_OLDER_NAME = re.compile(r"ckpt-(\d+)\.index")
#: Groups whose variables are told apart by shape alone (their names are the backend's own: see the docstring).
_UNNAMED_GROUPS = ("clip_mean",)


class CheckpointRestoreError(ClipswapError, RuntimeError):
    """A state file exists but does not match what this run built."""


def _describe(variable, named: bool = True) -> str:
    """A variable's Keras path and shape (the same on both backends), or its shape alone when not `named`."""
    shape = tuple(int(d) for d in variable.shape)
    path = getattr(variable, "path", None) if named else None
    return f"{path} {shape}" if path else f"{shape}"


def _descriptions(group: str, variables: Sequence) -> list[str]:
    return [_describe(v, group not in _UNNAMED_GROUPS) for v in variables]


def _value(variable) -> np.ndarray:
    value = getattr(variable, "value", variable)
    value = value() if callable(value) else value
    return np.asarray(value)


def state_files(directory: str | Path) -> list[tuple[int, Path]]:
    """(step, path) of every state file in `directory`, oldest first."""
    return sorted((int(match.group(1)), path) for path in Path(directory).glob("state-*.npz")
                  if (match := _NAME.fullmatch(path.name)))


def latest_state(directory: str | Path) -> tuple[int, Path] | None:
    """(step, path) of the newest state file in `directory`, or None."""
    found = state_files(directory)
    return found[-1] if found else None


def older_checkpoint_steps(directory: str | Path) -> list[int]:
    """The steps of the tf.train checkpoints (`ckpt-<step>.index`) that earlier versions wrote in `directory`,
    ascending."""
    return sorted(int(match.group(1)) for path in Path(directory).glob("ckpt-*.index")
                  if (match := _OLDER_NAME.fullmatch(path.name)))


def newest_checkpoint(directory: str | Path) -> tuple[int, Path] | None:
    """(step, path) of the newest checkpoint in `directory`: a state file, or the prefix (`DIR/ckpt-<step>`) of an
    earlier version's tf.train checkpoint when that is newer; None when there is neither."""
    state = latest_state(directory)
    older = older_checkpoint_steps(directory)
    if older and (state is None or older[-1] > state[0]):
        return older[-1], Path(directory) / f"ckpt-{older[-1]}"
    return state


def state_groups(generator, discriminator, g_optimizer, d_optimizer, clip_mean) -> dict[str, list]:
    """The variables a state file holds, by group, in the order both backends build them."""
    groups = {"generator": generator.weights, "discriminator": discriminator.weights,
              "g_optimizer": g_optimizer.variables, "d_optimizer": d_optimizer.variables}
    if clip_mean is not None:
        groups["clip_mean"] = [clip_mean.mean, clip_mean.count]
    return groups


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
            arrays[f"{group}/names"] = np.asarray(_descriptions(group, variables), dtype=str)
            arrays.update({f"{group}/{index:05d}": _value(v) for index, v in enumerate(variables)})
        path = self.directory / f"state-{step:08d}.npz"
        with atomic_path(path) as temporary:
            with open(temporary, "wb") as handle:
                np.savez(handle, **arrays)
        self._drop_all_but_the_last()
        logger.info("saved training state %s", path)
        return str(path)

    def _drop_all_but_the_last(self) -> None:
        """Remove the state files beyond the last `keep`, with their companions and any companion left without its
        state file (a save killed between the two); once `keep` state files exist, also an earlier version's
        tf.train checkpoints older than all of them (they would never be resumed from again)."""
        kept_files = state_files(self.directory)[-self.keep:]
        kept = {step for step, _ in kept_files}
        for path in self.directory.glob("state-*"):
            match = _STEM.fullmatch(path.name)
            if match is None or int(match.group(1)) in kept:
                continue
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        if len(kept_files) < self.keep:
            return
        oldest_kept = kept_files[0][0]
        older = older_checkpoint_steps(self.directory)
        for step in older:
            if step < oldest_kept:
                for path in self.directory.glob(f"ckpt-{step}.*"):
                    path.unlink(missing_ok=True)
        if older and not older_checkpoint_steps(self.directory):
            (self.directory / "checkpoint").unlink(missing_ok=True)  # tf.train's pointer to its latest

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
            names = [str(name) for name in names.tolist()]
            if group in _UNNAMED_GROUPS:
                names = [name[name.rfind("("):] for name in names]
            expected = _descriptions(group, variables)
            if names != expected:
                first = next((i for i, (a, b) in enumerate(zip(names, expected, strict=False))
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

