"""Differentiable CLIP augmentations of the swap (X_aug in paper eq. 2): random crop + random perspective.

Follows CLIPStyler's recipe (Kwon and Ye, CVPR 2022) adapted to aligned faces: each augmentation takes a square-ish
random crop covering `crop_fraction` of each side, applies a random perspective warp to it (every corner of the crop
moves inward by up to distortion/2 of the crop's side, independently in x and y, as torchvision's
RandomPerspective(distortion_scale) does; outside the warped quad is filled) and resamples the result to the output
size. CLIPStyler cuts 128-px patches from 512-px images (a quarter of the side); on a 256-px aligned face a quarter
would show one eye, so the default keeps 3/4 of the side and CLIP still sees a face.

All three steps are composed into one projective map per augmentation and applied by bilinear sampling written with
gathers, so the gradient w.r.t. the images is the exact adjoint of the forward op (TensorFlow's
ImageProjectiveTransformV3 gradient is an inverse warp, only an approximation of it). That maths is keras.ops and runs
on any backend; the seeded stateless draws that feed it (sample_augment_params, clip_augment, identity_augment) are
TensorFlow's and live in clipswap.losses.tf_only (which imports this module, never the other way round): the same seed
gives the same augmentations, in eager mode, in a tf.function and under XLA.
"""

from __future__ import annotations

import keras
from keras import ops

CLIP_N_AUG = 4
CLIP_DISTORTION = 0.5
CLIP_CROP_FRACTION = 0.75
# Black in [-1, 1] RGB, i.e. CLIPStyler's fill 0 on [0, 1] images.
CLIP_FILL_VALUE = -1.0
# Uniform draws per (sample, augmentation): the crop's x0 and y0, then (x, y) of each of the 4 corners.
AUGMENT_DRAWS = 10
# Tolerance (unit-square coordinates) for a sample on the crop's border to count as inside despite rounding.
_INSIDE_TOLERANCE = 1e-4
# The unit square's corners, top-left, top-right, bottom-right, bottom-left, as (x, y).
_SQUARE = ((0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0))
# Sign that moves each corner towards the centre: TL (+,+), TR (-,+), BR (-,-), BL (+,-).
_TOWARD_CENTRE = ((1.0, 1.0), (-1.0, 1.0), (-1.0, -1.0), (1.0, -1.0))


def check_augment_args(n_aug: int, distortion: float, crop_fraction: float) -> None:
    """ValueError unless 1 <= n_aug, 0 <= distortion < 1 and 0 < crop_fraction <= 1."""
    if not 0.0 <= distortion < 1.0:
        raise ValueError(f"distortion must be in [0, 1) (1 can collapse the crop to a point), got {distortion}")
    if not 0.0 < crop_fraction <= 1.0:
        raise ValueError(f"crop_fraction must be in (0, 1], got {crop_fraction}")
    if n_aug < 1:
        raise ValueError(f"n_aug must be at least 1, got {n_aug}")


def augment_params_from_draws(draws, height, width, distortion: float = CLIP_DISTORTION,
                              crop_fraction: float = CLIP_CROP_FRACTION) -> dict:
    """The crop boxes and perspective corners of `clip_augment` from uniform draws in [0, 1).

    Args:
        draws: [B, n_aug, AUGMENT_DRAWS] float32 uniform in [0, 1) (tf_only.sample_augment_params draws them).
        height, width: the input images' size (ints or scalar tensors).
        distortion, crop_fraction: as in clip_augment (check_augment_args).

    Returns:
        "crop_box": [B, n_aug, 4] float32 (x0, y0, crop_w, crop_h) in input pixels (x0, y0 continuous).
        "corners": [B, n_aug, 4, 2] float32 (x, y) where the crop's corners top-left, top-right, bottom-right,
            bottom-left land, in unit-square coordinates of the crop (0 = first pixel centre, 1 = last).
    """
    draws = ops.cast(draws, "float32")
    height = ops.cast(height, "float32")
    width = ops.cast(width, "float32")
    crop_w = ops.maximum(ops.round(crop_fraction * width), 2.0)
    crop_h = ops.maximum(ops.round(crop_fraction * height), 2.0)
    x0 = draws[..., 0] * (width - crop_w)
    y0 = draws[..., 1] * (height - crop_h)
    box = ops.stack([x0, y0, ops.broadcast_to(crop_w, ops.shape(x0)), ops.broadcast_to(crop_h, ops.shape(x0))],
                    axis=-1)
    batch, n_aug = ops.shape(draws)[0], ops.shape(draws)[1]
    inward = 0.5 * distortion * ops.reshape(draws[..., 2:], (batch, n_aug, 4, 2))
    square = ops.convert_to_tensor(_SQUARE, "float32")
    toward_centre = ops.convert_to_tensor(_TOWARD_CENTRE, "float32")
    return {"crop_box": box, "corners": square + toward_centre * inward}


