"""Lazy selection: each query-positive pair walks its candidate order and the judge scores a candidate only
when the walk reaches it (batched across queries, in rounds); or every candidate ahead of sampling
(``prescore``: ``--score-all``, SimANS)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import numpy as np

from negmine.judges.base import Scorer, Scorers, lookup_scorers
from negmine.progress import Progress
from negmine.rules import registry
from negmine.rules.base import reference_of


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
        """The scorers that read these values (``rows``: the queries' input rows, for messages)."""
        return lookup_scorers(indices, positives, judge_name, self.judge, self.positive_judge, self.cosine,
                              self.positive_cosine, self.similarity, rows, self.proximity)


def _flat(positives: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every positive as (query position, document), and the bounds of each query's in them."""
    pos_q = np.concatenate([np.full(len(p), q) for q, p in enumerate(positives)]).astype(np.int64)
    pos_d = np.concatenate([np.asarray(p, dtype=np.int64) for p in positives])
    return pos_q, pos_d, np.cumsum([0] + [len(p) for p in positives])


def prescore(indices: np.ndarray, cells: np.ndarray, positives: Sequence[Sequence[int]], scorers: Scorers,
             progress: Optional[Progress] = None, round_size: int = 4096) -> Prescored:
    """Score the candidates ``cells`` (an ``(n, k)`` mask) and every positive with the judge, and with the other
    scorers given, in rounds of ``round_size`` pairs."""
    progress = progress or Progress()
    n, k = indices.shape
    judge = scorers.judge
    pos_q, pos_d, bounds = _flat(positives)

    def split(flat: np.ndarray) -> list[np.ndarray]:
        return [flat[bounds[q] : bounds[q + 1]] for q in range(n)]

    def grid(scorer: Optional[Scorer]) -> Optional[np.ndarray]:
        return None if scorer is None else np.full((n, k), np.nan, np.float32)

    with progress.stage(f"scoring positives ({judge.name})", total=len(pos_d)) as advance:
        positive_judge = split(judge.score(pos_q, pos_d))
        positive_cosine = split(scorers.cosine.score(pos_q, pos_d)) if scorers.cosine is not None else None
        advance(len(pos_d))
    q, c = np.nonzero(cells & (indices >= 0))
    d = indices[q, c]
    out = Prescored(np.full((n, k), np.nan, np.float32), positive_judge, grid(scorers.cosine), positive_cosine,
                    grid(scorers.similarity), int(q.size), len(pos_d), grid(scorers.proximity))
    targets = [(judge, out.judge), (scorers.cosine, out.cosine), (scorers.similarity, out.similarity),
               (scorers.proximity, out.proximity)]
    with progress.stage(f"scoring candidates ({judge.name})", total=int(q.size)) as advance:
        for start in range(0, q.size, round_size):
            part = slice(start, start + round_size)
            for scorer, values in targets:
                if scorer is not None and values is not None:
                    values[q[part], c[part]] = scorer.score(q[part], d[part])
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


class _Cells:
    """Scores cells (query position, column) of a batch as lazy selection reaches them, and applies the score rules
    (``negmine.rules``, the SCORE stage) to them: the judge's score, and the values the enabled rules read."""

    def __init__(self, indices: np.ndarray, reasons: np.ndarray, positives: Sequence[Sequence[int]],
                 scorers: Scorers, config: Any, progress: Progress, bm25_margin: Optional[np.ndarray],
                 calibration: Optional[np.ndarray]) -> None:
        nq, k = indices.shape
        self.indices, self.reasons, self.config = indices, reasons, config
        self.judged = registry.need_scores(config)
        self.judge = scorers.judge
        self.scored = np.zeros((nq, k), dtype=bool)
        self.scores = np.full((nq, k), np.nan, dtype=np.float32)
        self.cosines = np.full((nq, k), np.nan, dtype=np.float32)
        self.similarities = np.full((nq, k), np.nan, dtype=np.float32)
        self.proximities = np.full((nq, k), np.nan, dtype=np.float32)
        pos_q, pos_d, bounds = _flat(positives)
        with progress.stage(f"scoring positives ({self.judge.name})", total=len(pos_d)) as advance:
            flat = self.judge.score(pos_q, pos_d) if self.judged else np.full(len(pos_d), np.nan, np.float32)
            advance(len(pos_d))
        self.n_positives = len(pos_d)
        self.positive_scores = [flat[bounds[q] : bounds[q + 1]] for q in range(nq)]
        self.reference = np.array([reference_of(s, config.margin_reference) if self.judged else np.nan
                                   for s in self.positive_scores], dtype=np.float32)
        self.calibration = np.sort(flat) if calibration is None and self.judged else calibration
        self.bm25_margin = bm25_margin if config.agreement else None
        self.cosine = scorers.cosine or self.judge
        self.cosine_reference = np.full(nq, np.nan, dtype=np.float32)
        pos_cos = np.full(len(pos_d), np.nan, dtype=np.float32)
        if self.bm25_margin is not None:
            pos_cos = flat if self.cosine is self.judge and self.judged else self.cosine.score(pos_q, pos_d)
            self.cosine_reference[:] = [reference_of(pos_cos[bounds[q] : bounds[q + 1]], config.margin_reference)
                                        for q in range(nq)]
        self.positive_cosines = [pos_cos[bounds[q] : bounds[q + 1]] for q in range(nq)]
        self.similarity = scorers.similarity if config.max_positive_similarity is not None else None
        self.proximity = scorers.proximity if config.positive_proximity is not None else None

    def __call__(self, cells: list[tuple[int, int]]) -> None:
        if not cells:
            return
        q = np.array([c[0] for c in cells], dtype=np.int64)
        r = np.array([c[1] for c in cells], dtype=np.int64)
        d = self.indices[q, r]
        s = self.judge.score(q, d) if self.judged else np.full(len(cells), np.nan, np.float32)
        values: dict[str, Any] = {"score": s, "reference": self.reference[q], "calibration": self.calibration}
        if self.similarity is not None:
            values["positive_similarity"] = self.similarities[q, r] = self.similarity.score(q, d)
        if self.proximity is not None:
            values["positive_proximity"] = self.proximities[q, r] = self.proximity.score(q, d)
        if self.bm25_margin is not None:
            above = self.bm25_margin[q, r] > 0  # the dense half only where BM25 already prefers the candidate
            cos = np.full(len(cells), -np.inf, dtype=np.float32)
            if self.cosine is self.judge and self.judged:
                cos[above] = s[above]
            elif above.any():
                cos[above] = self.cosine.score(q[above], d[above])
            values.update(bm25_margin=self.bm25_margin[q, r], agreement_cosine=cos,
                          cosine_reference=self.cosine_reference[q])
            self.cosines[q[above], r[above]] = cos[above]
        self.reasons[q, r] = registry.score_rules(values, self.config)
        self.scores[q, r] = s
        self.scored[q, r] = True


def lazy_select(indices: np.ndarray, cheap_reasons: np.ndarray, positives: Sequence[Sequence[int]],
                orders: list[list[np.ndarray]], num_negatives: int, scorers: Scorers, config: Any,
                score_all: bool = False, progress: Optional[Progress] = None, round_size: int = 4096,
                bm25_margin: Optional[np.ndarray] = None, calibration: Optional[np.ndarray] = None
                ) -> ScoredCandidates:
    """Walk each query-positive pair's candidate order, scoring candidates only when the walk reaches them.

    Each round collects, for every pair still short of ``num_negatives``, as many of the next unscored candidates
    on its order as it still needs, scores all of them in one batched call (across queries), and applies the score
    rules (``config``: with the relative margin resolved for the judge); a pair whose candidates were dropped asks
    again in the next round. With ``score_all`` every candidate the cheap rules kept is scored first (the picks are
    the same).

    ``bm25_margin`` (per candidate, its BM25 score minus the reference positive's) and ``scorers.cosine`` (the
    retrieval bi-encoder, when it is not the judge) serve the agreement rule; ``calibration`` (every positive's
    judge score in the run, sorted) the percentile gate (default: this call's positives).
    """
    progress = progress or Progress()
    reasons = cheap_reasons.copy()
    reasons[reasons == registry.KEPT] = registry.NOT_SCORED
    cells = _Cells(indices, reasons, positives, scorers, config, progress, bm25_margin, calibration)
    pairs_scored = 0
    total_cells = int((cheap_reasons == registry.KEPT).sum())
    with progress.stage(f"scoring candidates ({cells.judge.name})", total=total_cells) as advance:
        def score_in_chunks(chunk_cells: list[tuple[int, int]]) -> None:
            nonlocal pairs_scored
            for start in range(0, len(chunk_cells), round_size):
                chunk = chunk_cells[start : start + round_size]
                cells(chunk)
                pairs_scored += len(chunk)
                advance(len(chunk))

        if score_all:
            score_in_chunks([(int(a), int(b)) for a, b in zip(*np.nonzero(cheap_reasons == registry.KEPT))])
        picks = _walk(orders, num_negatives, cells, score_in_chunks)
    judged = cells.judged
    return ScoredCandidates(reasons, cells.scores, cells.positive_scores, cells.reference, picks,
                            pairs_scored if judged else 0,  # only embedding similarities were checked: no judge ran
                            cells.n_positives if judged else 0, cells.positive_cosines, cells.cosines,
                            cells.similarities, cells.proximities)


def _walk(orders: list[list[np.ndarray]], num_negatives: int, cells: _Cells, score: Any) -> list[list[np.ndarray]]:
    """The rounds of lazy selection: each pair takes the kept candidates its order reaches, and asks for the next
    unscored ones it still needs, until it has ``num_negatives`` or its order ends."""
    reasons, scored = cells.reasons, cells.scored
    units = [(q, j) for q in range(len(orders)) for j in range(len(orders[q]))]
    chosen: dict[tuple[int, int], list[int]] = {u: [] for u in units}
    pointer: dict[tuple[int, int], int] = {u: 0 for u in units}
    open_units = set(units)
    while open_units:
        wanted: dict[tuple[int, int], None] = {}
        for u in sorted(open_units):
            q, j = u
            order = orders[q][j]
            p = pointer[u]
            while p < len(order) and len(chosen[u]) < num_negatives and scored[q, order[p]]:
                if reasons[q, order[p]] == registry.KEPT:
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
        score(list(wanted))
    return [[np.array(sorted(chosen[(q, j)]), dtype=np.int64) for j in range(len(orders[q]))]
            for q in range(len(orders))]
