"""The evaluation run: (produce missing swaps) -> analyse every image once -> per-pair metrics -> aggregate -> report.

Per pair: ID similarity (source vs swap), pose error and expression error (target vs swap), SSIM and PSNR (target vs
swap). Over the run: ID retrieval against the gallery of distinct sources, FID (swaps vs targets) when an
InceptionV3 weights file is given, cost (parameters and MACs handed in, latency measured around `swap_fn`).

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
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from clipswap.evaluation.expression import expression_error
from clipswap.evaluation.identity import cosine_similarity, retrieval_accuracy, retrieve_top1
from clipswap.evaluation.identity_models import IdentityModel, load_identity_model
from clipswap.evaluation.image_quality import psnr, ssim
from clipswap.evaluation.landmarks import Landmarker68
from clipswap.evaluation.pairs import Pair, read_pairs
from clipswap.evaluation.pose import HeadPose, estimate_head_pose, pose_error
from clipswap.evaluation.report import write_reports
from clipswap.face.detection import sort_by_area
from clipswap.face.yunet import YuNetDetector

log = logging.getLogger(__name__)

SwapFn = Callable[[np.ndarray, np.ndarray], np.ndarray | None]
CostSpec = Mapping[str, Any] | Callable[[], Any] | Any

FID_SKIPPED = "skipped: no InceptionV3 weights file given (pass fid_weights / --fid-weights)"


#: Face score needed to evaluate a face (a little stricter than detection for swapping).
EVAL_SCORE_THRESHOLD = 0.6

def read_rgb(path: str | os.PathLike) -> np.ndarray | None:
    """RGB uint8 [H, W, 3] of an image file, or None when it cannot be read."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    return None if bgr is None else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def write_rgb(path: Path, image_rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {path}")


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


class Analyser:
    """Detect the largest face of an image once and derive embedding, 68 landmarks and head pose; cached by path."""

    def __init__(self, identity_model: IdentityModel):
        self.identity_model = identity_model
        self.detector = YuNetDetector(score_threshold=EVAL_SCORE_THRESHOLD)
        self.landmarker = Landmarker68()
        self._cache: dict[tuple[str, bool, bool], FaceAnalysis] = {}

    def __call__(self, path: Path, identity: bool, geometry: bool) -> FaceAnalysis:
        key = (str(Path(path).resolve()), identity, geometry)
        if key not in self._cache:
            self._cache[key] = self._analyse(path, identity, geometry)
        return self._cache[key]

    def _analyse(self, path: Path, identity: bool, geometry: bool) -> FaceAnalysis:
        image = read_rgb(path)
        if image is None:
            return FaceAnalysis(failure="unreadable", error=f"cannot read image {path}")
        result = FaceAnalysis(size=(image.shape[1], image.shape[0]))
        detections = sort_by_area(self.detector.detect(image))
        if not detections:
            result.failure, result.error = "no_face", "no face found"
            return result
        face = detections[0]
        try:
            if identity:
                result.embedding = self.identity_model.embed(image, face)
            if geometry:
                result.landmarks68 = self.landmarker(image, face)
                result.pose = estimate_head_pose(result.landmarks68, result.size)
        except (ValueError, cv2.error) as error:
            # A degenerate face (e.g. landmarks that solvePnP cannot fit) fails this image's metrics, not the run.
            log.warning("analysis of %s failed: %s", path, error)
            result.failure, result.error = "analysis_failed", f"analysis failed: {error}"
            result.landmarks68 = result.pose = None
        return result


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
    pairs: list[Pair], output_dir: Path, swap_fn: SwapFn | None, progress: bool
) -> tuple[list[Pair], list[float], Counter]:
    """Run `swap_fn` for every pair without an output; writes output_dir/swaps/NNNNN.png.

    Returns (pairs with outputs where they could be made, per-call latencies in seconds, failure counts).
    """
    missing = [i for i, pair in enumerate(pairs) if pair.output is None]
    if not missing:
        return pairs, [], Counter()
    if swap_fn is None:
        raise ValueError(
            f"{len(missing)} pairs have no output image (first: line for source {pairs[missing[0]].source}); "
            "give the outputs in the pairs file or a model to produce them"
        )
    pairs = list(pairs)
    latencies: list[float] = []
    failures: Counter = Counter()
    for index in tqdm(missing, desc="swapping", unit="pair", disable=not progress):
        pair = pairs[index]
        source, target = read_rgb(pair.source), read_rgb(pair.target)
        if source is None or target is None:
            failures["swap_not_produced_unreadable_input"] += 1
            continue
        start = time.perf_counter()
        swapped = swap_fn(source, target)
        latencies.append(time.perf_counter() - start)
        if swapped is None:
            failures["swap_not_produced"] += 1
            continue
        swapped = np.asarray(swapped)
        if swapped.dtype != np.uint8 or swapped.shape != target.shape:
            raise ValueError(
                f"swap_fn must return an RGB uint8 image of the target's shape {target.shape}, "
                f"got {swapped.dtype} {swapped.shape}"
            )
        path = output_dir / "swaps" / f"{index:05d}.png"
        write_rgb(path, swapped)
        pairs[index] = replace(pair, output=path)
    return pairs, latencies, failures


