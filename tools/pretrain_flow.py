"""Train a learned-flow generator's flow network alone on `clipswap pairs` data, as the start of a training run.

    python tools/pretrain_flow.py --pairs PAIRS --output FLOW/generator.keras --steps 6000
    clipswap train --data PAIRS --run-dir RUN --preset demo_warp --set model.conditioning=target+flow \
        --set weights.flow=1 --init-generator FLOW/generator.keras

    python tools/pretrain_flow.py --pairs PAIRS --output KP/generator.keras --steps 1500 \
        --conditioning target+keypoint_flow
    clipswap train --data PAIRS --run-dir RUN --preset demo_warp --set model.conditioning=target+keypoint_flow \
        --set weights.flow=1 --init-generator KP/generator.keras

Only the flow layers ("generator_flow_*") learn, by the flow term (clipswap.losses.flow: the flow at each target
landmark against the displacement to the source's, plus the warp against the pair's landmark warp); the rest of the
generator keeps its initial weights, so `--init-generator` starts the run's flow where this left it and everything
else as a fresh run would. The stacked flow network learns slowly inside a training run (its learning rate is G's,
and for the first several hundred steps it stays near the identity), hence this separate, cheaper loop (about
0.25 s a batch-8 step on 2 CPU cores, against 1.5-2 s for a full training step). The keypoint flow starts from the
shipped geometry network (or --geometry) and is fine-tuned here. Prints the term every 100 steps.

The keypoint network takes the head and input side of the geometry file it starts from (ModelConfig.keypoint_head
and keypoint_size, saved in the output's manifest); a file of other widths or strides, which no generator's
keypoint network has, is refused in one sentence. A training run started from a heatmap or other-size file gives the
same two keys (`--set model.keypoint_head=heatmap --set model.keypoint_size=128`), which the tool prints.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from clipswap.config import ModelConfig
    from clipswap.models.geometry import GeometryNet


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", required=True, help="a `clipswap pairs` folder made with landmarks")
    parser.add_argument("--output", required=True, help="the generator checkpoint to write (.keras)")
    parser.add_argument("--preset", default="demo", help="the preset whose model gets the flow (default: demo)")
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--conditioning", default="target+flow", choices=("target+flow", "target+keypoint_flow"),
                        help="the learned flow: the stacked flow network, or keypoints in each crop and a thin-plate "
                             "spline (default: target+flow)")
    parser.add_argument("--geometry", default=None,
                        help="target+keypoint_flow: the geometry network its keypoint network starts from (default: "
                             "the one shipped beside the demo, pretrained_ckpts/demo/geometry.keras)")
    parser.add_argument("--lr", type=float, default=None,
                        help="Adam's learning rate (default 2e-3; 5e-4 for the keypoint flow, which starts trained)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    keypoints = args.conditioning == "target+keypoint_flow"
    if args.lr is None:
        args.lr = 5e-4 if keypoints else 2e-3
    if args.geometry is not None and not keypoints:
        parser.error("--geometry starts the keypoint flow: give it with --conditioning target+keypoint_flow")
    if args.steps < 1 or args.batch_size < 1 or not args.lr > 0 or not args.output.endswith(".keras"):
        parser.error("--steps and --batch-size must be >= 1, --lr > 0, and --output must end in .keras")

    import keras
    import tensorflow as tf

    from clipswap.checkpoints.errors import CheckpointError
    from clipswap.checkpoints.geometry import load_geometry
    from clipswap.checkpoints.native import save_generator
    from clipswap.config import ModelConfig, get_preset
    from clipswap.facedata.pairs import pair_shards, pairs_have_landmarks, pairs_have_warps
    from clipswap.losses.flow import flow_term, landmark_flow_loss
    from clipswap.models.generator import FLOW_UNIT, Generator
    from clipswap.training.data import make_pair_dataset

    try:
        config = get_preset(args.preset).model.replace(conditioning=args.conditioning)
    except ValueError as error:
        print(f"error: preset {args.preset!r} cannot take a learned flow: {error}", file=sys.stderr)
        return 1
    geometry = None
    if keypoints:
        try:
            geometry = load_geometry(args.geometry)
            config = keypoint_config(config, geometry, args.geometry or "shipped beside the demo")
        except (CheckpointError, ValueError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
    if not (pairs_have_warps(args.pairs) and pairs_have_landmarks(args.pairs)):
        print(f"error: {args.pairs} is not a `clipswap pairs` folder with landmarks and warps; make it again with "
              "`clipswap pairs`", file=sys.stderr)
        return 1
    keras.utils.set_random_seed(args.seed)
    generator = Generator(config)
    if geometry is not None:
        # Random keypoints make a random warp: the keypoint network starts as the trained geometry network.
        generator.get_layer(f"{generator.name}_flow_geometry").set_weights(geometry.get_weights())
    flow_variables = list(generator.separately_trained_variables)
    unit = config.image_size * FLOW_UNIT
    dataset = make_pair_dataset(pair_shards(args.pairs), args.batch_size, config.image_size, same_identity_prob=0.0,
                                seed=args.seed, warped=True, mates=True, landmarks=True)
    optimizer = keras.optimizers.Adam(args.lr)

    @tf.function
    def step(batch):
        with tf.GradientTape() as tape:
            warp, flow = generator.flow_warp(batch["target"], batch["source"])
            loss = flow_term(warp, flow, batch["warped"], batch["target"], batch["target_68"], batch["source_68"],
                             unit)
            points = landmark_flow_loss(flow, batch["target_68"], batch["source_68"], unit)
        optimizer.apply_gradients(zip(tape.gradient(loss, flow_variables), flow_variables, strict=True))
        return loss, points

    started, window = time.perf_counter(), []
    for number, batch in enumerate(dataset.take(args.steps), start=1):
        window.append([float(x) for x in step(batch)])
        if number % 100 == 0 or number == args.steps:
            total, points = (sum(column) / len(window) for column in zip(*window, strict=True))
            print(f"step {number}: flow term {total:.4f} (landmarks {points:.4f} = {points * unit:.2f} px), "
                  f"{(time.perf_counter() - started) / number:.2f} s a step", flush=True)
            window = []
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    save_generator(generator, config, args.output, step=0, flow_pretraining_steps=args.steps)
    print(f"wrote {args.output}")
    default = ModelConfig()
    if (config.keypoint_head, config.keypoint_size) != (default.keypoint_head, default.keypoint_size):
        print(f"train from it with --set model.keypoint_head={config.keypoint_head} --set "
              f"model.keypoint_size={config.keypoint_size}")
    return 0


#: What a geometry file says of its network besides the head and side, which a generator's keypoint network takes
#: as GeometryNet's defaults.
LAYOUT_KEYS = ("widths", "strides", "stem_width", "head_width")


def keypoint_config(config: ModelConfig, geometry: GeometryNet, source: str) -> ModelConfig:
    """`config` (a target+keypoint_flow ModelConfig) with the keypoint network of the GeometryNet `geometry`, read
    from the geometry file `source`: its head and input side (keypoint_head, keypoint_size), all a ModelConfig says of
    that network.

    Raises:
        ValueError: one sentence: the file's head and side are no valid keypoint setting, or its network differs
            from the one the generator would build with them (widths, strides, stem or head width), so its weights
            cannot be copied in.
    """
    from clipswap.models.generator import keypoint_geometry_options
    from clipswap.models.geometry import GeometryNet

    try:
        config = config.replace(keypoint_head=geometry.head, keypoint_size=geometry.input_size)
    except ValueError as error:
        raise ValueError(f"the geometry network {source} cannot start a keypoint flow: {error}") from None
    found, built = geometry.get_config(), GeometryNet(**keypoint_geometry_options(config)).get_config()
    differ = [f"{key} {found[key]} (the generator's: {built[key]})" for key in LAYOUT_KEYS if found[key] != built[key]]
    if differ:
        raise ValueError(f"the geometry network {source} has {', '.join(differ)}, which a generator's keypoint "
                         "network cannot take (it sets only the head and the input side): train one at the default "
                         "widths with `clipswap train-geometry`")
    return config


if __name__ == "__main__":
    sys.exit(main())
