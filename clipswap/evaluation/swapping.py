"""Producing the swaps of an evaluation: the PairSwapper interface and its two implementations.

runner.produce_swaps groups the pairs that lack an output by source image, calls `set_source` once per distinct
source (its detection and identity encoding are not timed) and then `swap` once per target of that source, timing
only the `swap` call. Latency per face = time of one `swap` call / faces it swapped.

* FaceSwapperPairs wraps clipswap.inference.swapper.FaceSwapper (`clipswap evaluate --model`): `swap` is
  FaceSwapper.swap_frame, i.e. target detection, alignment, generator and blending of every selected face; or the
  landmark model's clipswap.inference.landmark_swapper.LandmarkSwapper, which has the same interface.
* CallablePairs wraps a plain function (source RGB, target RGB) -> swap RGB or None; it counts one face per
  produced swap and its time includes whatever the function does with the source.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

SwapFn = Callable[[np.ndarray, np.ndarray], "np.ndarray | None"]


class PairSwapper(Protocol):
    """Makes the swaps of one source at a time. An optional `timing` string says what one `swap` call includes
    (written into the report's latency note)."""

    def set_source(self, source_rgb: np.ndarray) -> bool:
        """Take the identity of the source image ([H, W, 3] uint8 RGB); False when it has no usable face."""
        ...

    def swap(self, target_rgb: np.ndarray) -> tuple[np.ndarray | None, int]:
        """(the target with the source identity swapped in, [H, W, 3] uint8 RGB, or None; faces swapped)."""
        ...


class FaceSwapperPairs:
    """A clipswap FaceSwapper (or LandmarkSwapper) as a PairSwapper. A target without a selected face gives
    (None, 0). `timing` replaces the default description of one swap call."""

    timing = "one FaceSwapper.swap_frame call: target detection, alignment, generator and blending"

    def __init__(self, swapper, timing: str | None = None):
        self.swapper = swapper
        if timing is not None:
            self.timing = timing

    def set_source(self, source_rgb: np.ndarray) -> bool:
        from clipswap.face.detection import NoFaceError

        try:
            self.swapper.set_source(source_rgb)
        except NoFaceError:
            return False
        return True

    def swap(self, target_rgb: np.ndarray) -> tuple[np.ndarray | None, int]:
        output, faces = self.swapper.swap_frame(target_rgb)
        return (output if faces else None), int(faces)


class CallablePairs:
    """A function (source RGB, target RGB) -> swap RGB uint8 or None as a PairSwapper (one face per swap)."""

    timing = "one call of the swap function, whatever it does with the source"

    def __init__(self, swap_fn: SwapFn):
        self.swap_fn = swap_fn
        self._source: np.ndarray | None = None

    def set_source(self, source_rgb: np.ndarray) -> bool:
        self._source = source_rgb
        return True

    def swap(self, target_rgb: np.ndarray) -> tuple[np.ndarray | None, int]:
        if self._source is None:
            raise RuntimeError("set_source() must be called before swap()")
        output = self.swap_fn(self._source, target_rgb)
        return output, (0 if output is None else 1)


def as_pair_swapper(swapper: PairSwapper | SwapFn) -> PairSwapper:
    """A PairSwapper as it is; a plain (source, target) function wrapped in CallablePairs."""
    if hasattr(swapper, "set_source") and hasattr(swapper, "swap"):
        return swapper
    if callable(swapper):
        return CallablePairs(swapper)
    raise TypeError(f"expected a PairSwapper or a function (source, target) -> swap, got {type(swapper).__name__}")
