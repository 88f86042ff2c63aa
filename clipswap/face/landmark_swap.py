"""A classical, non-learned face swap on dlib's 68 landmarks: the evaluation baseline `--model landmarks` and the
teacher (pseudo-target) of the demo model's training pairs.

    result = landmark_swap(source_rgb, source_68, target_rgb, target_68)

Steps (the classical recipe of Delaunay-warp face swaps):
1. Piecewise-affine warp of the source face onto the target's landmarks (a Delaunay triangulation of the target
   points, one affine map a triangle, sampled with OpenCV's remap). The warped face has the source's
   texture (eyes, brows, nose, mouth, skin) in the target's geometry, pose and expression.
2. Colour transfer (Reinhard et al. 2001): the warped face's per-channel mean and standard deviation in CIE L*a*b*
   are matched to the target's inside the face mask, so skin tone and lighting follow the target.
3. Poisson blending (OpenCV `seamlessClone`, Perez et al. 2003) of the face region into the target, which hides the
   seam (in a reflection-padded copy, so a face that fills its image, as in an aligned crop, is cloned too); or,
   with `blend="alpha"`, a feathered alpha composite. The padding matters in the demo model's 128 px crops, where
   the forehead points reach the crop's edge: before it OpenCV could not clone those faces and the swap fell back
   to the alpha blend, which scored 3 % ID retrieval on its own (docs/demo_model.md).

The face region is the convex hull of the target's 68 points (jaw line and brows) plus ten forehead points above
the brows (`with_forehead`), shrunk a little so the warp's edge triangles, which stretch the most, stay out of it.
The forehead matters: on 100 held-out LFW pairs judged by dlib (docs/demo_model.md) the 68-point hull alone gave
36 % ID retrieval and 44 % of swaps closer to the source than to the target; with the forehead (0.2) 64 % and 77 %
(0.3: 65 % and 80 %, but pose error 7.6 degrees against 6.9).
Images are [H, W, 3] RGB uint8; landmarks [68, 2] (x, y) pixels in their own image (iBUG 300-W order,
clipswap.face.landmarks68).
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy.spatial import Delaunay, QhullError

from clipswap.errors import ClipswapError

BLENDS = ("poisson", "alpha")
#: Shrink of the face hull towards its centroid before blending: the outermost triangles of the warp stretch the
#: most and carry the source's cheek outline, so the mask keeps 92 % of the hull's size (our choice).
HULL_SHRINK = 0.92
#: The points that drive the warp: all but the inner lip contour (60-67), whose corners coincide with the outer
#: corners 48/54 on a closed mouth and give zero-area triangles.
WARP_POINTS = np.r_[0:60]
#: Height of the forehead points above the brows, as a fraction of the chin-to-nose-bridge distance (our choice,
#: measured in docs/demo_model.md; 0 keeps the 68-point hull).
FOREHEAD = 0.2
#: Reflection padding around the images for the Poisson solve (pixels), so a face touching the border can be cloned.
POISSON_PAD = 8
#: Feather of the alpha blend, as a fraction of the face hull's width (our choice).
FEATHER_FRACTION = 0.06
#: Where warp_to_landmarks takes each triangle's barycentric transform from: "qhull" (scipy's, the reference: every
#: photo and video swap) or "numpy" (the closed-form 2 x 2 inverse, for the live stream: qhull solves each triangle
#: with three LAPACK calls, which cost 4-18 ms a face on a loaded 2-core CPU when OpenBLAS wakes its threads for
#: them, against about 0.1 ms here; the two agree to about 1e-12 px).
TRANSFORMS = ("qhull", "numpy")
#: Reciprocal condition number under which a triangle counts as flat and gets no source pixels, as qhull decides
#: (its limit: 1000 machine epsilons).
FLAT_RCOND = 1000 * np.finfo(np.float64).eps


class LandmarkSwapError(ClipswapError, ValueError):
    """The landmarks cannot drive a swap (wrong shape, degenerate or outside the image)."""


def _check(points: np.ndarray, image: np.ndarray, role: str) -> np.ndarray:
    points = np.asarray(points, dtype=np.float64)
    if points.shape != (68, 2) or not np.all(np.isfinite(points)):
        raise LandmarkSwapError(f"the {role} needs 68 finite (x, y) landmarks of shape (68, 2), got {points.shape}")
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise LandmarkSwapError(f"the {role} image must be [H, W, 3] uint8 RGB, got {image.shape} {image.dtype}")
    return points


def with_forehead(landmarks: np.ndarray, fraction: float, shape: tuple[int, int] | None = None) -> np.ndarray:
    """The 68 landmarks followed by 10 forehead points: [68, 2] -> [78, 2] (or the 68 alone when `fraction` is 0).

    Each brow point (17-26) is moved up the face's vertical axis (chin 8 -> nose bridge 27) by `fraction` of that
    axis's length; with `shape` (H, W) the new points are clipped into the image, so a warp never samples outside it.
    """
    points = np.asarray(landmarks, dtype=np.float64)
    if fraction <= 0:
        return points
    axis = points[27] - points[8]
    length = float(np.linalg.norm(axis))
    up = axis / max(length, 1e-6)
    forehead = points[17:27] + fraction * length * up
    if shape is not None:
        forehead = np.clip(forehead, 0.0, [shape[1] - 1.0, shape[0] - 1.0])
    return np.concatenate([points, forehead])


def face_hull_mask(landmarks: np.ndarray, shape: tuple[int, int], shrink: float = HULL_SHRINK) -> np.ndarray:
    """[H, W] uint8 mask (255 inside) of the convex hull of the [N, 2] landmarks, shrunk towards its centroid."""
    points = np.asarray(landmarks, dtype=np.float64)
    centre = points.mean(axis=0)
    hull = cv2.convexHull(np.round(centre + shrink * (points - centre)).astype(np.int32))
    mask = np.zeros(shape, dtype=np.uint8)
    cv2.fillConvexPoly(mask, hull, 255)
    return mask


def swap_region(target_68: np.ndarray, shape: tuple[int, int], forehead: float = FOREHEAD) -> np.ndarray:
    """[H, W] uint8 mask (255 inside) of the pixels landmark_swap replaces: the hull of the target's 68 points and
    forehead points, shrunk by HULL_SHRINK. Outside it the swap returns the target exactly."""
    return face_hull_mask(with_forehead(target_68, forehead, shape), shape)


def reinhard_transfer(image: np.ndarray, reference: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Match `image`'s L*a*b* mean and standard deviation inside `mask` to `reference`'s (Reinhard et al. 2001).

    Args:
        image, reference: [H, W, 3] uint8 RGB, same shape.
        mask: [H, W] where > 0 marks the pixels whose statistics are matched (both images).

    Returns:
        [H, W, 3] uint8 RGB: the whole of `image` shifted and scaled per channel.
    """
    inside = np.asarray(mask) > 0
    if not inside.any():
        return image.copy()
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB).astype(np.float64)
    ref = cv2.cvtColor(reference, cv2.COLOR_RGB2LAB).astype(np.float64)
    mean, std = lab[inside].mean(axis=0), lab[inside].std(axis=0)
    ref_mean, ref_std = ref[inside].mean(axis=0), ref[inside].std(axis=0)
    out = (lab - mean) * (ref_std / np.maximum(std, 1e-6)) + ref_mean
    return cv2.cvtColor(np.clip(np.round(out), 0, 255).astype(np.uint8), cv2.COLOR_LAB2RGB)


