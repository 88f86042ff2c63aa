"""The shipped demo generator end to end: on a fresh clone, after the README's install
command and without any published weights, `sh inference.sh` exits 0, names the demo in its one line, writes a swap
of its two example faces, and the swapped face is closer in SFace to the source than the target's own face was.

Runs the REAL pretrained_ckpts/demo/generator.keras; skipped only when that file is absent. The demo reads the
source's face warped onto the target's landmarks (source_warp) beside the target: this checks the shipped pipeline as
a user runs it, not how much of the transfer the network adds to the warp (measured in docs/demo_model.md).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from clipswap.checkpoints.pretrained import DEMO_DIR, DEMO_FILE, find_published
from clipswap.media.images import read_image
from clipswap.media.labels import read_label

from conftest import REPO_ROOT, example_faces, runtime_suffix, sface_cosines_to_source

DEMO = DEMO_DIR / DEMO_FILE


@pytest.mark.slow
def test_inference_sh_swaps_identity_with_the_shipped_demo(tmp_path):
    if not DEMO.is_file():
        pytest.skip(f"the shipped demo generator {DEMO} is absent (it is committed to pretrained_ckpts/demo/)")
    empty = tmp_path / "no_published_weights"
    empty.mkdir()
    output = tmp_path / "example.png"
    env = {**os.environ, "PYTHON": sys.executable, "TF_CPP_MIN_LOG_LEVEL": "2", "CLIPSWAP_CKPT_DIR": str(empty),
           "OUTPUT": str(output)}
    for name in ("SOURCE", "TARGET", "CLIPSWAP_DEMO_DIR"):
        env.pop(name, None)
    # A fresh clone has no published generator; where one is installed beside this checkout, ask for the demo. Run
    # from the checkout, so the line shows the demo's path relative to it.
    extra = ["--model_path", "demo"] if find_published("generator") else []
    result = subprocess.run(["sh", str(REPO_ROOT / "inference.sh"), *extra], env=env, capture_output=True,
                            text=True, timeout=600, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.splitlines() == [
        f"generator: demo ({DEMO.relative_to(REPO_ROOT)}, SFace identity, warping the source onto the target "
        f"by its own keypoints), "
        f"detector: YuNet{runtime_suffix()}",
        f"swapped 1 face(s); wrote {output}",
    ]
    assert output.is_file() and "clipswap" in read_label(output)

    source_path, target_path = example_faces()
    after, before = sface_cosines_to_source(read_image(source_path), read_image(target_path), read_image(output))
    print(f"SFace cosine to the source: swap {after:.3f}, target's own face {before:.3f}")
    assert after > before, f"SFace cosine to the source: swap {after:.3f}, target's own face {before:.3f}"


def test_the_shipped_manifest_records_a_model_inside_the_bar():
    """The demo's manifest says what trained it and what it reached: the committed preset
    `demo` reproduces its step count, the figures are dlib's on at least 60 held-out pairs, and they clear the bar."""
    import json

    from clipswap.config import get_preset

    if not DEMO.is_file():
        pytest.skip(f"the shipped demo generator {DEMO} is absent (it is committed to pretrained_ckpts/demo/)")
    manifest = json.loads((DEMO_DIR / "generator.json").read_text(encoding="utf-8"))
    assert manifest["trained_by"] == "clipswap train" and manifest["training"]["preset"] == "demo"
    assert manifest["step"] == manifest["training"]["steps"] == get_preset("demo").config.schedule.steps
    metrics = manifest["metrics"]
    assert metrics["judge"].startswith("dlib") and metrics["pairs"] >= 60
    assert metrics["id_retrieval"] >= 25.0 and metrics["closer_to_source"] > 60.0
    assert metrics["pose_error"] <= 8.0 and metrics["expression_error"] <= 8.0
    assert DEMO.stat().st_size <= 25 * 1024 * 1024
