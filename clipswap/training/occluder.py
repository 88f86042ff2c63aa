"""`clipswap train-occluder`: train the occluder network (clipswap.models.occluder) on synthetic occlusions.

Data: the aligned crops and dlib landmarks of a `clipswap pairs` folder (clipswap.training.geometry's
load_geometry_data); the held-out people are never trained on and give the accuracy check. No photo comes with an
occlusion label, so every label is drawn: each training face gets geometry's augmentation (flip, rotation, scale,
shift, colour), then with probability CLEAN nothing more (its label all zeros: the face itself, its eyes, brows,
mouth and beard, is never an occluder), else one or both of

* **sunglasses** on the eyes' landmarks: two lenses (ellipses or rounded rectangles, a random size about the eye
  span, turned with the eye line), dark and tinted, nearly opaque, with a vertical shading, sometimes a specular
  highlight, a frame, a bridge and temples towards the sides of the face;
* **an object** over the face: an ellipse, a convex polygon, or a bar coming in from the crop's border with a blob
  at its end (a hand and arm, a microphone), textured with another training face's crop (skin, hair, clothes,
  background) or a flat noisy colour, its edge anti-aliased.

The label is the union of what was drawn, where its opacity is at least one half; the composite is blurred a little
half the time, so an occluder's edges are as soft as the photo's.

Loss: per-pixel binary cross-entropy; Adam with a cosine decay to zero.

Accuracy (held-out faces, one fixed synthetic occlusion each, and the same faces clean): the IoU and recall of the
thresholded map (0.5) against the drawn label, and the false-positive share: the part of each clean face's landmark
hull that the network calls occluded (what a false alarm costs a swap: that much of the face stays the target's).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import cv2
import keras
import numpy as np

from clipswap.errors import ClipswapError
from clipswap.models.geometry import parameter_count
from clipswap.models.occluder import INPUT_SIZE, OccluderNet
from clipswap.training.geometry import FaceBatches, augment, load_geometry_data

logger = logging.getLogger(__name__)

#: Shares of the training faces: left clean; given sunglasses; given an object (the rest get both).
CLEAN = 0.3
SUNGLASSES = 0.3
OBJECT = 0.3
#: Sub-pixel precision of the anti-aliased polygons (cv2's `shift`).
_SHIFT = 4
#: dlib's eye points (image-left eye, image-right eye) and jaw.
_EYES = (tuple(range(36, 42)), tuple(range(42, 48)))


class OccluderTrainingError(ClipswapError, ValueError):
    """The occluder network cannot be trained from this input (the message says what to do)."""


def _fill(canvas: np.ndarray, polygon: np.ndarray) -> None:
    """Fill `polygon` ([K, 2] float pixels) with 1 on the float32 `canvas`, anti-aliased."""
    cv2.fillPoly(canvas, [np.round(polygon * (1 << _SHIFT)).astype(np.int32)], 1.0, cv2.LINE_AA, _SHIFT)


def _stroke(canvas: np.ndarray, polygon: np.ndarray, thickness: int, closed: bool = True) -> None:
    cv2.polylines(canvas, [np.round(polygon * (1 << _SHIFT)).astype(np.int32)], closed, 1.0, thickness,
                  cv2.LINE_AA, _SHIFT)


def _lens(centre: np.ndarray, half: np.ndarray, angle: float, power: float) -> np.ndarray:
    """[64, 2] outline of a superellipse |x/a|^p + |y/b|^p = 1 (p = 2: an ellipse; larger: a rounded rectangle)
    about `centre`, half-axes `half`, turned by `angle` radians."""
    t = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    c, s = np.cos(t), np.sin(t)
    x = half[0] * np.sign(c) * np.abs(c) ** (2 / power)
    y = half[1] * np.sign(s) * np.abs(s) ** (2 / power)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return np.stack([x, y], axis=1) @ rotation.T + centre


#: Lenses of clear glasses (draw_glasses): nearly transparent, a pale reflection; the frame is what shows.
CLEAR_LENS_OPACITY = (0.0, 0.2)
CLEAR_LENS_VALUE = (150.0, 255.0)


def draw_sunglasses(side: int, pixels: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Sunglasses on a face with 68 landmarks `pixels` ([68, 2] crop pixels): (colour [S, S, 3] float32 0-255,
    opacity [S, S] float32 in [0, 1])."""
    return draw_glasses(side, pixels, rng)


