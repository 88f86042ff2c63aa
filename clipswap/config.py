"""The configuration tree and the one preset registry.

    TrainConfig                  the experiment, written to the run folder's config.json
      model         ModelConfig  the generator
      weights       LossWeights  lambda of each loss term, R1's gamma
      loss          LossOptions  which networks the feature terms read, FaceDancer's variants, teacher, warm-up
      optimiser     OptimiserConfig  both Adams and the learning-rate decay
      data          DataConfig   batch, pair mix, jitter, shuffle buffer, iterator checkpointing
      augmentation  AugmentationConfig  CLIP's X_aug and the identity loss's shift/flip
      schedule      ScheduleConfig   steps and the intervals of checkpoints, logs, grids, held-out scoring
      compute       ComputeConfig    precision and XLA
      preset, seed
    RunFiles                     the files of one run (ArcFace, CLIP preset, VGG16 weights, attribute model):
                                 what the command line gives, never in config.json

Keys are spelled `section.key` (`--set schedule.steps=5`, `--set model.base_filters=16`, `--set weights.id=5`); a
key of loss/optimiser/data/augmentation/schedule/compute may also be given alone (`--set steps=5`), and the file
keys (`--set attribute_file=A.keras`) go to RunFiles: `resolve_key` is the one place that says where a key lives.
A YAML file holds the same keys, nested or dotted. `validate` (every tree, when built) and `check_runnable` (this
tree with these files) hold every rule. PRESETS is the one registry: each preset says how to run it, on what data,
how long it takes on this project's 2-core CPU and what it should reach (big_vision's config headers); every number
cites its source (the paper, FaceDancer's code, the README or docs/demo_model.md).
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from clipswap.errors import ClipswapError
from clipswap.losses.terms import TERMS, LossTerm, weight_fields
from clipswap.models.conditioning import (
    CONDITIONINGS,
    LEGACY_FLAGS,
    Conditioning,
    LegacyFlags,
    conditioning_from_flags,
    get_conditioning,
)
from clipswap.registry.attributes import ATTRIBUTE_CHOICES, ATTRIBUTES
from clipswap.registry.encoders import ENCODER_WIDTHS, ENCODERS

UP_TYPES = ("no_skip", "affa", "concat", "add")

#: Identity encoders the generator can be conditioned on, and their embedding widths (clipswap.registry.encoders).
IDENTITY_ENCODERS = ENCODER_WIDTHS

#: Architectures of the CLIP image towers (OpenAI's published shapes) and a tiny one for tests.
_VIT_B32 = dict(
    image_size=224, patch_size=32, hidden_dim=768, num_layers=12, num_heads=12, intermediate_dim=3072,
    projection_dim=512,
)
CLIP_SPECS: dict[str, dict] = {
    "clip_vit_base_patch32": _VIT_B32,
    "clip_vit_base_patch16": {**_VIT_B32, "patch_size": 16},  # ViT-B/32 with 16-px patches
    "clip_vit_large_patch14": dict(
        image_size=224, patch_size=14, hidden_dim=1024, num_layers=24, num_heads=16, intermediate_dim=4096,
        projection_dim=768,
    ),
    "tiny": dict(
        image_size=32, patch_size=8, hidden_dim=32, num_layers=2, num_heads=2, intermediate_dim=64, projection_dim=32,
    ),
}

#: CLIP image towers (keras-hub preset names) and their embedding (projection) widths.
CLIP_VARIANTS = {name: spec["projection_dim"] for name, spec in CLIP_SPECS.items()}


#: Upper bounds of a generator configuration (a manifest declaring absurd sizes would exhaust memory while the
#: model was built). Each is 4x or more the paper's value.
SIZE_LIMITS = {"image_size": 1024, "base_filters": 512, "mapping_width": 4096, "mapping_depth": 32}


@dataclass(frozen=True)
class ModelConfig(LegacyFlags):
    """Generator configuration (the FaceDancer U-Net the paper builds on, section III).

    Attributes:
        image_size: crop side, 128, 256 or 512 (any multiple of 32 works; 64 for the tiny preset).
        base_filters: width of the first conv; the levels use 1, 2, 4, 8, 8, 8, 8 times it (64 in FaceDancer).
        up_types: decoder block type per level, deepest first: u4, u3, u2, u1, u0 and the output block.
        mapping_depth: dense layers in the mapping network (4 in FaceDancer and the paper).
        mapping_width: mapping network width: 256 (FaceDancer get_generator default) or 512 (its train.py default).
        identity_encoder: "arcface" (512-d) or "sface" (128-d, our offline encoder).
        clip_variant: CLIP image tower whose embedding is concatenated to the identity vector, or None (release).
        conditioning: what G reads besides the identity vector, one name of
            clipswap.models.conditioning.CONDITIONINGS: "target" (the aligned target crop, as every published model),
            "refine_landmark_swap" (the classical landmark swap of the source onto the target crop, which G corrects),
            "target+source_crop" (also the source's aligned crop: the network sees the face it is asked to render),
            "refine_landmark_swap+source_crop", "target+warp" (also the source's face warped onto the target's 68
            landmarks by clipswap.face.landmark_swap.warp_paste: the source's texture in the target's geometry, the
            demo model) or "target+flow" (also the source crop, which G warps onto the target by a small flow network
            trained by its own term, weights.flow, against each pair's landmark warp, so a swap needs no
            landmarks). Files written before the name existed spell it with the booleans pre_swap, source_image,
            source_warp and source_flow, which from_dict and replace translate (conditioning_from_flags).
        residual: the output is G's input plus the last block's output, whose convs start at zero, so an untrained
            G returns its input (ours, for landmark-swap models: G learns a correction of the landmark swap).
        source_level: where the source crop joins the encoder. 0: stacked with the target before the first conv.
            k in 1..5: through its own first conv and k resampling down blocks (the target encoder's widths), then
            concatenated with the target's skip x_k (at S / 2**k) and projected back to its width by a 1x1 conv
            (ours): the source reaches G only as features at S / 2**k, so G has no full-resolution path through
            which a pixel overlay of the source's eyes, mouth or glasses is the cheapest way to carry identity.
    """

    image_size: int = 256
    base_filters: int = 64
    up_types: tuple[str, ...] = ("no_skip", "no_skip", "affa", "affa", "affa", "concat")
    mapping_depth: int = 4
    mapping_width: int = 256
    identity_encoder: str = "arcface"
    clip_variant: str | None = None
    conditioning: str = "target"
    residual: bool = False
    source_level: int = 0

    def __post_init__(self):
        object.__setattr__(self, "up_types", tuple(self.up_types))
        if self.image_size % 32 or self.image_size < 32:
            raise ValueError(f"image_size must be a multiple of 32 (>= 32), got {self.image_size}")
        if len(self.up_types) != 6 or any(t not in UP_TYPES for t in self.up_types):
            raise ValueError(f"up_types must be 6 of {UP_TYPES}, got {self.up_types}")
        if self.identity_encoder not in IDENTITY_ENCODERS:
            raise ValueError(
                f"identity_encoder must be one of {sorted(IDENTITY_ENCODERS)}, got {self.identity_encoder!r}"
            )
        if self.clip_variant is not None and self.clip_variant not in CLIP_VARIANTS:
            raise ValueError(f"clip_variant must be None or one of {sorted(CLIP_VARIANTS)}, got {self.clip_variant!r}")
        row = get_conditioning(self.conditioning)
        if not isinstance(self.residual, bool):
            raise ValueError(f"residual must be true or false, got {self.residual!r}")
        if isinstance(self.source_level, bool) or not isinstance(self.source_level, int) or \
                not 0 <= self.source_level <= 5:
            raise ValueError(f"source_level must be an integer from 0 to 5, got {self.source_level!r}")
        if self.source_level and not (row.source and row.source_preparation.levels):
            levelled = [name for name, other in CONDITIONINGS.items()
                        if other.source and other.source_preparation.levels]
            raise ValueError("source_level says where the source crop joins the encoder: it needs source_image true, "
                             f"a conditioning of {levelled}, got {self.conditioning!r}")
        if self.mapping_depth < 1 or self.mapping_width < 1 or self.base_filters < 1:
            raise ValueError("mapping_depth, mapping_width and base_filters must be positive")
        for name, limit in SIZE_LIMITS.items():
            if getattr(self, name) > limit:
                raise ValueError(
                    f"{name} {getattr(self, name)} is above the limit of {limit} (the paper's model: "
                    f"{getattr(ModelConfig(), name)}); a configuration this large is refused so that a bad manifest "
                    "cannot exhaust memory"
                )

    @property
    def identity_dim(self) -> int:
        return IDENTITY_ENCODERS[self.identity_encoder]

    @property
    def clip_dim(self) -> int:
        return CLIP_VARIANTS[self.clip_variant] if self.clip_variant else 0

    @property
    def id_input_dim(self) -> int:
        """Width of the generator's identity input: identity vector, then the CLIP embedding when on."""
        return self.identity_dim + self.clip_dim

    @property
    def conditioning_row(self) -> Conditioning:
        """The row of `conditioning` (clipswap.models.conditioning): the generator's inputs and how each is made."""
        return get_conditioning(self.conditioning)

    def replace(self, **changes) -> ModelConfig:
        """A copy with `changes`; the older booleans (pre_swap, source_image, ...) are applied to this config's own
        and translated to `conditioning` (translate_legacy_keys)."""
        return dataclasses.replace(self, **translate_legacy_keys(changes, self))

    def to_dict(self) -> dict:
        """The named form (conditioning, never the older booleans)."""
        return {**dataclasses.asdict(self), "up_types": list(self.up_types)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelConfig:
        """The config of a generator.json / config.json model section, in the named form or the older booleans."""
        names = {f.name for f in dataclasses.fields(cls)} | set(LEGACY_FLAGS)
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown model configuration keys: {unknown}")
        return cls(**translate_legacy_keys(data))


def translate_legacy_keys(values: Mapping[str, Any], base: ModelConfig | None = None) -> dict[str, Any]:
    """`values` (ModelConfig keys) with the older booleans (pre_swap, source_image, source_warp, source_flow)
    replaced by the `conditioning` they name: they update `base`'s own (the defaults without one), so
    `--set model.source_warp=false --set model.source_flow=true` on the demo names "target+flow".

    Raises:
        ValueError: one sentence: a combination the booleans never allowed, or both spellings at once.
    """
    legacy = {key: values[key] for key in LEGACY_FLAGS if key in values}
    if not legacy:
        return dict(values)
    if "conditioning" in values:
        raise ValueError(f"give model.conditioning or the older {sorted(legacy)}, not both")
    flags = {**(base.conditioning_row.legacy_flags if base is not None else LEGACY_FLAGS), **legacy}
    level = values.get("source_level", base.source_level if base is not None else 0)
    rest = {key: value for key, value in values.items() if key not in LEGACY_FLAGS}
    return {**rest, "conditioning": conditioning_from_flags(**flags, source_level=level)}


class _LossWeightRules:
    """What every LossWeights class holds besides its fields: the range check and the named weight sets."""

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"loss weight {item.name} must be a finite number >= 0, got {value!r}")

    @classmethod
    def facedancer(cls) -> LossWeights:
        """FaceDancer's train.py weights: no CLIP or attribute term; cycle and IFSR on."""
        return cls(id=10.0, rec=5.0, perceptual=0.2, contra=0.0, att=0.0, adv=1.0, cycle=1.0, ifsr=1.0, r1_gamma=10.0)

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


LOSS_WEIGHTS_DOC = """Lambda of each generator term, and R1's gamma: one field per weighted row of the loss-term table
(clipswap.losses.terms, which says what each computes; defaults there: the paper's, section 8, plus adversarial 1),
then r1_gamma (10). A weight of 0 turns an optional term off; `teacher` and `flow` are ours."""


def loss_weights_class(terms: tuple[LossTerm, ...] = TERMS) -> type:
    """The frozen dataclass of a loss-term table's weights: one float field per weighted row (`weights.<name>`),
    defaulting to the row's weight, then R1's gamma (clipswap.losses.terms.weight_fields). Built from the table so
    that a new row is a new key of the configuration, its config files and its run folders."""
    return dataclasses.make_dataclass(
        "LossWeights", [(name, float, field(default=default)) for name, default in weight_fields(terms)],
        bases=(_LossWeightRules,), frozen=True,
        namespace={"__module__": __name__, "__doc__": LOSS_WEIGHTS_DOC},
    )


#: The weights of the loss-term table (section `weights`).
LossWeights = loss_weights_class()


# --- the training sections ---------------------------------------------------------------------------------------

PRECISIONS = ("fp32", "bf16", "fp16")
#: Feature networks of the perceptual loss (eq. 8): ImageNet VGG16 pools, the identity encoder's stages (ArcFace-R50
#: or SFace, whichever encodes identity), or the discriminator's residual blocks.
PERCEPTUAL_NETWORKS = ("vgg16", "identity", "discriminator")
#: Attribute networks A of eq. 9 (see clipswap/losses/attribute.py): "identity" is the multi-level identity-encoder
#: features (ArcFace stages by default, the default A), "file" a user's .keras model (RunFiles.attribute_file),
#: "landmarks" the geometry network (68 landmarks and head pose, clipswap.losses.geometry): the one at
#: RunFiles.attribute_file (a geometry.keras with its geometry.json), by default the one shipped with the demo.
ATTRIBUTE_NETWORKS = ATTRIBUTE_CHOICES
#: What the experiment may say about VGG16's weights: ImageNet's (Keras downloads them) or none (random, benchmarks
#: only). A weights file is a file of the run: RunFiles.vgg_weights.
VGG_WEIGHTS = ("imagenet", None)


@dataclass(frozen=True)
class LossOptions:
    """How the loss terms are computed (section `loss`; their weights are the `weights` section).

    Attributes:
        perceptual_network: see PERCEPTUAL_NETWORKS.
        vgg_weights: "imagenet" (Keras downloads them on first use) or None (random, benchmarks only); a weights file
            is given to the run instead (RunFiles.vgg_weights, `--vgg-weights`).
        vgg_preprocessing: ImageNet caffe preprocessing before VGG16.
        facedancer_perceptual: scale VGG blocks by 0.85 (FaceDancer); facedancer_rec_clip: FaceDancer's clip/halve.
        teacher_face_only: the teacher term (weights.teacher) averages over the face region only.
        teacher_background: with teacher_face_only, the mean over the pixels outside the face region is added (each
            region averaged on its own), so the swap keeps the target's background and hair on cross-identity pairs.
        id_warmup_steps, id_warmup_weight: a curriculum (ours): for the first `id_warmup_steps` steps the identity
            term is weighted `id_warmup_weight` instead of weights.id (0 steps = off).
        perceptual_to_teacher: with teacher pairs, the perceptual term compares the swap with the teacher on every
            pair instead of with the target on same-identity pairs.
        attribute_network: see ATTRIBUTE_NETWORKS ("file": the run's RunFiles.attribute_file).
        discriminator_patch_blocks: 0: the adversarial term's D gives one logit per image (FaceDancer's); k > 0: it
            runs its first k residual blocks and scores each cell of their map (models.discriminator, ours).
        discriminator_paired: D reads each image beside a reference (models.discriminator, paired; ours): real
            pairs are a target and another photo of its person, fake pairs a swap and its source's crop, so a swap
            that pastes the source's features where the template puts them is told from two real photos. Needs
            `clipswap pairs` data with other photos of each person (its "mates").
    """

    perceptual_network: str = "vgg16"
    vgg_weights: str | None = "imagenet"
    vgg_preprocessing: bool = False
    facedancer_perceptual: bool = False
    facedancer_rec_clip: bool = False
    teacher_face_only: bool = False
    teacher_background: bool = False
    id_warmup_steps: int = 0
    id_warmup_weight: float = 10.0
    perceptual_to_teacher: bool = False
    attribute_network: str = "identity"
    discriminator_patch_blocks: int = 0
    discriminator_paired: bool = False


@dataclass(frozen=True)
class OptimiserConfig:
    """Both Adams (section `optimiser`): lr_g, lr_d learning rates; beta1, beta2; continuous exponential decay
    lr * lr_decay_rate^(step / lr_decay_steps) (rate 1 = none)."""

    lr_g: float = 1e-4
    lr_d: float = 1e-4
    beta1: float = 0.0
    beta2: float = 0.999
    lr_decay_rate: float = 1.0
    lr_decay_steps: int = 100_000


@dataclass(frozen=True)
class DataConfig:
    """The training stream (section `data`).

    Attributes:
        batch_size: global batch (split evenly across replicas).
        same_identity_prob: probability a sample's source is its target (reconstruction/perceptual pairs).
        jitter: colour jitter in the data pipeline; shuffle_buffer: tf.data shuffle buffer.
        checkpoint_data: also checkpoint the tf.data iterator (exact data position on resume; costs the shuffle
            buffer's size on disk). When off, a resumed run draws a fresh, reseeded data order.
    """

    batch_size: int = 10
    same_identity_prob: float = 0.2
    jitter: bool = True
    shuffle_buffer: int = 1000
    checkpoint_data: bool = True


@dataclass(frozen=True)
class AugmentationConfig:
    """Augmentations inside the loss (section `augmentation`): n_aug, aug_distortion, aug_crop_fraction are the CLIP
    augmentations (X_aug, eqs. 2-5) per swap; id_augment scores the identity loss on a randomly shifted and flipped
    swap (clipswap.losses.augment.identity_augment)."""

    n_aug: int = 4
    aug_distortion: float = 0.5
    aug_crop_fraction: float = 0.75
    id_augment: bool = False


@dataclass(frozen=True)
class ScheduleConfig:
    """How long and how often (section `schedule`): steps (one G and one D update each); checkpoint_every,
    keep_checkpoints; log_every (scalars), image_every (grids), eval_every (held-out identity loss) and
    eval_batch_size (the fixed held-out batch)."""

    steps: int = 300_000
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    log_every: int = 50
    image_every: int = 1000
    eval_every: int = 1000
    eval_batch_size: int = 16


@dataclass(frozen=True)
class ComputeConfig:
    """How the step is computed (section `compute`): precision fp32, bf16 (mixed bfloat16) or fp16 (mixed float16
    with dynamic loss scaling); xla compiles the train step (jit_compile)."""

    precision: str = "fp32"
    xla: bool = False


#: The sections of TrainConfig, by the name they have in config.json, YAML files and `--set section.key=value`.
SECTIONS: dict[str, type] = {
    "model": ModelConfig, "weights": LossWeights, "loss": LossOptions, "optimiser": OptimiserConfig,
    "data": DataConfig, "augmentation": AugmentationConfig, "schedule": ScheduleConfig, "compute": ComputeConfig,
}
#: Keys that may be given without their section (`--set steps=5`, the spelling of the flat configuration this tree
#: replaced): every field of the sections below, each name in exactly one of them. model.* and weights.* always take
#: their prefix.
FLAT_SECTIONS = ("loss", "optimiser", "data", "augmentation", "schedule", "compute")
FLAT_KEYS: dict[str, str] = {f.name: name for name in FLAT_SECTIONS for f in fields(SECTIONS[name])}
assert len(FLAT_KEYS) == sum(len(fields(SECTIONS[name])) for name in FLAT_SECTIONS), "a flat key in two sections"
#: Keys of the tree itself, outside any section.
TOP_KEYS = ("preset", "seed")


@dataclass(frozen=True)
class TrainConfig:
    """The experiment: everything a training run needs besides its files (RunFiles), the data and the run folder.

    Attributes:
        model: the generator (ModelConfig); weights: the loss weights (LossWeights);
        loss: how the terms are computed (LossOptions); optimiser, data, augmentation, schedule, compute: the
            sections above.
        preset: the preset this was resolved from (its name says which files it needs: `paper` ArcFace and CLIP,
            `paper-offline` none).
        seed: data order, initialisation and augmentations.

    Every value is checked when the tree is built (`validate`); what this machine and these files can run is
    checked by `check_runnable`.
    """

    model: ModelConfig
    weights: LossWeights
    preset: str = "custom"
    seed: int = 0
    loss: LossOptions = field(default_factory=LossOptions)
    optimiser: OptimiserConfig = field(default_factory=OptimiserConfig)
    data: DataConfig = field(default_factory=DataConfig)
    augmentation: AugmentationConfig = field(default_factory=AugmentationConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    compute: ComputeConfig = field(default_factory=ComputeConfig)

    def __post_init__(self) -> None:
        validate(self)

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with `changes`: whole sections (`model=ModelConfig(...)`) or keys in any spelling
        `apply_overrides` takes (`steps=5`, `lr_g=1e-3`)."""
        return apply_overrides(self, changes)

    def to_dict(self) -> dict:
        data: dict[str, Any] = {"preset": self.preset, "seed": self.seed}
        for name in SECTIONS:
            section = getattr(self, name)
            data[name] = section.to_dict() if name == "model" else dataclasses.asdict(section)
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        """The tree of a nested mapping (config.json); a flat one (written before the tree) goes through
        `migrate_flat_config` first. Every value is type-checked; a missing section takes its defaults."""
        data = migrate_flat_config(data)
        unknown = sorted(set(data) - set(SECTIONS) - set(TOP_KEYS))
        if unknown:
            raise ConfigError(f"unknown training configuration keys: {unknown}")
        built: dict[str, Any] = {}
        for name, section_cls in SECTIONS.items():
            values = data.get(name, {})
            if not isinstance(values, Mapping):
                raise ConfigError(f"section {name} must be a mapping, got {values!r}")
            built[name] = _build_section(name, section_cls, values)
        for key in TOP_KEYS:
            if key in data:
                built[key] = _coerce(key, data[key], _field_types(cls)[key])
        return cls(**built)


@dataclass(frozen=True)
class RunFiles:
    """The files of one run, kept out of the experiment (TrainConfig) so that config.json says what was trained,
    not where this machine keeps its files; `clipswap train` builds it from its flags.

    Attributes:
        arcface_path: ArcFace-R50 .h5 (`--arcface`), needed by a config whose identity encoder is ArcFace.
        clip_preset: keras-hub CLIP preset, directory or handle (`--clip-preset`), needed by a config with CLIP.
        vgg_weights: Keras' VGG16 no-top weights file (`--vgg-weights`); None: loss.vgg_weights decides.
        attribute_file: the attribute network A as a .keras model (`--attribute-file`), for attribute_network "file".
        init_generator: a generator checkpoint whose weights start a new run, layer by layer where name and shape
            match (`--init-generator`; a resumed run restores its own checkpoint instead).
    """

    arcface_path: str | None = None
    clip_preset: str | None = None
    vgg_weights: str | None = None
    attribute_file: str | None = None
    init_generator: str | None = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def model_files(self) -> dict[str, str]:
        """The given model files by registry file key ({"arcface": path}), the mapping components read."""
        return {key: getattr(self, name) for key, name in MODEL_FILE_FIELDS.items() if getattr(self, name)}


#: The RunFiles field of each model file, by its registry file key (clipswap.checkpoints.registry.FILES).
MODEL_FILE_FIELDS = {"arcface": "arcface_path"}
#: The RunFiles fields and the `clipswap train` flag of each (what the refusals name).
RUN_FILE_FLAGS = {"arcface_path": "--arcface", "clip_preset": "--clip-preset", "vgg_weights": "--vgg-weights",
                  "attribute_file": "--attribute-file", "init_generator": "--init-generator"}


class ConfigError(ClipswapError, ValueError):
    """A configuration that cannot be built or cannot run here; the message is one sentence saying what to change."""


# --- validation: every rule in one place -------------------------------------------------------------------------

#: Fields that must be >= 1, by section.
_POSITIVE = {
    "optimiser": ("lr_decay_steps",),
    "data": ("batch_size", "shuffle_buffer"),
    "augmentation": ("n_aug",),
    "schedule": ("steps", "checkpoint_every", "keep_checkpoints", "log_every", "image_every", "eval_every",
                 "eval_batch_size"),
}
#: Fields that must be one of a list, by section.
_CHOICES = {
    ("loss", "perceptual_network"): PERCEPTUAL_NETWORKS,
    ("loss", "attribute_network"): ATTRIBUTE_NETWORKS,
    ("loss", "vgg_weights"): VGG_WEIGHTS,
    ("compute", "precision"): PRECISIONS,
}


def validate(config: TrainConfig) -> None:
    """Check a tree: every section's type, every value's type and range, and the rules across sections.

    ModelConfig and LossWeights check their own fields when built (other code builds them alone); everything else
    is here. Raises ConfigError with one sentence naming the key.
    """
    for name, section_cls in SECTIONS.items():
        section = getattr(config, name)
        if not isinstance(section, section_cls):
            raise ConfigError(f"section {name} must be a {section_cls.__name__}, got {type(section).__name__}")
        if name in ("model", "weights"):
            continue
        for key, hint in _field_types(section_cls).items():
            value = getattr(section, key)
            if _coerce(f"{name}.{key}", value, hint, parse=False) != value:
                raise ConfigError(f"{name}.{key} has the wrong type: {value!r}")
    if isinstance(config.seed, bool) or not isinstance(config.seed, int) or config.seed < 0:
        raise ConfigError(f"seed must be an integer >= 0, got {config.seed!r}")
    if not isinstance(config.preset, str):
        raise ConfigError(f"preset must be a name, got {config.preset!r}")
    for name, keys in _POSITIVE.items():
        for key in keys:
            if getattr(getattr(config, name), key) < 1:
                raise ConfigError(f"{name}.{key} must be >= 1, got {getattr(getattr(config, name), key)}")
    for (name, key), choices in _CHOICES.items():
        value = getattr(getattr(config, name), key)
        if value not in choices:
            raise ConfigError(f"{name}.{key}: {key} must be one of {choices}, got {value!r}")
    loss, opt, data, aug = config.loss, config.optimiser, config.data, config.augmentation
    if loss.id_warmup_steps < 0 or not loss.id_warmup_weight >= 0:
        raise ConfigError("loss.id_warmup_steps and loss.id_warmup_weight must be >= 0, got "
                          f"{loss.id_warmup_steps} and {loss.id_warmup_weight}")
    for key in ("lr_g", "lr_d"):
        value = getattr(opt, key)
        if not math.isfinite(value) or value <= 0:
            raise ConfigError(f"optimiser.{key} must be a positive learning rate, got {value}")
    for key in ("beta1", "beta2"):
        if not 0.0 <= getattr(opt, key) < 1.0:
            raise ConfigError(f"optimiser.{key}: Adam {key} must be in [0, 1), got {getattr(opt, key)}")
    if not 0.0 < opt.lr_decay_rate <= 1.0:
        raise ConfigError(f"optimiser.lr_decay_rate must be in (0, 1], got {opt.lr_decay_rate}")
    if not 0.0 <= data.same_identity_prob <= 1.0:
        raise ConfigError(f"data.same_identity_prob must be in [0, 1], got {data.same_identity_prob}")
    if not 0.0 <= aug.aug_distortion < 1.0 or not 0.0 < aug.aug_crop_fraction <= 1.0:
        raise ConfigError("augmentation.aug_distortion must be in [0, 1) and augmentation.aug_crop_fraction in (0, 1]")
    size = config.model.image_size
    if size & (size - 1):
        raise ConfigError(f"training needs a power-of-two image size (the discriminator), got {size}")
    patch_blocks, most = config.loss.discriminator_patch_blocks, size.bit_length() - 3
    if isinstance(patch_blocks, bool) or not isinstance(patch_blocks, int) or not 0 <= patch_blocks <= most:
        raise ConfigError(f"loss.discriminator_patch_blocks must be an integer from 0 to {most} at {size} px (the "
                          f"discriminator has {most} residual blocks), got {patch_blocks!r}")
    feature_networks = {"perceptual": config.loss.perceptual_network, "attribute": config.loss.attribute_network}
    reads_d = [term for term, network in feature_networks.items() if network == "discriminator"]
    if config.loss.discriminator_paired and reads_d:
        raise ConfigError(f"the {' and '.join(reads_d)} term reads the discriminator's features of one image, and a "
                          "paired discriminator reads two: choose another network for it or "
                          "loss.discriminator_paired=false")
    if bool(config.weights.flow) != config.model.conditioning_row.learned_flow:
        raise ConfigError("a learned-flow generator's warp is trained by the flow term alone: set "
                          "model.conditioning=target+flow and weights.flow > 0 together, or neither (in the older "
                          "spelling, model.source_flow and weights.flow together)")
    if config.weights.contra and config.model.clip_variant is None:
        raise ConfigError("weights.contra > 0 needs CLIP: the model has no clip_variant (set model.clip_variant, "
                          "or weights.contra=0)")
    if config.weights.ifsr and not ENCODERS.get(config.model.identity_encoder).ifsr:
        raise ConfigError("weights.ifsr > 0 needs ArcFace-R50 layers: the model's identity encoder is "
                          f"{config.model.identity_encoder} (set model.identity_encoder=arcface, or weights.ifsr=0)")


def check_runnable(config: TrainConfig, files: RunFiles, replicas: int = 1) -> list[str]:
    """Refuse what this configuration cannot run with these files on `replicas` replicas; return notes (files given
    that the configuration does not use, fp16 with XLA). Raises ConfigError, one sentence."""
    if config.data.batch_size % replicas:
        raise ConfigError(f"batch_size {config.data.batch_size} is not divisible by the {replicas} replicas that "
                          "split it (--batch-size must be divisible by --cpu-replicas or the GPU count)")
    model = config.model
    missing = []
    encoder = ENCODERS.get(model.identity_encoder)
    if encoder.user_file and not files.model_files().get(encoder.file_key):
        missing.append((f"the {encoder.label} file ({encoder.file_name})",
                        RUN_FILE_FLAGS[MODEL_FILE_FIELDS[encoder.file_key]]))
    if model.clip_variant is not None and not files.clip_preset:
        missing.append((f"the CLIP preset ({model.clip_variant})", "--clip-preset"))
    if missing:
        what = " and ".join(item for item, _ in missing)
        flags = " and ".join(flag for _, flag in missing)
        twin = OFFLINE_TWINS.get(config.preset)
        instead = (f"or train its offline twin --preset {twin} (SFace identity, no CLIP)" if twin else
                   "or train an offline preset (paper-offline, facedancer-offline, tiny, demo)")
        were = "were" if len(missing) > 1 else "was"
        raise ConfigError(f"preset {config.preset!r} needs {what}, which {were} not given: pass {flags}, {instead}")
    if ATTRIBUTES.get(config.loss.attribute_network).needs_file and not files.attribute_file:
        raise ConfigError("attribute_network 'file' needs attribute_file (a .keras model): pass --attribute-file "
                          "PATH (or --set attribute_file=PATH)")
    if config.compute.xla and model.clip_variant is not None:
        # CLIP's preprocessing resizes bicubically; TensorFlow registers no XLA kernel for ResizeBicubic (measured:
        # "Detected unsupported operations ... XLA_CPU_JIT: ResizeBicubic"), so the compiled step cannot be built.
        raise ConfigError("--xla cannot compile a step with CLIP (its bicubic resize, ResizeBicubic, has no XLA "
                          "kernel): drop --xla or train without CLIP")
    notes = []
    for key in files.model_files():
        if key != encoder.file_key:
            notes.append(f"{RUN_FILE_FLAGS[MODEL_FILE_FIELDS[key]]} given but the identity encoder is "
                         f"{model.identity_encoder}: the file is not used")
    if files.clip_preset and model.clip_variant is None:
        notes.append("--clip-preset given but the model has no CLIP input: the preset is not used")
    if config.compute.precision == "fp16" and config.compute.xla:
        notes.append("fp16 with XLA: loss scaling runs inside the compiled step")
    return notes


# --- reading: overrides, YAML, config.json -----------------------------------------------------------------------


#: Types of the older ModelConfig keys, which overrides and old files may still give (translate_legacy_keys).
_LEGACY_MODEL_TYPES: dict[str, Any] = {"pre_swap": str | None, "source_image": bool, "source_warp": bool,
                                       "source_flow": bool}


def _field_types(cls: type) -> dict[str, Any]:
    """Field -> type hint; ModelConfig's include the older boolean keys, accepted and translated when read."""
    hints = typing.get_type_hints(cls)
    types_ = {f.name: hints[f.name] for f in dataclasses.fields(cls)}
    return {**types_, **_LEGACY_MODEL_TYPES} if cls is ModelConfig else types_


def _coerce(key: str, value: Any, hint: Any, parse: bool = True) -> Any:
    """Check `value` against the field's type hint; with `parse`, a string (the command line) is read as a YAML
    scalar first (`1e-4`, `true`, `null`, `[a, b]`)."""
    if parse and isinstance(value, str) and hint is not str:
        try:
            value = yaml.safe_load(value)
        except yaml.YAMLError as error:
            raise ConfigError(f"cannot parse the value of {key}: {error}") from None
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        hint = next(a for a in args if a is not type(None))
        origin = typing.get_origin(hint)
        args = typing.get_args(hint)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"{key} must be an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, str):
            # YAML 1.1 reads "1e-3" (no dot in the mantissa) as a string; Python's float() is what users expect.
            try:
                value = float(value)
            except ValueError:
                raise ConfigError(f"{key} must be a number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key} must be a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{key} must be a finite number, got {value!r}")
        return float(value)
    if hint is str:
        if value is None:
            raise ConfigError(f"{key} must be a string, got null")
        return str(value)
    if origin is tuple:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",")]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key} must be a list, got {value!r}")
        return tuple(value)
    return value


