"""What a judge is (a Scorer of (query row, document) pairs), the scorers of a batch, and scorers that look values
up instead of computing them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Protocol, Sequence

import numpy as np

#: Pairs whose vectors are gathered at a time when bi-encoder scores are computed (memory: 2 x 16,384 x dim floats).
SCORE_PAIRS = 1 << 14


class Scorer(Protocol):
    """Scores (query row, corpus index) pairs; higher means more relevant."""

    name: str

    def identity(self) -> dict[str, Any]:
        """What the scores depend on (for the provenance)."""
        ...

    def score(self, query_rows: np.ndarray, docs: np.ndarray) -> np.ndarray:
        """One score per pair."""
        ...


@dataclass
class Scorers:
    """A batch's scorers: the judge, and the values the rules read from the retrieval bi-encoder: its cosine (the
    agreement rule), the highest cosine to a positive (near-duplicate) and the positive proximity (its rule);
    ``None`` where not available."""

    judge: Scorer
    cosine: Optional[Scorer] = None
    similarity: Optional[Scorer] = None
    proximity: Optional[Scorer] = None


class MissingScore(LookupError):
    """A value a rule needs was not computed ahead (``what``: its name; ``row``, ``doc``: the pair)."""

    def __init__(self, what: str, row: int, doc: int) -> None:
        super().__init__(f"no {what} for query row {row}, document {doc}")
        self.what, self.row, self.doc = what, row, doc


class LookupScorer:
    """A Scorer over values computed ahead: ``values[q, c]`` for the candidate at ``indices[q, c]``, and
    ``positive_values[q][j]`` for the query's ``j``-th positive (NaN: not computed, which raises ``MissingScore``).

    Args:
        name: The name of the scorer the values came from (the summary shows it).
        what: The values' name, for ``MissingScore``.
        rows: The input rows of the queries (``MissingScore`` names them; default: their positions here).
    """

    def __init__(self, name: str, what: str, indices: np.ndarray, values: np.ndarray,
                 positives: Sequence[Sequence[int]], positive_values: Sequence[np.ndarray],
                 rows: Optional[np.ndarray] = None) -> None:
        self.name, self.what, self.rows = name, what, rows
        self._table: dict[tuple[int, int], float] = {}
        q, c = np.nonzero(indices >= 0)
        for qq, d, v in zip(q.tolist(), indices[q, c].tolist(), values[q, c].tolist()):
            self._table[(qq, d)] = v
        for qq, (pos, vals) in enumerate(zip(positives, positive_values)):
            for d, v in zip(pos, np.asarray(vals).tolist()):
                if not np.isnan(v) or (qq, int(d)) not in self._table:
                    self._table[(qq, int(d))] = v

    def identity(self) -> dict[str, Any]:
        return {"type": self.name}

    def score(self, query_rows: np.ndarray, docs: np.ndarray) -> np.ndarray:
        out = np.empty(len(docs), dtype=np.float32)
        for i, (q, d) in enumerate(zip(np.asarray(query_rows).tolist(), np.asarray(docs).tolist())):
            v = self._table.get((q, d), np.nan)
            if np.isnan(v):
                raise MissingScore(self.what, int(self.rows[q]) if self.rows is not None else q, d)
            out[i] = v
        return out


#: What the values a run computes are called in messages (and in the candidates file): column -> description.
VALUE_NAMES = {"reranker_score": "the judge's score (reranker_score)", "cosine": "the bi-encoder's cosine (cosine)",
               "positive_similarity": "the cosine to the closest positive (positive_similarity)",
               "positive_proximity": "how much nearer a positive than the query it is (positive_proximity)",
               "pair_score": "the retriever's pair score (pair_score)"}


def lookup_scorers(indices: np.ndarray, positives: Sequence[Sequence[int]], judge_name: str, judge: np.ndarray,
                   positive_judge: Sequence[np.ndarray], cosine: Optional[np.ndarray] = None,
                   positive_cosine: Optional[Sequence[np.ndarray]] = None, similarity: Optional[np.ndarray] = None,
                   rows: Optional[np.ndarray] = None, proximity: Optional[np.ndarray] = None) -> Scorers:
    """The judge, the bi-encoder cosine, the positive-similarity and the positive-proximity scorers over values
    computed ahead (``None`` where those values are not given)."""
    nan = [np.full(len(p), np.nan, np.float32) for p in positives]

    def lookup(name: str, column: str, values: Optional[np.ndarray], per_positive: Any = None) -> Any:
        if values is None:
            return None
        return LookupScorer(name, VALUE_NAMES[column], indices, values, positives,
                            per_positive if per_positive is not None else nan, rows)

    return Scorers(lookup(judge_name, "reranker_score", judge, positive_judge),
                   lookup("bi-encoder", "cosine", cosine, positive_cosine),
                   lookup("positive similarity", "positive_similarity", similarity),
                   lookup("positive proximity", "positive_proximity", proximity))
