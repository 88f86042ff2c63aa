"""Differentiable CLIP augmentations of the swap (X_aug in paper eq. 2): random crop + random perspective.

Follows CLIPStyler's recipe (REFERENCE.md section 8) adapted to aligned faces: each augmentation takes a square-ish
random crop covering `crop_fraction` of each side, applies a random perspective warp to it (every corner of the crop
moves inward by up to distortion/2 of the crop's side, independently in x and y, as torchvision's
RandomPerspective(distortion_scale) does; outside the warped quad is filled) and resamples the result to the output
size. CLIPStyler cuts 128-px patches from 512-px images (a quarter of the side); on a 256-px aligned face a quarter
would show one eye, so the default keeps 3/4 of the side and CLIP still sees a face.

All three steps are composed into one projective map per augmentation and applied by bilinear sampling written with
gathers, so the gradient w.r.t. the images is the exact adjoint of the forward op (TensorFlow's
ImageProjectiveTransformV3 gradient is an inverse warp, only an approximation of it). Randomness is stateless: the
same seed gives the same augmentations, in eager mode and in a tf.function.
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

CLIP_N_AUG = 4
CLIP_DISTORTION = 0.5
CLIP_CROP_FRACTION = 0.75
# Black in [-1, 1] RGB, i.e. CLIPStyler's fill 0 on [0, 1] images.
CLIP_FILL_VALUE = -1.0
# Tolerance (unit-square coordinates) for a sample on the crop's border to count as inside despite rounding.
_INSIDE_TOLERANCE = 1e-4


def _seed_tensor(seed: int | Sequence[int] | tf.Tensor) -> tf.Tensor:
    if isinstance(seed, int):
        return tf.constant([seed, 0], tf.int64)
    seed = tf.cast(tf.convert_to_tensor(seed), tf.int64)
    if seed.shape != (2,):
        raise ValueError(f"seed must be an int or a [2] integer tensor, got shape {seed.shape}")
    return seed


def sample_augment_params(
    batch: int | tf.Tensor,
    height: int | tf.Tensor,
    width: int | tf.Tensor,
    n_aug: int = CLIP_N_AUG,
    distortion: float = CLIP_DISTORTION,
    crop_fraction: float = CLIP_CROP_FRACTION,
    seed: int | Sequence[int] | tf.Tensor = 0,
) -> dict[str, tf.Tensor]:
    """Draw the random crop boxes and perspective corners of `clip_augment`, one set per (sample, augmentation).

    Returns:
        "crop_box": [B, n_aug, 4] float32 (x0, y0, crop_w, crop_h) in input pixels (x0, y0 continuous).
        "corners": [B, n_aug, 4, 2] float32 (x, y) where the crop's corners top-left, top-right, bottom-right,
            bottom-left land, in unit-square coordinates of the crop (0 = first pixel centre, 1 = last).
    """
    if not 0.0 <= distortion < 1.0:
        raise ValueError(f"distortion must be in [0, 1) (1 can collapse the crop to a point), got {distortion}")
    if not 0.0 < crop_fraction <= 1.0:
        raise ValueError(f"crop_fraction must be in (0, 1], got {crop_fraction}")
    if n_aug < 1:
        raise ValueError(f"n_aug must be at least 1, got {n_aug}")
    height = tf.cast(height, tf.float32)
    width = tf.cast(width, tf.float32)
    # Philox named explicitly: "auto_select" picks a different generator under XLA, changing the draws.
    draws = tf.random.stateless_uniform([batch, n_aug, 10], seed=_seed_tensor(seed), dtype=tf.float32, alg="philox")
    crop_w = tf.maximum(tf.round(crop_fraction * width), 2.0)
    crop_h = tf.maximum(tf.round(crop_fraction * height), 2.0)
    x0 = draws[..., 0] * (width - crop_w)
    y0 = draws[..., 1] * (height - crop_h)
    box = tf.stack([x0, y0, tf.broadcast_to(crop_w, tf.shape(x0)), tf.broadcast_to(crop_h, tf.shape(x0))], axis=-1)
    inward = 0.5 * distortion * tf.reshape(draws[..., 2:], [batch, n_aug, 4, 2])
    # Sign that moves each corner towards the centre: TL (+,+), TR (-,+), BR (-,-), BL (+,-).
    square = tf.constant([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    toward_centre = tf.constant([[1.0, 1.0], [-1.0, 1.0], [-1.0, -1.0], [1.0, -1.0]])
    return {"crop_box": box, "corners": square + toward_centre * inward}


def homography_from_points(source: tf.Tensor, destination: tf.Tensor) -> tf.Tensor:
    """[N, 3, 3] projective maps sending each of the 4 source points to its destination point ([N, 4, 2] each)."""
    x, y = source[..., 0], source[..., 1]
    u, v = destination[..., 0], destination[..., 1]
    zeros, ones = tf.zeros_like(x), tf.ones_like(x)
    # u = (a x + b y + c) / (g x + h y + 1), v = (d x + e y + f) / (g x + h y + 1), linear in (a..h).
    rows_u = tf.stack([x, y, ones, zeros, zeros, zeros, -x * u, -y * u], axis=-1)
    rows_v = tf.stack([zeros, zeros, zeros, x, y, ones, -x * v, -y * v], axis=-1)
    system = tf.concat([rows_u, rows_v], axis=-2)  # [N, 8, 8]
    rhs = tf.concat([u, v], axis=-1)[..., None]  # [N, 8, 1]
    coefficients = tf.linalg.solve(tf.cast(system, tf.float64), tf.cast(rhs, tf.float64))[..., 0]
    matrix = tf.concat([coefficients, tf.ones_like(coefficients[..., :1])], axis=-1)
    return tf.cast(tf.reshape(matrix, [-1, 3, 3]), tf.float32)


def _bilinear_gather(images: tf.Tensor, image_index: tf.Tensor, x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
    """Bilinear samples of images [B, H, W, C] at pixel coordinates x, y [N, Ho, Wo] (inside [0, W-1] x [0, H-1])
    of image image_index [N] -> [N, Ho, Wo, C]. Built from gathers, whose gradient is the exact scatter-add."""
    shape = tf.shape(images)
    height, width = shape[1], shape[2]
    flat = tf.reshape(images, [-1, shape[3]])
    x0 = tf.clip_by_value(tf.floor(x), 0.0, tf.cast(width - 1, tf.float32))
    y0 = tf.clip_by_value(tf.floor(y), 0.0, tf.cast(height - 1, tf.float32))
    x1 = tf.minimum(x0 + 1.0, tf.cast(width - 1, tf.float32))
    y1 = tf.minimum(y0 + 1.0, tf.cast(height - 1, tf.float32))
    wx = (x - x0)[..., None]
    wy = (y - y0)[..., None]
    base = (image_index * height * width)[:, None, None]

    def pick(yy: tf.Tensor, xx: tf.Tensor) -> tf.Tensor:
        return tf.gather(flat, base + tf.cast(yy, tf.int32) * width + tf.cast(xx, tf.int32))

    top = pick(y0, x0) * (1.0 - wx) + pick(y0, x1) * wx
    bottom = pick(y1, x0) * (1.0 - wx) + pick(y1, x1) * wx
    return top * (1.0 - wy) + bottom * wy


def apply_augment_params(
    images: tf.Tensor,
    params: dict[str, tf.Tensor],
    output_size: tuple[int, int] | None = None,
    fill_value: float = CLIP_FILL_VALUE,
) -> tf.Tensor:
    """Apply `sample_augment_params`' crops and perspectives: [B, H, W, C] -> [B, n_aug, Ho, Wo, C] float32."""
    images = tf.cast(images, tf.float32)
    shape = tf.shape(images)
    batch, n_aug = tf.shape(params["crop_box"])[0], tf.shape(params["crop_box"])[1]
    out_h, out_w = (shape[1], shape[2]) if output_size is None else output_size
    count = batch * n_aug
    box = tf.reshape(params["crop_box"], [count, 4])
    corners = tf.reshape(params["corners"], [count, 4, 2])
    square = tf.broadcast_to(tf.constant([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]), [count, 4, 2])
    # The warped crop at a point p shows the crop at H^-1 p, with H the map square -> corners.
    output_to_crop = homography_from_points(corners, square)

    crop_x0, crop_y0, crop_w, crop_h = (box[:, i, None, None] for i in range(4))
    # Output pixel centres -> crop pixel coordinates (half-pixel resize convention) -> unit square of the crop.
    grid_y, grid_x = tf.meshgrid(tf.range(out_h, dtype=tf.float32), tf.range(out_w, dtype=tf.float32), indexing="ij")
    px = ((grid_x[None] + 0.5) * crop_w / tf.cast(out_w, tf.float32) - 0.5) / (crop_w - 1.0)
    py = ((grid_y[None] + 0.5) * crop_h / tf.cast(out_h, tf.float32) - 0.5) / (crop_h - 1.0)
    m = output_to_crop[:, :, :, None, None]
    denominator = m[:, 2, 0] * px + m[:, 2, 1] * py + m[:, 2, 2]
    qx = (m[:, 0, 0] * px + m[:, 0, 1] * py + m[:, 0, 2]) / denominator
    qy = (m[:, 1, 0] * px + m[:, 1, 1] * py + m[:, 1, 2]) / denominator
    inside = (
        (qx >= -_INSIDE_TOLERANCE) & (qx <= 1.0 + _INSIDE_TOLERANCE)
        & (qy >= -_INSIDE_TOLERANCE) & (qy <= 1.0 + _INSIDE_TOLERANCE)
    )
    # Points outside are replaced by the fill below; clamping keeps their (discarded) gathers in range.
    x = crop_x0 + tf.clip_by_value(qx, 0.0, 1.0) * (crop_w - 1.0)
    y = crop_y0 + tf.clip_by_value(qy, 0.0, 1.0) * (crop_h - 1.0)
    image_index = tf.repeat(tf.range(batch), n_aug)
    sampled = _bilinear_gather(images, image_index, x, y)
    out = tf.where(inside[..., None], sampled, tf.cast(fill_value, tf.float32))
    return tf.reshape(out, [batch, n_aug, out_h, out_w, shape[3]])


