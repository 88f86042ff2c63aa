"""Every network and custom layer the package builds through the shared harness (tests/harness.py), and against its
golden output (tests/golden/<name>.npz, written by tests/golden/make_golden.py).

Each case is a small configuration: the generator's tiny and demo presets, the discriminator at 64 px and width 8,
the frozen encoders at their own widths (ArcFace-R50 and RetinaFace on 32-64 px inputs, SFace at its fixed 112 px,
CLIP's "tiny" tower), the perceptual loss's VGG16 at 32 px, the smallest side its five pools take.
`test_every_network_has_a_case` fails when a network or layer is added to clipswap/models or clipswap/layers, or a
stock keras.applications network anywhere in clipswap/, without one.

Round trips: functional models and layers go through `.keras` with safe_mode on. Generator and Discriminator are
keras.Model subclasses that are not registered serialisable, so `keras.models.load_model` cannot rebuild them; they
round-trip through the formats the project reads them from: the generator through our checkpoint
(clipswap.checkpoints.native: .keras weights + JSON manifest, rebuilt from the manifest), the discriminator through
the trainer's tf.train.Checkpoint (clipswap.training.checkpointing), the fused-norm generator (never saved by the
project) through from_config + a .weights.h5 file.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import math
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from harness import (
    Bf16Tolerance,
    InputSpec,
    assert_golden,
    build_layer,
    call,
    dtype_policy,
    fixed_inputs,
    run_layer_test,
    run_model_test,
    seed_weights,
    to_numpy,
    weights_fingerprint,
)

import clipswap
import clipswap.layers
import clipswap.models
from clipswap.config import get_preset
from clipswap.layers import AdaIN, AdaptiveAttention, InstanceNormalization, NormalisedAdaIN
from clipswap.layers.caffe_preprocess import CaffePreprocess
from clipswap.layers.flow_warp import FlowWarp, StopGradient, TemplateColourMatch, ThinPlateFlow
from clipswap.layers.resize_like import ResizeNearestLike
from clipswap.layers.shape_transfer import ShapeTransfer
from clipswap.layers.soft_argmax import SpatialSoftArgmax
from clipswap.losses.perceptual import vgg16_features
from clipswap.models.arcface import build_arcface
from clipswap.models.clip_encoder import ClassTokenPool, ClipPreprocess, build_clip_image_encoder
from clipswap.models.discriminator import Discriminator
from clipswap.models.generator import Generator, mapping_network
from clipswap.models.geometry import GeometryNet
from clipswap.models.occluder import OccluderNet
from clipswap.models.retinaface import build_retinaface
from clipswap.models.sface import build_sface

from conftest import GOLDEN

TINY = get_preset("tiny").model
#: The demo before the shipped one (G reads a landmark warp). The shipped keypoint-flow demo is the graph of
#: generator_keypoint_flow at 128 px, checked end to end by tests/inference/test_demo_model.py.
WARP_DEMO = get_preset("demo_warp").model
BATCH = 2


# --------------------------------------------------------------------------------------------- round trips, bf16


def native_generator_round_trip(model: Generator, folder: Path) -> keras.Model:
    """Our checkpoint format: save_generator writes .keras + manifest, load_generator rebuilds from the manifest."""
    from clipswap.checkpoints.native import load_generator, save_generator

    save_generator(model, model.config_, folder / "generator.keras")
    return load_generator(folder / "generator.keras").model


def geometry_round_trip(model: keras.Model, folder: Path) -> keras.Model:
    """The geometry network's files: save_geometry writes weights + manifest, load_geometry rebuilds from the
    manifest (frozen)."""
    from clipswap.checkpoints.geometry import load_geometry, save_geometry

    save_geometry(model, folder / "geometry.keras")
    return load_geometry(folder / "geometry.keras")


def occluder_round_trip(model: keras.Model, folder: Path) -> keras.Model:
    """The occluder network's files: save_occluder writes weights + manifest, load_occluder rebuilds from the
    manifest (frozen)."""
    from clipswap.checkpoints.occluder import load_occluder, save_occluder

    save_occluder(model, folder / "occluder.keras")
    return load_occluder(folder / "occluder.keras")


def weights_file_round_trip(model: keras.Model, folder: Path) -> keras.Model:
    """from_config + a .weights.h5 file (for a subclassed model the project never saves as a whole)."""
    path = folder / f"{model.name}.weights.h5"
    model.save_weights(path)
    twin = type(model).from_config(model.get_config())
    twin.load_weights(path)
    return twin


def trainer_checkpoint_round_trip(model: keras.Model, folder: Path) -> keras.Model:
    """The trainer's format: tf.train.Checkpoint restored into a twin built from get_config; every value consumed."""
    prefix = tf.train.Checkpoint(discriminator=model).write(str(folder / "discriminator"))
    twin = type(model).from_config(model.get_config())
    tf.train.Checkpoint(discriminator=twin).read(prefix).assert_consumed()
    return twin


