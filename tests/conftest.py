"""Shared test fixtures: the ../shared/data location, quiet TensorFlow, a restored dtype policy, fixture writers."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
FIXTURES = REPO_ROOT / "tests" / "fixtures"


def skip_or_fail(reason: str) -> None:
    """Skip locally; under CI (CI set, as .ci/run's environment has it) a missing prerequisite is a failure, so a
    dropped dependency or absent data cannot turn the suite green by skipping."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI must have it)")
    pytest.skip(reason)


def shared_data(*parts: str) -> Path:
    """A path under ../shared/data; skips the test with a reason when it is absent (fails under CI)."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        skip_or_fail(f"{path} is absent: the shared face data lives beside the checkout as ../shared/data")
    return path


def load_inference_script(module_name: str):
    """The checkout's inference.py (the release's script, not a package module) loaded as `module_name`."""
    spec = importlib.util.spec_from_file_location(module_name, REPO_ROOT / "inference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def require_module(name: str, why: str) -> None:
    """Skip (fail under CI) when an optional package is not installed."""
    if importlib.util.find_spec(name) is None:
        skip_or_fail(f"{name} is not installed ({why}); pip install -e '.[test,eval]'")


@pytest.fixture
def restore_policy():
    """Restore Keras' global dtype policy after a mixed-precision test."""
    import keras

    before = keras.config.dtype_policy()
    yield
    keras.config.set_dtype_policy(before)


def run_keras2_fixture(script: str, *args: str, timeout: int = 600) -> None:
    """Run a tests/fixtures/keras2_*.py writer under tf-keras (Keras 2) in a subprocess."""
    require_module("tf_keras", "tf-keras, the test extra, writes the published-format fixtures")
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run(
        [sys.executable, str(FIXTURES / script), *args], env=env, capture_output=True, text=True, timeout=timeout
    )
    if result.returncode != 0:
        raise RuntimeError(f"{script} failed:\n{result.stderr[-3000:]}")


def runtime_suffix(precision: str = "fp32") -> str:
    """The end of the models line of a generator swap run with the default --runtime auto ("" for none)."""
    from clipswap.inference.runtime import resolve_runtime

    return f", runtime: {resolve_runtime('auto', precision)} {precision}"
