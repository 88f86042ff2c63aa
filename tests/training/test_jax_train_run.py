"""`clipswap train --backend jax` end to end on a face pack, with TensorFlow unimportable: the tiny preset trains 10
steps, is killed (SIGKILL) after its first checkpoint and resumed, every step is logged once, and its exported
generator swaps a real photo through `clipswap swap`; then the run crosses backends both ways -- TensorFlow resumes
the JAX run's state file, and JAX resumes the TensorFlow run's -- each continuing from the weights it found."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import REPO_ROOT, shared_data

#: A short run: steps, checkpoints every 2, and the options that keep its evaluation small.
TINY = ["--preset", "tiny", "--no-progress", "--checkpoint-every", "2", "--batch-size", "4", "--set", "log_every=1",
        "--set", "eval_every=5", "--set", "eval_batch_size=4", "--set", "image_every=5", "--set", "keep_checkpoints=3"]
LR = 5e-4  # the tiny preset's lr_g and lr_d


def _data(root: Path) -> tuple[Path, Path]:
    """(aligned shards, the face pack of the same faces): 16 smooth random 64 px faces, 8 people with 2 photos each,
    two shards (the last held out)."""
    from clipswap.facedata.pack import write_pack
    from clipswap.facedata.shards import FaceRecord, write_shards

    faces = []
    for index in range(16):
        rgb = cv2.resize(np.random.default_rng(index).integers(0, 256, (8, 8, 3), dtype=np.uint8), (64, 64))
        png = cv2.imencode(".png", rgb)[1].tobytes()
        points = np.zeros((5, 2), np.float32)
        faces.append(FaceRecord(png, index // 2, f"person{index // 2}", f"/x/{index}.jpg", 64, points, points))
    (root / "aligned").mkdir(parents=True)
    write_shards(faces, root / "aligned", len(faces), shard_size=8)
    write_pack(root / "aligned", root / "pack")
    return root / "aligned", root / "pack"


def _run(args: list[str], jax: bool, timeout: int = 900) -> subprocess.CompletedProcess:
    command = [sys.executable, str(REPO_ROOT / "tests" / "jax_cli.py")] if jax else [sys.executable, "-m",
                                                                                     "clipswap.cli"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(REPO_ROOT / "tests")])}
    env.pop("KERAS_BACKEND", None)
    return subprocess.run(command + args, capture_output=True, text=True, env=env, timeout=timeout)


def _steps(run: Path) -> list[int]:
    rows = []
    for line in (run / "metrics.jsonl").read_text().splitlines():
        try:
            rows.append(json.loads(line)["step"])
        except (ValueError, KeyError):
            continue
    return rows


def _generator(state: Path) -> list[np.ndarray]:
    with np.load(state) as data:
        return [data[key] for key in sorted(data.files) if key.startswith("generator/") and key[-1].isdigit()]


def _continued(before: Path, after: Path, steps: int, last_step: int) -> None:
    """`after`'s G is `before`'s moved by at most `steps` Adam steps: the resumed run started from `before`, not from
    a fresh initialisation (which is 0.1 and more away). With beta1 = 0 Adam's step t moves a weight by
    lr |g_t| / sqrt(v_t / (1 - beta2^t)) <= lr sqrt((1 - beta2^t) / (1 - beta2)) <= lr sqrt(t)."""
    for old, new in zip(_generator(before), _generator(after), strict=True):
        assert np.abs(new - old).max() <= steps * LR * np.sqrt(last_step) * 1.01


@pytest.mark.slow
def test_jax_run_is_killed_resumed_exported_and_crosses_backends(tmp_path):
    aligned, pack = _data(tmp_path)
    run = tmp_path / "run"
    args = ["train", "--backend", "jax", "--data", str(pack), "--run-dir", str(run), "--steps", "10", *TINY]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(REPO_ROOT / "tests")])}
    process = subprocess.Popen([sys.executable, str(REPO_ROOT / "tests" / "jax_cli.py"), *args],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 600
    while not list((run / "checkpoints").glob("state-*.npz")) and process.poll() is None:
        assert time.monotonic() < deadline, "no checkpoint in 10 minutes"
        time.sleep(0.2)
    assert process.poll() is None, process.stderr.read()[-3000:]
    process.send_signal(signal.SIGKILL)
    process.wait()

    resumed = _run([*args, "--resume"], jax=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "trained steps 2 -> 10" in resumed.stdout or "trained steps 4 -> 10" in resumed.stdout, resumed.stdout
    assert _steps(run) == list(range(1, 11))
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "state-00000006.npz", "state-00000008.npz", "state-00000010.npz"]
    manifest = json.loads((run / "generator.json").read_text())
    assert (manifest["step"], manifest["image_size"]) == (10, 64)
    assert manifest["trained_by"] == "clipswap train --backend jax"

    source = shared_data("lfw", "Abdullah_Gul", "Abdullah_Gul_0001.jpg")
    target = shared_data("lfw", "Adrien_Brody", "Adrien_Brody_0001.jpg")
    swapped = _run(["swap", "--model", str(run / "generator.keras"), "-s", str(source), "-t", str(target), "-o",
                    str(tmp_path / "swap.png")], jax=False)
    assert swapped.returncode == 0, swapped.stderr[-3000:]
    image = cv2.imread(str(tmp_path / "swap.png"))
    assert image is not None and image.shape == cv2.imread(str(target)).shape

    # TensorFlow resumes the JAX run (its state file), on the shards of the same faces.
    tf_args = ["train", "--data", str(aligned), "--run-dir", str(run), "--steps", "12", "--resume", *TINY]
    crossed = _run(tf_args, jax=False)
    assert crossed.returncode == 0, crossed.stderr[-3000:]
    assert "trained steps 10 -> 12" in crossed.stdout, crossed.stdout
    _continued(run / "checkpoints" / "state-00000010.npz", run / "checkpoints" / "state-00000012.npz", 2, 12)
    # TensorFlow's checkpoint is the state file with its tf.data position beside it: the state is written once.
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "state-00000008.npz", "state-00000010.npz", "state-00000012.npz",
        "state-00000012.tfdata.data-00000-of-00001", "state-00000012.tfdata.index"]

    # JAX resumes the TensorFlow run.
    back = _run(["train", "--backend", "jax", "--data", str(pack), "--run-dir", str(run), "--steps", "14",
                 "--resume", *TINY], jax=True)
    assert back.returncode == 0, back.stderr[-3000:]
    assert "trained steps 12 -> 14" in back.stdout, back.stdout
    _continued(run / "checkpoints" / "state-00000012.npz", run / "checkpoints" / "state-00000014.npz", 2, 14)
    assert _steps(run) == list(range(1, 15)), "a JAX resume of TensorFlow's checkpoint keeps the run's rows"
    assert [json.loads(line)["step"] for line in (run / "heldout.jsonl").read_text().splitlines()] == [0, 5, 10]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "state-00000010.npz", "state-00000012.npz", "state-00000012.tfdata.data-00000-of-00001",
        "state-00000012.tfdata.index", "state-00000014.npz"]


def test_a_jax_resume_of_an_earlier_versions_tf_train_checkpoint_is_one_sentence(tmp_path):
    _, pack = _data(tmp_path)
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "checkpoint").write_text('model_checkpoint_path: "ckpt-6"\n')
    (run / "checkpoints" / "ckpt-6.index").write_bytes(b"")
    (run / "metrics.jsonl").write_text("".join(f'{{"step": {step}}}\n' for step in range(1, 7)))
    result = _run(["train", "--backend", "jax", "--data", str(pack), "--run-dir", str(run), "--steps", "8",
                   "--resume", *TINY], jax=True, timeout=300)
    assert result.returncode == 1, result.stderr
    assert "ckpt-6) is an earlier version's tf.train checkpoint, which only TensorFlow reads" in result.stderr
    assert "Traceback" not in result.stderr
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 6, "a refused resume keeps the run's rows"


def test_a_jax_run_on_shards_is_refused_with_one_sentence(tmp_path):
    aligned, _ = _data(tmp_path)
    result = _run(["train", "--backend", "jax", "--data", str(aligned), "--run-dir", str(tmp_path / "run"),
                   "--steps", "2", *TINY], jax=True, timeout=300)
    assert result.returncode == 1, result.stderr
    assert "is not one: make it with `clipswap pack" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists(), "a refused run leaves no run folder"
