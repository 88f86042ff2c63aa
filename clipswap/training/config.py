"""Training configuration: `TrainConfig` (model, loss weights, optimiser, data, schedule of checkpoints/logs) and the
training presets `paper`, `facedancer` and `tiny`, with YAML-file and key=value overrides.

    resolve_config("tiny", "my.yaml", {"steps": "500", "weights.id": "5", "model.base_filters": "16"})

Keys are TrainConfig field names; `model.<field>` reaches ModelConfig and `weights.<field>` LossWeights. A YAML file
holds the same keys, nested (`model: {base_filters: 16}`) or dotted. Values given as strings (from the command line)
are parsed as YAML scalars (`1e-4`, `true`, `null`, `[a, b]`) and then checked against the field's type.

Every preset number cites its source (REFERENCE.md sections 7-8, the paper, or our own choice, said so).
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from clipswap.config import PRESETS as MODEL_PRESETS
from clipswap.config import LossWeights, ModelConfig

PRECISIONS = ("fp32", "bf16", "fp16")
#: Feature networks of the perceptual loss (eq. 8): ImageNet VGG16 pools, the identity encoder's stages (ArcFace-R50
#: or SFace, whichever encodes identity), or the discriminator's residual blocks.
PERCEPTUAL_NETWORKS = ("vgg16", "identity", "discriminator")
#: Attribute networks A of eq. 9 (see clipswap/losses/attribute.py): "identity" is the multi-level identity-encoder
#: features (ArcFace stages by default, the issue's default A), "file" a user's .keras model.
ATTRIBUTE_NETWORKS = ("identity", "discriminator", "file")


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs besides the data and the run folder.

    Attributes:
        preset: name of the preset this was resolved from (informational).
        model: the generator's ModelConfig. `identity_encoder` and `clip_variant` are adjusted by the run to what is
            available (ArcFace only with --arcface, CLIP only with --clip-preset); the resolved values are recorded.
        weights: loss weights (LossWeights: id, rec, perceptual, contra, att, adv, cycle, ifsr, r1_gamma).
        batch_size: global batch (split evenly across replicas).
        steps: total training steps (one G and one D update each).
        lr_g, lr_d: Adam learning rates; beta1, beta2: Adam betas (both optimisers).
        lr_decay_rate, lr_decay_steps: continuous exponential decay lr * rate^(step / decay_steps); rate 1 = none.
        same_identity_prob: probability a sample's source is its target (reconstruction/perceptual pairs).
        jitter: colour jitter in the data pipeline; shuffle_buffer: tf.data shuffle buffer; seed: everything random.
        n_aug, aug_distortion, aug_crop_fraction: CLIP augmentations (X_aug) per swap.
        perceptual_network: see PERCEPTUAL_NETWORKS; vgg_weights: "imagenet" (download), a file path, or None
            (random, for benchmarks only); vgg_preprocessing: ImageNet caffe preprocessing before VGG16.
        facedancer_perceptual: scale VGG blocks by 0.85 (FaceDancer); facedancer_rec_clip: FaceDancer's clip/halve.
        id_augment: score the identity loss on a randomly shifted and flipped swap (expectation over
            transformations, clipswap.losses.augment.identity_augment).
        teacher_face_only: the teacher term (weights.teacher) averages over the face region only.
        teacher_background: with teacher_face_only, the mean over the pixels outside the face region is added (each
            region averaged on its own), so the swap keeps the target's background and hair on cross-identity pairs.
        id_warmup_steps, id_warmup_weight: a curriculum (ours): for the first `id_warmup_steps` steps the identity
            term is weighted `id_warmup_weight` instead of weights.id (0 steps = off). A generator that starts as a
            copy of the target (residual) stays one under a moderate identity weight; a strong one opens the path
            from the source, which the teacher and perceptual terms then pull back to the target's pose.
        perceptual_to_teacher: with teacher pairs, the perceptual term compares the swap with the teacher on every
            pair instead of with the target on same-identity pairs.
        attribute_network, attribute_file: see ATTRIBUTE_NETWORKS.
        precision: fp32, bf16 (mixed bfloat16) or fp16 (mixed float16 with dynamic loss scaling).
        xla: compile the train step with XLA (jit_compile).
        checkpoint_every, keep_checkpoints: checkpoint interval in steps and how many to keep.
        log_every: TensorBoard scalar interval; image_every: image grid interval; eval_every: held-out identity loss
            interval; eval_batch_size: size of the fixed held-out batch.
        checkpoint_data: also checkpoint the tf.data iterator (exact data position on resume; costs the shuffle
            buffer's size on disk). When off, a resumed run draws a fresh, reseeded data order.
        arcface_path: ArcFace-R50 .h5 (identity encoder); None = SFace (offline).
        clip_preset: keras-hub CLIP preset (directory or handle); None = no CLIP input and no contrastive term.
    """

    preset: str = "paper"
    model: ModelConfig = field(default_factory=ModelConfig)
    weights: LossWeights = field(default_factory=LossWeights)
    batch_size: int = 10
    steps: int = 300_000
    lr_g: float = 1e-4
    lr_d: float = 1e-4
    beta1: float = 0.0
    beta2: float = 0.999
    lr_decay_rate: float = 1.0
    lr_decay_steps: int = 100_000
    same_identity_prob: float = 0.2
    jitter: bool = True
    shuffle_buffer: int = 1000
    seed: int = 0
    n_aug: int = 4
    aug_distortion: float = 0.5
    aug_crop_fraction: float = 0.75
    perceptual_network: str = "vgg16"
    vgg_weights: str | None = "imagenet"
    vgg_preprocessing: bool = False
    facedancer_perceptual: bool = False
    facedancer_rec_clip: bool = False
    id_augment: bool = False
    teacher_face_only: bool = False
    teacher_background: bool = False
    id_warmup_steps: int = 0
    id_warmup_weight: float = 10.0
    perceptual_to_teacher: bool = False
    attribute_network: str = "identity"
    attribute_file: str | None = None
    precision: str = "fp32"
    xla: bool = False
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    log_every: int = 50
    image_every: int = 1000
    eval_every: int = 1000
    eval_batch_size: int = 16
    checkpoint_data: bool = True
    arcface_path: str | None = None
    clip_preset: str | None = None

    def __post_init__(self) -> None:
        positive = ("batch_size", "steps", "lr_decay_steps", "n_aug", "checkpoint_every", "keep_checkpoints",
                    "log_every", "image_every", "eval_every", "eval_batch_size", "shuffle_buffer")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.id_warmup_steps < 0 or not self.id_warmup_weight >= 0:
            raise ValueError("id_warmup_steps and id_warmup_weight must be >= 0, got "
                             f"{self.id_warmup_steps} and {self.id_warmup_weight}")
        for name in ("lr_g", "lr_d"):
            value = getattr(self, name)
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a positive learning rate, got {value}")
        for name in ("beta1", "beta2"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"Adam {name} must be in [0, 1), got {getattr(self, name)}")
        if not 0.0 < self.lr_decay_rate <= 1.0:
            raise ValueError(f"lr_decay_rate must be in (0, 1], got {self.lr_decay_rate}")
        if not 0.0 <= self.same_identity_prob <= 1.0:
            raise ValueError(f"same_identity_prob must be in [0, 1], got {self.same_identity_prob}")
        if not 0.0 <= self.aug_distortion < 1.0 or not 0.0 < self.aug_crop_fraction <= 1.0:
            raise ValueError("aug_distortion must be in [0, 1) and aug_crop_fraction in (0, 1]")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.perceptual_network not in PERCEPTUAL_NETWORKS:
            raise ValueError(
                f"perceptual_network must be one of {PERCEPTUAL_NETWORKS}, got {self.perceptual_network!r}"
            )
        if self.attribute_network not in ATTRIBUTE_NETWORKS:
            raise ValueError(f"attribute_network must be one of {ATTRIBUTE_NETWORKS}, got {self.attribute_network!r}")
        if self.attribute_network == "file" and not self.attribute_file:
            raise ValueError("attribute_network 'file' needs attribute_file (a .keras model)")
        if self.model.image_size & (self.model.image_size - 1):
            raise ValueError(
                f"training needs a power-of-two image size (the discriminator), got {self.model.image_size}"
            )

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["model"] = self.model.to_dict()
        data["weights"] = self.weights.as_dict()
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        data = dict(data)
        unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"unknown training configuration keys: {unknown}")
        if isinstance(data.get("model"), Mapping):
            data["model"] = ModelConfig.from_dict(dict(data["model"]))
        if isinstance(data.get("weights"), Mapping):
            data["weights"] = LossWeights(**data["weights"])
        return cls(**data)


