"""The `pretrained_ckpts/` layout of the original release: which file goes where, and where users get it.

Each published file is declared once here. Lookup order for a file: an explicit path, then $CLIPSWAP_CKPT_DIR, then
`pretrained_ckpts/` in the current directory, then `pretrained_ckpts/` beside the installed package's checkout.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from clipswap.checkpoints.errors import CheckpointError

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class PublishedFile:
    key: str
    names: tuple[str, ...]  # accepted file names, preferred first
    what: str
    source: str


PUBLISHED: dict[str, PublishedFile] = {
    "generator": PublishedFile(
        "generator",
        ("ClipSwap.h5", "clipswap.h5"),
        "the ClipSwap generator",
        "the ClipSwap release's Google Drive link (README of the ClipSwap repository); FaceDancer generator .h5 "
        "files from the FaceDancer release work too",
    ),
    "arcface": PublishedFile(
        "arcface",
        ("ArcFace-Res50.h5",),
        "the ArcFace-R50 identity encoder",
        "the ClipSwap release's Google Drive link or Hugging Face felixrosberg/ArcFace",
    ),
    "retinaface": PublishedFile(
        "retinaface",
        ("RetinaFace-Res50.h5",),
        "the RetinaFace-R50 face detector",
        "the ClipSwap release's Google Drive link or Hugging Face felixrosberg/RetinaFace",
    ),
}


class MissingCheckpointError(CheckpointError):
    """A published checkpoint file is not where clipswap looks for it."""


def checkpoint_dirs() -> list[Path]:
    """Folders searched for published files, in order."""
    dirs = []
    if os.environ.get("CLIPSWAP_CKPT_DIR"):
        dirs.append(Path(os.environ["CLIPSWAP_CKPT_DIR"]))
    dirs.append(Path.cwd() / "pretrained_ckpts")
    dirs.append(REPO_ROOT / "pretrained_ckpts")
    unique: list[Path] = []
    for folder in dirs:
        if folder.resolve() not in [d.resolve() for d in unique]:
            unique.append(folder)
    return unique


def find_published(key: str) -> Path | None:
    """The first existing file for `key` in checkpoint_dirs(), or None."""
    spec = PUBLISHED[key]
    for folder in checkpoint_dirs():
        for name in spec.names:
            candidate = folder / name
            if candidate.is_file():
                return candidate
    return None


def require_published(key: str, explicit: str | Path | None = None) -> Path:
    """The file for `key`: `explicit` if given (it must exist), else the default location.

    Raises:
        MissingCheckpointError: naming the file, where to get it and where to put it.
    """
    spec = PUBLISHED[key]
    if explicit is not None:
        path = Path(explicit)
        if not path.is_file():
            raise MissingCheckpointError(
                f"{spec.what} file {path} does not exist. Get {spec.names[0]} from {spec.source}."
            )
        return path
    found = find_published(key)
    if found is None:
        raise MissingCheckpointError(
            f"{spec.what} ({spec.names[0]}) was not found. Download it from {spec.source} and put it at "
            f"pretrained_ckpts/{spec.names[0]} (or set CLIPSWAP_CKPT_DIR); see pretrained_ckpts/README.md."
        )
    return found
