"""`clipswap train-geometry`: train the geometry network (clipswap.models.geometry) on a `clipswap pairs` folder.

Data: every aligned crop of the pairs folder's source data (its manifest names the `clipswap align` folder) with the
68 landmarks `clipswap pairs` found with dlib (face_landmarks.npz); faces without landmarks are left out. The
held-out people of the pairs folder are never trained on: they are the accuracy check.

Labels: the landmarks in units of the crop's side, and the head pose that the evaluation's solvePnP fit
(clipswap.face.head_pose) gives for those landmarks in a 128 px crop seen by the evaluation's camera, recomputed after
each augmentation, so the pose head learns the function of the landmarks that the evaluation applies (a mirrored face
gets the mirrored fit, a rotated one the rotated fit). The evaluation fits the whole photo with focal length = the
photo's width; from an aligned crop of an LFW photo that camera's focal length is about POSE_FOCAL crop widths, and
the fit depends on it (six points fix the rotation loosely): with focal = one crop width the same landmarks read 9
degrees of yaw and pitch away from the evaluation on average, at two crop widths 1.6 and 1.9 (docs/demo_model.md).

Augmentation, drawn per face from a seeded generator: a horizontal flip (half the faces; points mirrored and
re-indexed by models.geometry.FLIP), a rotation of up to ROTATION degrees, a scale in SCALE and a shift of up to
SHIFT of the side about the crop's centre (borders reflected), and a brightness, contrast and saturation change.

Loss: mean absolute landmark error in pixels of a 128 px crop + POSE_WEIGHT x mean absolute pose error in degrees;
Adam with a cosine decay to zero.

Accuracy (held-out faces, no augmentation): NME, the mean point-to-point error over the inter-ocular distance (outer
eye corners, points 36 and 45) in %, and the mean absolute yaw, pitch and roll errors in degrees, both against dlib
and its solvePnP fit; the same figures for the mean training shape (a network that learned nothing) as context.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import keras
import numpy as np

from clipswap.errors import ClipswapError
from clipswap.face.head_pose import estimate_head_pose
from clipswap.models.geometry import FLIP, HEADS, INPUT_SIZE, STRIDES, GeometryNet, parameter_count, total_stride

logger = logging.getLogger(__name__)

#: The crop side the pose labels are fitted in (the pairs' aligned crops are 128 px).
POSE_CROP = 128
#: The pose labels' focal length in crop widths: the evaluation's camera (focal = photo width) measured from the
#: aligned 128 px crops of 250 px LFW photos (median 1.93 on the held-out people's photos). Networks trained before
#: it was set fitted with one crop width; their files say which (geometry manifest "pose_focal").
POSE_FOCAL = 2.0
ROTATION = 15.0
SCALE = (0.9, 1.1)
SHIFT = 0.05
POSE_WEIGHT = 0.25
#: Outer eye corners: the inter-ocular distance of the NME.
EYE_CORNERS = (36, 45)


class GeometryTrainingError(ClipswapError, ValueError):
    """The geometry network cannot be trained from this input (the message says what to do)."""


@dataclass(frozen=True)
class GeometryData:
    """Decoded faces at the network's input side and their labels.

    Attributes:
        images: [N, S, S, 3] uint8 RGB.
        points: [N, 68, 2] float32 landmarks in units of the side.
        heldout: [N] bool, the pairs folder's held-out people.
        paths: [N] the photos' paths.
    """

    images: np.ndarray
    points: np.ndarray
    heldout: np.ndarray
    paths: np.ndarray


def load_geometry_data(pairs_folder: str | Path, side: int) -> GeometryData:
    """Read the faces of a pairs folder with landmarks, resized to `side` (area interpolation keeps the unit
    coordinates: pixel centres at (i + 0.5) / side in both sizes)."""
    from clipswap.facedata.pairs import FACE_LANDMARKS, read_manifest
    from clipswap.facedata.shards import ShardError, iterate_records

    folder = Path(pairs_folder)
    manifest, labels = read_manifest(folder), folder / FACE_LANDMARKS
    if not manifest or not labels.is_file():
        raise GeometryTrainingError(f"{folder} is not a `clipswap pairs` folder with {FACE_LANDMARKS}; run "
                                    "`clipswap pairs --data ALIGNED --output PAIRS` with this version")
    stored = np.load(labels)
    paths, points, heldout = stored["path"], stored["points"], stored["heldout"]
    try:
        records = list(iterate_records(manifest["data"]))
    except (ShardError, OSError) as error:
        raise GeometryTrainingError(f"cannot read the aligned faces {manifest['data']} the pairs were made from: "
                                    f"{error}") from error
    if [r.path for r in records] != [str(p) for p in paths]:
        raise GeometryTrainingError(f"the aligned faces in {manifest['data']} are not the ones {folder} was made "
                                    "from; run `clipswap pairs` again")
    keep = np.isfinite(points).all(axis=(1, 2))
    images = np.empty((int(keep.sum()), side, side, 3), np.uint8)
    for k, index in enumerate(np.flatnonzero(keep)):
        record = records[index]
        rgb = cv2.cvtColor(cv2.imdecode(np.frombuffer(record.image, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        images[k] = cv2.resize(rgb, (side, side), interpolation=cv2.INTER_AREA)
    size = records[0].size
    return GeometryData(images, ((points[keep] + 0.5) / size).astype(np.float32), heldout[keep], paths[keep])


def pose_of(unit_points: np.ndarray) -> np.ndarray:
    """[3] (yaw, pitch, roll) degrees of landmarks in units of the side, fitted in a POSE_CROP crop by a camera of
    focal length POSE_FOCAL crop widths; zeros when solvePnP finds none."""
    try:
        return estimate_head_pose(unit_points * POSE_CROP - 0.5, (POSE_CROP, POSE_CROP),
                                  focal=POSE_FOCAL * POSE_CROP).as_array()
    except ValueError:
        return np.zeros(3)


def augment(image: np.ndarray, points: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One augmented face (module docstring): ([S, S, 3] uint8, [68, 2] unit points)."""
    side = image.shape[0]
    pixels = points * side - 0.5
    if rng.random() < 0.5:
        image = image[:, ::-1]
        pixels = np.stack([side - 1 - pixels[:, 0], pixels[:, 1]], axis=1)[list(FLIP)]
    angle = rng.uniform(-ROTATION, ROTATION)
    scale = rng.uniform(*SCALE)
    shift = rng.uniform(-SHIFT, SHIFT, size=2) * side
    centre = ((side - 1) / 2.0, (side - 1) / 2.0)
    matrix = cv2.getRotationMatrix2D(centre, angle, scale)
    matrix[:, 2] += shift
    image = cv2.warpAffine(np.ascontiguousarray(image), matrix, (side, side), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REFLECT_101)
    pixels = pixels @ matrix[:, :2].T + matrix[:, 2]
    pixels_float = image.astype(np.float32)
    pixels_float += rng.uniform(-25, 25)
    mean = pixels_float.mean(axis=(0, 1), keepdims=True)
    pixels_float = mean + rng.uniform(0.8, 1.2) * (pixels_float - mean)
    grey = pixels_float @ np.array([0.299, 0.587, 0.114], np.float32)
    pixels_float = grey[..., None] + rng.uniform(0.7, 1.3) * (pixels_float - grey[..., None])
    return np.clip(pixels_float, 0, 255).astype(np.uint8), ((pixels + 0.5) / side).astype(np.float32)


