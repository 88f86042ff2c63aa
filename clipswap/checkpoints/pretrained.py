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
    what: str  # the published file, e.g. "the ClipSwap generator"
    role: str  # what any file passed in its place is, e.g. "the generator" (ours may be .keras)
    source: str  # where to download it
    note: str = ""  # one more sentence for the not-found message


PUBLISHED: dict[str, PublishedFile] = {
    "generator": PublishedFile(
        "generator",
        ("ClipSwap.h5", "clipswap.h5"),
        "the ClipSwap generator",
        "the generator",
        "the ClipSwap release's Google Drive link (README of the ClipSwap repository)",
        "FaceDancer generator .h5 files work too; pass one with --model (--model_path in inference.py).",
    ),
    "arcface": PublishedFile(
        "arcface",
        ("ArcFace-Res50.h5",),
        "the ArcFace-R50 identity encoder",
        "the ArcFace-R50 identity encoder",
        "the ClipSwap release's Google Drive link or Hugging Face felixrosberg/ArcFace",
    ),
    "retinaface": PublishedFile(
        "retinaface",
        ("RetinaFace-Res50.h5",),
        "the RetinaFace-R50 face detector",
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
            message = f"{spec.role} file {path} does not exist."
            if path.suffix.lower() == ".h5":
                message += f" The published {spec.names[0]} can be downloaded from {spec.source}."
            raise MissingCheckpointError(message)
        return path
    found = find_published(key)
    if found is None:
        note = f" {spec.note}" if spec.note else ""
        raise MissingCheckpointError(
            f"{spec.what} ({spec.names[0]}) was not found. Download it from {spec.source} and put it at "
            f"pretrained_ckpts/{spec.names[0]} (or in the folder named by CLIPSWAP_CKPT_DIR); see "
            f"pretrained_ckpts/README.md.{note}"
        )
    return found
