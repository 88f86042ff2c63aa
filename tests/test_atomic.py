"""Atomic writes (clipswap.atomic): the destination appears whole or not at all, and keeps its permissions."""

from __future__ import annotations

import os
import stat

import pytest

from clipswap.atomic import atomic_path, write_text_atomic


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


def test_a_new_write_removes_the_partial_files_of_killed_writes_and_leaves_live_ones(tmp_path):
    """A write killed beyond trapping (SIGKILL) leaves its hidden temporary file; the next write to the same
    destination removes it, but never one that a running write still holds (its lock), nor another output's."""
    import fcntl

    target = tmp_path / "clip.mp4"
    stale = tmp_path / ".clip.k3j_x9a2.mp4"
    stale.write_bytes(b"half a video")
    live = tmp_path / ".clip.livewrit.mp4"
    live.write_bytes(b"being written")
    other = tmp_path / ".other.k3j_x9a2.mp4"
    other.write_bytes(b"another output's")
    with open(live, "rb") as holder:
        fcntl.flock(holder, fcntl.LOCK_EX)
        with atomic_path(target) as temporary:
            temporary.write_bytes(b"whole")
    assert target.read_bytes() == b"whole"
    assert not stale.exists() and live.exists() and other.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".clip.livewrit.mp4", ".other.k3j_x9a2.mp4", "clip.mp4"]
