"""Every component of a configuration with its parameters and MACs, and the paper's totals beside them.

`clipswap info` prints this.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

from clipswap.config import ModelConfig
from clipswap.models.conditioning import describe_inputs, input_list, input_specs
from clipswap.models.cost import Cost, model_cost
from clipswap.registry import load_object
from clipswap.registry.detectors import DETECTORS
from clipswap.registry.encoders import ENCODERS

log = logging.getLogger(__name__)

#: ClipSwap's parameters and GMACs in the paper's Table I.
PAPER_PARAMS = 174.23e6
PAPER_GMACS = 53.56
#: The ClipSwap release's AttrEncoder, which its generator never calls: counted once from the release's code at 256 px
#: and kept as figures, since we do not build it; only the reconciliation reads it.
ATTR_ENCODER = Cost("AttrEncoder (release, unused)", 21_386_048, 16_970_000_000, 0, "256")


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
    # Shapes by input name, put in the generator's own order: every conditioning the configuration selects is counted.
    generator_specs = input_list(generator, input_specs(config))
    components["generator"] = model_cost("Generator", generator, generator_specs, describe_inputs(config))
    components["discriminator"] = model_cost(
        "Discriminator", Discriminator(size, config.base_filters), [(size, size, 3)], f"{size}px"
    )
    encoder = ENCODERS.get(config.identity_encoder)
    side = encoder.input_size
    components["identity"] = model_cost(encoder.label, load_object(encoder.network)(), [(side, side, 3)], f"{side}px")
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
        # The first detector that is a Keras network (RetinaFace, the swap's choice when its file is found); the
        # others run outside Keras and have no graph to count.
        row = next(row for row in DETECTORS.rows() if row.network is not None)
        side = row.network_size
        components["detector"] = model_cost(f"{row.label} (inference)", load_object(row.network)(),
                                            [(side, side, 3)], f"{side}px")
    return Inventory(config, components)


def reconciliation_rows(inventory: Inventory) -> list[tuple[str, int, int]]:
    """Hypotheses for what the paper's Table I counted in its 174.23 M / 53.56 GMACs (no single component matches),
    each as (label, our parameters, our MACs)."""
    c = dict(inventory.components)
    c["attr"] = ATTR_ENCODER
    rows = []
    hypotheses = [
        ("G + ArcFace/identity + CLIP image (our training graph minus D)", ["generator", "identity", "clip"]),
        ("G + D + identity + CLIP image", ["generator", "discriminator", "identity", "clip"]),
        ("G + AttrEncoder + CLIP image + identity (best fit)", ["generator", "attr", "identity", "clip"]),
        ("G alone", ["generator"]),
    ]
    for label, keys in hypotheses:
        parts = [c[k] for k in keys if k in c]
        rows.append((label, sum(p.params for p in parts), sum(p.macs for p in parts)))
    return rows
