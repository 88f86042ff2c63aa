"""`clipswap ui`'s command line: safe defaults shown in its help, and a wrong option is the usual one line, exit 2.
(The served page itself is tested in a browser: tests/ui/test_browser.py.)"""

from __future__ import annotations

import socket
import tempfile
from pathlib import Path

from click.testing import CliRunner

from clipswap.cli import main
from clipswap.commands.ui import OFFLINE_ENVIRONMENT

from conftest import require_module


def test_the_help_shows_the_local_only_default_and_the_limits():
    result = CliRunner().invoke(main, ["ui", "--help"])
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert "--host TEXT" in text and "[default: 127.0.0.1]" in text
    assert "--max-upload-mb" in text and "clipswap --max-pixels" in text


def test_a_wrong_port_is_one_line_and_exit_2():
    result = CliRunner().invoke(main, ["ui", "--port", "0"], prog_name="clipswap")
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "Error: Invalid value for '--port': 0 is not in the range 1<=x<=65535; see 'clipswap ui --help'"]


def test_a_port_in_use_is_one_sentence_exit_1_and_no_leftover_folder(monkeypatch):
    require_module("gradio", "the browser UI (the ui extra)")
    # The command sets Gradio's environment for the process it serves from: kept to this test.
    for name in [*OFFLINE_ENVIRONMENT, "GRADIO_TEMP_DIR"]:
        monkeypatch.delenv(name, raising=False)
    before = set(Path(tempfile.gettempdir()).glob("clipswap-ui-*"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = CliRunner().invoke(main, ["ui", "--port", str(port)], prog_name="clipswap")
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: cannot serve the page on 127.0.0.1:{port} (")
    assert "choose another with --port" in lines[0] and "unexpected" not in lines[0]
    assert set(Path(tempfile.gettempdir()).glob("clipswap-ui-*")) == before


def test_without_gradio_the_command_says_which_extra_to_install(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gradio" else real(name, *a))
    result = CliRunner().invoke(main, ["ui"], prog_name="clipswap")
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        'Error: the browser UI needs Gradio, which is not installed: install clipswap with its ui extra '
        '(python -m pip install -e ".[ui]")']
