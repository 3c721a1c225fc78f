"""The rules, called the way the rule tests call them: a status code per rule name, each rule's own functions, and
the registry's stages over plain arrays with settings given as keywords (every rule off unless named). Imported as
``import rulekit as filters`` by the tests of the rules."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, Hashable, Mapping, Optional, Sequence, Union

import numpy as np

from negmine.rules import registry
from negmine.rules.agreement import agreement_mask, bm25_margin, bm25_scores  # noqa: F401
from negmine.rules.base import reference_of as margin_reference  # noqa: F401
from negmine.rules.cross_query import Owners, twin_query_mask, twin_similarity  # noqa: F401
from negmine.rules.duplicates import normalize_text  # noqa: F401
from negmine.rules.evidence import bm25_scorer  # noqa: F401
from negmine.rules.known import positive_mask  # noqa: F401
from negmine.rules.lexical_overlap import lexical_overlap, lexical_overlap_mask  # noqa: F401
from negmine.rules.percentile_gate import percentile_gate_mask  # noqa: F401
from negmine.rules.registry import (  # noqa: F401
    CODES,
    DROP_RULES,
    FALSE_NEGATIVE_RULES,
    KEPT,
    NO_CANDIDATE,
    NOT_SCORED,
    POSITIVE,
    REASONS,
    SCORE_RULES,
    count_reasons,
    dominant_drop,
    weak_positive,
)
from negmine.rules.window import rank_among, window_mask  # noqa: F401

RANK_WINDOW, DUPLICATE_TEXT, DUPLICATE_CANDIDATE = CODES["rank_window"], CODES["duplicate_text"], \
    CODES["duplicate_candidate"]
CROSS_QUERY, LEXICAL_OVERLAP, NEAR_DUPLICATE = CODES["cross_query"], CODES["lexical_overlap"], CODES["near_duplicate"]
POSITIVE_PROXIMITY, AGREEMENT, MAX_SCORE = CODES["positive_proximity"], CODES["agreement"], CODES["max_score"]
MIN_SCORE, ABSOLUTE_MARGIN, RELATIVE_MARGIN = CODES["min_score"], CODES["absolute_margin"], CODES["relative_margin"]
PERCENTILE_GATE = CODES["percentile_gate"]


def settings(**options: Any) -> SimpleNamespace:
    """The settings the rules read, every rule off but those given."""
    off = {o.name: (False if o.kind == "bool" else None) for o in registry.OPTIONS.values()}
    off.update(percentile_floor=0.0, percentile_cap=1.0)
    base = {**off, "margin_reference": "min", "range_min": 0, "range_max": 1 << 30, "reranker": None,
            "score_all": False}
    return SimpleNamespace(**{**base, **options})


def apply_rules(indices: np.ndarray, positives: Sequence[Sequence[int]], range_min: int, range_max: int,
                normalized: Optional[Mapping[int, Hashable]] = None) -> np.ndarray:
    """The candidate stage: an empty slot, a known positive, the rank window, duplicate texts."""
    return registry.candidate_rules(indices, positives, settings(range_min=range_min, range_max=range_max),
                                    normalized)


def evidence_rules(reasons: np.ndarray, twin: Optional[np.ndarray] = None, cross_query: Optional[float] = None,
                   overlap: Optional[np.ndarray] = None, share: Optional[float] = None) -> np.ndarray:
    """The evidence stage over given evidence: twin-query cosines and their threshold, lexical overlaps and theirs."""
    evidence = {"twin_similarity": twin, "lexical_overlap": overlap}
    return registry.evidence_rules(reasons, evidence, settings(cross_query=cross_query, lexical_overlap=share))


def score_rules(scores: np.ndarray, reference: Union[float, np.ndarray],
                positive_similarity: Optional[np.ndarray] = None, max_positive_similarity: Optional[float] = None,
                max_score: Optional[float] = None, min_score: Optional[float] = None,
                absolute_margin: Optional[float] = None, relative_margin: Optional[float] = None,
                agreement: Optional[np.ndarray] = None, proximity: Optional[np.ndarray] = None,
                positive_proximity: Optional[float] = None) -> np.ndarray:
    """The score stage over scored cells: ``agreement`` is the agreement rule's verdict per cell (given as a BM25
    margin above 0 and a cosine above the positive's where it is true)."""
    scores = np.asarray(scores)
    values: dict[str, Any] = {"score": scores, "reference": np.broadcast_to(np.asarray(reference), scores.shape),
                              "positive_similarity": positive_similarity, "positive_proximity": proximity}
    if agreement is not None:
        values.update(bm25_margin=np.where(agreement, 1.0, -1.0), agreement_cosine=np.ones(scores.shape),
                      cosine_reference=np.zeros(scores.shape))
    return registry.score_rules(values, settings(
        max_positive_similarity=max_positive_similarity, max_score=max_score, min_score=min_score,
        absolute_margin=absolute_margin, relative_margin=relative_margin, agreement=agreement is not None,
        positive_proximity=positive_proximity))
