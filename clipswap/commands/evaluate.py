"""`clipswap evaluate`: the paper's metrics for source/target/output triples, beside the paper's tables.

The options become a clipswap.evaluation.job.EvaluationJob and `--model` an EvaluatedModel; the job does the work.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import click

from clipswap.commands.params import FiniteFloatRange, LiveChoice, model_files_option
from clipswap.errors import ClipswapError
from clipswap.options import DETECTORS, RUNTIMES


@click.command("evaluate")
@click.option("--pairs", "pairs_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Pairs file: 'source target [output] [label]' per line ('-' output: produce it with --model).")
@click.option("--protocol", type=click.Choice(["ffpp", "sample"]), default=None,
              help="Build the pairs: ffpp = seeded frames of each video of --input; sample = seeded image pairs.")
@click.option("--input", "input_dir", type=click.Path(exists=True, file_okay=False), default=None,
              help="Folder of videos (ffpp) or images (sample) for --protocol.")
@click.option("--count", type=click.IntRange(min=2), default=100, help="Pairs drawn by --protocol sample.")
@click.option("--frames-per-video", type=click.IntRange(min=1), default=10, help="Frames per video (ffpp).")
@click.option("--seed", type=int, default=0)
@click.option("--output-dir", required=True, type=click.Path(file_okay=False), help="Where metrics.json/.md go.")
@click.option("--model", default=None, metavar="PATH|auto|demo|landmarks|warp",
              help="What produces the missing outputs: a generator (.h5, .keras or .json); auto: the published "
                   "ClipSwap.h5 when present, else the shipped demo generator; demo: that one; landmarks: the "
                   "classical 68-point warp baseline (no network); warp: the source warped onto the target's 68 "
                   "landmarks and pasted (no network).")
@click.option("--arcface", type=click.Path(exists=True, dir_okay=False), default=None,
              help="ArcFace-Res50.h5 for generators conditioned on ArcFace (default: pretrained_ckpts/).")
@click.option("--clip-preset", default=None, help="keras-hub CLIP preset for generators that take a CLIP embedding.")
@click.option("--detector", type=LiveChoice(DETECTORS), default="auto",
              help="Detector used to produce swaps (evaluation itself always uses YuNet).")
@click.option("--runtime", type=LiveChoice(RUNTIMES), default="auto",
              help="Generator engine for the swaps --model makes (as `clipswap swap --runtime`).")
@click.option("--detail", type=FiniteFloatRange(0.0, 1.0), default=None,
              help="The target's fine detail in the pasted face, as `clipswap swap --detail` [default: the model's].")
@click.option("--sharpen", type=FiniteFloatRange(0.0, 2.0), default=None,
              help="Unsharp mask on the generated face, as `clipswap swap --sharpen` [default: the model's].")
@click.option("--mirror-source/--no-mirror-source", default=True, show_default=True,
              help="Mirror the source's face for a target face turned the other way, as `clipswap swap "
                   "--mirror-source`.")
@click.option("--occlusion-mask/--no-occlusion-mask", default=False, show_default=True,
              help="Keep what covers a target face in front of the swap, as `clipswap swap --occlusion-mask`.")
@click.option("--occluder", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="The occluder network's .keras file, as `clipswap swap --occluder`.")
@click.option("--identity-model", default="auto", show_default=True,
              help="Identity model for ID metrics: auto, sface, dlib, or an ArcFace/CosFace .h5. auto = sface, or dlib "
                   "when the --model generator was trained with SFace; the training encoder's family is refused.")
@click.option("--allow-training-identity-model", is_flag=True,
              help="Accept an --identity-model of the generator's training encoder family (the report notes it).")
@click.option("--fid-weights", type=click.Path(exists=True, dir_okay=False), default=None,
              help="InceptionV3 (no top) weights file; FID is skipped without it.")
@click.option("--no-progress", is_flag=True, help="Hide progress bars.")
@model_files_option
def evaluate(pairs_file, protocol, input_dir, count, frames_per_video, seed, output_dir, model, arcface, clip_preset,
             detector, runtime, detail, sharpen, mirror_source, occlusion_mask, occluder, identity_model,
             allow_training_identity_model, fid_weights, no_progress, model_files):
    """Compute ID retrieval/similarity, pose, expression, SSIM, PSNR, FID and cost; write metrics.json and .md."""
    from clipswap.evaluation.job import EvaluationJob, run_evaluation_job

    if (pairs_file is None) == (protocol is None):
        raise click.UsageError("give either --pairs FILE or --protocol ffpp|sample with --input DIR")
    if occluder is not None and not occlusion_mask:
        raise click.UsageError("--occluder names the network of the occlusion mask, which is off: add "
                               "--occlusion-mask, or drop --occluder")
    if protocol is not None and input_dir is None:
        raise click.UsageError("--protocol needs --input DIR")
    job = EvaluationJob(
        output_dir=Path(output_dir), pairs_file=None if pairs_file is None else Path(pairs_file), protocol=protocol,
        input_dir=None if input_dir is None else Path(input_dir), count=count, frames_per_video=frames_per_video,
        seed=seed, identity_model=identity_model, allow_training_identity_model=allow_training_identity_model,
        fid_weights=fid_weights, progress=not no_progress,
    )
    load_model = None
    if model is not None:
        from clipswap.inference.evaluated_model import EvaluatedModel
        from clipswap.registry import given_files

        files = {**given_files(model_files), **given_files({"arcface": arcface})}
        load_model = partial(EvaluatedModel.load, model, files=files, clip_preset=clip_preset, detector=detector,
                             runtime=runtime, detail=detail, sharpen=sharpen, mirror_source=mirror_source,
                             occlusion_mask=occlusion_mask, occluder=occluder)
    try:
        run_evaluation_job(job, load_model, announce=click.echo)
    except ClipswapError as error:
        # Only the errors that describe the user's inputs; anything else is a bug (the CLI's guard of last resort).
        raise click.ClickException(str(error)) from error
