"""An invisible watermark in every image and video frame clipswap writes: DWT-DCT quantisation on a fixed grid.

The mark carries 64 bits, the bytes ``clipswap``. It lives in the luma of a canonical 256 x 256 copy of the picture
(the whole frame resized to that square, whatever its size and aspect), so resizing the file does not move it:
1. the canonical luma goes through a one-level Haar DWT (PyWavelets); its 128 x 128 approximation band is cut into
   1,024 blocks of 4 x 4, and the two lowest AC coefficients of each block's 2-D DCT-II are quantised (dithered
   QIM, step ``STEP``) to carry one bit each; the 64 bits are spread over the 2,048 slots by a fixed permutation,
   32 copies each;
2. the change of the canonical luma is resized back to the frame's size and added to R, G and B alike (which moves
   luma and leaves chroma), and the embed repeats (``PASSES``) on the result, so that rounding to 8 bits and the
   resizes do not wash the mark out;
3. reading resizes to the same square, takes the same coefficients and votes the 32 copies of each bit with soft
   weights; the mark is found when at least ``MATCH_BITS`` of the 64 bits match (a picture without the mark matches
   32 on average; 56 or more by chance has a probability below 1e-9).

Why not a library: `invisible-watermark` (DWT-DCT) and `blind-watermark` both require the GUI build of OpenCV
(`opencv-python`, which replaces our headless one and needs libGL) and `invisible-watermark` also requires PyTorch;
the transforms here come from PyWavelets and NumPy, the scheme is a few lines. What it survives is measured by
`benchmarks/watermark.py` (JPEG re-encodes, a 0.5x resize, H.264); it does not survive crops, rotations, mirroring or
large brightness and contrast changes, which move the grid or the coefficients.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import pywt

PAYLOAD = b"clipswap"
BITS = 8 * len(PAYLOAD)
GRID = 256  # side of the canonical square the mark lives on
BLOCK = 4  # DCT block side in the approximation band
# QIM step of a slot: 28 keeps the mark through JPEG q50 and a half-size JPEG q75 at a PSNR of about 44.4 dB
# (benchmarks/watermark.py); on 30 LFW photos step 20 lost 10 % of the half-size JPEG q75 copies, step 12 more.
STEP = 28.0
PASSES = 3
MATCH_BITS = 56


def _dct_matrix(n: int) -> np.ndarray:
    """Orthonormal DCT-II matrix: coefficients = D @ block @ D.T."""
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    matrix = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    matrix[0] /= np.sqrt(2.0)
    return matrix


_D = _dct_matrix(BLOCK)
#: The DCT coefficients of a block that carry bits: the two lowest AC ones. Not the DC: a video's RGB -> YUV -> RGB
#: round trip shifts the mean luma by a grey level or two, which moves a DC lattice by a third of a step; AC
#: coefficients do not see an offset, and are small enough that a gain of a few per cent barely moves them.
SLOTS = ((0, 1), (1, 0))
_ROWS = np.array([row for row, _ in SLOTS])
_COLS = np.array([col for _, col in SLOTS])
_SIDE = GRID // 2 // BLOCK
_BLOCKS = _SIDE**2 * len(SLOTS)
# Slot k carries bit _ORDER[k]: a fixed shuffle of 32 copies of each bit, so that copies sit far apart.
_ORDER = np.random.default_rng(20261202).permutation(np.arange(_BLOCKS) % BITS)


def payload_bits(payload: bytes = PAYLOAD) -> np.ndarray:
    return np.unpackbits(np.frombuffer(payload, np.uint8)).astype(np.int8)


def _canonical_luma(image: np.ndarray) -> np.ndarray:
    # OpenCV's RGB -> grey uses the same BT.601 weights, in 8 bits: far faster than a float product on big frames.
    luma = cv2.cvtColor(np.ascontiguousarray(image, dtype=np.uint8), cv2.COLOR_RGB2GRAY)
    return _canonical_luma_of_change(luma.astype(np.float32))


def _canonical_luma_of_change(luma: np.ndarray) -> np.ndarray:
    interpolation = cv2.INTER_AREA if min(luma.shape) >= GRID else cv2.INTER_LINEAR
    return cv2.resize(luma, (GRID, GRID), interpolation=interpolation)


def _slots(luma: np.ndarray) -> tuple[np.ndarray, tuple]:
    """The marked coefficients of every block [32, 32, len(SLOTS)], and what rebuilds the luma from them."""
    approx, details = pywt.dwt2(luma, "haar")
    side = approx.shape[0] // BLOCK
    blocks = approx.reshape(side, BLOCK, side, BLOCK).transpose(0, 2, 1, 3)
    coefficients = np.einsum("ij,abjk,lk->abil", _D, blocks, _D)
    return coefficients[:, :, _ROWS, _COLS], (coefficients, details)


def _luma_with_slots(values: np.ndarray, parts: tuple) -> np.ndarray:
    coefficients, details = parts
    coefficients = coefficients.copy()
    coefficients[:, :, _ROWS, _COLS] = values
    blocks = np.einsum("ji,abjk,kl->abil", _D, coefficients, _D)
    side = blocks.shape[0]
    approx = blocks.transpose(0, 2, 1, 3).reshape(side * BLOCK, side * BLOCK)
    return pywt.idwt2((approx, details), "haar")


def _soft_bits(image: np.ndarray) -> np.ndarray:
    """Per-bit votes in [-1, 1]: positive means 1."""
    values, _ = _slots(_canonical_luma(image))
    phase = np.mod(values.reshape(-1) / STEP, 1.0)  # 0.25 carries a 0, 0.75 a 1
    votes = -np.cos(2 * np.pi * (phase - 0.25))
    return np.bincount(_ORDER, weights=votes, minlength=BITS) / np.bincount(_ORDER, minlength=BITS)


def embed(image: np.ndarray, payload: bytes = PAYLOAD) -> np.ndarray:
    """`image` [H, W, 3] uint8 RGB with the mark added; a new array. Pictures under 32 px a side are returned as
    they are (too small to carry it)."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"embed needs an [H, W, 3] uint8 image, got {image.shape} {image.dtype}")
    height, width = image.shape[:2]
    if min(height, width) < 32:
        return image.copy()
    wanted = payload_bits(payload)[_ORDER].astype(np.float64).reshape(_SIDE, _SIDE, len(SLOTS))
    base = _canonical_luma(image)
    # The passes model the round trip canonical -> frame -> canonical at no more than 4 x GRID a side (the same
    # operator within a fraction of a grey level, and a 1080p frame costs what a 1024 px one does).
    work_width, work_height = min(width, 4 * GRID), min(height, 4 * GRID)
    change = np.zeros((GRID, GRID), np.float32)
    for _ in range(PASSES):
        # The canonical luma of image + resized change, by linearity (rounding and clipping are left out).
        luma = base + _canonical_luma_of_change(_to_frame(change, work_width, work_height))
        values, parts = _slots(luma)
        target = (np.floor(values / STEP) + 0.25 + 0.5 * wanted) * STEP
        # The nearer of the bit's two lattice points (below or above): the smallest change.
        target = np.where(target - values > STEP / 2, target - STEP, target)
        target = np.where(values - target > STEP / 2, target + STEP, target)
        change += (_luma_with_slots(target, parts) - luma).astype(np.float32)
    step = np.rint(_to_frame(change, width, height)).astype(np.int16)
    return np.clip(image.astype(np.int16) + step[:, :, None], 0, 255).astype(np.uint8)


def _to_frame(change: np.ndarray, width: int, height: int) -> np.ndarray:
    return cv2.resize(change, (width, height), interpolation=cv2.INTER_LINEAR)


@dataclass(frozen=True)
class Reading:
    """What `read` found: the bits matching the payload (of BITS) and whether that counts as the mark."""

    matching_bits: int
    found: bool
    bits: int = BITS

    def describe(self) -> str:
        verdict = "found" if self.found else "not found"
        return f"{verdict} ({self.matching_bits} of {self.bits} bits match the clipswap mark)"


def read(image: np.ndarray, payload: bytes = PAYLOAD) -> Reading:
    """Look for the mark in [H, W, 3] uint8 RGB."""
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"read needs an [H, W, 3] image, got {image.shape}")
    if min(image.shape[:2]) < 32:
        return Reading(0, False)
    image = np.asarray(image, dtype=np.uint8)
    bits = (_soft_bits(image) > 0).astype(np.int8)
    matching = int(np.sum(bits == payload_bits(payload)))
    return Reading(matching, matching >= MATCH_BITS)
