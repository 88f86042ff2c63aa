"""`clipswap pairs`: training pairs with a landmark-swap teacher and a held-out identity set, for `clipswap train`."""

from __future__ import annotations

import click

from clipswap.errors import ClipswapError

_DIR = click.Path(file_okay=False)


@click.command("pairs")
@click.option("--data", type=_DIR, required=True, help="A `clipswap align` output folder (or its shards).")
@click.option("--output", type=_DIR, required=True,
              help="Gets shards/ (pairs), heldout/, heldout_pairs.tsv and pairs_manifest.json.")
@click.option("--count", type=click.IntRange(1), default=40_000, help="Training pairs of two different people.")
@click.option("--heldout", type=click.IntRange(2), default=100,
              help="Identities with 2+ photos held out of training (evaluation only).")
@click.option("--seed", type=int, default=0, help="Seed of the held-out draw and of the pairing.")
@click.option("--shard-size", type=click.IntRange(1), default=2000, help="Pairs per TFRecord shard.")
@click.option("--workers", type=click.IntRange(1), default=1, help="Processes.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def pairs(data, output, count, heldout, seed, shard_size, workers, no_progress):
    """Pair aligned faces of different people with a landmark-swap teacher image (needs the eval extra: dlib)."""
    from clipswap.facedata.pairs import build_pairs

    try:
        manifest = build_pairs(data, output, count=count, heldout=heldout, seed=seed, shard_size=shard_size,
                               workers=workers, progress=not no_progress)
    except ClipswapError as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"wrote {manifest['pairs']} pairs of {manifest['training_identities']} training identities in "
               f"{manifest['seconds']:.1f} s to {output}/shards")
    click.echo(f"  held out   {len(manifest['heldout_identities'])} identities ({manifest['heldout_faces']} faces); "
               f"evaluation pairs in {output}/heldout_pairs.tsv")
    click.echo(f"  left out   {manifest['faces_without_landmarks']} faces without landmarks, "
               f"{manifest['pairs_without_teacher']} pairs without a teacher")
