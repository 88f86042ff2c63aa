"""tools/pretrain_flow.py's start of the keypoint flow: the generator's keypoint network takes the head and input side
of the geometry file it starts from, and a file whose network no generator can hold is refused in one sentence
before any data is read (the short runs on real pairs are tests/facedata/test_pairs.py's)."""

from __future__ import annotations

import importlib.util

import pytest

from clipswap.checkpoints.geometry import load_geometry, save_geometry
from clipswap.config import get_preset
from clipswap.models.geometry import GeometryNet

from conftest import REPO_ROOT

KEYPOINTS = get_preset("tiny").model.replace(conditioning="target+keypoint_flow")


def _tool():
    """tools/pretrain_flow.py as a module (tools/ is no package)."""
    spec = importlib.util.spec_from_file_location("pretrain_flow", REPO_ROOT / "tools" / "pretrain_flow.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(("head", "size"), [("heatmap", 64), ("dense", 64), ("dense", 96)])
def test_the_keypoint_network_takes_the_files_head_and_side(tmp_path, head, size):
    save_geometry(GeometryNet(head=head, input_size=size, name="geometry"), tmp_path / "geometry.keras")
    config = _tool().keypoint_config(KEYPOINTS, load_geometry(tmp_path / "geometry.keras"), "G")
    assert (config.keypoint_head, config.keypoint_size) == (head, size)
    assert config.replace(keypoint_head="dense", keypoint_size=96) == KEYPOINTS


def test_a_geometry_file_of_other_widths_is_refused_in_one_sentence(tmp_path, capsys):
    narrow = GeometryNet(input_size=32, widths=(8, 16), strides=(2, 2), stem_width=4, head_width=8, head="heatmap",
                         name="geometry")
    save_geometry(narrow, tmp_path / "geometry.keras")
    output = tmp_path / "flow" / "generator.keras"
    code = _tool().main(["--pairs", str(tmp_path / "no-pairs"), "--output", str(output), "--preset", "tiny",
                         "--steps", "1", "--conditioning", "target+keypoint_flow", "--geometry",
                         str(tmp_path / "geometry.keras")])
    error = capsys.readouterr().err
    assert code == 1 and not output.exists()
    assert error.count("\n") == 1 and "Traceback" not in error, error
    assert "has widths [8, 16] (the generator's: [32, 64, 64, 128, 128, 256])" in error
    assert "strides [2, 2]" in error and "stem_width 4" in error and "head_width 8 (the generator's: 128)" in error


def test_a_geometry_network_beyond_the_keypoint_limits_is_refused_in_one_sentence():
    net = GeometryNet(head="heatmap", input_size=2048, name="geometry")
    with pytest.raises(ValueError, match=r"^the geometry network G cannot start a keypoint flow: keypoint_size 2048 "
                                         r"is above the limit of 1024[^\n]*$"):
        _tool().keypoint_config(KEYPOINTS, net, "G")
