"""The training callbacks (clipswap.training.callbacks) as keras.callbacks.Callbacks driven by a CallbackList the way
run.py drives them: the non-finite guard before the checkpoint, the held-out score (and its step-0 score on a fresh
run only), the scalar means, the image grid, and TensorBoard event records written without the tensorboard package."""

from __future__ import annotations

import json
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from clipswap.training.callbacks import (
    CheckpointSaver,
    HeldoutIdentity,
    ImageGridWriter,
    NonFiniteGuard,
    NonFiniteLossError,
    ProgressBar,
    ScalarLogger,
    image_grid,
)

from conftest import TRAINER_SIZE as SIZE


class _FixedEmbeddings:
    """Stands in for SwapLoss in HeldoutIdentity: the swaps' embeddings are the sources' rolled by `shift`."""

    def __init__(self, sources: np.ndarray, shift: int):
        self.sources, self.shift = tf.constant(sources), shift

    def heldout_inputs(self, source):
        return self.sources, self.sources

    def heldout_swap_embedding(self, target, identity_in, shift=0, source=None):
        return tf.roll(identity_in, -(self.shift + shift), axis=0)


class _Negative:
    """Stands in for SwapLoss in ImageGridWriter: the swap is the negative of the target."""

    def swap(self, target, source, training=False, generator_source=None):
        return -target


class _Checkpoints:
    """Stands in for TrainingCheckpoints: records the steps it was asked to save at."""

    def __init__(self):
        self.saved: list[int] = []
        self.step = 0
        self.latest = None

    def save(self) -> str:
        self.saved.append(self.step)
        self.latest = f"ckpt-{self.step}"
        return self.latest


def _heldout_batch() -> dict[str, np.ndarray]:
    return {"target": np.zeros((4, SIZE, SIZE, 3), "float32"), "source": np.zeros((4, SIZE, SIZE, 3), "float32"),
            "source_label": np.array([3, 5, 7, 9])}


def _drive(callbacks, steps: int, initial_step: int, checkpoints: _Checkpoints, logs_at=lambda step: {"id": 0.5}):
    """What run.py's loop does with its callbacks, over steps initial_step + 1 .. steps."""
    driver = keras.callbacks.CallbackList(callbacks, steps=steps, initial_step=initial_step)
    try:
        driver.on_train_begin()
        for step in range(initial_step + 1, steps + 1):
            checkpoints.step = step
            driver.on_train_batch_end(step, logs_at(step))
    finally:
        driver.on_train_end()


def test_every_callback_is_a_keras_callback():
    for kind in (NonFiniteGuard, ScalarLogger, CheckpointSaver, HeldoutIdentity, ImageGridWriter, ProgressBar):
        assert issubclass(kind, keras.callbacks.Callback), kind


def test_nonfinite_guard_message_names_the_term_and_the_kept_checkpoint():
    guard = NonFiniteGuard(lambda: "/run/checkpoints/ckpt-40")
    guard.on_train_batch_end(41, {"id": 0.5, "rec": 0.1})
    with pytest.raises(NonFiniteLossError, match=r"step 42: rec=nan.*ckpt-40"):
        guard.on_train_batch_end(42, {"id": 0.5, "rec": float("nan")})
    with pytest.raises(NonFiniteLossError, match="no checkpoint had been written"):
        NonFiniteGuard().on_train_batch_end(1, {"g_total": float("inf")})


def test_a_non_finite_step_is_not_checkpointed_and_the_run_ends_cleanly():
    checkpoints = _Checkpoints()
    ended = []
    callbacks = [NonFiniteGuard(lambda: checkpoints.latest), CheckpointSaver(checkpoints, every=1),
                 keras.callbacks.LambdaCallback(on_train_end=lambda logs: ended.append(True))]
    with pytest.raises(NonFiniteLossError, match=r"step 3: id=nan.*ckpt-2"):
        _drive(callbacks, 5, 0, checkpoints, lambda step: {"id": float("nan") if step == 3 else 0.5})
    assert checkpoints.saved == [1, 2]
    assert ended == [True]  # on_train_end runs after the error too


def test_image_grid_layout():
    target = np.full((2, 4, 4, 3), -1.0, "float32")
    source = np.zeros((2, 4, 4, 3), "float32")
    swap = np.full((2, 4, 4, 3), 2.0, "float32")  # out of range: clipped to white
    grid = image_grid(target, source, swap)
    assert grid.shape == (8, 12, 3) and grid.dtype == np.uint8
    assert (grid[:, :4] == 0).all() and (grid[:, 4:8] == 128).all() and (grid[:, 8:] == 255).all()