def triangle_transforms(points: np.ndarray, simplices: np.ndarray) -> np.ndarray:
    """Barycentric transforms of triangles, laid out as scipy's Delaunay.transform: [T, 3, 2] float64 where for a
    point p in triangle t, transform[t, :2] @ (p - transform[t, 2]) gives its first two barycentric coordinates
    (the third is one minus their sum) and transform[t, 2] is the triangle's third corner. A flat triangle
    (reciprocal condition number in the 1-norm under FLAT_RCOND) is all NaN, as qhull marks it.

    Args:
        points: [N, 2] float64 (x, y).
        simplices: [T, 3] indices into `points`.
    """
    corners = np.asarray(points, np.float64)[np.asarray(simplices)]  # [T, 3, 2]
    origin = corners[:, 2]
    # Column j of each 2 x 2 matrix is corner j minus the third corner.
    a, c = corners[:, 0, 0] - origin[:, 0], corners[:, 0, 1] - origin[:, 1]
    b, d = corners[:, 1, 0] - origin[:, 0], corners[:, 1, 1] - origin[:, 1]
    det = a * d - b * c
    with np.errstate(divide="ignore", invalid="ignore"):
        inverse = np.stack([np.stack([d, -b], axis=1), np.stack([-c, a], axis=1)], axis=1) / det[:, None, None]
        norm = np.maximum(np.abs(a) + np.abs(c), np.abs(b) + np.abs(d))
        inverse_norm = np.abs(inverse).sum(axis=1).max(axis=1)
        flat = ~(1.0 / (norm * inverse_norm) >= FLAT_RCOND)
    transform = np.concatenate([inverse, origin[:, None, :]], axis=1)
    transform[flat] = np.nan
    return transform


