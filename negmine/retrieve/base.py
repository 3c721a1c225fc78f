"""What every retriever returns, and the exact top-k selection they share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

import numpy as np

from negmine.progress import Progress


@dataclass
class Hits:
    """Top-k candidates per query: ``indices[q, r]`` is the corpus index at rank ``r`` (-1 = no candidate),
    ``scores[q, r]`` its retriever score (-inf where there is none)."""

    indices: np.ndarray
    scores: np.ndarray

    @classmethod
    def empty(cls, n_queries: int, k: int) -> "Hits":
        return cls(np.full((n_queries, k), -1, dtype=np.int64), np.full((n_queries, k), -np.inf, dtype=np.float32))


class Retriever(Protocol):
    """Anything that can propose candidates for queries from the corpus it was built on."""

    name: str

    def search(self, queries: Sequence[str], k: int, progress: Progress | None = None) -> Hits:
        """The top ``k`` documents for each query text."""
        ...

    def pair_scores(self, queries: Sequence[str], docs: Sequence[Sequence[int]]) -> list[np.ndarray]:
        """The retriever's score of given documents (corpus indices) for each query."""
        ...


def topk(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and values of the ``k`` largest scores, best first; ties go to the lower index."""
    n = scores.shape[0]
    k = min(k, n)
    if k <= 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=scores.dtype)
    if k < n:
        kth = scores[np.argpartition(-scores, k - 1)[k - 1]]
        above = np.flatnonzero(scores > kth)
        part = np.concatenate([above, np.flatnonzero(scores == kth)[: k - above.size]])
    else:
        part = np.arange(n)
    best = part[np.lexsort((part, -scores[part]))]
    return best.astype(np.int64), scores[best]