def _build_section(name: str, section_cls: type, values: Mapping[str, Any], base: Any = None) -> Any:
    """`base` (or the section's defaults) with `values` type-checked and applied."""
    hints = _field_types(section_cls)
    unknown = sorted(set(values) - set(hints))
    if unknown:
        raise ConfigError(f"unknown key '{name}.{unknown[0]}'; {name} keys: {sorted(hints)}")
    checked = {key: _coerce(f"{name}.{key}", value, hints[key]) for key, value in values.items()}
    try:
        if section_cls is ModelConfig:
            return base.replace(**checked) if base is not None else ModelConfig.from_dict(checked)
        return dataclasses.replace(base, **checked) if base is not None else section_cls(**checked)
    except ConfigError:
        raise
    except (TypeError, ValueError) as error:
        raise ConfigError(str(error)) from None


def resolve_key(key: str) -> tuple[str, str]:
    """Where a key lives: ("model", "base_filters") for "model.base_filters", ("schedule", "steps") for the flat
    alias "steps", ("", "seed") for a key of the tree, ("files", "arcface_path") for a file of the run. The one
    place the spellings are resolved; raises ConfigError on an unknown key (the known ones listed)."""
    section, dot, name = key.partition(".")
    if dot:
        if section not in SECTIONS:
            raise ConfigError(f"unknown configuration section {section!r} in {key!r}; sections: {sorted(SECTIONS)}")
        known = _field_types(SECTIONS[section])
        if name not in known:
            raise ConfigError(f"unknown key {key!r}; {section} keys: {sorted(known)}")
        return section, name
    if key in FLAT_KEYS:
        return FLAT_KEYS[key], key
    if key in TOP_KEYS:
        return "", key
    if key in RUN_FILE_FLAGS:
        return "files", key
    raise ConfigError(f"unknown key {key!r}; keys: section.key for the sections {sorted(SECTIONS)}, or "
                      f"{sorted([*FLAT_KEYS, *TOP_KEYS])}")