def warp_to_landmarks(source: np.ndarray, source_68: np.ndarray, target_68: np.ndarray,
                      shape: tuple[int, int], transforms: str = "qhull") -> np.ndarray:
    """The source face piecewise-affinely warped onto the target's landmarks: [H, W, 3] uint8 of `shape`, zero
    outside the triangulated region. Landmarks are [68, 2] or [68 + K, 2] (extra points such as `with_forehead`'s
    drive the warp too).

    Each output pixel inside the Delaunay triangulation of the target points (scipy) takes its barycentric
    coordinates in its triangle to the same triangle of the source points; OpenCV's `remap` samples
    there (bilinear). scikit-image's PiecewiseAffineTransform does the same but refuses a whole face when one
    sliver triangle is numerically singular (measured on LFW landmarks), and it triangulates the source too.
    `transforms` says where each triangle's barycentric transform comes from (TRANSFORMS): "qhull" is the
    reference, "numpy" the live stream's cheaper equal (triangle_transforms).
    """
    if transforms not in TRANSFORMS:
        raise LandmarkSwapError(f"transforms must be one of {TRANSFORMS}, got {transforms!r}")
    target_68, source_68 = np.asarray(target_68, np.float64), np.asarray(source_68, np.float64)
    if target_68.shape != source_68.shape:
        raise LandmarkSwapError(f"source and target landmarks differ in shape: {source_68.shape} {target_68.shape}")
    used = np.r_[WARP_POINTS, 68:len(target_68)]
    target_points, source_points = target_68[used], source_68[used]
    height, width = shape
    try:
        triangulation = Delaunay(target_points)
    except QhullError as error:
        raise LandmarkSwapError(f"the target's landmarks are degenerate (no triangulation): {error}") from None
    # Which triangle each pixel lies in, rasterised by OpenCV (qhull's find_simplex point walk measured 100 ms a
    # face in pool workers against 2 ms here).
    labels = np.full((height, width), -1, np.int32)
    for index, corners in enumerate(triangulation.simplices):
        cv2.fillConvexPoly(labels, np.round(target_points[corners]).astype(np.int32), int(index))
    ys, xs = np.mgrid[0:height, 0:width]
    pixels = np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float64)
    simplex = labels.ravel()
    inside = simplex >= 0
    if transforms == "qhull":
        per_triangle = triangulation.transform
    else:
        per_triangle = triangle_transforms(target_points, triangulation.simplices)
    transform = per_triangle[simplex[inside]]
    # Elementwise products, not einsum: einsum may hand these to a multi-threaded BLAS, which stalls when every
    # core already runs a worker process.
    partial = (transform[:, :2] * (pixels[inside] - transform[:, 2])[:, None, :]).sum(axis=2)
    barycentric = np.concatenate([partial, 1.0 - partial.sum(axis=1, keepdims=True)], axis=1)
    corners = source_points[triangulation.simplices[simplex[inside]]]
    # A numerically flat triangle has a NaN transform in qhull: its few pixels get no source sample.
    mapped = np.nan_to_num((barycentric[:, :, None] * corners).sum(axis=1), nan=-1.0)
    map_x = np.full((height, width), -1.0, np.float32)
    map_y = np.full((height, width), -1.0, np.float32)
    rows, cols = ys.ravel()[inside], xs.ravel()[inside]
    map_x[rows, cols], map_y[rows, cols] = mapped[:, 0], mapped[:, 1]
    return cv2.remap(np.ascontiguousarray(source), map_x, map_y, cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def poisson_blend(image: np.ndarray, target: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Poisson-blend `image` into `target` inside `mask` (OpenCV seamlessClone, NORMAL_CLONE).

    Args:
        image, target: [H, W, 3] uint8, same shape.
        mask: [H, W] uint8, > 0 inside; it must not be empty.

    Returns:
        [H, W, 3] uint8: the Poisson solution inside the mask, `target` exactly outside it.

    seamlessClone needs the mask's bounding box strictly inside the image, so a mask that touches the border (a face
    that fills its crop) is cloned in a copy padded by reflection and cut back. The solution meets the target at the
    mask's edge, so cutting it at the mask keeps the seam hidden (OpenCV also touches pixels up to 14 px outside its
    mask, measured).
    """
    ys, xs = np.nonzero(mask)
    if xs.size == 0:
        raise LandmarkSwapError("the Poisson blend's mask is empty")
    height, width = target.shape[:2]
    pad = POISSON_PAD
    padded = [cv2.copyMakeBorder(picture, pad, pad, pad, pad, cv2.BORDER_REFLECT) for picture in (image, target)]
    padded_mask = cv2.copyMakeBorder(np.where(mask > 0, 255, 0).astype(np.uint8), pad, pad, pad, pad,
                                     cv2.BORDER_CONSTANT, value=0)
    x0, x1, y0, y1 = xs.min() + pad, xs.max() + pad, ys.min() + pad, ys.max() + pad
    # seamlessClone places the mask's bounding box centred at `centre`; a copy, as it writes into its mask.
    centre = (int((x0 + x1 + 1) // 2), int((y0 + y1 + 1) // 2))
    cloned = cv2.seamlessClone(padded[0], padded[1], padded_mask.copy(), centre, cv2.NORMAL_CLONE)
    return np.where(mask[..., None] > 0, cloned[pad:pad + height, pad:pad + width], target)


def warped_face(source: np.ndarray, source_68: np.ndarray, target: np.ndarray, target_68: np.ndarray,
                color_transfer: bool = True, forehead: float = FOREHEAD, transforms: str = "qhull"
                ) -> tuple[np.ndarray, np.ndarray]:
    """Steps 1 and 2 of the swap: (the source face warped onto the target's landmarks and, with `color_transfer`,
    matched to the target's colours, [H, W, 3] uint8 of the target's size; the face region it fills, [H, W] uint8,
    255 inside: swap_region). Arguments as landmark_swap's; LandmarkSwapError when the landmarks cannot drive it."""
    source_68 = _check(source_68, source, "source")
    target_68 = _check(target_68, target, "target")
    if not forehead >= 0:
        raise LandmarkSwapError(f"forehead must be >= 0, got {forehead}")
    height, width = target.shape[:2]
    source_points = with_forehead(source_68, forehead, source.shape[:2])
    target_points = with_forehead(target_68, forehead, (height, width))
    mask = swap_region(target_68, (height, width), forehead)
    if np.count_nonzero(mask) < 16:
        raise LandmarkSwapError("the target's face region is empty: its landmarks lie outside the image")
    warped = warp_to_landmarks(source, source_points, target_points, (height, width), transforms)
    if color_transfer:
        warped = reinhard_transfer(warped, target, mask)
    return warped, mask


