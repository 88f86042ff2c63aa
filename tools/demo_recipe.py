"""Reproduce a keypoint-flow demo model from a folder of photos: every stage one command line, run in order, each
skipped when its output is already there, so a stopped recipe goes on where it stopped.

    python tools/demo_recipe.py --data ../shared/data/lfw_train --runs RUNS [--steps 1125] [--share 0.6]
        [--geometry-steps 6000] [--precision fp32] [--until STAGE] [--dry-run]

Stages and what each writes under RUNS (times on a 2-core AMD EPYC; `--dry-run` prints the commands):

    align     aligned/        clipswap align, 128 px (about 1 minute)
    pairs     pairs/          clipswap pairs: 40,000 pairs with landmarks and teachers, 100 held-out people (12 min)
    geometry  geometry/       clipswap train-geometry: the heatmap landmark and pose network, 128 px, batch 64
                              (--geometry-steps; 1.35 s a step: 6,000 steps take 2.2 hours)
    flow      flow/           tools/pretrain_flow.py: the keypoint flow from that network (1,500 steps, 6 min)
    shape     flow_shape/     tools/shape_transfer.py: the source's face shape at --share, directions fitted on pairs/
    train     train/          clipswap train with the shape on, the geometry term against the shape-moved target
                              points and the teacher moved with them (--steps; 3 s a step in fp32); an unfinished
                              run is resumed (--resume)
    evaluate  evaluate/       clipswap evaluate on the 100 held-out pairs, judged by dlib (`eval` extra)
    ship      demo/           tools/ship_demo.py: the demo folder (generator, geometry network, manifests with the
                              recipe, the data and the metrics); copying it into pretrained_ckpts/demo/ is left to you

A stage that fails stops the recipe with its exit status and the stage's name; its own command refuses bad input
and writes atomically, so a rerun starts that stage again. A finished train stage whose run stopped short of --steps
is continued to --steps.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from clipswap.config import get_preset

TOOLS = Path(__file__).resolve().parent
#: The recipe's default training steps: the demo preset's, the step the shipped demo was taken at.
DEMO_STEPS = get_preset("demo").config.schedule.steps

#: The stages in order (the module docstring says what each does).
STAGES = ("align", "pairs", "geometry", "flow", "shape", "train", "evaluate", "ship")


@dataclass(frozen=True)
class Stage:
    """One stage: its name, the file whose presence means it is done, and its command line."""

    name: str
    done: Path
    argv: list[str]


def _cli(*args: str) -> list[str]:
    """The clipswap command line of this interpreter's environment: its console script where the environment has
    one (what a user would type), else the CLI through this interpreter."""
    script = Path(sys.executable).parent / "clipswap"
    if script.is_file():
        return [str(script), *args]
    return [sys.executable, "-c", "import sys; from clipswap.cli import main; sys.exit(main())", *args]


def _tool(name: str, *args: str) -> list[str]:
    return [sys.executable, str(TOOLS / name), *args]


def train_overrides(share: float, geometry: Path) -> list[str]:
    """The `--set` options of the train stage on top of the demo preset (which holds the heatmap keypoint flow, the
    flow term and the geometry term at 4): the shape transfer at `share`, and the geometry stage's network as the
    geometry term's A (eq. 9), the same network the flow starts from."""
    settings = {"model.keypoint_shape": share, "attribute_file": str(geometry)}
    return [part for key, value in settings.items() for part in ("--set", f"{key}={value}")]


def trained_steps(run: Path) -> int:
    """The step of a train run's exported generator (its manifest), or -1 when it has none yet."""
    try:
        return int(json.loads((run / "generator.json").read_text(encoding="utf-8"))["step"])
    except FileNotFoundError:
        return -1
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError) as error:
        raise SystemExit(f"error: {run / 'generator.json'} is not a generator manifest ({error}); move the run "
                         "folder away and run the recipe again") from None