@pytest.mark.parametrize(("shift", "loss", "retrieval"), [(0, 0.0, 100.0), (1, 1.0, 0.0)])
def test_heldout_callback_logs_loss_control_and_id_retrieval(tmp_path, shift, loss, retrieval):
    """Orthogonal source embeddings: swaps that carry their own source's identity score loss 0 and 100 % retrieval,
    swaps that carry the next sample's score loss 1 (orthogonal) and 0 %."""
    sources = np.eye(4, 8, dtype="float32")
    callback = HeldoutIdentity(_FixedEmbeddings(sources, shift), _heldout_batch(), every=2, writer=None,
                               jsonl_path=tmp_path / "heldout.jsonl")
    callback.on_train_batch_end(1, {})  # not an evaluation step
    callback.on_train_batch_end(2, {})
    records = [json.loads(line) for line in (tmp_path / "heldout.jsonl").read_text().splitlines()]
    assert len(records) == 1 and records[0]["step"] == 2
    assert records[0]["heldout_id_loss"] == pytest.approx(loss, abs=1e-6)
    assert records[0]["heldout_id_loss_wrong_source"] == pytest.approx(1.0, abs=1e-6)  # one more roll: orthogonal
    assert records[0]["heldout_id_retrieval"] == retrieval


@pytest.mark.parametrize("initial_step", [0, 3])
def test_a_callback_list_drives_them_as_the_loop_does(tmp_path, initial_step):
    """A fresh run scores and draws the untrained G at step 0, a resumed one does not; the held-out score, the grid,
    the scalar means and the checkpoints follow their intervals, the last step is checkpointed."""
    checkpoints = _Checkpoints()
    heldout = HeldoutIdentity(_FixedEmbeddings(np.eye(4, 8, dtype="float32"), 0), _heldout_batch(), every=2,
                              writer=None, jsonl_path=tmp_path / "heldout.jsonl")
    grids = ImageGridWriter(_Negative(), _heldout_batch(), every=4, writer=None, folder=tmp_path / "images")
    scalars = ScalarLogger(None, every=2, jsonl_path=tmp_path / "metrics.jsonl")
    bar = ProgressBar(disable=True)
    callbacks = [NonFiniteGuard(lambda: checkpoints.latest), scalars, heldout, grids, bar,
                 CheckpointSaver(checkpoints, every=2)]
    _drive(callbacks, 5, initial_step, checkpoints, lambda step: {"id": float(step)})

    fresh = initial_step == 0
    assert [step for step, _ in heldout.history] == ([0, 2, 4] if fresh else [4])
    assert sorted(path.name for path in (tmp_path / "images").iterdir()) == (
        ["step_0000000.png", "step_0000004.png"] if fresh else ["step_0000004.png"])
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    # Means over each interval: (1 + 2) / 2 at step 2, (3 + 4) / 2 at step 4; a resume's first interval is step 4.
    assert rows == ([{"step": 2, "id": 1.5}, {"step": 4, "id": 3.5}] if fresh else [{"step": 4, "id": 4.0}])
    assert checkpoints.saved == ([2, 4, 5] if fresh else [4, 5])
    assert (bar.bar.total, bar.bar.n) == (5, initial_step)  # a disabled tqdm keeps its initial count


def _events(folder) -> list:
    files = [str(path) for path in folder.iterdir()]
    return [tf.compat.v1.Event.FromString(record.numpy()) for record in tf.data.TFRecordDataset(files)]


def test_tensorboard_records_name_their_plugin_and_hold_the_values(tmp_path):
    """What TensorBoard reads: a scalar record per figure (plugin "scalars", the table's tag) and an image record
    (plugin "images": width, height, PNG) -- written through tf.summary.write, without the tensorboard package."""
    writer = tf.summary.create_file_writer(str(tmp_path / "logs"))
    scalars = ScalarLogger(writer, every=1)
    scalars.on_train_batch_end(1, {"id": 0.25, "r1": 3.0, "lr_g": 1e-4, "images_per_s": 8.0})
    grids = ImageGridWriter(_Negative(), _heldout_batch(), every=1, writer=writer, folder=None)
    grid = grids.write(1)
    writer.flush()

    values = {}
    for event in _events(tmp_path / "logs"):
        for value in event.summary.value:
            values[value.tag] = (value.metadata.plugin_data.plugin_name, tf.make_ndarray(value.tensor), event.step)
    for tag, expected in (("loss_g/id", 0.25), ("loss_d/r1", 3.0), ("optimizer/lr_g", 1e-4),
                          ("speed/images_per_s", 8.0)):
        plugin, tensor, step = values[tag]
        assert plugin == "scalars" and step == 1 and math.isclose(float(tensor), expected, rel_tol=1e-6), tag
    plugin, tensor, step = values["swaps/target_source_swap"]
    assert plugin == "images" and step == 1
    width, height, png = tensor.tolist()
    assert (int(width), int(height)) == (grid.shape[1], grid.shape[0])
    np.testing.assert_array_equal(tf.io.decode_png(png).numpy(), grid)
