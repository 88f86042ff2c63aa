"""`clipswap align`: detect, align and shard a folder of face photos for `clipswap train`."""

from __future__ import annotations

import shutil
from pathlib import Path

import click

from clipswap.commands.params import FiniteFloatRange, LiveChoice, model_files_option
from clipswap.errors import ClipswapError
from clipswap.registry import given_files
from clipswap.registry.detectors import DETECTORS

_DIR = click.Path(file_okay=False)


@click.command("align")
@click.option("--input", "input_dir", type=_DIR, required=True,
              help="Identity subfolders (VGGFace2/LFW: identity = subfolder) or a flat folder (identity = file stem).")
@click.option("--output", "output_dir", type=_DIR, required=True,
              help="Gets aligned/, shards/, identities.json, align_manifest.json; re-running resumes.")
@click.option("--size", type=click.IntRange(16), default=256, help="Aligned crop side in pixels.")
@click.option("--min-size", type=click.IntRange(1), default=64, help="Skip photos whose shorter side is below this.")
@click.option("--workers", type=click.IntRange(1), default=1, help="Processes, each with its own detector.")
@click.option("--detector", type=LiveChoice(DETECTORS), default="yunet",
              help="yunet is embedded (offline); retinaface needs RetinaFace-Res50.h5.")
@click.option("--retinaface", type=click.Path(dir_okay=False), default=None,
              help="RetinaFace-Res50.h5 for --detector retinaface. Default: pretrained_ckpts/.")
@click.option("--det-threshold", type=FiniteFloatRange(0.0, 1.0, max_open=True), default=0.5,
              help="Minimum face score.")
@click.option("--shard-size", type=click.IntRange(1), default=1000, help="Records per TFRecord shard.")
@click.option("--seed", type=int, default=0, help="Seed of the shuffled record order in the shards.")
@click.option("--format", "image_format", type=click.Choice(["png", "jpg"]), default="png",
              help="Crop file format: png is lossless; jpg (quality 95) is about 5x smaller.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@model_files_option
def align(input_dir, output_dir, size, min_size, workers, detector, retinaface, det_threshold, shard_size, seed,
          image_format, no_progress, model_files):
    """Align the largest face of every photo to the ArcFace template and write TFRecord shards for training."""
    from clipswap.facedata.align_dataset import align_dataset

    if retinaface is not None and DETECTORS.get(detector).file_key != "retinaface":
        raise click.UsageError("--retinaface is only used with --detector retinaface")
    files = {**given_files(model_files), **given_files({"retinaface": retinaface})}
    fresh_output = not Path(output_dir).exists()
    try:
        report = align_dataset(
            input_dir, output_dir, size=size, min_size=min_size, workers=workers, detector=detector,
            det_threshold=det_threshold, files=files, shard_size=shard_size, seed=seed,
            image_format=image_format, progress=not no_progress,
        )
    except ClipswapError as error:
        raise click.ClickException(str(error)) from error
    skipped = report["skipped"]
    click.echo(f"aligned {report['images']} files in {report['seconds']:.1f} s "
               f"({report['processed']} processed, {report['reused']} reused from an earlier run)")
    click.echo(f"  kept       {report['kept']} faces of {report['identities']} identities")
    click.echo(f"  skipped    {sum(skipped.values())}: {skipped['too_small']} too small (< {min_size} px), "
               f"{skipped['unreadable']} unreadable, {skipped['no_face']} without a face")
    click.echo(f"  shards     {len(report['shards'])} files, {report['records']} records in {output_dir}/shards")
    if report["kept"] == 0:
        # A run that kept nothing has nothing to train on: say so and fail, after the report; an output folder this
        # run created holds nothing worth resuming, so it goes too.
        if fresh_output:
            shutil.rmtree(output_dir)
        raise click.ClickException(
            f"no face was kept from the {report['images']} files of {input_dir}: check that they are photos of faces "
            f"at least {min_size} px wide (--min-size), or try --detector retinaface"
        )