def clip_augment(
    images: tf.Tensor,
    n_aug: int = CLIP_N_AUG,
    distortion: float = CLIP_DISTORTION,
    crop_fraction: float = CLIP_CROP_FRACTION,
    seed: int | Sequence[int] | tf.Tensor = 0,
    output_size: tuple[int, int] | None = None,
    fill_value: float = CLIP_FILL_VALUE,
) -> tf.Tensor:
    """X_aug: n_aug random crop + perspective augmentations of each image, differentiable w.r.t. the images.

    Args:
        images: [B, H, W, 3] RGB in [-1, 1] (the swaps X_swap).
        n_aug: augmentations per image (4 by our decision).
        distortion: perspective strength in [0, 1); 0.5 as in CLIPStyler (torchvision distortion_scale).
        crop_fraction: side of the random crop as a fraction of the image side, in (0, 1]; 1 disables cropping.
        seed: int or [2] integer tensor for the stateless draws (vary it per step, e.g. [run_seed, step]).
        output_size: (Ho, Wo) the crops are resampled to; None keeps (H, W). CLIP's own resize to 224 happens in the
            CLIP encoder's preprocessing, not here.
        fill_value: value outside the warped quad; -1 is black in [-1, 1] (CLIPStyler fills 0 on [0, 1] images).

    Returns:
        [B, n_aug, Ho, Wo, 3] float32 in [-1, 1].
    """
    images = tf.convert_to_tensor(images)
    if images.shape.rank != 4:
        raise ValueError(f"clip_augment expects [B, H, W, C] images, got shape {images.shape}")
    shape = tf.shape(images)
    params = sample_augment_params(shape[0], shape[1], shape[2], n_aug, distortion, crop_fraction, seed)
    return apply_augment_params(images, params, output_size, fill_value)


