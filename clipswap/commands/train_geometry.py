"""`clipswap train-geometry`: the landmark and head-pose network that the "landmarks" attribute term reads."""

from __future__ import annotations

import click

from clipswap.commands.params import FiniteFloatRange
from clipswap.errors import ClipswapError

_DIR = click.Path(file_okay=False)
#: clipswap.models.geometry's HEADS and the backbone's stride, spelled here so that --help starts no TensorFlow
#: (tests/training/test_geometry_training.py checks they agree).
HEADS = ("dense", "heatmap")
STRIDE = 32


@click.command("train-geometry")
@click.option("--data", type=_DIR, required=True,
              help="A `clipswap pairs` folder (its face_landmarks.npz labels every aligned face).")
@click.option("--output", type=_DIR, required=True, help="Gets geometry.keras and geometry.json.")
@click.option("--steps", type=click.IntRange(1), default=2500, show_default=True, help="Training steps.")
@click.option("--batch-size", type=click.IntRange(1), default=64, show_default=True, help="Faces a step.")
@click.option("--learning-rate", type=FiniteFloatRange(min=0, min_open=True), default=2e-3, show_default=True,
              help="Adam's initial learning rate (cosine decay to zero).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the initialisation and the draws.")
@click.option("--head", type=click.Choice(HEADS), default="dense", show_default=True,
              help="dense: the points regressed from the deepest features; heatmap: read off one heatmap a point "
                   "at a quarter of the input side by soft-argmax.")
@click.option("--input-size", type=click.IntRange(STRIDE), default=96, show_default=True,
              help=f"Side the network reads, a multiple of {STRIDE} (the backbone's stride).")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def train_geometry(data, output, steps, batch_size, learning_rate, seed, head, input_size, no_progress):
    """Train the 68-landmark and head-pose network on a pairs folder's faces; report its held-out accuracy."""
    from clipswap.training.geometry import train_geometry as run

    if input_size % STRIDE:
        raise click.BadParameter(f"{input_size} is not a multiple of {STRIDE}, the backbone's stride",
                                 param_hint="--input-size")
    try:
        result = run(data, output, steps=steps, batch_size=batch_size, learning_rate=learning_rate, seed=seed,
                     head=head, input_size=input_size, progress=not no_progress)
    except ClipswapError as error:
        raise click.ClickException(str(error)) from error
    accuracy, baseline = result["accuracy"], result["mean_shape_baseline"]
    click.echo(f"wrote {output}/geometry.keras ({result['parameters']:,} parameters, "
               f"{result['ms_per_face_batch1']} ms a face at batch 1)")
    click.echo(f"  held-out {accuracy['faces']} faces: NME {accuracy['nme_percent']:.2f} % of the inter-ocular "
               f"distance (mean shape {baseline['nme_percent']:.2f} %); pose MAE yaw {accuracy['yaw_mae']:.2f}, "
               f"pitch {accuracy['pitch_mae']:.2f}, roll {accuracy['roll_mae']:.2f} degrees (mean shape "
               f"{baseline['pose_mae']:.2f}); spread {accuracy['spread']:.2f} (1: follows each face's shape)")
