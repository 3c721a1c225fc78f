"""Evidence that a candidate is an unlabelled positive, beyond the judge's score of (query, candidate).

Computed here from the retrievers and the inputs (the effects), then handed to the pure rules of
``negmine.filters``, for any batch of queries:

- ``twin_similarity``: whether the candidate is a positive of another query asking the same question (the same
  normalised text, or a bi-encoder cosine between the two queries);
- ``lexical_overlap``: how much of a positive's wording the candidate repeats (BM25 of the positive's text as the
  query against the candidate, as a share of the positive's score against itself);
- ``bm25_scores``: the candidate's BM25 score for the query (and the positives'), whose margin over the reference
  positive is the ``agreement`` rule's BM25 half (its dense half is scored lazily, with the judge).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np

from negmine.filters import margin_reference


@dataclass
class Owners:
    """Which queries have each document as a positive (all the run's mined queries), as CSR arrays.

    Attributes:
        indptr: ``indptr[d] .. indptr[d + 1]`` delimits document ``d``'s owners in ``queries``.
        queries: Query rows (positions in the run's mined queries).
    """

    indptr: np.ndarray
    queries: np.ndarray

    @classmethod
    def of(cls, positives: Sequence[Sequence[int]], n_docs: int) -> "Owners":
        docs = np.fromiter((d for p in positives for d in p), dtype=np.int64)
        rows = np.fromiter((q for q, p in enumerate(positives) for _ in p), dtype=np.int64)
        order = np.argsort(docs, kind="stable")
        counts = np.bincount(docs, minlength=n_docs)
        return cls(np.concatenate([[0], np.cumsum(counts)]).astype(np.int64), rows[order])

    def of_doc(self, d: int) -> np.ndarray:
        return self.queries[self.indptr[d] : self.indptr[d + 1]]


def twin_similarity(
    indices: np.ndarray, rows: np.ndarray, owners: Owners, normalized_queries: Union[Sequence[str], np.ndarray],
    query_vectors: Optional[Callable[[np.ndarray], np.ndarray]],
) -> np.ndarray:
    """Per candidate, how alike this query is to another query that has the candidate as a positive: ``inf`` when
    their normalised texts are equal, else the highest cosine of their vectors (``-inf`` when the candidate is no
    other query's positive, or when no vectors are given and no text is equal).

    Args:
        indices: ``(n, k)`` candidate corpus indices of a batch (-1: none).
        rows: The batch's query rows (positions in the run's mined queries), one per row of ``indices``.
        owners: The run's positives by document.
        normalized_queries: Every mined query's normalised text (or a digest of it).
        query_vectors: Vectors of mined query rows (L2-normalised), or ``None``.
    """
    out = np.full(indices.shape, -np.inf, dtype=np.float32)
    pairs: list[tuple[int, int, int]] = []  # (cell row, cell column, other query)
    for i, (q, row) in enumerate(zip(rows, indices)):
        for j, d in enumerate(row):
            if d < 0:
                continue
            for other in owners.of_doc(int(d)):
                if other != q:
                    if normalized_queries[other] == normalized_queries[q]:
                        out[i, j] = np.inf
                    else:
                        pairs.append((i, j, int(other)))
    if pairs and query_vectors is not None:
        cells = np.array(pairs, dtype=np.int64)
        mine = query_vectors(np.asarray(rows, dtype=np.int64)[cells[:, 0]])
        theirs = query_vectors(cells[:, 2])
        cos = np.einsum("ij,ij->i", mine, theirs).astype(np.float32)
        np.maximum.at(out, (cells[:, 0], cells[:, 1]), cos)
    return out


def lexical_overlap(
    indices: np.ndarray, positives: Sequence[Sequence[int]], positive_scores: Callable[[int, np.ndarray], np.ndarray],
) -> np.ndarray:
    """Per candidate, the highest over the query's positives p of BM25(p's text, candidate) / BM25(p's text, p).

    Args:
        indices: ``(n, k)`` candidate corpus indices (-1: none).
        positives: Each row's positives (corpus indices).
        positive_scores: ``positive_scores(p, docs)``: BM25 scores of ``docs`` with positive ``p``'s text as the
            query.
    """
    out = np.zeros(indices.shape, dtype=np.float32)
    for i, (row, pos) in enumerate(zip(indices, positives)):
        valid = row >= 0
        for p in pos:
            scores = positive_scores(int(p), np.concatenate([[p], row[valid]]).astype(np.int64))
            if scores[0] > 0:
                out[i, valid] = np.maximum(out[i, valid], scores[1:] / scores[0])
    return out


def bm25_scores(
    indices: np.ndarray, positives: Sequence[Sequence[int]], query_scores: Callable[[int, np.ndarray], np.ndarray],
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Per candidate, its BM25 score for the query (``-inf`` for empty slots), and per row its positives' scores.

    Args:
        indices: ``(n, k)`` candidate corpus indices (-1: none).
        positives: Each row's positives.
        query_scores: ``query_scores(i, docs)``: BM25 scores of ``docs`` for row ``i``'s query.
    """
    out = np.full(indices.shape, -np.inf, dtype=np.float32)
    pos_scores: list[np.ndarray] = []
    for i, (row, pos) in enumerate(zip(indices, positives)):
        valid = row >= 0
        scores = np.asarray(query_scores(i, np.concatenate([np.asarray(pos, dtype=np.int64), row[valid]])),
                            dtype=np.float32)
        pos_scores.append(scores[: len(pos)])
        out[i, valid] = scores[len(pos) :]
    return out, pos_scores


def bm25_margin(scores: np.ndarray, positive_scores: Sequence[np.ndarray], reference: str = "min") -> np.ndarray:
    """Per candidate, its BM25 score minus the reference positive's (``min``, ``mean`` or ``max`` of the query's
    positives); ``-inf`` for empty slots. Positive where BM25 ranks the candidate above the positive.

    Args:
        scores: ``(n, k)`` candidates' BM25 scores (``bm25_scores``).
        positive_scores: Each row's positives' BM25 scores.
        reference: Which positive's score to compare with.
    """
    out = np.full(scores.shape, -np.inf, dtype=np.float32)
    for i, pos in enumerate(positive_scores):
        valid = np.isfinite(scores[i])
        out[i, valid] = scores[i, valid] - np.float32(margin_reference(np.asarray(pos), reference))
    return out


def bm25_scorer(bm25: Any, texts: Sequence[str]) -> Callable[[int, np.ndarray], np.ndarray]:
    """``scores(i, docs)``: BM25 scores of ``docs`` with ``texts[i]`` as the query (each text tokenized once).

    With an index that scores given documents directly (``term_ids`` and ``pair_scores_ids``: a binary search in
    each term's postings), no corpus-sized vector is built; else each text is scored against the whole corpus once.
    """
    memo: dict[int, np.ndarray] = {}
    if hasattr(bm25, "pair_scores_ids") and hasattr(bm25, "term_ids"):

        def pair_scores(i: int, docs: np.ndarray) -> np.ndarray:
            if i not in memo:
                memo.clear()
                memo[i] = bm25.term_ids([texts[i]])[0]
            return bm25.pair_scores_ids([memo[i]], [docs])[0]

        return pair_scores

    def scores(i: int, docs: np.ndarray) -> np.ndarray:
        if i not in memo:
            memo.clear()  # one text at a time: a corpus-sized vector each
            memo[i] = bm25.scores(texts[i])
        return memo[i][docs]

    return scores


@dataclass
class Evidence:
    """The evidence of a batch of candidates, each ``(n, k)`` like the candidates (``None`` where its rule is off).

    Attributes:
        twin_similarity: See ``twin_similarity``.
        overlap: See ``lexical_overlap``.
        bm25_scores: The candidates' BM25 scores for their query (``bm25_scores``).
        bm25_positive: Each row's positives' BM25 scores for the query.
    """

    twin_similarity: Optional[np.ndarray] = None
    overlap: Optional[np.ndarray] = None
    bm25_scores: Optional[np.ndarray] = None
    bm25_positive: Optional[list[np.ndarray]] = None

    def bm25_margin(self, reference: str) -> Optional[np.ndarray]:
        """See ``bm25_margin`` (``None`` when the BM25 scores were not gathered)."""
        if self.bm25_scores is None or self.bm25_positive is None:
            return None
        return bm25_margin(self.bm25_scores, self.bm25_positive, reference)


def gather(
    indices: np.ndarray, rows: np.ndarray, positives: Sequence[Sequence[int]], *, bm25: Any = None,
    query_texts: Sequence[str] = (), doc_texts: Sequence[str] = (), owners: Optional[Owners] = None,
    normalized_queries: Union[Sequence[str], np.ndarray] = (),
    query_vectors: Optional[Callable[[np.ndarray], np.ndarray]] = None,
    cross_query: bool = False, lexical: bool = False, agreement: bool = False,
) -> Evidence:
    """The evidence the enabled rules read, for the candidates ``indices`` of query rows ``rows`` (positions in
    the run's mined queries; ``query_texts`` and ``positives`` follow the batch's rows)."""
    out = Evidence()
    if cross_query and owners is not None:
        out.twin_similarity = twin_similarity(indices, rows, owners, normalized_queries, query_vectors)
    if lexical and bm25 is not None:
        out.overlap = lexical_overlap(indices, positives, bm25_scorer(bm25, doc_texts))
    if agreement and bm25 is not None:
        out.bm25_scores, out.bm25_positive = bm25_scores(indices, positives, bm25_scorer(bm25, query_texts))
    return out
