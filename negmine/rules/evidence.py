"""Evidence that a candidate is an unlabelled positive, beyond the judge's score of (query, candidate): what the
evidence rules read, gathered for a batch of queries from the indexes and the inputs, each by the rule that reads it
(``Rule.gather``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence, Union

if TYPE_CHECKING:
    import numpy as np


@dataclass
class Context:
    """What the evidence of a batch is gathered from.

    Attributes:
        indices: ``(n, k)`` candidate corpus indices (-1: none).
        rows: The batch's queries: their positions in the run's mined queries.
        positives: Each row's positives (corpus indices).
        bm25: A BM25 index (``term_ids`` and ``pair_scores_ids``, or ``scores``), or ``None``.
        query_texts: The batch's query texts.
        doc_texts: The corpus's texts.
        owners: The run's positives by document (``negmine.rules.cross_query.Owners``), or ``None``.
        normalized_queries: Every mined query's normalised text (or a digest of it).
        query_vectors: Vectors of mined query rows (L2-normalised), or ``None``.
    """

    indices: "np.ndarray"
    rows: "np.ndarray"
    positives: Sequence[Sequence[int]]
    bm25: Any = None
    query_texts: Sequence[str] = ()
    doc_texts: Sequence[str] = ()
    owners: Any = None
    normalized_queries: Union[Sequence[str], "np.ndarray"] = ()
    query_vectors: Optional[Callable[["np.ndarray"], "np.ndarray"]] = None


def bm25_scorer(bm25: Any, texts: Sequence[str]) -> Callable[[int, "np.ndarray"], "np.ndarray"]:
    """``scores(i, docs)``: BM25 scores of ``docs`` with ``texts[i]`` as the query (each text tokenized once).

    With an index that scores given documents directly (``term_ids`` and ``pair_scores_ids``: a binary search in
    each term's postings), no corpus-sized vector is built; else each text is scored against the whole corpus once.
    """
    memo: dict[int, Any] = {}
    if hasattr(bm25, "pair_scores_ids") and hasattr(bm25, "term_ids"):

        def pair_scores(i: int, docs: "np.ndarray") -> "np.ndarray":
            if i not in memo:
                memo.clear()
                memo[i] = bm25.term_ids([texts[i]])[0]
            return bm25.pair_scores_ids([memo[i]], [docs])[0]

        return pair_scores

    def scores(i: int, docs: "np.ndarray") -> "np.ndarray":
        if i not in memo:
            memo.clear()  # one text at a time: a corpus-sized vector each
            memo[i] = bm25.scores(texts[i])
        return memo[i][docs]

    return scores
