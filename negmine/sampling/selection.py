"""What was mined, as flat arrays per query-positive pair (``Selection``), and the scores written with it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence, Union

import numpy as np


@dataclass
class Selection:
    """What was mined, as flat arrays with one entry per query-positive pair.

    Attributes:
        query: Query index of each pair.
        positive: Corpus index of each pair's positive.
        positive_score: Score of the positive (NaN where unknown).
        negatives: Corpus indices of each pair's negatives, best-ranked first.
        negative_scores: Their scores, aligned with ``negatives``.
        negative_positions: Their positions (ranks) in the query's candidate list.
        negative_bands: Their difficulty bands (``--difficulty-bands``), or ``None``.
    """

    query: np.ndarray
    positive: np.ndarray
    positive_score: np.ndarray
    negatives: list[np.ndarray]
    negative_scores: list[np.ndarray]
    negative_positions: list[np.ndarray]
    negative_bands: Optional[list[np.ndarray]] = None

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Flat arrays (the negatives concatenated, with offsets), to store."""
        counts = np.array([len(n) for n in self.negatives], dtype=np.int64)

        def flat(parts: list[np.ndarray], dtype: Any) -> np.ndarray:
            return np.concatenate(parts).astype(dtype) if parts else np.empty(0, dtype)

        out = {"query": self.query, "positive": self.positive, "positive_score": self.positive_score,
               "offsets": np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
               "negatives": flat(self.negatives, np.int64), "negative_scores": flat(self.negative_scores, np.float32),
               "negative_positions": flat(self.negative_positions, np.int64)}
        if self.negative_bands is not None:
            out["negative_bands"] = flat(self.negative_bands, np.int8)
        return out

    @classmethod
    def from_arrays(cls, a: dict[str, np.ndarray]) -> "Selection":
        o = a["offsets"]
        cut = [(int(o[i]), int(o[i + 1])) for i in range(len(o) - 1)]
        bands = [a["negative_bands"][i:j] for i, j in cut] if "negative_bands" in a else None
        return cls(a["query"], a["positive"], a["positive_score"], [a["negatives"][i:j] for i, j in cut],
                   [a["negative_scores"][i:j] for i, j in cut], [a["negative_positions"][i:j] for i, j in cut],
                   bands)


def selection(query_rows: Union[Sequence[int], np.ndarray], positives: Sequence[Sequence[int]],
              picks: list[list[np.ndarray]], hits: Any) -> Any:
    """The picks as a ``Selection``: one entry per query-positive pair, its negatives' corpus rows, retrieval
    scores and positions in the candidate list."""

    query, positive, negs, nscores, positions = [], [], [], [], []
    for row, q in enumerate(query_rows):
        for j, pos in enumerate(positives[row]):
            cols = picks[row][j]
            query.append(int(q))
            positive.append(int(pos))
            negs.append(hits.indices[row, cols])
            nscores.append(hits.scores[row, cols])
            positions.append(cols)
    return Selection(np.array(query, dtype=np.int64), np.array(positive, dtype=np.int64),
                     np.full(len(query), np.nan, dtype=np.float32), negs, nscores, positions)


def judge_scores(sel: Any, scores: np.ndarray, positive_scores: Sequence[np.ndarray]) -> None:
    """Fill a batch's ``Selection`` with the judge's scores of its positives and negatives (``sel.query`` rows are
    the batch's rows in order; ``scores`` ``(n, k)`` of the candidates, ``positive_scores`` per row, in the order
    of the selection's positives)."""
    row_of: dict[int, int] = {}
    j_of: dict[int, int] = {}
    for i, q in enumerate(sel.query):
        row = row_of.setdefault(int(q), len(row_of))
        j = j_of.get(row, 0)
        j_of[row] = j + 1
        sel.positive_score[i] = positive_scores[row][j]
        sel.negative_scores[i] = scores[row, sel.negative_positions[i]]


def retriever_scores(sel: Any, pair_scores: Any) -> None:
    """Fill a batch's ``Selection`` with the retriever's own pair scores (BM25's, or the bi-encoder's cosine for
    dense and hybrid, whose fused scores exist only for retrieved documents): ``pair_scores(docs)`` gives, for each
    of the batch's queries, the scores of its list of documents."""
    row_of: dict[int, int] = {}
    for q in sel.query:
        row_of.setdefault(int(q), len(row_of))
    docs: list[list[int]] = [[] for _ in row_of]
    for i, q in enumerate(sel.query):
        docs[row_of[int(q)]].extend([int(sel.positive[i]), *map(int, sel.negatives[i])])
    scores = pair_scores(docs)
    lookup = [dict(zip(d, np.asarray(s).tolist())) for d, s in zip(docs, scores)]
    for i, q in enumerate(sel.query):
        table = lookup[row_of[int(q)]]
        sel.positive_score[i] = table[int(sel.positive[i])]
        sel.negative_scores[i] = np.array([table[int(d)] for d in sel.negatives[i]], dtype=np.float32)
