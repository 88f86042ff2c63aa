"""`clipswap info`: parameters and MACs of every component of a preset or checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import click

from clipswap.atomic import write_text_atomic
from clipswap.config import PRESETS, get_preset


def _config_of_checkpoint(path: str):
    from clipswap.checkpoints.errors import CheckpointError
    from clipswap.checkpoints.native import read_manifest, sha256_of

    if path.lower().endswith(".h5"):
        from clipswap.checkpoints.generator_h5 import infer_generator_config
        from clipswap.checkpoints.keras2_h5 import read_keras2_h5

        return infer_generator_config(read_keras2_h5(path, "generator checkpoint"))
    manifest, config, weights = read_manifest(path)
    # The table needs only the configuration, but a checkpoint that would not load must not be reported as fine.
    if not weights.is_file():
        raise CheckpointError(f"the weights file {weights} of {path} does not exist; restore it or re-export")
    if sha256_of(weights) != manifest["sha256"]:
        raise CheckpointError(f"{weights} does not match the SHA-256 in its manifest: the file was changed, "
                              "truncated or replaced; restore it or re-export the checkpoint")
    return config


@click.command("info")
@click.option("--preset", type=click.Choice(sorted(PRESETS)), default=None, help="A named configuration.")
@click.option("--checkpoint", type=click.Path(dir_okay=False), default=None, help="A generator .h5, .keras or .json.")
@click.option("--no-detector", is_flag=True, help="Skip RetinaFace (faster).")
@click.option(
    "--json", "json_path", type=click.Path(dir_okay=False), default=None, help="Also write the table as JSON."
)
def info(preset, checkpoint, no_detector, json_path):
    """Print every component's parameters and MACs, their sums and the paper's 174.23 M / 53.56 GMACs."""
    from clipswap.atomic import check_writable_dir
    from clipswap.errors import ClipswapError
    from clipswap.models.inventory import PAPER_GMACS, PAPER_PARAMS, build_inventory, reconciliation_rows

    if (preset is None) == (checkpoint is None):
        raise click.UsageError("give exactly one of --preset NAME or --checkpoint PATH")
    try:
        if json_path:
            check_writable_dir(Path(json_path).absolute().parent)  # before the networks are built
        config = get_preset(preset).model if preset else _config_of_checkpoint(checkpoint)
    except ClipswapError as error:
        raise click.ClickException(str(error)) from error
    inventory = build_inventory(config, detector=not no_detector)
    source = f"preset {preset}" if preset else f"checkpoint {checkpoint}"
    click.echo(f"clipswap components for {source}")
    click.echo(f"  {config}")
    header = f"{'component':<44} {'input':<22} {'params':>14} {'conv GMACs':>11} {'dense GMACs':>12} {'GMACs':>8}"
    click.echo(header)
    click.echo("-" * len(header))
    for cost in inventory.components.values():
        click.echo(
            f"{cost.name:<44} {cost.input_desc:<22} {cost.params:>14,} {cost.conv_macs / 1e9:>11.3f} "
            f"{cost.dense_macs / 1e9:>12.4f} {cost.macs / 1e9:>8.3f}"
        )
    click.echo("-" * len(header))
    total_keys = [k for k in inventory.components if k != "detector"]
    params, macs = inventory.total(total_keys)
    click.echo(
        f"{'sum of training components (all but detector)':<67} {params:>14,} {'':>11} {'':>12} {macs / 1e9:>8.3f}"
    )
    click.echo(f"{'paper, Table I (ClipSwap)':<67} {int(PAPER_PARAMS):>14,} {'':>11} {'':>12} {PAPER_GMACS:>8.2f}")
    click.echo("")
    click.echo("Reconciliation with the paper's Table I:")
    rows = reconciliation_rows(inventory)
    for label, row_params, row_macs in rows:
        click.echo(
            f"  {label:<64} {row_params / 1e6:>8.2f} M ({(row_params / PAPER_PARAMS - 1) * 100:+6.2f} %)  "
            f"{row_macs / 1e9:>6.2f} GMACs ({(row_macs / 1e9 / PAPER_GMACS - 1) * 100:+6.1f} %)"
        )
    click.echo("  No combination hits both figures; the paper does not say what it counted.")
    if json_path:
        payload = {
            **inventory.to_dict(),
            "sum_training": {"params": params, "macs": macs},
            "paper": {"params": PAPER_PARAMS, "gmacs": PAPER_GMACS},
            "reconciliation": [{"hypothesis": r[0], "params": r[1], "macs": r[2]} for r in rows],
        }
        try:
            write_text_atomic(json_path, json.dumps(payload, indent=2) + "\n")
        except ClipswapError as error:
            raise click.ClickException(str(error)) from error