def draw_clear_glasses(side: int, pixels: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Clear glasses (a frame, a bridge, temples, lenses one can see the eyes through) on a face with 68 landmarks
    `pixels`: draw_glasses with CLEAR_LENS_OPACITY and CLEAR_LENS_VALUE."""
    return draw_glasses(side, pixels, rng, lens_opacity=CLEAR_LENS_OPACITY, lens_value=CLEAR_LENS_VALUE)


def draw_glasses(side: int, pixels: np.ndarray, rng: np.random.Generator,
                 lens_opacity: tuple[float, float] = (0.8, 1.0),
                 lens_value: tuple[float, float] = (5.0, 70.0)) -> tuple[np.ndarray, np.ndarray]:
    """Glasses on a face with 68 landmarks `pixels` ([68, 2] crop pixels): (colour [S, S, 3] float32 0-255,
    opacity [S, S] float32 in [0, 1]). The lenses' opacity and grey value are drawn from the two ranges (the
    defaults: dark, nearly opaque sunglasses); the frame is opaque."""
    eyes = [pixels[list(indices)].mean(axis=0) for indices in _EYES]
    span = float(np.linalg.norm(eyes[1] - eyes[0]))
    axis = (eyes[1] - eyes[0]) / max(span, 1e-6)
    angle = float(np.arctan2(axis[1], axis[0]))
    half_width = rng.uniform(0.36, 0.5) * span
    half = np.array([half_width, half_width * rng.uniform(0.65, 1.0)])
    power = rng.choice([2.0, rng.uniform(2.5, 5.0)])
    drop = np.array([-axis[1], axis[0]]) * rng.uniform(-0.05, 0.12) * span
    lenses = [_lens(eye + drop + rng.normal(0, 0.03 * span, 2), half, angle, power) for eye in eyes]
    colour = np.zeros((side, side, 3), np.float32)
    opacity = np.zeros((side, side), np.float32)
    lens_mask = np.zeros((side, side), np.float32)
    for outline in lenses:
        _fill(lens_mask, outline)
    base = rng.uniform(*lens_value) * (1 + rng.uniform(-0.35, 0.35, 3))
    rows = np.arange(side, dtype=np.float32)[:, None, None] - float(np.mean([e[1] for e in eyes]))
    shading = rng.uniform(-30, 30) * rows / max(half[1], 1.0)
    colour[:] = np.clip(base + shading, 0, 255)
    opacity = lens_mask * rng.uniform(*lens_opacity)
    if rng.random() < 0.5:
        glint = np.zeros((side, side), np.float32)
        spot = lenses[int(rng.integers(2))].mean(axis=0) + rng.uniform(-0.4, 0.4, 2) * half
        cv2.ellipse(glint, (int(spot[0]), int(spot[1])),
                    (max(1, int(half[0] * rng.uniform(0.1, 0.35))), max(1, int(half[1] * rng.uniform(0.05, 0.2)))),
                    float(rng.uniform(0, 180)), 0, 360, 1.0, -1)
        glint = cv2.GaussianBlur(glint, (0, 0), 1.0) * lens_mask * rng.uniform(0.3, 0.8)
        colour = colour * (1 - glint[..., None]) + 255.0 * glint[..., None]
    frame = np.zeros((side, side), np.float32)
    thickness = int(rng.integers(1, 4))
    for outline in lenses:
        _stroke(frame, outline, thickness)
    # The bridge joins the lenses' points nearest each other; the temples leave their outermost points.
    inner = [outline[np.argmax((outline - eyes[k]) @ (eyes[1 - k] - eyes[k]))] for k, outline in enumerate(lenses)]
    _stroke(frame, np.stack(inner), thickness, closed=False)
    if rng.random() < 0.7:
        outer = [outline[np.argmax((outline - eyes[k]) @ (eyes[k] - eyes[1 - k]))] for k, outline in
                 enumerate(lenses)]
        sides = [pixels[1], pixels[15]]
        for start, end in zip(outer, sides, strict=True):
            _stroke(frame, np.stack([start, end]), thickness, closed=False)
    frame = np.clip(frame, 0, 1)
    frame_colour = rng.uniform(0, 60, 3) if rng.random() < 0.7 else np.full(3, rng.uniform(120, 220))
    colour = colour * (1 - frame[..., None]) + frame_colour * frame[..., None]
    return np.clip(colour, 0.0, 255.0), np.maximum(opacity, frame)


def glasses_on_faces(images: np.ndarray, points: np.ndarray, probability: float, seed) -> np.ndarray:
    """Clear glasses (draw_clear_glasses) drawn on each face of a batch with `probability`, a face's draws seeded by
    (`seed`, its index in the batch): the source-side augmentation of training (AugmentationConfig.source_glasses).

    Args:
        images: [B, S, S, 3] float32 RGB in [-1, 1].
        points: [B, 68, 2] landmarks in units of the side (a face whose points are not all finite is left as it is).
        probability: in [0, 1].
        seed: an int or a sequence of ints (the stream's seed and the step).

    Returns:
        [B, S, S, 3] float32 in [-1, 1], a new array.
    """
    images = np.array(images, np.float32, copy=True)
    side = images.shape[1]
    base = [int(v) for v in np.atleast_1d(np.asarray(seed, np.int64))]
    for index, (image, unit) in enumerate(zip(images, np.asarray(points, np.float64), strict=True)):
        rng = np.random.default_rng([*base, index])
        if rng.random() >= probability or not np.isfinite(unit).all():
            continue
        colour, opacity = draw_clear_glasses(side, unit * side - 0.5, rng)
        pixels = (image + 1.0) * 127.5
        pixels = pixels * (1 - opacity[..., None]) + colour * opacity[..., None]
        images[index] = np.clip(pixels / 127.5 - 1.0, -1.0, 1.0)
    return images


def draw_object(side: int, pixels: np.ndarray, donor: np.ndarray,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """An object over the face of landmarks `pixels` ([68, 2] crop pixels), textured with `donor` ([S, S, 3] uint8,
    another face crop) or a flat colour: (colour [S, S, 3] float32 0-255, opacity [S, S] float32 in [0, 1])."""
    low, high = pixels.min(axis=0), pixels.max(axis=0)
    width = float(max(high[0] - low[0], 1.0))
    shape = np.zeros((side, side), np.float32)
    kind = rng.integers(3)
    if kind == 0:
        centre = rng.uniform(low, high)
        axes = (int(rng.uniform(0.12, 0.5) * width), int(rng.uniform(0.12, 0.5) * width))
        cv2.ellipse(shape, (int(centre[0]), int(centre[1])), axes, float(rng.uniform(0, 180)), 0, 360, 1.0, -1,
                    cv2.LINE_AA)
    elif kind == 1:
        centre = rng.uniform(low, high)
        points = centre + rng.normal(0, rng.uniform(0.1, 0.25) * width, (int(rng.integers(5, 10)), 2))
        _fill(shape, cv2.convexHull(points.astype(np.float32))[:, 0])
    else:
        end = rng.uniform(low, high)
        direction = rng.normal(size=2)
        direction /= max(float(np.linalg.norm(direction)), 1e-6)
        start = end + direction * 2.0 * side
        normal = np.array([-direction[1], direction[0]]) * rng.uniform(0.08, 0.2) * width
        _fill(shape, np.stack([start + normal, end + normal, end - normal, start - normal]))
        if rng.random() < 0.7:
            radius = int(rng.uniform(0.12, 0.3) * width)
            cv2.circle(shape, (int(end[0]), int(end[1])), max(radius, 2), 1.0, -1, cv2.LINE_AA)
    if rng.random() < 0.7:
        shift = rng.integers(-side // 2, side // 2, 2)
        colour = np.roll(donor, tuple(int(s) for s in shift), axis=(0, 1)).astype(np.float32)
        if rng.random() < 0.5:
            colour = colour[:, ::-1]
        colour = colour * rng.uniform(0.7, 1.3, 3)
    else:
        colour = rng.uniform(0, 255, 3) + rng.normal(0, rng.uniform(2, 15), (side, side, 3))
    opacity = cv2.GaussianBlur(np.clip(shape, 0, 1), (0, 0), rng.uniform(0.3, 1.0))
    return np.clip(colour, 0, 255).astype(np.float32), opacity


def occlude(image: np.ndarray, points: np.ndarray, donor: np.ndarray, rng: np.random.Generator,
            force: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """One training face (module docstring): geometry's augmentation, then the drawn occluders.

    Args:
        image: [S, S, 3] uint8 RGB; points: [68, 2] landmarks in units of the side; donor: [S, S, 3] uint8, another
        face; force: always draw an occluder (the accuracy check).

    Returns:
        ([S, S, 3] uint8 composite, [S, S] float32 label in {0, 1}).
    """
    side = image.shape[0]
    face, unit = augment(image, points, rng)
    pixels = unit * side - 0.5
    composite = face.astype(np.float32)
    label = np.zeros((side, side), np.float32)
    draw = rng.random()
    if force:
        draw = CLEAN + draw * (1 - CLEAN)
    layers = []
    if draw >= CLEAN and draw < CLEAN + SUNGLASSES or draw >= CLEAN + SUNGLASSES + OBJECT:
        layers.append(draw_sunglasses(side, pixels, rng))
    if draw >= CLEAN + SUNGLASSES:
        layers.append(draw_object(side, pixels, donor, rng))
    for colour, opacity in layers:
        composite = composite * (1 - opacity[..., None]) + colour * opacity[..., None]
        label = np.maximum(label, (opacity >= 0.5).astype(np.float32))
    if rng.random() < 0.5:
        composite = cv2.GaussianBlur(composite, (0, 0), rng.uniform(0.3, 0.9))
    return np.clip(composite, 0, 255).astype(np.uint8), label


class OccluderBatches(FaceBatches):
    """Training batches: (images [B, S, S, 3] float32 in [-1, 1], labels [B, S, S, 1] float32), drawn with
    replacement from the training faces, each with another as its object's donor."""

    def __getitem__(self, index: int):
        rng = self.rng(index)
        chosen = rng.integers(len(self.images), size=(self.batch_size, 2))
        faces, labels = zip(*(occlude(self.images[i], self.points[i], self.images[j], rng) for i, j in chosen),
                            strict=True)
        return np.stack(faces).astype(np.float32) / 127.5 - 1.0, np.stack(labels)[..., None]


def face_hulls(points: np.ndarray, side: int) -> np.ndarray:
    """[N, S, S] bool: each face's convex hull of its 68 landmarks (units of the side)."""
    hulls = np.zeros((len(points), side, side), np.float32)
    for hull, unit in zip(hulls, points, strict=True):
        _fill(hull, cv2.convexHull((unit * side - 0.5).astype(np.float32))[:, 0])
    return hulls >= 0.5


def accuracy(occluded_prediction: np.ndarray, labels: np.ndarray, clean_prediction: np.ndarray,
             hulls: np.ndarray) -> dict[str, float]:
    """IoU and recall (%) of the thresholded maps of occluded faces against their labels, over all their pixels;
    the false-positive share (%): the mean part of each clean face's hull called occluded (module docstring).

    Args:
        occluded_prediction, labels, clean_prediction: [N, S, S] in [0, 1]; hulls: [N, S, S] bool.
    """
    predicted, truth = occluded_prediction >= 0.5, labels >= 0.5
    union = float(np.logical_or(predicted, truth).sum())
    overlap = float(np.logical_and(predicted, truth).sum())
    alarms = [(clean >= 0.5)[hull].mean() for clean, hull in zip(clean_prediction, hulls, strict=True) if hull.any()]
    return {"iou_percent": 100 * overlap / max(union, 1.0), "recall_percent": 100 * overlap / max(truth.sum(), 1.0),
            "false_positive_percent": 100 * float(np.mean(alarms)) if alarms else 0.0, "faces": int(len(labels))}


def train_occluder(pairs_folder: str | Path, output: str | Path, *, steps: int = 1500, batch_size: int = 32,
                   learning_rate: float = 3e-3, seed: int = 0, progress: bool = True) -> dict:
    """Train, evaluate on the held-out faces and write OUTPUT/occluder.keras + occluder.json; returns the manifest's
    extra fields."""
    from clipswap.checkpoints.occluder import save_occluder
    from clipswap.training.geometry import ms_per_face

    if steps < 1 or batch_size < 1 or not learning_rate > 0:
        raise OccluderTrainingError("--steps and --batch-size must be >= 1 and --learning-rate > 0")
    started = time.perf_counter()
    output = Path(output)
    keras.utils.set_random_seed(seed)
    model = OccluderNet(name="occluder")
    try:
        data = load_geometry_data(pairs_folder, model.input_size)
    except ClipswapError as error:
        raise OccluderTrainingError(str(error)) from error
    train = ~data.heldout
    if train.sum() < 2 or data.heldout.sum() == 0:
        raise OccluderTrainingError(f"{pairs_folder} has {int(train.sum())} training and {int(data.heldout.sum())} "
                                    "held-out faces with landmarks; need at least 2 and 1")
    logger.info("occluder network: %d parameters, %d training faces, %d held-out faces", parameter_count(model),
                int(train.sum()), int(data.heldout.sum()))
    model.compile(optimizer=keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(learning_rate, steps)),
                  loss="binary_crossentropy")
    history = model.fit(OccluderBatches(data.images[train], data.points[train], batch_size, steps, seed), epochs=1,
                        verbose=1 if progress else 0)
    held_images, held_points = data.images[data.heldout], data.points[data.heldout]
    rng = np.random.default_rng([seed, 1 << 20])
    donors = rng.permutation(len(held_images))
    occluded, labels = zip(*(occlude(image, points, held_images[donor], rng, force=True)
                             for image, points, donor in zip(held_images, held_points, donors, strict=True)),
                           strict=True)

    def predict(images) -> np.ndarray:
        return model.predict(np.stack(images).astype(np.float32) / 127.5 - 1.0, batch_size=128, verbose=0)[..., 0]

    result = accuracy(predict(occluded), np.stack(labels), predict(held_images),
                      face_hulls(held_points, model.input_size))
    extra = {
        "accuracy": result,
        "parameters": parameter_count(model),
        "ms_per_face_batch1": round(ms_per_face(model, model.input_size), 2),
        "training": {"pairs": str(Path(pairs_folder).resolve()), "faces": int(train.sum()), "steps": steps,
                     "batch_size": batch_size, "learning_rate": learning_rate, "seed": seed,
                     "final_loss": float(history.history["loss"][-1]),
                     "seconds": round(time.perf_counter() - started, 1),
                     "command": f"clipswap train-occluder --data PAIRS --output DIR --steps {steps} "
                                f"--batch-size {batch_size} --learning-rate {learning_rate} --seed {seed}"},
    }
    save_occluder(model, output / "occluder.keras", **extra)
    logger.info("held-out IoU %.1f %%, recall %.1f %%, false positives %.2f %% of clean faces",
                result["iou_percent"], result["recall_percent"], result["false_positive_percent"])
    return {"output": str(output), **extra}


__all__ = ["CLEAN", "CLEAR_LENS_OPACITY", "CLEAR_LENS_VALUE", "OBJECT", "SUNGLASSES", "INPUT_SIZE", "OccluderBatches",
           "OccluderTrainingError", "accuracy", "draw_clear_glasses", "draw_glasses", "draw_object", "draw_sunglasses",
           "face_hulls", "glasses_on_faces", "occlude", "train_occluder"]
