"""Face detectors by name (clipswap.registry.detectors): resolve a name, "auto" included, to a row and its file,
then build it.

Files reach a detector through one mapping {file key: path} (the `--retinaface` flag fills files["retinaface"]); a
key left out is looked up in the checkpoint folders.
"""

from __future__ import annotations

import logging
from pathlib import Path

from clipswap.registry import Files, given_files, load_object
from clipswap.registry.detectors import AUTO, DETECTORS, Detector

log = logging.getLogger(__name__)

DEFAULT_THRESHOLD = 0.5


def resolve_detector(kind: str = AUTO, files: Files | None = None) -> tuple[str, Path | None]:
    """(the detector's name, its user file or None for a packaged one): what `kind` means here, "auto" resolved,
    loading nothing. "auto" takes the first row by auto_rank whose file is given or found.

    Raises:
        UnknownComponentError (a ValueError): an unknown kind.
        MissingCheckpointError: a detector whose user file is neither given nor found.
    """
    from clipswap.checkpoints.pretrained import find_published, require_published

    files = given_files(files)
    if kind == AUTO:
        ranked = sorted((row for row in DETECTORS.rows() if row.auto_rank is not None), key=lambda row: row.auto_rank)
        kind = next(row.name for row in ranked
                    if not row.user_file or row.file_key in files or find_published(row.file_key) is not None)
    row = DETECTORS.get(kind)
    if not row.user_file:
        return row.name, None
    return row.name, require_published(row.file_key, files.get(row.file_key))


def build_detector(kind: str = AUTO, threshold: float = DEFAULT_THRESHOLD, files: Files | None = None) -> Detector:
    """The detector `kind` names (resolve_detector), with detect([H, W, 3] uint8 RGB) -> list[Detection].

    Args:
        kind: "auto" or a detector's name.
        threshold: minimum face score in [0, 1).
        files: {file key: path}; a key left out is looked up in the checkpoint folders.

    Raises:
        MissingCheckpointError: a detector whose user file is neither given nor found.
        CheckpointError: its file does not load.
    """
    return build_resolved_detector(*resolve_detector(kind, files), threshold)


def build_resolved_detector(kind: str, path: Path | None, threshold: float = DEFAULT_THRESHOLD) -> Detector:
    """The detector of what resolve_detector returned, so a command that resolved its files once does not look them
    up again.

    Raises:
        CheckpointError: its file does not load.
    """
    if not 0.0 <= threshold < 1.0:
        raise ValueError(f"the detection threshold must be in [0, 1), got {threshold}")
    row = DETECTORS.get(kind)
    log.info("detector: %s%s (threshold %.2f)", row.label, f" from {path}" if path else "", threshold)
    return load_object(row.factory)(path, threshold)
