"""`clipswap train-occluder`: the network that finds what covers a face, so the swap pastes around it."""

from __future__ import annotations

import click

from clipswap.commands.params import FiniteFloatRange
from clipswap.errors import ClipswapError

_DIR = click.Path(file_okay=False)


@click.command("train-occluder")
@click.option("--data", type=_DIR, required=True,
              help="A `clipswap pairs` folder (its face_landmarks.npz places the drawn sunglasses).")
@click.option("--output", type=_DIR, required=True, help="Gets occluder.keras and occluder.json.")
@click.option("--steps", type=click.IntRange(1), default=1500, show_default=True, help="Training steps.")
@click.option("--batch-size", type=click.IntRange(1), default=32, show_default=True, help="Faces a step.")
@click.option("--learning-rate", type=FiniteFloatRange(min=0, min_open=True), default=3e-3, show_default=True,
              help="Adam's initial learning rate (cosine decay to zero).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the initialisation and the draws.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def train_occluder(data, output, steps, batch_size, learning_rate, seed, no_progress):
    """Train the occluder network on a pairs folder's faces with drawn sunglasses and objects; report its held-out
    accuracy."""
    from clipswap.training.occluder import train_occluder as run

    try:
        result = run(data, output, steps=steps, batch_size=batch_size, learning_rate=learning_rate, seed=seed,
                     progress=not no_progress)
    except ClipswapError as error:
        raise click.ClickException(str(error)) from error
    accuracy = result["accuracy"]
    click.echo(f"wrote {output}/occluder.keras ({result['parameters']:,} parameters, "
               f"{result['ms_per_face_batch1']} ms a face at batch 1)")
    click.echo(f"  held-out {accuracy['faces']} faces with a drawn occluder: IoU {accuracy['iou_percent']:.1f} %, "
               f"recall {accuracy['recall_percent']:.1f} %; the same faces clean: "
               f"{accuracy['false_positive_percent']:.2f} % of the face called occluded")