def inference_bf16(model: Generator) -> keras.Model:
    """The bf16 generator inference runs (inference_generator: folded down blocks, fused instance norm + AdaIN,
    weights converted)."""
    from clipswap.inference.swapper import generator_in_precision

    return generator_in_precision(model, "bf16")


def _in_policy(policy: str, build: Callable[[], keras.Model]) -> keras.Model:
    with dtype_policy(policy):
        return build()


def _with_weights(mixed: keras.Model, model: keras.Model) -> keras.Model:
    """`mixed` with `model`'s weights (a bf16 twin built from the same code, so the same variable order)."""
    mixed.set_weights(model.get_weights())
    return mixed


def scale_first_batch_norm(model: keras.Model) -> None:
    """RetinaFace reads 0..255 pixels minus the ImageNet means (values of +-130): a trained first BatchNorm divides
    by their spread, the generic seeded statistics (variance ~1) would not, and the heads' logits would reach +-300
    (98 % of the class probabilities saturated at 0 or 1, where a golden comparison sees little). Give conv1_bn the
    variance of its input instead (about 5,000 for uniform 0..255 pixels through 1 / fan-in kernels)."""
    batch_norm = model.get_layer("conv1_bn")
    batch_norm.moving_variance.assign(batch_norm.moving_variance * 5000.0)


def build_mapping_network() -> keras.Model:
    z = keras.Input((TINY.id_input_dim,), name="identity")
    w = mapping_network(z, TINY.mapping_depth, TINY.mapping_width, "mapping")
    return keras.Model(z, w, name="mapping_network")


def unfrozen_vgg16_features() -> keras.Model:
    """The perceptual loss's VGG16 as clipswap.losses.perceptual.vgg16_features builds it (Keras applications, no
    top, tapped at its five block pools), with random weights (weights=None: no VGG16 file exists offline) and the
    default pixel transform "none", so the model is exactly what the extractor calls on [-1, 1] RGB images. The
    builder freezes it; its layers are unfrozen here so that the gradient check sees every weight read by an output
    (the loss itself only takes gradients through it to the swapped images: the input gradient)."""
    model = vgg16_features(weights=None).model
    for layer in model.layers:
        layer.trainable = True
    return model


# -------------------------------------------------------------------------------------------------------- cases


@dataclass(frozen=True)
class NetworkCase:
    """A network in a small configuration. `covers`: the package name it exercises (the coverage check reads it).
    Measured bf16 differences (mean, max of |bf16 - fp32| / std) are noted beside each tolerance. `graph`: compare a
    tf.function call with the eager one; off for the two ResNet50 networks, whose tracing costs seconds for stock
    Keras layers (the custom layers inside them are traced in their own layer cases)."""

    covers: str
    build: Callable[[], keras.Model]
    inputs: tuple[InputSpec, ...]
    outputs: dict[str, tuple]
    training: bool = True
    reload: Callable | None = None
    make_bf16: Callable | None = None
    bf16: Bf16Tolerance | None = None
    after_seed: Callable[[keras.Model], None] | None = None
    graph: bool = True
    slow: bool = False


@dataclass(frozen=True)
class LayerCase:
    """A custom layer (named "probe" by the harness) with its init kwargs, inputs and output shape."""

    covers: type
    kwargs: dict = field(default_factory=dict)
    inputs: tuple[InputSpec, ...] = ()
    output: tuple = ()
    bf16: Bf16Tolerance | None = None


def _image(size: int, low: float = -1.0, high: float = 1.0, batch: int = BATCH) -> InputSpec:
    return InputSpec((batch, size, size, 3), low, high)


def _priors(size: int) -> int:
    return sum(math.ceil(size / stride) ** 2 for stride in (8, 16, 32)) * 2


def _learned_flow_case(conditioning: str, slow: bool = False) -> NetworkCase:
    """A tiny 64 px generator with a learned flow: its source input is read only through the gradient stop."""
    return NetworkCase(
        "Generator", lambda: Generator(TINY.replace(conditioning=conditioning)),
        (_image(64), InputSpec((BATCH, TINY.id_input_dim)), InputSpec((BATCH, 64, 64, 3), differentiable=False)),
        {"output": (BATCH, 64, 64, 3)},
        reload=native_generator_round_trip, make_bf16=inference_bf16,
        bf16=Bf16Tolerance(0.02, 0.15), slow=slow,
    )


