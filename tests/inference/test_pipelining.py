"""The video swap's decode and encode threads (clipswap.inference.pipelining): order kept, queues bounded, errors
raised in the caller, threads stopped on failure."""

from __future__ import annotations

import threading
import time

import pytest

from clipswap.inference.pipelining import BackgroundWriter, Prefetcher


def test_prefetcher_keeps_order_and_stays_bounded():
    produced = []

    def items():
        for i in range(50):
            produced.append(i)
            yield i

    prefetched = Prefetcher(items(), depth=3)
    time.sleep(0.3)
    # The queue holds 3; one more is in the thread's hand waiting to be put.
    assert len(produced) <= 3 + 1
    assert list(prefetched) == list(range(50))
    prefetched.close()


def test_prefetcher_raises_the_decoders_error_in_the_caller():
    def items():
        yield 1
        raise OSError("ffmpeg died")

    prefetched = Prefetcher(items())
    seen = []
    with pytest.raises(OSError, match="ffmpeg died"):
        for item in prefetched:
            seen.append(item)
    assert seen == [1]
    prefetched.close()


def test_prefetcher_close_stops_a_long_source():
    prefetched = Prefetcher(iter(range(10**9)), depth=2)
    next(iter(prefetched))
    prefetched.close()
    assert not prefetched._thread.is_alive()


def test_background_writer_writes_everything_in_order():
    written = []
    writer = BackgroundWriter(lambda item: (time.sleep(0.001), written.append(item)), depth=2)
    for i in range(40):
        writer.submit(i)
    writer.close()
    assert written == list(range(40))
    assert writer.busy > 0


def test_background_writer_raises_a_write_error_and_abandons_cleanly():
    def write(item):
        if item == 3:
            raise OSError("No space left on device")

    writer = BackgroundWriter(write, depth=2)
    with pytest.raises(OSError, match="No space left"):
        for i in range(100):
            writer.submit(i)
            time.sleep(0.005)
    writer.abandon()
    assert not writer._thread.is_alive()


def test_abandon_drops_what_is_queued():
    entered, gate = threading.Event(), threading.Event()
    written = []

    def write(item):
        entered.set()
        gate.wait()
        written.append(item)

    writer = BackgroundWriter(write, depth=4)
    for i in range(4):
        writer.submit(i)
    assert entered.wait(5)  # item 0 is being written; 1..3 wait in the queue
    stopper = threading.Thread(target=writer.abandon)
    stopper.start()
    time.sleep(0.2)  # abandon has drained the queue and waits for the thread
    gate.set()
    stopper.join(5)
    assert written == [0]
    assert not writer._thread.is_alive()