def _solve_dtype() -> str:
    """float64, except on JAX without jax_enable_x64, which computes in float32 (and warns when asked for float64)."""
    if keras.backend.backend() == "jax":
        import jax

        return "float64" if jax.config.read("jax_enable_x64") else "float32"
    return "float64"


def homography_from_points(source, destination):
    """[N, 3, 3] projective maps sending each of the 4 source points to its destination point ([N, 4, 2] each).

    The 8x8 systems are solved in float64 where the backend has it (_solve_dtype); the maps are float32."""
    source, destination = ops.convert_to_tensor(source), ops.convert_to_tensor(destination)
    x, y = source[..., 0], source[..., 1]
    u, v = destination[..., 0], destination[..., 1]
    zeros, ones = ops.zeros_like(x), ops.ones_like(x)
    # u = (a x + b y + c) / (g x + h y + 1), v = (d x + e y + f) / (g x + h y + 1), linear in (a..h).
    rows_u = ops.stack([x, y, ones, zeros, zeros, zeros, -x * u, -y * u], axis=-1)
    rows_v = ops.stack([zeros, zeros, zeros, x, y, ones, -x * v, -y * v], axis=-1)
    system = ops.concatenate([rows_u, rows_v], axis=-2)  # [N, 8, 8]
    rhs = ops.concatenate([u, v], axis=-1)[..., None]  # [N, 8, 1]
    dtype = _solve_dtype()
    coefficients = ops.solve(ops.cast(system, dtype), ops.cast(rhs, dtype))[..., 0]
    matrix = ops.concatenate([coefficients, ops.ones_like(coefficients[..., :1])], axis=-1)
    return ops.cast(ops.reshape(matrix, (-1, 3, 3)), "float32")


def _bilinear_gather(images, image_index, x, y):
    """Bilinear samples of images [B, H, W, C] at pixel coordinates x, y [N, Ho, Wo] (inside [0, W-1] x [0, H-1])
    of image image_index [N] -> [N, Ho, Wo, C]. Built from gathers, whose gradient is the exact scatter-add."""
    shape = ops.shape(images)
    height, width = shape[1], shape[2]
    flat = ops.reshape(images, (-1, shape[3]))
    last_x = ops.cast(width - 1, "float32")
    last_y = ops.cast(height - 1, "float32")
    x0 = ops.clip(ops.floor(x), 0.0, last_x)
    y0 = ops.clip(ops.floor(y), 0.0, last_y)
    x1 = ops.minimum(x0 + 1.0, last_x)
    y1 = ops.minimum(y0 + 1.0, last_y)
    wx = (x - x0)[..., None]
    wy = (y - y0)[..., None]
    base = (image_index * height * width)[:, None, None]

    def pick(yy, xx):
        return ops.take(flat, base + ops.cast(yy, "int32") * width + ops.cast(xx, "int32"), axis=0)

    top = pick(y0, x0) * (1.0 - wx) + pick(y0, x1) * wx
    bottom = pick(y1, x0) * (1.0 - wx) + pick(y1, x1) * wx
    return top * (1.0 - wy) + bottom * wy


