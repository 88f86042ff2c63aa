"""Average the weights of several checkpoints of one training run (stochastic weight averaging over its last
checkpoints): the swap of the average is steadier than any one checkpoint's, whose pose and identity move with the
adversarial game from checkpoint to checkpoint.

    python tools/average_generators.py --output RUN_AVG/generator.keras RUN_1125/generator.keras \
        RUN_1250/generator.keras [--weights 1,1]

The checkpoints must share one architecture (the same model configuration in their manifests); each is loaded with
its SHA-256 checked. The average is written atomically in our format, with the inputs and their weights in its
manifest, and swaps, evaluates and ships like any checkpoint. Averaging checkpoints of different runs is allowed
but not what this is for: two runs from different starts need not average into a working network.
"""

from __future__ import annotations

import argparse
import math
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs="+", help="our generator checkpoints (.keras), at least two")
    parser.add_argument("--weights", help="comma-separated non-negative weights, one per checkpoint (default equal)")
    parser.add_argument("--output", required=True, help="the generator checkpoint to write (.keras)")
    args = parser.parse_args(argv)
    if len(args.checkpoints) < 2 or not args.output.endswith(".keras"):
        parser.error("give at least two checkpoints, and an --output that ends in .keras")
    try:
        weights = [1.0] * len(args.checkpoints) if args.weights is None else [
            float(w) for w in args.weights.split(",")]
    except ValueError:
        parser.error(f"--weights must be numbers separated by commas, got {args.weights!r}")
    if len(weights) != len(args.checkpoints) or not all(math.isfinite(w) and w >= 0 for w in weights) \
            or sum(weights) <= 0:
        parser.error(f"--weights needs one finite non-negative number per checkpoint ({len(args.checkpoints)}) with a "
                     "positive sum")

    from clipswap.checkpoints.errors import CheckpointError
    from clipswap.checkpoints.native import load_generator, save_generator

    try:
        loaded = [load_generator(path) for path in args.checkpoints]
    except CheckpointError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    first = loaded[0]
    for path, other in zip(args.checkpoints[1:], loaded[1:], strict=True):
        if other.config != first.config:
            print(f"error: {path} has another architecture than {args.checkpoints[0]} (their manifests' model "
                  "configurations differ); average checkpoints of one run", file=sys.stderr)
            return 1
    average_weights(first.model, [c.model for c in loaded], weights)
    total = sum(weights)
    save_generator(first.model, first.config, args.output, step=max(c.step for c in loaded),
                   averaged_from=[{"checkpoint": str(path), "step": c.step, "sha256": c.sha256, "weight": w / total}
                                  for path, c, w in zip(args.checkpoints, loaded, weights, strict=True)])
    print(f"wrote {args.output}: the weighted mean of {len(loaded)} checkpoints (steps "
          f"{', '.join(str(c.step) for c in loaded)})")
    return 0


def average_weights(destination, models, weights) -> None:
    """Assign to every weight of `destination` (which may be one of `models`) the weighted mean (weights normalised to
    sum 1) of the same weight of `models` (same architecture, same weight order; a generator's weights are all
    floating point), computed in float64."""
    import numpy as np

    total = float(sum(weights))
    for index, variable in enumerate(destination.weights):
        mean = sum(w / total * np.asarray(m.weights[index], np.float64) for w, m in zip(weights, models, strict=True))
        variable.assign(mean.astype(variable.dtype))


if __name__ == "__main__":
    sys.exit(main())
