"""`clipswap swap`: put the source face's identity onto the faces of a target image or video."""

from __future__ import annotations

from pathlib import Path

import click

from clipswap.commands.params import FiniteFloatRange, LiveChoice, model_files_option
from clipswap.errors import ClipswapError
from clipswap.inference.selection import DEFAULT_SIMILARITY, FaceSelection
from clipswap.options import (
    BLEND_KINDS,
    COLOR_CORRECTIONS,
    DETECTORS,
    PRECISIONS,
    RUNTIMES,
    SMOOTH_BETA,
    SMOOTH_MIN_CUTOFF,
)

_PATH = click.Path(dir_okay=False, path_type=Path)
_FILE_OR_FOLDER = click.Path(path_type=Path)


def _parse_map(ctx, param, values) -> tuple[tuple[Path, Path], ...]:
    """--map REF=SRC values -> ((REF, SRC), ...). A path may hold '=' itself: the split that names two existing
    files wins, else the first '='."""
    pairs = []
    for value in values:
        cuts = [i for i, char in enumerate(value) if char == "="]
        if not cuts or any(not part for part in (value[: cuts[0]], value[cuts[-1] + 1:])):
            raise click.BadParameter(f"{value!r} is not REF=SRC (a reference face image, '=', a source image)")
        splits = [(Path(value[:i]), Path(value[i + 1:])) for i in cuts]
        pairs.append(next((pair for pair in splits if pair[0].is_file() and pair[1].is_file()), splits[0]))
    return tuple(pairs)


@click.command("swap")
@click.option("--source", "-s", default=None, type=_PATH,
              help="Image of the identity to put in (with --map: for the faces no reference matches).")
@click.option("--target", "-t", required=True, type=_FILE_OR_FOLDER,
              help="Image or video (mp4, mov, mkv, webm, gif) to edit, or a folder of them.")
@click.option("--output", "-o", required=True, type=_FILE_OR_FOLDER,
              help="Result file, same kind as the target; for a target folder, the folder of results (files whose "
                   "result is already there are skipped, so a stopped run resumes).")
@click.option("--model", default="auto", metavar="PATH|auto|demo|landmarks|warp",
              help="Generator: a published .h5 or our .keras (+ .json manifest); auto: pretrained_ckpts/ClipSwap.h5 "
                   "(or clipswap/ClipSwap.h5) when present, else the shipped demo generator; demo: that one; "
                   "landmarks: the classical 68-point warp (no network, needs the eval extra); warp: the source "
                   "warped onto the target's 68 landmarks and pasted (no network; needs the eval extra).")
@click.option("--arcface", type=_PATH, default=None,
              help="ArcFace-Res50.h5 for ArcFace-trained generators. Default: pretrained_ckpts/.")
@click.option("--retinaface", type=_PATH, default=None, help="RetinaFace-Res50.h5. Default: pretrained_ckpts/.")
@click.option("--clip-preset", default=None, help="Local keras-hub CLIP preset, for generators that take CLIP.")
@click.option("--detector", type=LiveChoice(DETECTORS), default="auto",
              help="auto: RetinaFace when its file is present, else the offline YuNet.")
@click.option("--det-threshold", type=FiniteFloatRange(0.0, 1.0, max_open=True), default=0.5,
              help="Minimum face score.")
@click.option("--faces", default="all", type=FaceSelection.check, metavar="all|largest|N",
              help="Which target faces: all, largest, or N (the N largest).")
@click.option("--source-face", type=click.IntRange(1), default=None, metavar="N",
              help="A source photo with several faces: use the N-th from the left (default: the most confident, "
                   "named in a warning).")
@click.option("--reference-face", type=_PATH, default=None,
              help="Swap only the target faces of this person (multi-person scenes).")
@click.option("--map", "mapping", multiple=True, callback=_parse_map, metavar="REF=SRC",
              help="Several people: faces like REF get SRC's identity (repeatable; needs a generator model).")
@click.option("--similarity", type=FiniteFloatRange(-1.0, 1.0), default=DEFAULT_SIMILARITY,
              help="Cosine similarity to the reference face needed to swap a face.")
@click.option("--blend", type=click.Choice(BLEND_KINDS), default="published",
              help="published: the release's fixed feathered mask; landmarks: soft mask from the face outline; "
                   "poisson: Poisson blending inside the face outline.")
@click.option("--color-correction", type=click.Choice(COLOR_CORRECTIONS), default="none",
              help="reinhard: match the generated face's colour (L*a*b* mean and spread) to the target face's.")
@click.option("--detail", type=FiniteFloatRange(0.0, 1.0), default=None,
              help="How much of the target's own fine detail (finer than the generator's crop can hold over a "
                   "larger face) goes into the pasted face; not with --blend poisson [default: the checkpoint "
                   "manifest's paste_detail, 0 for every model shipped today].")
@click.option("--sharpen", type=FiniteFloatRange(0.0, 2.0), default=None,
              help="Amount of an unsharp mask on the generated face before it is pasted: crisper edges, no detail "
                   "the generator's crop never had; not with --blend poisson [default: the checkpoint manifest's "
                   "paste_sharpen, 0 for every model shipped today].")
@click.option("--mirror-source/--no-mirror-source", default=True, show_default=True,
              help="A generator that reads the source's face (not the demo's warp): give it the source's face "
                   "mirrored for a target face that looks to the other side, which keeps the target's head turn "
                   "better (on by default).")
@click.option("--occlusion-mask/--no-occlusion-mask", default=False, show_default=True,
              help="Keep what covers a target face (sunglasses, a microphone, a hand), as the occluder network finds "
                   "it, in front of the swap; not for --model landmarks. Off by default: the network learned from "
                   "drawn occluders and may call part of a clean face covered.")