# --- presets ---------------------------------------------------------------------------------------------------

# Ours: the embedded demo model (pretrained_ckpts/demo/, docs/demo_model.md), trained on this 2-core CPU.
#   clipswap align --input ../shared/data/lfw_train --output ALIGNED --size 128 --workers 2      (1 minute)
#   clipswap pairs --data ALIGNED --output PAIRS --count 40000 --heldout 100 --workers 2        (5 minutes)
#   clipswap train --data PAIRS --run-dir RUN --preset demo                     (18 minutes: 750 steps, 1.4 s)
# The model (clipswap.config "demo") reads the target crop and, beside it, the source's face warped onto the
# target's 68 landmarks and pasted in (source_warp); its output is the target plus what the network adds
# (residual), so an untrained G returns the target; the identity comes from the warp it reads (the warp pasted
# alone scores 62 % retrieval, pose 8.39 degrees), the network learns to blend it in. The identity loss
# (SFace on a shifted and flipped swap: id_augment), the teacher (the landmark swap, L1 over the face and over
# the background, each averaged on its own) and the perceptual term towards the teacher pull the same way: the
# warp already holds the source's texture in the target's pose, so the network learns to carry it into the
# face and blend it. Runs W1 and W2 of docs/demo_model.md.
# Reaches (100 held-out pairs, dlib judge, run W2 at step 750, the shipped model): ID retrieval 56 %, closer to
# source 70 %, pose error 6.09 degrees, expression error 4.69 px, SSIM 0.948 (held-out SFace loss / control / SFace
# retrieval on 32 pairs 0.579 / 0.880 / 66 %). Longer runs trade pose for identity as the network passes more
# of the warp through: step 1,000 gives 62 % / 78 % at pose 7.85 degrees (inside the bar by 0.15).
TRAIN_DEMO = TrainConfig(
    preset="demo",
    model=MODEL_PRESETS["demo"].model,
    # teacher 10 over the face and the background separately (S3-S5 of docs/demo_model.md: over the whole
    # image a target copy is already within 0.07 of the teacher); no attribute term; id 10 with no warm-up:
    # the warp gives the identity term pixels to pay for from the first step (held-out SFace gap 0.27 at
    # step 125).
    weights=LossWeights(id=10.0, rec=5.0, perceptual=0.2, contra=0.0, att=0.0, adv=0.1, teacher=10.0,
                        r1_gamma=10.0),
    batch_size=8,
    # 750 steps: the shipped model (run W2's step-750 checkpoint). dlib on the 100 held-out pairs along run W2:
    # step 250 49 % / 62 % closer / pose 6.34, 750 56 % / 70 % / 6.09, 1,000 62 % / 78 % / 7.85; 750 is the one
    # inside every number of the bar with a margin (docs/demo_model.md, run W2).
    steps=750,
    lr_g=5e-4,
    lr_d=5e-4,
    beta1=0.0,
    beta2=0.999,
    perceptual_network="identity",
    attribute_network="identity",
    id_augment=True,
    teacher_face_only=True,
    teacher_background=True,
    perceptual_to_teacher=True,
    precision="bf16",
    checkpoint_every=250,
    keep_checkpoints=3,
    log_every=25,
    image_every=250,
    eval_every=125,
    eval_batch_size=32,
)