NETWORKS: dict[str, NetworkCase] = {
    "generator_tiny": NetworkCase(
        "Generator", lambda: Generator(TINY),
        (_image(64), InputSpec((BATCH, TINY.id_input_dim))), {"output": (BATCH, 64, 64, 3)},
        reload=native_generator_round_trip, make_bf16=inference_bf16,
        bf16=Bf16Tolerance(0.02, 0.15),  # measured 0.0085, 0.068
    ),
    "generator_tiny_fused_norm": NetworkCase(
        "Generator", lambda: Generator(TINY, fused_norm=True),
        (_image(64), InputSpec((BATCH, TINY.id_input_dim))), {"output": (BATCH, 64, 64, 3)},
        reload=weights_file_round_trip,
        make_bf16=lambda m: _with_weights(Generator(TINY, fused_norm=True, dtype="mixed_bfloat16"), m),
        bf16=Bf16Tolerance(0.02, 0.15),  # measured 0.0075, 0.053
    ),
    "generator_tiny_fold_pooling": NetworkCase(
        # the inference graph (clipswap.models.generator.inference_generator), its own seeded weights here; its
        # equality with the trained graph is tests/models/test_generator.py's
        "Generator", lambda: Generator(TINY, fold_pooling=True),
        (_image(64), InputSpec((BATCH, TINY.id_input_dim))), {"output": (BATCH, 64, 64, 3)},
        reload=weights_file_round_trip,
        make_bf16=lambda m: _with_weights(Generator(TINY, fold_pooling=True, dtype="mixed_bfloat16"), m),
        bf16=Bf16Tolerance(0.02, 0.15),
    ),
    "generator_warp_demo": NetworkCase(
        "Generator", lambda: Generator(WARP_DEMO),
        (_image(128), InputSpec((BATCH, WARP_DEMO.id_input_dim)), _image(128)), {"output": (BATCH, 128, 128, 3)},
        reload=native_generator_round_trip, make_bf16=inference_bf16,
        bf16=Bf16Tolerance(0.02, 0.15),  # measured 0.0059, 0.033
    ),
    # the source crop warped onto the target by the learned flow (conditioning "target+flow"); the flow network's
    # weights, and so the source, sit behind a gradient stop (the harness checks that none reaches the weights)
    "generator_source_flow": _learned_flow_case("target+flow"),
    # the source crop warped onto the target along a thin-plate spline between the keypoints one geometry network
    # finds in each crop (conditioning "target+keypoint_flow"), behind the same gradient stop; slow: 100-200 s here
    # (the nested geometry network and the spline's solve in every check)
    "generator_keypoint_flow": _learned_flow_case("target+keypoint_flow", slow=True),
    "generator_source_level": NetworkCase(
        # the source crop through its own encoder, joining the target's skip x2 (ModelConfig.source_level)
        "Generator", lambda: Generator(TINY.replace(conditioning="target+source_crop", source_level=2)),
        (_image(64), InputSpec((BATCH, TINY.id_input_dim)), _image(64)), {"output": (BATCH, 64, 64, 3)},
        reload=native_generator_round_trip, make_bf16=inference_bf16,
        bf16=Bf16Tolerance(0.02, 0.15),
    ),
    "mapping_network": NetworkCase(
        "mapping_network", build_mapping_network,
        (InputSpec((BATCH, TINY.id_input_dim)),), {"output": (BATCH, TINY.mapping_width)},
        bf16=Bf16Tolerance(0.01, 0.05),  # measured 0.0031, 0.013
    ),
    "discriminator_tiny": NetworkCase(
        "Discriminator", lambda: Discriminator(64, base_filters=8),
        (_image(64),), {"output": (BATCH, 1)},
        reload=trainer_checkpoint_round_trip,
        make_bf16=lambda m: _with_weights(_in_policy("mixed_bfloat16", lambda: Discriminator(64, base_filters=8)), m),
        bf16=Bf16Tolerance(0.03, 0.06),  # measured 0.013, 0.019
    ),
    "discriminator_patch": NetworkCase(
        # the patch variant (Discriminator patch_blocks): one logit per cell of the 16 x 16 map after two blocks
        "Discriminator", lambda: Discriminator(64, base_filters=8, patch_blocks=2),
        (_image(64),), {"output": (BATCH, 256)},
        reload=trainer_checkpoint_round_trip,
        make_bf16=lambda m: _with_weights(
            _in_policy("mixed_bfloat16", lambda: Discriminator(64, base_filters=8, patch_blocks=2)), m),
        bf16=Bf16Tolerance(0.03, 0.06),
    ),
    "discriminator_paired": NetworkCase(
        # the paired patch variant (Discriminator paired): an image and its reference stacked on the channel axis
        "Discriminator", lambda: Discriminator(64, base_filters=8, patch_blocks=2, paired=True),
        (InputSpec((BATCH, 64, 64, 6), -1.0, 1.0),), {"output": (BATCH, 256)},
        reload=trainer_checkpoint_round_trip,
        make_bf16=lambda m: _with_weights(
            _in_policy("mixed_bfloat16", lambda: Discriminator(64, base_filters=8, patch_blocks=2, paired=True)), m),
        bf16=Bf16Tolerance(0.03, 0.06),
    ),
    "sface": NetworkCase(
        "build_sface", build_sface,
        (_image(112, 0.0, 1.0),), {"output": (BATCH, 128)}, training=False,
        bf16=Bf16Tolerance(0.01, 0.05),  # measured 0.0026, 0.014
    ),
    "arcface_r50": NetworkCase(
        "build_arcface", lambda: build_arcface(input_size=32),
        (_image(32, 0.0, 1.0),), {"output": (BATCH, 512)}, training=False, graph=False,
        bf16=Bf16Tolerance(0.02, 0.1),  # measured 0.0066, 0.037
    ),
    "retinaface_r50": NetworkCase(
        "build_retinaface", build_retinaface,
        (_image(64, 0.0, 255.0),),
        {"box": (BATCH, _priors(64), 4), "class": (BATCH, _priors(64), 2), "landmark": (BATCH, _priors(64), 10)},
        training=False, after_seed=scale_first_batch_norm, graph=False,
        slow=True,  # 10-17 s here (a 110 MB .keras round trip, two ResNet50 builds); its golden test stays fast
        bf16=Bf16Tolerance(0.02, 0.15),  # measured 0.0087, 0.052 (landmark)
    ),
    "clip_tiny": NetworkCase(
        "build_clip_image_encoder", lambda: build_clip_image_encoder("tiny", input_size=64),
        (_image(64),), {"output": (BATCH, 32)}, training=False,
        bf16=Bf16Tolerance(0.015, 0.05),  # measured 0.0048, 0.013
    ),
    "geometry_tiny": NetworkCase(
        "GeometryNet",
        lambda: GeometryNet(input_size=32, widths=(8, 16), strides=(2, 2), stem_width=4, head_width=16),
        (_image(48),), {"landmarks": (BATCH, 68, 2), "pose": (BATCH, 3)},
        reload=geometry_round_trip,
        bf16=Bf16Tolerance(0.02, 0.1),
    ),
    "geometry_heatmap": NetworkCase(
        # the heatmap head (soft-argmax of 68 maps at S/4, here 8 x 8) on the tiny backbone, skips at S/4 and S/8
        "GeometryNet",
        lambda: GeometryNet(input_size=32, widths=(8, 16), strides=(2, 2), stem_width=4, head_width=8,
                            head="heatmap"),
        (_image(48),), {"landmarks": (BATCH, 68, 2), "pose": (BATCH, 3)},
        reload=geometry_round_trip,
        bf16=Bf16Tolerance(0.05, 0.3),  # measured 0.028, 0.16 (landmarks: bf16 logits, a narrow spread)
    ),
    "occluder_tiny": NetworkCase(
        # two encoder blocks (strides 4 and 8 at a 32 px input) and their decoder, read from a 48 px crop
        "OccluderNet", lambda: OccluderNet(input_size=32, widths=(8, 16), stem_width=4, decoder_width=8),
        (_image(48),), {"output": (BATCH, 32, 32, 1)},
        reload=occluder_round_trip,
        bf16=Bf16Tolerance(0.05, 0.3),
    ),
    "vgg16_perceptual": NetworkCase(
        # 32 px, the smallest side vgg16_features takes (block5_pool is 1 x 1): the same graph and weights as at
        # 224 px for 1/49 of the work (the whole harness run takes about 3 s here)
        "vgg16_features", unfrozen_vgg16_features,
        (_image(32),),
        {"output_0": (BATCH, 16, 16, 64), "output_1": (BATCH, 8, 8, 128), "output_2": (BATCH, 4, 4, 256),
         "output_3": (BATCH, 2, 2, 512), "output_4": (BATCH, 1, 1, 512)},
        training=False,
        bf16=Bf16Tolerance(0.015, 0.1),  # measured 0.0046, 0.038
    ),
}

