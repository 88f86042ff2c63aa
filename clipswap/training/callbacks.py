"""What the training loop does around each step, as keras.callbacks.Callback subclasses: TensorBoard scalars and image
grids, the held-out identity loss, the tqdm bar, the non-finite-loss guard and the periodic checkpoint.

The loop (clipswap.training.run) drives them through one keras.callbacks.CallbackList(callbacks, model=trainer,
steps=TOTAL, initial_step=START), so `self.params` holds {"steps", "initial_step"}:

    on_train_begin()              once; a fresh run (initial_step 0) scores and draws the untrained G here
    on_train_batch_end(step, logs) after every step: `step` is the global step just completed (1-based and counted
                                  across resumes: a run is one epoch that a resume continues), `logs` a dict of
                                  floats -- each loss term by name ("id", "rec", ..., "g_total", "d_adv", "r1",
                                  "d_total"), "lr_g", "lr_d", "step_time" (seconds) and "images_per_s"
    on_train_end()                once, also when the run stops on an error

They run in list order and synchronously (each overrides on_train_batch_end, so the CallbackList never dispatches
them to a thread): the guard raises before the checkpoint of a broken step is written.

Backends: the JAX loop (clipswap.training.jax_run) drives the same callbacks with no TensorBoard writer (writer None);
TensorFlow is imported only to write TensorBoard events.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Mapping
from pathlib import Path

import cv2
import keras
import numpy as np
from tqdm import tqdm

from clipswap.atomic import atomic_path
from clipswap.errors import ClipswapError
from clipswap.face.retrieval import retrieval_accuracy, retrieve_top1
from clipswap.losses.identity import identity_loss
from clipswap.losses.terms import SHOWN as SHOWN_FIGURES
from clipswap.losses.terms import tag
from clipswap.training.loss import SwapLoss

logger = logging.getLogger(__name__)


# tf.summary.scalar and tf.summary.image are the tensorboard package's (without it TensorFlow 2.21 raises
# TBNotInstalledError), which training does not need; these write the same event records through tf.summary.write,
# with the plugin named in a SummaryMetadata (tf.compat.v1's export of TensorFlow's own proto).
def _metadata(plugin: str) -> bytes:
    import tensorflow as tf

    metadata = tf.compat.v1.SummaryMetadata()
    metadata.plugin_data.plugin_name = plugin
    return metadata.SerializeToString()


def write_scalar(tag: str, value: float, step: int) -> None:
    """A TensorBoard scalar (plugin "scalars") in the default writer."""
    import tensorflow as tf

    tf.summary.write(tag, tf.constant(float(value), tf.float32), step=step, metadata=_metadata("scalars"))


def write_image(tag: str, image: np.ndarray, step: int) -> None:
    """A TensorBoard image (plugin "images": width, height, PNG) of [H, W, 3] uint8 RGB in the default writer."""
    import tensorflow as tf

    height, width = image.shape[:2]
    encoded = encode_png(image)
    tensor = tf.constant([str(width).encode(), str(height).encode(), encoded])
    tf.summary.write(tag, tensor, step=step, metadata=_metadata("images"))


def encode_png(image: np.ndarray) -> bytes:
    """[H, W, 3] uint8 RGB -> PNG bytes."""
    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(image[..., ::-1]))
    if not ok:
        raise ValueError(f"OpenCV could not encode a {image.shape} image as PNG")
    return encoded.tobytes()


class NonFiniteLossError(ClipswapError, RuntimeError):
    """A loss term became NaN or infinite; the run stops without checkpointing the broken state."""


def _fresh_run(callback: keras.callbacks.Callback) -> bool:
    """The run starts at step 0 (not a resume): the CallbackList's initial_step param, 0 when not given."""
    return not (callback.params or {}).get("initial_step", 0)


class NonFiniteGuard(keras.callbacks.Callback):
    """Raise NonFiniteLossError naming the terms that are not finite; place it before the CheckpointSaver.

    Args:
        last_checkpoint: returns the newest checkpoint kept (named in the message), or None.
    """

    def __init__(self, last_checkpoint: Callable[[], str | None] = lambda: None):
        super().__init__()
        self.last_checkpoint = last_checkpoint

    def on_train_batch_end(self, batch: int, logs: Mapping[str, float] | None = None) -> None:
        bad = {name: value for name, value in (logs or {}).items() if not math.isfinite(value)}
        if bad:
            shown = ", ".join(f"{name}={value}" for name, value in sorted(bad.items()))
            kept = self.last_checkpoint()
            where = f"the last good checkpoint is {kept}" if kept else "no checkpoint had been written yet"
            raise NonFiniteLossError(
                f"non-finite loss at step {batch}: {shown}. Training stopped; this step was not checkpointed and "
                f"{where}. Lower the learning rate or a loss weight (--set lr_g=..., --set weights.<term>=...), or "
                "use fp32 / bf16 instead of fp16, then --resume."
            )