TRAIN_PRESETS: dict[str, TrainConfig] = {
    # Paper section "Implementation details" (REFERENCE.md section 8): lambda id 10, rec 5, p 0.2, contra 0.3,
    # att 10; Adam(0, 0.999), lr 1e-4, batch 10, 300k steps, 256 px. Adversarial 1 and R1 10 are FaceDancer's
    # (REFERENCE.md section 9.5: the paper has a discriminator but no adversarial weight). VGG16 perceptual net:
    # FaceDancer's choice (section 7); the paper does not name one.
    "paper": TrainConfig(
        preset="paper",
        model=MODEL_PRESETS["paper"].model,
        weights=LossWeights(id=10.0, rec=5.0, perceptual=0.2, contra=0.3, att=10.0, adv=1.0, r1_gamma=10.0),
        batch_size=10,
        steps=300_000,
        lr_g=1e-4,
        lr_d=1e-4,
        beta1=0.0,
        beta2=0.999,
    ),
    # FaceDancer train.py (REFERENCE.md section 7): Adam(0, 0.99), lr 1e-4 decayed x0.97 per 100k steps, batch 10,
    # cycle 1, IFSR 1, VGG pools x0.85, reconstruction clipped and halved; no CLIP, no attribute term. 500k steps =
    # one of FaceDancer's "epochs".
    "facedancer": TrainConfig(
        preset="facedancer",
        model=MODEL_PRESETS["facedancer"].model,
        weights=LossWeights.facedancer(),
        batch_size=10,
        steps=500_000,
        beta1=0.0,
        beta2=0.99,
        lr_decay_rate=0.97,
        lr_decay_steps=100_000,
        facedancer_perceptual=True,
        facedancer_rec_clip=True,
    ),
    # Ours: a CPU-sized run (64 px, base width 8, SFace identity so it runs offline, no CLIP) that takes hundreds of
    # steps in minutes. Perceptual and attribute features come from SFace's stages (no download needed). lambda_att
    # 0.5 instead of 10: the squared difference of raw SFace stage activations starts in the hundreds (measured: 250
    # at step 5 with the two early stages A reads), so at 10 it buries every other term. Adversarial 0.1 and lr
    # 5e-4: in a few hundred steps from scratch the discriminator otherwise wins at once and its gradient drives G to
    # saturated colours (measured with adv 1, lr 2e-4: the held-out identity loss did not fall in 225 steps).
    "tiny": TrainConfig(
        preset="tiny",
        model=MODEL_PRESETS["tiny"].model,
        weights=LossWeights(id=10.0, rec=5.0, perceptual=0.2, contra=0.3, att=0.5, adv=0.1, r1_gamma=10.0),
        # 8: about 0.7 s a step on a 2-core CPU, so 300 steps take under 4 minutes.
        batch_size=8,
        steps=300,
        lr_g=5e-4,
        lr_d=5e-4,
        beta1=0.0,
        beta2=0.999,
        perceptual_network="identity",
        attribute_network="identity",
        shuffle_buffer=200,
        n_aug=2,
        checkpoint_every=50,
        keep_checkpoints=3,
        log_every=5,
        image_every=50,
        eval_every=25,
        # 32 pairs: with 8 the held-out loss moved by +-0.03 between evaluations (noise of the mean of 8 cosines).
        eval_batch_size=32,
    ),
    "demo": TRAIN_DEMO,
    # The demo model of sessions 4-8 (run C1 of docs/demo_model.md), kept so that run can be reproduced:
    #   clipswap train --data PAIRS --run-dir RUN --preset demo_refiner                              (25 minutes)
    # The model (clipswap.config "demo_refiner") reads the landmark swap of the source onto the target (pre_swap) and
    # outputs it plus a learned correction (residual): an untrained G already returns the classical swap, and
    # training adds what the identity loss (SFace, scored on a shifted and flipped swap: id_augment), the
    # discriminator and the perceptual term ask for. Runs A and B of docs/demo_model.md, where G read the raw
    # target and was pulled towards the landmark swap (teacher), still copied the target after 1,250 steps.
    # Reaches (100 held-out pairs, dlib judge): ID retrieval 63 %, closer to source 79 %, pose error 7.5 degrees,
    # expression error 5.3 px; the untrained pipeline scores the same within noise: G's correction stays under one
    # grey level, the classical swap carries the identity.
    "demo_refiner": dataclasses.replace(
        TRAIN_DEMO,
        preset="demo_refiner",
        model=MODEL_PRESETS["demo_refiner"].model,
        # teacher 5 over the whole image: with a residual G and the teacher as its input this is an L1 penalty on
        # the correction, which keeps the background and the landmark swap's pose and expression; no attribute term.
        weights=dataclasses.replace(TRAIN_DEMO.weights, teacher=5.0),
        # 1,000 steps: the shipped model (run C1). Its correction was shrinking (teacher L1 0.007 -> 0.003), so more
        # steps were not run; run C2 (teacher 1) let it grow to 0.5 grey levels, still with no measured gain.
        steps=1_000,
        teacher_face_only=False,
        teacher_background=False,
        checkpoint_every=500,
        image_every=500,
        eval_every=250,
    ),
}