def flatten_overrides(data: Mapping[str, Any]) -> dict[str, Any]:
    """{"model": {"base_filters": 16}, "steps": 5} -> {"model.base_filters": 16, "steps": 5}."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if key in SECTIONS and isinstance(value, Mapping):
            flat.update({f"{key}.{name}": item for name, item in value.items()})
        else:
            flat[key] = value
    return flat


def split_overrides(overrides: Mapping[str, Any]) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """({section or "": {key: value}}, {RunFiles field: value}) of overrides in any spelling. `vgg_weights` is the
    experiment's when "imagenet" or null, a file of the run otherwise; a whole section object passes as itself."""
    sections: dict[str, dict[str, Any]] = {}
    files: dict[str, Any] = {}
    for key, value in overrides.items():
        if key in SECTIONS and isinstance(value, SECTIONS[key]):
            sections.setdefault(key, {})["__whole__"] = value
            continue
        for flat_key, item in flatten_overrides({key: value}).items():
            section, name = resolve_key(flat_key)
            if name == "vgg_weights":
                parsed = yaml.safe_load(item) if isinstance(item, str) else item
                if parsed not in VGG_WEIGHTS:
                    files["vgg_weights"] = str(item)
                    continue
                section = "loss"
            if section == "files":
                files[name] = None if item in (None, "null", "") else str(item)
            else:
                sections.setdefault(section, {})[name] = item
    return sections, files


