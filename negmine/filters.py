"""Filters as pure functions over candidate arrays. Each candidate gets the code of the first rule that drops
it (or KEPT); the counts per code are the run's drop statistics.

Rules that need no model (empty slot, known positive, rank window, duplicate texts) run over every candidate;
rules on scores (near-duplicate embedding, max/min score, margins to the positive) run on scored candidates only.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Hashable, Mapping, Optional, Sequence, Union

import numpy as np

KEPT = 0
NO_CANDIDATE = 1
POSITIVE = 2
RANK_WINDOW = 3
DUPLICATE_TEXT = 4
DUPLICATE_CANDIDATE = 5
CROSS_QUERY = 6
LEXICAL_OVERLAP = 7
NEAR_DUPLICATE = 8
POSITIVE_PROXIMITY = 9
AGREEMENT = 10
MAX_SCORE = 11
MIN_SCORE = 12
ABSOLUTE_MARGIN = 13
RELATIVE_MARGIN = 14
PERCENTILE_GATE = 15
NOT_SCORED = 16

#: Reason names, indexed by code, as they appear in statistics and the candidates file.
REASONS = ("kept", "no_candidate", "positive", "rank_window", "duplicate_text", "duplicate_candidate",
           "cross_query", "lexical_overlap", "near_duplicate", "positive_proximity", "agreement", "max_score",
           "min_score", "absolute_margin", "relative_margin", "percentile_gate", "not_scored")
#: Codes that are drop rules (counted in the statistics).
DROP_RULES = tuple(range(POSITIVE, PERCENTILE_GATE + 1))
#: Codes of the rules that read scores (applied as lazy scoring reaches a candidate).
SCORE_RULES = (NEAR_DUPLICATE, POSITIVE_PROXIMITY, AGREEMENT, MAX_SCORE, MIN_SCORE, ABSOLUTE_MARGIN, RELATIVE_MARGIN,
               PERCENTILE_GATE)
#: Codes of the rules that drop a candidate as a likely false negative (an unlabelled positive): not the known
#: positives, not the rank window, not a repeat of another candidate, not a score below --min-score.
FALSE_NEGATIVE_RULES = (DUPLICATE_TEXT, CROSS_QUERY, LEXICAL_OVERLAP, NEAR_DUPLICATE, POSITIVE_PROXIMITY, AGREEMENT,
                        MAX_SCORE, ABSOLUTE_MARGIN, RELATIVE_MARGIN, PERCENTILE_GATE)

_PUNCT = re.compile(r"[\W_]+", re.UNICODE)


def normalize_text(text: str) -> str:
    """Text compared for duplicates: Unicode NFKC, lower case, punctuation and runs of spaces folded to one space."""
    return _PUNCT.sub(" ", unicodedata.normalize("NFKC", text).lower()).strip()


def positive_mask(indices: np.ndarray, positives: Sequence[Sequence[int]]) -> np.ndarray:
    """True where a candidate is a known positive of its query."""
    mask = np.zeros(indices.shape, dtype=bool)
    for q, pos in enumerate(positives):
        if pos:
            mask[q] = np.isin(indices[q], np.asarray(pos, dtype=indices.dtype))
    return mask


def duplicate_text_mask(
    indices: np.ndarray, positives: Sequence[Sequence[int]], normalized: Mapping[int, Hashable]
) -> np.ndarray:
    """True where a candidate's normalised text equals the normalised text of one of its query's positives."""
    mask = np.zeros(indices.shape, dtype=bool)
    for q, pos in enumerate(positives):
        texts = {normalized[p] for p in pos}
        for r, d in enumerate(indices[q]):
            if d >= 0 and normalized[d] in texts:
                mask[q, r] = True
    return mask


def repeated_text_mask(indices: np.ndarray, eligible: np.ndarray, normalized: Mapping[int, Hashable]) -> np.ndarray:
    """True where an ``eligible`` candidate's normalised text equals that of a better-ranked eligible candidate of
    the same query: a query's negatives never repeat a text (up to case, punctuation and spacing), nor the text of
    a candidate skipped as too good (``range_min``)."""
    mask = np.zeros(indices.shape, dtype=bool)
    for q in range(indices.shape[0]):
        seen: set[Hashable] = set()
        for r in np.flatnonzero(eligible[q]):
            text = normalized[int(indices[q, r])]
            if text in seen:
                mask[q, r] = True
            seen.add(text)
    return mask


def rank_among(eligible: np.ndarray) -> np.ndarray:
    """For each cell, its 0-based rank among the ``eligible`` cells of its row (-1 where not eligible)."""
    ranks = np.cumsum(eligible, axis=1) - 1
    return np.where(eligible, ranks, -1)


def window_mask(ranks: np.ndarray, range_min: int, range_max: int) -> np.ndarray:
    """True where a ranked candidate falls outside ``range_min <= rank < range_max``."""
    return (ranks >= 0) & ((ranks < range_min) | (ranks >= range_max))


def twin_query_mask(twin_similarity: np.ndarray, threshold: float) -> np.ndarray:
    """True where a candidate is a positive of another query whose text is (near-)identical to this query's.

    Args:
        twin_similarity: Per candidate, the highest bi-encoder cosine between this query and another query that has
            the candidate as a positive (``inf`` where that query's normalised text equals this one's, ``-inf``
            where the candidate is no other query's positive).
        threshold: The cosine from which two queries count as the same question.
    """
    return twin_similarity >= threshold


def lexical_overlap_mask(overlap: np.ndarray, threshold: float) -> np.ndarray:
    """True where a candidate repeats too much of a positive's wording.

    Args:
        overlap: Per candidate, the highest over the query's positives of BM25(positive's text as the query,
            candidate) / BM25(positive's text, the positive itself): about 1 for a copy, 0 for no shared term.
        threshold: Drop above this share.
    """
    return overlap > threshold


def agreement_mask(bm25_candidate: np.ndarray, bm25_positive: Union[float, np.ndarray],
                   cosine_candidate: np.ndarray, cosine_positive: Union[float, np.ndarray]) -> np.ndarray:
    """True where both retrievers put a candidate above the positive: its BM25 score for the query and its
    bi-encoder cosine to the query both exceed the positive's (with several positives, the reference one's).
    Two unrelated signals that both prefer the candidate to a known relevant document are strong evidence that
    it is relevant too."""
    return (bm25_candidate > bm25_positive) & (cosine_candidate > cosine_positive)


def percentile_gate_mask(scores: np.ndarray, reference: Union[float, np.ndarray], calibration: np.ndarray,
                         margin: Optional[float], floor: float = 0.0, cap: float = 1.0) -> np.ndarray:
    """The margin rule in percentiles of the run's own positive scores, whatever the judge's scale.

    With F the share of the run's positives scoring at most a given score, drop a candidate when
    F(score) > clip(F(reference) - margin, floor, cap); without a margin, when F(score) > cap. The cap keeps a strong
    positive from opening the gate (nothing scoring above the cap-quantile of all positives passes); the floor
    keeps a weak positive from starving its query (anything below the floor-quantile passes this rule). Only the
    order of the scores matters: the same for cosines, logits or probabilities.

    Args:
        scores: Judge scores of candidates.
        reference: The positive score (per candidate, or one for all).
        calibration: The judge scores of every positive of the run, sorted.
        margin: Percentile points below the positive's own percentile (0.1 = ten points), or ``None``.
        floor: Lowest percentile threshold (0..1).
        cap: Highest percentile threshold (0..1).
    """
    n = max(len(calibration), 1)
    u = np.searchsorted(calibration, scores, side="right") / n
    if margin is None:
        return u > cap
    u_ref = np.searchsorted(calibration, reference, side="right") / n
    return u > np.clip(u_ref - margin, floor, cap)


def apply_rules(
    indices: np.ndarray, positives: Sequence[Sequence[int]], range_min: int, range_max: int,
    normalized: Optional[Mapping[int, Hashable]] = None,
) -> np.ndarray:
    """The code of every candidate under the rules that need no model: the first rule that drops it, or KEPT.

    Rules, in order: an empty slot, a known positive, outside the rank window, and (when ``normalized`` texts are
    given) the same normalised text as a positive or as a better-ranked non-positive candidate. Ranks for the
    window count only the non-positive candidates, so ``range_min=10`` skips the ten best-ranked non-positives.
    """
    reasons = np.full(indices.shape, KEPT, dtype=np.int8)
    valid = indices >= 0
    reasons[~valid] = NO_CANDIDATE
    is_pos = valid & positive_mask(indices, positives)
    reasons[is_pos] = POSITIVE
    ranks = rank_among(valid & ~is_pos)
    reasons[window_mask(ranks, range_min, range_max)] = RANK_WINDOW
    if normalized is not None:
        dup = duplicate_text_mask(indices, positives, normalized) & (reasons == KEPT)
        reasons[dup] = DUPLICATE_TEXT
        repeated = repeated_text_mask(indices, valid & ~is_pos, normalized) & (reasons == KEPT)
        reasons[repeated] = DUPLICATE_CANDIDATE
    return reasons


def margin_reference(positive_scores: np.ndarray, how: str) -> float:
    """The positive score margins are taken from: the lowest (``min``), ``mean`` or highest (``max``)."""
    if how == "min":
        return float(np.min(positive_scores))
    if how == "max":
        return float(np.max(positive_scores))
    return float(np.mean(positive_scores))


def evidence_rules(
    reasons: np.ndarray, twin_similarity: Optional[np.ndarray] = None, cross_query: Optional[float] = None,
    overlap: Optional[np.ndarray] = None, lexical_overlap: Optional[float] = None,
) -> np.ndarray:
    """``reasons`` with the model-free evidence rules applied to the candidates still KEPT: the positive of a twin
    query, then lexical overlap with a positive. Returns a new array."""
    out = reasons.copy()
    kept = reasons == KEPT
    rules: list[tuple[int, np.ndarray]] = []
    if cross_query is not None and twin_similarity is not None:
        rules.append((CROSS_QUERY, twin_query_mask(twin_similarity, cross_query)))
    if lexical_overlap is not None and overlap is not None:
        rules.append((LEXICAL_OVERLAP, lexical_overlap_mask(overlap, lexical_overlap)))
    for code, hit in reversed(rules):  # the first rule in order wins
        out[kept & hit] = code
    return out


def score_rules(
    scores: np.ndarray,
    reference: Union[float, np.ndarray],
    positive_similarity: Optional[np.ndarray] = None,
    max_positive_similarity: Optional[float] = None,
    max_score: Optional[float] = None,
    min_score: Optional[float] = None,
    absolute_margin: Optional[float] = None,
    relative_margin: Optional[float] = None,
    agreement: Optional[np.ndarray] = None,
    percentile_gate: Optional[np.ndarray] = None,
    proximity: Optional[np.ndarray] = None,
    positive_proximity: Optional[float] = None,
) -> np.ndarray:
    """The code of each scored candidate: the first score rule that drops it, or KEPT.

    Args:
        scores: Reranker scores of candidates of one query.
        reference: The positive score the margins are taken from: one for all, or one per candidate.
        positive_similarity: Each candidate's highest embedding cosine to one of the query's positives.
        max_positive_similarity: Drop a candidate whose cosine to a positive is above this (a near-duplicate).
        max_score: Drop a candidate scoring above this.
        min_score: Drop a candidate scoring below this.
        absolute_margin: Drop a candidate scoring above ``reference - absolute_margin``.
        relative_margin: Drop a candidate scoring above ``reference - |reference| * relative_margin``; correct
            for negative scores (logits) too, where ``reference * (1 - relative_margin)`` would not be.
        agreement: ``agreement_mask`` of these candidates (both retrievers rank them above the positive).
        percentile_gate: ``percentile_gate_mask`` of these candidates.
        proximity: Each candidate's ``positive_proximity`` value: how much closer (bi-encoder cosine) it is to one
            of the query's positives than the query itself is to that positive.
        positive_proximity: Drop a candidate whose ``proximity`` is above this: it sits nearer a positive than the
            query does, inside the positive's own neighbourhood.
    """
    codes = np.full(scores.shape, KEPT, dtype=np.int8)
    rules: list[tuple[int, np.ndarray]] = []
    if max_positive_similarity is not None and positive_similarity is not None:
        rules.append((NEAR_DUPLICATE, positive_similarity > max_positive_similarity))
    if positive_proximity is not None and proximity is not None:
        rules.append((POSITIVE_PROXIMITY, proximity > positive_proximity))
    if agreement is not None:
        rules.append((AGREEMENT, agreement))
    if max_score is not None:
        rules.append((MAX_SCORE, scores > max_score))
    if min_score is not None:
        rules.append((MIN_SCORE, scores < min_score))
    if absolute_margin is not None:
        rules.append((ABSOLUTE_MARGIN, scores > reference - absolute_margin))
    if relative_margin is not None:
        rules.append((RELATIVE_MARGIN, scores > reference - np.abs(reference) * relative_margin))
    if percentile_gate is not None:
        rules.append((PERCENTILE_GATE, percentile_gate))
    for code, hit in reversed(rules):  # the first rule in order wins
        codes[hit] = code
    return codes


def dominant_drop(reasons: np.ndarray) -> np.ndarray:
    """Per row, the code of the rule that dropped most of its candidates (known positives aside; ties go to the
    earlier rule), -1 where no rule dropped any."""
    codes = np.array([c for c in DROP_RULES if c != POSITIVE])
    counts = np.stack([(reasons == c).sum(axis=1) for c in codes], axis=1)
    return np.where(counts.max(axis=1) > 0, codes[counts.argmax(axis=1)], -1)


def weak_positive(indices: np.ndarray, positives: Sequence[Sequence[int]]) -> np.ndarray:
    """Per row, whether even its best positive ranks below most of the row's candidates (or was not retrieved at
    all): the query's own wording matches other documents better than its positive."""
    out = np.zeros(indices.shape[0], dtype=bool)
    for q, (row, pos) in enumerate(zip(indices, positives)):
        n = int((row >= 0).sum())
        where = np.flatnonzero(np.isin(row, np.asarray(pos, dtype=row.dtype)))
        out[q] = where.size == 0 or where[0] >= n / 2
    return out


def count_reasons(reasons: np.ndarray) -> dict[str, int]:
    """How many candidates each rule dropped (every rule listed, zeros included)."""
    counts = np.bincount(reasons.ravel().astype(np.int64), minlength=len(REASONS))
    return {REASONS[code]: int(counts[code]) for code in DROP_RULES}
