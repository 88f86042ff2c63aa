"""run_training end to end on synthetic data: a two-replica MirroredStrategy run on a CPU split into two logical
devices (in a subprocess: the split must happen before TensorFlow starts), and a non-finite loss stopping the run
with the last good checkpoint kept. Both load SFace and trace the full step: slow."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import tensorflow as tf
    from clipswap.training.run import split_cpu, make_strategy, run_training
    from clipswap.config import resolve_config

    replicas, nan_from, run_dir = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    if replicas > 1:
        split_cpu(replicas)
    config = resolve_config("tiny", overrides={
        "model.image_size": 32, "model.base_filters": 4, "batch_size": 4, "steps": 3, "checkpoint_every": 1,
        "log_every": 1, "image_every": 2, "eval_every": 2, "eval_batch_size": 2})
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (24, 32, 32, 3)).astype("float32")
    if nan_from >= 0:
        images[nan_from * 4:] = np.nan
    same = np.zeros(24, "float32"); same[::4] = 1

    def dataset_fn(seed):
        source = images.reshape(6, 4, 32, 32, 3)[:, ::-1].reshape(24, 32, 32, 3)
        data = {"target": images, "source": source, "same": same,
                "target_label": np.zeros(24, "int64"), "source_label": np.zeros(24, "int64")}
        return tf.data.Dataset.from_tensor_slices(data).batch(4, drop_remainder=True).repeat()

    eval_batch = {"target": images[:2], "source": images[2:4], "source_label": np.array([1, 2])}
    strategy = make_strategy(replicas)
    try:
        result = run_training(config, "unused", run_dir, strategy=strategy, progress=False,
                              dataset_fn=dataset_fn, eval_batch=eval_batch)
        print("RESULT " + json.dumps({"replicas": strategy.num_replicas_in_sync, "final_step": result.final_step,
                                      "logs": result.last_logs, "exported": str(result.exported)}))
    except Exception as error:  # reported to the test, which checks its type and message
        print("ERROR " + type(error).__name__ + " " + json.dumps(str(error)))
    """
)


def run_script(replicas: int, nan_from: int, run_dir) -> str:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(replicas), str(nan_from), str(run_dir)],
        capture_output=True,
        text=True,
        timeout=900,
        env={**__import__("os").environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith(("RESULT ", "ERROR "))]
    assert lines, f"no result (rc {result.returncode}):\n{result.stderr[-3000:]}"
    return lines[-1]


@pytest.mark.slow
def test_two_replica_mirrored_run_on_cpu_takes_the_steps_with_finite_losses(tmp_path):
    line = run_script(2, -1, tmp_path / "run")
    assert line.startswith("RESULT "), line
    result = json.loads(line[len("RESULT ") :])
    assert result["replicas"] == 2 and result["final_step"] == 3
    assert {"id", "rec", "perceptual", "att", "adv", "g_total", "d_adv", "r1", "d_total"} <= set(result["logs"])
    assert all(v == v and abs(v) != float("inf") for v in result["logs"].values())
    run = tmp_path / "run"
    assert (run / "generator.keras").is_file() and (run / "generator.json").is_file()
    assert json.loads((run / "config.json").read_text())["data"]["batch_size"] == 4
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]
    assert sorted(p.name for p in (run / "images").iterdir()) == ["step_0000000.png", "step_0000002.png"]
    heldout = [json.loads(line) for line in (run / "heldout.jsonl").read_text().splitlines()]
    assert [record["step"] for record in heldout] == [0, 2]
    for record in heldout:
        assert 0 <= record["heldout_id_loss"] <= 2 and 0 <= record["heldout_id_loss_wrong_source"] <= 2
        assert record["heldout_id_retrieval"] in (0.0, 50.0, 100.0)  # 2 sources of 2 identities
    from clipswap.checkpoints.native import load_generator

    assert load_generator(run / "generator.keras").step == 3


@pytest.mark.slow
def test_non_finite_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path):
    line = run_script(1, 2, tmp_path / "run")  # batches 0 and 1 are finite, batch 2 (step 3) holds NaN
    assert line.startswith("ERROR NonFiniteLossError"), line
    message = json.loads(line.split(" ", 2)[2])
    assert "non-finite loss at step 3" in message and "state-00000002.npz" in message
    checkpoints = sorted(p.name for p in (tmp_path / "run" / "checkpoints").glob("*.npz"))
    assert checkpoints == ["state-00000001.npz", "state-00000002.npz"]
    assert not (tmp_path / "run" / "generator.keras").exists()
