"""ID similarity and ID retrieval (the paper's Tables I and II), from identity embeddings.

* ID similarity: mean cosine (clipswap.face.similarity.cosine_similarity) between the embeddings of each pair's
  source and swap.
* ID retrieval: for each swap, the nearest (highest cosine) entry of the gallery of all distinct source images;
  a hit when that entry's identity label equals the pair's source identity. Top-1 accuracy in percent.
* Closer to source: whether a swap is nearer its own source than its own target in the identity model's space
  (the demo model's bar in docs/demo_model.md: more than 60 % of pairs); percent of pairs over a run.
  "output = target" scores 0 %, "output = source" 100 %.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from clipswap.face.similarity import cosine_similarity, unit_rows


def retrieve_top1(
    queries: np.ndarray, gallery: np.ndarray, gallery_labels: Sequence[str], block: int = 1024
) -> list[str]:
    """Label of the nearest gallery entry for each query.

    Args:
        queries: [Q, D] embeddings (swaps).
        gallery: [G, D] embeddings (distinct sources).
        gallery_labels: G identity labels.
        block: queries compared at a time (bounds memory to block x G).

    Returns:
        Q labels; ties go to the first gallery entry.
    """
    queries = np.asarray(queries, dtype=np.float64)
    gallery = np.asarray(gallery, dtype=np.float64)
    if gallery.ndim != 2 or len(gallery) != len(gallery_labels) or len(gallery) == 0:
        raise ValueError(f"gallery must be [G, D] with G labels and G > 0, got {gallery.shape}, {len(gallery_labels)}")
    if len(queries) == 0:
        return []
    queries, gallery = unit_rows(queries), unit_rows(gallery)
    # In blocks: 10K swaps against 10K sources would be an 800 MB similarity matrix at once.
    nearest = np.concatenate(
        [np.argmax(queries[i : i + block] @ gallery.T, axis=1) for i in range(0, len(queries), block)]
    )
    return [gallery_labels[i] for i in nearest]


def retrieval_accuracy(predicted: Sequence[str], expected: Sequence[str]) -> float:
    """Top-1 accuracy in percent."""
    if len(predicted) != len(expected):
        raise ValueError(f"{len(predicted)} predictions for {len(expected)} expected labels")
    if not expected:
        return float("nan")
    return 100.0 * sum(p == e for p, e in zip(predicted, expected, strict=True)) / len(expected)


def closer_to_source(swap: np.ndarray, source: np.ndarray, target: np.ndarray) -> bool:
    """Whether the swap's embedding is nearer its source's than its target's: a higher cosine to the source than to
    the target, which for unit-length embeddings is a smaller Euclidean distance. A tie is not closer.

    Args:
        swap, source, target: [D] embeddings of one pair's three images (any norm but zero).
    """
    return bool(cosine_similarity(swap, source) > cosine_similarity(swap, target))
