"""The clipswap command line: version, help, info, init and their errors."""

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from clipswap import __version__
from clipswap.cli import main


def run(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_version_and_help():
    result = run("--version")
    assert result.exit_code == 0 and __version__ in result.output
    result = run("--help")
    assert result.exit_code == 0
    for verb in ("info", "init"):
        assert verb in result.output


def test_info_needs_exactly_one_source():
    result = run("info")
    assert result.exit_code == 2 and "exactly one of --preset" in result.output


def test_info_tiny_preset_writes_json(tmp_path):
    out = tmp_path / "info.json"
    result = run("info", "--preset", "tiny", "--no-detector", "--json", str(out))
    assert result.exit_code == 0, result.output
    assert "Generator" in result.output and "174,230,000" in result.output
    data = json.loads(out.read_text())
    assert data["components"]["generator"]["params"] == 354_506
    assert data["components"]["generator"]["macs"] > 0


@pytest.mark.slow
def test_info_paper_preset_matches_reference():
    result = run("info", "--preset", "paper")
    assert result.exit_code == 0, result.output
    assert "24,768,038" in result.output  # G, mapping 512, 1024-d identity
    assert "40,375,680" in result.output  # ArcFace-R50
    assert "27,378,144" in result.output  # RetinaFace-R50
    assert "174.38 M" in result.output  # REFERENCE.md section 11 best fit


def test_init_then_info_on_checkpoint(tmp_path):
    path = tmp_path / "g.keras"
    result = run("init", "--preset", "tiny", "--output", str(path))
    assert result.exit_code == 0, result.output
    assert path.is_file() and path.with_suffix(".json").is_file()
    result = run("info", "--checkpoint", str(path), "--no-detector")
    assert result.exit_code == 0 and "354,506" in result.output


def test_init_rejects_bad_output(tmp_path):
    result = run("init", "--preset", "tiny", "--output", str(tmp_path / "g.h5"))
    assert result.exit_code == 2 and ".keras" in result.output
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the output folder should be")
    result = run("init", "--preset", "tiny", "--output", str(blocker / "g.keras"))
    assert result.exit_code == 1 and "cannot create the output folder" in result.output


def test_info_on_tampered_checkpoint_is_clear(tmp_path):
    path = tmp_path / "g.keras"
    run("init", "--preset", "tiny", "--output", str(path))
    manifest = path.with_suffix(".json")
    manifest.write_text("{not json")
    result = run("info", "--checkpoint", str(path), "--no-detector")
    assert result.exit_code == 1 and "cannot read the manifest" in result.output


def test_cli_import_does_not_load_tensorflow():
    """`clipswap --help` must stay fast: importing the CLI (all verbs registered) may not import TensorFlow."""
    code = "import sys, clipswap.cli; assert 'tensorflow' not in sys.modules, 'tensorflow imported'; print('ok')"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "ok" in done.stdout, done.stderr[-2000:]
