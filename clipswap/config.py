"""Frozen configuration dataclasses and named presets.

Every number cites its source: REFERENCE.md sections (the ClipSwap release, FaceDancer's code) or the paper.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass, field, fields

UP_TYPES = ("no_skip", "affa", "concat", "add")
#: What the generator reads as its target input (ModelConfig.pre_swap).
PRE_SWAPS = (None, "landmarks")

#: Identity encoders the generator can be conditioned on, and their embedding widths.
IDENTITY_ENCODERS = {"arcface": 512, "sface": 128}

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


#: Upper bounds of a generator configuration (issue 11: a manifest declaring absurd sizes exhausted memory while the
#: model was built). Each is 4x or more the paper's value.
SIZE_LIMITS = {"image_size": 1024, "base_filters": 512, "mapping_width": 4096, "mapping_depth": 32}


@dataclass(frozen=True)
class ModelConfig:
    """Generator configuration (REFERENCE.md section 4).

    Attributes:
        image_size: crop side, 128, 256 or 512 (any multiple of 32 works; 64 for the tiny preset).
        base_filters: width of the first conv; the levels use 1, 2, 4, 8, 8, 8, 8 times it (64 in FaceDancer).
        up_types: decoder block type per level, deepest first: u4, u3, u2, u1, u0 and the output block.
        mapping_depth: dense layers in the mapping network (4 in FaceDancer and the paper).
        mapping_width: mapping network width: 256 (FaceDancer get_generator default) or 512 (its train.py default).
        identity_encoder: "arcface" (512-d) or "sface" (128-d, our offline encoder).
        clip_variant: CLIP image tower whose embedding is concatenated to the identity vector, or None (release).
        pre_swap: None (G reads the aligned target crop, as every published model) or "landmarks": G reads the
            classical landmark swap of the source onto the target crop (clipswap.face.landmark_swap), which the swap
            pipeline and the trainer (the teacher image of `clipswap pairs` data) compute outside the graph.
        residual: the output is G's input plus the last block's output, whose convs start at zero, so an untrained
            G returns its input (ours, for pre_swap models: G learns a correction of the landmark swap).
        source_image: G also reads the source's aligned crop (S x S, the same template as the target's), stacked
            with the target as a 6-channel input (ours, the demo model): the network sees the source face it is
            asked to render, not only its identity vector. Published models read the vector only.
        source_warp: with source_image, that third input is not the source's crop but its face warped onto the
            target's 68 landmarks, colour-matched and pasted into the target crop with a hard edge
            (clipswap.face.landmark_swap.warp_paste; ours, the demo model): the source's texture in the target's
            geometry, so the network carries identity without having to learn the warp, and an untrained residual
            G still returns the target.
    """

    image_size: int = 256
    base_filters: int = 64
    up_types: tuple[str, ...] = ("no_skip", "no_skip", "affa", "affa", "affa", "concat")
    mapping_depth: int = 4
    mapping_width: int = 256
    identity_encoder: str = "arcface"
    clip_variant: str | None = None
    pre_swap: str | None = None
    residual: bool = False
    source_image: bool = False
    source_warp: bool = False

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
        if self.pre_swap not in PRE_SWAPS:
            raise ValueError(f"pre_swap must be one of {PRE_SWAPS}, got {self.pre_swap!r}")
        for flag in ("residual", "source_image", "source_warp"):
            if not isinstance(getattr(self, flag), bool):
                raise ValueError(f"{flag} must be true or false, got {getattr(self, flag)!r}")
        if self.source_warp and (not self.source_image or self.pre_swap is not None):
            raise ValueError("source_warp replaces the source crop G reads: it needs source_image true and pre_swap "
                             "null")
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

    def replace(self, **changes) -> ModelConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "up_types": list(self.up_types)}

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown model configuration keys: {unknown}")
        return cls(**data)


@dataclass(frozen=True)
class LossWeights:
    """Lambda of each generator term, and R1's gamma. Defaults: the paper's (section 8) plus adversarial 1, R1 10.

    `teacher` (ours, 0 = off) weighs the L1 distance of every swap to its landmark-swap teacher image, which training
    pairs made by `clipswap pairs` carry (clipswap.losses.reconstruction.teacher_loss). The fields are the generator
    terms of clipswap.losses.terms (what each computes), then r1_gamma.
    """

    id: float = 10.0
    rec: float = 5.0
    perceptual: float = 0.2
    contra: float = 0.3
    att: float = 10.0
    adv: float = 1.0
    cycle: float = 0.0
    ifsr: float = 0.0
    teacher: float = 0.0
    r1_gamma: float = 10.0

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"loss weight {item.name} must be a finite number >= 0, got {value!r}")

    @classmethod
    def facedancer(cls) -> LossWeights:
        """FaceDancer's train.py weights (REFERENCE.md section 7): no CLIP or attribute term; cycle and IFSR on."""
        return cls(id=10.0, rec=5.0, perceptual=0.2, contra=0.0, att=0.0, adv=1.0, cycle=1.0, ifsr=1.0, r1_gamma=10.0)

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class Preset:
    """A named configuration with the reason for each choice."""

    name: str
    model: ModelConfig
    description: str
    notes: tuple[str, ...] = field(default_factory=tuple)


