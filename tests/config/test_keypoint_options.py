"""ModelConfig's keypoint_head and keypoint_size: the geometry network inside a "keypoints" flow. Defaults are the
shipped network's (dense at 96), each bad value is refused in one sentence, and both keys travel through to_dict /
from_dict, generator.json files written before they existed, and `--set model.keypoint_*` overrides."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from clipswap.config import ConfigError, ModelConfig, TrainConfig, get_preset, resolve_config


def test_the_defaults_are_the_shipped_geometry_networks_dense_head_at_96():
    config = ModelConfig()
    assert (config.keypoint_head, config.keypoint_size) == ("dense", 96)
    assert (get_preset("tiny").model.keypoint_head, get_preset("demo_warp").model.keypoint_size) == ("dense", 96)
    assert (get_preset("demo").model.keypoint_head, get_preset("demo").model.keypoint_size) == ("heatmap", 128)


def test_the_geometry_layout_rules_start_no_tensorflow_and_are_the_networks_own():
    code = ("import sys; from clipswap.config import ModelConfig; "
            "ModelConfig(keypoint_head='heatmap', keypoint_size=128); "
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'tensorflow imported'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"keypoint_head": "argmax"}, "keypoint_head must be one of ('dense', 'heatmap'), got 'argmax'"),
        ({"keypoint_size": 0}, "keypoint_size must be a positive integer, got 0"),
        ({"keypoint_size": -32}, "keypoint_size must be a positive integer, got -32"),
        ({"keypoint_size": 96.0}, "keypoint_size must be a positive integer, got 96.0"),
        ({"keypoint_size": True}, "keypoint_size must be a positive integer, got True"),
        ({"keypoint_head": "heatmap", "keypoint_size": 100},
         "keypoint_size 100 does not fit keypoint_head 'heatmap': the heatmap head needs an input side that is a "
         "multiple of the backbone's stride 32"),
        ({"keypoint_size": 4096}, "keypoint_size 4096 is above the limit of 1024"),
    ],
)
def test_each_bad_keypoint_value_is_refused_in_one_sentence(changes, message):
    with pytest.raises(ValueError) as error:
        ModelConfig(**changes)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_sizes_the_heatmap_head_takes_and_the_dense_heads_any_side():
    assert ModelConfig(keypoint_head="heatmap", keypoint_size=64).keypoint_size == 64
    assert ModelConfig(keypoint_head="heatmap", keypoint_size=128).keypoint_size == 128
    # The dense head flattens whatever map the backbone leaves, so any positive side builds.
    assert ModelConfig(keypoint_size=100).keypoint_size == 100


def test_the_keys_round_trip_and_an_old_file_without_them_loads_with_the_defaults():
    config = get_preset("tiny").model.replace(conditioning="target+keypoint_flow", keypoint_head="heatmap",
                                              keypoint_size=64)
    data = json.loads(json.dumps(config.to_dict()))
    assert (data["keypoint_head"], data["keypoint_size"]) == ("heatmap", 64)
    assert ModelConfig.from_dict(data) == config
    old = {key: value for key, value in data.items() if not key.startswith("keypoint_")}
    loaded = ModelConfig.from_dict(old)
    assert (loaded.keypoint_head, loaded.keypoint_size) == ("dense", 96)
    assert loaded == config.replace(keypoint_head="dense", keypoint_size=96)
    # A whole config.json of the tree written before the keys: the model section loads with the defaults.
    tree = json.loads(resolve_config("tiny", overrides={"model.conditioning": "target+keypoint_flow",
                                                        "weights.flow": 1}).to_json())
    for key in ("keypoint_head", "keypoint_size"):
        del tree["model"][key]
    assert TrainConfig.from_dict(tree).model.keypoint_head == "dense"


def test_set_overrides_reach_both_keys_and_refuse_bad_values_naming_the_key():
    config = resolve_config("tiny", overrides={"model.conditioning": "target+keypoint_flow", "weights.flow": "1",
                                               "model.keypoint_head": "heatmap", "model.keypoint_size": "64"})
    assert (config.model.keypoint_head, config.model.keypoint_size) == ("heatmap", 64)
    assert TrainConfig.from_dict(json.loads(config.to_json())) == config
    with pytest.raises(ConfigError, match="model.keypoint_size must be an integer"):
        resolve_config("tiny", overrides={"model.keypoint_size": "big"})
    with pytest.raises(ConfigError, match="keypoint_head must be one of"):
        resolve_config("tiny", overrides={"model.keypoint_head": "argmax"})