def get_train_preset(name: str) -> TrainConfig:
    try:
        return TRAIN_PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown training preset {name!r}; choose one of {sorted(TRAIN_PRESETS)}") from None


# --- overrides -------------------------------------------------------------------------------------------------

_SECTIONS: dict[str, type] = {"model": ModelConfig, "weights": LossWeights}


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _coerce(key: str, value: Any, hint: Any) -> Any:
    """Parse a command-line string as YAML and check it against the field's type hint."""
    if isinstance(value, str) and hint is not str:
        try:
            value = yaml.safe_load(value)
        except yaml.YAMLError as error:
            raise ValueError(f"cannot parse the value of {key}: {error}") from None
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
            raise ValueError(f"{key} must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ValueError(f"{key} must be an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, str):
            # YAML 1.1 reads "1e-3" (no dot in the mantissa) as a string; Python's float() is what users expect.
            try:
                value = float(value)
            except ValueError:
                raise ValueError(f"{key} must be a number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{key} must be a number, got {value!r}")
        return float(value)
    if hint is str:
        if value is None:
            raise ValueError(f"{key} must be a string, got null")
        return str(value)
    if origin is tuple:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",")]
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{key} must be a list, got {value!r}")
        return tuple(value)
    return value


def flatten_overrides(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"model": {"base_filters": 16}, "steps": 5} -> {"model.base_filters": 16, "steps": 5}."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if key in _SECTIONS and not prefix and isinstance(value, Mapping):
            flat.update(flatten_overrides(value, f"{key}."))
        else:
            flat[dotted] = value
    return flat


