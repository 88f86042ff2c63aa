"""A manifest that declares absurd sizes is refused before anything is built (no memory
blow-up), and a manifest edited to another valid model is caught against the configuration saved inside the
weights archive, which the manifest's SHA-256 covers."""

from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner

from clipswap.checkpoints.errors import CheckpointError
from clipswap.checkpoints.native import init_generator, load_generator
from clipswap.cli import main
from clipswap.config import SIZE_LIMITS, ModelConfig, get_preset

from conftest import shared_data


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ckpt")
    path = folder / "g.keras"
    init_generator(get_preset("tiny").model, path)
    return path


def _edited(checkpoint, tmp_path, **changes):
    copy = tmp_path / "g.keras"
    shutil.copy(checkpoint, copy)
    manifest = json.loads(checkpoint.with_suffix(".json").read_text())
    manifest["model"].update(changes)
    for key in ("image_size",):
        if key in changes and key in manifest:
            manifest[key] = changes[key]
    copy.with_suffix(".json").write_text(json.dumps(manifest))
    return copy


@pytest.mark.parametrize("field", sorted(SIZE_LIMITS))
def test_sizes_above_the_limits_are_refused(field):
    too_big = SIZE_LIMITS[field] * 4
    with pytest.raises(ValueError, match=f"{field} {too_big} is above the limit"):
        ModelConfig(**{field: too_big})


def test_absurd_manifest_is_one_sentence(checkpoint, tmp_path):
    edited = _edited(checkpoint, tmp_path, image_size=4096, base_filters=4096)
    face = shared_data("lfw", "Aaron_Sorkin", "Aaron_Sorkin_0001.jpg")
    for args in (["info", "--checkpoint", str(edited), "--no-detector"],
                 ["swap", "-s", str(face), "-t", str(face), "-o", str(tmp_path / "out.png"), "--model", str(edited)]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 1, result.output
        assert "above the limit" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out.png").exists()


def test_edited_manifest_is_caught_by_the_archive(checkpoint, tmp_path):
    edited = _edited(checkpoint, tmp_path, base_filters=16)  # valid, and the weights' SHA-256 still matches
    with pytest.raises(CheckpointError, match="the manifest was edited"):
        load_generator(edited)
    assert load_generator(checkpoint).config == get_preset("tiny").model
