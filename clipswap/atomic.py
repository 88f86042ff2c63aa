"""Atomic file writes: write beside the destination, then rename, so a reader never sees half a file."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

from clipswap.errors import ClipswapError

log = logging.getLogger(__name__)


class OutputError(ClipswapError, OSError):
    """An output cannot be written (folder missing or not writable)."""


def ensure_writable_dir(folder: str | Path) -> Path:
    """Create `folder` if needed and check it is writable; raise OutputError with the reason otherwise."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"cannot create the output folder {folder}: {error.strerror or error}") from error
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"the output folder {folder} is not writable; choose another --output or fix its permissions")
    return folder


def check_writable_dir(folder: str | Path) -> Path:
    """Check that `folder` is writable or can be created, creating nothing: its nearest existing ancestor must be a
    writable folder. For early checks, so that a run that fails later leaves no folder behind (the atomic writers
    create it when they write). Raises OutputError with the reason."""
    folder = Path(folder)
    existing = folder
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        raise OutputError(f"cannot create the output folder {folder}: {existing} is not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        if existing == folder:
            raise OutputError(
                f"the output folder {folder} is not writable; choose another --output or fix its permissions"
            )
        raise OutputError(f"cannot create the output folder {folder}: {existing} is not writable")
    return folder


def _read_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# Read once at import: changing the umask to read it races with other threads creating files.
_UMASK = _read_umask()
#: The mode a folder made by mkdir gets under this umask (tempfile.mkdtemp makes 0700 folders).
FOLDER_MODE = 0o777 & ~_UMASK


#: errno values that mean "the disk cannot take the file" (ENOSPC, EDQUOT, EFBIG): one sentence, not a traceback.
_DISK_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


@contextlib.contextmanager
def atomic_path(destination: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path in the destination's folder; on success rename it onto `destination`.

    The temporary file keeps the destination's suffix (or `suffix`) so format-sniffing writers (cv2, ffmpeg, Keras)
    pick the right format. On any error the temporary file is removed and the destination is untouched. The
    temporary file is held under an exclusive lock while it is written: a process killed beyond trapping (SIGKILL,
    a power cut) leaves it unlocked, and the next write to the same destination removes it (remove_stale_partials).
    """
    destination = Path(destination)
    parent = destination.parent if str(destination.parent) else Path(".")
    suffix = suffix if suffix is not None else destination.suffix
    created = outermost_missing(parent)
    folder = ensure_writable_dir(parent)
    remove_stale_partials(folder / destination.name, suffix)
    handle, name = tempfile.mkstemp(prefix=f".{destination.stem}.", suffix=suffix, dir=folder)
    fcntl.flock(handle, fcntl.LOCK_EX)
    temporary = Path(name)
    try:
        try:
            yield temporary
        except OSError as error:
            if error.errno not in _DISK_FULL:
                raise
            raise OutputError(
                f"writing {destination} failed: {error.strerror or error} (errno {error.errno}); free some space on "
                f"that disk or choose another output folder. Nothing was written"
            ) from error
        # mkstemp creates files 0600: an existing destination keeps its own mode (a private 0600 output stays
        # private), a new one gets what a plain open() would give it.
        try:
            mode = destination.stat().st_mode & 0o7777
        except FileNotFoundError:
            mode = 0o666 & ~_UMASK
        os.chmod(temporary, mode)
        os.replace(temporary, destination)
    except BaseException:
        # A failed write leaves nothing: the temporary file goes, and the folders this write created if still empty.
        temporary.unlink(missing_ok=True)
        if created is not None:
            remove_empty_folders(parent, created)
        raise
    finally:
        temporary.unlink(missing_ok=True)
        os.close(handle)


#: The random part of a tempfile.mkstemp name (tempfile's own alphabet and length).
_MKSTEMP_PART = "[a-z0-9_]{8}"


def remove_stale_partials(destination: str | Path, suffix: str | None = None) -> list[Path]:
    """Remove the temporary files that earlier, killed writes to `destination` left beside it (atomic_path's
    `.STEM.XXXXXXXX.SUFFIX`); returns what was removed. A partial file whose lock another process still holds is a
    write in progress and is left alone."""
    destination = Path(destination)
    suffix = destination.suffix if suffix is None else suffix
    pattern = re.compile(re.escape(f".{destination.stem}.") + _MKSTEMP_PART + re.escape(suffix))
    removed = []
    try:
        candidates = [entry for entry in os.scandir(destination.parent if str(destination.parent) else ".")
                      if pattern.fullmatch(entry.name) and entry.is_file(follow_symlinks=False)]
    except OSError:
        return removed
    for entry in candidates:
        try:
            handle = os.open(entry.path, os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # a live writer holds it
        else:
            Path(entry.path).unlink(missing_ok=True)
            removed.append(Path(entry.path))
        finally:
            os.close(handle)
    if removed:
        log.warning("removed %d partial file(s) that an earlier, interrupted write of %s left: %s", len(removed),
                    destination, ", ".join(path.name for path in removed))
    return removed


def outermost_missing(folder: str | Path) -> Path | None:
    """The outermost folder of `folder`'s path that does not exist yet (what a write there would create), or None."""
    missing = None
    for candidate in (Path(folder).absolute(), *Path(folder).absolute().parents):
        if candidate.exists():
            break
        missing = candidate
    return missing


def remove_empty_folders(folder: str | Path, outermost: str | Path) -> None:
    """Remove `folder` and its parents up to `outermost` (outermost_missing's answer before a write) while they are
    empty: what a failed write created, and nothing that was there before."""
    outermost = Path(outermost).absolute()
    current = Path(folder).absolute()
    while True:
        try:
            current.rmdir()
        except OSError:
            return
        if current == outermost or current.parent == current:
            return
        current = current.parent


def write_text_atomic(destination: str | Path, text: str) -> None:
    """Write a text file atomically (UTF-8)."""
    with atomic_path(destination) as temporary:
        temporary.write_text(text, encoding="utf-8")