#: The shipped demo generator (pretrained_ckpts/demo/; the "demo" preset below says why each number).
DEMO_MODEL = ModelConfig(
    image_size=128,
    base_filters=16,
    mapping_depth=4,
    mapping_width=128,
    identity_encoder="sface",
    clip_variant=None,
    residual=True,
    source_image=True,
    source_warp=True,
)

PRESETS: dict[str, Preset] = {
    "paper": Preset(
        "paper",
        ModelConfig(mapping_width=512, identity_encoder="arcface", clip_variant="clip_vit_base_patch32"),
        "ClipSwap as the paper describes it: z_id = ArcFace (512) + CLIP ViT-B/32 image embedding (512).",
        (
            "identity input 1024: paper section III ('concatenation of the ArcFace and CLIP image vectors')",
            "mapping 512: FaceDancer train.py default; best fit of the paper's 174.23 M (REFERENCE.md section 11)",
            "CLIP ViT-B/32: CLIPStyler's and Hugging Face's default (REFERENCE.md section 10)",
        ),
    ),
    "release": Preset(
        "release",
        ModelConfig(mapping_width=256, identity_encoder="arcface", clip_variant=None),
        "The published ClipSwap.h5 / FaceDancer get_generator layout: ArcFace-only 512-d input, mapping 256.",
        ("inference.py feeds only the raw ArcFace vector (REFERENCE.md section 9.1)",),
    ),
    "facedancer": Preset(
        "facedancer",
        ModelConfig(mapping_width=512, identity_encoder="arcface", clip_variant=None),
        "FaceDancer's training recipe (REFERENCE.md section 7): ArcFace-only input, mapping 512.",
    ),
    "tiny": Preset(
        "tiny",
        ModelConfig(
            image_size=64,
            base_filters=8,
            mapping_depth=2,
            mapping_width=32,
            identity_encoder="sface",
            clip_variant=None,
        ),
        "Small widths at 64 px for CPU runs and tests; SFace identity so it runs offline.",
    ),
    "demo": Preset(
        "demo",
        DEMO_MODEL,
        "The shipped demo model (pretrained_ckpts/demo/): 128 px, base width 16, mapping 128 x 4, SFace identity; "
        "G reads the target and the source's face warped onto the target's landmarks (source_warp) and outputs the "
        "target plus what it learned to carry over (residual).",
        (
            "128 px: SFace reads 112 px faces; 64 px upsampled carries little identity (issue 9)",
            "base 16: about 1.4 s a batch-8 training step in bf16 on 2 CPU cores (the five SFace passes and the "
            "discriminator dominate)",
            "source_warp: a generator reading the raw source crop learned to copy the source's pose (run S5, 22.8 "
            "degrees); given the warp it keeps the target's (docs/demo_model.md, runs W1 and W2)",
        ),
    ),
    "demo_refiner": Preset(
        "demo_refiner",
        DEMO_MODEL.replace(pre_swap="landmarks", source_image=False, source_warp=False),
        "The demo model of sessions 4-8 (run C1): G refines the landmark swap of the source onto the target "
        "(pre_swap, residual output); its correction stayed under one grey level (docs/demo_model.md).",
    ),
}


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}") from None
