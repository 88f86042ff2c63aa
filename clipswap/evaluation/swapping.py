"""Produce the swaps of an evaluation with a clipswap FaceSwapper (`clipswap evaluate --model`)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import numpy as np

SwapFn = Callable[[np.ndarray, np.ndarray], "np.ndarray | None"]


def swap_fn_from_swapper(swapper) -> SwapFn:
    """(source RGB uint8, target RGB uint8) -> swapped target RGB uint8, or None when either has no face.

    The source identity is recomputed only when the source image changes (pairs files often repeat sources).
    """
    from clipswap.inference.swapper import NoFaceError  # noqa: PLC0415 -- TensorFlow-heavy, only with --model

    current: dict[str, str | None] = {"key": None}

    def swap(source: np.ndarray, target: np.ndarray) -> np.ndarray | None:
        key = hashlib.sha1(np.ascontiguousarray(source).tobytes()).hexdigest() + str(source.shape)
        if key != current["key"]:
            try:
                swapper.set_source(source)
            except NoFaceError:
                current["key"] = None
                return None
            current["key"] = key
        output, faces = swapper.swap_frame(target)
        return output if faces else None

    return swap
