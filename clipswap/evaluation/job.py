"""The `clipswap evaluate` job: pairs (a pairs file, or built by a protocol) -> identity model chosen against the
generator's training encoder -> missing swaps made -> per-pair metrics (runner) and video stability (flicker) ->
reports in the output folder.

The model that makes the missing swaps comes in through SwapModel, because evaluation/ sits below the swap pipeline
(clipswap.inference builds it: clipswap.inference.evaluated_model). Lines for the user go to an `announce` callback;
the library prints nothing. A run that fails on its inputs removes the output folder it created, never one that
existed before.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from clipswap.errors import ClipswapError
from clipswap.evaluation import runner
from clipswap.evaluation.pairs import Pair
from clipswap.evaluation.runner import EvaluationInputError
from clipswap.evaluation.swapping import PairSwapper

#: Per-pair metrics; a run in which none of them scored a single pair failed.
SCORED_METRICS = ("id_similarity", "ssim", "pose_error", "expression_error")
#: The run's name in the report when the outputs are given rather than made.
GIVEN_OUTPUTS = "given outputs"


class SwapModel(Protocol):
    """What the job needs of the model that makes the missing swaps (`--model`).

    Attributes:
        name: the run's name in the report's tables ("demo", "landmarks", a generator file's name).
        training_encoder: the identity encoder family the generator was trained with ("arcface", "sface"); None for
            a model without one (the landmark and warp baselines), whose evaluation may then use any identity model.
        untrained: why there is no training encoder, for the identity model's note ("landmark baseline").
    """

    name: str
    training_encoder: str | None
    untrained: str

    def pair_swapper(self) -> tuple[PairSwapper, Any, str]:
        """(the swapper of the image pairs, its cost for runner.resolve_cost, the line naming the models used)."""
        ...

    def swap_video(self, source: Path, target: Path, output: Path, progress: bool) -> None:
        """Write the swap of `target` (a video) with the largest face given `source`'s identity to `output`."""
        ...


@dataclass(frozen=True)
class EvaluationJob:
    """The options of one evaluation (those of `clipswap evaluate`).

    Attributes:
        output_dir: where metrics.json/.md, video_metrics.json/.md, produced swaps and protocol pairs go.
        pairs_file: the pairs ('source target [output] [label]' per line); exactly one of it and `protocol`.
        protocol: "ffpp" (seeded frames of each video of `input_dir`) or "sample" (seeded image pairs of it).
        input_dir, count, frames_per_video, seed: the protocol's folder, pair count (sample), frames (ffpp), seed.
        identity_model: "auto", "sface", "dlib" or an ArcFace/CosFace .h5 (identity_models.choose_identity_model).
        allow_training_identity_model: accept an identity model of the generator's training encoder family.
        fid_weights: InceptionV3 (no top) weights file; FID is skipped without it.
        progress: show progress bars.
    """

    output_dir: Path
    pairs_file: Path | None = None
    protocol: str | None = None
    input_dir: Path | None = None
    count: int = 100
    frames_per_video: int = 10
    seed: int = 0
    identity_model: str = "auto"
    allow_training_identity_model: bool = False
    fid_weights: Path | None = None
    progress: bool = True


def _ignore(line: str) -> None:
    """The default `announce`: lines for the user are dropped."""


def run_evaluation_job(job: EvaluationJob, load_model: Callable[[], SwapModel] | None = None,
                       announce: Callable[[str], None] = _ignore) -> dict[str, Any] | None:
    """Run one evaluation and write its reports; returns the metrics of the image pairs (None when the pairs are
    all videos).

    Args:
        job: the options.
        load_model: loads the model that makes the missing swaps, called once the output folder is known to be
            writable; None when every output is given.
        announce: receives, in order, the line naming the models, the video table with the files written, and the
            metrics table with the files written.

    Raises:
        ValueError: neither or both of pairs_file and protocol, or a protocol without input_dir (a caller's bug).
        ClipswapError: the inputs cannot be evaluated (EvaluationInputError: no pairs, a video pair with no swap and
            no model, no pair scored at all), or an error of the model, the identity model or the files; the output
            folder this run created is removed first.
    """
    if (job.pairs_file is None) == (job.protocol is None) or (job.protocol is not None and job.input_dir is None):
        raise ValueError("give either a pairs file, or a protocol with an input folder")
    from clipswap.atomic import outermost_missing

    created = outermost_missing(job.output_dir)
    try:
        return _run(job, load_model, announce)
    except ClipswapError:
        if created is not None and created.is_dir():
            shutil.rmtree(created)
        raise


def _run(job: EvaluationJob, load_model: Callable[[], SwapModel] | None,
         announce: Callable[[str], None]) -> dict[str, Any] | None:
    from clipswap.atomic import ensure_writable_dir
    from clipswap.evaluation.identity_models import choose_identity_model, load_identity_model

    output = ensure_writable_dir(job.output_dir)
    model = None if load_model is None else load_model()
    # The rule "evaluate with another identity model than the one used in training" is checked, and the model
    # loaded, before frames are extracted or any swap is made.
    choice = choose_identity_model(job.identity_model, None if model is None else model.training_encoder,
                                   job.allow_training_identity_model,
                                   untrained="swaps given" if model is None else model.untrained)
    identity = load_identity_model(choice.spec)
    pairs_file, description = _pairs_file(job, output)
    pairs, videos = split_videos(pairs_file)
    if not pairs and not videos:
        raise EvaluationInputError(f"{pairs_file} lists no pairs to evaluate")
    video_table = evaluate_videos(videos, output, model, job.progress) if videos else None
    swapper = cost = None
    if model is not None and pairs:
        swapper, cost, line = model.pair_swapper()
        announce(line)
    metrics = None
    if pairs:
        metrics = runner.run_evaluation(
            pairs, output, identity_model=identity, fid_weights=job.fid_weights, swap_fn=swapper,
            progress=job.progress, cost=cost, protocol=description,
            run_name=GIVEN_OUTPUTS if model is None else model.name, identity_note=choice.note, pairs_file=pairs_file,
        )
    if videos:
        announce(video_table)
        announce(f"wrote {output / 'video_metrics.json'} and {output / 'video_metrics.md'} ({len(videos)} videos)")
    if metrics is None:
        return None
    if not any(metrics["aggregate"].get(name, {}).get("n") for name in SCORED_METRICS):
        # Every pair failed (missing files, no face anywhere): a report of nothing is not a result.
        failures = ", ".join(f"{count} {reason.replace('_', ' ')}" for reason, count in metrics["failures"].items())
        raise EvaluationInputError(
            f"none of the {len(metrics.get('pairs', []))} pairs could be scored ({failures or 'no face found'}); "
            "check the paths in the pairs file and that each image shows a face"
        )
    announce((output / "metrics.md").read_text(encoding="utf-8"))
    announce(f"wrote {output / 'metrics.json'} and {output / 'metrics.md'} ({len(metrics.get('pairs', []))} pairs)")
    return metrics


def _pairs_file(job: EvaluationJob, output: Path) -> tuple[Path, str | None]:
    """(the pairs file to read, the protocol's description for the report); a protocol writes its file into
    `output`."""
    from clipswap.evaluation.protocols import ffpp_protocol, sample_protocol

    if job.protocol == "ffpp":
        return (ffpp_protocol(job.input_dir, output, frames_per_video=job.frames_per_video, seed=job.seed),
                f"ffpp: {job.frames_per_video} frames per video of {job.input_dir}, seed {job.seed}")
    if job.protocol == "sample":
        return (sample_protocol(job.input_dir, output, job.count, seed=job.seed),
                f"sample: {job.count} pairs from {job.input_dir}, seed {job.seed}")
    return Path(job.pairs_file), None


def split_videos(pairs_file: str | Path) -> tuple[list[Pair], list[Pair]]:
    """(image pairs, video pairs) of a pairs file: a pair whose target is a video is scored for stability."""
    from clipswap.evaluation.pairs import read_pairs
    from clipswap.media.common import VIDEO_SUFFIXES

    pairs = read_pairs(pairs_file)
    videos = [pair for pair in pairs if pair.target.suffix.lower() in VIDEO_SUFFIXES]
    return [pair for pair in pairs if pair.target.suffix.lower() not in VIDEO_SUFFIXES], videos


def evaluate_videos(videos: list[Pair], output: Path, model: SwapModel | None, progress: bool) -> str:
    """Flicker measures of every video pair (clipswap.evaluation.flicker), its missing swaps made by `model`; writes
    video_metrics.json/.md into `output` and returns the Markdown table.

    Raises:
        EvaluationInputError: a pair has no swapped video and there is no model to make it.
    """
    from clipswap.atomic import write_text_atomic
    from clipswap.evaluation.flicker import stability_table, video_stability

    rows, records = [], []
    for number, pair in enumerate(videos, start=1):
        swapped = pair.output
        if swapped is None:
            if model is None:
                raise EvaluationInputError(
                    f"video pair {number} ({pair.target}) has no swapped video: give it in the pairs file's output "
                    "column, or --model to make it")
            swapped = output / "videos" / f"{number:05d}{pair.target.suffix.lower()}"
            model.swap_video(pair.source, pair.target, swapped, progress)
        report = video_stability(pair.target, swapped)
        rows.append((f"{pair.target.name} -> {swapped.name}", report))
        records.append({"source": str(pair.source), "target": str(pair.target), "output": str(swapped), **report})
    table = stability_table(rows)
    write_text_atomic(output / "video_metrics.json", json.dumps({"videos": records}, indent=2) + "\n")
    write_text_atomic(output / "video_metrics.md", "# Video stability (clipswap.evaluation.flicker)\n\n" + table)
    return table
