"""One swap run, shared by `clipswap swap` and the release-style `inference.py`: check the request, resolve
`--model` (a generator file, the default lookup, the demo generator or the landmark model; clipswap.inference.choice),
load the models it asks for, say which in one line, compute the source identity once, then swap a target image or
stream a video.

Checks happen cheapest first, before any model is loaded: file types, the inputs' existence, the output folder (checked,
not created: the writers create it, so a failed run leaves no folder behind).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from clipswap.atomic import OutputError, check_writable_dir
from clipswap.face.detection import NoFaceError
from clipswap.inference.pipelining import BackgroundWriter, Prefetcher
from clipswap.inference.selection import DEFAULT_SIMILARITY, FaceSelection
from clipswap.inference.swapper import FaceSwapper
from clipswap.media.common import IMAGE_SUFFIXES, VIDEO_SUFFIXES, MediaError, media_kind
from clipswap.media.images import read_image, write_image
from clipswap.media.video import VideoReader, VideoWriter
from clipswap.options import SMOOTH_BETA, SMOOTH_MIN_CUTOFF

log = logging.getLogger(__name__)

SUFFIXES = {"image": IMAGE_SUFFIXES, "video": VIDEO_SUFFIXES}

NO_WATERMARK_WARNING = (
    "warning: the invisible watermark is off (--no-watermark); it is on by default so that a swapped face can be "
    "told from a real one after the metadata label is stripped, which any re-encode or upload does"
)


@dataclass(frozen=True)
class SwapRequest:
    """Everything one run needs. `model`: a generator file, or "auto" (None), "demo" or "landmarks"
    (clipswap.inference.choice). `files`: the user's model files by key ({"arcface": path, "retinaface": path});
    a key left out is looked up in the checkpoint folders."""

    source: Path
    target: Path
    output: Path
    model: str | Path | None = None
    files: Mapping[str, Path] = field(default_factory=dict)
    detector: str = "auto"
    det_threshold: float = 0.5
    faces: str = "all"
    #: Which face of a source photo holding several (--source-face): the N-th from the left; None: the most confident.
    source_face: int | None = None
    reference_face: Path | None = None
    #: --map REF=SRC pairs: each target face goes to the source of its most similar reference (set_mapping).
    mapping: tuple[tuple[Path, Path], ...] = ()
    similarity: float = DEFAULT_SIMILARITY
    blend: str = "published"
    color_correction: str = "none"
    #: The target's fine detail added to the pasted face (FaceSwapper's `detail`); None: the checkpoint's own
    #: recommendation (recommended_detail).
    detail: float | None = None
    #: The unsharp mask's amount on the generated face (FaceSwapper's `sharpen`); None: the checkpoint's own
    #: recommendation (recommended_sharpen).
    sharpen: float | None = None
    #: Mirror the source's crop for a target face turned the other way (FaceSwapper's `mirror_source`).
    mirror_source: bool = True
    #: Keep what covers each target face (sunglasses, a hand) in front of the swap (FaceSwapper's `occluder`);
    #: `occluder` is the occluder network's .keras file (None: the one shipped beside the demo). Off unless asked
    #: for: the network learned from drawn occluders only and calls some of a sharp made-up face's eyes covered.
    occlusion_mask: bool = False
    occluder: Path | None = None
    feather: float | None = None
    precision: str = "fp32"
    #: The generator's engine (clipswap.inference.runtime): auto, tf, openvino or onnxruntime.
    runtime: str = "auto"
    clip_preset: str | None = None
    progress: bool = True
    #: The invisible watermark in every written image and frame (clipswap.media.watermark); off only on request.
    watermark: bool = True
    #: Video: follow faces across frames (clipswap.face.tracking) and, with `smoothing`, One Euro-filter their
    #: landmarks with these parameters (cutoff in Hz, beta per face size per second).
    tracking: bool = True
    smoothing: bool = True
    #: Video: swap a target whose stream ffmpeg reports damaged (the count is reported) instead of refusing it.
    allow_damaged: bool = False
    smooth_min_cutoff: float = SMOOTH_MIN_CUTOFF
    smooth_beta: float = SMOOTH_BETA


@dataclass(frozen=True)
class SwapSummary:
    kind: str  # "image" or "video"
    output: Path
    frames: int
    frames_without_faces: int
    faces: int
    seconds: float
    tracks: str | None = None  # video with tracking: tracks started, detections bridged, scene cuts
    decode_errors: int = 0  # video with --allow-damaged: ffmpeg's decoding errors in the input
    #: video: seconds per stage (the swapper's detect/align/generate/blend sums, the time spent waiting for decoded
    #: frames, writing them in the encoder thread, and waiting for that thread).
    timing: dict | None = None
    #: video: what the output keeps of the input (frame timing, streams copied and left out; VideoWriter.describe).
    kept: str | None = None

    def describe(self) -> str:
        if self.kind == "image":
            return f"swapped {self.faces} face(s); wrote {self.output}"
        rate = self.frames / self.seconds if self.seconds > 0 else 0.0
        return (
            f"swapped {self.faces} face(s) in {self.frames - self.frames_without_faces} of {self.frames} frame(s) "
            f"({rate:.2f} frames/s); {self.frames_without_faces} frame(s) without a face passed through unchanged; "
            + (f"{self.tracks}; " if self.tracks else "")
            + (f"{self.decode_errors} decoding error(s) in the damaged input (--allow-damaged); "
               if self.decode_errors else "")
            + (f"kept {self.kept}; " if self.kept else "")
            + f"wrote {self.output}"
        )


def check_request(request: SwapRequest) -> str:
    """Validate paths and types without loading anything; returns the target kind. Raises MediaError/OutputError."""
    if request.source is None and not request.mapping:
        raise MediaError("give a source image (--source) or at least one --map REF=SRC")
    mapped = [path for pair in request.mapping for path in pair]
    for path in ([request.source] if request.source is not None else []) + mapped:
        if media_kind(path) != "image":
            raise MediaError(f"the source {path} must be an image (jpg, png, webp, bmp)")
    kind = media_kind(request.target)
    output_kind = media_kind(request.output)
    if output_kind != kind:
        raise MediaError(
            f"the target {request.target} is {'an' if kind == 'image' else 'a'} {kind} but the output "
            f"{request.output} is not; give an output of the same kind ({', '.join(SUFFIXES[kind])})"
        )
    inputs = (("source", request.source), ("target", request.target), ("reference face", request.reference_face),
              *(("--map image", path) for path in mapped))
    for label, path in inputs:
        if path is not None and not Path(path).is_file():
            raise MediaError(f"the {label} {path} does not exist")
    inputs = [Path(p).resolve() for p in (request.target, request.source, request.reference_face, *mapped)
              if p is not None]
    if Path(request.output).resolve() in inputs:
        raise MediaError(f"the output {request.output} would overwrite an input; choose another --output")
    if Path(request.output).is_dir():
        raise MediaError(f"the output {request.output} is an existing folder, not a file; give a file name such as "
                         f"{Path(request.output) / ('swapped' + Path(request.output).suffix)}")
    check_writable_dir(Path(request.output).parent)
    FaceSelection.parse(request.faces)
    return kind


def build_swapper(request: SwapRequest):
    """Resolve and load the models `request` asks for (swapper_for).

    Returns:
        (a FaceSwapper or LandmarkSwapper, the line that names the generator, identity encoder and detector used).

    Raises:
        MissingCheckpointError / CheckpointError: a file is missing or does not load.
        DlibUnavailableError: the landmark model without dlib (the `eval` extra).
    """
    from clipswap.checkpoints.native import load_any_generator
    from clipswap.inference.choice import resolve_model

    choice = resolve_model(request.model)
    checkpoint = load_any_generator(choice.path) if choice.is_generator else None
    return swapper_for(
        choice, checkpoint, detector=request.detector, det_threshold=request.det_threshold,
        files=request.files, clip_preset=request.clip_preset,
        selection=FaceSelection.parse(request.faces), similarity=request.similarity, blend=request.blend,
        feather=request.feather, precision=request.precision, reference_face=request.reference_face is not None,
        color_correction=request.color_correction, runtime=request.runtime, detail=request.detail,
        sharpen=request.sharpen, mirror_source=request.mirror_source, occlusion_mask=request.occlusion_mask,
        occluder=request.occluder,
    )


def swapper_for(choice, checkpoint=None, *, detector: str = "auto", det_threshold: float = 0.5,
                files: Mapping[str, Path] | None = None, clip_preset: str | None = None,
                selection: FaceSelection | None = None, similarity: float = DEFAULT_SIMILARITY,
                blend: str = "published", feather: float | None = None, precision: str = "fp32",
                reference_face: bool = False, color_correction: str = "none", runtime: str = "auto",
                detail: float | None = None, sharpen: float | None = None, mirror_source: bool = True,
                occlusion_mask: bool = False, occluder: Path | None = None):
    """The swapper of a resolved model (clipswap.inference.choice.ModelChoice) and its line.

    Args:
        choice: the resolved --model.
        checkpoint: the loaded GeneratorCheckpoint of `choice.path`; None for the landmark model.
        reference_face: whether --reference-face will be used (the landmark model then loads SFace to match it).
        occlusion_mask, occluder: SwapRequest's; the landmark model, which Poisson-blends its own region, refuses
            the occlusion mask (CheckpointError).
        The other options are SwapRequest's.

    Returns:
        (a FaceSwapper or LandmarkSwapper, "generator: ..., detector: ..."). Raises as build_swapper.
    """
    from clipswap.checkpoints.encoders import identity_file
    from clipswap.face.detectors import build_resolved_detector, resolve_detector
    from clipswap.inference.choice import (
        LANDMARKS_LABEL,
        WARP_LABEL,
        detector_label,
        generator_label,
        identity_label,
        models_line,
    )
    from clipswap.inference.export import ExportError
    from clipswap.inference.runtime import resolve_runtime
    from clipswap.registry.runtimes import AUTO, KERAS_RUNTIME

    selection = selection or FaceSelection()
    detector_kind, detector_path = resolve_detector(detector, files)
    detector_text = detector_label(detector_kind, detector_path)
    if occlusion_mask and not choice.is_generator and choice.kind != "warp":
        from clipswap.checkpoints.errors import CheckpointError

        raise CheckpointError("--model landmarks Poisson-blends its own region and takes no occlusion mask; drop "
                              "--occlusion-mask.")
    masker = _occlusion_masker(occluder) if occlusion_mask else None
    if not choice.is_generator:
        landmarker = _landmarker(clip_preset, choice.kind)
        face_detector = build_resolved_detector(detector_kind, detector_path, det_threshold)
        if choice.kind == "warp":
            swapper = _warp_swapper(face_detector, landmarker, selection=selection, similarity=similarity,
                                    blend=blend, feather=feather, color_correction=color_correction,
                                    occluder=masker)
            return swapper, models_line(WARP_LABEL, detector_text)
        swapper = _landmark_swapper(face_detector, landmarker, selection, similarity, reference_face)
        return swapper, models_line(LANDMARKS_LABEL, detector_text)
    config = checkpoint.config
    log.info("generator %s (%s, %s identity, CLIP %s)", checkpoint.path, checkpoint.source,
             config.identity_encoder, config.clip_variant)
    identity_path = identity_file(config.identity_encoder, files)
    engine = resolve_runtime(runtime, precision)
    face_detector = build_resolved_detector(detector_kind, detector_path, det_threshold)
    options = dict(files=files, clip_preset=clip_preset, blend=blend, feather=feather, selection=selection,
                   similarity=similarity, precision=precision, color_correction=color_correction,
                   detail=(recommended_detail(checkpoint) if blend != "poisson" else 0.0) if detail is None else detail,
                   sharpen=(recommended_sharpen(checkpoint) if blend != "poisson" else 0.0) if sharpen is None
                   else sharpen, mirror_source=mirror_source,
                   occluder=masker)
    try:
        swapper = FaceSwapper.from_checkpoint(checkpoint, face_detector, runtime=engine, **options)
    except ExportError as error:
        if runtime != AUTO or engine == KERAS_RUNTIME:
            raise
        # --runtime auto chose a faster engine that cannot take this generator: the Keras model runs it instead.
        log.warning("%s cannot run this generator (%s); running it on TensorFlow", engine, error)
        engine = resolve_runtime(KERAS_RUNTIME, precision)
        swapper = FaceSwapper.from_checkpoint(checkpoint, face_detector, runtime=engine, **options)
    identity = identity_label(config.identity_encoder, identity_path, config.clip_variant, clip_preset)
    identity += config.conditioning_row.notes
    return swapper, models_line(generator_label(choice, identity), detector_text, f"{engine} {precision}")


def recommended_detail(checkpoint) -> float:
    """The `detail` a generator checkpoint of ours asks for in its manifest ("paste_detail", in [0, 1]: a generator
    that keeps the target's geometry at a crop smaller than the faces it is pasted over), else 0. Raises
    CheckpointError for a value outside [0, 1] or not a number."""
    return _recommended_paste(checkpoint, "paste_detail", 1.0)


def recommended_sharpen(checkpoint) -> float:
    """The `sharpen` a generator checkpoint of ours asks for in its manifest ("paste_sharpen", in [0, 2]: a generator
    whose output comes out blurred over the faces it is pasted on), else 0. Raises CheckpointError for a value
    outside [0, 2] or not a number."""
    return _recommended_paste(checkpoint, "paste_sharpen", 2.0)


def _recommended_paste(checkpoint, key: str, high: float) -> float:
    """The number under `key` in a clipswap checkpoint's manifest, in [0, high]; 0 for another checkpoint, a manifest
    that cannot be read or one without the key."""
    from clipswap.checkpoints.errors import CheckpointError
    from clipswap.checkpoints.native import manifest_path
    from clipswap.jsonfile import JSONFileError, read_json_object

    if checkpoint is None or checkpoint.source != "clipswap":
        return 0.0
    path = manifest_path(checkpoint.path)
    try:
        value = read_json_object(path).get(key, 0.0)
    except JSONFileError:
        return 0.0
    # bool is an int to Python, but `true` is no amount; NaN fails the range test.
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= high:
        raise CheckpointError(f"{path} recommends {key} {json.dumps(value)}, but it must be a number in [0, "
                              f"{high:g}]: correct or remove it.")
    return float(value)


def _occlusion_masker(path: Path | None):
    """The OcclusionMasker of the occluder network at `path` (None: the shipped one); CheckpointError when it is
    missing or changed."""
    from clipswap.checkpoints.occluder import load_occluder
    from clipswap.inference.occlusion import OcclusionMasker

    return OcclusionMasker(load_occluder(path))


def _landmarker(clip_preset: str | None, kind: str = "landmarks"):
    """dlib's 68-point landmarker for `--model landmarks` or `--model warp` (`kind`), or the one-sentence reason it
    cannot run."""
    from clipswap.checkpoints.dlib_models import DlibUnavailableError
    from clipswap.checkpoints.errors import CheckpointError
    from clipswap.face.landmarks68 import Landmarker68

    if clip_preset is not None:
        raise CheckpointError(f"--model {kind} takes no CLIP embedding; drop --clip-preset.")
    try:
        return Landmarker68()
    except DlibUnavailableError as error:
        raise DlibUnavailableError(f"--model {kind} places dlib's 68 landmarks, but {error}") from error


def _warp_swapper(detector, landmarker, **options):
    """The `--model warp` swapper: the warp demo's pipeline (its crop size, SFace for the source vector and
    --reference-face, the warp of the source onto each target crop, the paste-back over the warped region) with the
    generator replaced by its warped input (WarpedInput)."""
    from clipswap.checkpoints.encoders import load_identity_encoder
    from clipswap.config.presets.demo import WARP_DEMO_MODEL
    from clipswap.inference.swapper import WarpedInput

    identity = load_identity_encoder(WARP_DEMO_MODEL.identity_encoder)
    return FaceSwapper(WarpedInput(), WARP_DEMO_MODEL.image_size, identity.dim, identity, detector,
                       landmarker=landmarker, conditioning="target+warp", **options)


def _landmark_swapper(detector, landmarker, selection: FaceSelection, similarity: float, reference_face: bool):
    """The `--model landmarks` swapper; SFace matches --reference-face (the model has no identity encoder)."""
    from clipswap.checkpoints.encoders import load_identity_encoder
    from clipswap.inference.landmark_swapper import LandmarkSwapper

    identity = load_identity_encoder("sface") if reference_face else None
    return LandmarkSwapper(detector, landmarker, selection=selection, similarity=similarity, identity=identity)


def run_swap(request: SwapRequest, swapper=None,
             announce: Callable[[str], None] | None = None) -> SwapSummary | FolderSummary:
    """Run one swap, or, when the target is a folder, one swap per image and video in it (FolderSummary).
    `swapper` replaces the one built from the request (tests, benchmarks); otherwise, once the
    models are loaded and before anything is swapped, `announce` receives the line naming them (the command lines
    print it; the library does not).

    Raises:
        MediaError, OutputError, NoFaceError, CheckpointError (MissingCheckpointError), DlibUnavailableError: each
        with one clear message; no output file is left behind on failure.
    """
    folder = Path(request.target).is_dir()
    jobs = folder_jobs(request) if folder else None
    kind = check_request(request if jobs is None else replace(request, target=jobs[0][0], output=jobs[0][1]))
    source = read_image(request.source) if request.source is not None else None
    mapping = [(read_image(reference), read_image(mapped)) for reference, mapped in request.mapping]
    if swapper is None:
        swapper, line = build_swapper(request)
        log.info("%s", line)
        if announce is not None:
            announce(line)
    if not request.watermark and announce is not None:
        announce(NO_WATERMARK_WARNING)
    if source is not None:
        swapper.set_source(source, request.source_face)
    if mapping:
        swapper.set_mapping(mapping)
    if request.reference_face is not None:
        swapper.set_reference(read_image(request.reference_face))
    start = time.perf_counter()
    if jobs is not None:
        return _swap_folder(request, swapper, jobs)
    if kind == "image":
        target = read_image(request.target)
        output, faces = swapper.swap_frame(target)
        if faces == 0:
            raise NoFaceError(f"no face to swap was found in the target image {request.target}"
                              + (" that matches the reference face" if request.reference_face else "")
                              + (" that matches a --map reference" if request.mapping and source is None else ""))
        write_image(output, request.output, watermark=request.watermark)
        return SwapSummary("image", Path(request.output), 1, 0, faces, time.perf_counter() - start)
    return _swap_video(request, swapper, start)


@dataclass
class FolderSummary:
    """What a folder run did: files swapped, skipped (their output already existed), and failed (with reasons)."""

    output: Path
    files: int
    swapped: int
    skipped: int
    faces: int
    seconds: float
    failures: list[tuple[Path, str]] = field(default_factory=list)

    def describe(self) -> str:
        lines = [f"swapped {self.faces} face(s) in {self.swapped} of {self.files} file(s) into {self.output}; "
                 f"{self.skipped} already written (skipped), {len(self.failures)} failed ({self.seconds:.1f} s)"]
        lines += [f"  failed: {path.name}: {reason}" for path, reason in self.failures]
        return "\n".join(lines)


def folder_jobs(request: SwapRequest) -> list[tuple[Path, Path]]:
    """(target, output) for every image and video directly in the target folder (sorted by name); the outputs keep
    the names in the output folder. Raises MediaError/OutputError for a folder request that cannot work."""
    target_dir, output_dir = Path(request.target), Path(request.output)
    looks_like_a_file = output_dir.suffix.lower() in IMAGE_SUFFIXES + VIDEO_SUFFIXES
    if output_dir.is_file() or not output_dir.exists() and looks_like_a_file:
        raise MediaError(f"the target {target_dir} is a folder, so --output must be a folder too, not {output_dir}")
    if output_dir.resolve() == target_dir.resolve():
        raise MediaError(f"--output {output_dir} is the target folder itself; choose another folder for the results")
    files = sorted(path for path in target_dir.iterdir()
                   if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES + VIDEO_SUFFIXES)
    if not files:
        raise MediaError(f"the target folder {target_dir} holds no image or video "
                         f"({', '.join(IMAGE_SUFFIXES + VIDEO_SUFFIXES)}); sub-folders are not searched")
    check_writable_dir(output_dir)
    return [(path, output_dir / path.name) for path in files]


def _swap_folder(request: SwapRequest, swapper, jobs: list[tuple[Path, Path]]) -> FolderSummary:
    """Swap every file of a folder with one swapper and one progress bar (files); a file whose output exists is
    skipped (so a stopped run resumes), and a file that fails is reported and the run goes on."""
    from tqdm import tqdm

    start = time.perf_counter()
    pending = [(target, output) for target, output in jobs if not output.exists()]
    summary = FolderSummary(Path(request.output), len(jobs), 0, len(jobs) - len(pending), 0, 0.0)
    for target, output in tqdm(pending, unit="file", desc="swap", disable=not request.progress):
        single = replace(request, target=target, output=output, progress=False)
        try:
            check_request(single)
            if media_kind(target) == "image":
                result, faces = swapper.swap_frame(read_image(target))
                if faces == 0:
                    raise NoFaceError("no face to swap was found")
                write_image(result, output, watermark=request.watermark)
            else:
                faces = _swap_video(single, swapper, time.perf_counter()).faces
        except (MediaError, NoFaceError, OutputError) as error:
            summary.failures.append((target, str(error)))
            continue
        summary.swapped += 1
        summary.faces += faces
    summary.seconds = time.perf_counter() - start
    return summary


def _swap_video(request: SwapRequest, swapper: FaceSwapper, start: float) -> SwapSummary:
    from tqdm import tqdm

    frames = without = faces = 0
    tracked = request.tracking and hasattr(swapper, "start_tracking")
    if request.tracking and not tracked:
        log.warning("this model does not track faces across frames: each frame is detected on its own")
    with VideoReader(request.target, allow_damaged=request.allow_damaged) as reader, VideoWriter(
        request.output, reader.info, request.target, watermark=request.watermark
    ) as writer:
        if tracked:
            swapper.start_tracking(reader.info.fps, smoothing=request.smoothing, min_cutoff=request.smooth_min_cutoff,
                                   beta=request.smooth_beta)
        progress = tqdm(total=reader.info.frame_estimate, unit="frame", desc="swap", disable=not request.progress)
        # Decoding and writing (watermark, encoder pipe) run in their own threads, beside the swap (pipelining).
        decoded, encoder = Prefetcher(reader), BackgroundWriter(writer.write)
        try:
            with progress:
                for frame in decoded:
                    output, count = swapper.swap_frame(frame)
                    encoder.submit(output)
                    frames += 1
                    faces += count
                    without += count == 0
                    progress.update(1)
            encoder.close()
            tracks = None
            if reader.decode_errors:
                log.warning("%s: %d decoding error(s) in the input were allowed (--allow-damaged)", request.target,
                            len(reader.decode_errors))
            if tracked:
                tracker = swapper.tracker
                tracks = (f"{tracker.started} face track(s), {tracker.bridged} missed detection(s) bridged, "
                          f"{tracker.scene_cuts} scene cut(s)")
        finally:
            decoded.close()
            encoder.abandon()  # a no-op after close(); after a failure it drops the frames still queued
            if tracked:
                swapper.stop_tracking()
        if frames == 0:
            raise MediaError(f"{request.target} has no video frames")
        if faces == 0:
            # As for an image without a face: an error, and no copy labelled "faces were swapped" is left behind.
            raise NoFaceError(f"no face to swap was found in any of the {frames} frames of {request.target}"
                              + (" that matches the reference face" if request.reference_face else ""))
    timing = {"decode_wait": decoded.waited, "encode": encoder.busy, "encode_wait": encoder.waited,
              **getattr(getattr(swapper, "timer", None), "seconds", {})}
    log.info("seconds per stage over %d frames (clipswap -v): %s", frames,
             ", ".join(f"{name} {seconds:.2f}" for name, seconds in timing.items()))
    return SwapSummary("video", Path(request.output), frames, without, faces, time.perf_counter() - start, tracks,
                       len(reader.decode_errors), timing, writer.describe())
