"""`clipswap evaluate`: the paper's metrics for source/target/output triples, beside the paper's tables."""

from __future__ import annotations

import shutil
from pathlib import Path

import click

from clipswap.commands.params import FiniteFloatRange
from clipswap.errors import ClipswapError
from clipswap.options import DETECTORS, RUNTIMES

#: Per-pair metrics; a run in which none of them scored a single pair failed.
SCORED_METRICS = ("id_similarity", "ssim", "pose_error", "expression_error")


def _remove_if_created(created: Path | None) -> None:
    if created is not None and created.is_dir():
        shutil.rmtree(created)


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
                   "classical 68-point warp baseline (no network); warp: the demo generator's warped input alone (the "
                   "control of what the demo network adds).")
@click.option("--arcface", type=click.Path(exists=True, dir_okay=False), default=None,
              help="ArcFace-Res50.h5 for generators conditioned on ArcFace (default: pretrained_ckpts/).")
@click.option("--clip-preset", default=None, help="keras-hub CLIP preset for generators that take a CLIP embedding.")
@click.option("--detector", type=click.Choice(DETECTORS), default="auto",
              help="Detector used to produce swaps (evaluation itself always uses YuNet).")
@click.option("--runtime", type=click.Choice(RUNTIMES), default="auto",
              help="Generator engine for the swaps --model makes (as `clipswap swap --runtime`).")
@click.option("--detail", type=FiniteFloatRange(0.0, 1.0), default=None,
              help="The target's fine detail in the pasted face, as `clipswap swap --detail` [default: the model's].")
@click.option("--identity-model", default="auto", show_default=True,
              help="Identity model for ID metrics: auto, sface, dlib, or an ArcFace/CosFace .h5. auto = sface, or dlib "
                   "when the --model generator was trained with SFace; the training encoder's family is refused.")
@click.option("--allow-training-identity-model", is_flag=True,
              help="Accept an --identity-model of the generator's training encoder family (the report notes it).")
@click.option("--fid-weights", type=click.Path(exists=True, dir_okay=False), default=None,
              help="InceptionV3 (no top) weights file; FID is skipped without it.")
@click.option("--no-progress", is_flag=True, help="Hide progress bars.")
def evaluate(pairs_file, protocol, input_dir, count, frames_per_video, seed, output_dir, model, arcface, clip_preset,
             detector, runtime, detail, identity_model, allow_training_identity_model, fid_weights, no_progress):
    """Compute ID retrieval/similarity, pose, expression, SSIM, PSNR, FID and cost; write metrics.json and .md."""
    from clipswap.atomic import ensure_writable_dir, outermost_missing
    from clipswap.evaluation.identity_models import (
        choose_identity_model,
        load_identity_model,
    )
    from clipswap.evaluation.protocols import ffpp_protocol, sample_protocol
    from clipswap.evaluation.runner import EvaluationInputError, run_evaluation

    if (pairs_file is None) == (protocol is None):
        raise click.UsageError("give either --pairs FILE or --protocol ffpp|sample with --input DIR")
    if protocol is not None and input_dir is None:
        raise click.UsageError("--protocol needs --input DIR")
    # A folder this run creates is removed again when the run fails, so a failed evaluate leaves nothing behind; a
    # folder that existed before is never removed.
    created = outermost_missing(output_dir)
    try:
        output = ensure_writable_dir(output_dir)
        swapper = cost = checkpoint = chosen = None
        run_name = "given outputs"
        if model is not None:
            from clipswap.checkpoints.native import load_any_generator
            from clipswap.inference.choice import resolve_model

            chosen = resolve_model(model)
            checkpoint = load_any_generator(chosen.path) if chosen.is_generator else None
            run_name = chosen.name
        # The rule "evaluate with another identity model than the one used in training" is checked, and the model
        # loaded, before frames are extracted, the generator is built or any swap is made.
        training_encoder = None if checkpoint is None else checkpoint.config.identity_encoder
        choice = choose_identity_model(identity_model, training_encoder, allow_training_identity_model,
                                       untrained="swaps given" if chosen is None else
                                       "warp baseline" if chosen.kind == "warp" else "landmark baseline")
        identity = load_identity_model(choice.spec)
        description = None
        if protocol == "ffpp":
            pairs_file = ffpp_protocol(input_dir, output, frames_per_video=frames_per_video, seed=seed)
            description = f"ffpp: {frames_per_video} frames per video of {input_dir}, seed {seed}"
        elif protocol == "sample":
            pairs_file = sample_protocol(input_dir, output, count, seed=seed)
            description = f"sample: {count} pairs from {input_dir}, seed {seed}"
        pairs, videos = _split_videos(pairs_file)
        if not pairs and not videos:
            raise EvaluationInputError(f"{pairs_file} lists no pairs to evaluate")
        if videos:
            video_report = _evaluate_videos(videos, output, model, arcface, clip_preset, detector, runtime,
                                            no_progress)
        if chosen is not None and pairs:
            swapper, cost, line = _swapper(chosen, checkpoint, arcface, clip_preset, detector, runtime, detail)
            click.echo(line)
        metrics = None
        if pairs:
            metrics = run_evaluation(
                pairs, output, identity_model=identity, fid_weights=fid_weights, swap_fn=swapper,
                progress=not no_progress, cost=cost, protocol=description, run_name=run_name,
                identity_note=choice.note, pairs_file=pairs_file,
            )
    except ClipswapError as error:
        # Only the errors that describe the user's inputs; anything else is a bug (the CLI's guard of last resort).
        _remove_if_created(created)
        raise click.ClickException(str(error)) from error
    if videos:
        click.echo(video_report)
        click.echo(f"wrote {output / 'video_metrics.json'} and {output / 'video_metrics.md'} ({len(videos)} videos)")
    if metrics is None:
        return
    scored = [metrics["aggregate"].get(name, {}).get("n") for name in SCORED_METRICS]
    if not any(scored):
        # Every pair failed (missing files, no face anywhere): a report of nothing is not a result (issue 11 item 8).
        failures = ", ".join(f"{count} {reason.replace('_', ' ')}" for reason, count in metrics["failures"].items())
        _remove_if_created(created)
        raise click.ClickException(
            f"none of the {len(metrics.get('pairs', []))} pairs could be scored ({failures or 'no face found'}); "
            "check the paths in the pairs file and that each image shows a face"
        )
    click.echo((output / "metrics.md").read_text(encoding="utf-8"))
    click.echo(f"wrote {output / 'metrics.json'} and {output / 'metrics.md'} ({len(metrics.get('pairs', []))} pairs)")


