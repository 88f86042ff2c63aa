"""The frozen facts of a pretrained network that its callers need: input size, pixel range, colour order, the face
template its crops follow, the stage layers that losses read, and its embedding width. An identity encoder's spec is
its registry row (clipswap.registry.encoders), which its module exposes beside its graph
(clipswap.models.sface.SFACE_SPEC, clipswap.models.arcface.ARCFACE_SPEC); tests/models/test_network_specs.py checks
each against its graph."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class NetworkSpec:
    """Attributes:
        name: the network's name (layer-name prefix of its graph).
        input_size: the square side it reads, pixels.
        pixel_range: (low, high) of its float input.
        colour_order: "RGB" or "BGR" of its input channels.
        template: the alignment its crops follow.
        stages: names of the intermediate layers perceptual, attribute and IFSR terms read, shallow to deep.
        embedding_dim: width of its output vector.
    """

    name: str
    input_size: int
    pixel_range: tuple[float, float]
    colour_order: str
    template: str
    stages: tuple[str, ...]
    embedding_dim: int

    def __post_init__(self):
        if self.colour_order not in ("RGB", "BGR"):
            raise ValueError(f"colour_order must be RGB or BGR, got {self.colour_order!r}")
        if self.input_size < 1 or self.embedding_dim < 1 or not self.pixel_range[0] < self.pixel_range[1]:
            raise ValueError(f"network spec {self.name}: sizes must be positive and the pixel range increasing")
