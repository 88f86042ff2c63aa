"""The geometry network's layout rules (clipswap.models.geometry builds the network): its heads, its default input
side, widths and strides, and which input sides the heatmap head takes.

Plain Python: importing it starts no TensorFlow (clipswap.config checks ModelConfig.keypoint_head and keypoint_size
against it before anything is built).
"""

from __future__ import annotations

from collections.abc import Sequence

#: Side the network reads (crops of any size are resized to it).
INPUT_SIZE = 96
WIDTHS = (32, 64, 64, 128, 128, 256)
STRIDES = (2, 2, 1, 2, 1, 2)
#: The output heads: "dense" regresses the points from the flattened deepest map, "heatmap" reads them off 68
#: heatmaps at S/4 by soft-argmax (clipswap.models.geometry's docstring).
HEADS = ("dense", "heatmap")
#: The heatmaps' stride: their side is the input side / HEATMAP_STRIDE.
HEATMAP_STRIDE = 4


def level_strides(strides: Sequence[int]) -> list[int]:
    """The stride of each block's output (the stem's is 2)."""
    found, stride = [], 2
    for step in strides:
        stride *= int(step)
        found.append(stride)
    return found


def total_stride(strides: Sequence[int]) -> int:
    """The backbone's stride: the stem's 2 times each block's (32 at the default strides); the input side must be a
    multiple of it for the heatmap head's skips to line up."""
    return [2, *level_strides(strides)][-1]


def check_layout(input_size: int, strides: Sequence[int] = STRIDES, head: str = "dense") -> None:
    """Raise ValueError (one sentence) unless GeometryNet can be built with this head, input side and strides: `head`
    one of HEADS, and for "heatmap" an input side that is a multiple of total_stride(strides) with a block at
    stride HEATMAP_STRIDE (the dense head takes any side)."""
    if head not in HEADS:
        raise ValueError(f"head must be one of {HEADS}, got {head!r}")
    stride = total_stride(strides)
    if head == "heatmap" and (input_size % stride or HEATMAP_STRIDE not in level_strides(strides)):
        raise ValueError(f"the heatmap head needs an input side that is a multiple of the backbone's stride "
                         f"{stride} and a block at stride {HEATMAP_STRIDE}, got {input_size} and strides "
                         f"{tuple(strides)}")


__all__ = ["HEADS", "HEATMAP_STRIDE", "INPUT_SIZE", "STRIDES", "WIDTHS", "check_layout", "level_strides",
           "total_stride"]
