"""Producing an evaluation's swaps: one set_source per distinct source, latency per swapped face, labelled outputs."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from clipswap.evaluation import runner
from clipswap.evaluation.pairs import Pair
from clipswap.evaluation.runner import _latency, produce_swaps
from clipswap.evaluation.swapping import CallablePairs, as_pair_swapper
from clipswap.media.images import read_image, write_image
from clipswap.media.labels import read_label


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def perf_counter(self) -> float:
        return self.now


class RecordingSwapper:
    """Swaps in 2 faces per call and takes 30 ms of the fake clock per call; sources whose pixels are 0 have no face."""

    timing = "fake"

    def __init__(self, clock: FakeClock):
        self.clock = clock
        self.sources: list[int] = []
        self.targets: list[int] = []

    def set_source(self, source_rgb):
        self.sources.append(int(source_rgb[0, 0, 0]))
        self.clock.now += 5.0  # source work must not be timed
        return int(source_rgb[0, 0, 0]) != 0

    def swap(self, target_rgb):
        self.targets.append(int(target_rgb[0, 0, 0]))
        self.clock.now += 0.030
        return 255 - target_rgb, 2


@pytest.fixture
def images(tmp_path):
    paths = {}
    for name, value in (("a", 10), ("b", 20), ("noface", 0), ("t1", 101), ("t2", 102), ("t3", 103)):
        paths[name] = write_image(np.full((8, 6, 3), value, np.uint8), tmp_path / f"{name}.png", label="input")
    return paths


def test_sources_are_set_once_each_and_latency_is_per_face(images, tmp_path, monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(runner, "time", SimpleNamespace(perf_counter=clock.perf_counter))
    p = images
    pairs = [
        Pair(p["a"], p["t1"]),
        Pair(p["b"], p["t2"]),
        Pair(p["a"], p["t3"]),
        Pair(p["noface"], p["t1"]),
        Pair(p["b"], p["t1"], output=p["t3"]),  # given output: not swapped
        Pair(p["b"], p["t1"]),
        Pair(p["a"], tmp_path / "absent.png"),
    ]
    swapper = RecordingSwapper(clock)
    produced, per_face, failures = produce_swaps(pairs, tmp_path / "run", swapper, progress=False)
    # Grouped by source in order of first appearance: a (t1, t3, absent), b (t2, t1), noface (no swap).
    assert swapper.sources == [10, 20, 0]
    assert swapper.targets == [101, 103, 102, 101]
    assert per_face == pytest.approx([0.015] * 4)
    assert failures == {"swap_not_produced": 1, "swap_not_produced_unreadable_input": 1}
    assert [pair.output for pair in produced][3:] == [None, p["t3"], produced[5].output, None]
    for index, value in ((0, 101), (1, 102), (2, 103), (5, 101)):
        output = produced[index].output
        assert output == tmp_path / "run" / "swaps" / f"{index:05d}.png"
        assert np.all(read_image(output) == 255 - value)
        assert "clipswap" in read_label(output)


def test_a_plain_function_is_one_face_per_swap_and_latency_drops_the_warm_up_call():
    calls = []
    swapper = as_pair_swapper(lambda source, target: calls.append((source, target)) or target)
    assert isinstance(swapper, CallablePairs)
    source, target = np.zeros((2, 2, 3), np.uint8), np.ones((2, 2, 3), np.uint8)
    assert swapper.set_source(source)
    output, faces = swapper.swap(target)
    assert faces == 1 and output is target and calls[0][0] is source
    with pytest.raises(RuntimeError, match="set_source"):
        as_pair_swapper(lambda s, t: t).swap(target)
    failing = as_pair_swapper(lambda s, t: None)
    failing.set_source(source)
    assert failing.swap(target) == (None, 0)
    summary = _latency([1.0, 0.010, 0.030, 0.020], "one call")
    assert summary["latency_ms_median"] == pytest.approx(20.0) and summary["latency_n"] == 3
    assert "per swapped face" in summary["latency_note"] and "warm-up" in summary["latency_note"]
    with pytest.raises(TypeError, match="PairSwapper"):
        as_pair_swapper(42)
