"""Published-format generator .h5 files (written by tf-keras, Keras 2) load into our Keras 3 Generator with parity."""

import shutil

import h5py
import numpy as np
import pytest

from clipswap.checkpoints.errors import CheckpointError, CheckpointMismatchError
from clipswap.checkpoints.generator_h5 import identity_input_widths, interpret_identity_width, load_generator_h5
from clipswap.checkpoints.native import load_any_generator

from conftest import run_keras2_fixture

CASES = {
    # name: (fixture args, expected config fields)
    "arcface512": (
        ["--id-dim", "512", "--mapping", "256", "--size", "256"],
        dict(mapping_width=256, clip_variant=None),
    ),
    "clip1024": (
        ["--id-dim", "1024", "--mapping", "512", "--size", "128", "--up-types", "concat,add,affa,affa,no_skip,concat"],
        dict(mapping_width=512, clip_variant="clip_vit_base_patch32"),
    ),
}


def test_identity_widths_come_from_the_encoder_rows():
    assert identity_input_widths() == {
        512: [("arcface", None)],
        1024: [("arcface", "clip_vit_base_patch32")],
        1280: [("arcface", "clip_vit_large_patch14")],
        128: [("sface", None)],
        640: [("sface", "clip_vit_base_patch32")],
        896: [("sface", "clip_vit_large_patch14")],
    }
    with pytest.raises(CheckpointError, match=r"g.h5 takes a 100-d identity vector; known widths are \[128, 512, "):
        interpret_identity_width(100, "g.h5")


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    folder = tmp_path_factory.mktemp("published_generator")
    files = {}
    for name, (args, _) in CASES.items():
        h5, npz = folder / f"{name}.h5", folder / f"{name}.npz"
        run_keras2_fixture("keras2_generator.py", str(h5), str(npz), *args)
        files[name] = (h5, npz)
    return files


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(CASES))
def test_parity_with_keras2(published, case):
    h5, npz = published[case]
    reference = np.load(npz)
    model, config = load_generator_h5(h5)
    for key, value in CASES[case][1].items():
        assert getattr(config, key) == value
    assert config.identity_encoder == "arcface"
    assert model.count_params() == int(reference["params"])
    output = model([reference["target"], reference["identity"]]).numpy()
    difference = np.abs(output - reference["output"]).max()
    assert difference <= 1e-4, f"max abs difference {difference}"


@pytest.mark.slow
def test_inferred_block_types(published):
    model, config = load_generator_h5(published["clip1024"][0])
    assert config.up_types == ("concat", "add", "affa", "affa", "no_skip", "concat")
    assert config.image_size == 128 and config.id_input_dim == 1024


@pytest.mark.slow
def test_load_any_generator_dispatches_h5(published):
    checkpoint = load_any_generator(published["arcface512"][0])
    assert checkpoint.source == "published-h5" and checkpoint.config.mapping_width == 256


@pytest.mark.slow
def test_truncated_file_is_refused(published, tmp_path):
    source = published["arcface512"][0]
    truncated = tmp_path / "ClipSwap.h5"
    truncated.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_generator_h5(truncated)


@pytest.mark.slow
def test_wrong_weight_shape_is_named(published, tmp_path):
    broken = tmp_path / "broken.h5"
    shutil.copy(published["arcface512"][0], broken)
    with h5py.File(broken, "r+") as handle:
        group = handle["model_weights"]["conv2d_5"]
        name = group.attrs["weight_names"][0]
        name = name.decode() if isinstance(name, bytes) else name
        original = group[name].shape
        del group[name]
        group[name] = np.zeros((*original[:-1], original[-1] + 1), np.float32)
    with pytest.raises(CheckpointMismatchError) as error:
        load_generator_h5(broken)
    message = str(error.value)
    assert name in message and str(tuple(original)) in message


def test_not_a_generator_is_refused(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_generator_h5(tmp_path / "missing.h5")
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not an hdf5 file at all" * 100)
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_generator_h5(junk)
    with h5py.File(tmp_path / "weights_only.h5", "w") as handle:
        handle.attrs["layer_names"] = [b"dense"]
        group = handle.create_group("dense")
        group.attrs["weight_names"] = [b"dense/kernel:0"]
        group["dense/kernel:0"] = np.zeros((2, 2), np.float32)
    with pytest.raises(CheckpointError, match="weights only"):
        load_generator_h5(tmp_path / "weights_only.h5")


@pytest.mark.slow
def test_arcface_file_is_not_a_generator(tmp_path):
    h5, npz = tmp_path / "arcface.h5", tmp_path / "arcface.npz"
    run_keras2_fixture("keras2_arcface.py", str(h5), str(npz))
    with pytest.raises(CheckpointError, match="not a swap generator"):
        load_generator_h5(h5)
