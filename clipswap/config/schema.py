"""The schema of the configuration: the sections of the tree and the files of a run, with the constants they are
checked against.

    ModelConfig         the generator (checks its own fields when built: other code builds it alone)
    LossWeights         lambda of each loss term and R1's gamma, one field per row of clipswap.losses.terms
    LossOptions, OptimiserConfig, DataConfig, AugmentationConfig, ScheduleConfig, ComputeConfig
                        the other sections of TrainConfig (clipswap.config.tree), checked by its `validate`
    RunFiles            the files of one run: what the command line gives, never in config.json
    SECTIONS, FLAT_KEYS, TOP_KEYS, RUN_FILE_FLAGS   where each key lives (read by clipswap.config.overrides)
    model_file_flag     the option that gives a model file, by its registry key (what the refusals name)

Plain Python: importing it starts no TensorFlow.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

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
from clipswap.models.geometry_layout import HEADS, INPUT_SIZE, check_layout
from clipswap.registry.attributes import ATTRIBUTE_CHOICES
from clipswap.registry.encoders import ENCODER_WIDTHS


class ConfigError(ClipswapError, ValueError):
    """A configuration that cannot be built or cannot run here; the message is one sentence saying what to change."""


UP_TYPES = ("no_skip", "affa", "concat", "add")

#: Identity encoders the generator can be conditioned on, and their embedding widths (clipswap.registry.encoders).
IDENTITY_ENCODERS = ENCODER_WIDTHS

#: Architectures of the CLIP image towers (OpenAI's published shapes) and a tiny one for tests.
_VIT_B32 = dict(
    image_size=224,
    patch_size=32,
    hidden_dim=768,
    num_layers=12,
    num_heads=12,
    intermediate_dim=3072,
    projection_dim=512,
)
CLIP_SPECS: dict[str, dict] = {
    "clip_vit_base_patch32": _VIT_B32,
    "clip_vit_base_patch16": {**_VIT_B32, "patch_size": 16},  # ViT-B/32 with 16-px patches
    "clip_vit_large_patch14": dict(
        image_size=224,
        patch_size=14,
        hidden_dim=1024,
        num_layers=24,
        num_heads=16,
        intermediate_dim=4096,
        projection_dim=768,
    ),
    "tiny": dict(
        image_size=32,
        patch_size=8,
        hidden_dim=32,
        num_layers=2,
        num_heads=2,
        intermediate_dim=64,
        projection_dim=32,
    ),
}

#: CLIP image towers (keras-hub preset names) and their embedding (projection) widths.
CLIP_VARIANTS = {name: spec["projection_dim"] for name, spec in CLIP_SPECS.items()}


#: Upper bounds of a generator configuration (a manifest declaring absurd sizes would exhaust memory while the
#: model was built). Each is 4x or more the paper's value (for keypoint_size, the shipped geometry network's 96).
SIZE_LIMITS = {"image_size": 1024, "base_filters": 512, "mapping_width": 4096, "mapping_depth": 32,
               "keypoint_size": 1024}


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
        keypoint_head, keypoint_size: the geometry network (clipswap.models.geometry.GeometryNet) inside the flow
            of a conditioning whose flow network is "keypoints" ("target+keypoint_flow"); other conditionings build
            none and ignore both. keypoint_head is its output head, "dense" (the shipped network's) or "heatmap";
            keypoint_size the side it reads, a positive integer, for "heatmap" a multiple of the backbone's stride
            (clipswap.models.geometry_layout.total_stride: 32). The defaults, dense at 96, are the network shipped
            beside the demo; tools/pretrain_flow.py --geometry sets both from the file it starts from.
        keypoint_shape: the share, in [0, 1], of the source's face shape that the keypoint flow carries
            (clipswap.layers.shape_transfer: the target's head pose and the six points of the pose fit, the source's
            shape elsewhere); 0, the default, puts the source on the target's own points. Its pose directions are
            fitted on labelled faces by tools/shape_transfer.py. Only "target+keypoint_flow" reads it.
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
    keypoint_head: str = "dense"
    keypoint_size: int = INPUT_SIZE
    keypoint_shape: float = 0.0

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
        if (
            isinstance(self.source_level, bool)
            or not isinstance(self.source_level, int)
            or not 0 <= self.source_level <= 5
        ):
            raise ValueError(f"source_level must be an integer from 0 to 5, got {self.source_level!r}")
        if self.source_level and not (row.source and row.source_preparation.levels):
            levelled = [
                name for name, other in CONDITIONINGS.items() if other.source and other.source_preparation.levels
            ]
            raise ValueError(
                "source_level says where the source crop joins the encoder: it needs source_image true, "
                f"a conditioning of {levelled}, got {self.conditioning!r}"
            )
        if self.keypoint_head not in HEADS:
            raise ValueError(f"keypoint_head must be one of {HEADS}, got {self.keypoint_head!r}")
        if isinstance(self.keypoint_size, bool) or not isinstance(self.keypoint_size, int) or self.keypoint_size < 1:
            raise ValueError(f"keypoint_size must be a positive integer, got {self.keypoint_size!r}")
        try:
            check_layout(self.keypoint_size, head=self.keypoint_head)
        except ValueError as error:
            raise ValueError(f"keypoint_size {self.keypoint_size} does not fit keypoint_head "
                             f"{self.keypoint_head!r}: {error}") from None
        if (isinstance(self.keypoint_shape, bool) or not isinstance(self.keypoint_shape, (int, float))
                or not 0.0 <= self.keypoint_shape <= 1.0):
            raise ValueError(f"keypoint_shape must be a number from 0 to 1, got {self.keypoint_shape!r}")
        preparation = row.source_preparation
        if self.keypoint_shape and (preparation is None or preparation.flow_network != "keypoints"):
            raise ValueError("keypoint_shape is the keypoint flow's share of the source's face shape: it needs "
                             f"conditioning 'target+keypoint_flow', got {self.conditioning!r}")
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
        "LossWeights",
        [(name, float, field(default=default)) for name, default in weight_fields(terms)],
        bases=(_LossWeightRules,),
        frozen=True,
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
#: RunFiles.attribute_file (a geometry.keras with its geometry.json), by default the one shipped with the demo;
#: "pose_expression" the same network's pose and only its eye and mouth points; "pose" its pose and only the six
#: points of the pose fit.
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
        geometry_pose_weight: with a geometry attribute network ("landmarks", "pose_expression", "pose"), the weight
            of the head-pose part of its term against the landmark part (1: an angle off by
            clipswap.losses.geometry.POSE_UNIT costs as much as a landmark off by LANDMARK_UNIT; ours).
        teacher_turn_gap: 0 (off), or with a teacher and a conditioning whose batches carry the landmarks: a
            cross-identity pair whose source's head turn (clipswap.losses.reconstruction.head_turn_68, in eye
            distances; about 125 degrees of yaw each) differs from its target's by more than this is left out of
            the teacher term's face part and of a perceptual term towards the teacher (SwapBatch.teacher_kept): the
            landmark swap of a face turned far from the target is ghosted and carries the source's pose (ours).
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
    geometry_pose_weight: float = 1.0
    teacher_turn_gap: float = 0.0
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
    swap (clipswap.losses.augment.identity_augment); id_augment_grey, with id_augment, is the probability that each
    augmented swap is also turned grey (augment.grey_where), so that a colour pattern the identity encoder happens to
    read as the source (a tint around the eyes or mouth) pays only on the coloured share of the draws.
    source_glasses: the probability that the source crop G reads gets clear glasses drawn on its landmarks (pairs
    data of a conditioning that reads landmarks; clipswap.training.data.make_pair_dataset); the identity terms, the
    teacher and the ground truth see none, so that G learns not to carry a source's glasses onto its target."""

    n_aug: int = 4
    aug_distortion: float = 0.5
    aug_crop_fraction: float = 0.75
    id_augment: bool = False
    id_augment_grey: float = 0.0
    source_glasses: float = 0.0


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
    "model": ModelConfig,
    "weights": LossWeights,
    "loss": LossOptions,
    "optimiser": OptimiserConfig,
    "data": DataConfig,
    "augmentation": AugmentationConfig,
    "schedule": ScheduleConfig,
    "compute": ComputeConfig,
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
        files: model files by their key in clipswap.checkpoints.registry.FILES (`--file KEY=PATH`): what a component
            registered with a user file (an identity encoder's row) reads, with no field or flag of its own.

    A key given both by its named field and in `files` with two paths is refused (ConfigError, one sentence).
    """

    arcface_path: str | None = None
    clip_preset: str | None = None
    vgg_weights: str | None = None
    attribute_file: str | None = None
    init_generator: str | None = None
    files: Mapping[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "files", {str(key): str(path) for key, path in dict(self.files).items() if path})
        for key, name in MODEL_FILE_FIELDS.items():
            named, given = getattr(self, name), self.files.get(key)
            if named and given and named != given:
                raise ConfigError(
                    f"the {key} file is given twice, {named} with {RUN_FILE_FLAGS[name]} and {given} with "
                    f"--file {key}=PATH: give it once"
                )

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def model_files(self) -> dict[str, str]:
        """The given model files by registry file key ({"arcface": path}), the mapping components read: `files`
        with the named fields' (MODEL_FILE_FIELDS) added."""
        named = {key: getattr(self, name) for key, name in MODEL_FILE_FIELDS.items() if getattr(self, name)}
        return {**self.files, **named}


#: The RunFiles field of each model file, by its registry file key (clipswap.checkpoints.registry.FILES).
MODEL_FILE_FIELDS = {"arcface": "arcface_path"}
#: The RunFiles fields and the `clipswap train` flag of each (what the refusals name).
RUN_FILE_FLAGS = {
    "arcface_path": "--arcface",
    "clip_preset": "--clip-preset",
    "vgg_weights": "--vgg-weights",
    "attribute_file": "--attribute-file",
    "init_generator": "--init-generator",
}


def model_file_flag(key: str) -> str:
    """The `clipswap train` option that gives the model file `key` (what a refusal names): its named flag where it
    has one (`--arcface`), else `--file KEY=PATH` with the key filled in."""
    name = MODEL_FILE_FIELDS.get(key)
    return RUN_FILE_FLAGS[name] if name else f"--file {key}=PATH"

#: ArcFace/CLIP presets and their offline twins (the same recipe with SFace identity and no CLIP): a preset whose
#: files are not given is refused with the twin's name (tree.check_runnable), never silently rewritten into it, and an
#: old flat config.json that the old code had rewritten is named after its twin (overrides.migrate_flat_config). Both
#: names are presets of clipswap.config.presets.
OFFLINE_TWINS = {"paper": "paper-offline", "facedancer": "facedancer-offline"}
