"""Fusing candidate lists from several retrievers: the union, ordered by reciprocal rank fusion (or by the sum of
min-max normalised scores), with each candidate's rank in every list kept."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from negmine.progress import Progress
from negmine.retrieve.base import Hits, Retriever


@dataclass
class FusedHits(Hits):
    """Hits plus, per source retriever, the rank each candidate had there (-1: that retriever did not find it)."""

    source_ranks: dict[str, np.ndarray]


def fuse(lists: dict[str, Hits], method: str = "rrf", rrf_k: int = 60) -> FusedHits:
    """The union of the candidate lists, best fused score first (ties: lower corpus index first).

    Args:
        lists: Hits per retriever name, for the same queries.
        method: ``rrf``: sum of ``1 / (rrf_k + rank)`` with ranks from 1; ``score``: sum of each list's scores
            min-max normalised per query (a missing candidate adds 0).
        rrf_k: The RRF constant (60 in Cormack et al. 2009).
    """
    names = list(lists)
    nq = next(iter(lists.values())).indices.shape[0]
    width = sum(h.indices.shape[1] for h in lists.values())
    base = Hits.empty(nq, width)
    out = FusedHits(base.indices, base.scores, {n: np.full((nq, width), -1, dtype=np.int32) for n in names})
    for q in range(nq):
        fused: dict[int, float] = {}
        ranks: dict[int, dict[str, int]] = {}
        for name in names:
            idx = lists[name].indices[q]
            valid = idx >= 0
            if method == "rrf":
                contrib = 1.0 / (rrf_k + np.arange(1, idx.size + 1))
            else:
                s = lists[name].scores[q][valid].astype(np.float64)
                lo, hi = (s.min(), s.max()) if s.size else (0.0, 0.0)
                contrib = np.zeros(idx.size)
                contrib[valid] = (s - lo) / (hi - lo) if hi > lo else 1.0
            for r in np.flatnonzero(valid):
                d = int(idx[r])
                fused[d] = fused.get(d, 0.0) + float(contrib[r])
                ranks.setdefault(d, {})[name] = int(r)
        order = sorted(fused, key=lambda d: (-fused[d], d))
        n = len(order)
        out.indices[q, :n] = order
        out.scores[q, :n] = [fused[d] for d in order]
        for name in names:
            out.source_ranks[name][q, :n] = [ranks[d].get(name, -1) for d in order]
    return out


class HybridRetriever:
    """Several retrievers searched with the same queries and fused; scores pairs with its ``scorer`` member."""

    name = "hybrid"

    def __init__(self, retrievers: dict[str, Retriever], method: str = "rrf", rrf_k: int = 60,
                 scorer: str = "dense") -> None:
        self.retrievers = retrievers
        self.method = method
        self.rrf_k = rrf_k
        self.scorer = scorer

    def search(self, queries: Sequence[str], k: int, progress: Optional[Progress] = None) -> FusedHits:
        """Each retriever's top ``k``, fused: up to ``k`` times the number of retrievers candidates per query."""
        return fuse({n: r.search(queries, k, progress) for n, r in self.retrievers.items()}, self.method, self.rrf_k)

    def pair_scores(self, queries: Sequence[str], docs: Sequence[Sequence[int]]) -> list[np.ndarray]:
        """Scores of given documents by the ``scorer`` retriever (fused scores exist only for retrieved ones)."""
        return self.retrievers[self.scorer].pair_scores(queries, docs)
