"""The evaluation run: (produce missing swaps) -> decode and detect each image once -> per-pair metrics -> aggregate
-> report.

Per pair: ID similarity (source vs swap), whether the swap is closer to its source than to its target
(identity embeddings), pose error and expression error (target vs swap), SSIM and PSNR (target vs swap). Over the
run: the means, ID retrieval against the gallery of distinct sources, FID (swaps vs targets) when an InceptionV3
weights file is given, cost (parameters and MACs handed in; latency per swapped face, measured around
each target's swap call, see clipswap.evaluation.swapping).

The identity model and the FID feature extractor are loaded before any swap is produced or any pair analysed, so a
missing dlib or a bad weights file stops the run at once. Produced swaps are written with
clipswap.media.images.write_image (atomic, with the synthetic-content label).

Nothing is dropped silently: every image whose face is not found (or that cannot be read, or a swap whose size differs
from its target's) is counted, the pair's record says why, and each metric reports how many pairs it scored (`n`)
and how many it could not (`failed`). Aggregates are means over the scored pairs.
"""

from __future__ import annotations

import logging
import math
import os
import statistics
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
from tqdm import tqdm

from clipswap.errors import ClipswapError
from clipswap.evaluation.expression import expression_error
from clipswap.evaluation.identity_models import IdentityModel, load_identity_model
from clipswap.evaluation.image_quality import face_sharpness_ratio, psnr, ssim
from clipswap.evaluation.metrics import PAIR_METRICS
from clipswap.evaluation.pairs import Pair, read_pairs
from clipswap.evaluation.pose import HeadPose, estimate_head_pose, pose_error
from clipswap.evaluation.report import write_reports
from clipswap.evaluation.swapping import PairSwapper, SwapFn, as_pair_swapper
from clipswap.face.detection import Detection, sort_by_area
from clipswap.face.detectors import build_detector
from clipswap.face.landmarks68 import Landmarker68
from clipswap.face.retrieval import closer_to_source, retrieval_accuracy, retrieve_top1
from clipswap.face.similarity import cosine_similarity
from clipswap.media.common import MediaError
from clipswap.media.images import read_image, write_image
from clipswap.registry.detectors import EVALUATION_DETECTOR, Detector

if TYPE_CHECKING:
    from clipswap.evaluation.fid import InceptionFeatures

log = logging.getLogger(__name__)

CostSpec = Mapping[str, Any] | Callable[[], Any] | Any

FID_SKIPPED = "skipped: no InceptionV3 weights file given (pass fid_weights / --fid-weights)"


class EvaluationInputError(ClipswapError, ValueError):
    """The pairs cannot be evaluated as given: none at all, or outputs missing and no model to produce them."""


#: Face score needed to evaluate a face (a little stricter than detection for swapping).
EVAL_SCORE_THRESHOLD = 0.6


def _read_or_none(path: str | os.PathLike) -> np.ndarray | None:
    """read_image, or None (logged) when the file cannot be read; for callers that count such files as failures."""
    try:
        return read_image(path)
    except MediaError as error:
        log.warning("%s", error)
        return None


@dataclass
class FaceAnalysis:
    """What the metrics need from one image; None fields were not asked for or failed.

    `failure` is None, "unreadable", "no_face" or "analysis_failed"; `error` is the human-readable reason.
    """

    size: tuple[int, int] | None = None  # (width, height)
    embedding: np.ndarray | None = None
    landmarks68: np.ndarray | None = None
    pose: HeadPose | None = None
    failure: str | None = None
    error: str | None = None

    @property
    def found(self) -> bool:
        return self.failure is None


@dataclass
class _Entry:
    """Everything known about one image path; each part is computed the first time it is asked for."""

    size: tuple[int, int] | None = None
    face: Detection | None = None
    failure: str | None = None  # "unreadable" or "no_face": nothing more can be derived
    error: str | None = None
    embedding: np.ndarray | None = None
    identity_error: str | None = None
    identity_done: bool = False
    landmarks68: np.ndarray | None = None
    pose: HeadPose | None = None
    geometry_error: str | None = None
    geometry_done: bool = False


