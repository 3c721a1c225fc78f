"""``cross_query``: a candidate that is a known positive of another query asking the same question (the same
normalised text, or a bi-encoder cosine between the two queries of at least ``--cross-query``) is relevant here too."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence, Union

from negmine.rules.base import EVIDENCE, Option, Rule, above

if TYPE_CHECKING:
    import numpy as np

    from negmine.rules.evidence import Context


@dataclass
class Owners:
    """Which queries have each document as a positive (all the run's mined queries), as CSR arrays.

    Attributes:
        indptr: ``indptr[d] .. indptr[d + 1]`` delimits document ``d``'s owners in ``queries``.
        queries: Query rows (positions in the run's mined queries).
    """

    indptr: "np.ndarray"
    queries: "np.ndarray"

    @classmethod
    def of(cls, positives: Sequence[Sequence[int]], n_docs: int) -> "Owners":
        import numpy as np

        docs = np.fromiter((d for p in positives for d in p), dtype=np.int64)
        rows = np.fromiter((q for q, p in enumerate(positives) for _ in p), dtype=np.int64)
        order = np.argsort(docs, kind="stable")
        counts = np.bincount(docs, minlength=n_docs)
        return cls(np.concatenate([[0], np.cumsum(counts)]).astype(np.int64), rows[order])

    def of_doc(self, d: int) -> "np.ndarray":
        return self.queries[self.indptr[d] : self.indptr[d + 1]]


def twin_similarity(
    indices: "np.ndarray", rows: "np.ndarray", owners: Owners, normalized_queries: Union[Sequence[str], "np.ndarray"],
    query_vectors: Optional[Callable[["np.ndarray"], "np.ndarray"]],
) -> "np.ndarray":
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
    import numpy as np

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


def gather(context: "Context") -> dict[str, Any]:
    if context.owners is None:
        return {}
    return {"twin_similarity": twin_similarity(context.indices, context.rows, context.owners,
                                               context.normalized_queries, context.query_vectors)}


def twin_query_mask(twin_similarity: "np.ndarray", threshold: float) -> "np.ndarray":
    """True where a candidate is a positive of another query whose text is (near-)identical to this query's."""
    return twin_similarity >= threshold


mask = above("twin_similarity", "cross_query", inclusive=True)

RULE = Rule(
    "cross_query", EVIDENCE, "a known positive of another query asking the same question: the same normalised text, "
    "or a bi-encoder cosine between the two queries of at least `--cross-query`", "raise --cross-query (or none)",
    mask, options=(Option("cross_query", 0.95, "optional number", "Drop candidates that are positives of another "
                          "query asking the same question: equal normalised text, or a query-query cosine of at least "
                          "this; a number or none.", -1, 1, "a cosine"),),
    reads=("twin_similarity",), columns=("twin_similarity",), false_negative=True, gather=gather)
