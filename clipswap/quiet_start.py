"""A quiet TensorFlow start-up for the command lines, so an error's one sentence is not buried under raw lines.

While `tensorflow` loads, its C++ core writes lines to stderr before any log level applies (TensorFlow 2.21 ignores
TF_CPP_MIN_LOG_LEVEL for them): absl's "All log messages before absl::InitializeLog() ..." notice and INFO lines
such as oneDNN's round-off note and "Could not find cuda drivers", then, on a machine without a CUDA driver, the
ERROR line "failed call to cuInit" at the first device query (`clipswap doctor` is where a missing GPU is reported,
against nvidia-smi). `install()` makes the first import of tensorflow and its first device query run with stderr (the
file descriptor, where C++ writes) sent to a temporary file, then writes back every line that is not one of those: a
real warning or error printed during the import still reaches the user.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import os
import re
import sys
import tempfile
from collections.abc import Iterator

#: What is dropped: absl's pre-initialisation notice, absl INFO lines ("I1202 17:14:52.123 ... port.cc:153] ...") and
#: the CUDA stub's failed cuInit on a machine with no driver.
NOISE = re.compile(rb"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
                   rb"|I\d{4} [\d:.]+ +\d+ [\w.]+:\d+\] .*"
                   rb"|E\d{4} [\d:.]+ +\d+ cuda_platform\.cc:\d+\] failed call to cuInit: .*")


def drop_noise(captured: bytes) -> bytes:
    """The lines of `captured` that are not start-up noise (NOISE), line ends kept."""
    return b"".join(line for line in captured.splitlines(keepends=True) if not NOISE.fullmatch(line.rstrip(b"\r\n")))


@contextlib.contextmanager
def filtered_stderr() -> Iterator[None]:
    """Send file descriptor 2 to a temporary file for the block, then write back what drop_noise keeps."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no stderr to protect (closed, or replaced by an object)
        yield
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            with contextlib.suppress(OSError, ValueError):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            kept = drop_noise(sink.read())
            if kept:
                os.write(2, kept)


class _QuietLoader(importlib.abc.Loader):
    """tensorflow's own loader, its module executed (and the devices listed once) under filtered_stderr. Listing the
    physical devices is what probes CUDA; logical devices (train --cpu-replicas) can still be configured after it."""

    def __init__(self, loader: importlib.abc.Loader) -> None:
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:
        with filtered_stderr():
            self._loader.exec_module(module)
            module.config.list_physical_devices("GPU")

    def __getattr__(self, name: str):  # resource readers and the like: the real loader's
        return getattr(self._loader, name)


class _TensorFlowFinder(importlib.abc.MetaPathFinder):
    """Finds `tensorflow` once through the normal path search and wraps its loader; then leaves sys.meta_path."""

    def find_spec(self, name, path, target=None):
        if name != "tensorflow":
            return None
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return None  # let the other finders (and their error) have it
        spec.loader = _QuietLoader(spec.loader)
        return spec


def install() -> None:
    """Make the first import of tensorflow quiet (see the module docstring); nothing if it is already imported."""
    if "tensorflow" in sys.modules or any(isinstance(f, _TensorFlowFinder) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _TensorFlowFinder())