class Analyser:
    """Per image path: decode and detect the largest face once, then derive the embedding and the 68 landmarks with
    head pose only when first asked for, whatever role (source, target, swap) the image plays.

    Derived results are kept for the whole run (small); decoded images only for the last `keep_images` paths, enough
    for one pair's analyses and its SSIM/PSNR without holding the data set in memory.
    """

    def __init__(self, identity_model: IdentityModel, keep_images: int = 6, detector: Detector | None = None):
        self.identity_model = identity_model
        # One detector for every metric (clipswap.registry.detectors.EVALUATION_DETECTOR) unless one is given.
        self.detector = detector or build_detector(EVALUATION_DETECTOR, EVAL_SCORE_THRESHOLD)
        self.landmarker = Landmarker68()
        self.keep_images = keep_images
        self._entries: dict[str, _Entry] = {}
        self._images: OrderedDict[str, np.ndarray | MediaError] = OrderedDict()

    @staticmethod
    def _key(path: str | os.PathLike) -> str:
        return str(Path(path).resolve())

    def _decode(self, path: str | os.PathLike) -> np.ndarray | MediaError:
        key = self._key(path)
        if key in self._images:
            self._images.move_to_end(key)
            return self._images[key]
        try:
            image: np.ndarray | MediaError = read_image(path)
        except MediaError as error:
            image = error
        self._images[key] = image
        while len(self._images) > self.keep_images:
            self._images.popitem(last=False)
        return image

    def image(self, path: str | os.PathLike) -> np.ndarray | None:
        """[H, W, 3] uint8 RGB of `path` (decoded once while recently used), or None when it cannot be read."""
        image = self._decode(path)
        return None if isinstance(image, MediaError) else image

    def __call__(self, path: str | os.PathLike, identity: bool, geometry: bool) -> FaceAnalysis:
        """The analysis of `path` with the embedding (`identity`) and/or landmarks and pose (`geometry`) filled in."""
        key = self._key(path)
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = self._detect(path)
        if entry.failure is not None:
            return FaceAnalysis(size=entry.size, failure=entry.failure, error=entry.error)
        if identity and not entry.identity_done:
            entry.embedding, entry.identity_error = self._derive(path, self._embed, entry)
            entry.identity_done = True
        if geometry and not entry.geometry_done:
            geometry_result, entry.geometry_error = self._derive(path, self._geometry, entry)
            entry.landmarks68, entry.pose = geometry_result or (None, None)
            entry.geometry_done = True
        result = FaceAnalysis(size=entry.size)
        errors = [e for asked, e in ((identity, entry.identity_error), (geometry, entry.geometry_error)) if asked and e]
        if errors:
            result.failure, result.error = "analysis_failed", "; ".join(errors)
        if identity:
            result.embedding = entry.embedding
        if geometry:
            result.landmarks68, result.pose = entry.landmarks68, entry.pose
        return result

    def _detect(self, path: str | os.PathLike) -> _Entry:
        image = self._decode(path)
        if isinstance(image, MediaError):
            return _Entry(failure="unreadable", error=str(image))
        entry = _Entry(size=(image.shape[1], image.shape[0]))
        detections = sort_by_area(self.detector.detect(image))
        if not detections:
            entry.failure, entry.error = "no_face", "no face found"
        else:
            entry.face = detections[0]
        return entry

    def _embed(self, image: np.ndarray, entry: _Entry) -> np.ndarray:
        return self.identity_model.embed(image, entry.face)

    def _geometry(self, image: np.ndarray, entry: _Entry) -> tuple[np.ndarray, HeadPose]:
        landmarks = self.landmarker(image, entry.face)
        return landmarks, estimate_head_pose(landmarks, entry.size)

    def _derive(self, path, compute: Callable[[np.ndarray, _Entry], Any], entry: _Entry) -> tuple[Any, str | None]:
        image = self._decode(path)
        if isinstance(image, MediaError):  # readable a moment ago: the file changed under the run
            return None, f"analysis failed: {image}"
        try:
            return compute(image, entry), None
        except (ValueError, cv2.error) as error:
            # A degenerate face (e.g. landmarks that solvePnP cannot fit) fails this image's metrics, not the run.
            log.warning("analysis of %s failed: %s", path, error)
            return None, f"analysis failed: {error}"


