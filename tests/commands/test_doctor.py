"""`clipswap doctor` reports versions, CPU features, GPUs, model files and folders, exits 0 when the
main job can run and 1 with the reason when it cannot (demo missing or tampered with, dlib missing for a demo that
reads its landmarks)."""

from __future__ import annotations

import shutil

import pytest
from click.testing import CliRunner

from clipswap.checkpoints.pretrained import DEMO_DIR, DEMO_ENV
from clipswap.cli import main
from clipswap.commands.doctor import cpu_flags


def doctor():
    return CliRunner().invoke(main, ["doctor"])


def test_ready_installation():
    if not (DEMO_DIR / "generator.keras").is_file():
        pytest.skip("the demo generator is not in this checkout")
    result = doctor()
    assert result.exit_code == 0, result.output
    for heading in ("versions", "CPU", "GPU", "model files", "folders"):
        assert f"\n{heading}\n" in f"\n{result.output}"
    assert "TensorFlow built with CUDA" in result.output and "GPUs TensorFlow sees" in result.output
    assert "demo generator" in result.output and "SHA-256 matches its manifest" in result.output
    assert "face_detection_yunet_2023mar_int8bq.onnx" in result.output
    from clipswap.inference.runtime import cache_dir

    assert f"runtime cache (converted generators)   {cache_dir()}: writable" in result.output
    assert result.output.rstrip().endswith("ready: sh inference.sh and clipswap swap can run")


def test_cpu_flags():
    text = "processor : 0\nflags : fpu sse avx2 avx512f amx_bf16 amx_tile\n\nflags : other\n"
    assert cpu_flags(text) == {"AVX2": True, "AVX-512": True, "AVX512-BF16": False, "AMX-BF16": True}
    assert cpu_flags("") == {"AVX2": False, "AVX-512": False, "AVX512-BF16": False, "AMX-BF16": False}


def test_missing_demo_is_a_failure(tmp_path, monkeypatch):
    monkeypatch.setenv(DEMO_ENV, str(tmp_path / "nowhere"))
    result = doctor()
    assert result.exit_code == 1
    assert "the main job cannot run" in result.output and "no usable generator" in result.output
    assert "Traceback" not in result.output


def test_tampered_demo_is_a_failure(tmp_path, monkeypatch):
    if not (DEMO_DIR / "generator.keras").is_file():
        pytest.skip("the demo generator is not in this checkout")
    copy = tmp_path / "demo"
    shutil.copytree(DEMO_DIR, copy)
    weights = copy / "generator.keras"
    data = bytearray(weights.read_bytes())
    data[-100] ^= 0xFF
    weights.write_bytes(bytes(data))
    monkeypatch.setenv(DEMO_ENV, str(copy))
    result = doctor()
    assert result.exit_code == 1
    assert "does not match the SHA-256 in its manifest" in result.output


def _without_dlib(monkeypatch):
    from clipswap.checkpoints import dlib_models

    def no_dlib():
        raise dlib_models.DlibUnavailableError("dlib is not installed; install the evaluation extra")

    monkeypatch.setattr(dlib_models, "import_dlib", no_dlib)


def test_the_shipped_demo_needs_no_dlib(monkeypatch):
    """The keypoint-flow demo finds its own landmarks: without dlib the main job still runs, and doctor says what
    dlib is then missing for."""
    if not (DEMO_DIR / "generator.keras").is_file():
        pytest.skip("the demo generator is not in this checkout")
    _without_dlib(monkeypatch)
    result = doctor()
    assert result.exit_code == 0, result.output
    assert "clipswap evaluate's dlib metrics and --model landmarks need dlib" in result.output
    assert "needs dlib's 68 landmarks" not in result.output


def test_a_demo_that_reads_landmarks_without_dlib_is_a_failure(tmp_path, monkeypatch):
    """A demo that warps the source by dlib's landmarks (the warp demo's conditioning) cannot run without dlib."""
    from clipswap.checkpoints.native import init_generator
    from clipswap.config import get_preset

    init_generator(get_preset("demo_warp").model, tmp_path / "demo" / "generator.keras")
    monkeypatch.setenv(DEMO_ENV, str(tmp_path / "demo"))
    _without_dlib(monkeypatch)
    result = doctor()
    assert result.exit_code == 1
    assert "the demo generator needs dlib's 68 landmarks" in result.output
