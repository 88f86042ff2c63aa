"""Every component of a configuration with its parameters and MACs, and the paper's totals beside them.

`clipswap info` prints this; the evaluation report's cost row uses it.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

from clipswap.config import ModelConfig
from clipswap.models.cost import Cost, model_cost

log = logging.getLogger(__name__)

#: The paper's Table I figures for ClipSwap (REFERENCE.md section 8).
PAPER_PARAMS = 174.23e6
PAPER_GMACS = 53.56
#: Components we do not build, with REFERENCE.md's measured figures (section 6: the release's unused AttrEncoder).
ATTR_ENCODER = Cost("AttrEncoder (release, unused; REFERENCE.md section 6)", 21_386_048, 16_970_000_000, 0, "256")


@dataclass(frozen=True)
class Inventory:
    config: ModelConfig
    components: dict[str, Cost]

    def total(self, keys: list[str]) -> tuple[int, int]:
        parts = [self.components[k] for k in keys if k in self.components]
        return sum(p.params for p in parts), sum(p.macs for p in parts)

    def to_dict(self) -> dict:
        return {
            "config": self.config.to_dict(),
            "components": {k: {**asdict(v), "macs": v.macs} for k, v in self.components.items()},
        }


def build_inventory(config: ModelConfig, detector: bool = True) -> Inventory:
    """Build each component with random weights at its working input size and count it."""
    from clipswap.models.discriminator import Discriminator  # heavy imports, built on demand
    from clipswap.models.generator import Generator

    size = config.image_size
    components: dict[str, Cost] = {}
    generator = Generator(config)
    # The generator's own input list (target, identity and, for source_image models, the source crop), so a
    # configuration with a third input is counted rather than refused.
    generator_specs = [tuple(tensor.shape[1:]) for tensor in generator.inputs]
    source_desc = " + source" if config.source_image else ""
    components["generator"] = model_cost(
        "Generator", generator, generator_specs, f"{size}px + {config.id_input_dim}-d{source_desc}"
    )
    components["discriminator"] = model_cost(
        "Discriminator", Discriminator(size, config.base_filters), [(size, size, 3)], f"{size}px"
    )
    if config.identity_encoder == "arcface":
        from clipswap.models.arcface import build_arcface

        components["identity"] = model_cost("ArcFace-R50", build_arcface(), [(112, 112, 3)], "112px")
    else:
        from clipswap.models.sface import build_sface

        components["identity"] = model_cost("SFace", build_sface(), [(112, 112, 3)], "112px")
    if config.clip_variant:
        from clipswap.config import CLIP_SPECS
        from clipswap.models.clip_encoder import build_clip_image_encoder

        clip_size = CLIP_SPECS[config.clip_variant]["image_size"]
        components["clip"] = model_cost(
            f"CLIP image ({config.clip_variant})",
            build_clip_image_encoder(config.clip_variant, input_size=size),
            [(size, size, 3)],
            f"{clip_size}px",
        )
    if detector:
        from clipswap.models.retinaface import build_retinaface

        components["detector"] = model_cost("RetinaFace-R50 (inference)", build_retinaface(), [(640, 640, 3)], "640px")
    return Inventory(config, components)


def reconciliation_rows(inventory: Inventory) -> list[tuple[str, int, int]]:
    """REFERENCE.md section 11's hypotheses for the paper's 174.23 M / 53.56 GMACs, with our component figures."""
    c = dict(inventory.components)
    c["attr"] = ATTR_ENCODER
    rows = []
    hypotheses = [
        ("G + ArcFace/identity + CLIP image (our training graph minus D)", ["generator", "identity", "clip"]),
        ("G + D + identity + CLIP image", ["generator", "discriminator", "identity", "clip"]),
        ("G + AttrEncoder + CLIP image + identity (REFERENCE best fit)", ["generator", "attr", "identity", "clip"]),
        ("G alone", ["generator"]),
    ]
    for label, keys in hypotheses:
        parts = [c[k] for k in keys if k in c]
        rows.append((label, sum(p.params for p in parts), sum(p.macs for p in parts)))
    return rows