def _summary(values: Sequence[float], failed: int, **extra: Any) -> dict[str, Any]:
    finite = [v for v in values if not math.isnan(v)]
    summary: dict[str, Any] = {
        "value": float(np.mean(finite)) if finite else None,
        "std": float(np.std(finite)) if len(finite) > 1 and all(math.isfinite(v) for v in finite) else None,
        "n": len(finite),
        "failed": failed,
    }
    summary.update(extra)
    return summary


def resolve_cost(cost: CostSpec | None) -> dict[str, Any]:
    """Parameters and MACs from what the caller hands in.

    Accepts None, a mapping with "params" and/or "macs" (counts, not millions/billions), an object with `params` and
    `macs` attributes (clipswap.models.cost.Cost), a sequence of those (summed: the components of one model), or a
    callable returning any of these (called once).
    """
    if callable(cost) and not isinstance(cost, Mapping):
        cost = cost()
    if cost is None:
        return {"params": None, "macs": None, "note": "not given"}
    items = list(cost) if isinstance(cost, list | tuple) else [cost]
    params = macs = 0
    have_params = have_macs = False
    names = []
    for item in items:
        get = item.get if isinstance(item, Mapping) else (lambda key, _item=item: getattr(_item, key, None))
        if get("params") is not None:
            params += int(get("params"))
            have_params = True
        if get("macs") is not None:
            macs += int(get("macs"))
            have_macs = True
        if get("name"):
            names.append(str(get("name")))
    return {
        "params": params if have_params else None,
        "macs": macs if have_macs else None,
        "note": " + ".join(names),
    }


def produce_swaps(
    pairs: list[Pair], output_dir: Path, swapper: PairSwapper | None, progress: bool
) -> tuple[list[Pair], list[float], Counter]:
    """Make the output of every pair without one; writes output_dir/swaps/NNNNN.png (NNNNN = the pair's index).

    Pairs are grouped by source image (in order of first appearance): `swapper.set_source` runs once per distinct
    source, untimed, then `swapper.swap` once per target, timed. A swap that fails (no face in the source or target,
    unreadable input) is counted and its pair keeps no output.

    Returns:
        (pairs with outputs where they could be made, seconds per swapped face of each successful swap call,
        failure counts).
    """
    missing = [i for i, pair in enumerate(pairs) if pair.output is None]
    if not missing:
        return pairs, [], Counter()
    if swapper is None:
        raise EvaluationInputError(
            f"{len(missing)} pairs have no output image (first: line for source {pairs[missing[0]].source}); "
            "give the outputs in the pairs file or a model to produce them"
        )
    groups: dict[str, list[int]] = {}
    for index in missing:
        groups.setdefault(str(Path(pairs[index].source).resolve()), []).append(index)
    pairs = list(pairs)
    per_face: list[float] = []
    failures: Counter = Counter()
    with tqdm(total=len(missing), desc="swapping", unit="pair", disable=not progress) as bar:
        for indices in groups.values():
            source = _read_or_none(pairs[indices[0]].source)
            if source is None:
                failures["swap_not_produced_unreadable_input"] += len(indices)
                bar.update(len(indices))
                continue
            if not swapper.set_source(source):
                log.warning("no face in source %s: %d swaps not produced", pairs[indices[0]].source, len(indices))
                failures["swap_not_produced"] += len(indices)
                bar.update(len(indices))
                continue
            for index in indices:
                bar.update()
                pair = pairs[index]
                target = _read_or_none(pair.target)
                if target is None:
                    failures["swap_not_produced_unreadable_input"] += 1
                    continue
                start = time.perf_counter()
                swapped, faces = swapper.swap(target)
                elapsed = time.perf_counter() - start
                if swapped is None or faces < 1:
                    failures["swap_not_produced"] += 1
                    continue
                per_face.append(elapsed / faces)
                swapped = np.asarray(swapped)
                if swapped.dtype != np.uint8 or swapped.shape != target.shape:
                    raise ValueError(
                        f"the swapper must return an RGB uint8 image of the target's shape {target.shape}, "
                        f"got {swapped.dtype} {swapped.shape}"
                    )
                # Scored as generated: the invisible watermark (PSNR about 44 dB) would take a plain copy's SSIM from
                # 1 to 0.98. These files keep the metadata label.
                path = write_image(swapped, output_dir / "swaps" / f"{index:05d}.png", watermark=False)
                pairs[index] = replace(pair, output=path)
    return pairs, per_face, failures


