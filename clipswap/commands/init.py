"""`clipswap init`: write a randomly initialised generator checkpoint in our format."""

from __future__ import annotations

import click

from clipswap.config import PRESETS, get_preset


@click.command("init")
@click.option("--preset", type=click.Choice(sorted(PRESETS)), default="release", show_default=True)
@click.option("--output", required=True, type=click.Path(dir_okay=False), help="Destination .keras file.")
@click.option("--seed", type=int, default=0, show_default=True)
def init(preset, output, seed):
    """Write a random-weight generator (.keras + .json manifest) for benchmarks and pipeline tests."""
    from clipswap.atomic import OutputError
    from clipswap.checkpoints.native import init_generator

    if not output.endswith(".keras"):
        raise click.BadParameter("the output must end in .keras", param_hint="--output")
    try:
        manifest = init_generator(get_preset(preset).model, output, seed=seed)
    except OutputError as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"wrote {output} and {manifest} (preset {preset}, random weights, seed {seed})")