def stages(data: Path, runs: Path, steps: int, share: float, sharpen: float, geometry_steps: int = 6000,
           precision: str | None = None) -> list[Stage]:
    """The recipe's stages for photos in `data` and run folders under `runs`; `precision` None trains in the demo
    preset's."""
    aligned, pairs, geometry = runs / "aligned", runs / "pairs", runs / "geometry" / "geometry.keras"
    flow, shaped, run = runs / "flow" / "generator.keras", runs / "flow_shape" / "generator.keras", runs / "train"
    evaluation = runs / "evaluate"
    train = _cli("train", "--data", str(pairs), "--run-dir", str(run), "--steps", str(steps), "--preset", "demo",
                 *train_overrides(share, geometry), "--init-generator", str(shaped))
    if precision is not None:
        train += ["--precision", precision]
    if (run / "config.json").is_file():
        train.append("--resume")
    return [
        Stage("align", aligned / "align_manifest.json",
              _cli("align", "--input", str(data), "--output", str(aligned), "--size", "128", "--workers", "2")),
        Stage("pairs", pairs / "pairs_manifest.json",
              _cli("pairs", "--data", str(aligned), "--output", str(pairs), "--count", "40000", "--heldout", "100",
                   "--workers", "2")),
        Stage("geometry", geometry,
              _cli("train-geometry", "--data", str(pairs), "--output", str(geometry.parent), "--head", "heatmap",
                   "--input-size", "128", "--steps", str(geometry_steps))),
        Stage("flow", flow,
              _tool("pretrain_flow.py", "--pairs", str(pairs), "--output", str(flow), "--steps", "1500",
                    "--conditioning", "target+keypoint_flow", "--geometry", str(geometry))),
        Stage("shape", shaped,
              _tool("shape_transfer.py", "--generator", str(flow), "--pairs", str(pairs), "--share", str(share),
                    "--output", str(shaped))),
        Stage("train", run / "generator.json", train),
        Stage("evaluate", evaluation / "metrics.json",
              _cli("evaluate", "--pairs", str(pairs / "heldout_pairs.tsv"), "--model", str(run / "generator.keras"),
                   "--identity-model", "dlib", "--runtime", "tf", "--sharpen", str(sharpen), "--output-dir",
                   str(evaluation))),
        Stage("ship", runs / "demo" / "generator.json",
              _tool("ship_demo.py", "--run", str(run), "--metrics", str(evaluation / "metrics.json"), "--pairs",
                    str(pairs), "--geometry", str(geometry), "--paste-sharpen", str(sharpen), "--output",
                    str(runs / "demo"))),
    ]


def is_done(stage: Stage, steps: int) -> bool:
    """A stage is done when its output exists; the train stage also when its generator reached `steps`."""
    if stage.name == "train":
        return trained_steps(stage.done.parent) >= steps
    return stage.done.is_file()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="a folder of photos, one sub-folder per person")
    parser.add_argument("--runs", type=Path, required=True, help="where every stage's folder goes")
    parser.add_argument("--steps", type=int, default=DEMO_STEPS,
                        help=f"training steps (default {DEMO_STEPS}, the demo preset's)")
    parser.add_argument("--share", type=float, default=0.6,
                        help="the share of the source's face shape the keypoint flow carries, in (0, 1] (default 0.6)")
    parser.add_argument("--sharpen", type=float, default=1.0,
                        help="the unsharp mask of the paste, evaluated and shipped, in [0, 2] (default 1)")
    parser.add_argument("--geometry-steps", type=int, default=6000,
                        help="training steps of the geometry network (default 6000)")
    parser.add_argument("--precision", choices=("bf16", "fp32"), default=None,
                        help="training precision (default: the demo preset's fp32; bf16 where the CPU has bf16 "
                             "hardware: on a 2-core AVX2 CPU it is emulated, 21 s a step against 3 s)")
    parser.add_argument("--until", choices=STAGES, default=STAGES[-1], help="the last stage to run (default ship)")
    parser.add_argument("--dry-run", action="store_true", help="print each stage's state and command; run nothing")
    args = parser.parse_args(argv)
    if min(args.steps, args.geometry_steps) < 1 or not 0.0 < args.share <= 1.0 or not 0.0 <= args.sharpen <= 2.0:
        parser.error("--steps and --geometry-steps must be >= 1, --share in (0, 1] and --sharpen in [0, 2]")
    if not args.data.is_dir():
        parser.error(f"--data {args.data} is not a folder of photos")
    data, runs = args.data.resolve(), args.runs.resolve()
    recipe = stages(data, runs, args.steps, args.share, args.sharpen, args.geometry_steps, args.precision)
    for stage in recipe[:STAGES.index(args.until) + 1]:
        if is_done(stage, args.steps):
            print(f"{stage.name}: done ({stage.done})", flush=True)
            continue
        print(f"{stage.name}: {shlex.join(stage.argv)}", flush=True)
        if args.dry_run:
            continue
        status = subprocess.run(stage.argv, check=False).returncode
        if status != 0:
            print(f"error: stage {stage.name} failed (exit status {status}); fix what it reported and run the "
                  "recipe again: finished stages are kept", file=sys.stderr)
            return status
    return 0


if __name__ == "__main__":
    sys.exit(main())