class FaceBatches(keras.utils.PyDataset):
    """`steps` training batches of faces ([N, S, S, 3] uint8) and their landmarks ([N, 68, 2] unit): batch k is drawn
    by `rng(k)`, a generator seeded with (seed, k), so a batch is a pure function of the seed and its index. Subclasses
    say what a batch holds (__getitem__)."""

    def __init__(self, images: np.ndarray, points: np.ndarray, batch_size: int, steps: int, seed: int):
        super().__init__()
        self.images, self.points = images, points
        self.batch_size, self.steps, self.seed = batch_size, steps, seed

    def __len__(self) -> int:
        return self.steps

    def rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, index])


class GeometryBatches(FaceBatches):
    """Augmented training batches: (images [B, S, S, 3] float32 in [-1, 1], {"landmarks", "pose"}), drawn with
    replacement from the training faces."""

    def __getitem__(self, index: int):
        rng = self.rng(index)
        chosen = rng.integers(len(self.images), size=self.batch_size)
        faces, points = zip(*(augment(self.images[i], self.points[i], rng) for i in chosen), strict=True)
        points = np.stack(points)
        poses = np.stack([pose_of(p) for p in points]).astype(np.float32)
        images = np.stack(faces).astype(np.float32) / 127.5 - 1.0
        return images, {"landmarks": points, "pose": poses}


def spread(predicted_points: np.ndarray, points: np.ndarray, mean_shape: np.ndarray) -> float:
    """Least-squares slope of the predicted points' offsets from `mean_shape` on the labelled points' offsets, over
    every coordinate: 1 when the network follows each face's shape, below 1 when it pulls faces toward the average.
    A keypoint flow between two faces moves the source by about this share of the true displacement, so what is
    missing is the source's own geometry carried into the swap (docs/demo_model.md)."""
    labelled = (points - mean_shape).ravel()
    predicted = (predicted_points - mean_shape).ravel()
    return float(np.dot(labelled, predicted) / max(float(np.dot(labelled, labelled)), 1e-12))


def accuracy(predicted_points: np.ndarray, predicted_pose: np.ndarray, points: np.ndarray,
             mean_shape: np.ndarray | None = None) -> dict[str, float]:
    """NME (% of the inter-ocular distance) and mean absolute pose errors (degrees) against dlib's points and
    their solvePnP fit; the pose's mean L2 error as `clipswap evaluate` reports it (pose_l2); with the training
    faces' `mean_shape` [68, 2], the points' `spread` about it too."""
    ocular = np.linalg.norm(points[:, EYE_CORNERS[0]] - points[:, EYE_CORNERS[1]], axis=1)
    nme = np.linalg.norm(predicted_points - points, axis=2).mean(axis=1) / ocular
    reference = np.stack([pose_of(p) for p in points])
    error = np.abs(predicted_pose - reference)
    result = {"nme_percent": float(100 * nme.mean()), "yaw_mae": float(error[:, 0].mean()),
              "pitch_mae": float(error[:, 1].mean()), "roll_mae": float(error[:, 2].mean()),
              "pose_mae": float(error.mean()),
              "pose_l2": float(np.linalg.norm(predicted_pose - reference, axis=1).mean()), "faces": int(len(points))}
    if mean_shape is not None:
        result["spread"] = spread(predicted_points, points, mean_shape)
    return result