def _latency(latencies: list[float]) -> dict[str, Any]:
    if not latencies:
        return {"latency_ms_median": None, "latency_n": 0, "latency_note": "no swaps produced in this run"}
    # The first call builds and traces the model; it says nothing about steady-state speed.
    steady = latencies[1:] if len(latencies) > 1 else latencies
    return {
        "latency_ms_median": 1000.0 * statistics.median(steady),
        "latency_ms_mean": 1000.0 * statistics.fmean(steady),
        "latency_n": len(steady),
        "latency_note": "median over swap calls, first (warm-up) call excluded" if len(latencies) > 1 else "one call",
    }


def _fid(pairs: list[Pair], weights: str | os.PathLike | None, progress: bool) -> dict[str, Any]:
    if weights is None:
        return {"value": None, "n": 0, "failed": 0, "note": FID_SKIPPED}
    from clipswap.evaluation.fid import InceptionFeatures, fid_from_features

    usable = [p for p in pairs if p.output is not None]
    swaps = [read_rgb(p.output) for p in usable]
    targets = [read_rgb(p.target) for p in usable]
    keep = [i for i in range(len(usable)) if swaps[i] is not None and targets[i] is not None]
    failed = len(pairs) - len(keep)
    if len(keep) < 2:
        return {"value": None, "n": len(keep), "failed": failed, "note": "needs at least 2 readable pairs"}
    features = InceptionFeatures(weights)
    with tqdm(total=2, desc="FID features", disable=not progress) as bar:
        swap_features = features(swaps[i] for i in keep)
        bar.update()
        target_features = features(targets[i] for i in keep)
        bar.update()
    note = f"InceptionV3 pool features, weights {Path(weights).name}; {len(keep)} swaps vs {len(keep)} targets"
    if len(keep) < 2048:
        note += " (fewer than 2048 images: biased upward, compare only at equal counts)"
    return {"value": fid_from_features(swap_features, target_features), "n": len(keep), "failed": failed, "note": note}


def run_evaluation(
    pairs: str | os.PathLike | Sequence[Pair],
    output_dir: str | os.PathLike,
    identity_model: str | IdentityModel = "sface",
    fid_weights: str | os.PathLike | None = None,
    swap_fn: SwapFn | None = None,
    progress: bool = True,
    cost: CostSpec | None = None,
    protocol: str | None = None,
    run_name: str = "this run",
) -> dict[str, Any]:
    """Evaluate swaps and write output_dir/metrics.json and output_dir/metrics.md.

    Args:
        pairs: a pairs file (clipswap.evaluation.pairs format) or a list of Pair.
        output_dir: where reports (and produced swaps, under swaps/) go.
        identity_model: "sface", "dlib", a path to an ArcFace/CosFace .h5, or an IdentityModel.
        fid_weights: InceptionV3 (no top) weights file; FID is skipped with a note when None.
        swap_fn: (source RGB uint8 [H, W, 3], target RGB uint8 [H', W', 3]) -> swap RGB uint8 [H', W', 3], or None
            when it cannot swap (e.g. no face); used for pairs without an output; its latency is measured. A None
            is counted as "swap_not_produced" and the pair fails every metric.
        progress: show tqdm progress bars.
        cost: parameters / MACs of the evaluated model (see resolve_cost).
        protocol: free text written into the report (e.g. "sample, 40 LFW pairs, seed 0").
        run_name: label of our row in the paper tables.

    Returns:
        The metrics dictionary written to metrics.json (before JSON escaping of infinities).
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    pairs_file = None
    if isinstance(pairs, str | os.PathLike):
        pairs_file = str(Path(pairs).resolve())
        pairs = read_pairs(pairs)
    pairs = list(pairs)
    if not pairs:
        raise ValueError("no pairs to evaluate")

    pairs, latencies, failures = produce_swaps(pairs, output_dir, swap_fn, progress)
    model = load_identity_model(identity_model)
    analyse = Analyser(model)

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
        source = analyse(pair.source, identity=True, geometry=False)
        target = analyse(pair.target, identity=False, geometry=True)
        swap = analyse(pair.output, identity=True, geometry=True)
        for role, analysis in (("source", source), ("target", target), ("swap", swap)):
            if not analysis.found:
                record["errors"].append(f"{role}: {analysis.error}")
                failures[f"{role}_{analysis.failure}"] += 1
        record["swap_embedding_ok"] = swap.embedding is not None
        if source.embedding is not None and swap.embedding is not None:
            record["id_similarity"] = cosine_similarity(source.embedding, swap.embedding)
        if target.pose is not None and swap.pose is not None:
            record["pose_target"] = vars(target.pose)
            record["pose_swap"] = vars(swap.pose)
            record["pose_error"] = pose_error(target.pose, swap.pose)
            record["expression_error"] = expression_error(target.landmarks68, swap.landmarks68)
        if target.size is not None and swap.size is not None:
            if target.size != swap.size:
                record["errors"].append(f"swap size {swap.size} differs from target size {target.size}")
                failures["swap_size_mismatch"] += 1
            else:
                target_image, swap_image = read_rgb(pair.target), read_rgb(pair.output)
                record["ssim"] = ssim(target_image, swap_image)
                record["psnr"] = psnr(target_image, swap_image)

    aggregate = _aggregate(pairs, records, analyse)
    aggregate["fid"] = _fid(pairs, fid_weights, progress)
    aggregate["cost"] = {**resolve_cost(cost), **_latency(latencies)}
    metrics = {
        "identity_model": model.name,
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
    for key in ("id_similarity", "pose_error", "expression_error", "ssim", "psnr"):
        values = [r[key] for r in records if key in r]
        aggregate[key] = _summary(values, n - len(values))

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
