"""`clipswap train` / `python train.py`: --dry-run prints the resolved configuration tree; bad flags fail clearly;
TrainConfig overrides from YAML and --set are type-checked. The tree itself: tests/test_config_tree.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from clipswap.cli import main
from clipswap.config import TrainConfig, apply_overrides, resolve_config

from conftest import REPO_ROOT


def invoke(*args: str):
    return CliRunner().invoke(main, ["train", *args], catch_exceptions=False)


def dry_run(*args: str) -> dict:
    result = invoke(*args, "--dry-run")
    assert result.exit_code == 0, result.output
    return json.loads(result.output[result.output.index("{"):])


def test_dry_run_prints_the_paper_offline_preset():
    # `paper` without its files is refused (tests/test_config_tree.py); its offline twin says what
    # the old code silently made of it.
    out = dry_run("--preset", "paper-offline")
    config = out["config"]
    assert config["weights"] == {"id": 10.0, "rec": 5.0, "perceptual": 0.2, "contra": 0.0, "att": 10.0, "adv": 1.0,
                                 "cycle": 0.0, "ifsr": 0.0, "teacher": 0.0, "flow": 0.0, "mirror": 0.0,
                                 "r1_gamma": 10.0}
    optimiser = config["optimiser"]
    assert (optimiser["beta1"], optimiser["beta2"], optimiser["lr_g"], optimiser["lr_d"]) == (0.0, 0.999, 1e-4, 1e-4)
    assert (config["data"]["batch_size"], config["schedule"]["steps"], config["model"]["image_size"]) == (
        10, 300_000, 256)
    # SFace identity, no CLIP input, contrastive term off -- and the preset's header says so.
    assert config["model"]["identity_encoder"] == "sface" and config["model"]["clip_variant"] is None
    assert config["preset"] == "paper-offline" and "contrastive term off" in out["preset"]["description"]


def test_dry_run_applies_yaml_then_set_then_flags(tmp_path):
    yaml_file = tmp_path / "over.yaml"
    yaml_file.write_text("model:\n  base_filters: 16\nweights:\n  id: 3\nlr_g: 3.0e-4\n")
    config = dry_run("--preset", "tiny", "--config", str(yaml_file), "--set", "weights.rec=2", "--set", "jitter=false",
                     "--steps", "77", "--precision", "bf16", "--xla")["config"]
    assert config["model"]["base_filters"] == 16 and config["weights"]["id"] == 3.0
    assert config["optimiser"]["lr_g"] == 3e-4
    assert config["weights"]["rec"] == 2.0 and config["data"]["jitter"] is False
    assert config["schedule"]["steps"] == 77 and config["compute"]["precision"] == "bf16"
    assert config["compute"]["xla"] is True


def test_facedancer_offline_preset_keeps_its_recipe_but_drops_ifsr():
    out = dry_run("--preset", "facedancer-offline")
    config = out["config"]
    optimiser = config["optimiser"]
    assert (optimiser["beta2"], optimiser["lr_decay_rate"], optimiser["lr_decay_steps"]) == (0.99, 0.97, 100_000)
    assert config["weights"]["cycle"] == 1.0 and config["weights"]["ifsr"] == 0.0
    assert "IFSR" in out["preset"]["description"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "steps"], "key=value"),
        (["--set", "nonsense=1"], "unknown key 'nonsense'"),
        (["--set", "weights.idd=1"], "unknown key 'weights.idd'"),
        (["--set", "steps=abc"], "steps must be an integer"),
        (["--set", "precision=fp8"], "precision must be one of"),
        (["--set", "steps=5", "--steps", "6"], "both as a flag and with --set"),
        (["--batch-size", "3", "--cpu-replicas", "2"], "divisible by --cpu-replicas"),
        (["--preset", "nope"], "Invalid value for '--preset'"),
        (["--steps", "0"], "Invalid value for '--steps'"),
        (["--precision", "fp64"], "Invalid value for '--precision'"),
    ],
)
def test_bad_options_fail_with_a_clear_message(args, message):
    result = CliRunner().invoke(main, ["train", "--dry-run", *args])
    assert result.exit_code != 0
    assert message in result.output


def test_help_says_which_options_are_tensorflow_only():
    result = CliRunner().invoke(main, ["train", "--help"])
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    for said in ("with --backend jax, a face pack made by `clipswap pack`", "logs/ (TensorBoard; TensorFlow only)",
                 "fp16 (mixed float16 with loss scaling; TensorFlow only)",
                 "XLA (TensorFlow; --backend jax always compiles with XLA)",
                 "MirroredStrategy (testing distribution; TensorFlow only)", "and to TensorBoard on TensorFlow"):
        assert said in text, said


def test_a_time_limit_on_tensorflow_is_one_sentence(tmp_path):
    result = CliRunner().invoke(main, ["train", "--preset", "tiny", "--data", str(tmp_path), "--run-dir",
                                       str(tmp_path / "run"), "--time-limit", "1"])
    assert result.exit_code == 1 and "--time-limit is --backend jax's" in result.output
    assert not (tmp_path / "run").exists()


def test_real_run_needs_data_and_run_dir(tmp_path):
    result = CliRunner().invoke(main, ["train", "--preset", "tiny", "--run-dir", str(tmp_path)])
    assert result.exit_code != 0 and "--data and --run-dir are required" in result.output


def test_resume_without_checkpoints_and_reuse_without_resume_are_refused(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    run = tmp_path / "run"
    result = CliRunner().invoke(main, ["train", "--preset", "tiny", "--data", str(data), "--run-dir", str(run),
                                       "--resume", "--no-progress"])
    assert result.exit_code != 0 and "no checkpoint in" in result.output
    assert not run.exists(), "a failed --resume created the run folder"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "checkpoint").write_text('model_checkpoint_path: "ckpt-5"\n')
    (run / "checkpoints" / "ckpt-5.index").write_bytes(b"")
    result = CliRunner().invoke(main, ["train", "--preset", "tiny", "--data", str(data), "--run-dir", str(run),
                                       "--no-progress"])
    assert result.exit_code != 0 and "already holds checkpoints" in result.output


def test_missing_shards_are_reported(tmp_path):
    data = tmp_path / "empty"
    data.mkdir()
    result = CliRunner().invoke(main, ["train", "--preset", "tiny", "--data", str(data), "--run-dir",
                                       str(tmp_path / "run"), "--no-progress"])
    assert result.exit_code == 1 and "no .tfrecord shards" in result.output


def test_root_train_py_forwards_to_the_command():
    result = subprocess.run([sys.executable, str(REPO_ROOT / "train.py"), "--preset", "tiny", "--dry-run"],
                            capture_output=True, text=True, timeout=300, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout)["config"]["preset"] == "tiny"


def test_overrides_are_type_checked_and_round_trip():
    config = resolve_config("tiny", overrides={"model.up_types": "no_skip,no_skip,affa,affa,affa,concat",
                                               "vgg_weights": "null", "weights.ifsr": "0.5",
                                               "model.identity_encoder": "arcface"})
    assert config.model.up_types[-1] == "concat" and config.loss.vgg_weights is None and config.weights.ifsr == 0.5
    assert TrainConfig.from_dict(json.loads(config.to_json())) == config
    assert apply_overrides(config, {"lr_g": "1e-3"}).optimiser.lr_g == 1e-3  # YAML 1.1 alone would read a string
    with pytest.raises(ValueError, match="lr_g must be a number"):
        apply_overrides(config, {"lr_g": "fast"})
    with pytest.raises(ValueError, match="jitter must be true or false"):
        apply_overrides(config, {"jitter": "maybe"})
    with pytest.raises(ValueError, match="image_size must be a multiple of 32"):
        apply_overrides(config, {"model.image_size": 48})


def _tiny_shard_folder(folder: Path, records: int = 2) -> Path:
    """`records` random 32 px faces (0 gives an empty shard file) in a shard folder."""
    import cv2
    import numpy as np
    import tensorflow as tf

    from clipswap.facedata.shards import FaceRecord, write_shards

    folder.mkdir(parents=True, exist_ok=True)
    if records == 0:
        tf.io.TFRecordWriter(str(folder / "shard-00000-of-00001.tfrecord")).close()
        return folder
    faces = []
    for index in range(records):
        rgb = np.random.default_rng(index).integers(0, 256, (32, 32, 3), dtype=np.uint8)
        png = cv2.imencode(".png", rgb)[1].tobytes()
        points = np.zeros((5, 2), np.float32)
        faces.append(FaceRecord(png, index, f"person{index}", f"/x/{index}.jpg", 32, points, points))
    write_shards(faces, folder, records)
    return folder


def test_empty_shards_are_a_setup_error(tmp_path):
    data = _tiny_shard_folder(tmp_path / "data", records=0)
    result = CliRunner().invoke(main, ["train", "--preset", "tiny", "--data", str(data), "--run-dir",
                                       str(tmp_path / "run"), "--no-progress"])
    assert result.exit_code == 1 and "hold no records" in result.output, result.output


def test_corrupt_config_json_on_resume_is_a_setup_error(tmp_path):
    data = _tiny_shard_folder(tmp_path / "data")
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "checkpoint").write_text('model_checkpoint_path: "ckpt-5"\n')
    (run / "checkpoints" / "ckpt-5.index").write_bytes(b"")
    (run / "config.json").write_text('{"model": ')
    result = CliRunner().invoke(main, ["train", "--preset", "tiny", "--data", str(data), "--run-dir", str(run),
                                       "--resume", "--no-progress"])
    assert result.exit_code == 1 and "config.json is not valid JSON" in result.output, result.output


def test_attribute_file_is_checked_before_anything_loads(tmp_path):
    data = _tiny_shard_folder(tmp_path / "data")
    for name, message in (("missing.keras", "does not exist"), ("model.h5", "must be a Keras 3 .keras file")):
        result = CliRunner().invoke(main, [
            "train", "--preset", "tiny", "--data", str(data), "--run-dir", str(tmp_path / name), "--no-progress",
            "--set", "attribute_network=file", "--set", f"attribute_file={tmp_path / name}",
        ])
        assert result.exit_code == 1 and message in result.output and "attribute_file=PATH" in result.output, (
            result.output
        )


def test_paper_preset_offline_without_vgg_weights_says_what_to_pass(tmp_path, monkeypatch):
    import keras

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure: [Errno -3] Temporary failure in name resolution")  # what get_file raises

    monkeypatch.setattr(keras.utils, "get_file", offline)
    data = _tiny_shard_folder(tmp_path / "data")
    result = CliRunner().invoke(main, ["train", "--preset", "paper-offline", "--steps", "1", "--data", str(data),
                                       "--run-dir", str(tmp_path / "run"), "--no-progress"])
    assert result.exit_code == 1, result.output
    assert "--set vgg_weights=PATH" in result.output and "--set perceptual_network=identity" in result.output


def test_a_truncated_shard_is_one_sentence_not_a_traceback(tmp_path):
    # tf.data's DataLossError on a shard cut short on disk becomes the setup error's sentence
    data = _tiny_shard_folder(tmp_path / "data", records=24)
    shard = next(data.glob("*.tfrecord"))
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size * 6 // 10])
    result = CliRunner().invoke(main, ["train", "--preset", "tiny", "--data", str(data), "--run-dir",
                                       str(tmp_path / "run"), "--steps", "2", "--batch-size", "2", "--no-progress"])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("Error: ") and "truncated or corrupt" in last, result.output
    assert "Op:" not in last and "function_node" not in last  # TensorFlow's decorations are not the sentence
    assert not (tmp_path / "run").exists()  # the run folder this failed start created is not left behind


def test_backend_jax_without_jax_says_what_to_install(monkeypatch, tmp_path):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "jax" else real(name, *a))
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    result = CliRunner().invoke(main, ["train", "--backend", "jax", "--preset", "tiny", "--data", str(tmp_path),
                                       "--run-dir", str(tmp_path / "run")], prog_name="clipswap")
    assert result.exit_code == 1, result.output
    assert result.output.strip().splitlines() == [
        'Error: --backend jax needs JAX, which is not installed: python -m pip install "jax[cpu]" (or JAX\'s CUDA '
        'build on a GPU machine)']
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("flags", "precision", "warned"), [
    ("fpu avx avx2", "bf16", True),
    ("fpu avx2 avx512f avx512_bf16", "bf16", False),
    ("fpu avx2 amx_bf16 amx_tile", "bf16", False),
    ("fpu avx avx2", "fp32", False),
])
def test_bf16_on_a_cpu_without_bf16_hardware_is_warned_about(tmp_path, monkeypatch, flags, precision, warned):
    import clipswap.commands.doctor as doctor

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor : 0\nflags : {flags}\n")
    monkeypatch.setattr(doctor, "CPUINFO", cpuinfo)
    data = tmp_path / "empty"
    data.mkdir()
    result = CliRunner().invoke(main, ["train", "--preset", "tiny", "--precision", precision, "--data", str(data),
                                       "--run-dir", str(tmp_path / "run"), "--no-progress"])
    # The run itself stops at the missing shards, after the warning.
    assert result.exit_code == 1 and "no .tfrecord shards" in result.output
    assert ("--precision bf16 is emulated and several times slower than --precision fp32" in result.output) is warned


def test_resume_without_its_flags_continues_the_runs_own_configuration(tmp_path):
    """--resume with neither --preset nor --config reads RUN/config.json (the flags still override it); a broken one
    is one sentence that says what to give instead."""
    data = _tiny_shard_folder(tmp_path / "data", records=4)
    run = tmp_path / "run"
    common = ["train", "--data", str(data), "--run-dir", str(run), "--no-progress"]
    first = CliRunner().invoke(main, [*common, "--preset", "tiny", "--steps", "1", "--set", "weights.rec=2",
                                      "--set", "batch_size=2", "--set", "checkpoint_every=1"])
    assert first.exit_code == 0, first.output
    again = CliRunner().invoke(main, [*common, "--resume", "--steps", "2"])
    assert again.exit_code == 0, again.output
    config = json.loads((run / "config.json").read_text())
    assert config["preset"] == "tiny" and config["weights"]["rec"] == 2.0 and config["data"]["batch_size"] == 2
    assert config["schedule"]["steps"] == 2
    assert json.loads((run / "generator.json").read_text())["step"] == 2
    (run / "config.json").write_text('{"model": ')
    broken = CliRunner().invoke(main, [*common, "--resume", "--steps", "3"])
    assert broken.exit_code == 1 and "config.json is not valid JSON" in broken.output, broken.output
    assert "give the run's --preset and flags again" in broken.output and "Traceback" not in broken.output