#: One bf16 rounding of a layer's output: measured mean <= 0.0036, max <= 0.018 of the output's spread.
LAYER_BF16 = Bf16Tolerance(0.008, 0.04)

LAYERS: dict[str, LayerCase] = {
    "instance_norm": LayerCase(
        # a spread (variance 0.003) comparable to epsilon, so the golden output depends on epsilon
        InstanceNormalization, {"epsilon": 1e-3}, (InputSpec((BATCH, 8, 8, 4), -0.1, 0.1),), (BATCH, 8, 8, 4),
        LAYER_BF16,
    ),
    "adain": LayerCase(
        AdaIN, {}, (InputSpec((BATCH, 8, 8, 6)), InputSpec((BATCH, 5))), (BATCH, 8, 8, 6), LAYER_BF16,
    ),
    "normalised_adain": LayerCase(
        NormalisedAdaIN, {"epsilon": 1e-3}, (InputSpec((BATCH, 8, 8, 6), -0.1, 0.1), InputSpec((BATCH, 5))),
        (BATCH, 8, 8, 6), LAYER_BF16,
    ),
    "adaptive_attention": LayerCase(
        AdaptiveAttention, {},
        (InputSpec((BATCH, 8, 8, 4), 0.0, 1.0), InputSpec((BATCH, 8, 8, 4)), InputSpec((BATCH, 8, 8, 4))),
        (BATCH, 8, 8, 4), LAYER_BF16,
    ),
    "caffe_preprocess": LayerCase(
        CaffePreprocess, {}, (InputSpec((BATCH, 8, 8, 3), 0.0, 255.0),), (BATCH, 8, 8, 3), LAYER_BF16,
    ),
    "flow_warp": LayerCase(
        # displacements of up to 3 px on a 12 px map: samples between pixels and clamped at the border
        FlowWarp, {}, (InputSpec((BATCH, 12, 12, 3)), InputSpec((BATCH, 12, 12, 2), -3.0, 3.0)), (BATCH, 12, 12, 3),
        LAYER_BF16,
    ),
    "thin_plate_flow": LayerCase(
        # ten point pairs inside the crop, displaced by up to 0.1 of its side; the spline on an 8 x 8 grid, upsampled
        ThinPlateFlow, {"size": 16, "cells": 8},
        (InputSpec((BATCH, 10, 2), 0.15, 0.85), InputSpec((BATCH, 10, 2), 0.1, 0.9)), (BATCH, 16, 16, 2),
        LAYER_BF16,
    ),
    "shape_transfer": LayerCase(
        # 68 target and source points inside the crop; half the source's shape (no pose directions fitted)
        ShapeTransfer, {"share": 0.5},
        (InputSpec((BATCH, 68, 2), 0.2, 0.8), InputSpec((BATCH, 68, 2), 0.2, 0.8)), (BATCH, 68, 2), LAYER_BF16,
    ),
    "spatial_soft_argmax": LayerCase(
        # logits of +-3 on a 6 x 8 map: soft peaks, so every logit moves the expected position
        SpatialSoftArgmax, {}, (InputSpec((BATCH, 6, 8, 5), -3.0, 3.0),), (BATCH, 5, 2), LAYER_BF16,
    ),
    "template_colour_match": LayerCase(
        TemplateColourMatch, {}, (InputSpec((BATCH, 16, 16, 3)), InputSpec((BATCH, 16, 16, 3), 0.0, 0.5)),
        (BATCH, 16, 16, 3), LAYER_BF16,
    ),
    "stop_gradient": LayerCase(
        StopGradient, {}, (InputSpec((BATCH, 4, 4, 3), differentiable=False),), (BATCH, 4, 4, 3), LAYER_BF16,
    ),
    "resize_nearest_like": LayerCase(
        ResizeNearestLike, {}, (InputSpec((BATCH, 3, 5, 4)), InputSpec((BATCH, 6, 9, 2), differentiable=False)),
        (BATCH, 6, 9, 4), LAYER_BF16,
    ),
    "clip_preprocess": LayerCase(
        ClipPreprocess, {"image_size": 16}, (InputSpec((BATCH, 24, 24, 3)),), (BATCH, 16, 16, 3),
        LAYER_BF16,
    ),
    "class_token_pool": LayerCase(
        ClassTokenPool, {}, (InputSpec((BATCH, 5, 8)),), (BATCH, 8), LAYER_BF16,
    ),
}