def warp_paste(source: np.ndarray, source_68: np.ndarray, target: np.ndarray, target_68: np.ndarray,
               forehead: float = FOREHEAD, transforms: str = "qhull") -> tuple[np.ndarray, np.ndarray]:
    """(the colour-matched warped source face pasted into the target with a hard edge, no blending: [H, W, 3] uint8,
    the target's own pixels outside the face region; that region [H, W] uint8, 255 inside).

    What a "target+warp" generator reads beside its target (ModelConfig.conditioning): the source's texture already
    in the target's geometry, so the network's job is to carry it into the face and hide the seam, without having
    to learn the warp (which a CPU training run cannot afford; docs/demo_model.md).
    """
    warped, mask = warped_face(source, source_68, target, target_68, True, forehead, transforms)
    return np.where(mask[..., None] > 0, warped, target), mask


def landmark_swap(source: np.ndarray, source_68: np.ndarray, target: np.ndarray, target_68: np.ndarray,
                  blend: str = "poisson", color_transfer: bool = True, forehead: float = FOREHEAD,
                  transforms: str = "qhull") -> np.ndarray:
    """Swap the source's face into the target by landmarks (module docstring).

    Args:
        source, target: [H, W, 3] uint8 RGB images (any sizes).
        source_68, target_68: [68, 2] landmarks in pixels of their own image.
        blend: "poisson" (seamlessClone) or "alpha" (feathered mask).
        color_transfer: Reinhard colour transfer of the warped face to the target's face.
        forehead: height of the forehead points (FOREHEAD); 0 swaps only the 68-point hull.
        transforms: where the warp's triangle transforms come from (TRANSFORMS; warp_to_landmarks).

    Returns:
        [H, W, 3] uint8 RGB of the target's size; pixels outside the face region are the target's.
    """
    if blend not in BLENDS:
        raise LandmarkSwapError(f"blend must be one of {BLENDS}, got {blend!r}")
    warped, mask = warped_face(source, source_68, target, target_68, color_transfer, forehead, transforms)
    if blend == "poisson":
        return poisson_blend(warped, target, mask)
    xs = np.nonzero(mask)[1]
    feather = max(1.0, FEATHER_FRACTION * float(xs.max() - xs.min()))
    # Eroded by three sigmas before the blur, so the feathered edge stays inside the hull (outside it the warp has
    # no source pixels); what of the blur's tail still crosses the hull is cut.
    radius = int(np.ceil(3.0 * feather))
    inner = cv2.erode(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1)))
    alpha = cv2.GaussianBlur(inner.astype(np.float32) / 255.0, (0, 0), feather)[..., None]
    alpha *= mask[..., None] > 0
    out = warped.astype(np.float32) * alpha + target.astype(np.float32) * (1.0 - alpha)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)
