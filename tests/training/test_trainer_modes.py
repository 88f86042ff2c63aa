"""The trainer's optional modes: mixed float16 with dynamic loss scaling (--precision fp16; the checkpoint keeps the
scale), an XLA-compiled train step (--xla), and MultiWorkerMirroredStrategy from TF_CONFIG (two worker processes on
localhost)."""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from clipswap.losses.composite import LossWeights
from clipswap.training.run import POLICIES

from conftest import TRAINER_SIZE as SIZE
from conftest import run_steps, synthetic_batches

WEIGHTS = LossWeights(id=10, rec=5, perceptual=0.2, contra=0.3, att=0.5, adv=0.1, r1_gamma=10)


@pytest.fixture
def make_mode_trainer(make_trainer):
    """Every G term but the FaceDancer ones (with CLIP: its augmentations are in the step; R1's double backprop
    always). fp16: build_trainer wraps Adam in LossScaleOptimizer; the caller has set the global policy (as
    run.set_precision does) before this builds. xla: the step is compiled with jit_compile."""

    def make(*, fp16: bool = False, xla: bool = False, eager: bool = True, clip: bool = True):
        weights = WEIGHTS if clip else LossWeights(**{**WEIGHTS.as_dict(), "contra": 0.0})
        return make_trainer(weights, clip=clip, eager=eager, precision="fp16" if fp16 else "fp32", xla=xla)

    return make


def moved_fraction(before: list[np.ndarray], variables) -> float:
    moved = [not np.array_equal(a, np.array(b)) for a, b in zip(before, variables, strict=True)]
    return sum(moved) / len(moved)


EXPECTED_TERMS = {"id", "rec", "perceptual", "contra", "att", "adv", "g_total", "d_adv", "r1", "d_total"}


@pytest.mark.slow
def test_fp16_steps_are_finite_update_g_and_d_and_keep_float32_variables(restore_policy, make_mode_trainer,
                                                                         tmp_path):
    keras.config.set_dtype_policy(POLICIES["fp16"])  # what run.set_precision("fp16") does
    trainer = make_mode_trainer(fp16=True)
    assert isinstance(trainer.g_optimizer, keras.optimizers.LossScaleOptimizer)
    assert isinstance(trainer.d_optimizer, keras.optimizers.LossScaleOptimizer)
    conv = next(layer for layer in trainer.generator.layers if isinstance(layer, keras.layers.Conv2D))
    assert conv.compute_dtype == "float16" and conv.variable_dtype == "float32"
    g_before = [np.array(v) for v in trainer.generator.trainable_variables]
    d_before = [np.array(v) for v in trainer.discriminator.trainable_variables]
    initial_scale = float(trainer.g_optimizer.scale_loss(tf.constant(1.0)))

    # Dynamic loss scaling skips the steps whose scaled fp16 gradients overflow (halving the scale each time), so
    # take enough steps for some to be applied: the scale starts at 2^15.
    logs = run_steps(trainer, iter(synthetic_batches(n=8, shuffle=False)), 6)

    for step_logs in logs:
        assert set(step_logs) == EXPECTED_TERMS
        assert all(math.isfinite(v) for v in step_logs.values()), step_logs
    for optimizer in (trainer.g_optimizer, trainer.d_optimizer):
        scale = float(optimizer.dynamic_scale.numpy())
        assert math.isfinite(scale) and 0 < scale <= initial_scale
        assert int(optimizer.iterations.numpy()) >= 1, "every fp16 step was skipped"
    assert moved_fraction(g_before, trainer.generator.trainable_variables) > 0.8
    assert moved_fraction(d_before, trainer.discriminator.trainable_variables) > 0.8
    for variable in trainer.generator.variables + trainer.discriminator.variables:
        assert variable.dtype == "float32", variable.path
    assert int(trainer.step_counter.numpy()) == 6

    # The state file keeps the loss scale: a fresh fp16 trainer resumes with the scale and counts the run reached.
    from clipswap.training.checkpointing import TrainingCheckpoints

    TrainingCheckpoints(tmp_path, trainer, keep=1).save()
    resumed = make_mode_trainer(fp16=True)
    assert TrainingCheckpoints(tmp_path, resumed, keep=1).restore() == 6
    for saved, restored in ((trainer.g_optimizer, resumed.g_optimizer), (trainer.d_optimizer, resumed.d_optimizer)):
        assert float(restored.dynamic_scale.numpy()) == float(saved.dynamic_scale.numpy())
        assert int(restored.iterations.numpy()) == int(saved.iterations.numpy())


