"""Atomic file writes: write beside the destination, then rename, so a reader never sees half a file."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import stat
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from clipswap.errors import ClipswapError

try:
    import fcntl
except ImportError:  # not POSIX: no file locks, so partial files are never judged stale (see remove_stale_partials)
    fcntl = None

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
    temporary file is named `.STEM.clipswap-partial.XXXXXXXX.SUFFIX` and held under an exclusive lock while it is
    written: a process killed beyond trapping (SIGKILL, a power cut) leaves it unlocked, and this process's first
    write into that folder removes it (remove_stale_partials).
    """
    destination = Path(destination)
    parent = destination.parent if str(destination.parent) else Path(".")
    suffix = suffix if suffix is not None else destination.suffix
    created = outermost_missing(parent)
    folder = ensure_writable_dir(parent)
    _remove_stale_partials_once(folder)
    handle, temporary = _locked_temporary(folder, f".{_name_part(destination.stem)}.{PARTIAL_MARKER}.", suffix)
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


#: The word in every temporary file name atomic_path makes: stale-partial removal touches no file without it.
PARTIAL_MARKER = "clipswap-partial"

#: A temporary file of atomic_path: ".STEM.clipswap-partial.XXXXXXXX" (mkstemp's random part: its own alphabet and
#: length) and the destination's suffix, if any.
_PARTIAL_NAME = re.compile(r"\..*\." + re.escape(PARTIAL_MARKER) + r"\.[a-z0-9_]{8}(\.[^.]*)?")

#: errno values of flock that mean "the file is locked by someone else" (a write in progress).
_LOCKED = {errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES}


def _name_part(stem: str, most_bytes: int = 160) -> str:
    """`stem`, cut to `most_bytes` bytes on disk: the marker and mkstemp's part must still fit a file name (255
    bytes on most filesystems) beside a destination whose own name is near that limit."""
    while len(os.fsencode(stem)) > most_bytes:
        stem = stem[:-1]
    return stem


def _locked_temporary(folder: Path, prefix: str, suffix: str) -> tuple[int, Path]:
    """Create a temporary file (tempfile.mkstemp) and lock it exclusively; returns the open handle and its path.

    The lock is what tells a live partial file from a stale one. A new file can be taken by another process's
    remove_stale_partials between its creation and its lock (it is unlocked for that instant): then the name no
    longer leads to our file and a new one is made. Where the filesystem has no locks the file stays unlocked,
    which remove_stale_partials reads as "cannot tell" and leaves alone.
    """
    for _ in range(8):
        handle, name = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=folder)
        try:
            if fcntl is not None:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            mine = os.fstat(handle)
            now = os.stat(name, follow_symlinks=False)
            if (now.st_dev, now.st_ino) == (mine.st_dev, mine.st_ino):
                return handle, Path(name)
        except OSError as error:
            if error.errno in _LOCKED or isinstance(error, FileNotFoundError):
                pass  # another process is removing it as stale: make another
            elif error.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                log.debug("%s has no file locks; the temporary file %s is written unlocked", folder, name)
                return handle, Path(name)
            else:
                os.close(handle)
                Path(name).unlink(missing_ok=True)
                raise
        os.close(handle)
    raise OutputError(f"cannot create a temporary file in {folder}: other processes keep removing it")


#: The folders this process has swept: (absolute path, device, inode), so that a folder removed and made again
#: elsewhere with the same inode number is swept again.
_swept: set[tuple[str, int, int]] = set()
_swept_lock = threading.Lock()


def _remove_stale_partials_once(folder: Path) -> None:
    """remove_stale_partials for the first write of this process into `folder` only: a folder of many outputs (an
    aligned data set, evaluation swaps) is listed once, not once a file."""
    try:
        info = folder.stat()
    except OSError:
        return
    key = (os.path.abspath(folder), info.st_dev, info.st_ino)
    # Held through the sweep: another thread's write into the folder waits for it, so no partial file of this
    # process exists there while it runs (where locks are per process, as NFS's, the sweep could not tell it live).
    with _swept_lock:
        if key not in _swept:
            remove_stale_partials(folder)
            _swept.add(key)


def remove_stale_partials(folder: str | Path) -> list[Path]:
    """Remove the temporary files that earlier, killed writes left in `folder`; returns what was removed.

    Only a regular file whose name is atomic_path's (`.STEM.clipswap-partial.XXXXXXXX.SUFFIX`, the marker only it
    writes) and whose exclusive lock this process can take is removed: a locked one is a write in progress. Where
    the filesystem has no locks (or the folder is read-only), nothing is removed and one warning names the files.
    """
    folder = Path(folder) if str(folder) else Path(".")
    try:
        with os.scandir(folder) as entries:
            candidates = [Path(entry.path) for entry in entries if _PARTIAL_NAME.fullmatch(entry.name)]
    except OSError:
        return []
    removed: list[Path] = []
    kept: list[Path] = []
    for path in candidates:
        try:
            # O_NONBLOCK: a FIFO of that name must not hang the open; O_NOFOLLOW: never a link's target.
            handle = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            info = os.fstat(handle)
            if not stat.S_ISREG(info.st_mode):
                continue
            if fcntl is None:
                kept.append(path)
                continue
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as error:
                if error.errno not in _LOCKED:
                    kept.append(path)  # no locks on this filesystem: live or stale cannot be told
                continue
            now = os.stat(path, follow_symlinks=False)
            if (now.st_dev, now.st_ino) != (info.st_dev, info.st_ino):
                continue  # the name leads to another file than the one locked
            os.unlink(path)
            removed.append(path)
        except OSError:
            kept.append(path)  # a read-only folder, or the file went meanwhile
        finally:
            os.close(handle)
    if removed:
        log.warning("removed %d partial file(s) that earlier, interrupted writes left in %s: %s", len(removed),
                    folder, ", ".join(path.name for path in removed))
    kept = [path for path in kept if path.exists()]
    if kept:
        log.warning("%d partial file(s) of earlier, interrupted writes are left in %s (no file locks there, or not "
                    "removable, so they cannot be told from a write in progress): %s", len(kept), folder,
                    ", ".join(path.name for path in kept))
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
