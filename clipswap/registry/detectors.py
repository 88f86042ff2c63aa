"""Face detectors: the Detector protocol every stage that looks for faces takes (swap, align, pairs, evaluation,
flicker), and one row per detector.

A row:

    label      how the models line names it ("RetinaFace-R50")
    file_key   its weights file (clipswap.checkpoints.registry.FILES): a "published" file is the user's to give
               (`--retinaface` fills files["retinaface"]); a "package" file ships with a pip package
    factory    "module:function" (path, score_threshold) -> Detector; path is the user's file, or None for a packaged
               file, which the factory finds itself
    auto_rank  place in the order "auto" tries (lower first): the first whose file is found is taken; None: never
    network    "module:function" () -> keras.Model with random weights, for `info`'s count (None: not a Keras
               network), read at `network_size` pixels

"auto" (AUTO) takes RetinaFace when its file is found (a given path, $CLIPSWAP_CKPT_DIR or pretrained_ckpts/) and
YuNet otherwise, so the pipeline runs offline out of the box.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from clipswap.registry import Choices, Registry

if TYPE_CHECKING:
    import numpy as np

    from clipswap.face.detection import Detection


@runtime_checkable
class Detector(Protocol):
    """Finds faces: detect([H, W, 3] uint8 RGB) -> list[Detection] in the image's pixels, best first."""

    def detect(self, image: np.ndarray) -> list[Detection]: ...


@dataclass(frozen=True)
class DetectorRow:
    name: str
    label: str
    file_key: str
    factory: str | Callable
    auto_rank: int | None = None
    network: str | Callable | None = None
    network_size: int = 640

    @property
    def user_file(self) -> bool:
        """Whether the user gives its file (a published file), rather than a pip package shipping it."""
        from clipswap.checkpoints.registry import FILES

        return FILES[self.file_key].origin == "published"


#: The name that picks a detector by which files are found.
AUTO = "auto"
#: The detector of the metrics, the pairs' landmarks and the flicker measure: one detector keeps identity, pose and
#: expression on the same face, and it runs offline.
EVALUATION_DETECTOR = "yunet"

DETECTORS: Registry[DetectorRow] = Registry("detector")

DETECTORS.register(DetectorRow(
    "retinaface", "RetinaFace-R50", "retinaface", "clipswap.face.retinaface:open_retinaface", auto_rank=0,
    network="clipswap.models.retinaface:build_retinaface",
))
DETECTORS.register(DetectorRow("yunet", "YuNet", "yunet", "clipswap.face.yunet:open_yunet", auto_rank=1))

#: What `--detector` accepts: "auto", then every row's name (live: a row registered later is in it).
DETECTOR_CHOICES = Choices(DETECTORS, before=(AUTO,))

__all__ = ["AUTO", "DETECTORS", "DETECTOR_CHOICES", "EVALUATION_DETECTOR", "Detector", "DetectorRow"]
