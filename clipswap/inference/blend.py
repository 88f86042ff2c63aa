"""Blend masks and compositing: how a generated crop goes back into the frame.

Two masks, both [S, S] float32 in [0, 1] in the coordinates of the aligned crop (S = generator crop size):

* `published_mask`: the release's fixed feathered rectangle (its inference.py): zeros, ones on rows 77..239 and
  columns 32..223 of the 256 crop, then a Gaussian blur with sigma 7 (scipy.ndimage, reflect mode, truncate 4). For
  other crop sizes every number is scaled by S / 256.
* `landmark_mask`: a soft mask from the outline of the face implied by the five landmarks (eyes, nose, mouth corners)
  extended to the brows and chin, filled and blurred. It follows the detected face instead of the template, which
  helps on turned heads where the fixed rectangle covers background.

`composite` pastes a batch of crops into a frame by their inverse similarity transforms, one after another as the
release does (frame = face * mask + frame * (1 - mask)), but only over the bounding box of each warped crop: the
result equals a full-frame warp (the same bilinear samples, border 0) at a fraction of the cost on large frames.
Before blending, `composite` may sharpen each crop (`unsharp`, `--sharpen`) and add the frame's own fine detail to
the warped crop (`target_detail`, `--detail`). `composite_poisson` (`--blend poisson`) Poisson-blends each crop
inside its face-outline mask instead, with neither.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from scipy.ndimage import gaussian_filter

from clipswap.face.align import invert_affine
from clipswap.options import BLEND_KINDS  # noqa: F401 (re-exported: the swapper checks against it)

#: The published mask at 256: inclusive row and column ranges of the ones, and the blur.
PUBLISHED_SIZE = 256
PUBLISHED_ROWS = (77, 239)
PUBLISHED_COLS = (32, 223)
PUBLISHED_SIGMA = 7.0
#: The Gaussian that stands for a crop's sampling when it is enlarged k times: sigma = DETAIL_SIGMA * k frame pixels
#: (about the blur of resampling to 1/k and back).
DETAIL_SIGMA = 0.5
#: The Gaussian of the unsharp mask (`unsharp`), in crop pixels: a low-resolution generator's output is blurred by
#: about one crop pixel, so this sigma picks out the edges that blur softened.
SHARPEN_SIGMA = 1.0


def published_mask(size: int = PUBLISHED_SIZE, sigma: float | None = None) -> np.ndarray:
    """The release's feathered rectangle for an S x S crop.

    Args:
        size: crop side S; the rectangle and the blur are scaled by S / 256 (exactly the published mask at 256).
        sigma: Gaussian sigma in crop pixels; None uses 7 * S / 256.

    Returns:
        [S, S] float32 in [0, 1].
    """
    if size < 8:
        raise ValueError(f"crop size must be at least 8 pixels, got {size}")
    scale = size / PUBLISHED_SIZE
    top, bottom = round(PUBLISHED_ROWS[0] * scale), round((PUBLISHED_ROWS[1] + 1) * scale)
    left, right = round(PUBLISHED_COLS[0] * scale), round((PUBLISHED_COLS[1] + 1) * scale)
    mask = np.zeros((size, size), dtype=np.float64)
    mask[top:bottom, left:right] = 1.0
    sigma = PUBLISHED_SIGMA * scale if sigma is None else float(sigma)
    if sigma < 0:
        raise ValueError(f"feather sigma must be >= 0, got {sigma}")
    if sigma > 0:
        mask = gaussian_filter(mask, sigma)
    return mask.astype(np.float32)


def face_outline(landmarks: np.ndarray) -> np.ndarray:
    """Polygon around the face from five landmarks (any coordinates; ArcFace order).

    The eyes, nose and mouth span roughly the middle third of a face. The outline widens the eye line sideways by
    half the eye distance, lifts it to the brows and forehead by 0.8 of the eye-to-mouth distance and drops the
    mouth line to the chin by 0.55 of it; those factors put the polygon on the face oval of the ArcFace template.

    Returns:
        [K, 2] float32 convex polygon (x, y).
    """
    points = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
    left_eye, right_eye, _, left_mouth, right_mouth = points
    eye_mid, mouth_mid = (left_eye + right_eye) / 2, (left_mouth + right_mouth) / 2
    down = mouth_mid - eye_mid  # eye line to mouth line
    across = right_eye - left_eye
    brow_left, brow_right = left_eye - 0.5 * across - 0.8 * down, right_eye + 0.5 * across - 0.8 * down
    cheek_left, cheek_right = left_eye - 0.55 * across + 0.2 * down, right_eye + 0.55 * across + 0.2 * down
    jaw_left, jaw_right = left_mouth - 0.35 * across + 0.2 * down, right_mouth + 0.35 * across + 0.2 * down
    chin = mouth_mid + 0.55 * down
    outline = np.stack([brow_left, brow_right, cheek_right, jaw_right, chin, jaw_left, cheek_left])
    hull = cv2.convexHull(outline.astype(np.float32))
    return hull.reshape(-1, 2)


def landmark_mask(landmarks_crop: np.ndarray, size: int, feather: float | None = None) -> np.ndarray:
    """Soft mask from the face outline implied by the landmarks, in crop coordinates.

    Args:
        landmarks_crop: [5, 2] (x, y) landmarks already mapped into the S x S crop.
        size: crop side S.
        feather: Gaussian sigma in crop pixels; None uses 7 * S / 256 like the published mask. The polygon is shrunk
            by one sigma first so the blurred edge stays inside the outline.

    Returns:
        [S, S] float32 in [0, 1].
    """
    sigma = PUBLISHED_SIGMA * size / PUBLISHED_SIZE if feather is None else float(feather)
    if sigma < 0:
        raise ValueError(f"feather sigma must be >= 0, got {sigma}")
    polygon = face_outline(landmarks_crop).astype(np.float64)
    centre = polygon.mean(axis=0)
    radius = np.linalg.norm(polygon - centre, axis=1).mean()
    if radius > 2 * sigma:
        polygon = centre + (polygon - centre) * (1.0 - sigma / radius)
    mask = np.zeros((size, size), dtype=np.float32)
    # Sub-pixel polygon: fillConvexPoly with 4 fractional bits.
    cv2.fillConvexPoly(mask, np.round(polygon * 16).astype(np.int32), 1.0, lineType=cv2.LINE_AA, shift=4)
    # The outline may reach past the crop (chins sit near its bottom edge); clearing a 2-sigma margin first keeps the
    # blurred mask near zero on the crop border, where the warped-back crop ends.
    margin = max(1, math.ceil(2 * sigma))
    mask[:margin], mask[-margin:], mask[:, :margin], mask[:, -margin:] = 0.0, 0.0, 0.0, 0.0
    if sigma > 0:
        mask = gaussian_filter(mask, sigma).astype(np.float32)
    return np.clip(mask, 0.0, 1.0)


def crop_region(matrix: np.ndarray, size: int, frame_shape: tuple[int, ...]) -> tuple[int, int, int, int] | None:
    """Pixel bounding box (x0, y0, x1, y1), end exclusive, of an S x S crop warped back into the frame, or None
    when it falls entirely outside. One pixel of margin covers the bilinear footprint."""
    inverse = invert_affine(matrix)
    corners = np.array([[0, 0, 1], [size, 0, 1], [0, size, 1], [size, size, 1]], dtype=np.float64) @ inverse.T
    height, width = frame_shape[:2]
    x0 = max(0, math.floor(corners[:, 0].min()) - 1)
    y0 = max(0, math.floor(corners[:, 1].min()) - 1)
    x1 = min(width, math.ceil(corners[:, 0].max()) + 2)
    y1 = min(height, math.ceil(corners[:, 1].max()) + 2)
    if x0 >= x1 or y0 >= y1:
        return None
    return x0, y0, x1, y1


def _warped_back(frame_shape, faces: np.ndarray, masks: np.ndarray, matrices: np.ndarray, with_matrix: bool = False):
    """For each crop whose region lies in the frame: ((x0, y0, x1, y1), face [h, w, 3] float in [0, 1], mask [h, w]
    float in [0, 1]), both warped straight into the region (the crop -> image map shifted by the region's origin),
    and with `with_matrix` the crop's image -> crop matrix last."""
    size = faces.shape[1]
    for face, mask, matrix in zip(faces, masks, matrices, strict=True):
        region = crop_region(matrix, size, frame_shape)
        if region is None:
            continue
        x0, y0, x1, y1 = region
        inverse = invert_affine(matrix)
        inverse[:, 2] -= (x0, y0)
        shape = (x1 - x0, y1 - y0)
        face_roi = cv2.warpAffine(np.clip(face, 0.0, 1.0), inverse, shape, flags=cv2.INTER_LINEAR, borderValue=0.0)
        mask_roi = cv2.warpAffine(mask.astype(np.float32), inverse, shape, flags=cv2.INTER_LINEAR, borderValue=0.0)
        if with_matrix:
            yield region, face_roi, np.clip(mask_roi, 0.0, 1.0), matrix
        else:
            yield region, face_roi, np.clip(mask_roi, 0.0, 1.0)


def magnification(matrix: np.ndarray) -> float:
    """Frame pixels per crop pixel of an image -> crop similarity matrix [2, 3] (above 1: the crop is enlarged)."""
    return float(1.0 / math.sqrt(max(abs(np.linalg.det(np.asarray(matrix, np.float64)[:, :2])), 1e-12)))


def target_detail(background: np.ndarray, scale: float) -> np.ndarray:
    """The frame's detail finer than a crop enlarged `scale` times can hold: background - Gaussian(background,
    sigma = DETAIL_SIGMA * scale), [h, w, 3] float32 (zero where scale <= 1: the crop already has it)."""
    if scale <= 1.0:
        return np.zeros_like(background)
    return background - cv2.GaussianBlur(background, (0, 0), DETAIL_SIGMA * scale)


def unsharp(face: np.ndarray, amount: float) -> np.ndarray:
    """An unsharp mask of a generated crop: face + amount * (face - Gaussian(face, sigma = SHARPEN_SIGMA crop
    pixels)), with OpenCV's reflected border, so the crop's edge is not brightened by a border it does not have.

    It amplifies the detail the face already has: edges come out crisper, but no detail the generator's crop never
    held is restored (for that, `target_detail` adds the frame's own).

    Args:
        face: [S, S, 3] float32 RGB in [0, 1], a crop as the generator gives it.
        amount: the strength A; 0 returns the face unchanged.

    Returns:
        [S, S, 3] float32; values may leave [0, 1] (the caller clips).
    """
    face = np.asarray(face, dtype=np.float32)
    if not amount:
        return face
    blurred = cv2.GaussianBlur(face, (0, 0), SHARPEN_SIGMA)
    return face + np.float32(amount) * (face - blurred)


def composite(frame: np.ndarray, faces: np.ndarray, masks: np.ndarray, matrices: np.ndarray,
              detail: float = 0.0, sharpen: float = 0.0) -> np.ndarray:
    """Paste generated crops into a frame, one after another.

    Args:
        frame: [H, W, 3] uint8 RGB.
        faces: [N, S, S, 3] float32 RGB in [0, 1] (clipped here).
        masks: [N, S, S] float32 in [0, 1], crop coordinates.
        matrices: [N, 2, 3] image -> crop similarity matrices used to align each face.
        detail: how much of the frame's own detail finer than the enlarged crop (target_detail) is added to the
            pasted face: 0 none; 1 all of it, for a generator that keeps the target's geometry, whose low-resolution
            output would otherwise come out blurred over a face larger than its crop.
        sharpen: the amount of an unsharp mask (`unsharp`) applied to each crop before it is warped back and before
            `detail` is added, so only the generated face is sharpened, never the frame's detail: 0 none. It makes
            the generator's edges crisper; it cannot restore detail the crop never had.

    Returns:
        [H, W, 3] uint8 RGB; pixels outside every warped crop are the frame's own bytes.
    """
    output = frame.copy()
    if sharpen:
        faces = np.stack([unsharp(face, sharpen) for face in faces]) if len(faces) else faces
    for (x0, y0, x1, y1), face_roi, mask_roi, matrix in _warped_back(frame.shape, faces, masks, matrices,
                                                                     with_matrix=True):
        mask_roi = mask_roi[..., None]
        background = output[y0:y1, x0:x1].astype(np.float32) / 255.0
        if detail:
            face_roi = face_roi + detail * target_detail(background, magnification(matrix))
        blended = face_roi * mask_roi + background * (1.0 - mask_roi)
        # Only pixels the mask touches are rewritten, so a zero mask leaves the frame's bytes untouched.
        touched = mask_roi[..., 0] > 0
        roi = output[y0:y1, x0:x1]
        roi[touched] = np.clip(np.round(blended[touched] * 255.0), 0, 255).astype(np.uint8)
    return output


def composite_poisson(frame: np.ndarray, faces: np.ndarray, masks: np.ndarray, matrices: np.ndarray) -> np.ndarray:
    """Paste generated crops by Poisson blending (clipswap.face.landmark_swap.poisson_blend), one after another.

    Arguments as `composite`. Each crop and its mask (> 0.5) are warped back over the crop's region of the frame and
    Poisson-blended there, so the face takes the frame's lighting at its edge; pixels outside every warped mask are the
    frame's own bytes.
    """
    from clipswap.face.landmark_swap import poisson_blend

    output = frame.copy()
    for (x0, y0, x1, y1), face_roi, mask_roi in _warped_back(frame.shape, faces, masks, matrices):
        inside = mask_roi > 0.5
        if inside.any():
            face_u8 = np.clip(np.round(face_roi * 255.0), 0, 255).astype(np.uint8)
            output[y0:y1, x0:x1] = poisson_blend(face_u8, output[y0:y1, x0:x1], inside.astype(np.uint8) * 255)
    return output
