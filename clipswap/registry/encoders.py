"""Identity encoders R: aligned 112 crops in, one raw (not L2-normalised) identity vector out.

The generator's configuration names its encoder (ModelConfig.identity_encoder), and the generator's identity input is
as wide as the encoder's vector. A row is all that the configuration, the swap pipeline, training and `info` need:

    width         the vector's width (the generator's identity input)
    input_size    the square crop side it reads (ArcFace 112 template), pixels
    pixel_range   its float input's range, RGB
    stage_layers  intermediate layers the perceptual and attribute terms read, shallow to deep
    file_key      its weights file (clipswap.checkpoints.registry.FILES): a "published" file is the user's to give
                  (`--arcface` fills files["arcface"]); a "package" file ships with a pip package
    network       "module:function" () -> keras.Model with random weights (the graph; `info` counts it)
    loader        "module:function" (path) -> frozen keras.Model with the file's weights; path is the user's file,
                  or None for a packaged file, which the loader finds itself
    ifsr          whether the IFSR term's layers (ResNet-50 block outputs, Eq. 6 of FaceDancer) are in its graph
    onnx_file     whether its packaged file is ONNX, written as it is by an ONNX export instead of a conversion
    evaluation_family  the evaluation identity model of the same network family (clipswap.evaluation.identity_models:
                  "sface", or "arcface" for an ArcFace/CosFace .h5), which evaluating a generator trained with this
                  encoder refuses unless allowed (its ID metrics would reward overfitting to it); None when no
                  evaluation model shares its family
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from clipswap.models.spec import NetworkSpec
from clipswap.registry import Registry


@dataclass(frozen=True)
class IdentityEncoderRow:
    name: str
    label: str
    width: int
    input_size: int
    pixel_range: tuple[float, float]
    stage_layers: tuple[str, ...]
    file_key: str
    network: str | Callable
    loader: str | Callable
    ifsr: bool = False
    onnx_file: bool = False
    colour_order: str = "RGB"
    template: str = "ArcFace 112 (clipswap.face.templates)"
    evaluation_family: str | None = None

    @property
    def user_file(self) -> bool:
        """Whether the user gives its file (a published file), rather than a pip package shipping it."""
        from clipswap.checkpoints.registry import FILES

        return FILES[self.file_key].origin == "published"

    @property
    def file_name(self) -> str:
        from clipswap.checkpoints.registry import FILES

        return FILES[self.file_key].name

    @property
    def spec(self) -> NetworkSpec:
        """The row as the networks' own spec type (what the training losses read)."""
        return NetworkSpec(
            self.name,
            self.input_size,
            self.pixel_range,
            self.colour_order,
            self.template,
            self.stage_layers,
            self.width,
        )


ENCODERS: Registry[IdentityEncoderRow] = Registry("identity encoder")

ENCODERS.register(
    IdentityEncoderRow(
        "arcface",
        "ArcFace-R50",
        512,
        112,
        (0.0, 1.0),
        ("conv2_block3_out", "conv3_block4_out", "conv4_block6_out", "conv5_block3_out"),
        file_key="arcface",
        network="clipswap.models.arcface:build_arcface",
        loader="clipswap.checkpoints.arcface_h5:load_arcface_h5",
        ifsr=True,
        evaluation_family="arcface",
    )
)
ENCODERS.register(
    IdentityEncoderRow(
        "sface",
        "SFace",
        128,
        112,
        (0.0, 1.0),
        ("sface_conv_4_relu", "sface_conv_6_relu", "sface_conv_12_relu", "sface_conv_14_relu"),
        file_key="sface",
        network="clipswap.models.sface:build_sface",
        loader="clipswap.checkpoints.sface_onnx:load_sface",
        onnx_file=True,
        evaluation_family="sface",
    )
)

#: Encoder name -> vector width, live (a row registered later is in it).
ENCODER_WIDTHS = ENCODERS.view("width")

__all__ = ["ENCODERS", "ENCODER_WIDTHS", "IdentityEncoderRow"]
