"""The original ClipSwap release's command line, on clipswap's pipeline.

    python inference.py --target T --source S [--output output/result.jpg] \
        [--retina_path pretrained_ckpts/retinaface/RetinaFace-Res50.h5] \
        [--arcface_path pretrained_ckpts/arcface/ArcFace-Res50.h5] \
        [--model_path pretrained_ckpts/clipswap/clipswap.h5 | demo | landmarks | warp]

Same result as `clipswap swap --source S --target T --output O`. The three path options default to the files in
pretrained_ckpts/ (or $CLIPSWAP_CKPT_DIR), in the release's layout (above) or flat (pretrained_ckpts/ClipSwap.h5,
...); without a published generator the shipped demo generator (pretrained_ckpts/demo/) is used, and `--model_path
demo` names it. The run prints one line naming the generator, identity encoder and detector it used. Unlike the
release, a failure exits with status 1 and one clear message.
Extra options of `clipswap swap` are accepted too, with the same ranges: --faces, --source-face, --reference-face,
--similarity, --blend, --color-correction, --feather, --precision, --runtime, --detector, --det-threshold,
--clip-preset.
Out-of-range values are usage errors (exit status 2, one message).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from clipswap import quiet_start  # noqa: E402

quiet_start.install()  # before anything imports tensorflow

from clipswap.inference.selection import DEFAULT_SIMILARITY, FaceSelection  # noqa: E402
from clipswap.options import (  # noqa: E402
    BLEND_KINDS,
    COLOR_CORRECTIONS,
    DETECTORS,
    PRECISIONS,
    RUNTIMES,
    SMOOTH_BETA,
    SMOOTH_MIN_CUTOFF,
)


def _checked(check: Callable[[str], object]) -> Callable[[str], object]:
    """An argparse type from a function that raises ValueError with a clear message (argparse would drop it)."""

    def convert(text: str) -> object:
        try:
            return check(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from error

    convert.__name__ = check.__name__
    return convert


def _number_in(low: float, high: float, *, high_open: bool = False) -> Callable[[str], float]:
    """An argparse type accepting a float in [low, high] (or [low, high))."""
    interval = f"[{low:g}, {high:g}{')' if high_open else ']'}"

    def number(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not (low <= value < high if high_open else low <= value <= high):  # NaN fails both
            raise argparse.ArgumentTypeError(f"must be a number in {interval}, got {text!r}")
        return value

    return number


def _whole_number(text: str) -> int:
    """An argparse type accepting a whole number >= 1 (--source-face, --max-pixels)."""
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of 1 or more, got {text!r}")
    return int(text)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="inference.py", description="Swap the face of --source onto the faces of --target."
    )
    parser.add_argument("--target", required=True, type=Path, help="image or video to edit, or a folder of them")
    parser.add_argument("--source", required=True, type=Path, help="image of the identity to put in")
    parser.add_argument("--output", type=Path, default=Path("output/result.jpg"),
                        help="result file, same kind as the target [output/result.jpg]")
    parser.add_argument("--retina_path", type=Path, default=None,
                        help="RetinaFace-Res50.h5 [pretrained_ckpts/retinaface/ or pretrained_ckpts/]")
    parser.add_argument("--arcface_path", type=Path, default=None,
                        help="ArcFace-Res50.h5 [pretrained_ckpts/arcface/ or pretrained_ckpts/]")
    parser.add_argument("--model_path", default=None,
                        help="generator .h5 or .keras, or demo (the shipped demo generator), landmarks (the "
                             "classical 68-point warp) or warp (the demo's warped input alone) "
                             "[pretrained_ckpts/clipswap/clipswap.h5 or "
                             "pretrained_ckpts/ClipSwap.h5 when present, else demo]")
    parser.add_argument("--detector", choices=DETECTORS, default="auto")
    parser.add_argument("--det-threshold", type=_number_in(0.0, 1.0, high_open=True), default=0.5,
                        help="minimum face score, in [0, 1) [0.5]")
    parser.add_argument("--faces", default="all", type=_checked(FaceSelection.check), help="all, largest or N")
    parser.add_argument("--source-face", type=_whole_number, default=None, metavar="N",
                        help="a source photo with several faces: use the N-th from the left [the most confident]")
    parser.add_argument("--reference-face", type=Path, default=None,
                        help="swap only the target faces of the person in this image")
    parser.add_argument("--similarity", type=_number_in(-1.0, 1.0), default=DEFAULT_SIMILARITY,
                        help=f"cosine similarity to the reference face needed to swap a face [{DEFAULT_SIMILARITY}]")
    parser.add_argument("--blend", choices=BLEND_KINDS, default="published")
    parser.add_argument("--color-correction", choices=COLOR_CORRECTIONS, default="none",
                        help="reinhard: match the generated face's colour to the target face's [none]")
    parser.add_argument("--feather", type=_number_in(0.0, 64.0), default=None,
                        help="mask blur sigma in crop pixels, in [0, 64] [7 at 256, scaled with the crop]")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32")
    parser.add_argument("--runtime", choices=RUNTIMES, default="auto",
                        help="generator engine: auto = TensorFlow on a GPU, else OpenVINO when installed [auto]")
    parser.add_argument("--clip-preset", default=None)
    parser.add_argument("--no-tracking", action="store_true", help="video: detect every frame on its own")
    parser.add_argument("--no-smoothing", action="store_true", help="video: track faces but use raw landmarks")
    parser.add_argument("--smooth-min-cutoff", type=_number_in(1e-6, 1e6), default=SMOOTH_MIN_CUTOFF,
                        help=f"video: One Euro cutoff (Hz) of a still face's landmarks [{SMOOTH_MIN_CUTOFF}]")
    parser.add_argument("--smooth-beta", type=_number_in(0.0, 1e6), default=SMOOTH_BETA,
                        help=f"video: One Euro speed coefficient (per face size per second) [{SMOOTH_BETA}]")
    parser.add_argument("--allow-damaged", action="store_true",
                        help="video: swap a target ffmpeg reports damaged instead of refusing it")
    parser.add_argument("--max-pixels", type=_whole_number, default=None, metavar="N",
                        help="largest image or video frame read, in pixels (bounds memory; bigger files are refused) "
                             "[50000000]")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="-vv: show the traceback of an unexpected failure instead of one sentence")
    parser.add_argument("--no-watermark", action="store_true",
                        help="leave out the invisible watermark (on by default: it marks the output as a swap even "
                             "after re-encoding strips the metadata label)")
    return parser.parse_args(argv)


def _printable(text: str) -> str:
    """`text` with the undecodable bytes of a non-UTF-8 file name (surrogate escapes) written as \\xNN, so printing it
    cannot fail on a strict stream (click.echo does the same for clipswap's command line)."""
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate that is no escaped byte
        raw = text.encode("utf-8", "backslashreplace")
    return raw.decode("utf-8", "backslashreplace")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from clipswap.cli import Terminated, install_sigterm_handler, unexpected_message
    from clipswap.errors import ClipswapError
    from clipswap.inference.pipeline import SwapRequest, run_swap
    from clipswap.media.common import DEFAULT_MAX_PIXELS, pixel_limit
    from clipswap.registry import given_files

    request = SwapRequest(
        source=args.source, target=args.target, output=args.output, model=args.model_path,
        files=given_files({"arcface": args.arcface_path, "retinaface": args.retina_path}), detector=args.detector,
        det_threshold=args.det_threshold, faces=args.faces,
        source_face=args.source_face, reference_face=args.reference_face,
        similarity=args.similarity, blend=args.blend, feather=args.feather,
        precision=args.precision, runtime=args.runtime, clip_preset=args.clip_preset,
        color_correction=args.color_correction,
        watermark=not args.no_watermark, tracking=not args.no_tracking, smoothing=not args.no_smoothing,
        smooth_min_cutoff=args.smooth_min_cutoff, smooth_beta=args.smooth_beta, allow_damaged=args.allow_damaged,
    )
    install_sigterm_handler()
    try:
        with pixel_limit(args.max_pixels or DEFAULT_MAX_PIXELS, "inference.py --max-pixels N"):
            summary = run_swap(request, announce=lambda line: print(_printable(line), flush=True))
    except ClipswapError as error:
        print(_printable(f"Error: {error}"), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return 130
    except Terminated:
        print("Terminated.", file=sys.stderr)
        return 143
    except Exception as error:  # noqa: BLE001 -- the guard of last resort, as in clipswap's command group
        if args.verbose >= 2:
            raise
        print(_printable(f"Error: {unexpected_message(error, '-vv')}"), file=sys.stderr)
        return 1
    print(_printable(summary.describe()))
    if getattr(summary, "failures", None):
        print(f"Error: {len(summary.failures)} of {summary.files} file(s) failed (listed above); re-run to retry "
              "them (files already written are skipped)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
