"""SSIM and PSNR between target and swap: scikit-image's functions, on the full RGB uint8 images.

SSIM: skimage.metrics.structural_similarity with channel_axis=-1, data_range=255 (7x7 uniform window, the library's
defaults), averaged over the three channels. PSNR: skimage.metrics.peak_signal_noise_ratio with data_range=255,
in dB; identical images give +inf.

Face sharpness ratio: the variance of the Laplacian (OpenCV, 3x3 aperture, on the BT.601 grey image) inside the
target's face (the convex hull of its 68 landmarks, eroded by a tenth of the inter-ocular distance so that the
face's outline, which both images share, counts little), of the swap over that of the target: 1 = as sharp as the
target's own face, below 1 = blurred (a 128 px generator output pasted over a larger face).
"""

from __future__ import annotations

import cv2
import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

DATA_RANGE = 255.0


def _check_pair(target: np.ndarray, swap: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    target = np.asarray(target)
    swap = np.asarray(swap)
    if target.shape != swap.shape or target.ndim != 3 or target.shape[2] != 3:
        raise ValueError(
            f"target and swap must be RGB images of the same size [H, W, 3], got {target.shape} and {swap.shape}"
        )
    return target.astype(np.float64), swap.astype(np.float64)


def ssim(target_rgb: np.ndarray, swap_rgb: np.ndarray) -> float:
    """Structural similarity of two RGB images [H, W, 3] with values in [0, 255] (any dtype); 1 = identical."""
    target, swap = _check_pair(target_rgb, swap_rgb)
    return float(structural_similarity(target, swap, channel_axis=-1, data_range=DATA_RANGE))


def psnr(target_rgb: np.ndarray, swap_rgb: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of two RGB images [H, W, 3] in [0, 255]; +inf when identical."""
    target, swap = _check_pair(target_rgb, swap_rgb)
    if np.array_equal(target, swap):
        # skimage divides by a zero MSE here (and warns); the limit is +inf.
        return float("inf")
    return float(peak_signal_noise_ratio(target, swap, data_range=DATA_RANGE))


def face_sharpness_ratio(target_rgb: np.ndarray, swap_rgb: np.ndarray, landmarks68: np.ndarray) -> float:
    """Variance of the Laplacian of the swap over the target's, inside the target's face (module docstring).

    Args:
        target_rgb, swap_rgb: [H, W, 3] RGB in [0, 255], the same size.
        landmarks68: [68, 2] (x, y) pixels of the target's face (dlib layout).

    Raises:
        ValueError: the images differ in size, or the face region is empty or flat in the target.
    """
    target, swap = _check_pair(target_rgb, swap_rgb)
    points = np.asarray(landmarks68, np.float64).reshape(68, 2)
    mask = np.zeros(target.shape[:2], np.uint8)
    cv2.fillConvexPoly(mask, cv2.convexHull(np.round(points).astype(np.int32)), 255)
    margin = max(1, int(round(0.1 * np.linalg.norm(points[36] - points[45]))))
    mask = cv2.erode(mask, np.ones((2 * margin + 1, 2 * margin + 1), np.uint8))
    inside = mask > 0
    if inside.sum() < 16:
        raise ValueError("the face region of the target is too small to measure sharpness")
    luma = np.array([0.299, 0.587, 0.114])
    target_var, swap_var = (float(cv2.Laplacian(image @ luma, cv2.CV_64F, ksize=3)[inside].var())
                            for image in (target, swap))
    if target_var <= 0:
        raise ValueError("the target's face region is flat; its sharpness cannot be a reference")
    return swap_var / target_var
