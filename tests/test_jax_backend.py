"""The JAX job: layers, models and losses are keras.ops maths, so they run on JAX on a machine without TensorFlow and
give TensorFlow's outputs.

One subprocess under KERAS_BACKEND=jax with TensorFlow made unimportable runs the backend-agnostic tests
(AGNOSTIC_TESTS, which the suite also runs on TensorFlow), the JAX training step's own tests (JAX_TESTS: the jitted
step, its state file and an exact resume) and then tests/backend_probe.py's probe; this process runs the same probe
on TensorFlow and compares. The TensorFlow-only modules (the R1 double backprop, the seeded draws, the CLIP-mean
state, the fused bf16 kernel, the MAC counter) are named below, and nothing else in layers/, models/ or losses/ may
import TensorFlow.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from backend_probe import probe
from conftest import REPO_ROOT, require_module

PACKAGE = REPO_ROOT / "clipswap"
TESTS = REPO_ROOT / "tests"
#: The modules of layers/, models/ and losses/ that may import TensorFlow, and why.
TENSORFLOW_MODULES = {
    "layers/tf_only.py": "the fused batch-norm kernel of mixed-precision inference on TensorFlow",
    "losses/tf_only.py": "the R1 double backprop, the seeded stateless draws and the CLIP-mean tf.Variables",
    "models/cost.py": "the MAC counter reads the ops of a traced TensorFlow graph",
    "models/compile.py": "tf.function, imported only on the TensorFlow backend",
}
#: Modules still on TensorFlow that another change converts (they are not this job's to run on JAX yet).
PENDING: dict[str, str] = {}
#: |JAX - TensorFlow| allowed, relative to the largest |output|: float32 maths in another op order (measured: at most
#: 3e-5, RetinaFace's class scores after 50 convolutions; a wrong op is off by 1e-2 or more), and for the bf16
#: generator the fused TensorFlow kernel against the plain ops (the tolerance of tests/layers/test_layers.py;
#: measured 0.016).
FLOAT32_TOLERANCE = 3e-4
BF16_TOLERANCE = 0.05
#: The JAX run, in seconds, far above its usual time on an idle two-core machine.
JAX_JOB_TIMEOUT = 900
#: The test files written for every backend: each of their tests runs on TensorFlow in the suite and on JAX here.
AGNOSTIC_TESTS = (TESTS / "layers" / "test_layers.py", TESTS / "test_backend_agnostic.py")
#: The test files of JAX-only code, which skip on TensorFlow: the jitted training step.
JAX_TESTS = (TESTS / "training" / "test_jax_step_on_jax.py",)


def _imports_tensorflow(path: Path) -> list[int]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    lines = []
    for node in ast.walk(tree):
        names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        lines += [node.lineno for name in names if name.split(".")[0] == "tensorflow"]
    return lines


def test_only_the_named_modules_import_tensorflow():
    found = {}
    for folder in ("layers", "models", "losses"):
        for path in sorted((PACKAGE / folder).glob("*.py")):
            lines = _imports_tensorflow(path)
            if lines:
                found[str(path.relative_to(PACKAGE))] = lines
    unexpected = {module: lines for module, lines in found.items() if module not in {**TENSORFLOW_MODULES, **PENDING}}
    assert not unexpected, f"TensorFlow imported outside the TensorFlow-only modules (file: lines): {unexpected}"


def test_the_tensorflow_only_names_live_in_tf_only_alone():
    # One home each: a re-export from the backend-agnostic modules made an import circle with tf_only.
    from clipswap.losses import adversarial, augment, contrastive, tf_only

    homes = {adversarial: ("discriminator_logits_with_r1", "r1_penalty"),
             augment: ("clip_augment", "identity_augment", "sample_augment_params"),
             contrastive: ("ClipMeanTracker",)}
    for module, names in homes.items():
        for name in names:
            assert callable(getattr(tf_only, name)), name
            assert not hasattr(module, name), f"{module.__name__}.{name} is still there"


def _compare(jax_outputs: dict, tf_outputs: dict) -> list[str]:
    problems = []
    for key, expected in tf_outputs.items():
        got = jax_outputs.get(key)
        if got is None:
            problems.append(f"{key}: missing from the JAX run")
        elif expected.dtype.kind in "US":
            if not np.array_equal(got, expected):
                differ = [(a, b) for a, b in zip(got, expected, strict=False) if a != b]
                problems.append(f"{key}: {len(got)} names on JAX, {len(expected)} on TensorFlow; first differences "
                                f"{differ[:3]}")
        elif got.shape != expected.shape:
            problems.append(f"{key}: shape {got.shape} on JAX, {expected.shape} on TensorFlow")
        else:
            tolerance = BF16_TOLERANCE if "bfloat16" in key else FLOAT32_TOLERANCE
            error = float(np.abs(got.astype(np.float64) - expected).max()) if got.size else 0.0
            scale = max(float(np.abs(expected).max()) if expected.size else 0.0, 1e-6)
            if not error <= tolerance * scale:
                problems.append(f"{key}: max |JAX - TF| {error:.3g} > {tolerance} x {scale:.3g}")
    return problems


@pytest.mark.slow
def test_layers_models_and_losses_run_on_jax_without_tensorflow_and_match_it(tmp_path):
    require_module("jax", "the JAX job runs the models on JAX")
    if keras.backend.backend() != "tensorflow":
        pytest.skip("compares a JAX run with this process's TensorFlow run")
    out = tmp_path / "jax.npz"
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    command = [sys.executable, str(TESTS / "backend_probe.py"), str(out), "--block-tensorflow",
               "--pytest", *map(str, AGNOSTIC_TESTS + JAX_TESTS)]
    result = subprocess.run(command, env=env, cwd=REPO_ROOT, capture_output=True, text=True,
                            timeout=JAX_JOB_TIMEOUT)
    assert result.returncode == 0, f"the JAX run failed:\n{result.stdout[-6000:]}\n{result.stderr[-4000:]}"
    problems = _compare(dict(np.load(out)), probe())
    assert not problems, "JAX and TensorFlow disagree:\n" + "\n".join(problems)
