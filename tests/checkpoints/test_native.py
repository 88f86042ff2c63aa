"""Our .keras + manifest format: round trip, hash check, clear refusals."""

import json

import numpy as np
import pytest

from clipswap.checkpoints.errors import CheckpointError
from clipswap.checkpoints.native import init_generator, load_any_generator, load_generator, save_generator
from clipswap.config import get_preset
from clipswap.models.generator import Generator

TINY = get_preset("tiny").model


def test_round_trip_keeps_outputs_and_manifest(tmp_path):
    model = Generator(TINY)
    path = tmp_path / "g.keras"
    manifest_path = save_generator(model, TINY, path, step=1234)
    manifest = json.loads(manifest_path.read_text())
    assert manifest["identity_encoder"] == "sface" and manifest["identity_dim"] == 128
    assert manifest["clip_variant"] is None and manifest["image_size"] == 64 and manifest["step"] == 1234
    assert len(manifest["sha256"]) == 64
    loaded = load_any_generator(path)
    assert loaded.config == TINY and loaded.step == 1234
    x = np.random.default_rng(0).uniform(-1, 1, (1, 64, 64, 3)).astype(np.float32)
    z = np.random.default_rng(1).normal(size=(1, 128)).astype(np.float32)
    np.testing.assert_array_equal(model([x, z]).numpy(), loaded.model([x, z]).numpy())
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temporary files left behind"


def test_tampered_weights_are_refused(tmp_path):
    path = tmp_path / "g.keras"
    init_generator(TINY, path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="does not match its manifest"):
        load_generator(path)


def test_a_weights_file_that_is_not_a_zip_but_matches_its_manifest_is_refused(tmp_path):
    from clipswap.checkpoints.native import manifest_path, sha256_of

    path = tmp_path / "g.keras"
    init_generator(TINY, path)
    path.write_bytes(b"not a zip archive at all" * 100)
    manifest = json.loads(manifest_path(path).read_text())
    manifest["sha256"] = sha256_of(path)  # the hash covers the file, so it matches: the archive check must speak
    manifest_path(path).write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match="is not a Keras weights archive"):
        load_generator(path)


def test_missing_manifest_is_refused(tmp_path):
    path = tmp_path / "g.keras"
    init_generator(TINY, path)
    path.with_suffix(".json").unlink()
    with pytest.raises(CheckpointError, match="no manifest"):
        load_generator(path)


def test_unknown_suffix_is_refused(tmp_path):
    with pytest.raises(CheckpointError, match="unknown generator checkpoint type"):
        load_any_generator(tmp_path / "g.pt")


def test_renamed_pair_loads_and_tampered_copy_is_refused(tmp_path):
    original = tmp_path / "g.keras"
    init_generator(TINY, original)
    renamed = tmp_path / "best.keras"
    renamed.write_bytes(original.read_bytes())
    renamed.with_suffix(".json").write_text(original.with_suffix(".json").read_text())
    assert load_generator(renamed).config == TINY
    data = bytearray(renamed.read_bytes())
    data[len(data) // 3] ^= 0xFF
    renamed.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="best.keras does not match its manifest"):
        load_generator(renamed)
    assert load_generator(original).config == TINY


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: [m], "not a JSON object"),
        (lambda m: {k: v for k, v in m.items() if k != "sha256"}, "'sha256' missing"),
        (lambda m: {**m, "model": {**m["model"], "colour": "blue"}}, "invalid model configuration"),
        (lambda m: {**m, "image_size": 128}, "'image_size' is 128"),
        (lambda m: {**m, "format": "other/9"}, "not a clipswap generator manifest"),
    ],
)
def test_malformed_manifest_is_refused(tmp_path, edit, message):
    path = tmp_path / "g.keras"
    init_generator(TINY, path)
    manifest = path.with_suffix(".json")
    manifest.write_text(json.dumps(edit(json.loads(manifest.read_text()))))
    with pytest.raises(CheckpointError, match=message):
        load_generator(path)


@pytest.mark.parametrize("change", [{"mapping_width": 64}, {"base_filters": 16}, {"mapping_depth": 3}])
def test_manifest_describing_another_architecture_is_refused(tmp_path, change):
    path = tmp_path / "g.keras"
    init_generator(TINY, path)
    manifest_file = path.with_suffix(".json")
    manifest = json.loads(manifest_file.read_text())
    manifest["model"].update(change)
    manifest_file.write_text(json.dumps(manifest))
    # Caught before any model is built: the weights archive's own configuration (covered by the SHA-256) differs.
    with pytest.raises(CheckpointError, match="describes another model than the one saved in the weights file"):
        load_generator(path)
