"""`clipswap train` killed (SIGKILL) at random moments, several times, checkpoints every 2 steps so
that kills land during checkpoint writes too, then resumed each time: no checkpoint is lost or left half-written,
every step appears exactly once in metrics.jsonl and heldout.jsonl, and the run ends with its generator exported."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

STEPS = 60


def _faces(folder: Path) -> Path:
    from clipswap.facedata.shards import FaceRecord, write_shards

    faces = []
    for index in range(16):
        rgb = np.random.default_rng(index).integers(0, 256, (64, 64, 3), dtype=np.uint8)
        png = cv2.imencode(".png", rgb)[1].tobytes()
        points = np.zeros((5, 2), np.float32)
        faces.append(FaceRecord(png, index // 2, f"person{index // 2}", f"/x/{index}.jpg", 64, points, points))
    folder.mkdir(parents=True)
    write_shards(faces, folder, 8)
    return folder


def _rows(path: Path) -> list[int]:
    if not path.is_file():
        return []
    steps = []
    for line in path.read_text().splitlines():
        try:
            steps.append(json.loads(line)["step"])
        except (ValueError, KeyError):
            continue  # a line the kill cut short; the resumed run drops it
    return steps


@pytest.mark.slow
def test_random_kills_lose_nothing(tmp_path):
    data, run = _faces(tmp_path / "data"), tmp_path / "run"
    command = [sys.executable, "-m", "clipswap.cli", "train", "--data", str(data), "--run-dir", str(run), "--preset",
               "tiny", "--steps", str(STEPS), "--batch-size", "2", "--checkpoint-every", "2", "--no-progress",
               "--set", "log_every=1", "--set", "eval_every=3", "--set", "eval_batch_size=2",
               "--set", "image_every=1000", "--set", "keep_checkpoints=2"]
    chooser = random.Random(7)
    kills = 0
    for attempt in range(3):
        process = subprocess.Popen(command + (["--resume"] if attempt else []), stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE, text=True)
        start = len(_rows(run / "metrics.jsonl"))
        deadline = time.monotonic() + 240
        while len(_rows(run / "metrics.jsonl")) < start + 2 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if process.poll() is not None:
            assert process.returncode == 0, process.stderr.read()[-2000:]
            break  # finished before it could be killed
        time.sleep(chooser.uniform(0.0, 1.2))
        process.send_signal(signal.SIGKILL)
        process.wait()
        kills += 1
    assert kills >= 2, "the run finished before it was killed twice; make it longer"
    final = subprocess.run(command + ["--resume"], capture_output=True, text=True, timeout=600)
    assert final.returncode == 0, final.stderr[-2000:]

    steps = _rows(run / "metrics.jsonl")
    assert steps == list(range(1, STEPS + 1)), steps
    heldout = _rows(run / "heldout.jsonl")
    assert len(heldout) == len(set(heldout)) and heldout == sorted(heldout), heldout
    assert set(range(0, STEPS + 1, 3)) <= set(heldout)
    checkpoints = run / "checkpoints"
    assert not list(checkpoints.glob("*_temp*")), sorted(p.name for p in checkpoints.iterdir())
    # The last two checkpoints, each a state file and its data position; none half-written.
    assert sorted(p.name for p in checkpoints.iterdir()) == [
        f"state-{step:08d}.{suffix}" for step in (STEPS - 2, STEPS)
        for suffix in ("npz", "tfdata.data-00000-of-00001", "tfdata.index")]
    assert (run / "generator.keras").is_file()
