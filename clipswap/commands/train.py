"""`clipswap train`: flags -> TrainConfig -> clipswap.training.run.run_training. No training logic here."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import click

from clipswap.errors import ClipswapError
from clipswap.training.config import PRECISIONS, TRAIN_PRESETS

logger = logging.getLogger(__name__)


@click.command("train")
@click.option("--data", "data_dir", type=click.Path(file_okay=False, exists=True), default=None,
              help="Folder of `clipswap align` TFRecord shards (or its shards/ subfolder).")
@click.option("--run-dir", type=click.Path(file_okay=False), default=None,
              help="Run folder: config.json, checkpoints/, logs/ (TensorBoard), images/, generator.keras.")
@click.option("--preset", type=click.Choice(sorted(TRAIN_PRESETS)), default="paper", show_default=True,
              help="paper: the ClipSwap paper's settings; facedancer: FaceDancer's recipe; tiny: a CPU-sized run.")
@click.option("--config", "yaml_path", type=click.Path(dir_okay=False, exists=True), default=None,
              help="YAML file of overrides (TrainConfig keys; model.* and weights.* nested or dotted).")
@click.option("--set", "set_pairs", multiple=True, metavar="KEY=VALUE",
              help="Override one key, e.g. --set weights.id=5 --set model.base_filters=16 (repeatable).")
@click.option("--steps", type=click.IntRange(min=1), default=None, help="Total steps (preset value if unset).")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Global batch (split across replicas).")
@click.option("--seed", type=click.IntRange(min=0), default=None, help="Seed of data order, init and augmentations.")
@click.option("--arcface", "arcface_path", type=click.Path(dir_okay=False, exists=True), default=None,
              help="ArcFace-Res50.h5: identity encoder (without it SFace is used, offline).")
@click.option("--clip-preset", default=None,
              help="keras-hub CLIP preset (directory or handle): CLIP identity input and contrastive loss. "
                   "Without it both are off.")
@click.option("--precision", type=click.Choice(PRECISIONS), default=None,
              help="fp32, bf16 (mixed bfloat16) or fp16 (mixed float16 with loss scaling). [default: fp32]")
@click.option("--xla", is_flag=True, default=False, help="Compile the train step with XLA.")
@click.option("--checkpoint-every", type=click.IntRange(min=1), default=None, help="Steps between checkpoints.")
@click.option("--cpu-replicas", type=click.IntRange(min=0, max=64), default=0, show_default=True,
              help="Split the CPU into N logical devices and train N-way MirroredStrategy (testing distribution).")
@click.option("--resume", is_flag=True, default=False, help="Continue from the latest checkpoint in --run-dir.")
@click.option("--dry-run", is_flag=True, default=False, help="Print the resolved configuration and exit.")
@click.option("--no-progress", is_flag=True, default=False, help="No tqdm bar (logs still go to TensorBoard).")
def train(data_dir, run_dir, preset, yaml_path, set_pairs, steps, batch_size, seed, arcface_path, clip_preset,
          precision, xla, checkpoint_every, cpu_replicas, resume, dry_run, no_progress):
    """Train the ClipSwap generator and discriminator (ClipSwap paper losses on FaceDancer's recipe).

    Identity encoder: ArcFace-R50 with --arcface, else SFace. CLIP: with --clip-preset, else the CLIP input and the
    contrastive term are off (a warning says so). The trained generator is exported to RUN_DIR/generator.keras.
    """
    from clipswap.training.config import parse_set_options, resolve_config

    try:
        overrides: dict = parse_set_options(set_pairs)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--set") from error
    flags = {
        "steps": steps, "batch_size": batch_size, "seed": seed,
        "arcface_path": str(Path(arcface_path).resolve()) if arcface_path else None,
        "clip_preset": clip_preset, "precision": precision, "checkpoint_every": checkpoint_every,
        "xla": True if xla else None,
    }
    clashes = sorted(key for key, value in flags.items() if value is not None and key in overrides)
    if clashes:
        raise click.ClickException(f"{clashes} given both as a flag and with --set; give each value once")
    overrides.update({key: value for key, value in flags.items() if value is not None})

    try:
        config = resolve_config(preset, yaml_path, overrides)
    except ValueError as error:
        raise click.ClickException(f"invalid configuration: {error}") from error

    from clipswap.training.run import effective_config

    config, notes = effective_config(config)
    replicas = max(cpu_replicas, 1)
    if cpu_replicas > 1 and config.batch_size % cpu_replicas:
        raise click.ClickException(
            f"--batch-size {config.batch_size} must be divisible by --cpu-replicas {cpu_replicas}"
        )
    if config.precision == "fp16" and config.xla:
        notes.append("fp16 with XLA: loss scaling runs inside the compiled step")
    if dry_run:
        click.echo(json.dumps({"config": config.to_dict(), "notes": notes, "replicas": replicas}, indent=2,
                              sort_keys=True))
        return
    if data_dir is None or run_dir is None:
        raise click.UsageError("--data and --run-dir are required (except with --dry-run)")
    for note in notes:
        # Once, on stderr (a logger.warning as well printed each note twice: issue 11 item 10).
        click.echo(f"warning: {note}", err=True)

    import os

    if cpu_replicas > 1 and os.environ.get("TF_CONFIG"):
        raise click.ClickException("--cpu-replicas and TF_CONFIG (multi-worker) cannot be combined")

    from clipswap.training.run import make_strategy, run_training, split_cpu

    if cpu_replicas > 1:
        split_cpu(cpu_replicas)

    try:
        strategy = make_strategy(cpu_replicas)
        result = run_training(config, data_dir, run_dir, resume=resume, strategy=strategy, progress=not no_progress)
    except (ClipswapError, FileNotFoundError) as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"trained steps {result.start_step} -> {result.final_step} in {result.run_dir}")
    for step, value in result.heldout:
        click.echo(f"  held-out identity loss at step {step}: {value:.4f}")
    if result.exported is not None:
        click.echo(f"exported the generator to {result.exported} (use it with clipswap swap --model)")
