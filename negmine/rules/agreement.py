"""``agreement``: a candidate that both retrievers put above the positive (a higher BM25 score and a higher
bi-encoder cosine for the query than the reference positive's) is, on two unrelated signals, relevant too."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence, Union

from negmine.rules.base import SCORE, Option, Rule, Values, reference_of
from negmine.rules.evidence import bm25_scorer

if TYPE_CHECKING:
    import numpy as np

    from negmine.rules.evidence import Context


def bm25_scores(
    indices: "np.ndarray", positives: Sequence[Sequence[int]],
    query_scores: Callable[[int, "np.ndarray"], "np.ndarray"],
) -> "tuple[np.ndarray, list[np.ndarray]]":
    """Per candidate, its BM25 score for the query (``-inf`` for empty slots), and per row its positives' scores."""
    import numpy as np

    out = np.full(indices.shape, -np.inf, dtype=np.float32)
    pos_scores: list[np.ndarray] = []
    for i, (row, pos) in enumerate(zip(indices, positives)):
        valid = row >= 0
        scores = np.asarray(query_scores(i, np.concatenate([np.asarray(pos, dtype=np.int64), row[valid]])),
                            dtype=np.float32)
        pos_scores.append(scores[: len(pos)])
        out[i, valid] = scores[len(pos) :]
    return out, pos_scores


def bm25_margin(scores: "np.ndarray", positive_scores: Sequence["np.ndarray"], reference: str = "min"
                ) -> "np.ndarray":
    """Per candidate, its BM25 score minus the reference positive's (``min``, ``mean`` or ``max`` of the query's
    positives); ``-inf`` for empty slots. Positive where BM25 ranks the candidate above the positive."""
    import numpy as np

    out = np.full(scores.shape, -np.inf, dtype=np.float32)
    for i, pos in enumerate(positive_scores):
        valid = np.isfinite(scores[i])
        out[i, valid] = scores[i, valid] - np.float32(reference_of(np.asarray(pos), reference))
    return out


def gather(context: "Context") -> dict[str, Any]:
    if context.bm25 is None:
        return {}
    scores, positive = bm25_scores(context.indices, context.positives, bm25_scorer(context.bm25, context.query_texts))
    return {"bm25_score": scores, "bm25_positive": positive}


def agreement_mask(bm25_candidate: "np.ndarray", bm25_positive: Union[float, "np.ndarray"],
                   cosine_candidate: "np.ndarray", cosine_positive: Union[float, "np.ndarray"]) -> "np.ndarray":
    """True where both retrievers put a candidate above the positive: its BM25 score for the query and its
    bi-encoder cosine to the query both exceed the positive's (with several positives, the reference one's)."""
    return (bm25_candidate > bm25_positive) & (cosine_candidate > cosine_positive)


def mask(values: Values, config: Any) -> Optional["np.ndarray"]:
    """On the cells lazy scoring reached: ``bm25_margin`` (the candidate's BM25 score minus the positive's), and the
    bi-encoder ``cosine`` of the candidate (computed where BM25 already prefers it) and of the positive."""
    if not config.agreement or values.get("agreement_cosine") is None:
        return None
    return agreement_mask(values["bm25_margin"], 0.0, values["agreement_cosine"], values["cosine_reference"])


RULE = Rule(
    "agreement", SCORE, "both retrievers put it above the positive: a higher BM25 score and a higher bi-encoder "
    "cosine for the query", "--no-agreement, or a deeper --range-max", mask,
    options=(Option("agreement", True, "bool", "Drop candidates that both retrievers put above the positive (higher "
                    "BM25 score and higher bi-encoder cosine)."),),
    reads=("bm25_margin", "agreement_cosine", "cosine_reference"), columns=("bm25_score", "cosine"),
    false_negative=True, bi_encoder=True, bm25=True,
    gather=gather)