def _latency(per_face: list[float], timing: str) -> dict[str, Any]:
    """Latency summary from seconds per swapped face of each swap call; `timing` says what one call includes."""
    if not per_face:
        return {"latency_ms_median": None, "latency_n": 0, "latency_note": "no swaps produced in this run"}
    # The first call builds and traces the model; it says nothing about steady-state speed.
    steady = per_face[1:] if len(per_face) > 1 else per_face
    excluded = "first (warm-up) call excluded" if len(per_face) > 1 else "a single call"
    return {
        "latency_ms_median": 1000.0 * statistics.median(steady),
        "latency_ms_mean": 1000.0 * statistics.fmean(steady),
        "latency_n": len(steady),
        "latency_note": f"median ms per swapped face = time of one swap call / faces it swapped ({timing}; "
        f"source identity computed once per source, not timed; {excluded})",
    }


class _FidStream:
    """InceptionV3 features of (swap, target) image pairs, computed a batch at a time as the pairs arrive, so no more
    than one batch of images is held; `summary` gives the FID over all pairs added."""

    def __init__(self, features: InceptionFeatures):
        self.features = features
        self.batch_size = int(getattr(features, "batch_size", 16))
        self.count = 0
        self._pending: list[tuple[np.ndarray, np.ndarray]] = []
        self._swap_features: list[np.ndarray] = []
        self._target_features: list[np.ndarray] = []

    def add(self, swap: np.ndarray, target: np.ndarray) -> None:
        self._pending.append((swap, target))
        self.count += 1
        if len(self._pending) >= self.batch_size:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            self._swap_features.append(self.features(swap for swap, _ in self._pending))
            self._target_features.append(self.features(target for _, target in self._pending))
            self._pending = []

    def summary(self, total_pairs: int) -> dict[str, Any]:
        from clipswap.evaluation.fid import fid_from_features

        self._flush()
        n, failed = self.count, total_pairs - self.count
        if n < 2:
            return {"value": None, "n": n, "failed": failed, "note": "needs at least 2 readable pairs"}
        note = f"InceptionV3 pool features, weights {Path(self.features.weights).name}; {n} swaps vs {n} targets"
        if n < 2048:
            note += " (fewer than 2048 images: biased upward, compare only at equal counts)"
        value = fid_from_features(np.concatenate(self._swap_features), np.concatenate(self._target_features))
        return {"value": value, "n": n, "failed": failed, "note": note}


