"""Lazy selection: each query-positive pair walks its candidate order and the judge scores a candidate only
when the walk reaches it (batched across queries, in rounds); or every candidate ahead of sampling
(``prescore``: ``--score-all``, SimANS)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

from negmine import filters
from negmine.progress import Progress
from negmine.score import PositiveProximity, PositiveSimilarity, Scorer, Scorers, ScoreRules, Vectors, lookup_scorers


@dataclass
class Prescored:
    """A batch's values computed ahead of sampling, for every candidate in ``cells`` and every positive: the
    judge's score, the retrieval bi-encoder's cosine (the agreement rule's dense half), the highest cosine to a
    positive (the near-duplicate rule) and the positive proximity (its rule); ``(n, k)`` like the candidates, NaN
    elsewhere, ``None`` when not wanted.

    ``--score-all`` computes them for every retrieved candidate (what ``negmine refilter`` reads back from the
    candidates file), SimANS for the candidates it samples from.
    """

    judge: np.ndarray
    positive_judge: list[np.ndarray]
    cosine: Optional[np.ndarray] = None
    positive_cosine: Optional[list[np.ndarray]] = None
    similarity: Optional[np.ndarray] = None
    pairs: int = 0
    positive_pairs: int = 0
    proximity: Optional[np.ndarray] = None

    def scorers(self, indices: np.ndarray, positives: Sequence[Sequence[int]], judge_name: str,
                rows: Optional[np.ndarray] = None) -> Scorers:
        """The judge, cosine, positive-similarity and positive-proximity scorers that read these values (``rows``:
        the queries' input rows, for messages)."""
        return lookup_scorers(indices, positives, judge_name, self.judge, self.positive_judge, self.cosine,
                              self.positive_cosine, self.similarity, rows, self.proximity)


def prescore(indices: np.ndarray, cells: np.ndarray, positives: Sequence[Sequence[int]], judge: Scorer,
             cosine: Optional[Scorer] = None, similarity: Optional[Scorer] = None,
             progress: Optional[Progress] = None, round_size: int = 4096,
             proximity: Optional[Scorer] = None) -> Prescored:
    """Score the candidates ``cells`` (an ``(n, k)`` mask) and every positive with the judge, and with ``cosine``,
    ``similarity`` and ``proximity`` when given, in rounds of ``round_size`` pairs."""
    progress = progress or Progress()
    n, k = indices.shape
    pos_q = np.concatenate([np.full(len(p), q) for q, p in enumerate(positives)]).astype(np.int64)
    pos_d = np.concatenate([np.asarray(p, dtype=np.int64) for p in positives])
    bounds = np.cumsum([0] + [len(p) for p in positives])

    def split(flat: np.ndarray) -> list[np.ndarray]:
        return [flat[bounds[q] : bounds[q + 1]] for q in range(n)]

    with progress.stage(f"scoring positives ({judge.name})", total=len(pos_d)) as advance:
        positive_judge = split(judge.score(pos_q, pos_d))
        positive_cosine = split(cosine.score(pos_q, pos_d)) if cosine is not None else None
        advance(len(pos_d))
    q, c = np.nonzero(cells & (indices >= 0))
    d = indices[q, c]
    out = Prescored(np.full((n, k), np.nan, np.float32), positive_judge,
                    np.full((n, k), np.nan, np.float32) if cosine is not None else None, positive_cosine,
                    np.full((n, k), np.nan, np.float32) if similarity is not None else None, int(q.size),
                    len(pos_d), np.full((n, k), np.nan, np.float32) if proximity is not None else None)
    with progress.stage(f"scoring candidates ({judge.name})", total=int(q.size)) as advance:
        for start in range(0, q.size, round_size):
            part = slice(start, start + round_size)
            out.judge[q[part], c[part]] = judge.score(q[part], d[part])
            if cosine is not None and out.cosine is not None:
                out.cosine[q[part], c[part]] = cosine.score(q[part], d[part])
            if similarity is not None and out.similarity is not None:
                out.similarity[q[part], c[part]] = similarity.score(q[part], d[part])
            if proximity is not None and out.proximity is not None:
                out.proximity[q[part], c[part]] = proximity.score(q[part], d[part])
            advance(len(d[part]))
    return out


@dataclass
class ScoredCandidates:
    """What lazy scoring found, per query.

    Attributes:
        reasons: ``(n_queries, k)`` final codes: cheap rules, then score rules where scored, NOT_SCORED elsewhere.
        scores: ``(n_queries, k)`` reranker scores (NaN where not scored).
        positive_scores: Per query, the reranker score of each positive.
        reference: Per query, the positive score margins were taken from.
        picks: ``picks[q][j]``: chosen positions for query ``q``'s ``j``-th positive, in rank order.
        pairs_scored: Reranker pairs scored against candidates (positives not included).
        positive_pairs_scored: Reranker pairs scored against positives.
        positive_cosines: Per query, the retrieval bi-encoder's cosine of each positive (NaN unless the agreement
            rule read it).
        cosines: ``(n_queries, k)`` the retrieval bi-encoder's cosine where the agreement rule read it (NaN
            elsewhere).
        similarities: ``(n_queries, k)`` the cosine to the closest positive where the near-duplicate rule read
            it (NaN elsewhere).
        proximities: ``(n_queries, k)`` the positive proximity where its rule read it (NaN elsewhere).
    """

    reasons: np.ndarray
    scores: np.ndarray
    positive_scores: list[np.ndarray]
    reference: np.ndarray
    picks: list[list[np.ndarray]]
    pairs_scored: int = 0
    positive_pairs_scored: int = 0
    positive_cosines: list[np.ndarray] = field(default_factory=list)
    cosines: Optional[np.ndarray] = None
    similarities: Optional[np.ndarray] = None
    proximities: Optional[np.ndarray] = None


def lazy_select(
    indices: np.ndarray,
    cheap_reasons: np.ndarray,
    positives: Sequence[Sequence[int]],
    orders: list[list[np.ndarray]],
    num_negatives: int,
    scorer: Scorer,
    rules: ScoreRules,
    vectors: Optional[Vectors] = None,
    score_all: bool = False,
    progress: Optional[Progress] = None,
    round_size: int = 4096,
    bm25_margin: Optional[np.ndarray] = None,
    cosine: Optional[Scorer] = None,
    calibration: Optional[np.ndarray] = None,
    similarity: Optional[Scorer] = None,
    proximity: Optional[Scorer] = None,
) -> ScoredCandidates:
    """Walk each query-positive pair's candidate order, scoring candidates only when the walk reaches them.

    Each round collects, for every pair still short of ``num_negatives``, as many of the next unscored candidates
    on its order as it still needs, scores all of them in one batched call (across queries), and applies the score
    rules; a pair whose candidates were dropped asks again in the next round.
    With ``score_all`` every candidate the cheap rules kept is scored first (the picks are the same).

    ``bm25_margin`` (per candidate, its BM25 score minus the reference positive's) and ``cosine`` (the retrieval
    bi-encoder, when it is not the judge) serve the agreement rule; ``calibration`` (every positive's judge score
    in the run, sorted) the percentile gate (default: this call's positives). ``similarity`` scores each
    candidate's highest cosine to its query's positives for the near-duplicate rule, ``proximity`` how much nearer
    a positive it is than the query for the positive-proximity rule (both by default from ``vectors``).
    """
    progress = progress or Progress()
    nq, k = indices.shape
    reasons = cheap_reasons.copy()
    scored = np.zeros((nq, k), dtype=bool)
    scores = np.full((nq, k), np.nan, dtype=np.float32)
    cosines = np.full((nq, k), np.nan, dtype=np.float32)
    similarities = np.full((nq, k), np.nan, dtype=np.float32)
    proximities = np.full((nq, k), np.nan, dtype=np.float32)
    reasons[reasons == filters.KEPT] = filters.NOT_SCORED

    # positives first: one batch for all of them
    pos_q = np.concatenate([np.full(len(p), q) for q, p in enumerate(positives)]).astype(np.int64)
    pos_d = np.concatenate([np.asarray(p, dtype=np.int64) for p in positives])
    with progress.stage(f"scoring positives ({scorer.name})", total=len(pos_d)) as advance:
        flat = scorer.score(pos_q, pos_d) if rules.need_scores else np.full(len(pos_d), np.nan, np.float32)
        advance(len(pos_d))
    bounds = np.cumsum([0] + [len(p) for p in positives])
    pos_scores = [flat[bounds[q] : bounds[q + 1]] for q in range(nq)]
    reference = np.array([filters.margin_reference(s, rules.margin_reference) if rules.need_scores else np.nan
                          for s in pos_scores], dtype=np.float32)
    if calibration is None and rules.percentile_gate:
        calibration = np.sort(flat)
    agreement = rules.agreement and bm25_margin is not None
    cosine = cosine or scorer
    cosine_reference = np.full(nq, np.nan, dtype=np.float32)
    pos_cos = np.full(len(pos_d), np.nan, dtype=np.float32)
    if agreement:
        pos_cos = flat if cosine is scorer and rules.need_scores else cosine.score(pos_q, pos_d)
        cosine_reference[:] = [filters.margin_reference(pos_cos[bounds[q] : bounds[q + 1]], rules.margin_reference)
                               for q in range(nq)]
    if similarity is None and rules.max_positive_similarity is not None and vectors is not None:
        similarity = PositiveSimilarity(vectors, positives)
    if rules.max_positive_similarity is None:
        similarity = None
    if proximity is None and rules.positive_proximity is not None and vectors is not None:
        proximity = PositiveProximity(vectors, positives)
    if rules.positive_proximity is None:
        proximity = None

    def score_cells(cells: list[tuple[int, int]]) -> None:
        if not cells:
            return
        q = np.array([c[0] for c in cells], dtype=np.int64)
        r = np.array([c[1] for c in cells], dtype=np.int64)
        d = indices[q, r]
        s = scorer.score(q, d) if rules.need_scores else np.full(len(cells), np.nan, np.float32)
        sims = similarity.score(q, d) if similarity is not None else None
        if sims is not None:
            similarities[q, r] = sims
        near = proximity.score(q, d) if proximity is not None else None
        if near is not None:
            proximities[q, r] = near
        agree = None
        if agreement:
            assert bm25_margin is not None
            above = bm25_margin[q, r] > 0  # the dense half only where BM25 already prefers the candidate
            cos = np.full(len(cells), -np.inf, dtype=np.float32)
            if cosine is scorer and rules.need_scores:
                cos[above] = s[above]
            elif above.any():
                cos[above] = cosine.score(q[above], d[above])
            agree = filters.agreement_mask(bm25_margin[q, r], 0.0, cos, cosine_reference[q])
            cosines[q[above], r[above]] = cos[above]
        gate = None
        if rules.percentile_gate and calibration is not None:
            gate = filters.percentile_gate_mask(s, reference[q], calibration, rules.percentile_margin,
                                                rules.percentile_floor, rules.percentile_cap)
        reasons[q, r] = filters.score_rules(
            s, reference[q], sims, rules.max_positive_similarity, rules.max_score, rules.min_score,
            rules.absolute_margin, rules.relative_margin, agree, gate, near, rules.positive_proximity)
        scores[q, r] = s
        scored[q, r] = True

    units = [(q, j) for q in range(nq) for j in range(len(orders[q]))]
    chosen: dict[tuple[int, int], list[int]] = {u: [] for u in units}
    pointer: dict[tuple[int, int], int] = {u: 0 for u in units}
    open_units = set(units)
    pairs_scored = 0
    total_cells = int((cheap_reasons == filters.KEPT).sum())
    with progress.stage(f"scoring candidates ({scorer.name})", total=total_cells) as advance:
        def score_in_chunks(cells: list[tuple[int, int]]) -> None:
            nonlocal pairs_scored
            for start in range(0, len(cells), round_size):
                chunk = cells[start : start + round_size]
                score_cells(chunk)
                pairs_scored += len(chunk)
                advance(len(chunk))

        if score_all:
            score_in_chunks([(int(a), int(b)) for a, b in zip(*np.nonzero(cheap_reasons == filters.KEPT))])
        while open_units:
            wanted: dict[tuple[int, int], None] = {}
            for u in sorted(open_units):
                q, j = u
                order = orders[q][j]
                p = pointer[u]
                while p < len(order) and len(chosen[u]) < num_negatives and scored[q, order[p]]:
                    if reasons[q, order[p]] == filters.KEPT:
                        chosen[u].append(int(order[p]))
                    p += 1
                pointer[u] = p
                need = num_negatives - len(chosen[u])
                if need == 0 or p >= len(order):
                    open_units.discard(u)
                    continue
                asked = 0
                for pos in order[p:]:
                    if not scored[q, pos]:
                        wanted[(q, int(pos))] = None
                        asked += 1
                        if asked >= need:
                            break
            if not wanted:
                break
            score_in_chunks(list(wanted))
    picks = [[np.array(sorted(chosen[(q, j)]), dtype=np.int64) for j in range(len(orders[q]))] for q in range(nq)]
    if not rules.need_scores:  # only embedding similarities were checked: no reranker ran
        pairs_scored = 0
    return ScoredCandidates(reasons, scores, pos_scores, reference, picks, pairs_scored,
                            len(pos_d) if rules.need_scores else 0,
                            [pos_cos[bounds[q] : bounds[q + 1]] for q in range(nq)], cosines, similarities,
                            proximities)
