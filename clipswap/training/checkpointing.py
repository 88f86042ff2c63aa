"""Training checkpoints: everything a run needs to continue exactly, saved every N steps, the last K kept.

Saved (tf.train.Checkpoint): G and D weights, both optimisers (Adam moments, iteration counts, fp16 loss scale), the
global step (which is also the RNG state, see trainer.py), the CLIP mean EMA, and, when asked, the tf.data iterator
(its position and shuffle buffers, so the resumed run sees exactly the batches the uninterrupted one would have).

Atomicity: TensorFlow writes a checkpoint's data and index files under temporary names and renames them when
complete, and tf.train.CheckpointManager rewrites its `checkpoint` index file (the pointer to the latest checkpoint)
atomically only after that; a run killed at any moment therefore leaves the pointer on the last complete checkpoint,
which is what `restore` reads.

Beside each one it writes the backend-neutral state file of the same step (clipswap.training.state_files: G, D, both
optimisers, the CLIP mean), which the JAX loop reads, and which this loop reads when the newest state of a run is
one the JAX loop wrote.
"""

from __future__ import annotations

import logging
from pathlib import Path

import tensorflow as tf

from clipswap.training.state_files import CheckpointRestoreError, StateCheckpoints, state_groups
from clipswap.training.trainer import SwapTrainer

logger = logging.getLogger(__name__)

CHECKPOINT_PREFIX = "ckpt"


__all__ = ["CHECKPOINT_PREFIX", "CheckpointRestoreError", "TrainingCheckpoints"]


class TrainingCheckpoints:
    """Save and restore a SwapTrainer's complete training state in `directory`.

    Args:
        directory: folder of the checkpoints (created when needed).
        trainer: a compiled SwapTrainer (its optimisers built, so their slots exist before a restore).
        keep: how many recent checkpoints to keep.
        data_iterator: a tf.data (or distributed) iterator to save alongside, or None.
        state_files: also write the backend-neutral state file of each step (the run loop's choice).
    """

    def __init__(self, directory: str | Path, trainer: SwapTrainer, keep: int = 3, data_iterator=None,
                 state_files: bool = False):
        if trainer.g_optimizer is None or trainer.d_optimizer is None:
            raise ValueError("compile the trainer (both optimisers) before creating its checkpoints")
        self.directory = Path(directory)
        objects = {
            "generator": trainer.generator,
            "discriminator": trainer.discriminator,
            "g_optimizer": trainer.g_optimizer,
            "d_optimizer": trainer.d_optimizer,
            "step": trainer.step_counter,
        }
        if trainer.swap_loss.clip_mean is not None:
            objects["clip_mean"] = trainer.swap_loss.clip_mean
        if data_iterator is not None:
            objects["data"] = data_iterator
        self.trainer = trainer
        self.checkpoint = tf.train.Checkpoint(**objects)
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, str(self.directory), max_to_keep=keep, checkpoint_name=CHECKPOINT_PREFIX,
        )
        groups = state_groups(trainer.generator, trainer.discriminator, trainer.g_optimizer, trainer.d_optimizer,
                              trainer.swap_loss.clip_mean)
        self._state_files = StateCheckpoints(self.directory, groups, keep, lambda: trainer.step_counter.numpy())
        self.write_state_files = bool(state_files)

    @property
    def latest(self) -> str | None:
        """Prefix of the newest complete checkpoint, or None."""
        return self.manager.latest_checkpoint

    def save(self) -> str:
        """Write a checkpoint numbered by the trainer's global step; returns its prefix."""
        step = int(self.trainer.step_counter.numpy())
        path = self.manager.save(checkpoint_number=step)
        logger.info("saved checkpoint %s", path)
        if self.write_state_files:
            self._state_files.save()
        return path

    def restore_state_file(self, path: str | Path) -> int:
        """Restore a backend-neutral state file (one the JAX loop wrote) into the trainer; returns its step.

        Raises:
            CheckpointRestoreError: the file does not match this run's models and optimisers.
        """
        step = self._state_files.restore(path)
        self.trainer.step_counter.assign(step)
        return step

    def restore(self, path: str | None = None) -> int:
        """Restore `path` (default: the latest) and return the step it was taken at.

        Raises:
            FileNotFoundError: no checkpoint in the folder.
            CheckpointRestoreError: the checkpoint lacks something this run built (another configuration).
        """
        path = path or self.latest
        if path is None:
            raise FileNotFoundError(f"no checkpoint in {self.directory}")
        status = self.checkpoint.restore(path)
        try:
            status.assert_existing_objects_matched()
        except AssertionError as error:
            raise CheckpointRestoreError(
                f"checkpoint {path} does not match this run's models/optimisers (was it written with another "
                f"configuration or precision?): {str(error)[:800]}"
            ) from error
        step = int(self.trainer.step_counter.numpy())
        logger.info("restored checkpoint %s (step %d)", path, step)
        return step