def identity_augment(images: tf.Tensor, seed: int | Sequence[int] | tf.Tensor, max_shift: float = 1 / 16) -> tf.Tensor:
    """Random shift and horizontal flip of the swap before the identity encoder (the identity loss's expectation
    over transformations): a pattern that steers the encoder only at one exact pixel placement no longer pays.

    One integer shift (dx, dy), each uniform in [-max_shift * S, max_shift * S], for the whole batch (reflected
    border), and a horizontal flip of each image with probability 1/2. Both are exact pixel moves, so the gradient
    reaches every pixel that stays in view unchanged.

    Args:
        images: [B, S, S, 3] float32 in [-1, 1].
        seed: stateless seed (int or [2] int tensor).
        max_shift: largest shift as a fraction of the side.

    Returns:
        [B, S, S, 3] float32.
    """
    seed = _seed_tensor(seed)
    size = images.shape[1]
    pad = max(1, int(round(size * max_shift)))
    padded = tf.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]], mode="REFLECT")
    offsets = tf.random.stateless_uniform([2], seed=seed, minval=0, maxval=2 * pad + 1, dtype=tf.int32)
    # tf.slice with constant sizes: a dynamic slice XLA can compile (strided slicing with tensor bounds it cannot).
    shifted = tf.slice(padded, tf.stack([0, offsets[0], offsets[1], 0]), [-1, size, size, -1])
    flips = tf.random.stateless_uniform([tf.shape(images)[0]], seed=seed + tf.constant([0, 1], tf.int64)) < 0.5
    return tf.where(flips[:, None, None, None], tf.reverse(shifted, axis=[2]), shifted)