def apply_overrides(config: TrainConfig, overrides: Mapping[str, Any]) -> TrainConfig:
    """Return `config` with dotted-key overrides applied and every value type-checked.

    Raises:
        ValueError: an unknown key (with the known ones listed) or a value of the wrong type.
    """
    top_types = _field_types(TrainConfig)
    top: dict[str, Any] = {}
    sections: dict[str, dict[str, Any]] = {name: {} for name in _SECTIONS}
    for key, value in flatten_overrides(overrides).items():
        section, _, name = key.partition(".")
        if name:
            if section not in _SECTIONS:
                raise ValueError(f"unknown configuration section {section!r} in {key!r}; sections: {sorted(_SECTIONS)}")
            types_ = _field_types(_SECTIONS[section])
            if name not in types_:
                raise ValueError(f"unknown key {key!r}; {section} keys: {sorted(types_)}")
            sections[section][name] = _coerce(key, value, types_[name])
        else:
            if key not in top_types or key in _SECTIONS:
                known = sorted(set(top_types) - set(_SECTIONS))
                raise ValueError(f"unknown key {key!r}; keys: {known} or model.<key> / weights.<key>")
            top[key] = _coerce(key, value, top_types[key])
    if sections["model"]:
        top["model"] = config.model.replace(**sections["model"])
    if sections["weights"]:
        top["weights"] = dataclasses.replace(config.weights, **sections["weights"])
    return config.replace(**top)


def load_yaml_overrides(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping of overrides (nested sections or dotted keys)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ValueError(f"cannot read the configuration file {path}: {error.strerror or error}") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not a text (UTF-8) YAML file; give a YAML file of configuration keys") from None
    except yaml.YAMLError as error:
        raise ValueError(f"{path} is not valid YAML: {error}") from None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ValueError(f"{path} must hold a mapping of configuration keys, got {type(data).__name__}")
    return flatten_overrides(data)


def resolve_config(
    preset: str, yaml_path: str | Path | None = None, overrides: Mapping[str, Any] | None = None
) -> TrainConfig:
    """Preset, then the YAML file, then the explicit overrides (later wins)."""
    config = get_train_preset(preset)
    if yaml_path is not None:
        config = apply_overrides(config, load_yaml_overrides(yaml_path))
    if overrides:
        config = apply_overrides(config, overrides)
    return config


def parse_set_options(pairs: typing.Iterable[str]) -> dict[str, str]:
    """["a=1", "model.b=x"] -> {"a": "1", "model.b": "x"}; raises ValueError on an item without '='."""
    parsed: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set takes key=value, got {pair!r}")
        parsed[key.strip()] = value.strip()
    return parsed
