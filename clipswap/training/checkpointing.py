"""The TensorFlow loop's checkpoints: everything a run needs to continue exactly, saved every N steps, the last K kept.

Each checkpoint is the backend-neutral state file of its step (clipswap.training.state_files: G and D, both optimisers
with their Adam moments, iteration counts and fp16 loss scale, the global step, which is also the RNG state (see
trainer.py), and the CLIP mean), which the JAX loop reads and writes too, so a run resumes on either backend. When
asked, the tf.data iterator (its position and shuffle buffers, so the resumed run sees exactly the batches the
uninterrupted one would have) goes beside it as a companion tf.train checkpoint, `state-<step>.tfdata`: a state file
without one (the JAX loop's) resumes with a reseeded data order.

Atomicity: the companion is written first (TensorFlow writes its files under a `_temp` folder and renames them when
complete), then the state file (a temporary file renamed into place), which commits the step: a run killed at any
moment leaves the newest state file complete, and that is what `restore` reads.

Run folders of earlier versions hold tf.train checkpoints of the whole state (`ckpt-<step>`); `restore` still reads
them when they are a run's newest, and the state files written after them replace them as they age out.
"""

from __future__ import annotations

import logging
from pathlib import Path

import tensorflow as tf

from clipswap.training.state_files import (
    CheckpointRestoreError,
    StateCheckpoints,
    newest_checkpoint,
    state_groups,
)
from clipswap.training.trainer import SwapTrainer

logger = logging.getLogger(__name__)

#: The suffix of the companion that holds a state file's tf.data position: state-<step>.tfdata.index, ...data-*.
DATA_SUFFIX = ".tfdata"

__all__ = ["CheckpointRestoreError", "DATA_SUFFIX", "TrainingCheckpoints"]


def data_prefix(state_file: str | Path) -> Path:
    """The tf.train prefix of the data position beside `state_file` (state-<step>.npz -> state-<step>.tfdata)."""
    return Path(state_file).with_suffix(DATA_SUFFIX)


class TrainingCheckpoints:
    """Save and restore a SwapTrainer's complete training state in `directory`.

    Args:
        directory: folder of the checkpoints (created when needed).
        trainer: a compiled SwapTrainer (its optimisers built, so their slots exist before a restore).
        keep: how many recent checkpoints to keep.
        data_iterator: a tf.data iterator whose position is saved beside each state file, or None; the run loop
            sets the attribute again when a resume reseeds its stream.

    Attributes:
        data_restored: whether the last `restore` put the data iterator back where the checkpoint left it.
    """

    def __init__(self, directory: str | Path, trainer: SwapTrainer, keep: int = 3, data_iterator=None):
        if trainer.g_optimizer is None or trainer.d_optimizer is None:
            raise ValueError("compile the trainer (both optimisers) before creating its checkpoints")
        self.directory = Path(directory)
        self.trainer = trainer
        self.data_iterator = data_iterator
        self.data_restored = False
        groups = state_groups(trainer.generator, trainer.discriminator, trainer.g_optimizer, trainer.d_optimizer,
                              trainer.swap_loss.clip_mean)
        self.states = StateCheckpoints(self.directory, groups, keep, lambda: int(trainer.step_counter.numpy()))

    @property
    def latest(self) -> str | None:
        """Path of the newest complete checkpoint (a state file, or an earlier version's tf.train prefix), or None."""
        found = newest_checkpoint(self.directory)
        return str(found[1]) if found else None

    def save(self) -> str:
        """Write the checkpoint of the trainer's global step (its data position first, when kept); returns the state
        file's path."""
        step = int(self.trainer.step_counter.numpy())
        if self.data_iterator is not None:
            prefix = data_prefix(self.directory / f"state-{step:08d}.npz")
            self.directory.mkdir(parents=True, exist_ok=True)
            tf.train.Checkpoint(data=self.data_iterator).write(str(prefix))
        return self.states.save()

    def restore(self, path: str | Path | None = None) -> int:
        """Restore `path` (a state file or an earlier version's tf.train prefix; default: the newest in the folder)
        and return the step it was taken at; the data iterator too when the checkpoint holds its position.

        Raises:
            FileNotFoundError: no checkpoint in the folder.
            CheckpointRestoreError: the checkpoint does not match this run's models and optimisers (another
                configuration).
        """
        if path is None:
            found = newest_checkpoint(self.directory)
            if found is None:
                raise FileNotFoundError(f"no checkpoint in {self.directory}")
            path = found[1]
        path = Path(path)
        self.data_restored = False
        if path.suffix != ".npz":
            return self._restore_older(path)
        step = self.states.restore(path)
        self.trainer.step_counter.assign(step)
        companion = data_prefix(path)
        if self.data_iterator is not None and Path(f"{companion}.index").is_file():
            status = tf.train.Checkpoint(data=self.data_iterator).read(str(companion))
            try:
                status.assert_existing_objects_matched()
            except AssertionError as error:
                raise CheckpointRestoreError(f"the data position {companion} does not match this run's data stream "
                                             f"(was the data changed?): {str(error)[:400]}") from error
            self.data_restored = True
        logger.info("restored checkpoint %s (step %d%s)", path, step,
                    "" if self.data_restored else ", no data position")
        return step

    def _restore_older(self, prefix: Path) -> int:
        """Restore a tf.train checkpoint of an earlier version (the whole state, and the data position when it was
        saved with one)."""
        trainer = self.trainer
        objects = {"generator": trainer.generator, "discriminator": trainer.discriminator,
                   "g_optimizer": trainer.g_optimizer, "d_optimizer": trainer.d_optimizer,
                   "step": trainer.step_counter}
        if trainer.swap_loss.clip_mean is not None:
            objects["clip_mean"] = trainer.swap_loss.clip_mean
        if self.data_iterator is not None:
            objects["data"] = self.data_iterator
        status = tf.train.Checkpoint(**objects).read(str(prefix))
        try:
            status.assert_existing_objects_matched()
        except AssertionError as error:
            raise CheckpointRestoreError(
                f"checkpoint {prefix} does not match this run's models/optimisers (was it written with another "
                f"configuration or precision?): {str(error)[:800]}"
            ) from error
        self.data_restored = self.data_iterator is not None
        step = int(trainer.step_counter.numpy())
        logger.info("restored the earlier version's checkpoint %s (step %d)", prefix, step)
        return step
