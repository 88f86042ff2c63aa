"""Building a run from its configuration, on either Keras backend: the frozen encoders, G and D, the SwapLoss with
its feature sources, the optimisers, the precision policy. No TensorFlow here: the TensorFlow loop
(clipswap.training.run) and the JAX loop (clipswap.training.jax_run) assemble their runs from these.
"""

from __future__ import annotations

import functools

import keras

from clipswap.config import FLAT_KEYS, IDENTITY_ENCODERS, ModelConfig, RunFiles, TrainConfig
from clipswap.errors import ClipswapError
from clipswap.losses.terms import term_options
from clipswap.registry import load_object
from clipswap.registry.attributes import ATTRIBUTES
from clipswap.registry.encoders import ENCODERS
from clipswap.training.features import ATTRIBUTE_STAGE_COUNT, FeatureSource, IdentityNetwork
from clipswap.training.loss import SwapLoss

#: The identity encoders' specs (input, stages the perceptual and attribute terms read), by ModelConfig name.
IDENTITY_SPECS = ENCODERS.view("spec")

POLICIES = {"fp32": "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}


class TrainingSetupError(ClipswapError, ValueError):
    """The configuration, data or run folder cannot make a run (the message says what to change)."""


def set_precision(precision: str) -> None:
    keras.config.set_dtype_policy(POLICIES[precision])


def load_identity_encoder(config: TrainConfig, files: RunFiles | None = None) -> keras.Model:
    """The frozen identity encoder R of the configuration (the swap pipeline's loader: same files, same errors)."""
    from clipswap.checkpoints.encoders import load_identity_encoder as load_named
    from clipswap.checkpoints.errors import CheckpointError

    try:
        return load_named(config.model.identity_encoder, (files or RunFiles()).model_files()).model
    except CheckpointError as error:
        raise TrainingSetupError(f"identity encoder: {error}") from error


def load_clip(config: TrainConfig, files: RunFiles | None = None) -> keras.Model | None:
    """The frozen CLIP image tower at the generator's size, or None when the configuration has no CLIP."""
    if config.model.clip_variant is None:
        return None
    from clipswap.checkpoints.encoders import load_clip_embedder
    from clipswap.checkpoints.errors import CheckpointError

    try:
        return load_clip_embedder(config.model.clip_variant, (files or RunFiles()).clip_preset,
                                  config.model.image_size).model
    except CheckpointError as error:
        raise TrainingSetupError(f"CLIP: {error}") from error


def check_identity_width(config: TrainConfig, identity_model: keras.Model) -> None:
    """The identity encoder's embedding has the width the configuration's encoder has (its G input depends on it)."""
    model = config.model
    if identity_model.output.shape[-1] != IDENTITY_ENCODERS[model.identity_encoder]:
        raise TrainingSetupError(
            f"the identity encoder outputs {identity_model.output.shape[-1]} values but the configuration says "
            f"{model.identity_encoder} ({IDENTITY_ENCODERS[model.identity_encoder]})"
        )


def build_networks(model: ModelConfig, patch_blocks: int = 0,
                   paired: bool = False) -> tuple[keras.Model, keras.Model]:
    """The trainable networks (G, D), built in this order (the random initialisation depends on it); `patch_blocks`,
    `paired`: LossOptions.discriminator_patch_blocks and discriminator_paired."""
    from clipswap.models.discriminator import Discriminator
    from clipswap.models.generator import Generator

    return Generator(model), Discriminator(model.image_size, model.base_filters, patch_blocks=patch_blocks,
                                           paired=paired)


def init_generator_from(generator: keras.Model, path: str) -> tuple[int, list[str]]:
    """Start `generator` from the weights of the generator checkpoint at `path` (ours, or a published .h5): each
    layer with the same name and weight shapes is copied (warm start and fine-tuning; e.g. a flow network trained on
    its own, or the published ClipSwap.h5 under the release preset). Returns (layers copied, names of G's weighted
    layers left at their initial values).

    Raises:
        TrainingSetupError: the file cannot be read, or no layer matches (the checkpoint is of another layout).
    """
    from clipswap.checkpoints.errors import CheckpointError
    from clipswap.checkpoints.native import load_any_generator

    try:
        checkpoint = load_any_generator(path)
    except CheckpointError as error:
        raise TrainingSetupError(f"--init-generator: {error}") from error
    source = checkpoint.model
    _check_keypoint_network(getattr(generator, "config_", None), checkpoint.config, path)
    weighted = {layer.name: layer for layer in source.layers if layer.weights}
    copied, left = 0, []
    for layer in generator.layers:
        if not layer.weights:
            continue
        match = weighted.get(layer.name)
        values = match.get_weights() if match is not None else None
        if values is None or [v.shape for v in values] != [tuple(w.shape) for w in layer.weights]:
            left.append(layer.name)
            continue
        layer.set_weights(values)
        copied += 1
    if not copied:
        raise TrainingSetupError(f"--init-generator: no layer of {path} matches this configuration's generator by "
                                 "name and shape; give a checkpoint of the same layout")
    return copied, left


def check_shape_directions(generator: keras.Model) -> None:
    """TrainingSetupError when the generator's keypoint flow carries the source's shape (ModelConfig.keypoint_shape)
    but its pose directions were never fitted: the source's head turn would come along with its shape. A run
    starts from a generator that tools/shape_transfer.py wrote (or resumes its own checkpoint, which holds them)."""
    from clipswap.layers.shape_transfer import shape_transfer_layer

    shape = shape_transfer_layer(generator)
    if shape is not None and not shape.fitted:
        raise TrainingSetupError(
            "model.keypoint_shape needs the pose directions fitted on labelled faces, which this generator lacks; "
            "write a start with `python tools/shape_transfer.py --generator START --pairs PAIRS --share SHARE "
            "--output START_SHAPE/generator.keras` and give it as --init-generator")


def _check_keypoint_network(config, source_config, path: str) -> None:
    """TrainingSetupError when both generators have a keypoint flow whose geometry networks differ in head or side:
    layer-by-layer copying would leave the run's keypoint network at random values, which warp the source at random
    (tools/pretrain_flow.py writes such a start from a heatmap or other-size geometry file)."""
    if config is None or source_config is None:
        return
    rows = (c.conditioning_row.source_preparation for c in (config, source_config))
    if not all(row is not None and row.flow_network == "keypoints" for row in rows):
        return
    theirs = (source_config.keypoint_head, source_config.keypoint_size)
    if (config.keypoint_head, config.keypoint_size) != theirs:
        raise TrainingSetupError(
            f"--init-generator: {path}'s keypoint network is the {theirs[0]} head at {theirs[1]} px and this run's "
            f"the {config.keypoint_head} head at {config.keypoint_size} px; add --set model.keypoint_head={theirs[0]} "
            f"--set model.keypoint_size={theirs[1]}")


def vgg16_feature_source(config: TrainConfig, files: RunFiles, extractor=None) -> FeatureSource:
    """The perceptual term's VGG16 pools (ImageNet's weights: the run's file, else loss.vgg_weights; FaceDancer's
    block weights with facedancer_perceptual); `extractor` replaces the VGG16 build (benchmarks pass a random one)."""
    from clipswap.losses.perceptual import (
        FACEDANCER_VGG_WEIGHTS,
        VGG16_NOTOP_FILE,
        WeightsDownloadError,
        vgg16_features,
    )

    try:
        extractor = extractor or vgg16_features(files.vgg_weights or config.loss.vgg_weights,
                                                config.loss.vgg_preprocessing)
    except (WeightsDownloadError, FileNotFoundError) as error:
        raise TrainingSetupError(
            f"the VGG16 perceptual network has no weights: {error}. Pass --set vgg_weights=PATH or --vgg-weights PATH "
            f"(Keras' VGG16 no-top file {VGG16_NOTOP_FILE}) or use another network with "
            "--set perceptual_network=identity"
        ) from error
    layer_weights = FACEDANCER_VGG_WEIGHTS if config.loss.facedancer_perceptual else None
    return FeatureSource(extractor=extractor, layer_weights=layer_weights)


def feature_source(
    kind: str, config: TrainConfig, files: RunFiles, identity_layers: tuple[str, ...], discriminator: keras.Model,
    perceptual_extractor=None,
) -> FeatureSource:
    """Where a feature term (perceptual, attribute) reads: `kind` is a row of clipswap.registry.attributes (the
    perceptual term's "identity" and "discriminator" included) or "vgg16" (vgg16_feature_source)."""
    if kind in ATTRIBUTES:
        return load_object(ATTRIBUTES.get(kind).source)(config, files, identity_layers, discriminator)
    return vgg16_feature_source(config, files, perceptual_extractor)


def identity_features(config: TrainConfig, files: RunFiles, identity_layers: tuple[str, ...],
                      discriminator: keras.Model) -> FeatureSource:
    """The attribute row "identity": these stages of the identity pass."""
    return FeatureSource(identity_layers=identity_layers)


def discriminator_features(config: TrainConfig, files: RunFiles, identity_layers: tuple[str, ...],
                           discriminator: keras.Model) -> FeatureSource:
    """The attribute row "discriminator": D's residual blocks."""
    from clipswap.losses.attribute import make_attribute_extractor

    names = [layer.name for layer in discriminator.layers if layer.name.endswith("_out")]
    return FeatureSource(extractor=make_attribute_extractor("discriminator", model=discriminator, layer_names=names))


def file_features(config: TrainConfig, files: RunFiles, identity_layers: tuple[str, ...],
                  discriminator: keras.Model) -> FeatureSource:
    """The attribute row "file": the user's .keras model."""
    from clipswap.losses.attribute import AttributeModelError, make_attribute_extractor

    try:
        return FeatureSource(extractor=make_attribute_extractor("file", path=files.attribute_file))
    except AttributeModelError as error:
        raise TrainingSetupError(f"{error} (set with --set attribute_file=PATH)") from error


def landmarks_features(config: TrainConfig, files: RunFiles, identity_layers: tuple[str, ...],
                       discriminator: keras.Model) -> FeatureSource:
    """The attribute row "landmarks": the geometry network's landmarks and pose (clipswap.losses.geometry)."""
    from clipswap.checkpoints.errors import CheckpointError
    from clipswap.checkpoints.geometry import load_geometry
    from clipswap.losses.geometry import geometry_attribute_loss, geometry_features

    try:
        model = load_geometry(files.attribute_file)
    except CheckpointError as error:
        raise TrainingSetupError(f"{error} (the landmarks attribute network; set with --attribute-file "
                                 "PATH/geometry.keras)") from error
    return FeatureSource(extractor=geometry_features(model), landmarks_first=True,
                         compare=functools.partial(geometry_attribute_loss,
                                                   pose_weight=config.loss.geometry_pose_weight))


def _points_features(config: TrainConfig, files: RunFiles, identity_layers: tuple[str, ...],
                     discriminator: keras.Model, points: tuple[int, ...]) -> FeatureSource:
    """The "landmarks" row's network and term over the head pose and only `points` of the 68."""
    from clipswap.losses.geometry import geometry_attribute_loss

    source = landmarks_features(config, files, identity_layers, discriminator)
    return FeatureSource(extractor=source.extractor, landmarks_first=True,
                         compare=functools.partial(geometry_attribute_loss, points=points,
                                                   pose_weight=config.loss.geometry_pose_weight))


def pose_expression_features(config: TrainConfig, files: RunFiles, identity_layers: tuple[str, ...],
                             discriminator: keras.Model) -> FeatureSource:
    """The attribute row "pose_expression": the "landmarks" row's network and term over the head pose and the
    expression points only (clipswap.losses.geometry.EXPRESSION_POINTS)."""
    from clipswap.losses.geometry import EXPRESSION_POINTS

    return _points_features(config, files, identity_layers, discriminator, EXPRESSION_POINTS)


def pose_features(config: TrainConfig, files: RunFiles, identity_layers: tuple[str, ...],
                  discriminator: keras.Model) -> FeatureSource:
    """The attribute row "pose": the "landmarks" row's network and term over the head pose and the six points of
    the pose fit only (clipswap.losses.geometry.POSE_POINTS)."""
    from clipswap.losses.geometry import POSE_POINTS

    return _points_features(config, files, identity_layers, discriminator, POSE_POINTS)


def check_file(files: RunFiles) -> None:
    """The attribute row "file", before loading: the file is a .keras model. Raises TrainingSetupError."""
    from clipswap.losses.attribute import AttributeModelError, check_attribute_file

    try:
        check_attribute_file(files.attribute_file)
    except AttributeModelError as error:
        raise TrainingSetupError(f"{error} (set with --set attribute_file=PATH)") from error


def check_landmarks(files: RunFiles) -> None:
    """The attribute row "landmarks", before loading: the geometry network's manifest reads. Raises
    TrainingSetupError."""
    from clipswap.checkpoints.errors import CheckpointError
    from clipswap.checkpoints.geometry import SHIPPED_GEOMETRY, read_geometry_manifest

    try:
        read_geometry_manifest(files.attribute_file or SHIPPED_GEOMETRY)
    except CheckpointError as error:
        raise TrainingSetupError(f"{error} (the landmarks attribute network; set with --attribute-file "
                                 "PATH/geometry.keras)") from error


def build_loss(
    config: TrainConfig, generator: keras.Model, discriminator: keras.Model, identity_model: keras.Model,
    clip_model: keras.Model | None, perceptual_extractor=None, files: RunFiles | None = None,
) -> SwapLoss:
    """The SwapLoss of the configuration over G, D and the frozen encoders: its feature sources, the identity
    layers they and IFSR tap, and the configuration's loss options."""
    weights, options = config.weights, config.loss
    files = files or RunFiles()
    stage_layers = IDENTITY_SPECS[config.model.identity_encoder].stages
    ifsr_layers: tuple[str, ...] = ()
    if weights.ifsr:
        from clipswap.losses.facedancer import IFSR_LAYERS

        ifsr_layers = IFSR_LAYERS
    perceptual = attribute = None
    if weights.perceptual:
        perceptual = feature_source(options.perceptual_network, config, files, stage_layers, discriminator,
                                    perceptual_extractor)
    if weights.att:
        attribute = feature_source(options.attribute_network, config, files, stage_layers[:ATTRIBUTE_STAGE_COUNT],
                                   discriminator)
    tapped = set(ifsr_layers)
    for source in (perceptual, attribute):
        if source is not None:
            tapped.update(source.identity_layers)
    # A term's option takes the configuration's value where a section has a key of its name, else its row's default.
    term_values = {name: getattr(getattr(config, FLAT_KEYS[name]), name)
                   for name in term_options() if name in FLAT_KEYS}
    return SwapLoss(
        generator, discriminator, IdentityNetwork(identity_model, sorted(tapped)), weights,
        clip_encoder=clip_model, perceptual=perceptual, attribute=attribute, ifsr_layers=ifsr_layers,
        id_warmup=(options.id_warmup_steps, options.id_warmup_weight), teacher_turn_gap=options.teacher_turn_gap,
        seed=config.seed, **term_values,
    )


def make_optimizers(config: TrainConfig) -> tuple[keras.optimizers.Optimizer, keras.optimizers.Optimizer]:
    """G's and D's Adam (fp16: wrapped for loss scaling), named g_adam and d_adam (checkpoint names)."""
    fp16, opt = config.compute.precision == "fp16", config.optimiser
    return tuple(
        make_optimizer(lr, opt.beta1, opt.beta2, opt.lr_decay_rate, opt.lr_decay_steps, fp16, name)
        for lr, name in ((opt.lr_g, "g_adam"), (opt.lr_d, "d_adam"))
    )


def make_optimizer(
    learning_rate: float, beta1: float, beta2: float, decay_rate: float, decay_steps: int, loss_scaling: bool,
    name: str,
) -> keras.optimizers.Optimizer:
    """Adam with an optional continuous exponential decay (FaceDancer), wrapped for fp16 loss scaling when asked."""
    schedule: float | keras.optimizers.schedules.LearningRateSchedule = learning_rate
    if decay_rate < 1.0:
        schedule = keras.optimizers.schedules.ExponentialDecay(learning_rate, decay_steps, decay_rate, staircase=False)
    optimizer = keras.optimizers.Adam(schedule, beta_1=beta1, beta_2=beta2, name=name)
    if loss_scaling:
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer, name=f"{name}_loss_scale")
    return optimizer


def current_learning_rate(optimizer: keras.optimizers.Optimizer) -> float:
    """The learning rate the optimiser applies at its current iteration."""
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    return float(keras.ops.convert_to_numpy(inner.learning_rate))
