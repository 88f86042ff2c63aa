"""Frechet Inception Distance between swaps and targets.

Features: keras.applications.InceptionV3(include_top=False, pooling="avg") -> [N, 2048], with the weights file the
user gives (nothing is downloaded). Images are resized to 299x299 (bilinear) and scaled to [-1, 1]
(keras.applications.inception_v3.preprocess_input). The distance between the Gaussians (mu1, S1) and (mu2, S2) is

    FID = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2)),

with tr((S1 S2)^(1/2)) computed as the sum of the square roots of the eigenvalues of the symmetric positive
semi-definite matrix S1^(1/2) S2 S1^(1/2) (same eigenvalues as S1 S2), which avoids the complex round-off a general
matrix square root produces (fid_from_features uses an equivalent N x N form when there are fewer samples than
dimensions). With fewer images than 2048 the covariances are singular and FID is biased upward:
compare FIDs only at equal sample counts.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from clipswap.errors import ClipswapError

log = logging.getLogger(__name__)

INCEPTION_SIZE = 299
FEATURE_SIZE = 2048


def _symmetric_sqrt(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2.0)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2); means [D], covariances [D, D] (PSD)."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.size, mu1.size):
        raise ValueError(f"shape mismatch: mu {mu1.shape} {mu2.shape}, sigma {sigma1.shape} {sigma2.shape}")
    root1 = _symmetric_sqrt(sigma1)
    product = root1 @ sigma2 @ root1
    trace_root = float(np.sqrt(np.clip(np.linalg.eigvalsh((product + product.T) / 2.0), 0.0, None)).sum())
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_root)


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean [D] and unbiased covariance [D, D] of features [N, D], N >= 2."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(f"need at least 2 feature vectors [N, D], got shape {features.shape}")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def fid_from_features(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """FID between two feature sets [N, D] and [M, D] (N, M >= 2).

    With no more samples than dimensions (the usual case below 2048 images) the covariances have rank < D and the
    trace term is computed from the centred features A, B instead of D x D matrices: the non-zero eigenvalues of
    S1 S2 = A'A B'B / ((N-1)(M-1)) are those of (A B')(A B')' / ((N-1)(M-1)), so tr((S1 S2)^(1/2)) is the sum of
    the singular values of A B' / sqrt((N-1)(M-1)), an N x M problem. Otherwise frechet_distance on the statistics.
    """
    a = np.asarray(features_a, dtype=np.float64)
    b = np.asarray(features_b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or len(a) < 2 or len(b) < 2:
        raise ValueError(f"need two feature sets [N >= 2, D] and [M >= 2, D], got {a.shape} and {b.shape}")
    if max(len(a), len(b)) > a.shape[1]:
        return frechet_distance(*feature_statistics(a), *feature_statistics(b))
    mean_a, mean_b = a.mean(axis=0), b.mean(axis=0)
    centred_a, centred_b = a - mean_a, b - mean_b
    scale_a, scale_b = len(a) - 1.0, len(b) - 1.0
    trace_root = float(np.linalg.svd(centred_a @ centred_b.T, compute_uv=False).sum()) / np.sqrt(scale_a * scale_b)
    trace_a = float(np.sum(centred_a**2)) / scale_a
    trace_b = float(np.sum(centred_b**2)) / scale_b
    return float(np.sum((mean_a - mean_b) ** 2) + trace_a + trace_b - 2.0 * trace_root)


class FidWeightsError(ClipswapError, ValueError):
    """The InceptionV3 weights file for FID cannot be loaded."""


class InceptionFeatures:
    """InceptionV3 average-pool features with user-supplied weights.

    Args:
        weights: path of a Keras weights file for InceptionV3 without its top (e.g. Keras'
            inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5, or a `.weights.h5` saved by Keras 3).
        batch_size: images per forward pass.

    Call with an iterable of RGB uint8 images [H, W, 3] (any size); returns [N, 2048] float64.

    Raises:
        FileNotFoundError: no such file. FidWeightsError: the file is not InceptionV3 (no top) weights.
    """

    def __init__(self, weights: str | Path, batch_size: int = 16):
        weights = Path(weights)
        if not weights.is_file():
            raise FileNotFoundError(f"InceptionV3 weights file {weights} does not exist (FID needs a local file)")
        import keras

        self.weights = weights
        self.batch_size = batch_size
        self._model = keras.applications.InceptionV3(
            include_top=False,
            pooling="avg",
            weights=None,
            input_shape=(INCEPTION_SIZE, INCEPTION_SIZE, 3),
        )
        try:
            self._model.load_weights(str(weights))
        except (OSError, ValueError, KeyError, TypeError) as error:
            # h5py raises OSError for a damaged or non-HDF5 file, Keras ValueError/KeyError for other layouts.
            reason = " ".join(str(error).split()) or type(error).__name__
            raise FidWeightsError(
                f"cannot load InceptionV3 weights from {weights} ({reason[:200]}); FID needs the Keras InceptionV3 "
                "no-top weights file, e.g. inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5."
            ) from error

    def _prepare(self, images: list[np.ndarray]) -> np.ndarray:
        import cv2

        batch = np.stack(
            [
                cv2.resize(np.asarray(image), (INCEPTION_SIZE, INCEPTION_SIZE), interpolation=cv2.INTER_LINEAR)
                for image in images
            ]
        ).astype(np.float32)
        return batch / 127.5 - 1.0

    def __call__(self, images: Iterable[np.ndarray]) -> np.ndarray:
        features, pending = [], []
        for image in images:
            pending.append(image)
            if len(pending) == self.batch_size:
                features.append(np.asarray(self._model(self._prepare(pending), training=False)))
                pending = []
        if pending:
            features.append(np.asarray(self._model(self._prepare(pending), training=False)))
        if not features:
            return np.zeros((0, FEATURE_SIZE))
        return np.concatenate(features).astype(np.float64)
