"""The `clipswap pairs` job: training pairs with a landmark-swap teacher image, and a held-out set of identities.

From `clipswap align` output (aligned crops in TFRecord shards) it writes:

    OUTPUT/shards/shard-NNNNN-of-MMMMM.tfrecord   training pairs of two different people: target, source, the
                                                  teacher (clipswap.face.landmark_swap of source onto target) and
                                                  the warped source pasted into the target (warp_paste)
    OUTPUT/heldout/shard-00000-of-00001.tfrecord  every face of the held-out identities (clipswap.facedata.shards
                                                  records): the fixed evaluation batch of `clipswap train`
    OUTPUT/heldout_landmarks.json                 the 68 landmarks (crop pixels) of each held-out face, by its
                                                  photo path: the training's held-out batch warps its sources
                                                  with them for a target+warp generator
    OUTPUT/face_landmarks.npz                     every aligned face's 68 landmarks (crop pixels, NaN where dlib
                                                  found none), photo path and held-out flag: the labels of the
                                                  geometry network (clipswap.training.geometry)
    OUTPUT/heldout_pairs.tsv                      one evaluation pair a held-out person for `clipswap evaluate`:
                                                  source photo, target photo (original files, different people)
    OUTPUT/pairs_manifest.json                    settings, counts and the held-out identity names

Held-out identities are drawn (seeded) among the people with two or more photos and never appear in a training pair.

The teacher gives the identity path a dense target on cross-identity pairs (the demo recipe, docs/demo_model.md):
without it the only signal that the swap should change is the gradient through the identity encoder, which the
reconstruction and adversarial terms out-vote by copying the target. 68 landmarks of each crop come from dlib's
shape predictor run on the original photo inside the YuNet box of the aligned face (the evaluation's landmarks,
clipswap.face.landmarks68) and mapped into the crop with the alignment transform; a face whose landmarks cannot
be placed is left out of the pairs and counted.

Pair record (one tf.train.Example):
    target, source, teacher   bytes   PNG (the aligned crops as stored by align; the teacher encoded here), RGB
    warped                    bytes   PNG, the source input of a target+warp generator (ModelConfig.conditioning);
                                      empty in pairs made before it existed (pairs_manifest.json "warped" absent)
    mate                      bytes   PNG, another photo of the target's person (its aligned crop): the source of this
                                      record when training turns it into a same-identity pair, so that the
                                      reconstruction (eq. 7) and perceptual (eq. 8) terms compare the swap with a real
                                      ground truth whose pose and expression differ from the source's; empty when
                                      the person has one usable photo (training then reuses the target itself)
    mate_warped               bytes   PNG, warp_paste of the mate onto the target (a target+warp generator's input on
                                      such a pair); empty with `mate`
    target_label, source_label  int64 identity indices (identities.json of the aligned data)
    target_68, source_68, mate_68  float [136]  each crop's 68 landmarks (x, y interleaved) as fractions of the crop
                                      side, the correspondence a target+flow generator's warp learns; zeros for a
                                      record without a mate (mate_68)

`mate` and `mate_warped` exist in pairs made since pairs_manifest.json says "mates": true, the landmarks since it
says "landmarks": true (zeros before).
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import time
from collections import Counter, defaultdict
from pathlib import Path

import cv2
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from clipswap.atomic import atomic_path, ensure_writable_dir, write_text_atomic
from clipswap.errors import ClipswapError
from clipswap.facedata.shards import (
    SHARD_PATTERN,
    FaceRecord,
    ShardError,
    _bytes,
    _int,
    iterate_records,
    write_shards,
)

log = logging.getLogger(__name__)

MANIFEST = "pairs_manifest.json"
PAIR_SHARDS = "shards"
HELDOUT = "heldout"
HELDOUT_PAIRS = "heldout_pairs.tsv"
HELDOUT_LANDMARKS = "heldout_landmarks.json"
FACE_LANDMARKS = "face_landmarks.npz"
#: The records' landmark fields, in the order target, source, mate.
LANDMARK_FIELDS = ("target_68", "source_68", "mate_68")
PAIR_FEATURES = {
    "target": tf.io.FixedLenFeature([], tf.string),
    "source": tf.io.FixedLenFeature([], tf.string),
    "teacher": tf.io.FixedLenFeature([], tf.string),
    "warped": tf.io.FixedLenFeature([], tf.string, default_value=b""),
    "mate": tf.io.FixedLenFeature([], tf.string, default_value=b""),
    "mate_warped": tf.io.FixedLenFeature([], tf.string, default_value=b""),
    "target_label": tf.io.FixedLenFeature([], tf.int64),
    "source_label": tf.io.FixedLenFeature([], tf.int64),
    **{key: tf.io.FixedLenFeature([136], tf.float32, default_value=[0.0] * 136) for key in LANDMARK_FIELDS},
}
#: How far (mean pixel distance of the five points) a re-detected face may be from the one align kept.
MATCH_TOLERANCE = 0.1  # of the detection's inter-ocular distance


class PairsError(ClipswapError, ValueError):
    """The pairs job cannot run (bad input, too few identities, unwritable output); the message says what to do."""


def is_pairs_folder(folder: str | Path) -> bool:
    """True when `folder` is a `clipswap pairs` output (it holds pairs_manifest.json)."""
    return (Path(folder) / MANIFEST).is_file()


def pair_shards(folder: str | Path) -> list[str]:
    """The training pair shards of a pairs folder, sorted; PairsError when there are none."""
    files = sorted(str(p) for p in (Path(folder) / PAIR_SHARDS).glob(SHARD_PATTERN))
    if not files:
        raise PairsError(f"{folder} has no pair shards in {PAIR_SHARDS}/; run `clipswap pairs` again")
    return files


def read_manifest(folder: str | Path) -> dict:
    """The pairs folder's manifest, or {} when it is missing or unreadable."""
    try:
        manifest = json.loads((Path(folder) / MANIFEST).read_text())
    except (OSError, ValueError):
        return {}
    return manifest if isinstance(manifest, dict) else {}


