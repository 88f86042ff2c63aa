"""Face verification metrics: cosine scores of genuine (same identity) and impostor pairs, and their ROC AUC."""

from __future__ import annotations

import numpy as np

from clipswap.face.similarity import cosine_matrix


def genuine_impostor_scores(embeddings: np.ndarray, labels) -> tuple[np.ndarray, np.ndarray]:
    """Cosine similarity of every unordered pair, split by whether both share an identity label.

    Args:
        embeddings: [N, D] features.
        labels: N identity labels (any hashable values).

    Returns:
        (genuine scores, impostor scores), 1-D float64 arrays.
    """
    embeddings = np.asarray(embeddings, dtype=np.float64)
    if embeddings.ndim != 2:
        raise ValueError(f"embeddings must be [N, D], got shape {embeddings.shape}")
    labels = np.asarray(labels)
    if labels.shape != (len(embeddings),):
        raise ValueError(f"need one label per embedding, got {labels.shape} labels for {len(embeddings)} embeddings")
    similarity = cosine_matrix(embeddings)
    upper = np.triu_indices(len(labels), k=1)
    same = labels[upper[0]] == labels[upper[1]]
    scores = similarity[upper]
    return scores[same], scores[~same]


def roc_auc(genuine: np.ndarray, impostor: np.ndarray) -> float:
    """Area under the ROC curve of "higher score = same person".

    Equals the probability that a random genuine score exceeds a random impostor score, ties counting one half
    (the Mann-Whitney U statistic divided by the number of genuine-impostor pairs).
    """
    genuine = np.asarray(genuine, dtype=np.float64).reshape(-1)
    impostor = np.asarray(impostor, dtype=np.float64).reshape(-1)
    if genuine.size == 0 or impostor.size == 0:
        raise ValueError(f"need at least one genuine and one impostor score, got {genuine.size} and {impostor.size}")
    ordered = np.sort(impostor)
    below = np.searchsorted(ordered, genuine, side="left")
    tied = np.searchsorted(ordered, genuine, side="right") - below
    return float((below + 0.5 * tied).sum() / (genuine.size * impostor.size))
