"""`clipswap pack`: the aligned faces of `clipswap align` shards as a face pack (JPEG crops and a NumPy index), the
training data `clipswap train --backend jax` reads without TensorFlow."""

from __future__ import annotations

import click

from clipswap.errors import ClipswapError

_DIR = click.Path(file_okay=False)


@click.command("pack")
@click.option("--data", type=click.Path(file_okay=False, exists=True), required=True,
              help="A `clipswap align` output folder (or its shards/).")
@click.option("--output", type=_DIR, required=True, help="The pack folder to create: faces.bin, index.npz, pack.json.")
@click.option("--quality", type=click.IntRange(1, 100), default=85, show_default=True,
              help="JPEG quality of the re-encoded crops (85: lfw_train at 128 px in 42 MiB).")
@click.option("--size", type=click.IntRange(min=8), default=None,
              help="Shrink the crops to SIZE px (a preset's image_size, e.g. 64 for tiny): a pack that travels in "
                   "less. [default: the shards' size]")
def pack(data, output, quality, size):
    """Pack aligned faces for training without TensorFlow (clipswap train --backend jax --data PACK)."""
    from clipswap.facedata.pack import write_pack

    try:
        manifest = write_pack(data, output, quality, size)
    except ClipswapError as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"packed {manifest['faces']} faces of {manifest['identities']} identities ({manifest['shards']} "
               f"shards, {manifest['image_size']} px) into {output}: {manifest['bytes'] / 2**20:.1f} MiB of JPEG "
               f"at quality {manifest['quality']}, mean error {manifest['jpeg_mean_abs_error']:.2f} grey levels")
