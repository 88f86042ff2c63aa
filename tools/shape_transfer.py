"""Give a keypoint-flow generator the source's face shape: a copy with ModelConfig.keypoint_shape = --share and
its pose directions fitted on a pairs folder's labelled training faces (clipswap.layers.shape_transfer).

    python tools/shape_transfer.py --generator RUN/generator.keras --pairs PAIRS --share 1 \
        --output RUN_SHAPE/generator.keras

Every weight of the input is carried over by layer name and checked; only the new layer's pose directions are
added. The copy swaps and evaluates like any checkpoint (`clipswap swap --model RUN_SHAPE/generator.keras`), and
starts a training run with the shape transfer on (`clipswap train ... --set model.keypoint_shape=SHARE
--init-generator RUN_SHAPE/generator.keras`). Fitting reads the folder's face_landmarks.npz (about 10 s for 11,000
faces on 2 cores).
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--generator", required=True, help="our generator checkpoint (.keras) with a keypoint flow")
    parser.add_argument("--pairs", required=True, help="the `clipswap pairs` folder whose faces fit the directions")
    parser.add_argument("--share", type=float, default=1.0,
                        help="the share of the source's face shape, in (0, 1] (default 1)")
    parser.add_argument("--output", required=True, help="the generator checkpoint to write (.keras)")
    args = parser.parse_args(argv)
    if not 0.0 < args.share <= 1.0 or not args.output.endswith(".keras"):
        parser.error("--share must be in (0, 1] and --output must end in .keras")

    import dataclasses

    from clipswap.checkpoints.errors import CheckpointError
    from clipswap.checkpoints.native import load_generator, save_generator
    from clipswap.models.generator import Generator
    from clipswap.models.shape_directions import ShapeDirectionsError, pose_directions_from_pairs

    try:
        loaded = load_generator(args.generator)
        config = dataclasses.replace(loaded.config, keypoint_shape=args.share)
        directions = pose_directions_from_pairs(args.pairs)
    except (CheckpointError, ShapeDirectionsError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    model = Generator(config)
    copied = transfer_weights(loaded.model, model)
    shape = model.get_layer(f"{model.name}_flow_shape")
    shape.pose_directions.assign(directions)
    save_generator(model, config, args.output, step=loaded.step, shape_transfer_from=str(args.generator))
    print(f"wrote {args.output}: {copied} layers' weights from {args.generator}, keypoint_shape {args.share}, pose "
          f"directions from {args.pairs}")
    return 0


def transfer_weights(source, target) -> int:
    """Copy every weighted layer of `source` into `target`'s layer of the same name; returns how many. Raises
    ValueError when one has no counterpart or another shape (nothing is left at its initial value unnoticed)."""
    copied = 0
    for layer in source.layers:
        weights = layer.get_weights()
        if not weights:
            continue
        try:
            target.get_layer(layer.name).set_weights(weights)
        except ValueError as error:
            raise ValueError(f"layer {layer.name} does not carry over: {error}") from error
        copied += 1
    return copied


if __name__ == "__main__":
    sys.exit(main())
