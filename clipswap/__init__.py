"""clipswap: high-fidelity face swapping with attribute and CLIP-informed losses (ClipSwap, FG 2024)."""

__version__ = "0.1.0"
