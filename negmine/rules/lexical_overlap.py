"""``lexical_overlap``: a candidate that repeats more than ``--lexical-overlap`` of a positive's wording (BM25 of the
positive's text as the query against the candidate, over its score against the positive itself) says what the
positive says."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Sequence

from negmine.rules.base import EVIDENCE, Option, Rule, above
from negmine.rules.evidence import bm25_scorer

if TYPE_CHECKING:
    import numpy as np

    from negmine.rules.evidence import Context


def lexical_overlap(
    indices: "np.ndarray", positives: Sequence[Sequence[int]],
    positive_scores: Callable[[int, "np.ndarray"], "np.ndarray"],
) -> "np.ndarray":
    """Per candidate, the highest over the query's positives p of BM25(p's text, candidate) / BM25(p's text, p).

    Args:
        indices: ``(n, k)`` candidate corpus indices (-1: none).
        positives: Each row's positives (corpus indices).
        positive_scores: ``positive_scores(p, docs)``: BM25 scores of ``docs`` with positive ``p``'s text as the
            query.
    """
    import numpy as np

    out = np.zeros(indices.shape, dtype=np.float32)
    for i, (row, pos) in enumerate(zip(indices, positives)):
        valid = row >= 0
        for p in pos:
            scores = positive_scores(int(p), np.concatenate([[p], row[valid]]).astype(np.int64))
            if scores[0] > 0:
                out[i, valid] = np.maximum(out[i, valid], scores[1:] / scores[0])
    return out


def gather(context: "Context") -> dict[str, Any]:
    if context.bm25 is None:
        return {}
    return {"lexical_overlap": lexical_overlap(context.indices, context.positives,
                                               bm25_scorer(context.bm25, context.doc_texts))}


def lexical_overlap_mask(overlap: "np.ndarray", threshold: float) -> "np.ndarray":
    """True where a candidate repeats too much of a positive's wording (about 1 for a copy, 0 for no shared term)."""
    return overlap > threshold


mask = above("lexical_overlap", "lexical_overlap")

RULE = Rule(
    "lexical_overlap", EVIDENCE, "repeats more than `--lexical-overlap` of a positive's wording (BM25 of the "
    "positive's text against the candidate, over its score against itself)", "raise --lexical-overlap (or none)",
    mask, options=(Option("lexical_overlap", 0.1, "optional number", "Drop candidates repeating more than this share "
                          "of a positive's wording (BM25 of the positive's text against the candidate, over its score "
                          "against itself); a number or none.", 0, what="a share of the positive's own score"),),
    reads=("lexical_overlap",), columns=("lexical_overlap",), false_negative=True, bm25=True,
    gather=gather)
