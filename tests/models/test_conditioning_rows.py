"""The conditioning registry (clipswap.models.conditioning.CONDITIONINGS): every row builds the generator it
describes and survives save/load, the older booleans translate to the right row, combinations they never allowed are
refused in one sentence, and a new conditioning is one row (the worked example at the end)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from clipswap.checkpoints.native import load_generator, save_generator
from clipswap.config import ModelConfig, TrainConfig, get_preset, resolve_config
from clipswap.models.conditioning import (
    CONDITIONINGS,
    Conditioning,
    conditioning_from_flags,
    input_list,
    input_specs,
    named_inputs,
)
from clipswap.models.generator import Generator

TINY = get_preset("tiny").model
DEMO_MANIFEST = Path(__file__).resolve().parents[2] / "pretrained_ckpts" / "demo" / "generator.json"


def _inputs(config: ModelConfig, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {name: rng.uniform(-1, 1, (2, *shape)).astype(np.float32) for name, shape in input_specs(config).items()}


@pytest.mark.parametrize("name", sorted(CONDITIONINGS))
def test_each_row_builds_a_generator_reading_its_inputs_and_round_trips(tmp_path, name):
    row = CONDITIONINGS[name]
    config = TINY.replace(conditioning=name, residual=True)
    model = Generator(config)
    assert tuple(tensor.name for tensor in model.inputs) == row.inputs
    assert [tuple(tensor.shape[1:]) for tensor in model.inputs] == list(input_specs(config).values())
    assert model.learned_flow == row.learned_flow
    assert bool(model.separately_trained_variables) == row.learned_flow
    inputs = _inputs(config)
    named = named_inputs(config, inputs["target"], inputs["identity"], inputs.get("source"))
    y = model(input_list(model, named)).numpy()
    # Written in the named form, read back as the same row and the same function.
    assert "conditioning" in config.to_dict() and "source_image" not in config.to_dict()
    assert ModelConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    loaded = load_generator(save_generator(model, config, tmp_path / "g.keras"))
    assert loaded.config == config and loaded.model.config_ == config
    np.testing.assert_allclose(loaded.model(input_list(loaded.model, named)).numpy(), y, atol=1e-6)


#: The older booleans (every combination they accepted) -> the row they name.
LEGACY = [
    ({}, "target"),
    ({"pre_swap": "landmarks"}, "refine_landmark_swap"),
    ({"source_image": True}, "target+source_crop"),
    ({"pre_swap": "landmarks", "source_image": True}, "refine_landmark_swap+source_crop"),
    ({"source_image": True, "source_warp": True}, "target+warp"),
    ({"source_image": True, "source_flow": True}, "target+flow"),
]


@pytest.mark.parametrize(("flags", "name"), LEGACY, ids=[name for _, name in LEGACY])
def test_the_older_booleans_name_the_right_row(flags, name):
    assert conditioning_from_flags(**flags) == name
    assert CONDITIONINGS[name].legacy_flags == {"pre_swap": None, "source_image": False, "source_warp": False,
                                                "source_flow": False, **flags}
    # A generator.json / config.json model section in the older form reads as the row; it is written back named.
    old = {**{k: v for k, v in TINY.to_dict().items() if k != "conditioning"}, **flags}
    assert ModelConfig.from_dict(old) == TINY.replace(conditioning=name)
    assert TINY.replace(**flags).conditioning == name


#: The model section of the warp demo's manifest as it shipped (pretrained_ckpts/demo/generator.json before the
#: keypoint-flow demo replaced it), its conditioning spelled with the older booleans.
WARP_DEMO_MANIFEST_MODEL = {
    "base_filters": 16, "clip_variant": None, "identity_encoder": "sface", "image_size": 128, "mapping_depth": 4,
    "mapping_width": 128, "pre_swap": None, "residual": True, "source_image": True, "source_warp": True,
    "up_types": ["no_skip", "no_skip", "affa", "affa", "affa", "concat"],
}


def test_old_files_and_documented_overrides_keep_working():
    # The warp demo's manifest spelled its conditioning with the booleans.
    assert ModelConfig.from_dict(WARP_DEMO_MANIFEST_MODEL) == get_preset("demo_warp").model
    assert get_preset("demo_warp").model.conditioning == "target+warp"
    # The shipped demo's manifest names its row.
    manifest = json.loads(DEMO_MANIFEST.read_text())
    assert ModelConfig.from_dict(manifest["model"]) == get_preset("demo").model
    assert manifest["model"]["conditioning"] == "target+keypoint_flow"
    # An old run folder's config.json.
    old_run = get_preset("demo_warp").config.to_dict()
    old_run["model"] = WARP_DEMO_MANIFEST_MODEL
    assert TrainConfig.from_dict(old_run) == get_preset("demo_warp").config
    # docs/demo_model.md's commands (given with --preset demo when it was the warp demo, now demo_warp): the booleans
    # given apply to the preset's own.
    flow = resolve_config("demo_warp", overrides={"model.source_warp": "false", "model.source_flow": "true",
                                             "weights.flow": "1"})
    assert flow.model.conditioning == "target+flow"
    crop = resolve_config("demo_warp", overrides={"model.source_warp": "false", "model.source_image": "true"})
    assert crop.model.conditioning == "target+source_crop"
    assert resolve_config("demo_warp", overrides={"model.conditioning": "target"}).model.conditioning == "target"


@pytest.mark.parametrize(("changes", "message"), [
    ({"source_warp": True}, "source_warp replaces the source crop"),
    ({"source_image": True, "source_warp": True, "pre_swap": "landmarks"}, "source_warp replaces the source crop"),
    ({"source_image": True, "source_warp": True, "source_flow": True}, "source_flow warps the source crop"),
    ({"source_flow": True}, "source_flow warps the source crop"),
    ({"source_image": True, "source_flow": True, "source_level": 2}, "source_flow warps the source crop"),
    ({"pre_swap": "poisson"}, "pre_swap must be one of"),
    ({"source_image": "yes"}, "source_image must be true or false"),
    ({"conditioning": "target+colour"}, "conditioning must be one of"),
    ({"conditioning": "target+flow", "source_level": 1}, "source_level says where the source crop joins"),
    ({"conditioning": "target", "source_level": 3}, "source_level says where the source crop joins"),
    ({"conditioning": "target+warp", "source_image": True}, "not both"),
])
def test_invalid_combinations_are_refused_in_one_sentence(changes, message):
    with pytest.raises(ValueError, match=message) as error:
        TINY.replace(**changes)
    text = str(error.value)
    assert "\n" not in text and ". " not in text.rstrip(".")


def test_the_config_refuses_a_learned_flow_without_its_term_in_one_sentence():
    from clipswap.config import ConfigError

    with pytest.raises(ConfigError, match="trained by the flow term alone") as error:
        resolve_config("tiny", overrides={"model.conditioning": "target+flow"})
    assert "\n" not in str(error.value)


def test_adding_a_conditioning_is_one_row(monkeypatch, tmp_path):
    """The worked example: a generator that refines the landmark swap and warps the source by its own flow. It
    combines known preparations, so one row in CONDITIONINGS is all it takes: the configuration accepts the name,
    the generator builds its inputs (and flow network) from the row, save/load keeps it, and training knows which
    batch keys it needs."""
    row = Conditioning("refine_landmark_swap+flow", target="landmark_swap", source="flow",
                       summary="G reads the landmark swap and warps the source crop onto it by its own flow")
    monkeypatch.setitem(CONDITIONINGS, row.name, row)

    config = TINY.replace(conditioning=row.name, residual=True)
    model = Generator(config)
    assert [tensor.name for tensor in model.inputs] == ["target", "identity", "source"]
    assert model.learned_flow and model.separately_trained_variables
    assert row.batch_keys == ("teacher", "warped", "landmarks") and row.landmarks_at_swap
    inputs = _inputs(config, seed=1)
    np.testing.assert_allclose(model(input_list(model, inputs)).numpy(), inputs["target"], atol=1e-6)
    assert load_generator(save_generator(model, config, tmp_path / "g.keras")).config.conditioning == row.name
    # The training configuration's rule for a learned flow follows the row too.
    trained = resolve_config("tiny", overrides={"model.conditioning": row.name, "weights.flow": "1"})
    assert trained.model.conditioning_row is row


def test_a_row_is_checked_when_written():
    with pytest.raises(ValueError, match="target must be one of"):
        Conditioning("target+colour", target="colour", source=None, summary="")
    with pytest.raises(ValueError, match="source must be None or one of"):
        Conditioning("target+depth", target="crop", source="depth", summary="")
    with pytest.raises(ValueError, match="at most one of its preparations may use the landmarks"):
        Conditioning("refine_landmark_swap+warp", target="landmark_swap", source="warp", summary="")