def run_evaluation(
    pairs: str | os.PathLike | Sequence[Pair],
    output_dir: str | os.PathLike,
    identity_model: str | IdentityModel = "sface",
    fid_weights: str | os.PathLike | None = None,
    swap_fn: PairSwapper | SwapFn | None = None,
    progress: bool = True,
    cost: CostSpec | None = None,
    protocol: str | None = None,
    run_name: str = "this run",
    identity_note: str | None = None,
    pairs_file: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Evaluate swaps and write output_dir/metrics.json and output_dir/metrics.md.

    Args:
        pairs: a pairs file (clipswap.evaluation.pairs format) or a list of Pair.
        output_dir: where reports (and produced swaps, under swaps/) go.
        identity_model: "sface", "dlib", a path to an ArcFace/CosFace .h5, or an IdentityModel.
        fid_weights: InceptionV3 (no top) weights file; FID is skipped with a note when None.
        swap_fn: makes the outputs of pairs without one: a PairSwapper (clipswap.evaluation.swapping; e.g.
            FaceSwapperPairs) or a function (source RGB uint8 [H, W, 3], target RGB uint8 [H', W', 3]) -> swap RGB
            uint8 [H', W', 3], or None when it cannot swap (e.g. no face). Its latency per swapped face is measured.
            A swap not made is counted as "swap_not_produced" and the pair fails every metric.
        progress: show tqdm progress bars.
        cost: parameters / MACs of the evaluated model (see resolve_cost).
        protocol: free text written into the report (e.g. "sample, 40 LFW pairs, seed 0").
        run_name: label of our row in the paper tables.
        identity_note: how the identity model was chosen (e.g. against the generator's training encoder); written
            into the report next to the model's name.
        pairs_file: the file `pairs` (a list) was read from, for the report.

    Returns:
        The metrics dictionary written to metrics.json (before JSON escaping of infinities).

    Raises:
        FidWeightsError / FileNotFoundError: the FID weights file cannot be loaded (before any pair is processed).
        DlibUnavailableError: dlib or its model files are missing.
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    pairs_file = None if pairs_file is None else str(Path(pairs_file).resolve())
    if isinstance(pairs, str | os.PathLike):
        pairs_file = str(Path(pairs).resolve())
        pairs = read_pairs(pairs)
    pairs = list(pairs)
    if not pairs:
        raise EvaluationInputError("no pairs to evaluate")

    # Everything that can fail on the user's files or installation is loaded before the long per-pair work.
    model = load_identity_model(identity_model)
    analyse = Analyser(model)
    features = None
    if fid_weights is not None:
        from clipswap.evaluation.fid import InceptionFeatures

        features = InceptionFeatures(fid_weights)
    swapper = None if swap_fn is None else as_pair_swapper(swap_fn)
    pairs, per_face, failures = produce_swaps(pairs, output_dir, swapper, progress)
    fid_stream = None if features is None else _FidStream(features)

    records: list[dict[str, Any]] = []
    for pair in tqdm(pairs, desc="evaluating", unit="pair", disable=not progress):
        record: dict[str, Any] = {
            "source": str(pair.source),
            "target": str(pair.target),
            "output": None if pair.output is None else str(pair.output),
            "identity": pair.identity,
            "errors": [],
        }
        records.append(record)
        if pair.output is None:
            record["errors"].append("no swap output")
            continue
        target_image, swap_image = analyse.image(pair.target), analyse.image(pair.output)
        if fid_stream is not None and target_image is not None and swap_image is not None:
            fid_stream.add(swap_image, target_image)
        source = analyse(pair.source, identity=True, geometry=False)
        target = analyse(pair.target, identity=True, geometry=True)
        swap = analyse(pair.output, identity=True, geometry=True)
        for role, analysis in (("source", source), ("target", target), ("swap", swap)):
            if not analysis.found:
                record["errors"].append(f"{role}: {analysis.error}")
                failures[f"{role}_{analysis.failure}"] += 1
        record["swap_embedding_ok"] = swap.embedding is not None
        if source.embedding is not None and swap.embedding is not None:
            record["id_similarity"] = cosine_similarity(source.embedding, swap.embedding)
            calibration = getattr(model, "calibration", None)
            if calibration is not None:
                record["id_similarity_calibrated"] = calibration.scale(record["id_similarity"])
                record["verified_as_source"] = bool(record["id_similarity"] >= calibration.threshold)
            if target.embedding is not None:
                record["id_similarity_target"] = cosine_similarity(target.embedding, swap.embedding)
                record["closer_to_source"] = closer_to_source(swap.embedding, source.embedding, target.embedding)
        if target.pose is not None and swap.pose is not None:
            record["pose_target"] = vars(target.pose)
            record["pose_swap"] = vars(swap.pose)
            record["pose_error"] = pose_error(target.pose, swap.pose)
            record["expression_error"] = expression_error(target.landmarks68, swap.landmarks68)
        if target.size is not None and swap.size is not None:
            if target.size != swap.size:
                record["errors"].append(f"swap size {swap.size} differs from target size {target.size}")
                failures["swap_size_mismatch"] += 1
            elif target_image is not None and swap_image is not None:
                record["ssim"] = ssim(target_image, swap_image)
                record["psnr"] = psnr(target_image, swap_image)
                if target.landmarks68 is not None:
                    try:
                        record["sharpness_ratio"] = face_sharpness_ratio(target_image, swap_image,
                                                                         target.landmarks68)
                    except ValueError as error:
                        record["errors"].append(f"sharpness: {error}")

    aggregate = _aggregate(pairs, records, analyse)
    aggregate["fid"] = ({"value": None, "n": 0, "failed": 0, "note": FID_SKIPPED} if fid_stream is None
                        else fid_stream.summary(len(pairs)))
    timing = getattr(swapper, "timing", "one swap call")
    aggregate["cost"] = {**resolve_cost(cost), **_latency(per_face, timing)}
    metrics = {
        "identity_model": model.name,
        "identity_model_note": identity_note,
        "pairs_file": pairs_file,
        "protocol": protocol,
        "num_pairs": len(pairs),
        "aggregate": aggregate,
        "failures": dict(sorted(failures.items())),
        "pairs": records,
    }
    json_path, md_path = write_reports(metrics, output_dir, run_name)
    log.info("wrote %s and %s", json_path, md_path)
    return metrics


def _aggregate(pairs: list[Pair], records: list[dict[str, Any]], analyse: Analyser) -> dict[str, Any]:
    n = len(records)
    aggregate: dict[str, Any] = {}
    calibration = getattr(analyse.identity_model, "calibration", None)
    uncalibrated = calibration.describe() if calibration is not None else "this identity model has no calibration"
    verified = uncalibrated
    if calibration is not None:
        verified = ("% of pairs whose swap the identity model takes for the source's person (cosine >= "
                    f"{calibration.threshold:.3f}, its LFW equal-error threshold)")
    notes = {"id_similarity_calibrated": uncalibrated, "id_verified": verified}
    for metric in PAIR_METRICS:
        values = [metric.scale * float(r[metric.field]) for r in records if metric.field in r]
        note = notes.get(metric.key, metric.note)
        aggregate[metric.key] = _summary(values, n - len(values), **({"note": note} if note else {}))

    # Gallery: every distinct source image whose face was found, labelled with its pair's identity.
    gallery: dict[str, tuple[np.ndarray, str]] = {}
    for pair in pairs:
        key = str(Path(pair.source).resolve())
        if key in gallery:
            if gallery[key][1] != pair.identity:
                log.warning(
                    "source %s appears with labels %r and %r; using the first", key, gallery[key][1], pair.identity
                )
            continue
        analysis = analyse(pair.source, identity=True, geometry=False)
        if analysis.embedding is not None:
            gallery[key] = (analysis.embedding, pair.identity)
    labels = [label for _, label in gallery.values()]
    known = set(labels)
    queries, expected, scored = [], [], []
    for index, pair in enumerate(pairs):
        if pair.output is None or pair.identity not in known:
            continue
        swap = analyse(pair.output, identity=True, geometry=True)
        if swap.embedding is not None:
            queries.append(swap.embedding)
            expected.append(pair.identity)
            scored.append(index)
    if queries:
        predicted = retrieve_top1(np.stack(queries), np.stack([e for e, _ in gallery.values()]), labels)
        for index, label in zip(scored, predicted, strict=True):
            records[index]["id_retrieved"] = label
            records[index]["id_hit"] = label == records[index]["identity"]
        accuracy = retrieval_accuracy(predicted, expected)
    else:
        accuracy = float("nan")
    identities = len(set(labels))
    aggregate["id_retrieval"] = {
        "value": None if math.isnan(accuracy) else accuracy,
        "n": len(queries),
        "failed": n - len(queries),
        "gallery_images": len(labels),
        "gallery_identities": identities,
        "chance": 100.0 / identities if identities else None,
        "note": f"top-1 over {len(labels)} source images of {identities} identities (chance "
        + (f"{100.0 / identities:.1f}%)" if identities else "n/a)"),
    }
    return aggregate