def apply_augment_params(images, params: dict, output_size: tuple[int, int] | None = None,
                         fill_value: float = CLIP_FILL_VALUE):
    """Apply `sample_augment_params`' crops and perspectives: [B, H, W, C] -> [B, n_aug, Ho, Wo, C] float32."""
    images = ops.cast(images, "float32")
    shape = ops.shape(images)
    batch, n_aug = ops.shape(params["crop_box"])[0], ops.shape(params["crop_box"])[1]
    out_h, out_w = (shape[1], shape[2]) if output_size is None else output_size
    count = batch * n_aug
    box = ops.reshape(params["crop_box"], (count, 4))
    corners = ops.reshape(params["corners"], (count, 4, 2))
    square = ops.broadcast_to(ops.convert_to_tensor(_SQUARE, "float32"), (count, 4, 2))
    # The warped crop at a point p shows the crop at H^-1 p, with H the map square -> corners.
    output_to_crop = homography_from_points(corners, square)

    crop_x0, crop_y0, crop_w, crop_h = (box[:, i, None, None] for i in range(4))
    # Output pixel centres -> crop pixel coordinates (half-pixel resize convention) -> unit square of the crop.
    grid_y, grid_x = ops.meshgrid(ops.arange(out_h, dtype="float32"), ops.arange(out_w, dtype="float32"),
                                  indexing="ij")
    px = ((grid_x[None] + 0.5) * crop_w / ops.cast(out_w, "float32") - 0.5) / (crop_w - 1.0)
    py = ((grid_y[None] + 0.5) * crop_h / ops.cast(out_h, "float32") - 0.5) / (crop_h - 1.0)
    m = output_to_crop[:, :, :, None, None]
    denominator = m[:, 2, 0] * px + m[:, 2, 1] * py + m[:, 2, 2]
    qx = (m[:, 0, 0] * px + m[:, 0, 1] * py + m[:, 0, 2]) / denominator
    qy = (m[:, 1, 0] * px + m[:, 1, 1] * py + m[:, 1, 2]) / denominator
    inside = (
        (qx >= -_INSIDE_TOLERANCE) & (qx <= 1.0 + _INSIDE_TOLERANCE)
        & (qy >= -_INSIDE_TOLERANCE) & (qy <= 1.0 + _INSIDE_TOLERANCE)
    )
    # Points outside are replaced by the fill below; clamping keeps their (discarded) gathers in range.
    x = crop_x0 + ops.clip(qx, 0.0, 1.0) * (crop_w - 1.0)
    y = crop_y0 + ops.clip(qy, 0.0, 1.0) * (crop_h - 1.0)
    # Augmentation a of image b is row b * n_aug + a.
    image_index = ops.arange(count, dtype="int32") // ops.cast(n_aug, "int32")
    sampled = _bilinear_gather(images, image_index, x, y)
    out = ops.where(inside[..., None], sampled, ops.convert_to_tensor(fill_value, "float32"))
    return ops.reshape(out, (batch, n_aug, out_h, out_w, shape[3]))


def shift_padding(size: int, max_shift: float) -> int:
    """Reflected border, in pixels, of identity_augment's shift on a side of `size` pixels: round(max_shift * size),
    at least 1."""
    return max(1, int(round(size * max_shift)))


#: BT.601 luma weights of R, G, B (OpenCV's grey conversion).
LUMA = (0.299, 0.587, 0.114)


def grey_where(images, flags):
    """The flagged images [B, S, S, 3] replaced by their BT.601 luma in all three channels (identity_augment's grey
    draw); a linear map, so the gradient reaches every channel of a grey image through its luma.

    Args:
        images: [B, S, S, 3] float.
        flags: [B] bool, True where the image turns grey.
    """
    luma = ops.sum(images * ops.convert_to_tensor(LUMA, images.dtype), axis=-1, keepdims=True)
    return ops.where(flags[:, None, None, None], ops.broadcast_to(luma, ops.shape(images)), images)


def shift_and_flip(images, offsets, flips, pad: int):
    """The moves of identity_augment: shift the batch by (offsets - pad) pixels with a reflected border, then flip
    the flagged images horizontally. Both are exact pixel moves, so the gradient reaches every pixel that stays in
    view unchanged.

    Args:
        images: [B, S, S, C] float, S static.
        offsets: [2] int (row, column) of the crop's corner in the padded image, each in [0, 2 * pad].
        flips: [B] bool, True where the image is mirrored.
        pad: shift_padding(S, max_shift).

    Returns:
        [B, S, S, C] in images' dtype.
    """
    size = images.shape[1]
    padded = ops.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect")
    # A slice with constant sizes: a dynamic slice XLA can compile (strided slicing with tensor bounds it cannot).
    shifted = ops.slice(padded, (0, offsets[0], offsets[1], 0), (-1, size, size, -1))
    return ops.where(flips[:, None, None, None], ops.flip(shifted, axis=2), shifted)
