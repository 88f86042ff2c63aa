"""The `pretrained_ckpts/` layout: the published files (which goes where, where users get it) and the shipped demo
generator.

Each published file is declared once here. Lookup order for a file: an explicit path, then $CLIPSWAP_CKPT_DIR, then
`pretrained_ckpts/` in the current directory, then `pretrained_ckpts/` beside the installed package's checkout. In
each folder the flat layout (`ClipSwap.h5`) is tried first, then the release's own (`clipswap/ClipSwap.h5`,
`arcface/ArcFace-Res50.h5`, `retinaface/RetinaFace-Res50.h5`, as the ClipSwap README unpacks them).

The demo generator (our format, SFace identity; trained by `clipswap train --preset demo`) ships in the checkout at
`pretrained_ckpts/demo/generator.keras` + `generator.json` (DEMO_DIR; $CLIPSWAP_DEMO_DIR names another folder).
"""

from __future__ import annotations

import os
from pathlib import Path

from clipswap.checkpoints.errors import CheckpointError
from clipswap.checkpoints.registry import FILES, ModelFile

REPO_ROOT = Path(__file__).resolve().parents[2]


#: The release's files (clipswap.checkpoints.registry declares them).
PUBLISHED: dict[str, ModelFile] = {key: file for key, file in FILES.items() if file.origin == "published"}


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
        for name in spec.layouts():
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
            f"{_where(spec)}; see pretrained_ckpts/README.md.{note}"
        )
    return found


def _where(spec: ModelFile) -> str:
    return (f"pretrained_ckpts/{spec.names[0]} or pretrained_ckpts/{spec.folder}/{spec.names[0]} (the release's "
            "layout), or in the folder named by CLIPSWAP_CKPT_DIR")


#: The shipped demo generator's folder; tests monkeypatch it, $CLIPSWAP_DEMO_DIR overrides it.
DEMO_DIR = REPO_ROOT / "pretrained_ckpts" / "demo"
DEMO_ENV = "CLIPSWAP_DEMO_DIR"
#: The demo generator's weights file in DEMO_DIR; its manifest is generator.json beside it.
DEMO_FILE = "generator.keras"


def demo_path() -> Path:
    """Where the demo generator's weights file should be ($CLIPSWAP_DEMO_DIR or DEMO_DIR, then DEMO_FILE)."""
    folder = os.environ.get(DEMO_ENV) or DEMO_DIR
    return Path(folder) / DEMO_FILE


def find_demo() -> Path | None:
    """The demo generator's .keras file, or None when it is absent."""
    path = demo_path()
    return path if path.is_file() else None


def require_demo() -> Path:
    """The demo generator's .keras file. Raises MissingCheckpointError (one sentence) when it is absent."""
    path = find_demo()
    if path is None:
        raise MissingCheckpointError(
            f"the demo generator {demo_path()} is missing: it ships with the clipswap repository in "
            "pretrained_ckpts/demo/ (restore it with git checkout -- pretrained_ckpts/demo), or pass another "
            "generator with --model PATH (--model_path in inference.py)."
        )
    return path


def default_generator() -> Path:
    """The generator a run uses when none is named: the published ClipSwap.h5 when found (find_published), else
    the demo generator.

    Raises:
        MissingCheckpointError: neither is there; names both and where to get them.
    """
    published = find_published("generator")
    if published is not None:
        return published
    demo = find_demo()
    if demo is not None:
        return demo
    spec = PUBLISHED["generator"]
    raise MissingCheckpointError(
        f"no generator was found: {spec.what} ({spec.names[0]}) is not in pretrained_ckpts/ or CLIPSWAP_CKPT_DIR, "
        f"and the demo generator {demo_path()} is missing; restore pretrained_ckpts/demo/ from the clipswap "
        f"repository, download {spec.names[0]} from {spec.source} and put it at {_where(spec)}, or pass a "
        "generator with --model PATH (--model_path in inference.py); see pretrained_ckpts/README.md."
    )