@click.option("--occluder", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="The occluder network's .keras file (written with its .json by `clipswap train-occluder`) "
                   "[default: pretrained_ckpts/demo/occluder.keras].")
@click.option("--feather", type=FiniteFloatRange(0.0, 64.0), default=None,
              help="Mask blur sigma in crop pixels [default: 7 at 256, the release's, scaled with the crop].")
@click.option("--precision", type=click.Choice(PRECISIONS), default="fp32", help="Generator arithmetic.")
@click.option("--runtime", type=LiveChoice(RUNTIMES), default="auto",
              help="Generator engine: auto = TensorFlow on a GPU, else OpenVINO when installed (the export extra), "
                   "else TensorFlow (also when OpenVINO cannot convert the generator). An exported runtime converts "
                   "once and caches in the user's cache folder.")
@click.option("--no-progress", is_flag=True, help="Hide the video progress bar.")
@click.option("--no-tracking", is_flag=True,
              help="Video: detect every frame on its own (default: faces are tracked from frame to frame, a missed "
                   "detection is bridged, and a face keeps its reference match and --map source).")
@click.option("--no-smoothing", is_flag=True, help="Video: track faces but use their raw landmarks.")
@click.option("--smooth-min-cutoff", type=FiniteFloatRange(min=0.0, min_open=True), default=SMOOTH_MIN_CUTOFF,
              help="Video: One Euro cutoff (Hz) of a still face's landmarks; lower = steadier, more lag.")
@click.option("--smooth-beta", type=FiniteFloatRange(min=0.0), default=SMOOTH_BETA,
              help="Video: One Euro speed coefficient (per face size per second); higher = less lag in motion.")
@click.option("--allow-damaged", is_flag=True,
              help="Video: swap a target that ffmpeg reports damaged (the count of decoding errors is reported) "
                   "instead of refusing it.")
@click.option("--no-watermark", is_flag=True,
              help="Leave out the invisible watermark (on by default: it marks the output as a swap even after "
                   "re-encoding strips the metadata label; `clipswap verify` reads it).")
@model_files_option
def swap(source, target, output, model, arcface, retinaface, clip_preset, detector, det_threshold, faces,
         source_face, reference_face, mapping, similarity, blend, color_correction, detail, sharpen, mirror_source,
         occlusion_mask, occluder, feather, precision, runtime, no_progress, no_tracking, no_smoothing,
         smooth_min_cutoff, smooth_beta, allow_damaged, no_watermark, model_files):
    """Swap the face of SOURCE onto every selected face of TARGET and write OUTPUT (labelled as synthetic in its
    metadata and by an invisible watermark in its pixels).

    \b
    Example:
      clipswap swap --source me.jpg --target group.jpg --output out.png --faces largest
      clipswap swap -s me.jpg -t clip.mp4 -o out.mp4 --model runs/g.keras --precision bf16
      clipswap swap -s me.jpg -t photo.jpg -o out.png --model landmarks
      clipswap swap -t couple.jpg -o out.png --map her.jpg=me.jpg --map him.jpg=you.jpg
      clipswap swap -s me.jpg -t photos/ -o swapped/

    Prints one line naming the generator, identity encoder and detector used, then what was written.
    """
    from clipswap.inference.pipeline import SwapRequest, run_swap
    from clipswap.registry import given_files

    if source is None and not mapping:
        raise click.UsageError("give --source IMAGE, or --map REF=SRC (repeatable)")
    if source_face is not None and source is None:
        raise click.UsageError("--source-face picks a face of the --source image, and none was given: add --source "
                               "IMAGE, or drop --source-face (the --map sources use their most confident face)")
    if detail and blend == "poisson":
        raise click.UsageError("--detail adds the target's detail to a mask-blended paste, and --blend poisson "
                               "solves the face region anew: drop one of them")
    if sharpen and blend == "poisson":
        raise click.UsageError("--sharpen sharpens the generated face of a mask-blended paste, and --blend poisson "
                               "solves the face region anew: drop one of them")
    if occluder is not None and not occlusion_mask:
        raise click.UsageError("--occluder names the network of the occlusion mask, which is off: add "
                               "--occlusion-mask, or drop --occluder")
    if mapping and model == "landmarks":
        raise click.UsageError("--map needs a generator model (the demo, a .keras or .h5), not --model landmarks")
    request = SwapRequest(
        source=source, target=target, output=output, model=model,
        files={**given_files(model_files), **given_files({"arcface": arcface, "retinaface": retinaface})},
        detector=detector, det_threshold=det_threshold, faces=faces, source_face=source_face,
        reference_face=reference_face,
        mapping=mapping, similarity=similarity, blend=blend, feather=feather, precision=precision, runtime=runtime,
        color_correction=color_correction, detail=detail, sharpen=sharpen, clip_preset=clip_preset,
        mirror_source=mirror_source, occlusion_mask=occlusion_mask, occluder=occluder,
        progress=not no_progress,
        watermark=not no_watermark, tracking=not no_tracking, smoothing=not no_smoothing,
        smooth_min_cutoff=smooth_min_cutoff, smooth_beta=smooth_beta, allow_damaged=allow_damaged,
    )
    try:
        summary = run_swap(request, announce=click.echo)
    except ClipswapError as error:
        raise click.ClickException(str(error)) from error
    click.echo(summary.describe())
    failures = getattr(summary, "failures", None)
    if failures:
        raise click.ClickException(f"{len(failures)} of {summary.files} file(s) failed (listed above); fix them and "
                                   "re-run the same command: the files already written are skipped")
