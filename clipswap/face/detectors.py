"""Face detectors by name: RetinaFace-R50 (the release's, needs RetinaFace-Res50.h5) or YuNet (offline, embedded).

"auto" takes RetinaFace when its file is found (explicit path, $CLIPSWAP_CKPT_DIR or pretrained_ckpts/) and YuNet
otherwise, so the pipeline runs offline out of the box.
"""

from __future__ import annotations

import logging
from pathlib import Path

from clipswap.options import DETECTORS

log = logging.getLogger(__name__)

DEFAULT_THRESHOLD = 0.5


def resolve_detector(kind: str = "auto", retinaface_path: str | Path | None = None) -> tuple[str, Path | None]:
    """("retinaface", its file) or ("yunet", None): what `kind` means here, "auto" resolved, loading nothing.

    Raises:
        ValueError: an unknown kind.
        MissingCheckpointError: kind "retinaface" (or an explicit path) and the file is absent.
    """
    from clipswap.checkpoints.pretrained import find_published, require_published

    if kind not in DETECTORS:
        raise ValueError(f"detector must be one of {DETECTORS}, got {kind!r}")
    if kind == "auto":
        found = retinaface_path if retinaface_path is not None else find_published("retinaface")
        kind = "retinaface" if found is not None else "yunet"
    if kind == "retinaface":
        return "retinaface", require_published("retinaface", retinaface_path)
    return "yunet", None


def build_detector(kind: str = "auto", threshold: float = DEFAULT_THRESHOLD, retinaface_path: str | Path | None = None):
    """A detector object with detect([H, W, 3] uint8 RGB) -> list[Detection].

    Args:
        kind: "auto", "retinaface" or "yunet".
        threshold: minimum face score in [0, 1).
        retinaface_path: the RetinaFace .h5; None looks in the checkpoint folders.

    Raises:
        MissingCheckpointError: kind "retinaface" (or an explicit path) and the file is absent.
        CheckpointError: the RetinaFace file does not load.
    """
    return build_resolved_detector(*resolve_detector(kind, retinaface_path), threshold)


def build_resolved_detector(kind: str, path: Path | None, threshold: float = DEFAULT_THRESHOLD):
    """The detector of what resolve_detector returned (("retinaface", its file) or ("yunet", None)), so a command
    that resolved its files once does not look them up again.

    Raises:
        CheckpointError: the RetinaFace file does not load.
    """
    if not 0.0 <= threshold < 1.0:
        raise ValueError(f"the detection threshold must be in [0, 1), got {threshold}")
    if kind == "retinaface":
        from clipswap.checkpoints.retinaface_h5 import load_retinaface_h5
        from clipswap.face.retinaface import RetinaFaceDetector

        log.info("detector: RetinaFace-R50 from %s (threshold %.2f)", path, threshold)
        return RetinaFaceDetector(load_retinaface_h5(path), score_threshold=threshold)
    from clipswap.face.yunet import YuNetDetector

    log.info("detector: YuNet (embedded, threshold %.2f)", threshold)
    return YuNetDetector(score_threshold=threshold)
