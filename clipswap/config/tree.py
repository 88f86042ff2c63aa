"""The configuration tree, TrainConfig, and every rule it must keep: `validate` (every tree, when built) and
`check_runnable` (this tree with these files on this machine).

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

The sections are clipswap.config.schema's; `replace` and `from_dict` take keys in every spelling
clipswap.config.overrides reads.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from clipswap.config.overrides import apply_overrides, build_section, coerce, field_types, migrate_flat_config
from clipswap.config.schema import (
    ATTRIBUTE_NETWORKS,
    OFFLINE_TWINS,
    PERCEPTUAL_NETWORKS,
    PRECISIONS,
    SECTIONS,
    TOP_KEYS,
    VGG_WEIGHTS,
    AugmentationConfig,
    ComputeConfig,
    ConfigError,
    DataConfig,
    LossOptions,
    LossWeights,
    ModelConfig,
    OptimiserConfig,
    RunFiles,
    ScheduleConfig,
    model_file_flag,
)
from clipswap.registry.attributes import ATTRIBUTES
from clipswap.registry.encoders import ENCODERS


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
            built[name] = build_section(name, section_cls, values)
        for key in TOP_KEYS:
            if key in data:
                built[key] = coerce(key, data[key], field_types(cls)[key])
        return cls(**built)


# --- validation: every rule in one place -------------------------------------------------------------------------

#: Fields that must be >= 1, by section.
_POSITIVE = {
    "optimiser": ("lr_decay_steps",),
    "data": ("batch_size", "shuffle_buffer"),
    "augmentation": ("n_aug",),
    "schedule": (
        "steps",
        "checkpoint_every",
        "keep_checkpoints",
        "log_every",
        "image_every",
        "eval_every",
        "eval_batch_size",
    ),
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
        for key, hint in field_types(section_cls).items():
            value = getattr(section, key)
            if coerce(f"{name}.{key}", value, hint, parse=False) != value:
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
        raise ConfigError(
            "loss.id_warmup_steps and loss.id_warmup_weight must be >= 0, got "
            f"{loss.id_warmup_steps} and {loss.id_warmup_weight}"
        )
    pose_weight = loss.geometry_pose_weight
    if isinstance(pose_weight, bool) or not isinstance(pose_weight, (int, float)) or not 0 <= pose_weight < math.inf:
        raise ConfigError(f"loss.geometry_pose_weight must be a finite number >= 0, got {pose_weight!r}")
    gap = loss.teacher_turn_gap
    if isinstance(gap, bool) or not isinstance(gap, (int, float)) or not 0 <= gap < math.inf:
        raise ConfigError(f"loss.teacher_turn_gap must be a finite number >= 0, got {gap!r}")
    if gap and "landmarks" not in config.model.conditioning_row.batch_keys:
        raise ConfigError(
            "loss.teacher_turn_gap compares each pair's landmarks, which only a conditioning that reads them loads "
            f"(target+keypoint_flow, target+flow), not {config.model.conditioning!r}; set it to 0")
    row = config.model.conditioning_row
    if config.weights.mirror and (not row.source or row.warped_source):
        raise ConfigError(
            "weights.mirror compares the swap with the swap of the source crop mirrored, which needs a generator "
            f"that reads the source's aligned crop as it is; conditioning {config.model.conditioning!r} "
            + ("reads a warp of it onto the target, whose mirror image no longer fits the target" if row.source
               else "does not read it (the term would be 0 at twice the cost)")
            + "; set it to 0 or choose target+keypoint_flow, target+source_crop or another that reads the crop")
    if gap and not loss.teacher_face_only:
        raise ConfigError("loss.teacher_turn_gap leaves faces out of the teacher term's face region, which needs "
                          "loss.teacher_face_only=true")
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
    if not 0.0 <= aug.id_augment_grey <= 1.0 or (aug.id_augment_grey and not aug.id_augment):
        raise ConfigError(f"augmentation.id_augment_grey is a probability in [0, 1] of the identity augmentation, so "
                          f"it needs augmentation.id_augment=true; got {aug.id_augment_grey} with id_augment="
                          f"{str(aug.id_augment).lower()}")
    if not 0.0 <= aug.source_glasses <= 1.0:
        raise ConfigError(f"augmentation.source_glasses is a probability in [0, 1], got {aug.source_glasses}")
    if aug.source_glasses and "landmarks" not in row.batch_keys:
        raise ConfigError(f"augmentation.source_glasses draws glasses on the sources' landmarks, which only the pairs "
                          f"of a conditioning that reads landmarks carry (model.conditioning "
                          f"{config.model.conditioning} does not): set it to 0 or choose target+keypoint_flow")
    size = config.model.image_size
    if size & (size - 1):
        raise ConfigError(f"training needs a power-of-two image size (the discriminator), got {size}")
    patch_blocks, most = config.loss.discriminator_patch_blocks, size.bit_length() - 3
    if isinstance(patch_blocks, bool) or not isinstance(patch_blocks, int) or not 0 <= patch_blocks <= most:
        raise ConfigError(
            f"loss.discriminator_patch_blocks must be an integer from 0 to {most} at {size} px (the "
            f"discriminator has {most} residual blocks), got {patch_blocks!r}"
        )
    feature_networks = {"perceptual": config.loss.perceptual_network, "attribute": config.loss.attribute_network}
    reads_d = [term for term, network in feature_networks.items() if network == "discriminator"]
    if config.loss.discriminator_paired and reads_d:
        raise ConfigError(
            f"the {' and '.join(reads_d)} term reads the discriminator's features of one image, and a "
            "paired discriminator reads two: choose another network for it or "
            "loss.discriminator_paired=false"
        )
    if bool(config.weights.flow) != config.model.conditioning_row.learned_flow:
        raise ConfigError(
            "a learned-flow generator's warp is trained by the flow term alone: set "
            "model.conditioning=target+flow and weights.flow > 0 together, or neither (in the older "
            "spelling, model.source_flow and weights.flow together)"
        )
    if config.weights.contra and config.model.clip_variant is None:
        raise ConfigError(
            "weights.contra > 0 needs CLIP: the model has no clip_variant (set model.clip_variant, or weights.contra=0)"
        )
    if config.weights.ifsr and not ENCODERS.get(config.model.identity_encoder).ifsr:
        raise ConfigError(
            "weights.ifsr > 0 needs ArcFace-R50 layers: the model's identity encoder is "
            f"{config.model.identity_encoder} (set model.identity_encoder=arcface, or weights.ifsr=0)"
        )


def check_runnable(config: TrainConfig, files: RunFiles, replicas: int = 1) -> list[str]:
    """Refuse what this configuration cannot run with these files on `replicas` replicas; return notes (files given
    that the configuration does not use, fp16 with XLA). Raises ConfigError, one sentence."""
    if config.data.batch_size % replicas:
        raise ConfigError(
            f"batch_size {config.data.batch_size} is not divisible by the {replicas} replicas that "
            "split it (--batch-size must be divisible by --cpu-replicas or the GPU count)"
        )
    model = config.model
    missing = []
    encoder = ENCODERS.get(model.identity_encoder)
    if encoder.user_file and not files.model_files().get(encoder.file_key):
        missing.append((f"the {encoder.label} file ({encoder.file_name})", model_file_flag(encoder.file_key)))
    if model.clip_variant is not None and not files.clip_preset:
        missing.append((f"the CLIP preset ({model.clip_variant})", "--clip-preset"))
    if missing:
        what = " and ".join(item for item, _ in missing)
        flags = " and ".join(flag for _, flag in missing)
        twin = OFFLINE_TWINS.get(config.preset)
        instead = (
            f"or train its offline twin --preset {twin} (SFace identity, no CLIP)"
            if twin
            else "or train an offline preset (paper-offline, facedancer-offline, tiny, demo)"
        )
        were = "were" if len(missing) > 1 else "was"
        raise ConfigError(f"preset {config.preset!r} needs {what}, which {were} not given: pass {flags}, {instead}")
    if ATTRIBUTES.get(config.loss.attribute_network).needs_file and not files.attribute_file:
        raise ConfigError(
            "attribute_network 'file' needs attribute_file (a .keras model): pass --attribute-file "
            "PATH (or --set attribute_file=PATH)"
        )
    if config.compute.xla and model.clip_variant is not None:
        # CLIP's preprocessing resizes bicubically; TensorFlow registers no XLA kernel for ResizeBicubic (measured:
        # "Detected unsupported operations ... XLA_CPU_JIT: ResizeBicubic"), so the compiled step cannot be built.
        raise ConfigError(
            "--xla cannot compile a step with CLIP (its bicubic resize, ResizeBicubic, has no XLA "
            "kernel): drop --xla or train without CLIP"
        )
    notes = []
    for key in files.model_files():
        if key != encoder.file_key:
            notes.append(
                f"{model_file_flag(key)} given but the identity encoder is "
                f"{model.identity_encoder}: the file is not used"
            )
    if files.clip_preset and model.clip_variant is None:
        notes.append("--clip-preset given but the model has no CLIP input: the preset is not used")
    if config.compute.precision == "fp16" and config.compute.xla:
        notes.append("fp16 with XLA: loss scaling runs inside the compiled step")
    return notes
