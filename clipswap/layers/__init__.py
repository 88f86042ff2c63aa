"""Custom layers: instance normalisation, AdaIN, adaptive attention (AFFA fusion)."""

from clipswap.layers.adain import AdaIN, NormalisedAdaIN
from clipswap.layers.adaptive_attention import AdaptiveAttention
from clipswap.layers.instance_norm import InstanceNormalization

__all__ = ["AdaIN", "AdaptiveAttention", "InstanceNormalization", "NormalisedAdaIN"]