def pairs_have_warps(folder: str | Path) -> bool:
    """True when the pairs folder's records hold the warped source ("warped", made since the warp conditioning)."""
    return bool(read_manifest(folder).get("warped"))


def pairs_have_landmarks(folder: str | Path) -> bool:
    """True when the pairs folder's records hold each crop's 68 landmarks ("target_68", "source_68", "mate_68")."""
    return bool(read_manifest(folder).get("landmarks"))


def pairs_have_mates(folder: str | Path) -> bool:
    """True when the pairs folder's records hold another photo of each target's person ("mate")."""
    return bool(read_manifest(folder).get("mates"))


def heldout_shards(folder: str | Path) -> list[str]:
    files = sorted(str(p) for p in (Path(folder) / HELDOUT).glob("*.tfrecord"))
    if not files:
        raise PairsError(f"{folder} has no held-out shard in {HELDOUT}/; run `clipswap pairs` again")
    return files


# --- 68 landmarks of an aligned face ------------------------------------------------------------------------------

_WORKER: dict = {}


def _single_threaded_opencv() -> None:
    # One process a core: OpenCV's own thread pool in every worker oversubscribes the cores (measured: teachers at
    # 16 a second on 2 workers, half the CPU time in the kernel, against about 100 a second single-threaded).
    cv2.setNumThreads(1)


def _init_landmarks() -> None:
    from clipswap.face.detectors import build_detector
    from clipswap.face.landmarks68 import Landmarker68
    from clipswap.registry.detectors import EVALUATION_DETECTOR

    _single_threaded_opencv()
    _WORKER["detector"] = build_detector(EVALUATION_DETECTOR)
    _WORKER["landmarker"] = Landmarker68()


def crop_landmarks68(task: tuple[str, np.ndarray, int]) -> np.ndarray | None:
    """[68, 2] float32 landmarks in the aligned crop of one record, or None when they cannot be placed.

    Args:
        task: (original photo path, [5, 2] landmarks of the kept face in the photo, crop size).
    """
    from clipswap.face.align import estimate_alignment, transform_points
    from clipswap.facedata.align_dataset import read_rgb

    path, five, size = task
    image = read_rgb(Path(path))
    if image is None:
        return None
    detections = _WORKER["detector"].detect(image)
    if not detections:
        return None
    five = np.asarray(five, np.float64).reshape(5, 2)
    distances = [float(np.linalg.norm(d.landmarks - five, axis=1).mean()) for d in detections]
    best = int(np.argmin(distances))
    eyes = float(np.linalg.norm(five[0] - five[1]))
    if distances[best] > MATCH_TOLERANCE * max(eyes, 1.0):
        return None
    points = _WORKER["landmarker"](image, detections[best])
    return transform_points(estimate_alignment(five, size), points).astype(np.float32)


