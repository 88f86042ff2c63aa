"""tools/ship_demo.py: a finished run, its evaluation and its pairs manifest become a demo folder whose generator
loads (hash checked) with the same outputs and whose manifest carries the recipe, the data and the metrics; a
missing metric is refused and leaves no folder behind."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from clipswap.checkpoints.native import init_generator, load_generator
from clipswap.config import get_preset

from conftest import REPO_ROOT

TINY = get_preset("tiny").model
METRICS = {"id_retrieval": 63.0, "closer_to_source": 79.0, "id_similarity": 0.91, "pose_error": 7.5,
           "expression_error": 5.2, "ssim": 0.94, "psnr": 27.8, "sharpness": 0.8}


def _inputs(tmp_path, metrics=METRICS):
    run = tmp_path / "run"
    init_generator(TINY, run / "generator.keras")
    (run / "config.json").write_text(json.dumps({"preset": "tiny", "batch_size": 8, "precision": "bf16",
                                                 "weights": {"id": 10.0}}))
    evaluation = tmp_path / "metrics.json"
    evaluation.write_text(json.dumps({"identity_model": "dlib", "num_pairs": 100,
                                      "aggregate": {k: {"value": v} for k, v in metrics.items()}}))
    pairs = tmp_path / "pairs"
    pairs.mkdir()
    (pairs / "pairs_manifest.json").write_text(json.dumps({"faces": 10, "training_identities": 4, "pairs": 20,
                                                            "size": 64, "seed": 0, "heldout_identities": ["a", "b"],
                                                            "teacher": "landmark swap"}))
    return run, evaluation, pairs


def _ship(run, evaluation, pairs, output):
    return subprocess.run([sys.executable, str(REPO_ROOT / "tools" / "ship_demo.py"), "--run", str(run),
                           "--metrics", str(evaluation), "--pairs", str(pairs), "--output", str(output)],
                          capture_output=True, text=True, timeout=300)


def test_ship_writes_a_loadable_demo_with_its_facts(tmp_path):
    run, evaluation, pairs = _inputs(tmp_path)
    output = tmp_path / "demo"
    result = _ship(run, evaluation, pairs, output)
    assert result.returncode == 0, result.stderr[-2000:]
    shipped, original = load_generator(output / "generator.keras"), load_generator(run / "generator.keras")
    x = np.random.default_rng(0).uniform(-1, 1, (1, 64, 64, 3)).astype(np.float32)
    z = np.random.default_rng(1).normal(size=(1, 128)).astype(np.float32)
    np.testing.assert_array_equal(shipped.model([x, z]).numpy(), original.model([x, z]).numpy())
    manifest = json.loads((output / "generator.json").read_text())
    assert manifest["metrics"]["id_retrieval"] == 63.0 and manifest["metrics"]["judge"] == "dlib"
    assert manifest["data"]["heldout_identities"] == ["a", "b"] and manifest["training"]["preset"] == "tiny"
    assert sorted(p.name for p in output.iterdir()) == ["generator.json", "generator.keras"]


def test_a_missing_metric_is_refused(tmp_path):
    run, evaluation, pairs = _inputs(tmp_path, {k: v for k, v in METRICS.items() if k != "pose_error"})
    output = tmp_path / "demo"
    result = _ship(run, evaluation, pairs, output)
    assert result.returncode == 1 and "lacks ['pose_error']" in result.stderr
    assert not output.exists()


@pytest.mark.slow
def test_ship_carries_the_geometry_network_and_the_paste_options(tmp_path):
    from clipswap.checkpoints.geometry import load_geometry, save_geometry
    from clipswap.checkpoints.native import sha256_of
    from clipswap.inference.pipeline import recommended_detail, recommended_sharpen
    from clipswap.models.geometry import GeometryNet

    run, evaluation, pairs = _inputs(tmp_path)
    net = GeometryNet(input_size=32, widths=(8,), strides=(2,), stem_width=4, head_width=8)
    save_geometry(net, tmp_path / "g" / "geometry.keras")
    output = tmp_path / "demo"
    result = subprocess.run([sys.executable, str(REPO_ROOT / "tools" / "ship_demo.py"), "--run", str(run),
                             "--metrics", str(evaluation), "--pairs", str(pairs), "--output", str(output),
                             "--geometry", str(tmp_path / "g" / "geometry.keras"), "--paste-detail", "1",
                             "--paste-sharpen", "1.5"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    manifest = json.loads((output / "generator.json").read_text())
    assert manifest["paste_detail"] == 1.0 and manifest["paste_sharpen"] == 1.5
    assert manifest["metrics"]["sharpness"] == 0.8
    assert manifest["geometry"]["sha256"] == sha256_of(output / "geometry.keras")
    load_geometry(output / "geometry.keras")
    assert recommended_detail(load_generator(output / "generator.keras")) == 1.0
    assert recommended_detail(load_generator(run / "generator.keras")) == 0.0
    assert recommended_sharpen(load_generator(output / "generator.keras")) == 1.5
    assert recommended_sharpen(load_generator(run / "generator.keras")) == 0.0