def ms_per_face(model: GeometryNet, side: int, batch: int = 1, repeats: int = 20) -> float:
    """Wall time of one compiled inference call a face, at `batch`."""
    from clipswap.models.compile import compile_predict

    run = compile_predict(model)
    images = np.zeros((batch, side, side, 3), np.float32)
    run(images)
    started = time.perf_counter()
    for _ in range(repeats):
        run(images)
    return 1000 * (time.perf_counter() - started) / (repeats * batch)


def train_geometry(pairs_folder: str | Path, output: str | Path, *, steps: int = 2500, batch_size: int = 64,
                   learning_rate: float = 2e-3, seed: int = 0, head: str = "dense", input_size: int = INPUT_SIZE,
                   progress: bool = True) -> dict:
    """Train, evaluate on the held-out faces and write OUTPUT/geometry.keras + geometry.json; returns the manifest.

    `head` and `input_size` are GeometryNet's: the output head ("dense" or "heatmap") and the side it reads, a
    multiple of the backbone's stride (32).
    """
    from clipswap.checkpoints.geometry import save_geometry

    if steps < 1 or batch_size < 1 or not learning_rate > 0:
        raise GeometryTrainingError("--steps and --batch-size must be >= 1 and --learning-rate > 0")
    stride = total_stride(STRIDES)
    if head not in HEADS or input_size < stride or input_size % stride:
        raise GeometryTrainingError(f"--head must be one of {HEADS} and --input-size a multiple of the backbone's "
                                    f"stride {stride}, got {head!r} and {input_size}")
    started = time.perf_counter()
    output = Path(output)
    keras.utils.set_random_seed(seed)
    model = GeometryNet(input_size=input_size, head=head, name="geometry")
    data = load_geometry_data(pairs_folder, model.input_size)
    train = ~data.heldout
    if train.sum() < batch_size or data.heldout.sum() == 0:
        raise GeometryTrainingError(f"{pairs_folder} has {int(train.sum())} training and {int(data.heldout.sum())} "
                                    f"held-out faces with landmarks; need at least {batch_size} and 1")
    logger.info("geometry network: %d parameters, %d training faces, %d held-out faces", parameter_count(model),
                int(train.sum()), int(data.heldout.sum()))
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, steps)
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss={"landmarks": "mae", "pose": "mae"},
                  loss_weights={"landmarks": float(POSE_CROP), "pose": POSE_WEIGHT})
    batches = GeometryBatches(data.images[train], data.points[train], batch_size, steps, seed)
    history = model.fit(batches, epochs=1, verbose=1 if progress else 0)
    held_images = data.images[data.heldout].astype(np.float32) / 127.5 - 1.0
    predicted = model.predict(held_images, batch_size=128, verbose=0)
    average = data.points[train].mean(axis=0)
    result = accuracy(predicted["landmarks"], predicted["pose"], data.points[data.heldout], average)
    mean_shape = np.broadcast_to(average, data.points[data.heldout].shape)
    baseline = accuracy(mean_shape, np.broadcast_to(pose_of(mean_shape[0]), (len(mean_shape), 3)),
                        data.points[data.heldout])
    manifest_extra = {
        "accuracy": result,
        "mean_shape_baseline": baseline,
        "parameters": parameter_count(model),
        "ms_per_face_batch1": round(ms_per_face(model, model.input_size), 2),
        "pose_focal": POSE_FOCAL,
        "training": {"pairs": str(Path(pairs_folder).resolve()), "faces": int(train.sum()), "steps": steps,
                     "batch_size": batch_size, "learning_rate": learning_rate, "seed": seed, "head": head,
                     "input_size": input_size,
                     "final_loss": float(history.history["loss"][-1]),
                     "seconds": round(time.perf_counter() - started, 1),
                     "command": f"clipswap train-geometry --data PAIRS --output DIR --steps {steps} "
                                f"--batch-size {batch_size} --seed {seed} --head {head} --input-size {input_size}"},
    }
    save_geometry(model, output / "geometry.keras", **manifest_extra)
    logger.info("held-out NME %.2f %% (mean shape %.2f %%), pose MAE %.2f degrees (mean shape %.2f), spread %.3f",
                result["nme_percent"], baseline["nme_percent"], result["pose_mae"], baseline["pose_mae"],
                result["spread"])
    return {"output": str(output), **manifest_extra}


__all__ = ["POSE_FOCAL", "FaceBatches", "GeometryBatches", "GeometryTrainingError", "accuracy", "augment",
           "load_geometry_data", "pose_of", "spread", "train_geometry"]
