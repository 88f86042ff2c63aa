"""The models of a UI process: loaded once for each (model, runtime, precision) a request asks for and shared by
every later request, each of which gets its own paste-back options and per-run state (FaceSwapper.reconfigured)."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from clipswap.inference.pipeline import SwapRequest, build_swapper
from clipswap.inference.selection import DEFAULT_SIMILARITY

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelKey:
    """What decides the networks loaded: the --model value, the runtime and the precision."""

    model: str = "auto"
    runtime: str = "auto"
    precision: str = "fp32"


@dataclass(frozen=True)
class PasteOptions:
    """What each request may choose without loading anything (FaceSwapper.reconfigured's options)."""

    blend: str = "published"
    color_correction: str = "none"
    similarity: float = DEFAULT_SIMILARITY


class ModelCache:
    """Swappers by ModelKey, built by the CLI's own build_swapper and kept for the life of the process.

    A lock serialises loading (two requests for the same key load it once). A generator swapper is handed out as a
    fresh view (FaceSwapper.reconfigured) over the shared networks; the views share the detector, the networks and
    dlib's objects, which is safe because every page event that runs a model holds the one queue slot
    (clipswap.ui.app.MODELS_QUEUE). The network-free landmark swapper is rebuilt for each request with its options
    (it has no reconfigured view; rebuilding loads dlib's 68-point predictor again).
    """

    def __init__(self, detector: str = "auto"):
        self.detector = detector
        self._loaded: dict[ModelKey, tuple[object, str]] = {}
        self._lock = threading.Lock()

    def base(self, key: ModelKey) -> tuple[object, str]:
        """(the loaded swapper of `key`, the line naming its models). Raises as build_swapper does."""
        with self._lock:
            if key not in self._loaded:
                request = SwapRequest(source=None, target=None, output=None, model=key.model, runtime=key.runtime,
                                      precision=key.precision, detector=self.detector)
                log.info("loading %s (%s %s)", key.model, key.runtime, key.precision)
                self._loaded[key] = build_swapper(request)
            return self._loaded[key]

    def swapper(self, key: ModelKey, options: PasteOptions) -> tuple[object, str]:
        """(a swapper with `options` that shares the networks of `key`, its models line)."""
        base, line = self.base(key)
        if hasattr(base, "reconfigured"):
            return base.reconfigured(blend=options.blend, color_correction=options.color_correction,
                                     similarity=options.similarity), line
        request = SwapRequest(source=None, target=None, output=None, model=key.model, runtime=key.runtime,
                              precision=key.precision, detector=self.detector, similarity=options.similarity,
                              blend=options.blend, color_correction=options.color_correction)
        return build_swapper(request)

    def detector_of(self, key: ModelKey):
        """The face detector the swapper of `key` uses, so the faces a user picks are the faces the swap sees."""
        return self.base(key)[0].detector
