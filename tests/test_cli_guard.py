"""The CLI's last line of defence (no traceback for an unforeseen failure) and the reference-face overwrite check."""

from __future__ import annotations

import cv2
import numpy as np
from click.testing import CliRunner

import clipswap.facedata.pairs as pairs_module
from clipswap.cli import main


def test_an_unexpected_exception_is_one_sentence_and_exit_1(monkeypatch, tmp_path):
    def broken(*args, **kwargs):
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(pairs_module, "build_pairs", broken)
    args = ["pairs", "--data", str(tmp_path), "--output", str(tmp_path / "out")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    assert "unexpected RuntimeError: boom (" in result.output and "-vv" in result.output
    assert "Traceback" not in result.output and "second line" not in result.output
    # -vv lets it through, with its traceback.
    result = CliRunner().invoke(main, ["-vv", *args])
    assert isinstance(result.exception, RuntimeError)


def test_ctrl_c_exits_130(monkeypatch, tmp_path):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pairs_module, "build_pairs", interrupted)
    result = CliRunner().invoke(main, ["pairs", "--data", str(tmp_path), "--output", str(tmp_path / "out")])
    assert result.exit_code == 130 and "Interrupted." in result.output


def test_swap_refuses_to_overwrite_the_reference_face(tmp_path):
    image = np.full((64, 64, 3), 120, np.uint8)
    for name in ("source.jpg", "target.jpg", "ref.jpg"):
        cv2.imwrite(str(tmp_path / name), image)
    before = (tmp_path / "ref.jpg").read_bytes()
    result = CliRunner().invoke(main, ["swap", "-s", str(tmp_path / "source.jpg"), "-t", str(tmp_path / "target.jpg"),
                                       "-o", str(tmp_path / "ref.jpg"), "--reference-face", str(tmp_path / "ref.jpg")])
    assert result.exit_code == 1 and "would overwrite an input" in result.output
    assert (tmp_path / "ref.jpg").read_bytes() == before


def test_every_clipswap_error_has_the_common_base_and_keeps_its_builtin_one():
    # The commands catch ClipswapError instead of tuples of four to ten classes; each class still is the
    # ValueError / RuntimeError / OSError it was, so older `except` clauses keep working
    import importlib
    import inspect
    import pkgutil

    import clipswap
    from clipswap.errors import ClipswapError

    #: control flow, not errors: SIGTERM's unwinding, the video pipeline's private stop, click's own exceptions
    #: (UnreadableError, and OptionError, the one-line form of click's usage error)
    not_errors = {"Terminated", "_Abandoned", "UnreadableError", "OptionError"}
    found = {}
    for module_info in pkgutil.walk_packages(clipswap.__path__, "clipswap."):
        module = importlib.import_module(module_info.name)
        for name, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == module.__name__ and issubclass(cls, BaseException) and name not in not_errors:
                found[name] = cls
    assert len(found) >= 25, sorted(found)
    for name, cls in found.items():
        if cls is ClipswapError:
            continue
        assert issubclass(cls, ClipswapError), name
        assert issubclass(cls, (ValueError, RuntimeError, OSError)), name
