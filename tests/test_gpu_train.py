"""tools/gpu_train.py, the prepared run of the GPU machine, on this CPU: a checkpoint larger than a returned file comes
back in parts that join into the same bytes (a damaged part is refused by its SHA-256); bad options are one sentence
each; the JAX training path imports nothing the machine lacks; and a short tiny run leaves in OUT what comes back
(within the device tool's limits), whose files resume the next call from the step they hold with every metrics row
kept once."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO_ROOT

TOOL = REPO_ROOT / "tools" / "gpu_train.py"


@pytest.fixture(scope="module")
def gpu_train():
    spec = importlib.util.spec_from_file_location("gpu_train", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_checkpoint_over_a_file_comes_back_in_parts_that_join_again(gpu_train, tmp_path, monkeypatch):
    monkeypatch.setattr(gpu_train, "PART_BYTES", 1000)
    monkeypatch.setattr(gpu_train, "STATE_LIMIT", 3000)
    run, out = tmp_path / "run", tmp_path / "out"
    (run / "checkpoints").mkdir(parents=True)
    out.mkdir()
    state = os.urandom(2500)
    (run / "checkpoints" / "state-00000012.npz").write_bytes(state)
    (run / "config.json").write_text('{"compute": {"precision": "fp32"}}')
    (run / "metrics.jsonl").write_text('{"step": 12}\n')
    summary = gpu_train.collect(run, out, {"tree_without_resume": 0})
    parts = ["state-00000012.npz.part1of3", "state-00000012.npz.part2of3", "state-00000012.npz.part3of3"]
    assert summary["checkpoint"]["parts"] == parts and summary["end_step"] == 12
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "gpu_run.json", "metrics.jsonl", *parts]
    assert [(out / name).stat().st_size for name in parts] == [1000, 1000, 500]

    resumed, config = gpu_train.prepare_run(out)
    assert (resumed / "checkpoints" / "state-00000012.npz").read_bytes() == state
    assert config == {"compute": {"precision": "fp32"}} and (resumed / "metrics.jsonl").is_file()
    (out / parts[1]).write_bytes(b"x" * 1000)
    with pytest.raises(gpu_train.ToolError, match="does not match the SHA-256 in gpu_run.json"):
        gpu_train.prepare_run(out)
    monkeypatch.setattr(gpu_train, "STATE_LIMIT", 2000)
    assert gpu_train.return_plan(2500) == "no" and gpu_train.return_plan(900) == "whole"


def _tool(*args: str, out: Path | None = None, timeout: int = 1200) -> subprocess.CompletedProcess:
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(REPO_ROOT)}
    if out is not None:
        env["OUT"] = str(out)
    return subprocess.run([sys.executable, str(TOOL), *args], capture_output=True, text=True, env=env,
                          timeout=timeout, cwd=REPO_ROOT)


@pytest.mark.parametrize(("args", "said"), [
    (["--pack", "nowhere", "--minutes", "1"], "--pack nowhere is not a face pack"),
    (["--pack", "PACK", "--minutes", "9"], "--minutes must be in (0, 8.5]"),
    (["--pack", "PACK", "--minutes", "1"], "is not a folder (on the GPU machine it is $OUT)"),
])
def test_bad_options_are_one_sentence(tmp_path, args, said):
    pack = tmp_path / "pack"
    pack.mkdir()
    (pack / "pack.json").write_text("{}")
    result = _tool(*[str(pack) if arg == "PACK" else arg for arg in args], timeout=120)
    assert result.returncode == 1 and said in result.stderr and "Traceback" not in result.stderr, result.stderr


def test_the_jax_training_path_imports_nothing_the_gpu_machine_lacks():
    """What the tool's child imports to train on JAX and export, with TensorFlow, imageio-ffmpeg, keras-hub and
    PyWavelets unimportable (none of them can travel there)."""
    script = ("import sys; sys.path[:0] = [sys.argv[1]]; from backend_probe import GPU_MACHINE_LACKS, block_modules; "
              "block_modules(*GPU_MACHINE_LACKS); import clipswap.cli, clipswap.commands.train, "
              "clipswap.training.jax_run, clipswap.training.pack_data, clipswap.checkpoints.native, "
              "clipswap.checkpoints.sface_onnx; from clipswap.cli import main; main(['train', '--help'])")
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run([sys.executable, "-c", script, str(REPO_ROOT / "tests")], capture_output=True, text=True,
                            env=env, timeout=300, cwd=REPO_ROOT)
    assert result.returncode == 0 and "--time-limit" in result.stdout, result.stderr[-3000:]


@pytest.mark.slow
def test_a_short_run_comes_back_within_the_limits_and_resumes_from_what_came_back(gpu_train, tmp_path):
    from training.test_jax_train_run import _data

    _, pack = _data(tmp_path)
    options = ["--pack", str(pack), "--preset", "tiny", "--minutes", "0.1", "--batch-size", "4", "--set",
               "log_every=1", "--set", "eval_batch_size=4"]
    first = tmp_path / "out1"
    first.mkdir()
    result = _tool(*options, out=first)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((first / "gpu_run.json").read_text())
    files = sorted(p.name for p in first.iterdir())
    step = summary["end_step"]
    assert step >= 1 and summary["start_step"] == 0 and summary["images_per_s"] > 0
    assert files == ["config.json", "gpu_run.json", f"grid_step_{step:07d}.png", "heldout.jsonl", "metrics.jsonl",
                     f"state-{step:08d}.npz"]
    assert len(files) <= gpu_train.RETURN_FILES
    assert all((first / name).stat().st_size <= gpu_train.PART_BYTES for name in files)
    assert sum((first / name).stat().st_size for name in files) <= gpu_train.RETURN_BYTES
    assert summary["checkpoint"]["parts"] == [f"state-{step:08d}.npz"]
    assert json.loads((first / "config.json").read_text())["compute"]["precision"] == "fp32"  # no GPU here

    second = tmp_path / "out2"
    second.mkdir()
    result = _tool(*options, "--resume", str(first), out=second)
    assert result.returncode == 0, result.stderr[-3000:]
    resumed = json.loads((second / "gpu_run.json").read_text())
    assert resumed["start_step"] == step and resumed["end_step"] > step
    rows = [json.loads(line)["step"] for line in (second / "metrics.jsonl").read_text().splitlines()]
    assert rows == list(range(1, resumed["end_step"] + 1))
