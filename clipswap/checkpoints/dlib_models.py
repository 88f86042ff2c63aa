"""Locating dlib and the model files of the `face-recognition-models` package (the `eval` extra).

The package's own helpers import the deprecated `pkg_resources`; the files are found here from the package's location
without running its __init__.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from types import ModuleType

from clipswap.checkpoints.registry import FILES
from clipswap.errors import ClipswapError

SHAPE_PREDICTOR_68 = FILES["dlib_68"].name
SHAPE_PREDICTOR_5 = FILES["dlib_5"].name
RESNET_RECOGNITION = FILES["dlib_resnet"].name

_INSTALL_HINT = (
    "install the evaluation extra: pip install 'clipswap[eval]' (packages dlib-bin and face-recognition-models)"
)


class DlibUnavailableError(ClipswapError, RuntimeError):
    """dlib or its model files are not installed."""


def import_dlib() -> ModuleType:
    """The dlib module, or DlibUnavailableError saying what to install."""
    if importlib.util.find_spec("dlib") is None:
        raise DlibUnavailableError(f"dlib is not installed; {_INSTALL_HINT}")
    return importlib.import_module("dlib")


def dlib_model_path(file_name: str) -> Path:
    """Path of one model file shipped in the face-recognition-models package."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise DlibUnavailableError(
            f"face-recognition-models is not installed, so {file_name} is missing; {_INSTALL_HINT}"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / file_name
    if not path.is_file():
        raise DlibUnavailableError(f"{path} is missing; reinstall face-recognition-models ({_INSTALL_HINT})")
    return path


def dlib_missing_reason(*file_names: str) -> str | None:
    """None when dlib and the named model files are installed, else the DlibUnavailableError message."""
    try:
        import_dlib()
        for file_name in file_names:
            dlib_model_path(file_name)
    except DlibUnavailableError as error:
        return str(error)
    return None
