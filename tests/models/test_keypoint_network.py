"""The keypoint flow's geometry network follows ModelConfig.keypoint_head and keypoint_size: the defaults build the
shipped network's graph (dense at 96), a heatmap configuration builds the heatmap head at its side in both the
generator's graph and its flow_warp, and our checkpoint and the inference form bring it back with the same
outputs."""

from __future__ import annotations

import numpy as np
from test_source_image import _inputs

from clipswap.config import get_preset
from clipswap.models.generator import Generator, inference_generator
from clipswap.models.geometry import GeometryNet, parameter_count

TINY = get_preset("tiny").model
KEYPOINTS = TINY.replace(conditioning="target+keypoint_flow")
HEATMAP = KEYPOINTS.replace(keypoint_head="heatmap", keypoint_size=64)
GEOMETRY_KEYS = ("input_size", "widths", "strides", "stem_width", "head_width", "head")


def _layout(net: GeometryNet) -> dict:
    config = net.get_config()
    return {key: config[key] for key in GEOMETRY_KEYS}


def test_the_default_keypoint_network_is_the_shipped_dense_one_at_96():
    net = Generator(KEYPOINTS).get_layer("generator_flow_geometry")
    reference = GeometryNet()
    assert isinstance(net, GeometryNet) and net.head == "dense" and net.input_size == 96
    assert _layout(net) == _layout(reference)
    assert net.count_params() == reference.count_params()
    assert parameter_count(net) == 696_363  # the shipped network's trainable parameters (GeometryNet's docstring)
    assert [w.shape for w in net.weights] == [w.shape for w in reference.weights]


def test_the_keypoint_options_leave_other_conditionings_alone():
    flow = TINY.replace(conditioning="target+flow")
    assert (Generator(flow.replace(keypoint_head="heatmap", keypoint_size=64)).count_params()
            == Generator(flow).count_params())


def test_a_heatmap_keypoint_generator_builds_warps_and_round_trips(tmp_path):
    from clipswap.checkpoints.native import load_generator, save_generator

    model = Generator(HEATMAP)
    net = model.get_layer("generator_flow_geometry")
    assert isinstance(net, GeometryNet) and net.head == "heatmap" and net.input_size == 64
    assert _layout(net) == _layout(GeometryNet(head="heatmap", input_size=64))
    assert net.get_layer("heatmap_logits").output.shape[1:3] == (16, 16)
    assert net.count_params() == GeometryNet(head="heatmap", input_size=64).count_params()
    # Moved weights (the flow's and G's), so a checkpoint that dropped or mixed up any of them would show.
    for variable in model.trainable_variables:
        variable.assign(variable + np.random.default_rng(len(variable.path)).normal(0, 0.02, variable.shape)
                        .astype("float32"))
    target, identity, source = _inputs(HEATMAP, seed=3)
    output = model([target, identity, source], training=False).numpy()
    warp, flow = (np.asarray(x) for x in model.flow_warp(target, source))
    assert output.shape == (2, 64, 64, 3) and np.isfinite(output).all()
    assert warp.shape == (2, 64, 64, 3) and flow.shape == (2, 64, 64, 2) and np.any(flow)

    loaded = load_generator(save_generator(model, HEATMAP, tmp_path / "generator.keras"))
    assert loaded.config == HEATMAP and loaded.model.config_ == HEATMAP
    twin = loaded.model.get_layer("generator_flow_geometry")
    assert twin.head == "heatmap" and twin.input_size == 64
    for mine, theirs in zip(net.get_weights(), twin.get_weights(), strict=True):
        np.testing.assert_array_equal(mine, theirs)
    np.testing.assert_array_equal(loaded.model([target, identity, source], training=False).numpy(), output)
    np.testing.assert_array_equal(np.asarray(loaded.model.flow_warp(target, source)[1]), flow)
    # The inference form (what swaps and exports run) is rebuilt from the same configuration.
    folded = inference_generator(loaded.model)
    assert folded.get_layer("generator_flow_geometry").head == "heatmap"
    np.testing.assert_allclose(folded([target, identity, source], training=False).numpy(), output, atol=1e-4)


def test_init_generator_refuses_a_start_whose_keypoint_network_differs(tmp_path):
    """A heatmap keypoint start copied into a dense run would leave the run's keypoint network random: refused,
    naming the keys that make the run match; the matching run copies every weighted layer."""
    import pytest

    from clipswap.checkpoints.native import save_generator
    from clipswap.training.assembly import TrainingSetupError, init_generator_from

    path = save_generator(Generator(HEATMAP), HEATMAP, tmp_path / "start.keras")
    with pytest.raises(TrainingSetupError) as refused:
        init_generator_from(Generator(KEYPOINTS), str(path))
    message = str(refused.value)
    assert "heatmap head at 64 px" in message and "dense head at 96 px" in message
    assert "--set model.keypoint_head=heatmap --set model.keypoint_size=64" in message
    run = Generator(HEATMAP)
    copied, left = init_generator_from(run, str(path))
    assert left == [] and copied == len([layer for layer in run.layers if layer.weights])
