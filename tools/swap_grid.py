"""Compose a grid of evaluated swaps (one row per pair: target | source | swap) from a `clipswap evaluate`
metrics.json, for the README.

    python tools/swap_grid.py RUN/metrics.json docs/demo_swaps.png --rows 8 --size 160
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np


def tile(path: Path, size: int) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise SystemExit(f"cannot read {path}")
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("metrics", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--rows", type=int, default=8)
    parser.add_argument("--size", type=int, default=160)
    args = parser.parse_args()
    pairs = json.loads(args.metrics.read_text(encoding="utf-8"))["pairs"][: args.rows]
    # Output paths in metrics.json are as evaluate wrote them (relative to where it ran, or absolute).
    rows = [np.concatenate([tile(Path(p["target"]), args.size), tile(Path(p["source"]), args.size),
                            tile(Path(p["output"]), args.size)], axis=1) for p in pairs]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(args.output), np.concatenate(rows, axis=0)):
        raise SystemExit(f"cannot write {args.output}")


if __name__ == "__main__":
    main()