def apply_overrides(config: TrainConfig, overrides: Mapping[str, Any]) -> TrainConfig:
    """`config` with overrides in any spelling (dotted `schedule.steps`, flat `steps`, nested sections, or whole
    section objects) applied, every value type-checked and the tree validated once at the end.

    Raises:
        ConfigError: an unknown key (with the known ones listed), a value of the wrong type, a file of the run (which
            belongs to RunFiles: see `resolve_run`), or a tree `validate` refuses.
    """
    sections, files = split_overrides(overrides)
    if files:
        raise ConfigError(f"{sorted(files)[0]} is a file of the run, not part of the experiment: give it with "
                          f"{RUN_FILE_FLAGS[sorted(files)[0]]}")
    changes: dict[str, Any] = {}
    for section, values in sections.items():
        if section == "":
            changes.update({key: _coerce(key, value, _field_types(TrainConfig)[key]) for key, value in values.items()})
            continue
        base = values.pop("__whole__", getattr(config, section))
        changes[section] = _build_section(section, SECTIONS[section], values, base) if values else base
    return dataclasses.replace(config, **changes)


def migrate_flat_config(data: Mapping[str, Any]) -> dict[str, Any]:
    """A config.json written before the tree (flat keys beside `model` and `weights`) as the tree's nested mapping;
    a nested one is returned as it is. The flat keys go to their sections (FLAT_KEYS); the files the old format kept
    (arcface_path, clip_preset, attribute_file, a vgg_weights path) are dropped: they belong to the run, not to the
    experiment. The old code rewrote `paper` and `facedancer` to SFace without saying so in `preset`: such a file is
    given the name of the offline twin it really was."""
    data = dict(data)
    flat = [key for key in data if key not in SECTIONS and key not in TOP_KEYS]
    if not flat:
        return data
    nested: dict[str, Any] = {key: data[key] for key in data if key in TOP_KEYS}
    for section in SECTIONS:
        if isinstance(data.get(section), Mapping):
            nested[section] = dict(data[section])
    for key in flat:
        if key in RUN_FILE_FLAGS and not (key == "vgg_weights" and data[key] in VGG_WEIGHTS):
            continue
        if key not in FLAT_KEYS:
            raise ConfigError(f"unknown training configuration keys: [{key!r}]")
        nested.setdefault(FLAT_KEYS[key], {})[key] = data[key]
    model = nested.get("model", {})
    twin = OFFLINE_TWINS.get(nested.get("preset"))
    if twin and model.get("identity_encoder") == "sface" and model.get("clip_variant") is None:
        nested["preset"] = twin
    return nested