#: Public builders in clipswap/models and clipswap/layers, and stock keras.applications networks elsewhere, that are
#: not networks to test here, and why.
NOT_NETWORKS = {
    "build_inventory": "counts the networks above (clipswap info), builds none of its own",
    "InceptionFeatures": "FID's stock InceptionV3 at its fixed 299 px, only ever run with the user's weights file; "
                         "tests/evaluation/test_models.py checks it loads one and matches a direct call",
}


# ------------------------------------------------------------------------------------------------- golden outputs


def golden_outputs(name: str) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """({output: float32 array}, weights fingerprint) of case `name` with the seeded weights on the fixed inputs,
    in inference mode: what tests/golden/<name>.npz stores a summary of."""
    if name in NETWORKS:
        case = NETWORKS[name]
        network = case.build()
        seed_weights(network)
        if case.after_seed is not None:
            case.after_seed(network)
        specs = case.inputs
    else:
        case = LAYERS[name]
        network = build_layer(case.covers, case.kwargs, case.inputs)
        specs = case.inputs
    return to_numpy(call(network, fixed_inputs(specs))), weights_fingerprint(network)


def _params(cases: dict, golden: bool = False) -> list:
    """Case names as pytest params; a slow case's harness test is marked slow, never its golden test."""
    slow = [pytest.mark.slow]
    return [pytest.param(name, marks=slow if getattr(case, "slow", False) and not golden else [], id=name)
            for name, case in cases.items()]


