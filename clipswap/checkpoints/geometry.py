"""The geometry network's files: `geometry.keras` (weights) and `geometry.json` (manifest), as for the generator.

    geometry.json   {"format": "clipswap-geometry/1", "config": GeometryNet.get_config(), "weights_file",
                     "sha256", "clipswap_version", "accuracy": {held-out NME and pose errors}, "training": {...}}

A manifest written before the heatmap head existed has no "head" in its config: it is a dense network. Writing,
reading and the SHA-256 check are clipswap.checkpoints.small_net's.
"""

from __future__ import annotations

from pathlib import Path

from clipswap.checkpoints.small_net import SmallNetFiles, load_small_net, read_small_manifest, save_small_net
from clipswap.models.geometry import GeometryNet

FORMAT = "clipswap-geometry/1"
#: The geometry network shipped beside the demo generator (`attribute_network="landmarks"` reads it by default).
SHIPPED_GEOMETRY = Path(__file__).resolve().parents[2] / "pretrained_ckpts" / "demo" / "geometry.keras"
GEOMETRY_FILES = SmallNetFiles(
    what="geometry network", format=FORMAT,
    config_keys=frozenset({"input_size", "widths", "strides", "stem_width", "head_width", "head"}),
    build=GeometryNet, command="clipswap train-geometry", defaults={"head": "dense"})


def save_geometry(model: GeometryNet, path: str | Path, **extra) -> Path:
    """Write `path` (.keras) and its manifest (.json) atomically; returns the manifest path."""
    return save_small_net(GEOMETRY_FILES, model, path, **extra)


def read_geometry_manifest(path: str | Path) -> dict:
    """The manifest beside a geometry .keras file (or the .json itself); CheckpointError when it is missing or
    malformed."""
    return read_small_manifest(GEOMETRY_FILES, path)


def load_geometry(path: str | Path | None = None) -> GeometryNet:
    """The frozen geometry network of `path` (default: the one shipped beside the demo), weights checked against
    the manifest's SHA-256.

    Raises:
        CheckpointError: the file or its manifest is missing, changed or does not fit the architecture.
    """
    return load_small_net(GEOMETRY_FILES, path if path is not None else SHIPPED_GEOMETRY, "geometry",
                          "or point --attribute-file PATH at one")


__all__ = ["FORMAT", "GEOMETRY_FILES", "SHIPPED_GEOMETRY", "load_geometry", "read_geometry_manifest", "save_geometry"]
