"""The backend-neutral state files: a save and a restore give back every value (Keras and bare TensorFlow
variables), the last K are kept with their companions, the CLIP mean crosses between the backends' variable kinds, a
file of another configuration is refused naming the first difference, and `clipswap train --backend jax` in a process
whose Keras already runs TensorFlow says so in one sentence."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner

from clipswap.cli import main
from clipswap.training.state_files import CheckpointRestoreError, StateCheckpoints, latest_state, newest_checkpoint


def _groups(width: int = 3):
    dense = keras.layers.Dense(width, name="probe_dense")
    dense.build((None, 2))
    clip_mean = [tf.Variable(tf.zeros([4])), tf.Variable(tf.constant(0, tf.int64))]
    return {"generator": dense.weights, "clip_mean": clip_mean}


def test_save_restore_round_trip_and_keep(tmp_path):
    groups = _groups()
    step = {"n": 0}
    files = StateCheckpoints(tmp_path, groups, keep=2, step=lambda: step["n"])
    values = [np.random.default_rng(i).normal(size=v.shape).astype(np.float32) for i, v in
              enumerate(groups["generator"])]
    for variable, value in zip(groups["generator"], values, strict=True):
        variable.assign(value)
    groups["clip_mean"][0].assign([1.0, 2.0, 3.0, 4.0])
    groups["clip_mean"][1].assign(7)
    for step["n"] in (3, 6, 9):
        (tmp_path / f"state-{step['n']:08d}.tfdata.index").write_bytes(b"")  # a companion, written first
        files.save()
    (tmp_path / "state-00000012.tfdata.index").write_bytes(b"")  # a save killed before its state file
    (tmp_path / "notes.txt").write_text("not ours")
    step["n"] = 10
    files.save()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "notes.txt", "state-00000009.npz", "state-00000009.tfdata.index", "state-00000010.npz"]
    assert latest_state(tmp_path)[0] == 10
    for variable in groups["generator"] + groups["clip_mean"]:
        variable.assign(tf.zeros_like(variable))
    assert files.restore() == 10
    for variable, value in zip(groups["generator"], values, strict=True):
        np.testing.assert_array_equal(np.asarray(variable), value)
    np.testing.assert_array_equal(groups["clip_mean"][0].numpy(), [1, 2, 3, 4])
    assert int(groups["clip_mean"][1].numpy()) == 7


def test_the_clip_mean_crosses_from_keras_variables_to_bare_tensorflow_ones(tmp_path):
    """The JAX loop keeps the CLIP mean in keras.Variables (a path, int32 count), the TensorFlow loop in bare
    tf.Variables (no path, int64 count): the state file matches them by shape."""
    written = {"clip_mean": [keras.Variable(np.arange(4, dtype=np.float32), name="clip_mean_tracker_mean"),
                             keras.Variable(5, dtype="int32", name="clip_mean_tracker_count")]}
    StateCheckpoints(tmp_path, written, keep=1, step=lambda: 4).save()
    read = {"clip_mean": [tf.Variable(tf.zeros([4])), tf.Variable(tf.constant(0, tf.int64))]}
    assert StateCheckpoints(tmp_path, read, keep=1, step=lambda: 0).restore() == 4
    np.testing.assert_array_equal(read["clip_mean"][0].numpy(), [0, 1, 2, 3])
    assert read["clip_mean"][1].dtype == tf.int64 and int(read["clip_mean"][1].numpy()) == 5
    with pytest.raises(CheckpointRestoreError, match=r"clip_mean .*\(4,\) saved, \(5,\) built"):
        StateCheckpoints(tmp_path, {"clip_mean": [tf.Variable(tf.zeros([5])), tf.Variable(tf.constant(0, tf.int64))]},
                         keep=1, step=lambda: 0).restore()


def test_the_newest_checkpoint_may_be_an_earlier_versions_tf_train_one(tmp_path):
    assert newest_checkpoint(tmp_path) is None
    (tmp_path / "ckpt-7.index").write_bytes(b"")
    (tmp_path / "ckpt-12.index").write_bytes(b"")
    assert newest_checkpoint(tmp_path) == (12, tmp_path / "ckpt-12")
    StateCheckpoints(tmp_path, _groups(), keep=1, step=lambda: 12).save()
    assert newest_checkpoint(tmp_path) == (12, tmp_path / "state-00000012.npz")


def test_a_file_of_another_configuration_is_refused(tmp_path):
    StateCheckpoints(tmp_path, _groups(3), keep=1, step=lambda: 1).save()
    with pytest.raises(CheckpointRestoreError, match=r"first difference: .*\(2, 3\) saved, .*\(2, 5\) built"):
        StateCheckpoints(tmp_path, _groups(5), keep=1, step=lambda: 1).restore()
    with pytest.raises(FileNotFoundError):
        StateCheckpoints(tmp_path / "none", _groups(3), keep=1, step=lambda: 1).restore()


def test_jax_backend_after_keras_started_on_tensorflow_is_one_sentence(tmp_path):
    result = CliRunner().invoke(main, ["train", "--backend", "jax", "--data", str(tmp_path), "--run-dir",
                                       str(tmp_path / "run"), "--preset", "tiny", "--steps", "1"])
    assert result.exit_code == 1
    assert "Keras was already started on tensorflow in this process" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "run").exists()