def load_yaml_overrides(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping of overrides (nested sections, dotted or flat keys)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(f"cannot read the configuration file {path}: {error.strerror or error}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not a text (UTF-8) YAML file; give a YAML file of configuration keys") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path} is not valid YAML: {error}") from None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path} must hold a mapping of configuration keys, got {type(data).__name__}")
    return flatten_overrides(data)


def resolve_run(
    preset: str, yaml_path: str | Path | None = None, overrides: Mapping[str, Any] | None = None,
    files: RunFiles | None = None,
) -> tuple[TrainConfig, RunFiles]:
    """(experiment, run files): the preset's tree, then the YAML file, then the explicit overrides (later wins);
    file keys among them (`--set attribute_file=...`, a `vgg_weights` path) join `files`."""
    merged: dict[str, Any] = {}
    if yaml_path is not None:
        merged.update(load_yaml_overrides(yaml_path))
    merged.update(flatten_overrides(overrides or {}))
    sections, file_values = split_overrides(merged)
    experiment = {f"{section}.{key}" if section else key: value
                  for section, values in sections.items() for key, value in values.items()}
    config = apply_overrides(get_preset(preset).config, experiment)
    return config, dataclasses.replace(files or RunFiles(), **file_values)


def resolve_config(
    preset: str, yaml_path: str | Path | None = None, overrides: Mapping[str, Any] | None = None
) -> TrainConfig:
    """The experiment alone: preset, then the YAML file, then the explicit overrides (later wins)."""
    config, files = resolve_run(preset, yaml_path, overrides)
    if files != RunFiles():
        key = next(k for k, v in files.to_dict().items() if v is not None)
        raise ConfigError(f"{key} is a file of the run, not part of the experiment: give it with {RUN_FILE_FLAGS[key]}")
    return config