def _decode(encoded: bytes) -> np.ndarray:
    bgr = cv2.imdecode(np.frombuffer(encoded, np.uint8), cv2.IMREAD_COLOR)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _png(image: np.ndarray) -> bytes | None:
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return encoded.tobytes() if ok else None


def make_teacher(task: tuple) -> tuple[bytes, bytes, bytes] | None:
    """PNG bytes of (landmark_swap(source crop -> target crop), warp_paste of the same, warp_paste of the mate onto
    the target or b"" without a mate), or None when the landmarks cannot drive the first two.

    Args:
        task: (target PNG, target [68, 2], source PNG, source [68, 2], mate PNG or None, mate [68, 2] or None).
    """
    from clipswap.face.landmark_swap import LandmarkSwapError, poisson_blend, warp_paste, warped_face

    target, target_68, source, source_68, mate, mate_68 = task
    target = _decode(target)
    try:
        warped, mask = warped_face(_decode(source), source_68, target, target_68)
        swapped = poisson_blend(warped, target, mask)
    except LandmarkSwapError:
        return None
    teacher, pasted = _png(swapped), _png(np.where(mask[..., None] > 0, warped, target))
    if not (teacher and pasted):
        return None
    mate_pasted = b""
    if mate is not None:
        try:
            mate_pasted = _png(warp_paste(_decode(mate), mate_68, target, target_68)[0]) or b""
        except LandmarkSwapError:
            mate_pasted = b""
    return teacher, pasted, mate_pasted


def _pool_map(function, tasks, workers: int, initializer, progress: bool, description: str) -> list:
    chunk = max(1, len(tasks) // (workers * 64))
    bar = dict(total=len(tasks), disable=not progress, desc=description, unit="face")
    if workers == 1:
        if initializer is not None:
            initializer()
        return [function(task) for task in tqdm(tasks, **bar)]
    # One BLAS / OpenMP thread a worker (read by each spawned interpreter when numpy starts).
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, "1")
    with multiprocessing.get_context("spawn").Pool(workers, initializer=initializer) as pool:
        return list(tqdm(pool.imap(function, tasks, chunksize=chunk), **bar))