class ScalarLogger(keras.callbacks.Callback):
    """Mean of every scalar over each `every`-step interval -> TensorBoard (`writer`) and a JSON-lines file."""

    def __init__(self, writer, every: int, jsonl_path: Path | None = None):
        super().__init__()
        self.writer = writer
        self.every = int(every)
        self.jsonl_path = jsonl_path
        self._sums: dict[str, float] = {}
        self._count = 0

    def on_train_batch_end(self, batch: int, logs: Mapping[str, float] | None = None) -> None:
        for name, value in (logs or {}).items():
            self._sums[name] = self._sums.get(name, 0.0) + float(value)
        self._count += 1
        if batch % self.every == 0:
            self.flush(batch)

    def flush(self, step: int) -> None:
        if not self._count:
            return
        means = {name: total / self._count for name, total in self._sums.items()}
        if self.writer is not None:
            with self.writer.as_default(step=step):
                for name, value in means.items():
                    write_scalar(tag(name), value, step)
            self.writer.flush()
        if self.jsonl_path is not None:
            with open(self.jsonl_path, "a", encoding="utf-8") as handle:
                handle.write(json.dumps({"step": step, **means}) + "\n")
        self._sums, self._count = {}, 0


class CheckpointSaver(keras.callbacks.Callback):
    """Write a checkpoint every `every` steps and after the last step (the CallbackList's "steps" param).

    Args:
        checkpoints: anything with a `save()` that writes the run's state (TrainingCheckpoints on TensorFlow,
            clipswap.training.state_files.StateCheckpoints on JAX).
    """

    def __init__(self, checkpoints, every: int):
        super().__init__()
        self.checkpoints = checkpoints
        self.every = int(every)

    def on_train_batch_end(self, batch: int, logs: Mapping[str, float] | None = None) -> None:
        if batch % self.every == 0 or batch == (self.params or {}).get("steps"):
            self.checkpoints.save()


def to_uint8(images: np.ndarray) -> np.ndarray:
    """[..., 3] float in [-1, 1] -> uint8 [0, 255] (values outside are clipped)."""
    return np.round((np.clip(images, -1.0, 1.0) + 1.0) * 127.5).astype(np.uint8)


def image_grid(target: np.ndarray, source: np.ndarray, swap: np.ndarray) -> np.ndarray:
    """Rows = samples, columns target | source | swap: [B, S, S, 3] each in [-1, 1] -> [B*S, 3*S, 3] uint8 RGB."""
    rows = np.concatenate([target, source, swap], axis=2)
    return to_uint8(rows.reshape(-1, rows.shape[2], 3))


class FixedBatchCallback(keras.callbacks.Callback):
    """A callback that runs G on one fixed batch ({"target", "source"} [B, S, S, 3] in [-1, 1]) every `every` steps,
    through the loss's G (`loss`: the run's SwapLoss)."""

    def __init__(
        self, loss: SwapLoss, batch: Mapping[str, np.ndarray], every: int, writer,
    ):
        super().__init__()
        self.loss = loss
        tensor = lambda array: keras.ops.convert_to_tensor(np.asarray(array, np.float32))  # noqa: E731
        self.target = tensor(batch["target"])
        self.source = tensor(batch["source"])
        # Identity labels of the sources (the data pipeline's eval batch has them); None when not given.
        self.source_label = np.asarray(batch["source_label"]) if "source_label" in batch else None
        # A warped-source generator's source images: each source's face warped onto its target, and for the
        # wrong-source control the next one's (clipswap.training.run.heldout_warps); None otherwise.
        self.warped = tensor(batch["warped"]) if "warped" in batch else None
        self.warped_control = tensor(batch["warped_control"]) if "warped_control" in batch else None
        self.every = int(every)
        self.writer = writer


class ImageGridWriter(FixedBatchCallback):
    """Every `every` steps: swap a fixed batch and write the grid to TensorBoard and to `folder/step_XXXXXXX.png`."""

    def __init__(
        self, loss: SwapLoss, batch: Mapping[str, np.ndarray], every: int, writer,
        folder: Path | None,
    ):
        super().__init__(loss, batch, every, writer)
        self.folder = folder

    def write(self, step: int) -> np.ndarray:
        swap = keras.ops.convert_to_numpy(self.loss.swap(self.target, self.source, training=False,
                                                         generator_source=self.warped))
        grid = image_grid(keras.ops.convert_to_numpy(self.target), keras.ops.convert_to_numpy(self.source), swap)
        if self.writer is not None:
            with self.writer.as_default(step=step):
                write_image("swaps/target_source_swap", grid, step)
            self.writer.flush()
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
            with atomic_path(self.folder / f"step_{step:07d}.png") as temporary:
                temporary.write_bytes(encode_png(grid))
        return grid

    def on_train_begin(self, logs: Mapping[str, float] | None = None) -> None:
        if _fresh_run(self):
            self.write(0)

    def on_train_batch_end(self, batch: int, logs: Mapping[str, float] | None = None) -> None:
        if batch % self.every == 0:
            self.write(batch)