def parse_set_options(pairs: Iterable[str]) -> dict[str, str]:
    """["a=1", "model.b=x"] -> {"a": "1", "model.b": "x"}; raises ValueError on an item without '='."""
    parsed: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set takes key=value, got {pair!r}")
        parsed[key.strip()] = value.strip()
    return parsed


# --- presets ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Preset:
    """A named experiment with big_vision's header: how to run it, on what data, how long it takes on this
    project's 2-core CPU and what it should reach, each number with its source.

    Attributes:
        name: the `--preset` name (the TrainConfig's `preset`).
        config: the experiment (TrainConfig); `model` is its ModelConfig (what init/info/swap read).
        description: what it is, one or two sentences.
        command: the command that trains it; data: what it trains on; time: how long here; reaches: what it should
            reach (each says where the number comes from, or "not measured").
        notes: why each choice, with its source.
    """

    name: str
    config: TrainConfig
    description: str
    command: str
    data: str
    time: str
    reaches: str
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def model(self) -> ModelConfig:
        return self.config.model

    def header(self) -> dict[str, str]:
        return {"preset": self.name, "description": self.description, "command": self.command, "data": self.data,
                "time": self.time, "reaches": self.reaches}


#: The shipped demo generator (pretrained_ckpts/demo/; the "demo" preset below says why each number).
DEMO_MODEL = ModelConfig(
    image_size=128,
    base_filters=16,
    mapping_depth=4,
    mapping_width=128,
    identity_encoder="sface",
    clip_variant=None,
    residual=True,
    conditioning="target+warp",
)

