"""Attribute networks A of the attribute loss (Eq. 9): what the target's and the swap's features are compared in.

A row:

    what        the network, in words
    source      "module:function" (config, files, identity_layers, discriminator) -> FeatureSource, the features the
                term reads (identity_layers: the identity encoder's leading stages; discriminator: D)
    check       "module:function" (files) -> None, run before the data and the models load so a wrong file is refused
                at once; raises a ClipswapError whose message says what to change (None: nothing to check)
    needs_file  whether the run must give RunFiles.attribute_file (`--attribute-file`)

The perceptual term reads "identity" and "discriminator" through the same rows (its "vgg16" is its own).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from clipswap.registry import Choices, Registry


@dataclass(frozen=True)
class AttributeNetworkRow:
    name: str
    what: str
    source: str | Callable
    check: str | Callable | None = None
    needs_file: bool = False


ATTRIBUTES: Registry[AttributeNetworkRow] = Registry("attribute network")
for _row in (
    AttributeNetworkRow("identity", "the identity encoder's multi-level features (its leading stages)",
                        "clipswap.training.assembly:identity_features"),
    AttributeNetworkRow("discriminator", "the discriminator's residual blocks",
                        "clipswap.training.assembly:discriminator_features"),
    AttributeNetworkRow("file", "a user's .keras model (RunFiles.attribute_file)",
                        "clipswap.training.assembly:file_features", check="clipswap.training.assembly:check_file",
                        needs_file=True),
    AttributeNetworkRow("landmarks", "the geometry network: 68 landmarks and head pose (RunFiles.attribute_file, "
                        "by default the one shipped with the demo)",
                        "clipswap.training.assembly:landmarks_features",
                        check="clipswap.training.assembly:check_landmarks"),
    AttributeNetworkRow("pose_expression", "the geometry network of 'landmarks', its head pose and only the points "
                        "that move with expression (eyes and mouth), not the outline, brows and nose, whose shape is "
                        "the source's to bring", "clipswap.training.assembly:pose_expression_features",
                        check="clipswap.training.assembly:check_landmarks"),
    AttributeNetworkRow("pose", "the geometry network of 'landmarks', its head pose and only the six points that "
                        "place the head (nose tip, chin, outer eye corners, mouth corners): the face's shape, its "
                        "features and its expression are left free", "clipswap.training.assembly:pose_features",
                        check="clipswap.training.assembly:check_landmarks"),
):
    ATTRIBUTES.register(_row)

#: What loss.attribute_network accepts (live).
ATTRIBUTE_CHOICES = Choices(ATTRIBUTES)

__all__ = ["ATTRIBUTES", "ATTRIBUTE_CHOICES", "AttributeNetworkRow"]