def _split_videos(pairs_file):
    """(image pairs, video pairs) of a pairs file: a pair whose target is a video is scored for stability."""
    from clipswap.evaluation.pairs import read_pairs
    from clipswap.media.common import VIDEO_SUFFIXES

    pairs = read_pairs(pairs_file)
    videos = [pair for pair in pairs if pair.target.suffix.lower() in VIDEO_SUFFIXES]
    return [pair for pair in pairs if pair.target.suffix.lower() not in VIDEO_SUFFIXES], videos


def _evaluate_videos(videos, output: Path, model, arcface, clip_preset, detector, runtime, no_progress) -> str:
    """Flicker measures of every video pair (clipswap.evaluation.flicker), its missing swaps made with --model
    (largest face, tracking and smoothing on, as `clipswap swap` does, but without the watermark); writes
    video_metrics.json/.md and returns the Markdown table."""
    import json

    from clipswap.atomic import write_text_atomic
    from clipswap.evaluation.flicker import stability_table, video_stability
    from clipswap.evaluation.runner import EvaluationInputError
    from clipswap.inference.pipeline import SwapRequest, run_swap

    rows, records = [], []
    for number, pair in enumerate(videos, start=1):
        swapped = pair.output
        if swapped is None:
            if model is None:
                raise EvaluationInputError(
                    f"video pair {number} ({pair.target}) has no swapped video: give it in the pairs file's output "
                    "column, or --model to make it")
            swapped = output / "videos" / f"{number:05d}{pair.target.suffix.lower()}"
            run_swap(SwapRequest(source=pair.source, target=pair.target, output=swapped, model=model, arcface=arcface,
                                 clip_preset=clip_preset, detector=detector, faces="largest", runtime=runtime,
                                 progress=not no_progress, watermark=False))  # scored as generated, as images are
        report = video_stability(pair.target, swapped)
        rows.append((f"{pair.target.name} -> {swapped.name}", report))
        records.append({"source": str(pair.source), "target": str(pair.target), "output": str(swapped), **report})
    table = stability_table(rows)
    write_text_atomic(output / "video_metrics.json", json.dumps({"videos": records}, indent=2) + "\n")
    write_text_atomic(output / "video_metrics.md", "# Video stability (clipswap.evaluation.flicker)\n\n" + table)
    return table


def _swapper(chosen, checkpoint, arcface: str | None, clip_preset: str | None, detector: str, runtime: str,
             detail: float | None = None):
    """(PairSwapper over the chosen model's swapper, its cost, the line naming the models), largest face only."""
    from clipswap.evaluation.swapping import FaceSwapperPairs
    from clipswap.inference.choice import LANDMARKS_LABEL, WARP_LABEL
    from clipswap.inference.pipeline import swapper_for
    from clipswap.inference.selection import FaceSelection
    from clipswap.models.cost import model_cost

    swapper, line = swapper_for(chosen, checkpoint, detector=detector, arcface=arcface, clip_preset=clip_preset,
                                selection=FaceSelection.parse("largest"), runtime=runtime, detail=detail)
    if chosen.kind == "warp":
        timing = ("one FaceSwapper.swap_frame call with the network replaced by its warped input: target detection, "
                  "alignment, 68 landmarks, warp and paste-back")
        return FaceSwapperPairs(swapper, timing), {"params": 0, "macs": None, "name": WARP_LABEL}, line
    if checkpoint is None:
        timing = "one LandmarkSwapper.swap_frame call: target detection, 68 landmarks, warp and Poisson blending"
        return FaceSwapperPairs(swapper, timing), {"params": 0, "macs": None, "name": LANDMARKS_LABEL}, line
    size = checkpoint.config.image_size
    shapes = [tuple(tensor.shape[1:]) for tensor in checkpoint.model.inputs]  # target, identity (, source)
    cost = model_cost("generator", checkpoint.model, shapes, f"{size}px")
    return FaceSwapperPairs(swapper), cost, line
