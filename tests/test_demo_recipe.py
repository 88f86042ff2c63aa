"""tools/demo_recipe.py: the stages run in order with the recipe's commands, finished stages are skipped, an
unfinished or shorter training run is resumed, a failing stage stops the recipe with its name and status, and bad
options are refused before anything runs."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import REPO_ROOT

TOOL = REPO_ROOT / "tools" / "demo_recipe.py"


def _recipe(*args, data=None, runs=None):
    return subprocess.run([sys.executable, str(TOOL), "--data", str(data), "--runs", str(runs), *args],
                          capture_output=True, text=True, check=False)


def _lines(stdout: str) -> dict:
    """stage name -> the rest of its line."""
    return dict(line.split(": ", 1) for line in stdout.splitlines())


def test_dry_run_prints_every_stage_in_order_and_makes_nothing(tmp_path):
    data, runs = tmp_path / "photos", tmp_path / "runs"
    data.mkdir()
    result = _recipe("--dry-run", "--steps", "900", "--share", "0.5", "--geometry-steps", "2000", data=data, runs=runs)
    assert result.returncode == 0, result.stderr
    lines = _lines(result.stdout)
    assert list(lines) == ["align", "pairs", "geometry", "flow", "shape", "train", "evaluate", "ship"]
    assert f"align --input {data} --output {runs / 'aligned'} --size 128" in lines["align"]
    assert "--head heatmap --input-size 128 --steps 2000" in lines["geometry"]
    assert f"--geometry {runs / 'geometry' / 'geometry.keras'}" in lines["flow"]
    assert "--share 0.5" in lines["shape"]
    train = lines["train"]
    for option in ("--steps 900", "--preset demo", "--set model.keypoint_shape=0.5",
                   f"--set attribute_file={runs / 'geometry' / 'geometry.keras'}",
                   f"--init-generator {runs / 'flow_shape' / 'generator.keras'}"):
        assert option in train
    assert "--resume" not in train and "--precision" not in train
    assert "--identity-model dlib" in lines["evaluate"] and "--sharpen 1.0" in lines["evaluate"]
    assert f"--output {runs / 'demo'}" in lines["ship"]
    assert not runs.exists()


def test_the_default_trains_the_demo_presets_steps(tmp_path):
    """With no --steps the train stage runs the demo preset's steps, the step the shipped demo was taken at."""
    from clipswap.config import get_preset

    data = tmp_path / "photos"
    data.mkdir()
    lines = _lines(_recipe("--dry-run", data=data, runs=tmp_path / "runs").stdout)
    assert f"--steps {get_preset('demo').config.schedule.steps} " in lines["train"]
    assert get_preset("demo").config.schedule.steps == 1125


def test_finished_stages_are_skipped_and_a_short_run_is_resumed(tmp_path):
    data, runs = tmp_path / "photos", tmp_path / "runs"
    data.mkdir()
    for marker in ("aligned/align_manifest.json", "pairs/pairs_manifest.json", "geometry/geometry.keras",
                   "flow/generator.keras", "flow_shape/generator.keras"):
        (runs / marker).parent.mkdir(parents=True)
        (runs / marker).write_text("{}")
    (runs / "train").mkdir()
    (runs / "train" / "config.json").write_text("{}")
    (runs / "train" / "generator.json").write_text(json.dumps({"step": 750}))

    lines = _lines(_recipe("--dry-run", "--steps", "1125", "--until", "train", "--precision", "fp32", data=data,
                           runs=runs).stdout)
    assert list(lines) == ["align", "pairs", "geometry", "flow", "shape", "train"]
    assert all(lines[name].startswith("done (") for name in ("align", "pairs", "geometry", "flow", "shape"))
    assert "--steps 1125" in lines["train"] and lines["train"].endswith("--precision fp32 --resume")

    lines = _lines(_recipe("--dry-run", "--steps", "750", "--until", "evaluate", data=data, runs=runs).stdout)
    assert lines["train"].startswith("done (") and not lines["evaluate"].startswith("done")


def test_a_corrupt_run_manifest_is_one_sentence(tmp_path):
    data, runs = tmp_path / "photos", tmp_path / "runs"
    data.mkdir()
    (runs / "train").mkdir(parents=True)
    (runs / "train" / "generator.json").write_text("{not json")
    result = _recipe("--dry-run", data=data, runs=runs)
    assert result.returncode == 1
    assert result.stderr.startswith("error: ") and "is not a generator manifest" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_failing_stage_stops_the_recipe_with_its_name(tmp_path):
    data, runs = tmp_path / "photos", tmp_path / "runs"
    data.mkdir()  # no photos: clipswap align refuses it
    result = _recipe(data=data, runs=runs)
    assert result.returncode != 0
    assert "error: stage align failed" in result.stderr
    assert "pairs:" not in result.stdout
    assert not (runs / "aligned" / "align_manifest.json").exists()


def test_bad_options_are_refused_before_anything_runs(tmp_path):
    data = tmp_path / "photos"
    data.mkdir()
    for args in (["--share", "0"], ["--share", "1.5"], ["--steps", "0"], ["--sharpen", "3"], ["--geometry-steps", "0"]):
        result = _recipe(*args, data=data, runs=tmp_path / "runs")
        assert result.returncode == 2 and "--steps and --geometry-steps must be >= 1" in result.stderr, args
    result = _recipe(data=tmp_path / "missing", runs=tmp_path / "runs")
    assert result.returncode == 2 and "is not a folder of photos" in result.stderr
    assert not (tmp_path / "runs").exists()