def _example(target: bytes, source: bytes, teacher: bytes, warped: bytes, target_label: int,
             source_label: int, mate: bytes = b"", mate_warped: bytes = b"",
             points: tuple[np.ndarray | None, ...] = (None, None, None)) -> bytes:
    """One pair record; `points`: the target's, source's and mate's landmarks as fractions of the crop side
    ([68, 2] or None: zeros)."""
    feature = {"target": _bytes(target), "source": _bytes(source), "teacher": _bytes(teacher),
               "warped": _bytes(warped), "mate": _bytes(mate), "mate_warped": _bytes(mate_warped),
               "target_label": _int(target_label), "source_label": _int(source_label)}
    for key, value in zip(LANDMARK_FIELDS, points, strict=True):
        flat = np.zeros(136, np.float32) if value is None else np.asarray(value, np.float32).reshape(136)
        feature[key] = tf.train.Feature(float_list=tf.train.FloatList(value=flat.tolist()))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def parse_pair(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
    """tf.data parser of one pair record (PAIR_FEATURES)."""
    return tf.io.parse_single_example(serialized, PAIR_FEATURES)


# --- the job ---------------------------------------------------------------------------------------------------


def choose_heldout(records: list[FaceRecord], count: int, seed: int) -> list[str]:
    """`count` identity names drawn (seeded) among those with two or more faces, sorted."""
    faces = defaultdict(int)
    for record in records:
        faces[record.identity] += 1
    eligible = sorted(name for name, n in faces.items() if n >= 2)
    if len(eligible) < count:
        raise PairsError(f"only {len(eligible)} identities have two or more faces; --heldout {count} needs that "
                         "many (lower --heldout or add photos)")
    rng = np.random.default_rng(seed)
    return sorted(eligible[i] for i in rng.choice(len(eligible), size=count, replace=False))


def heldout_evaluation_pairs(records: list[FaceRecord], heldout: list[str], seed: int) -> list[tuple[str, str]]:
    """One (source photo, target photo) a held-out person: person k's first face as the source, a face other than
    the first of person k+1 (in a seeded cyclic order) as the target; sources and targets are all different people
    and no photo is used twice."""
    by_identity: dict[str, list[FaceRecord]] = defaultdict(list)
    for record in records:
        if record.identity in heldout:
            by_identity[record.identity].append(record)
    order = list(heldout)
    np.random.default_rng(seed).shuffle(order)
    pairs = []
    for k, name in enumerate(order):
        nxt = sorted(by_identity[order[(k + 1) % len(order)]], key=lambda r: r.path)
        source = sorted(by_identity[name], key=lambda r: r.path)[0]
        pairs.append((source.path, nxt[1].path))
    return pairs


def choose_mates(labels: list[int], targets: list[int], seed: int) -> list[int | None]:
    """For each target index, another index with the same label drawn (seeded) uniformly, or None when its label
    has no other index.

    Args:
        labels: the label of every candidate index (position = index).
        targets: indices into `labels`, among the candidates.
    """
    by_label: dict[int, list[int]] = defaultdict(list)
    for index, label in enumerate(labels):
        by_label[label].append(index)
    rng = np.random.default_rng(seed)
    mates: list[int | None] = []
    for target in targets:
        others = [i for i in by_label[labels[target]] if i != target]
        mates.append(int(others[rng.integers(len(others))]) if others else None)
    return mates


def build_pairs(data: str | Path, output: str | Path, *, count: int = 40_000, heldout: int = 100, seed: int = 0,
                shard_size: int = 2000, workers: int = 1, progress: bool = True) -> dict:
    """Run the pairs job (module docstring); returns the manifest written."""
    started = time.perf_counter()
    if count < 1 or heldout < 2 or shard_size < 1 or workers < 1:
        raise PairsError("--count, --shard-size and --workers must be >= 1 and --heldout >= 2")
    output = ensure_writable_dir(output)
    try:
        records = list(iterate_records(data))
    except (ShardError, tf.errors.DataLossError) as error:
        raise PairsError(f"cannot read the aligned shards in {data}: {error}") from error
    if not records:
        raise PairsError(f"{data} holds no aligned faces; run `clipswap align` first")
    sizes = {record.size for record in records}
    if len(sizes) != 1:
        raise PairsError(f"the aligned faces in {data} have several sizes {sorted(sizes)}; align them at one --size")
    size = sizes.pop()

    held = choose_heldout(records, heldout, seed)
    held_set = set(held)
    tasks = [(r.path, r.landmarks_original, size) for r in records]
    landmarks = _pool_map(crop_landmarks68, tasks, workers, _init_landmarks, progress, "landmarks")
    usable = [i for i, r in enumerate(records) if landmarks[i] is not None and r.identity not in held_set]
    if len({records[i].identity for i in usable}) < 2:
        raise PairsError("fewer than two training identities have faces with landmarks; nothing to pair")

    rng = np.random.default_rng(seed + 1)
    chosen: list[tuple[int, int]] = []
    while len(chosen) < count:
        targets = rng.choice(usable, size=count)
        sources = rng.choice(usable, size=count)
        chosen.extend((int(t), int(s)) for t, s in zip(targets, sources, strict=True)
                      if records[t].label != records[s].label)
    chosen = chosen[:count]
    # Another photo of each target's person (training people only: `usable` excludes the held-out ones), the source
    # of the record when training makes it a same-identity pair.
    usable_labels = [records[i].label for i in usable]
    position = {index: k for k, index in enumerate(usable)}
    mate_positions = choose_mates(usable_labels, [position[t] for t, _ in chosen], seed + 3)
    mates = [usable[k] if k is not None else None for k in mate_positions]
    teacher_tasks = [(records[t].image, landmarks[t], records[s].image, landmarks[s],
                      records[m].image if m is not None else None, landmarks[m] if m is not None else None)
                     for (t, s), m in zip(chosen, mates, strict=True)]
    teachers = _pool_map(make_teacher, teacher_tasks, workers, _single_threaded_opencv if workers > 1 else None,
                         progress, "teachers")
    kept = [(pair, mate, teacher) for pair, mate, teacher in zip(chosen, mates, teachers, strict=True)
            if teacher is not None]

    if not kept:
        raise PairsError("no pair could get a teacher image (the landmark swap failed on every pair); check the data")

    def encode(item: tuple[tuple[int, int], int | None, tuple[bytes, bytes, bytes]]) -> bytes:
        (t, s), m, (teacher, warped, mate_warped) = item
        # A mate whose warp failed is dropped too: both fields are filled or both are empty.
        mate = records[m].image if m is not None and mate_warped else b""
        points = (landmarks[t] / size, landmarks[s] / size, landmarks[m] / size if mate else None)
        return _example(records[t].image, records[s].image, teacher, warped, records[t].label, records[s].label,
                        mate, mate_warped if mate else b"", points)

    write_shards(kept, ensure_writable_dir(output / PAIR_SHARDS), len(kept), shard_size=shard_size, encode=encode)
    held_records = [r for r in records if r.identity in held_set]
    write_shards(held_records, ensure_writable_dir(output / HELDOUT), len(held_records),
                 shard_size=max(1, len(held_records)))
    held_points = {r.path: np.round(points, 3).tolist() for r, points in zip(records, landmarks, strict=True)
                   if r.identity in held_set and points is not None}
    write_text_atomic(output / HELDOUT_LANDMARKS, json.dumps(held_points) + "\n")
    write_face_landmarks(output / FACE_LANDMARKS, records, landmarks, held_set)
    evaluation = heldout_evaluation_pairs(records, held, seed + 2)
    write_text_atomic(output / HELDOUT_PAIRS,
                      "# source\ttarget  (held-out identities; different people)\n"
                      + "".join(f"{source}\t{target}\n" for source, target in evaluation))
    manifest = {
        "version": 1,
        "data": str(Path(data).resolve()),
        "size": size,
        "seed": seed,
        "pairs": len(kept),
        "pairs_without_teacher": len(chosen) - len(kept),
        "faces": len(records),
        "faces_without_landmarks": sum(lm is None for lm in landmarks),
        "training_identities": len({records[i].identity for i in usable}),
        "heldout_identities": held,
        "heldout_faces": len(held_records),
        "teacher": "clipswap.face.landmark_swap (dlib 68 points and forehead points, Reinhard colour transfer, Poisson "
                   "blending)",
        "warped": True,
        "mates": True,
        "landmarks": True,
        "pairs_with_other_photo": sum(1 for _, m, teacher in kept if m is not None and teacher[2]),
        "pairs_reusing_photo": sum(1 for _, m, teacher in kept if m is None or not teacher[2]),
        "training_people_with_one_photo": sum(1 for n in Counter(usable_labels).values() if n == 1),
        "seconds": round(time.perf_counter() - started, 1),
    }
    write_text_atomic(output / MANIFEST, json.dumps(manifest, indent=2) + "\n")
    return manifest


def write_face_landmarks(path: Path, records: list[FaceRecord], landmarks: list[np.ndarray | None],
                         held: set[str]) -> None:
    """Write FACE_LANDMARKS atomically: "path" [N] str, "points" [N, 68, 2] float32 (NaN rows where dlib found
    none), "heldout" [N] bool, in the order of the aligned shards' records."""
    points = np.full((len(records), 68, 2), np.nan, np.float32)
    for i, found in enumerate(landmarks):
        if found is not None:
            points[i] = found
    with atomic_path(path) as temporary:
        with open(temporary, "wb") as handle:
            np.savez(handle, path=np.array([r.path for r in records]), points=points,
                     heldout=np.array([r.identity in held for r in records]))


def heldout_landmarks(folder: str | Path) -> dict[str, np.ndarray]:
    """The held-out faces' 68 landmarks in crop pixels ([68, 2] float32) by photo path; {} for pairs made before the
    file existed."""
    path = Path(folder) / HELDOUT_LANDMARKS
    if not path.is_file():
        return {}
    return {key: np.asarray(value, np.float32) for key, value in json.loads(path.read_text()).items()}


__all__ = ["PAIR_FEATURES", "PairsError", "build_pairs", "heldout_landmarks", "heldout_shards", "is_pairs_folder",
           "pair_shards", "pairs_have_landmarks", "pairs_have_mates", "pairs_have_warps", "parse_pair", "read_manifest"]
