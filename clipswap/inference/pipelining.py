"""Overlap the stages of a video swap: frames are decoded ahead in one thread and written (watermark, encoder pipe) in
another, while the calling thread detects, generates and blends, so decoding and encoding do not add to the swap's time.

Both queues are bounded (`depth` frames), so memory stays bounded whatever the video's length; order is kept (one
thread per queue, first in first out); an exception in a thread is raised in the caller at its next call; closing
stops both threads. NumPy, OpenCV, TensorFlow and OpenVINO release the GIL in their kernels, so the threads run in
parallel with the caller.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator

#: Frames each queue holds at most: enough to hide a slow frame, a few MB at 720p.
DEPTH = 4
_DONE = object()


class _Failure:
    def __init__(self, error: BaseException):
        self.error = error


class Prefetcher:
    """Iterate `items` in a background thread, at most `depth` items ahead.

    `waited` is the seconds the caller spent waiting for the next item (the decode time not hidden)."""

    def __init__(self, items: Iterable, depth: int = DEPTH):
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(items,), name="clipswap-decode", daemon=True)
        self.waited = 0.0
        self._thread.start()

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, items: Iterable) -> None:
        try:
            for item in items:
                if not self._put(item):
                    return
        except BaseException as error:  # noqa: BLE001 -- handed to the caller, who raises it
            self._put(_Failure(error))
            return
        self._put(_DONE)

    def __iter__(self) -> Iterator:
        while True:
            start = time.perf_counter()
            item = self._queue.get()
            self.waited += time.perf_counter() - start
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


class BackgroundWriter:
    """Call `write(item)` for every submitted item, in order, in a background thread; `submit` blocks while `depth`
    items wait. An error in `write` is raised by the next `submit` or by `close`.

    `busy` is the seconds the thread spent writing; `waited` the seconds `submit` blocked (the write time not
    hidden)."""

    def __init__(self, write: Callable, depth: int = DEPTH):
        self._write = write
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="clipswap-encode", daemon=True)
        self.busy = 0.0
        self.waited = 0.0
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _DONE:
                return
            if self._error is not None:
                continue  # drain: the caller raises the first error
            start = time.perf_counter()
            try:
                self._write(item)
            except BaseException as error:  # noqa: BLE001 -- handed to the caller, who raises it
                self._error = error
            self.busy += time.perf_counter() - start

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def submit(self, item) -> None:
        self._raise()
        start = time.perf_counter()
        self._queue.put(item)
        self.waited += time.perf_counter() - start

    def close(self) -> None:
        """Wait for every submitted item to be written; raise the first write error."""
        self._queue.put(_DONE)
        self._thread.join()
        self._raise()

    def abandon(self) -> None:
        """Stop after the item being written, dropping the rest (the caller failed; its error is the one to raise)."""
        self._error = self._error or _Abandoned()
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._queue.put(_DONE)
        self._thread.join()


class _Abandoned(Exception):
    """Marks a writer whose remaining items are dropped."""
