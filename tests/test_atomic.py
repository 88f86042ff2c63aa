"""Atomic writes (clipswap.atomic): the destination appears whole or not at all, and keeps its permissions."""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from clipswap import atomic
from clipswap.atomic import PARTIAL_MARKER, atomic_path, remove_stale_partials, write_text_atomic


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_new_file_gets_the_umask_permissions(tmp_path):
    mask = os.umask(0o022)
    os.umask(mask)
    target = tmp_path / "new.txt"
    write_text_atomic(target, "hello\n")
    assert target.read_text() == "hello\n" and _mode(target) == 0o666 & ~mask


@pytest.mark.parametrize("mode", [0o600, 0o640, 0o644])
def test_overwriting_keeps_the_existing_mode(tmp_path, mode):
    target = tmp_path / "private.jpg"
    target.write_text("old")
    os.chmod(target, mode)
    write_text_atomic(target, "new")
    assert target.read_text() == "new" and _mode(target) == mode


def test_a_failed_write_leaves_the_destination_and_no_temporary(tmp_path):
    target = tmp_path / "out.png"
    target.write_text("kept")
    with pytest.raises(RuntimeError), atomic_path(target) as temporary:
        temporary.write_text("half")
        raise RuntimeError("the writer failed")
    assert target.read_text() == "kept"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]


def _hold(path):
    """Open `path` and lock it as a running write does; close the handle to let go."""
    holder = open(path, "rb")
    fcntl.flock(holder, fcntl.LOCK_EX)
    return holder


def test_a_new_write_removes_the_partial_files_of_killed_writes_and_leaves_live_ones(tmp_path):
    """A write killed beyond trapping (SIGKILL) leaves its hidden temporary file; the next write into that folder
    removes it, but never one that a running write still holds (its lock)."""
    target = tmp_path / "clip.mp4"
    stale = tmp_path / ".clip.clipswap-partial.k3j_x9a2.mp4"
    stale.write_bytes(b"half a video")
    other_stale = tmp_path / ".other.clipswap-partial.a1b2c3d4.png"
    other_stale.write_bytes(b"half a picture")
    live = tmp_path / ".clip.clipswap-partial.livewrit.mp4"
    live.write_bytes(b"being written")
    with _hold(live):
        with atomic_path(target) as temporary:
            assert PARTIAL_MARKER in temporary.name and temporary.name.startswith(".clip.")
            temporary.write_bytes(b"whole")
    assert target.read_bytes() == b"whole"
    assert not stale.exists() and not other_stale.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [live.name, "clip.mp4"]


@pytest.mark.parametrize("name", [
    ".clip.k3j_x9a2.mp4",                  # the shape of a mkstemp name, without our marker: a user's file
    ".clip.backup01.mp4",
    "clip.clipswap-partial.k3j_x9a2.mp4",  # not hidden
    ".clip.clipswap-partial.k3j_x9a2.mp4.keep",
    ".clip.clipswap-partial.short.mp4",
])
def test_a_file_without_the_partial_files_name_is_never_removed(tmp_path, name):
    (tmp_path / name).write_bytes(b"someone's")
    assert remove_stale_partials(tmp_path) == []
    assert (tmp_path / name).read_bytes() == b"someone's"


def test_a_link_or_folder_with_a_partial_files_name_is_never_removed(tmp_path):
    target = tmp_path / "precious.mp4"
    target.write_bytes(b"precious")
    (tmp_path / ".a.clipswap-partial.aaaaaaaa.mp4").symlink_to(target)
    (tmp_path / ".b.clipswap-partial.bbbbbbbb.mp4").mkdir()
    os.mkfifo(tmp_path / ".c.clipswap-partial.cccccccc.mp4")  # opening it must not hang
    assert remove_stale_partials(tmp_path) == []
    assert target.read_bytes() == b"precious" and len(list(tmp_path.iterdir())) == 4


def test_a_running_write_of_another_process_is_left_alone(tmp_path):
    """The lock is held across processes: a second process's sweep of the folder leaves the live partial file."""
    script = ("import sys, time\nfrom clipswap.atomic import atomic_path\n"
              "with atomic_path(sys.argv[1]) as temporary:\n"
              "    temporary.write_bytes(b'x')\n    print(temporary.name, flush=True)\n    time.sleep(60)\n")
    child = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "out.mp4")], stdout=subprocess.PIPE,
                             text=True, env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    try:
        name = child.stdout.readline().strip()
        assert PARTIAL_MARKER in name, name
        assert remove_stale_partials(tmp_path) == []
        assert (tmp_path / name).exists()
    finally:
        child.kill()
        child.wait()
    assert remove_stale_partials(tmp_path) == [tmp_path / name]  # killed: now it is stale


def test_without_file_locks_nothing_is_removed_and_writes_still_work(tmp_path, monkeypatch, caplog):
    """A filesystem without locks (flock fails with ENOLCK): a partial file cannot be told live or stale, so it is
    kept with one warning, and a write there still succeeds."""
    def no_locks(handle, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(atomic.fcntl, "flock", no_locks)
    stale = tmp_path / ".clip.clipswap-partial.k3j_x9a2.mp4"
    stale.write_bytes(b"half a video")
    with caplog.at_level(logging.WARNING, logger="clipswap.atomic"):
        with atomic_path(tmp_path / "clip.mp4") as temporary:
            temporary.write_bytes(b"whole")
    assert (tmp_path / "clip.mp4").read_bytes() == b"whole" and stale.exists()
    assert "1 partial file(s) of earlier, interrupted writes are left" in caplog.text


def test_a_read_only_folder_with_a_stale_partial_file_is_not_a_crash(tmp_path, monkeypatch, caplog):
    """A folder where nothing can be removed (read-only, or a file of another user): the partial file is named in a
    warning and kept (os.unlink is made to fail, since these tests may run as root, who can remove anything)."""
    def read_only(path, *args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(path))

    stale = tmp_path / ".clip.clipswap-partial.k3j_x9a2.mp4"
    stale.write_bytes(b"half a video")
    monkeypatch.setattr(atomic.os, "unlink", read_only)
    with caplog.at_level(logging.WARNING, logger="clipswap.atomic"):
        assert remove_stale_partials(tmp_path) == []
    monkeypatch.undo()
    assert stale.exists() and "1 partial file(s) of earlier, interrupted writes are left" in caplog.text


def test_a_destination_name_near_the_file_name_limit_still_gets_a_partial_file(tmp_path):
    """A 250-byte name (the limit is 255 on most filesystems): the partial file's copy of it is cut to fit."""
    target = tmp_path / ("é" * 123 + ".png")
    with atomic_path(target) as temporary:
        assert len(os.fsencode(temporary.name)) <= 255 and PARTIAL_MARKER in temporary.name
        temporary.write_bytes(b"whole")
    assert target.read_bytes() == b"whole" and sorted(p.name for p in tmp_path.iterdir()) == [target.name]
