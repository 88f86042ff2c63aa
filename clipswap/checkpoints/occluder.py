"""The occluder network's files: `occluder.keras` (weights) and `occluder.json` (manifest), written together by
`clipswap train-occluder` (clipswap.checkpoints.small_net: the layout and the SHA-256 check).

    occluder.json   {"format": "clipswap-occluder/1", "config": OccluderNet.get_config(), "weights_file", "sha256",
                     "clipswap_version", "accuracy": {held-out IoU, recall, false positives}, "training": {...}}
"""

from __future__ import annotations

from pathlib import Path

from clipswap.checkpoints.small_net import SmallNetFiles, load_small_net, read_small_manifest, save_small_net
from clipswap.models.occluder import OccluderNet

FORMAT = "clipswap-occluder/1"
#: The occluder network shipped beside the demo generator (what `clipswap swap --occlusion-mask` reads).
SHIPPED_OCCLUDER = Path(__file__).resolve().parents[2] / "pretrained_ckpts" / "demo" / "occluder.keras"
OCCLUDER_FILES = SmallNetFiles(
    what="occluder network", format=FORMAT,
    config_keys=frozenset({"input_size", "widths", "stem_width", "decoder_width"}),
    build=OccluderNet, command="clipswap train-occluder")


def save_occluder(model: OccluderNet, path: str | Path, **extra) -> Path:
    """Write `path` (.keras) and its manifest (.json) atomically; returns the manifest path."""
    return save_small_net(OCCLUDER_FILES, model, path, **extra)


def read_occluder_manifest(path: str | Path) -> dict:
    """The manifest beside an occluder .keras file (or the .json itself); CheckpointError when it is missing or
    malformed."""
    return read_small_manifest(OCCLUDER_FILES, path)


def load_occluder(path: str | Path | None = None) -> OccluderNet:
    """The frozen occluder network of `path` (default: the one shipped beside the demo), weights checked against
    the manifest's SHA-256.

    Raises:
        CheckpointError: the file or its manifest is missing, changed or does not fit the architecture.
    """
    return load_small_net(OCCLUDER_FILES, path if path is not None else SHIPPED_OCCLUDER, "occluder",
                          "or swap without --occlusion-mask")


__all__ = ["FORMAT", "OCCLUDER_FILES", "SHIPPED_OCCLUDER", "load_occluder", "read_occluder_manifest", "save_occluder"]
