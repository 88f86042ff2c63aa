"""tools/average_generators.py: the average of a run's checkpoints holds the weighted mean of every weight (checked
against numpy), loads with its hash checked and names its inputs; checkpoints of another architecture, a damaged
checkpoint and bad options are refused with one sentence and no output file."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest

from clipswap.checkpoints.native import init_generator, load_generator
from clipswap.config import get_preset

from conftest import REPO_ROOT

TINY = get_preset("tiny").model


def _average(*args):
    return subprocess.run([sys.executable, str(REPO_ROOT / "tools" / "average_generators.py"), *map(str, args)],
                          capture_output=True, text=True, timeout=300)


def test_the_average_holds_the_weighted_mean_of_every_weight(tmp_path):
    paths = [init_generator(TINY, tmp_path / f"g{seed}" / "generator.keras", seed=seed) for seed in (0, 1)]
    paths = [path.with_suffix(".keras") for path in paths]
    output = tmp_path / "avg" / "generator.keras"
    result = _average(*paths, "--weights", "1,3", "--output", output)
    assert result.returncode == 0, result.stderr[-2000:]
    average, first, second = (load_generator(p) for p in (output, *paths))
    assert average.config == first.config
    kernels_differing = []
    for mean, a, b in zip(average.model.weights, first.model.weights, second.model.weights, strict=True):
        expected = 0.25 * np.asarray(a, np.float64) + 0.75 * np.asarray(b, np.float64)
        np.testing.assert_allclose(np.asarray(mean), expected, rtol=1e-6, atol=1e-7, err_msg=mean.path)
        if mean.path.endswith("kernel"):
            kernels_differing.append(not np.array_equal(np.asarray(a), np.asarray(b)))
    assert kernels_differing and all(kernels_differing)  # the two seeds really give two networks
    manifest = json.loads(output.with_suffix(".json").read_text())
    assert [row["weight"] for row in manifest["averaged_from"]] == [0.25, 0.75]
    assert [row["checkpoint"] for row in manifest["averaged_from"]] == [str(p) for p in paths]


@pytest.mark.slow
def test_other_architectures_damaged_files_and_bad_options_are_refused(tmp_path):
    one = init_generator(TINY, tmp_path / "a" / "generator.keras").with_suffix(".keras")
    wider = init_generator(dataclasses.replace(TINY, base_filters=2 * TINY.base_filters),
                           tmp_path / "b" / "generator.keras").with_suffix(".keras")
    output = tmp_path / "avg" / "generator.keras"
    result = _average(one, wider, "--output", output)
    assert result.returncode == 1 and "another architecture" in result.stderr, result.stderr[-2000:]
    assert "Traceback" not in result.stderr

    damaged = tmp_path / "c" / "generator.keras"
    damaged.parent.mkdir()
    (tmp_path / "c" / "generator.json").write_text(one.with_suffix(".json").read_text())
    damaged.write_bytes(one.read_bytes()[:1000])
    result = _average(one, damaged, "--output", output)
    assert result.returncode == 1 and "does not match its manifest" in result.stderr, result.stderr[-2000:]

    for options in (["--weights", "1"], ["--weights", "1,x"], ["--weights", "0,0"], ["--weights", "nan,1"]):
        result = _average(one, one, *options, "--output", output)
        assert result.returncode == 2 and "--weights" in result.stderr, result.stderr[-2000:]
    result = _average(one, "--output", output)
    assert result.returncode == 2 and "at least two" in result.stderr
    assert not output.parent.exists()