#: ArcFace/CLIP presets and their offline twins (the same recipe with SFace identity and no CLIP): a preset whose
#: files are not given is refused with the twin's name (check_runnable), never silently rewritten into it.
OFFLINE_TWINS = {"paper": "paper-offline", "facedancer": "facedancer-offline"}

PAPER_MODEL = ModelConfig(mapping_width=512, identity_encoder="arcface", clip_variant="clip_vit_base_patch32")
PAPER_WEIGHTS = LossWeights(id=10.0, rec=5.0, perceptual=0.2, contra=0.3, att=10.0, adv=1.0, r1_gamma=10.0)
PAPER_OPTIMISER = OptimiserConfig(lr_g=1e-4, lr_d=1e-4, beta1=0.0, beta2=0.999)
#: The paper's step at batch 2 on this CPU (benchmarks/results/train_step.json: random-weight encoders).
PAPER_TIME = ("not measured for a run (300,000 steps need a GPU); one step at batch 2 takes 10.1 s fp32, 4.4 s bf16 "
              "here (benchmarks/results/train_step.json)")

_PAPER = TrainConfig(
    preset="paper",
    model=PAPER_MODEL,
    weights=PAPER_WEIGHTS,
    optimiser=PAPER_OPTIMISER,
    data=DataConfig(batch_size=10),
    schedule=ScheduleConfig(steps=300_000),
)
_FACEDANCER = TrainConfig(
    preset="facedancer",
    model=ModelConfig(mapping_width=512, identity_encoder="arcface", clip_variant=None),
    weights=LossWeights.facedancer(),
    optimiser=OptimiserConfig(lr_g=1e-4, lr_d=1e-4, beta1=0.0, beta2=0.99, lr_decay_rate=0.97,
                              lr_decay_steps=100_000),
    data=DataConfig(batch_size=10),
    schedule=ScheduleConfig(steps=500_000),
    loss=LossOptions(facedancer_perceptual=True, facedancer_rec_clip=True),
)
_TINY = TrainConfig(
    preset="tiny",
    model=ModelConfig(image_size=64, base_filters=8, mapping_depth=2, mapping_width=32, identity_encoder="sface",
                      clip_variant=None),
    # contra 0: no CLIP in this preset; att 0.5 and adv 0.1: see the preset's notes.
    weights=LossWeights(id=10.0, rec=5.0, perceptual=0.2, contra=0.0, att=0.5, adv=0.1, r1_gamma=10.0),
    optimiser=OptimiserConfig(lr_g=5e-4, lr_d=5e-4, beta1=0.0, beta2=0.999),
    data=DataConfig(batch_size=8, shuffle_buffer=200),
    augmentation=AugmentationConfig(n_aug=2),
    loss=LossOptions(perceptual_network="identity", attribute_network="identity"),
    schedule=ScheduleConfig(steps=300, checkpoint_every=50, keep_checkpoints=3, log_every=5, image_every=50,
                            eval_every=25, eval_batch_size=32),
)
_DEMO = TrainConfig(
    preset="demo",
    model=DEMO_MODEL,
    weights=LossWeights(id=10.0, rec=5.0, perceptual=0.2, contra=0.0, att=0.0, adv=0.1, teacher=10.0, r1_gamma=10.0),
    optimiser=OptimiserConfig(lr_g=5e-4, lr_d=5e-4, beta1=0.0, beta2=0.999),
    data=DataConfig(batch_size=8),
    augmentation=AugmentationConfig(id_augment=True),
    loss=LossOptions(perceptual_network="identity", attribute_network="identity", teacher_face_only=True,
                     teacher_background=True, perceptual_to_teacher=True),
    compute=ComputeConfig(precision="bf16"),
    schedule=ScheduleConfig(steps=750, checkpoint_every=250, keep_checkpoints=3, log_every=25, image_every=250,
                            eval_every=125, eval_batch_size=32),
)

_OFFLINE = "offline: SFace identity (embedded), no CLIP"
_PAIRS_128 = ("`clipswap pairs` of lfw_train aligned at 128 px: clipswap align --input ../shared/data/lfw_train "
              "--output ALIGNED --size 128 --workers 2 (1 minute); clipswap pairs --data ALIGNED --output PAIRS "
              "--count 40000 --heldout 100 --workers 2 (5 minutes)")

