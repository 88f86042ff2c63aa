"""Cosine similarity of identity embeddings (NumPy): the one implementation the swapper, evaluation and benchmarks
share. Embeddings may have any scale (ArcFace and SFace outputs are raw, not unit length)."""

from __future__ import annotations

import numpy as np


def unit_rows(embeddings: np.ndarray) -> np.ndarray:
    """[..., D] -> the same, each row scaled to unit L2 norm (float64).

    Raises:
        ValueError: a row has zero or non-finite norm (its direction, hence its cosine, is undefined).
    """
    features = np.asarray(embeddings, dtype=np.float64)
    norms = np.linalg.norm(features, axis=-1, keepdims=True)
    if not np.all(np.isfinite(norms)) or np.any(norms == 0.0):
        raise ValueError("an identity embedding has zero or non-finite norm; its cosine similarity is undefined")
    return features / norms


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray | float:
    """Cosine of matching rows: a [..., D] and b [..., D] (broadcast) -> [...]; two vectors [D] -> a float."""
    values = np.sum(unit_rows(a) * unit_rows(b), axis=-1)
    return float(values) if np.ndim(values) == 0 else values


def cosine_matrix(a: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """[N, D] x [M, D] -> [N, M] cosine similarities (b defaults to a)."""
    left = unit_rows(np.atleast_2d(a))
    right = left if b is None else unit_rows(np.atleast_2d(b))
    return left @ right.T