class HeldoutIdentity(FixedBatchCallback):
    """Identity loss (eq. 6) of G on a fixed held-out batch every `every` steps -> TensorBoard and a JSON-lines file.

    `history` keeps (step, loss) pairs; a fresh run scores the untrained G at step 0 (on_train_begin);
    `evaluate(step)` can be called directly.
    """

    def __init__(
        self, loss: SwapLoss, batch: Mapping[str, np.ndarray], every: int, writer,
        jsonl_path: Path | None,
    ):
        super().__init__(loss, batch, every, writer)
        self.jsonl_path = jsonl_path
        self.history: list[tuple[int, float]] = []
        # The encoders are frozen: the sources' embeddings and G's identity input are the same at every evaluation.
        self.source_embedding, self.identity_in = loss.heldout_inputs(self.source)

    def evaluate(self, step: int) -> float:
        src = self.source_embedding
        source = self.source if self.warped is None else self.warped
        swap = self.loss.heldout_swap_embedding(self.target, self.identity_in, source=source)
        value = float(keras.ops.convert_to_numpy(identity_loss(src, swap)))
        options = {} if self.warped_control is None else {"control_source": self.warped_control}
        control_swap = self.loss.heldout_swap_embedding(self.target, self.identity_in, shift=1, source=source,
                                                           **options)
        control = float(keras.ops.convert_to_numpy(identity_loss(src, control_swap)))
        record = {"step": step, "heldout_id_loss": value, "heldout_id_loss_wrong_source": control}
        if self.source_label is not None:
            # Top-1 ID retrieval among the batch's sources (the paper's ID metric; chance = 1 / identities).
            labels = [str(label) for label in self.source_label]
            record["heldout_id_retrieval"] = retrieval_accuracy(
                retrieve_top1(keras.ops.convert_to_numpy(swap), keras.ops.convert_to_numpy(src), labels), labels
            )
        self.history.append((step, value))
        if self.writer is not None:
            with self.writer.as_default(step=step):
                write_scalar("heldout/id_loss", value, step)
                write_scalar("heldout/id_loss_wrong_source", control, step)
                if "heldout_id_retrieval" in record:
                    write_scalar("heldout/id_retrieval_percent", record["heldout_id_retrieval"], step)
            self.writer.flush()
        if self.jsonl_path is not None:
            with open(self.jsonl_path, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(record) + "\n")
        logger.info(
            "step %d: held-out identity loss %.4f (wrong-source control %.4f%s)", step, value, control,
            f", ID retrieval {record['heldout_id_retrieval']:.1f} %" if "heldout_id_retrieval" in record else "",
        )
        return value

    def on_train_begin(self, logs: Mapping[str, float] | None = None) -> None:
        if _fresh_run(self):
            self.evaluate(0)

    def on_train_batch_end(self, batch: int, logs: Mapping[str, float] | None = None) -> None:
        if batch % self.every == 0:
            self.evaluate(batch)


class ProgressBar(keras.callbacks.Callback):
    """tqdm bar over the run's steps (the CallbackList's "steps" and "initial_step" params) showing the main figures
    (clipswap.losses.terms.SHOWN: G total, id, rec, contra, D total, images/s)."""

    SHOWN = SHOWN_FIGURES

    def __init__(self, disable: bool = False):
        super().__init__()
        self.disable = bool(disable)
        self.bar: tqdm | None = None

    def on_train_begin(self, logs: Mapping[str, float] | None = None) -> None:
        params = self.params or {}
        self.bar = tqdm(total=params.get("steps"), initial=params.get("initial_step", 0), desc="train", unit="step",
                        dynamic_ncols=True, disable=self.disable)

    def on_train_batch_end(self, batch: int, logs: Mapping[str, float] | None = None) -> None:
        logs = logs or {}
        self.bar.update(1)
        self.bar.set_postfix({name: f"{logs[name]:.3g}" for name in self.SHOWN if name in logs}, refresh=False)

    def on_train_end(self, logs: Mapping[str, float] | None = None) -> None:
        if self.bar is not None:  # None when an earlier callback's on_train_begin failed
            self.bar.close()
