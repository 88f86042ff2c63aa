"""One swap run, shared by `clipswap swap` and the release-style `inference.py`: check the request, load the
models the checkpoint asks for, compute the source identity once, then swap a target image or stream a video.

Checks happen cheapest first, before any model is loaded: file types, the inputs' existence, the output folder.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from clipswap.atomic import ensure_writable_dir
from clipswap.inference.media import (
    IMAGE_SUFFIXES,
    VIDEO_SUFFIXES,
    MediaError,
    VideoReader,
    VideoWriter,
    media_kind,
    read_image,
    write_image,
)
from clipswap.inference.selection import DEFAULT_SIMILARITY, FaceSelection
from clipswap.inference.swapper import FaceSwapper, NoFaceError

log = logging.getLogger(__name__)

SUFFIXES = {"image": IMAGE_SUFFIXES, "video": VIDEO_SUFFIXES}


@dataclass(frozen=True)
class SwapRequest:
    """Everything one run needs; paths left None are looked up in the checkpoint folders."""

    source: Path
    target: Path
    output: Path
    model: Path | None = None
    arcface: Path | None = None
    retinaface: Path | None = None
    detector: str = "auto"
    det_threshold: float = 0.5
    faces: str = "all"
    reference_face: Path | None = None
    similarity: float = DEFAULT_SIMILARITY
    blend: str = "published"
    feather: float | None = None
    precision: str = "fp32"
    clip_preset: str | None = None
    progress: bool = True


@dataclass(frozen=True)
class SwapSummary:
    kind: str  # "image" or "video"
    output: Path
    frames: int
    frames_without_faces: int
    faces: int
    seconds: float

    def describe(self) -> str:
        if self.kind == "image":
            return f"swapped {self.faces} face(s); wrote {self.output}"
        rate = self.frames / self.seconds if self.seconds > 0 else 0.0
        return (
            f"swapped {self.faces} face(s) in {self.frames - self.frames_without_faces} of {self.frames} frame(s) "
            f"({rate:.2f} frames/s); {self.frames_without_faces} frame(s) without a face passed through unchanged; "
            f"wrote {self.output}"
        )


def check_request(request: SwapRequest) -> str:
    """Validate paths and types without loading anything; returns the target kind. Raises MediaError/OutputError."""
    if media_kind(request.source) != "image":
        raise MediaError(f"the source {request.source} must be an image (jpg, png, webp, bmp)")
    kind = media_kind(request.target)
    output_kind = media_kind(request.output)
    if output_kind != kind:
        raise MediaError(
            f"the target {request.target} is {'an' if kind == 'image' else 'a'} {kind} but the output "
            f"{request.output} is not; give an output of the same kind ({', '.join(SUFFIXES[kind])})"
        )
    inputs = (("source", request.source), ("target", request.target), ("reference face", request.reference_face))
    for label, path in inputs:
        if path is not None and not Path(path).is_file():
            raise MediaError(f"the {label} {path} does not exist")
    if Path(request.output).resolve() in (Path(request.target).resolve(), Path(request.source).resolve()):
        raise MediaError(f"the output {request.output} would overwrite an input; choose another --output")
    ensure_writable_dir(Path(request.output).parent)
    FaceSelection.parse(request.faces)
    return kind


def build_swapper(request: SwapRequest) -> FaceSwapper:
    """Load the generator (and the identity encoder, CLIP and detector it needs) for `request`."""
    from clipswap.checkpoints.native import load_any_generator  # noqa: PLC0415
    from clipswap.checkpoints.pretrained import require_published  # noqa: PLC0415
    from clipswap.inference.detectors import build_detector  # noqa: PLC0415

    checkpoint = load_any_generator(require_published("generator", request.model))
    log.info("generator %s (%s, %s identity, CLIP %s)", checkpoint.path, checkpoint.source,
             checkpoint.config.identity_encoder, checkpoint.config.clip_variant)
    detector = build_detector(request.detector, request.det_threshold, request.retinaface)
    return FaceSwapper.from_checkpoint(
        checkpoint, detector, arcface_path=request.arcface, clip_preset=request.clip_preset, blend=request.blend,
        feather=request.feather, selection=FaceSelection.parse(request.faces), similarity=request.similarity,
        precision=request.precision,
    )


def run_swap(request: SwapRequest, swapper: FaceSwapper | None = None) -> SwapSummary:
    """Run one swap. `swapper` replaces the checkpoint-built one (tests, benchmarks).

    Raises:
        MediaError, OutputError, NoFaceError, CheckpointError (MissingCheckpointError): each with one clear message;
        no output file is left behind on failure.
    """
    kind = check_request(request)
    source = read_image(request.source)
    if swapper is None:
        swapper = build_swapper(request)
    swapper.set_source(source)
    if request.reference_face is not None:
        swapper.set_reference(read_image(request.reference_face))
    start = time.perf_counter()
    if kind == "image":
        target = read_image(request.target)
        output, faces = swapper.swap_frame(target)
        if faces == 0:
            raise NoFaceError(f"no face to swap was found in the target image {request.target}"
                              + (" that matches the reference face" if request.reference_face else ""))
        write_image(output, request.output)
        return SwapSummary("image", Path(request.output), 1, 0, faces, time.perf_counter() - start)
    return _swap_video(request, swapper, start)


def _swap_video(request: SwapRequest, swapper: FaceSwapper, start: float) -> SwapSummary:
    from tqdm import tqdm  # noqa: PLC0415

    frames = without = faces = 0
    with VideoReader(request.target) as reader, VideoWriter(request.output, reader.info, request.target) as writer:
        progress = tqdm(total=reader.info.frame_estimate, unit="frame", desc="swap", disable=not request.progress)
        with progress:
            for frame in reader:
                output, count = swapper.swap_frame(frame)
                writer.write(output)
                frames += 1
                faces += count
                without += count == 0
                progress.update(1)
        if frames == 0:
            raise MediaError(f"{request.target} has no video frames")
    return SwapSummary("video", Path(request.output), frames, without, faces, time.perf_counter() - start)
