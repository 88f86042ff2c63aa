"""SSIM and PSNR between target and swap: scikit-image's functions, on the full RGB uint8 images.

SSIM: skimage.metrics.structural_similarity with channel_axis=-1, data_range=255 (7x7 uniform window, the library's
defaults), averaged over the three channels. PSNR: skimage.metrics.peak_signal_noise_ratio with data_range=255,
in dB; identical images give +inf.
"""

from __future__ import annotations

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