PRESETS: dict[str, Preset] = {
    "paper": Preset(
        "paper",
        _PAPER,
        "ClipSwap as the paper describes it: z_id = ArcFace (512) + CLIP ViT-B/32 image embedding (512). Needs the "
        "ArcFace file and a CLIP preset; without them it is refused (its offline twin is paper-offline).",
        command="clipswap train --data ALIGNED_256 --run-dir RUN --preset paper --arcface ArcFace-Res50.h5 "
                "--clip-preset clip_vit_base_patch32 --precision bf16",
        data="`clipswap align --size 256` shards of a face data set (the README's example: VGGFace2)",
        time=PAPER_TIME,
        reaches="the paper's FF++ figures: ID retrieval 98.91 %, pose error 1.73, expression error 5.76, SSIM 0.98 "
                "(the paper, as quoted in the README's demo table; CosFace/Hopenet judges); not reproduced here",
        notes=(
            "identity input 1024: paper section III ('concatenation of the ArcFace and CLIP image vectors')",
            "mapping 512: FaceDancer train.py default; best fit of the paper's 174.23 M parameters (Table I)",
            "CLIP ViT-B/32: CLIPStyler's and Hugging Face's default",
            "lambda id 10, rec 5, p 0.2, contra 0.3, att 10; Adam(0, 0.999), lr 1e-4, batch 10, 300k steps, 256 px: "
            "paper section 'Implementation details'",
            "adversarial 1, R1 10: FaceDancer's (the paper has a discriminator but gives no adversarial weight); VGG16 "
            "perceptual net: FaceDancer's train.py, the paper names none",
        ),
    ),
    "paper-offline": Preset(
        "paper-offline",
        dataclasses.replace(_PAPER, preset="paper-offline",
                            model=PAPER_MODEL.replace(identity_encoder="sface", clip_variant=None),
                            weights=dataclasses.replace(PAPER_WEIGHTS, contra=0.0)),
        f"The paper's recipe {_OFFLINE}: identity input SFace 128, contrastive term off (contra 0). VGG16's ImageNet "
        "weights are still read (Keras downloads them once, or --vgg-weights FILE).",
        command="clipswap train --data ALIGNED_256 --run-dir RUN --preset paper-offline --precision bf16",
        data="as paper",
        time="not measured (the paper's 300,000 steps need a GPU)",
        reaches="not measured: no run of it has been made; it is not the paper's model (no ArcFace, no CLIP)",
        notes=("every number as paper; SFace (128-d, embedded) replaces ArcFace-R50 and the CLIP input and "
               "contrastive term are off",),
    ),
    "release": Preset(
        "release",
        TrainConfig(preset="release", model=ModelConfig(mapping_width=256, identity_encoder="arcface",
                                                        clip_variant=None),
                    weights=dataclasses.replace(PAPER_WEIGHTS, contra=0.0), optimiser=PAPER_OPTIMISER,
                    data=DataConfig(batch_size=10), schedule=ScheduleConfig(steps=300_000)),
        "The published ClipSwap.h5 / FaceDancer get_generator layout: ArcFace-only 512-d input, mapping 256. How the "
        "release was trained is not published: training uses the paper's numbers with contra 0 (no CLIP input). "
        "Needs the ArcFace file; there is no offline twin (the layout is ArcFace's).",
        command="clipswap train --data ALIGNED_256 --run-dir RUN --preset release --arcface ArcFace-Res50.h5",
        data="as paper",
        time="not measured",
        reaches="not measured (the published ClipSwap.h5 is the model of this layout; its training is unpublished)",
        notes=("the release's inference.py feeds only the raw ArcFace vector",
               "22,473,254 parameters (README, Presets)"),
    ),
    "facedancer": Preset(
        "facedancer",
        _FACEDANCER,
        "FaceDancer's training recipe (its train.py): ArcFace-only input, mapping 512. Needs the ArcFace "
        "file (IFSR reads its layers); its offline twin is facedancer-offline.",
        command="clipswap train --data ALIGNED_256 --run-dir RUN --preset facedancer --arcface ArcFace-Res50.h5",
        data="as paper",
        time="not measured (500,000 steps need a GPU)",
        reaches="not measured here (FaceDancer's own paper reports its figures; not reproduced)",
        notes=("Adam(0, 0.99), lr 1e-4 decayed x0.97 per 100k steps, batch 10, cycle 1, IFSR 1, VGG pools x0.85, "
               "reconstruction clipped and halved; no CLIP, no attribute term: FaceDancer train.py",
               "500k steps = one of FaceDancer's 'epochs'"),
    ),
    "facedancer-offline": Preset(
        "facedancer-offline",
        dataclasses.replace(_FACEDANCER, preset="facedancer-offline",
                            model=_FACEDANCER.model.replace(identity_encoder="sface"),
                            weights=dataclasses.replace(_FACEDANCER.weights, ifsr=0.0)),
        f"FaceDancer's recipe {_OFFLINE}; the IFSR term is off (it reads ArcFace-R50's layers).",
        command="clipswap train --data ALIGNED_256 --run-dir RUN --preset facedancer-offline",
        data="as paper",
        time="not measured",
        reaches="not measured",
        notes=("every number as facedancer but ifsr 0 and SFace identity",),
    ),
    "tiny": Preset(
        "tiny",
        _TINY,
        "Small widths at 64 px for CPU runs and tests; SFace identity and no CLIP, so it runs offline.",
        command="clipswap train --data ALIGNED --run-dir RUN --preset tiny --steps 400",
        data="`clipswap align` shards of any face folder (lfw_train aligned at 64 or 128 px)",
        time="about 0.55-0.7 s a step at batch 8 on the 2-core CPU: 300 steps in under 4 minutes (README, 'Not yet "
             "done': 0.55 s a step over 4,500 steps)",
        reaches="no identity transfer: over 4,500 steps the held-out identity loss goes 0.92 -> 0.88 and its "
                "wrong-source control falls alike (0.889), retrieval stays at chance, 3-6 % (README, 'Not yet done')",
        notes=(
            "lambda_att 0.5 instead of 10: the squared difference of raw SFace stage activations starts in the "
            "hundreds (measured: 250 at step 5 with the two early stages A reads), so at 10 it buries every other term",
            "adversarial 0.1 and lr 5e-4: in a few hundred steps from scratch the discriminator otherwise wins at "
            "once (measured with adv 1, lr 2e-4: the held-out identity loss did not fall in 225 steps)",
            "eval batch 32: with 8 the held-out loss moved by +-0.03 between evaluations",
            "perceptual and attribute features from SFace's stages (no download needed)",
        ),
    ),
    "demo": Preset(
        "demo",
        _DEMO,
        "The shipped demo model (pretrained_ckpts/demo/): 128 px, base width 16, mapping 128 x 4, SFace identity; "
        "G reads the target and the source's face warped onto the target's landmarks (source_warp) and outputs the "
        "target plus what it learned to carry over (residual). docs/demo_model.md, 'Run W1'.",
        command="clipswap train --data PAIRS --run-dir RUN --preset demo",
        data=_PAIRS_128,
        time="18 minutes: 750 steps at about 1.4 s a step, batch 8, bf16, on the 2-core CPU alone (README, 'The "
             "demo model')",
        reaches="on 100 held-out pairs, dlib judge, at step 750: ID retrieval 56 %, closer to source 70 %, pose "
                "error 6.09 degrees, expression error 4.69 px, SSIM 0.948 (README's demo table, docs/demo_model.md "
                "'Run W2'); the identity comes from the warp G reads (--model warp alone: 62 %, pose 8.39), G "
                "blends it",
        notes=(
            "128 px: SFace reads 112 px faces; 64 px upsampled carries little identity (docs/demo_model.md)",
            "base 16: about 1.4 s a batch-8 training step in bf16 on 2 CPU cores (the five SFace passes and the "
            "discriminator dominate)",
            "source_warp: a generator reading the raw source crop learned to copy the source's pose (22.8 "
            "degrees); given the warp it keeps the target's (docs/demo_model.md)",
            "teacher 10 over the face and the background separately (docs/demo_model.md: over the whole "
            "image a target copy is already within 0.07 of the teacher); no attribute term; id 10 with no warm-up: "
            "the warp gives the identity term pixels to pay for from the first step (held-out SFace gap 0.27 at "
            "step 125)",
            "750 steps: the shipped model (the step-750 checkpoint of a 2,000-step run). dlib on the 100 held-out "
            "pairs along that run: step 250 49 % / 62 % closer / pose 6.34, 750 56 % / 70 % / 6.09, 1,000 62 % / "
            "78 % / 7.85; 750 is the one inside every number of the bar with a margin (docs/demo_model.md)",
        ),
    ),
    "demo_refiner": Preset(
        "demo_refiner",
        dataclasses.replace(
            _DEMO, preset="demo_refiner",
            model=DEMO_MODEL.replace(conditioning="refine_landmark_swap"),
            weights=dataclasses.replace(_DEMO.weights, teacher=5.0),
            loss=dataclasses.replace(_DEMO.loss, teacher_face_only=False, teacher_background=False),
            schedule=dataclasses.replace(_DEMO.schedule, steps=1_000, checkpoint_every=500, image_every=500,
                                         eval_every=250),
        ),
        "The earlier demo model: G refines the landmark swap of the source onto the target "
        "(pre_swap, residual output); its correction stayed under one grey level (docs/demo_model.md).",
        command="clipswap train --data PAIRS --run-dir RUN --preset demo_refiner",
        data=_PAIRS_128,
        time="25 minutes: 1,000 steps on the 2-core CPU (docs/demo_model.md)",
        reaches="on 100 held-out pairs, dlib judge, step 1,000: ID retrieval 63 %, closer to source 79 %, pose "
                "error 7.52 degrees, expression error 5.25 px, SSIM 0.940 (README's demo table); the "
                "untrained pipeline scores the same within noise",
        notes=(
            "teacher 5 over the whole image: with a residual G and the teacher as its input this is an L1 penalty "
            "on the correction, which keeps the background and the landmark swap's pose and expression",
            "1,000 steps: the model shipped then; its correction was shrinking (teacher L1 0.007 -> 0.003); "
            "teacher 1 let it grow to 0.5 grey levels, with no measured gain (docs/demo_model.md)",
        ),
    ),
}


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}") from None
