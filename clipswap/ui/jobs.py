"""One swap the page asks for: its choices turned into the CLI's SwapRequest (a face table into `--source-face` or
`--map` pairs), run by the CLI's run_swap with a swapper from the process's ModelCache, and the result checked by
`clipswap verify`'s verify_file."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from clipswap.errors import ClipswapError
from clipswap.inference.pipeline import SwapRequest, run_swap
from clipswap.media.common import media_kind
from clipswap.media.verification import verify_file
from clipswap.options import LANDMARKS_MODEL
from clipswap.ui.faces import FoundFace, frame_at
from clipswap.ui.models import ModelCache, ModelKey, PasteOptions

#: What a face-table cell may hold to leave a target face alone.
NOT_SWAPPED = ("", "none", "-", "no")


class ChoiceError(ClipswapError, ValueError):
    """A choice on the page that cannot run (a face table that names no face, a face that does not exist)."""


@dataclass(frozen=True)
class Choices:
    """The page's options: the models, the paste-back, and for videos tracking and smoothing; the watermark."""

    model: ModelKey = ModelKey()
    paste: PasteOptions = PasteOptions()
    tracking: bool = True
    smoothing: bool = True
    watermark: bool = True


@dataclass
class JobResult:
    """What a finished swap shows: the written file, the run's summary, the line naming the models, the other lines
    the run announced (the watermark warning), and `clipswap verify`'s report of the file."""

    output: Path
    summary: str
    models_line: str
    verify_lines: list[str]
    marked: bool
    notes: list[str] = field(default_factory=list)


def parse_face_table(rows: Sequence[Sequence], target_count: int, source_count: int) -> dict[int, int]:
    """{target face number: source face number} from the table's rows (target face, source face); a source cell
    that is empty or "none" leaves that target face alone. Raises ChoiceError naming the bad cell."""
    assignments = {}
    for row in rows:
        if len(row) < 2 or row[0] is None or (isinstance(row[0], float) and math.isnan(row[0])):
            continue
        target = _face_number(row[0], target_count, "target face")
        cell = row[1]
        if cell is None or (isinstance(cell, float) and math.isnan(cell)) or str(cell).strip().lower() in NOT_SWAPPED:
            continue
        assignments[target] = _face_number(cell, source_count, f"source face of target face {target}")
    if not assignments:
        raise ChoiceError("no target face is chosen: give at least one target face a source face number in the "
                          "face table")
    return assignments


def _face_number(value, count: int, what: str) -> int:
    text = str(value).strip()
    try:
        number = float(text)
    except ValueError:
        number = math.nan
    if not number.is_integer() or not 1 <= number <= count:
        raise ChoiceError(f"the {what} is {text!r}; write a face number from 1 to {count} (counted from the left)"
                          + (", or none" if what.startswith("source") else ""))
    return int(number)


def _write_plain_png(crop: np.ndarray, path: Path) -> Path:
    """An input of the swap (a face crop, a video frame) as a plain PNG: no label or watermark, it is not an output."""
    ok, data = cv2.imencode(".png", np.ascontiguousarray(crop[..., ::-1]))
    if not ok:
        raise ChoiceError(f"{path.name} could not be encoded as PNG")
    path.write_bytes(data.tobytes())
    return path


def build_request(source: Path, target: Path, output: Path, assignments: dict[int, int],
                  source_faces: list[FoundFace], target_faces: list[FoundFace], choices: Choices,
                  workdir: Path) -> SwapRequest:
    """The SwapRequest of the page's choices. Every target face to the same source face: `--source` with
    `--source-face` (faces the table did not see, in other video frames, are swapped too, as the CLI does);
    otherwise one `--map` pair a chosen target face (its crop, written in `workdir`, as the reference) with the
    crop of its source face, so unchosen faces are left alone. Raises ChoiceError."""
    common = dict(target=target, output=output, model=choices.model.model, runtime=choices.model.runtime,
                  precision=choices.model.precision, blend=choices.paste.blend,
                  color_correction=choices.paste.color_correction, similarity=choices.paste.similarity,
                  progress=True, watermark=choices.watermark, tracking=choices.tracking, smoothing=choices.smoothing)
    chosen = set(assignments.values())
    if len(chosen) == 1 and len(assignments) == len(target_faces):
        return SwapRequest(source=source, source_face=chosen.pop() if len(source_faces) > 1 else None, **common)
    if choices.model.model == LANDMARKS_MODEL:
        raise ChoiceError("choosing some target faces, or several source faces, maps people by identity, which "
                          "needs a generator model (the demo, a .keras or .h5), not the landmarks model")
    pairs = []
    for target_number, source_number in sorted(assignments.items()):
        reference = _write_plain_png(target_faces[target_number - 1].crop, workdir / f"target_face_{target_number}.png")
        mapped = _write_plain_png(source_faces[source_number - 1].crop, workdir / f"source_face_{source_number}.png")
        pairs.append((reference, mapped))
    return SwapRequest(source=None, mapping=tuple(pairs), **common)


def run_job(cache: ModelCache, request: SwapRequest, choices: Choices) -> JobResult:
    """Run `request` as `clipswap swap` does, with the cached models, then verify what it wrote. Raises the CLI's
    ClipswapErrors (each one sentence)."""
    swapper, line = cache.swapper(choices.model, choices.paste)
    announced: list[str] = []
    summary = run_swap(request, swapper=swapper, announce=announced.append)
    marked, lines = verify_file(Path(request.output))
    return JobResult(Path(request.output), summary.describe(), line, lines, marked, announced)


def preview_request(request: SwapRequest, seconds: float, workdir: Path) -> SwapRequest:
    """The request for one frame of a video target: the frame at `seconds` written as a plain PNG in `workdir` and
    swapped as a photo (a photo target is its own preview). Raises MediaError."""
    if media_kind(request.target) == "image":
        return replace(request, output=workdir / f"preview{Path(request.target).suffix.lower()}")
    frame = _write_plain_png(frame_at(request.target, seconds), workdir / "preview_frame.png")
    return replace(request, target=frame, output=workdir / "preview.png")
