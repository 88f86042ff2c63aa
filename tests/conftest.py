"""Shared test fixtures: the ../shared/data location, quiet TensorFlow, a restored dtype policy, fixture writers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
FIXTURES = REPO_ROOT / "tests" / "fixtures"


def shared_data(*parts: str) -> Path:
    """A path under ../shared/data; skips the test with a reason when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent: the shared face data lives beside the checkout as ../shared/data")
    return path


@pytest.fixture
def restore_policy():
    """Restore Keras' global dtype policy after a mixed-precision test."""
    import keras

    before = keras.config.dtype_policy()
    yield
    keras.config.set_dtype_policy(before)


def run_keras2_fixture(script: str, *args: str, timeout: int = 600) -> None:
    """Run a tests/fixtures/keras2_*.py writer under tf-keras (Keras 2) in a subprocess."""
    pytest.importorskip("tf_keras", reason="tf-keras (test extra) writes the published-format fixtures")
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run(
        [sys.executable, str(FIXTURES / script), *args], env=env, capture_output=True, text=True, timeout=timeout
    )
    if result.returncode != 0:
        raise RuntimeError(f"{script} failed:\n{result.stderr[-3000:]}")