@pytest.mark.slow
def test_xla_step_matches_the_eager_step(make_mode_trainer):
    # Without CLIP (the offline configuration, e.g. --preset tiny): CLIP's bicubic resize has no XLA kernel, see
    # test_xla_with_clip_is_refused_before_anything_loads.
    eager = make_mode_trainer(clip=False)
    eager_logs = run_steps(eager, iter(synthetic_batches(n=8, shuffle=False)), 1)[0]
    started = time.perf_counter()
    compiled = make_mode_trainer(xla=True, eager=False, clip=False)
    assert compiled.jit_compile
    xla_logs = run_steps(compiled, iter(synthetic_batches(n=8, shuffle=False)), 3)
    elapsed = time.perf_counter() - started
    for step_logs in xla_logs:
        assert set(step_logs) == EXPECTED_TERMS - {"contra"}
        assert all(math.isfinite(v) for v in step_logs.values()), step_logs
    # Same seed, same initial weights, same batch: the first step's losses are a function of those alone.
    for term, value in eager_logs.items():
        assert xla_logs[0][term] == pytest.approx(value, rel=1e-3, abs=1e-5), term
    assert int(compiled.step_counter.numpy()) == 3
    print(f"XLA: build + compile + 3 steps {elapsed:.1f} s")


def test_xla_with_clip_is_refused_before_anything_loads(tmp_path):
    from clipswap.config import RunFiles, resolve_run
    from clipswap.training.run import TrainingSetupError, run_training

    config, files = resolve_run("tiny", overrides={"xla": True, "clip_preset": "unused",
                                                   "model.clip_variant": "clip_vit_base_patch32"})
    assert config.model.clip_variant is not None and files == RunFiles(clip_preset="unused")
    with pytest.raises(TrainingSetupError, match="ResizeBicubic"):
        run_training(config, tmp_path / "no-data", tmp_path / "run", files=files, progress=False)


# --- MultiWorkerMirroredStrategy -----------------------------------------------------------------------------------


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("localhost", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def write_tiny_shards(folder) -> None:
    from clipswap.facedata.shards import FaceRecord, write_shards

    rng = np.random.default_rng(0)
    records = [
        FaceRecord(image=tf.io.encode_png(rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)).numpy(),
                   label=i % 4, identity=f"person{i % 4}", path=f"/synthetic/{i}.png", size=SIZE,
                   landmarks=np.zeros((5, 2), "float32"), landmarks_original=np.zeros((5, 2), "float32"))
        for i in range(16)
    ]
    write_shards(records, folder, len(records), shard_size=8)  # one training shard, one held out


@pytest.mark.slow
def test_two_worker_multiworker_mirrored_run_on_localhost(tmp_path):
    data = tmp_path / "shards"
    write_tiny_shards(data)
    run_dir = tmp_path / "run"
    ports = free_ports(2)
    cluster = {"worker": [f"localhost:{port}" for port in ports]}
    command = [
        os.path.join(os.path.dirname(sys.executable), "clipswap"), "train", "--preset", "tiny", "--data", str(data),
        "--run-dir", str(run_dir), "--steps", "3", "--batch-size", "4", "--checkpoint-every", "2", "--no-progress",
        "--set", f"model.image_size={SIZE}", "--set", "model.base_filters=4", "--set", "log_every=1",
        "--set", "eval_every=2", "--set", "image_every=2", "--set", "eval_batch_size=2", "--set", "shuffle_buffer=8",
    ]
    worker_tmp = tmp_path / "tmp"  # where the non-chief's private run folder goes (tempfile honours TMPDIR)
    worker_tmp.mkdir()
    workers = []
    for index in range(2):
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "", "TMPDIR": str(worker_tmp),
               "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}
        workers.append(subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                        cwd=tmp_path))
    outputs = []
    try:
        for worker in workers:
            outputs.append(worker.communicate(timeout=300))
    finally:
        for worker in workers:
            if worker.poll() is None:  # a hung collective: never leave it running
                worker.kill()
                worker.communicate()
    for index, (worker, (out, err)) in enumerate(zip(workers, outputs, strict=True)):
        assert worker.returncode == 0, f"worker {index} rc {worker.returncode}:\n{out}\n{err[-3000:]}"
        assert "trained steps 0 -> 3" in out, out
    assert "exported the generator" in outputs[0][0]
    assert "exported the generator" not in outputs[1][0], "only the chief exports"

    # Only the chief wrote the run folder: every step's losses, checkpoints, the export.
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [1, 2, 3]
    for m in metrics:
        assert all(math.isfinite(v) for k, v in m.items() if isinstance(v, float)), m
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir())[-1] == "state-00000003.npz"
    assert (run_dir / "generator.keras").is_file() and (run_dir / "generator.json").is_file()
    assert not list(worker_tmp.glob("clipswap-worker*")), "the non-chief's private folder is removed"
