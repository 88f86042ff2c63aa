"""The geometry network's two heads give the same outputs in the same units; the heatmap head's soft-argmax is exact
on peaked and uniform maps, trains every weight, round-trips through the geometry files, and serves as the keypoint
flow's network."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from clipswap.checkpoints.geometry import load_geometry, read_geometry_manifest, save_geometry
from clipswap.layers.soft_argmax import SpatialSoftArgmax
from clipswap.models.generator import keypoint_flow
from clipswap.models.geometry import HEADS, GeometryNet, parameter_count, total_stride

#: A small heatmap network: stem at S/2, blocks at S/4 and S/8 (total stride 8).
TINY_HEATMAP = {
    "input_size": 32,
    "widths": (8, 16),
    "strides": (2, 2),
    "stem_width": 4,
    "head_width": 8,
    "head": "heatmap",
}


def _faces(batch: int, side: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, (batch, side, side, 3)).astype("float32")


@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("size", [96, 128])
def test_both_heads_give_68_points_and_a_pose_at_96_and_128(head, size):
    net = GeometryNet(input_size=size, head=head)
    out = net(_faces(2, 112), training=False)
    points, pose = np.asarray(out["landmarks"]), np.asarray(out["pose"])
    assert points.shape == (2, 68, 2) and pose.shape == (2, 3)
    assert points.dtype == np.float32 and np.isfinite(points).all() and np.isfinite(pose).all()
    if head == "heatmap":
        # Soft-argmax keeps every point inside the crop, between the outermost heatmap cells' centres.
        cell = 0.5 / (size // 4)
        assert points.min() >= cell - 1e-6 and points.max() <= 1 - cell + 1e-6
        assert parameter_count(net) <= 2_000_000
        assert net.get_layer("heatmap_logits").output.shape[1:3] == (size // 4, size // 4)


def test_a_peaked_heatmap_gives_its_pixel_centre_and_a_uniform_one_the_middle():
    height, width = 24, 32
    logits = np.zeros((2, height, width, 3), "float32")
    peaks = [(0, 0), (5, 17), (23, 31), (11, 2), (20, 9), (7, 30)]
    for index, (row, column) in enumerate(peaks):
        logits[index // 3, row, column, index % 3] = 200.0
    points = np.asarray(SpatialSoftArgmax()(logits))
    expected = np.array([[(column + 0.5) / width, (row + 0.5) / height] for row, column in peaks], "float32")
    np.testing.assert_allclose(points.reshape(-1, 2), expected, atol=1e-6)
    np.testing.assert_allclose(
        np.asarray(SpatialSoftArgmax()(np.zeros((1, height, width, 68), "float32"))), 0.5, atol=1e-6
    )
    # The temperature divides the logits: a peak of 2 at temperature 0.01 is the peak of 200 at 1.
    np.testing.assert_allclose(np.asarray(SpatialSoftArgmax(temperature=0.01)(logits / 100)), points, atol=1e-6)
    with pytest.raises(ValueError, match="temperature"):
        SpatialSoftArgmax(temperature=0.0)


def test_the_heatmap_network_passes_a_gradient_to_every_weight():
    net = GeometryNet(input_size=64, head="heatmap")
    images = tf.convert_to_tensor(_faces(2, 64))
    with tf.GradientTape() as tape:
        out = net(images, training=True)
        loss = tf.reduce_mean(tf.abs(out["landmarks"] - 0.3)) + tf.reduce_mean(tf.abs(out["pose"] - 5.0))
    gradients = tape.gradient(loss, net.trainable_variables)
    assert net.trainable_variables
    for variable, gradient in zip(net.trainable_variables, gradients, strict=True):
        assert gradient is not None, variable.path
        value = np.asarray(gradient)
        assert np.isfinite(value).all() and np.any(value), variable.path


def test_the_heatmap_head_round_trips_through_the_geometry_files(tmp_path):
    net = GeometryNet(**TINY_HEATMAP, name="geometry")
    # Moved statistics and weights, so a file that dropped any of them would show.
    net(_faces(4, 48, seed=1), training=True)
    for variable in net.weights:
        variable.assign(variable + np.random.default_rng(len(variable.path)).normal(0, 0.05, variable.shape))
    manifest_file = save_geometry(net, tmp_path / "geometry.keras")
    assert read_geometry_manifest(manifest_file)["config"]["head"] == "heatmap"
    loaded = load_geometry(tmp_path / "geometry.keras")
    assert loaded.head == "heatmap" and not loaded.trainable_weights
    images = _faces(3, 48, seed=2)
    # training=False throughout: a call that leaves it unset updates the BatchNorm statistics (the Resizing layer
    # in front makes Keras treat it as a training call).
    for key in ("landmarks", "pose"):
        np.testing.assert_array_equal(
            np.asarray(loaded(images, training=False)[key]), np.asarray(net(images, training=False)[key])
        )


def test_a_manifest_without_a_head_is_a_dense_network(tmp_path):
    net = GeometryNet(input_size=32, widths=(8,), strides=(2,), stem_width=4, head_width=8, name="geometry")
    manifest_file = save_geometry(net, tmp_path / "geometry.keras")
    manifest = json.loads(manifest_file.read_text())
    assert manifest["config"].pop("head") == "dense"
    manifest_file.write_text(json.dumps(manifest))
    loaded = load_geometry(tmp_path / "geometry.keras")
    assert loaded.head == "dense"
    images = _faces(2, 32)
    np.testing.assert_array_equal(
        np.asarray(loaded(images, training=False)["landmarks"]), np.asarray(net(images, training=False)["landmarks"])
    )


def test_the_heatmap_head_refuses_sizes_its_skips_cannot_line_up():
    assert total_stride((2, 2, 1, 2, 1, 2)) == 32
    with pytest.raises(ValueError, match="multiple of the backbone's stride 32"):
        GeometryNet(input_size=100, head="heatmap")
    with pytest.raises(ValueError, match="head must be one of"):
        GeometryNet(head="argmax")
    # The dense head keeps taking any side, as before.
    GeometryNet(input_size=100, head="dense")


def test_the_keypoint_flow_builds_on_a_heatmap_geometry_network():
    target, source = keras.Input((64, 64, 3)), keras.Input((64, 64, 3))
    flow = keypoint_flow(target, source, lambda suffix, factory: factory(f"g_{suffix}"), TINY_HEATMAP)
    model = keras.Model([target, source], flow)
    assert model.get_layer("g_flow_geometry").head == "heatmap"
    out = np.asarray(model([_faces(2, 64, seed=3), _faces(2, 64, seed=4)]))
    assert out.shape == (2, 64, 64, 2) and np.isfinite(out).all()
