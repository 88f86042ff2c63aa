"""The `clipswap align` job: detect, align and shard a folder of face photos for training.

Input layout: identity subfolders (VGGFace2, LFW: `INPUT/<identity>/**/<image>`, identity = the first-level
subfolder's name) or a flat folder (`INPUT/<image>`, identity = the file stem, i.e. every loose photo is taken to be
its own person, as in FFHQ-like sets); both may be mixed. Hidden files and folders (leading ".") are ignored; every
other file is tried, and one OpenCV cannot decode is skipped as "unreadable".

Per image: read (OpenCV, EXIF orientation applied, converted to RGB); skip when min(H, W) < min_size; detect; take the
largest face; align to size x size with the ArcFace template scaled to that size (shrink 1.0, as FaceDancer); write
the crop to `OUTPUT/aligned/<input path relative to INPUT, suffix .png or .jpg>` atomically. PNG is the default
because the crop is resampled and a second JPEG round would add artefacts; `image_format="jpg"` (quality 95) keeps
VGGFace2-scale sets small.

Outputs:
    OUTPUT/aligned/...                  the crops
    OUTPUT/identities.json              sorted list of identity names; a record's label indexes it
    OUTPUT/shards/shard-NNNNN-of-MMMMM.tfrecord   every kept face once (none dropped), seeded shuffled order
    OUTPUT/align_manifest.json          settings and, per input file, "kept" (with landmarks) or "skipped" (reason)

Resuming: a run appends each result to OUTPUT/align_manifest.partial.jsonl as it goes; a later run with the same
settings re-uses every file already recorded there or in align_manifest.json (a kept file only while its crop exists
and its source is unchanged) and processes the rest. Shards are rewritten from the manifest at the end of each run.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
from tqdm import tqdm

from clipswap.atomic import atomic_path, ensure_writable_dir, write_text_atomic
from clipswap.errors import ClipswapError
from clipswap.jsonfile import JSONFileError, read_json_object
from clipswap.media.common import walk_files
from clipswap.registry import Files
from clipswap.registry.detectors import DETECTORS, Detector

if TYPE_CHECKING:
    from clipswap.facedata.shards import FaceRecord

log = logging.getLogger(__name__)

SKIP_REASONS = ("too_small", "unreadable", "no_face")
IMAGE_FORMATS = {"png": ".png", "jpg": ".jpg"}
MANIFEST = "align_manifest.json"
JOURNAL = "align_manifest.partial.jsonl"
IDENTITIES = "identities.json"
ALIGNED = "aligned"
SHARDS = "shards"
JPEG_QUALITY = 95
MANIFEST_VERSION = 1


class AlignError(ClipswapError, ValueError):
    """The align job cannot run: bad input folder, inconsistent earlier output, bad settings."""


@dataclass(frozen=True)
class AlignSettings:
    """Everything that changes a file's result; a resumed run must use the same values.

    Attributes:
        size: side of the aligned crop in pixels.
        min_size: images with min(H, W) below this are skipped.
        detector: a detector's name (clipswap.registry.detectors; "auto" is not offered: a resumed run must use
            the detector that made the stored results).
        det_threshold: minimum face score in [0, 1).
        image_format: "png" or "jpg".
        detector_file: the detector's user file, resolved (None for a packaged one).
    """

    size: int = 256
    min_size: int = 64
    detector: str = "yunet"
    det_threshold: float = 0.5
    image_format: str = "png"
    detector_file: str | None = None

    def __post_init__(self):
        if self.size < 16:
            raise AlignError(f"--size must be at least 16 pixels, got {self.size}")
        if self.min_size < 1:
            raise AlignError(f"--min-size must be at least 1 pixel, got {self.min_size}")
        if self.detector not in DETECTORS:
            raise AlignError(f"--detector must be one of {DETECTORS.names()}, got {self.detector!r}")
        if not 0.0 <= self.det_threshold < 1.0:
            raise AlignError(f"--det-threshold must be in [0, 1), got {self.det_threshold}")
        if self.image_format not in IMAGE_FORMATS:
            raise AlignError(f"image format must be one of {tuple(IMAGE_FORMATS)}, got {self.image_format!r}")

    def result_key(self) -> dict:
        """The settings a stored result depends on (the detector's file may move between runs)."""
        return {k: v for k, v in asdict(self).items() if k != "detector_file"}


@dataclass(frozen=True)
class InputImage:
    """One input file: its path relative to INPUT (POSIX), its identity and where its crop goes (relative to OUTPUT)."""

    relpath: str
    identity: str
    aligned: str


def list_inputs(input_dir: str | Path, image_format: str = "png", exclude: Path | None = None) -> list[InputImage]:
    """Every non-hidden file under `input_dir` (symbolic links followed), sorted, with identity and crop path (see
    the module docstring).

    Raises:
        AlignError: the folder is missing, not a folder, or holds no files.
    """
    root = Path(input_dir)
    if not root.exists():
        raise AlignError(f"input folder {root} does not exist")
    if not root.is_dir():
        raise AlignError(f"--input must be a folder of images or of identity subfolders; {root} is not a folder")
    suffix = IMAGE_FORMATS[image_format]
    files = walk_files(root, exclude)
    if not files:
        raise AlignError(f"input folder {root} holds no files; give a folder of photos or of identity subfolders")
    inputs = []
    taken: set[str] = set()
    for path in sorted(files):
        relative = path.relative_to(root)
        identity = relative.parts[0] if len(relative.parts) > 1 else relative.stem
        aligned = relative.with_suffix(suffix)
        if aligned.as_posix() in taken:
            # a.jpg and a.png in one folder would share a crop name; keep the original suffix in the name.
            aligned = relative.with_name(f"{relative.stem}_{relative.suffix.lstrip('.')}{suffix}")
        taken.add(aligned.as_posix())
        inputs.append(InputImage(relative.as_posix(), identity, f"{ALIGNED}/{aligned.as_posix()}"))
    return inputs


def read_rgb(path: Path) -> np.ndarray | None:
    """[H, W, 3] uint8 RGB, or None when the file cannot be decoded as an image or declares more pixels than the
    limit (`clipswap --max-pixels`; logged), so a decompression bomb in a dataset costs no memory."""
    from clipswap.media.common import MediaError
    from clipswap.media.images import check_image

    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError:
        return None
    if data.size == 0:
        return None
    try:
        check_image(path, data, complete=False)
    except MediaError as error:
        log.warning("skipped: %s", error)
        return None
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if image is None:
        return None
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _stamp(path: Path) -> list[int]:
    stat = path.stat()
    return [int(stat.st_size), int(stat.st_mtime_ns)]


def align_image(source: Path, destination: Path, settings: AlignSettings, detector: Detector) -> dict:
    """Align one file and write its crop to `destination` (atomically); returns its manifest entry.

    Args:
        source: the photo.
        destination: the crop file (.png or .jpg as in `settings`).
        settings: size, min_size, threshold, format.
        detector: an object with detect([H, W, 3] uint8 RGB) -> list[Detection].

    Returns:
        Kept: {"status": "kept", "score", "box": [4] source pixels, "landmarks_original": [5][2] source pixels,
        "landmarks": [5][2] crop pixels}. Skipped: {"status": "skipped", "reason": one of SKIP_REASONS, "detail"}.
        The caller adds "identity", "stamp" and "aligned".
    """
    from clipswap.face.align import align_face, transform_points
    from clipswap.face.detection import sort_by_area

    image = read_rgb(source)
    if image is None:
        return {"status": "skipped", "reason": "unreadable", "detail": "not an image OpenCV can decode"}
    height, width = image.shape[:2]
    if min(height, width) < settings.min_size:
        return {"status": "skipped", "reason": "too_small", "detail": f"{width}x{height} < {settings.min_size}"}
    detections = detector.detect(image)
    if not detections:
        return {"status": "skipped", "reason": "no_face", "detail": f"no face above score {settings.det_threshold}"}
    face = sort_by_area(detections)[0]
    crop, matrix = align_face(image, face.landmarks, settings.size)
    in_crop = transform_points(matrix, face.landmarks)
    params = [int(cv2.IMWRITE_JPEG_QUALITY), JPEG_QUALITY] if settings.image_format == "jpg" else []
    ok, encoded = cv2.imencode(IMAGE_FORMATS[settings.image_format], cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise RuntimeError(f"OpenCV could not encode the aligned crop of {source}")
    with atomic_path(destination) as temporary:
        temporary.write_bytes(encoded.tobytes())
    return {
        "status": "kept",
        "score": round(float(face.score), 5),
        "box": [round(float(v), 3) for v in face.box],
        "landmarks_original": np.round(np.asarray(face.landmarks, np.float64), 3).tolist(),
        "landmarks": np.round(in_crop, 3).tolist(),
    }


def build_align_detector(settings: AlignSettings):
    """The detector named by the settings (one per process: detectors are not thread- or fork-safe)."""
    from clipswap.face.detectors import build_resolved_detector

    return build_resolved_detector(settings.detector, settings.detector_file and Path(settings.detector_file),
                                   settings.det_threshold)


# Per-worker state, set by _init_worker in each spawned process.
_WORKER: dict = {}


def _init_worker(settings: AlignSettings) -> None:
    # Each process gets one core's worth of OpenCV threads so N workers use about N cores.
    cv2.setNumThreads(1)
    _WORKER["settings"] = settings
    _WORKER["detector"] = build_align_detector(settings)


def _run_task(task: tuple[str, str, str]) -> tuple[str, dict]:
    relpath, source, destination = task
    return relpath, align_image(Path(source), Path(destination), _WORKER["settings"], _WORKER["detector"])


def _load_manifest(output: Path, settings: AlignSettings) -> dict[str, dict]:
    """Entries recorded by earlier runs (final manifest, then the partial journal of an interrupted run)."""
    entries: dict[str, dict] = {}
    key = settings.result_key()
    manifest = output / MANIFEST
    if manifest.is_file():
        try:
            data = read_json_object(manifest)
        except JSONFileError as error:
            raise AlignError(f"{error}; delete it to align again, or use another --output") from error
        if not isinstance(data.get("files", {}), dict):
            raise AlignError(f"{manifest} is not an align manifest; delete it to align again, or use another --output")
        _check_settings(data.get("settings"), key, manifest)
        entries.update(data.get("files", {}))
    journal = output / JOURNAL
    if journal.is_file():
        with journal.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle):
                try:
                    item = json.loads(line)
                except json.JSONDecodeError:
                    # The run was killed mid-line; that file is simply processed again.
                    log.warning("ignoring a truncated line %d of %s", number + 1, journal)
                    continue
                if not isinstance(item, dict) or (number > 0 and not {"file", "entry"} <= item.keys()):
                    raise AlignError(
                        f"line {number + 1} of {journal} is not a journal entry ({line.strip()[:80]!r}); delete the "
                        "journal to align those files again, or use another --output"
                    )
                if number == 0:
                    _check_settings(item.get("settings"), key, journal)
                else:
                    entries[item["file"]] = item["entry"]
    return entries


def _check_settings(found: dict | None, expected: dict, where: Path) -> None:
    if found != expected:
        raise AlignError(
            f"{where} was written with different settings ({found}) from this run's ({expected}); "
            f"use the same --size/--min-size/--detector/--det-threshold/--format to resume, or another --output"
        )


def _reusable(entry: dict | None, image: InputImage, input_dir: Path, output: Path) -> bool:
    if entry is None or entry.get("stamp") != _stamp(input_dir / image.relpath):
        return False
    return entry["status"] == "skipped" or (output / image.aligned).is_file()


def _records(kept: list[tuple[InputImage, dict]], labels: dict[str, int], input_dir: Path, output: Path,
             size: int) -> Iterator[FaceRecord]:
    from clipswap.facedata.shards import FaceRecord  # TensorFlow: kept out of the workers

    for image, entry in kept:
        yield FaceRecord(
            image=(output / image.aligned).read_bytes(),
            label=labels[image.identity],
            identity=image.identity,
            path=str((input_dir / image.relpath).resolve()),
            size=size,
            landmarks=np.asarray(entry["landmarks"], dtype=np.float32),
            landmarks_original=np.asarray(entry["landmarks_original"], dtype=np.float32),
        )


def align_dataset(
    input_dir: str | Path,
    output_dir: str | Path,
    size: int = 256,
    min_size: int = 64,
    workers: int = 1,
    detector: str = "yunet",
    det_threshold: float = 0.5,
    files: Files | None = None,
    shard_size: int = 1000,
    seed: int = 0,
    image_format: str = "png",
    progress: bool = True,
) -> dict:
    """Align every face photo under `input_dir` and write crops, identities, shards and manifest under `output_dir`.

    Args:
        input_dir: identity subfolders or a flat folder of photos (module docstring).
        output_dir: created if needed; re-using one resumes (same settings required).
        size: aligned crop side in pixels (256 for the paper's generator).
        min_size: photos with min(H, W) below this are skipped as "too_small".
        workers: processes; 1 runs in this process. Each worker builds its own detector.
        detector: a detector's name: "yunet" (embedded, offline) or "retinaface" (needs RetinaFace-Res50.h5:
            files["retinaface"] or the default checkpoint folders).
        files: {file key: path} of the user's model files.
        det_threshold: minimum face score in [0, 1).
        shard_size: records per TFRecord shard.
        seed: shuffles the shard order of records (numpy default_rng).
        image_format: "png" (default, lossless) or "jpg" (quality 95).
        progress: show a tqdm bar.

    Returns:
        The report: {"images", "kept", "skipped": {reason: count}, "processed", "reused", "identities", "records",
        "shards": [paths], "output", "seconds"}.

    Raises:
        AlignError: missing/empty input, inconsistent earlier output, bad settings.
        clipswap.atomic.OutputError: the output folder cannot be created or written.
    """
    started = time.perf_counter()
    if workers < 1:
        raise AlignError(f"--workers must be at least 1, got {workers}")
    if shard_size < 1:
        raise AlignError(f"--shard-size must be at least 1, got {shard_size}")
    settings = AlignSettings(size, min_size, detector, float(det_threshold), image_format)
    input_dir, output = Path(input_dir), Path(output_dir)
    if input_dir.exists() and output.exists() and input_dir.resolve() == output.resolve():
        raise AlignError("--output must differ from --input (the crops would mix with the photos)")
    inputs = list_inputs(input_dir, image_format, exclude=output if output.exists() else None)
    ensure_writable_dir(output)
    # Fail before starting workers when the detector's file is absent.
    from clipswap.face.detectors import resolve_detector

    _, detector_file = resolve_detector(settings.detector, files)
    settings = replace(settings, detector_file=None if detector_file is None else str(detector_file))

    entries = _load_manifest(output, settings)
    done = {image.relpath: entries[image.relpath] for image in inputs
            if _reusable(entries.get(image.relpath), image, input_dir, output)}
    todo = [image for image in inputs if image.relpath not in done]
    log.info("%d files: %d already done, %d to process", len(inputs), len(done), len(todo))

    by_relpath = {image.relpath: image for image in inputs}
    journal_path = output / JOURNAL
    with journal_path.open("a", encoding="utf-8") as journal:
        if journal.tell() == 0:
            journal.write(json.dumps({"settings": settings.result_key()}) + "\n")
        tasks = [(image.relpath, str(input_dir / image.relpath), str(output / image.aligned)) for image in todo]
        for relpath, entry in _run_all(tasks, settings, workers, progress):
            image = by_relpath[relpath]
            entry = {**entry, "identity": image.identity, "stamp": _stamp(input_dir / relpath)}
            if entry["status"] == "kept":
                entry["aligned"] = image.aligned
            done[relpath] = entry
            journal.write(json.dumps({"file": relpath, "entry": entry}) + "\n")
            journal.flush()

    files = {image.relpath: done[image.relpath] for image in inputs}
    write_text_atomic(output / MANIFEST, json.dumps(
        {"version": MANIFEST_VERSION, "settings": settings.result_key(), "input": str(input_dir.resolve()),
         "files": files}, indent=1) + "\n")
    journal_path.unlink()

    kept = [(image, files[image.relpath]) for image in inputs if files[image.relpath]["status"] == "kept"]
    skipped = {reason: 0 for reason in SKIP_REASONS}
    for entry in files.values():
        if entry["status"] == "skipped":
            skipped[entry["reason"]] += 1
    identities = sorted({image.identity for image, _ in kept})
    write_text_atomic(output / IDENTITIES, json.dumps(identities, indent=1) + "\n")
    labels = {name: index for index, name in enumerate(identities)}
    order = np.random.default_rng(seed).permutation(len(kept)) if kept else np.zeros(0, dtype=int)
    shuffled = [kept[i] for i in order]
    shard_paths = []
    if kept:
        from clipswap.facedata.shards import write_shards

        shard_paths = write_shards(_records(shuffled, labels, input_dir, output, size), output / SHARDS, len(kept),
                                   shard_size)
    else:
        log.warning("no face was kept, so no shards were written")
    return {
        "images": len(inputs),
        "kept": len(kept),
        "skipped": skipped,
        "processed": len(todo),
        "reused": len(inputs) - len(todo),
        "identities": len(identities),
        "records": len(kept),
        "shards": [str(p) for p in shard_paths],
        "output": str(output),
        "seconds": round(time.perf_counter() - started, 2),
    }


def _run_all(tasks: list[tuple[str, str, str]], settings: AlignSettings, workers: int,
             progress: bool) -> Iterator[tuple[str, dict]]:
    """Results of `tasks` in completion order, in this process (workers=1) or a spawn pool."""
    bar = tqdm(total=len(tasks), desc="aligning", unit="img", disable=not progress)
    try:
        if not tasks:
            return
        if workers == 1:
            detector = build_align_detector(settings)
            for relpath, source, destination in tasks:
                yield relpath, align_image(Path(source), Path(destination), settings, detector)
                bar.update()
            return
        # spawn, not fork: TensorFlow (RetinaFace) and OpenCV's thread pools do not survive a fork.
        context = multiprocessing.get_context("spawn")
        chunk = max(1, min(32, len(tasks) // (workers * 8)))
        with context.Pool(workers, initializer=_init_worker, initargs=(settings,)) as pool:
            for result in pool.imap_unordered(_run_task, tasks, chunksize=chunk):
                yield result
                bar.update()
    finally:
        bar.close()