# --------------------------------------------------------------------------------------------------------- tests


@pytest.mark.parametrize("name", _params(NETWORKS))
def test_network(name, tmp_path, restore_policy):
    case = NETWORKS[name]
    run_model_test(
        case.build, case.inputs, case.outputs, tmp_path, training=case.training,
        **({"reload": case.reload} if case.reload else {}),
        make_bf16=case.make_bf16, bf16_tolerance=case.bf16, after_seed=case.after_seed, graph=case.graph,
    )


@pytest.mark.parametrize("name", _params(LAYERS))
def test_layer(name, tmp_path, restore_policy):
    case = LAYERS[name]
    run_layer_test(case.covers, case.kwargs, case.inputs, case.output, tmp_path, bf16_tolerance=case.bf16)


@pytest.mark.parametrize("name", _params(NETWORKS, golden=True) + _params(LAYERS, golden=True))
def test_golden_output(name):
    path = GOLDEN / f"{name}.npz"
    assert path.is_file(), f"{path} is missing: run tests/golden/make_golden.py {name} (see its header)"
    outputs, fingerprint = golden_outputs(name)
    assert_golden(outputs, path, fingerprint)


def stock_application_builders() -> set[str]:
    """Top-level functions and classes anywhere in clipswap/ that build a stock `keras.applications` network (the
    perceptual loss's VGG16, FID's InceptionV3): networks the package builds outside models/ and layers/."""
    found = set()
    for path in sorted(Path(clipswap.__file__).parent.rglob("*.py")):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and any(
                isinstance(inner, ast.Attribute) and ast.unparse(inner).startswith("keras.applications.")
                for inner in ast.walk(node)
            ):
                found.add(node.name)
    return found


def test_every_network_has_a_case():
    """Every layer class and build_* function of clipswap/models and clipswap/layers, and every builder of a stock
    keras.applications network in clipswap/, is exercised here."""
    found = set()
    for package in (clipswap.models, clipswap.layers):
        for module_info in pkgutil.iter_modules(package.__path__):
            module = importlib.import_module(f"{package.__name__}.{module_info.name}")
            for name, value in vars(module).items():
                if getattr(value, "__module__", None) != module.__name__:
                    continue
                if inspect.isclass(value) and issubclass(value, keras.layers.Layer):
                    found.add(name)
                elif inspect.isfunction(value) and (name.startswith("build_") or name == "mapping_network"):
                    found.add(name)
    found |= stock_application_builders()
    covered = {case.covers for case in NETWORKS.values()} | {case.covers.__name__ for case in LAYERS.values()}
    missing = sorted(found - covered - set(NOT_NETWORKS))
    assert not missing, f"networks or layers without a case in {Path(__file__).name}: {missing}"
    assert {path.stem for path in GOLDEN.glob("*.npz")} == set(NETWORKS) | set(LAYERS), "stray or missing golden"
