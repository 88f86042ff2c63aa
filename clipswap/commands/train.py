"""`clipswap train`: flags -> (TrainConfig, RunFiles) -> clipswap.training.run.run_training. No training logic here:
the keys are resolved and every rule checked in clipswap.config."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import sys
from pathlib import Path

import click

from clipswap.commands.doctor import cpu_has_bf16
from clipswap.commands.params import FiniteFloatRange, model_files_option
from clipswap.config import PRECISIONS, PRESETS
from clipswap.errors import ClipswapError

logger = logging.getLogger(__name__)

BACKENDS = ("tensorflow", "jax")


def run_configuration(preset: str, yaml_path: str | None, run_dir: str | None, resume: bool) -> tuple[str, str | None]:
    """(preset, configuration file) of this command: as given, except that a --resume given neither --preset nor
    --config continues the run's own configuration (RUN_DIR/config.json, on top of its preset; --set and the flags
    still override it), so that `clipswap train --data D --run-dir RUN --resume --steps N` continues a run without
    its flags repeated. The run's files (--attribute-file, --arcface, ...) are not in config.json and are given again.

    Raises:
        click.ClickException: that config.json cannot be read or is not a JSON object.
    """
    from clipswap.jsonfile import JSONFileError, read_json_object

    context = click.get_current_context()
    defaulted = all(context.get_parameter_source(name) == click.core.ParameterSource.DEFAULT
                    for name in ("preset", "yaml_path"))
    stored = Path(run_dir) / "config.json" if run_dir else None
    if not (resume and defaulted and stored is not None and stored.is_file()):
        return preset, yaml_path
    try:
        stored_config = read_json_object(stored)
    except JSONFileError as error:
        raise click.ClickException(f"{error}: --resume without --preset continues the run's own configuration; "
                                   "restore the file or give the run's --preset and flags again") from None
    if not isinstance(stored_config.get("model"), dict):
        return preset, yaml_path  # a flat config.json from before the tree: its migration needs the run's flags
    named = stored_config.get("preset")
    return (named if named in PRESETS else preset), str(stored)


def choose_backend(backend: str | None) -> str:
    """The Keras backend of this run: --backend, else KERAS_BACKEND, else TensorFlow. Keras reads KERAS_BACKEND once,
    when it is first imported, so JAX is set here before anything imports it.

    Raises:
        click.ClickException: Keras was already imported with another backend, KERAS_BACKEND names one that
            cannot train, or JAX is asked for and not installed.
    """
    chosen = backend or os.environ.get("KERAS_BACKEND") or "tensorflow"
    if chosen not in BACKENDS:
        raise click.ClickException(f"KERAS_BACKEND={chosen!r} cannot train: use tensorflow or jax (--backend)")
    if chosen == "jax" and importlib.util.find_spec("jax") is None:
        raise click.ClickException(
            "--backend jax needs JAX, which is not installed: python -m pip install "
            '"jax[cpu]" (or JAX\'s CUDA build on a GPU machine)'
        )
    if "keras" in sys.modules:
        import keras

        if keras.backend.backend() != chosen:
            raise click.ClickException(
                f"Keras was already started on {keras.backend.backend()} in this process: "
                f"run `clipswap train --backend {chosen}` in a new process"
            )
    os.environ["KERAS_BACKEND"] = chosen
    return chosen


@click.command("train")
@click.option(
    "--data",
    "data_dir",
    type=click.Path(file_okay=False, exists=True),
    default=None,
    help="Folder of `clipswap align` TFRecord shards (or its shards/ subfolder), or of `clipswap pairs`; "
    "with --backend jax, a face pack made by `clipswap pack`.",
)
@click.option(
    "--run-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Run folder: config.json, checkpoints/, metrics.jsonl, images/, generator.keras, and logs/ "
    "(TensorBoard; TensorFlow only).",
)
@click.option(
    "--preset",
    type=click.Choice(sorted(PRESETS)),
    default="paper",
    show_default=True,
    help="paper: the ClipSwap paper's settings (needs --arcface and --clip-preset; paper-offline: SFace, "
    "no CLIP); facedancer: FaceDancer's recipe; tiny: a CPU-sized run; demo: the shipped demo.",
)
@click.option(
    "--config",
    "yaml_path",
    type=click.Path(dir_okay=False, exists=True),
    default=None,
    help="YAML file of overrides (section.key, nested sections, or a section's key alone).",
)
@click.option(
    "--set",
    "set_pairs",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override one key, e.g. --set weights.id=5 --set model.base_filters=16 --set schedule.steps=9 "
    "(or steps=9) (repeatable).",
)
@click.option("--steps", type=click.IntRange(min=1), default=None, help="Total steps (preset value if unset).")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Global batch (split across replicas).")
@click.option("--seed", type=click.IntRange(min=0), default=None, help="Seed of data order, init and augmentations.")
@click.option(
    "--arcface",
    "arcface_path",
    type=click.Path(dir_okay=False, exists=True),
    default=None,
    help="ArcFace-Res50.h5: the identity encoder of an ArcFace preset (paper, release, facedancer).",
)
@model_files_option
@click.option(
    "--clip-preset",
    default=None,
    help="keras-hub CLIP preset (directory or handle) of a preset with CLIP input (paper).",
)
@click.option(
    "--vgg-weights",
    type=click.Path(dir_okay=False, exists=True),
    default=None,
    help="Keras' VGG16 no-top weights file for the VGG16 perceptual network (else Keras downloads them).",
)
@click.option(
    "--attribute-file",
    type=click.Path(dir_okay=False),
    default=None,
    help="The attribute network A as a .keras model (with --set attribute_network=file), or the "
    "geometry.keras of --set attribute_network=landmarks (default: pretrained_ckpts/demo/).",
)
@click.option(
    "--init-generator",
    type=click.Path(dir_okay=False, exists=True),
    default=None,
    help="A generator checkpoint (ours or a published .h5) whose weights start a new run where layer names "
    "and shapes match (warm start, fine-tuning); a --resume restores the run's own checkpoint.",
)
@click.option(
    "--precision",
    type=click.Choice(PRECISIONS),
    default=None,
    help="fp32, bf16 (mixed bfloat16) or fp16 (mixed float16 with loss scaling; TensorFlow only). [default: fp32]",
)
@click.option(
    "--xla",
    is_flag=True,
    default=False,
    help="Compile the train step with XLA (TensorFlow; --backend jax always compiles with XLA).",
)
@click.option("--checkpoint-every", type=click.IntRange(min=1), default=None, help="Steps between checkpoints.")
@click.option(
    "--cpu-replicas",
    type=click.IntRange(min=0, max=64),
    default=0,
    show_default=True,
    help="Split the CPU into N logical devices and train N-way MirroredStrategy (testing distribution; "
    "TensorFlow only).",
)
@click.option("--resume", is_flag=True, default=False, help="Continue from the latest checkpoint in --run-dir.")
@click.option("--dry-run", is_flag=True, default=False, help="Print the resolved configuration and exit.")
@click.option(
    "--no-progress",
    is_flag=True,
    default=False,
    help="No tqdm bar (the figures still go to metrics.jsonl, and to TensorBoard on TensorFlow).",
)
@click.option(
    "--time-limit",
    type=FiniteFloatRange(min=0, min_open=True),
    default=None,
    metavar="MINUTES",
    help="Stop at the end of the step in progress MINUTES after the start, checkpointed, scored and drawn "
    "like a last step (the generator is exported only once --steps is reached); --backend jax only.",
)
@click.option(
    "--backend",
    type=click.Choice(BACKENDS),
    default=None,
    help="Keras backend: tensorflow (tf.data shards, tf.distribute) or jax (a face pack from `clipswap "
    "pack`, one device, no TensorFlow needed). [default: $KERAS_BACKEND, else tensorflow]",
)
def train(
    data_dir,
    run_dir,
    preset,
    yaml_path,
    set_pairs,
    steps,
    batch_size,
    seed,
    arcface_path,
    model_files,
    clip_preset,
    vgg_weights,
    attribute_file,
    init_generator,
    precision,
    xla,
    checkpoint_every,
    cpu_replicas,
    resume,
    dry_run,
    no_progress,
    time_limit,
    backend,
):
    """Train the ClipSwap generator and discriminator (ClipSwap paper losses on FaceDancer's recipe).

    A preset runs as it says: one whose files are not given (paper: --arcface and --clip-preset) is refused with
    the name of its offline twin (paper-offline). A component's model file with no flag of its own (a new identity
    encoder's) is given with --file KEY=PATH. The trained generator is exported to RUN_DIR/generator.keras.
    """
    from clipswap.config import ConfigError, RunFiles, check_runnable, parse_set_options, resolve_key, resolve_run

    preset, yaml_path = run_configuration(preset, yaml_path, run_dir, resume)
    try:
        overrides: dict = parse_set_options(set_pairs)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--set") from error
    resolved = lambda path: str(Path(path).resolve()) if path else None  # noqa: E731
    flags = {
        "steps": steps,
        "batch_size": batch_size,
        "seed": seed,
        "precision": precision,
        "checkpoint_every": checkpoint_every,
        "xla": True if xla else None,
        "arcface_path": resolved(arcface_path),
        "clip_preset": clip_preset,
        "vgg_weights": resolved(vgg_weights),
        "attribute_file": resolved(attribute_file),
        "init_generator": resolved(init_generator),
    }
    try:
        # A flag and a --set of the same key, in any spelling (steps, schedule.steps), is the key given twice.
        given = {resolve_key(key)[1] for key in overrides}
    except ValueError as error:
        raise click.ClickException(f"invalid configuration: {error}") from error
    clashes = sorted(key for key, value in flags.items() if value is not None and key in given)
    if clashes:
        raise click.ClickException(f"{clashes} given both as a flag and with --set; give each value once")
    overrides.update({key: value for key, value in flags.items() if value is not None})

    replicas = max(cpu_replicas, 1)
    try:
        given_files = RunFiles(files={key: resolved(path) for key, path in model_files.items()})
        config, files = resolve_run(preset, yaml_path, overrides, given_files)
    except ValueError as error:
        raise click.ClickException(f"invalid configuration: {error}") from error
    try:
        notes = check_runnable(config, files, replicas)
    except ConfigError as error:
        raise click.ClickException(str(error)) from error
    if dry_run:
        header = PRESETS[preset].header()
        click.echo(
            json.dumps(
                {
                    "config": config.to_dict(),
                    "files": files.to_dict(),
                    "preset": header,
                    "notes": notes,
                    "replicas": replicas,
                },
                indent=2,
                sort_keys=True,
            )
        )
        return
    if data_dir is None or run_dir is None:
        raise click.UsageError("--data and --run-dir are required (except with --dry-run)")
    for note in notes:
        # Once, on stderr (a logger.warning as well would print each note twice).
        click.echo(f"warning: {note}", err=True)

    if choose_backend(backend) == "jax":
        if cpu_replicas > 1 or os.environ.get("TF_CONFIG"):
            raise click.ClickException(
                "--backend jax trains on one device: --cpu-replicas and TF_CONFIG are TensorFlow's (tf.distribute)"
            )
        from clipswap.training.jax_run import run_training_jax

        try:
            # Decoding threads: this 2-core CPU's two, up to 8 where there are more cores (a GPU machine).
            result = run_training_jax(
                config,
                data_dir,
                run_dir,
                files=files,
                resume=resume,
                progress=not no_progress,
                workers=max(2, min(8, os.cpu_count() or 2)),
                time_limit=None if time_limit is None else 60.0 * time_limit,
            )
        except (ClipswapError, FileNotFoundError) as error:
            raise click.ClickException(str(error)) from error
        _report(result)
        return

    if time_limit is not None:
        raise click.ClickException(
            "--time-limit is --backend jax's (the runs on a lent GPU machine): give --steps on TensorFlow"
        )
    if cpu_replicas > 1 and os.environ.get("TF_CONFIG"):
        raise click.ClickException("--cpu-replicas and TF_CONFIG (multi-worker) cannot be combined")

    from clipswap.training.run import make_strategy, run_training, split_cpu

    if config.compute.precision == "bf16" and cpu_has_bf16() is False:
        import tensorflow as tf

        if not tf.config.list_physical_devices("GPU"):
            # Measured on a 2-core AVX2 CPU (docs/demo_model.md): 21 s a step in bf16 against 3 s in fp32.
            click.echo("warning: this CPU has no bf16 hardware (AVX512-BF16 or AMX) and TensorFlow sees no GPU, so "
                       "--precision bf16 is emulated and several times slower than --precision fp32 "
                       "(clipswap doctor)", err=True)

    if cpu_replicas > 1:
        split_cpu(cpu_replicas)

    try:
        strategy = make_strategy(cpu_replicas)
        result = run_training(
            config, data_dir, run_dir, files=files, resume=resume, strategy=strategy, progress=not no_progress
        )
    except (ClipswapError, FileNotFoundError) as error:
        raise click.ClickException(str(error)) from error
    _report(result)


def _report(result) -> None:
    """The run's summary lines (RunResult)."""
    click.echo(f"trained steps {result.start_step} -> {result.final_step} in {result.run_dir}")
    for step, value in result.heldout:
        click.echo(f"  held-out identity loss at step {step}: {value:.4f}")
    if result.exported is not None:
        click.echo(f"exported the generator to {result.exported} (use it with clipswap swap --model)")
