"""A query batch through the stages, in order: the one list (``STAGES``) that knows it.

```
retrieve         the candidates of each query (hits)
candidate_rules  the rules that need no model: known positives, the rank window, duplicate texts
evidence_rules   the evidence gathered (twin queries, lexical overlap, BM25 scores) and the rules on it
score_ahead      the judge's scorers; every candidate scored ahead of sampling (--score-all, SimANS)
sample           each pair's candidate order, walked with lazy scoring and the score rules: the picks
llm_judge        the picks judged by an LLM (--llm-judge): the flagged ones dropped, the pairs picking again
lay_out          the picks as a Selection: promoted false negatives, difficulty bands, the scores written
account          the batch's statistics, false negatives and candidates file rows: a BatchResult
```

A ``Batch`` is one record that gains its values stage by stage; a stage is a function of the plan and the batch.
The local engine and the Ray workers run the same ``mine_batch``. The result of a query depends on that query
alone, not on the others of its batch.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

import numpy as np

from negmine.judges.base import Scorers
from negmine.output.candidates import candidate_columns, candidate_values
from negmine.progress import Progress
from negmine.report.stats import MineStats, batch_stats
from negmine.rules import agreement, registry
from negmine.rules.known import positive_mask
from negmine.rules.window import rank_among
from negmine.run.plan import Plan, concat, judges_all, text_digest
from negmine.sampling.lazy import Prescored, ScoredCandidates, lazy_select, prescore
from negmine.sampling.orders import difficulty_bands, sampling_orders, simans_log_weights, take_first
from negmine.sampling.selection import Selection, judge_scores, retriever_scores, selection


@dataclass
class BatchResult:
    """What one query batch produced, as compact arrays (corpus and query rows, not texts): kept for a resumed
    run, laid out as the rows of the output and of the candidates file, merged into the run's statistics.

    Attributes:
        selection: The picks, one entry per query-positive pair.
        stats: The batch's counts.
        positive_scores: The judge's scores of the batch's positives (empty when no judge scored).
        dropped_scores: The judge's scores of the candidates the score rules dropped.
        candidates: ``candidate_columns`` of the batch, when a candidates file is written.
        false_negatives: The candidates dropped as likely false negatives (query and corpus rows, rank, rule code,
            judge score), for ``--false-negatives-output``.
    """

    selection: Selection
    stats: MineStats
    positive_scores: np.ndarray
    dropped_scores: np.ndarray
    candidates: Optional[dict[str, np.ndarray]] = None
    false_negatives: Optional[dict[str, np.ndarray]] = None

    def to_store(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays = {f"sel.{k}": v for k, v in self.selection.to_arrays().items()}
        arrays["positive_scores"] = self.positive_scores
        arrays["dropped_scores"] = self.dropped_scores
        for k, v in (self.candidates or {}).items():
            arrays[f"cand.{k}"] = v
        for k, v in (self.false_negatives or {}).items():
            arrays[f"fn.{k}"] = v
        return arrays, {"stats": self.stats.to_dict(), "candidates": self.candidates is not None,
                        "false_negatives": self.false_negatives is not None}

    @classmethod
    def from_store(cls, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> "BatchResult":
        sel = Selection.from_arrays({k[4:]: v for k, v in arrays.items() if k.startswith("sel.")})
        cand = {k[5:]: v for k, v in arrays.items() if k.startswith("cand.")} if meta["candidates"] else None
        fn = {k[3:]: v for k, v in arrays.items() if k.startswith("fn.")} if meta.get("false_negatives") else None
        return cls(sel, MineStats(**meta["stats"]), arrays["positive_scores"], arrays["dropped_scores"], cand, fn)


@dataclass
class Batch:
    """A query batch, gaining its values stage by stage (``positions``: into the plan's mined queries)."""

    positions: np.ndarray
    rows: np.ndarray
    texts: Sequence[str]
    positives: list[list[int]]
    audit: bool
    hits: Any = None
    reasons: Any = None
    evidence: dict[str, Any] = field(default_factory=dict)
    bm25_margin: Optional[np.ndarray] = None
    bm25_seen: int = 0
    bm25_blind: int = 0
    scorers: Optional[Scorers] = None
    prescored: Optional[Prescored] = None
    scored: Optional[ScoredCandidates] = None
    picks: list[list[np.ndarray]] = field(default_factory=list)
    false_negatives: list[np.ndarray] = field(default_factory=list)
    selection: Optional[Selection] = None
    llm_counts: dict[str, int] = field(default_factory=dict)
    unsampled: Optional[np.ndarray] = None  # the statuses before sampling (the LLM judge samples again from them)
    judge_values: Optional[np.ndarray] = None
    positive_judge: Optional[list[np.ndarray]] = None
    result: Optional[BatchResult] = None

    @classmethod
    def of(cls, plan: Plan, positions: np.ndarray, audit: bool) -> "Batch":
        rows = plan.mined[positions]
        return cls(positions, rows, plan.inputs.queries.texts.take(rows),
                   [plan.positives.of(int(q)).tolist() for q in rows], audit)


def retrieve(plan: Plan, batch: Batch, progress: Progress) -> None:
    batch.hits = plan.sources.search(plan, batch.rows, batch.texts, progress)


def candidate_rules(plan: Plan, batch: Batch, progress: Progress) -> None:
    batch.reasons = registry.candidate_rules(batch.hits.indices, batch.positives, plan.rules,
                                             normalized_texts(plan, batch.hits.indices, batch.positives))


def evidence_rules(plan: Plan, batch: Batch, progress: Progress) -> None:
    with progress.stage("gathering evidence"):
        batch.evidence = plan.sources.evidence(plan, batch.hits.indices, batch.positions, batch.positives,
                                               batch.texts)
    batch.bm25_seen, batch.bm25_blind = registry.blind_counts(batch.reasons, batch.evidence, plan.rules)
    batch.reasons = registry.evidence_rules(batch.reasons, batch.evidence, plan.rules)
    if plan.rules.agreement and batch.evidence.get("bm25_score") is not None:
        batch.bm25_margin = agreement.bm25_margin(batch.evidence["bm25_score"], batch.evidence["bm25_positive"],
                                                  plan.rules.margin_reference)


def score_ahead(plan: Plan, batch: Batch, progress: Progress) -> None:
    """The judge's scorers, when a score rule is on or the judge scores ahead; and the scores ahead of sampling:
    everything retrieved (``--score-all``), or what SimANS samples from."""
    config = plan.rules
    if not (registry.score_rules_on(config) or judges_all(config)):
        return
    batch.scorers = plan.sources.scorers(plan, batch.rows, batch.texts, batch.positives)
    if not judges_all(config):
        return
    scorers, indices, everything = batch.scorers, batch.hits.indices, config.score_all
    cells = (indices >= 0) & (batch.reasons != registry.POSITIVE) if everything else batch.reasons == registry.KEPT
    wanted = Scorers(scorers.judge,
                     scorers.cosine if everything or (config.agreement and batch.bm25_margin is not None) else None,
                     scorers.similarity if everything or config.max_positive_similarity is not None else None,
                     scorers.proximity if everything or config.positive_proximity is not None else None)
    batch.prescored = prescore(indices, cells, batch.positives, wanted, progress)
    batch.scorers = batch.prescored.scorers(indices, batch.positives, scorers.judge.name, batch.rows)


def sample(plan: Plan, batch: Batch, progress: Progress) -> None:
    """Each pair's candidate order (top, random, SimANS), walked with lazy scoring when a score rule is on."""
    config = plan.rules
    if plan.llm is not None:
        if batch.unsampled is None:
            batch.unsampled = batch.reasons.copy()
        batch.reasons = batch.unsampled.copy()
    kept = [np.flatnonzero(row == registry.KEPT) for row in batch.reasons]
    log_weights = None
    if config.sampling_strategy == "simans":
        assert batch.prescored is not None
        ahead = batch.prescored
        log_weights = [[simans_log_weights(ahead.judge[i, cols], s_pos, config.simans_a, config.simans_b)
                        for s_pos in ahead.positive_judge[i]] for i, cols in enumerate(kept)]
    orders = sampling_orders(kept, [len(p) for p in batch.positives], config.sampling_strategy, config.seed,
                             batch.rows, log_weights)
    if registry.score_rules_on(config):
        assert batch.scorers is not None
        batch.scored = lazy_select(batch.hits.indices, batch.reasons, batch.positives, orders, config.num_negatives,
                                   batch.scorers, config, config.score_all, progress, bm25_margin=batch.bm25_margin,
                                   calibration=plan.calibration)
        batch.reasons, picks = batch.scored.reasons, batch.scored.picks
    else:
        picks = take_first(orders, config.num_negatives)
    if config.output_format == "n-tuple":  # a pair short of N negatives has no row: none of its picks is written
        picks = [[p if len(p) == config.num_negatives else p[:0] for p in per_q] for per_q in picks]
    batch.picks = picks


#: Rounds of LLM judging at most: each judges the new picks of the pairs whose picks were flagged.
LLM_ROUNDS = 8


def llm_judge(plan: Plan, batch: Batch, progress: Progress) -> None:
    """The picks judged by the LLM judge (``--llm-judge``): a flagged candidate gets the status ``llm_judge`` and
    the pairs pick again; the new picks are judged in turn, until none is flagged (``LLM_ROUNDS`` at most)."""
    judge = plan.llm
    if judge is None:
        return
    seen: set[tuple[int, int, int]] = set()
    docs = plan.inputs.corpus.texts
    for _ in range(LLM_ROUNDS):
        cells = [(i, j, int(c)) for i, per_q in enumerate(batch.picks) for j, cols in enumerate(per_q) for c in cols
                 if (i, j, int(c)) not in seen]
        if not cells:
            break
        seen.update(cells)
        with progress.stage(f"LLM judge: {len(cells):,} picks"):
            flags, counts = judge.flags([(batch.texts[i], docs[batch.positives[i][j]],
                                          docs[int(batch.hits.indices[i, c])]) for i, j, c in cells])
        for name, n in counts.items():
            batch.llm_counts[name] = batch.llm_counts.get(name, 0) + n
        hit = [(i, c) for (i, _, c), flagged in zip(cells, flags) if flagged]
        if not hit:
            break
        assert batch.unsampled is not None
        for i, c in hit:
            batch.unsampled[i, c] = registry.LLM_JUDGE
        sample(plan, batch, progress)


def lay_out(plan: Plan, batch: Batch, progress: Progress) -> None:
    """The picks as a Selection: with the likely false negatives promoted to positives (``--promote-false-
    negatives``), the difficulty bands, and the scores written (the judge's, or the retriever's)."""
    config, hits = plan.rules, batch.hits
    batch.false_negatives = [np.flatnonzero(np.isin(row, registry.FALSE_NEGATIVE_RULES)) for row in batch.reasons]
    out_positives, out_picks = batch.positives, batch.picks
    if config.promote_false_negatives:  # extra positives, with the negatives of the query's first positive
        out_positives = [p + hits.indices[i, cols].tolist() for i, (p, cols) in
                         enumerate(zip(batch.positives, batch.false_negatives))]
        out_picks = [per_q + [per_q[0]] * len(cols) for per_q, cols in zip(batch.picks, batch.false_negatives)]
    sel = selection(batch.rows, out_positives, out_picks, hits)
    if config.difficulty_bands is not None:
        ranks = rank_among((hits.indices >= 0) & ~positive_mask(hits.indices, batch.positives))
        row_of = {int(q): i for i, q in enumerate(batch.rows)}
        sel.negative_bands = [difficulty_bands(ranks[row_of[int(q)], cols], config.range_min, config.range_max,
                                               config.difficulty_bands)
                              for q, cols in zip(sel.query, sel.negative_positions)]
    scored = batch.scored if registry.need_scores(config) else None
    if batch.prescored is not None:
        batch.judge_values, batch.positive_judge = batch.prescored.judge, batch.prescored.positive_judge
    elif scored is not None:
        batch.judge_values, batch.positive_judge = scored.scores, scored.positive_scores
    if scored is not None and batch.judge_values is not None and batch.positive_judge is not None:
        positive_judge = batch.positive_judge
        if config.promote_false_negatives:  # a promoted positive's score is its score as a candidate
            positive_judge = [np.concatenate([pj, batch.judge_values[i, cols]]).astype(np.float32)
                              for i, (pj, cols) in enumerate(zip(positive_judge, batch.false_negatives))]
            batch.positive_judge = positive_judge
        judge_scores(sel, batch.judge_values, positive_judge)
    elif config.output_scores:
        retriever_scores(sel, lambda docs: plan.sources.pair_scores(plan, batch.rows, batch.texts, docs))
    batch.selection = sel


def account(plan: Plan, batch: Batch, progress: Progress) -> None:
    """The batch's statistics, its likely false negatives, and (``audit``) its rows of the candidates file."""
    config, hits, reasons = plan.rules, batch.hits, batch.reasons
    scored = batch.scored if registry.need_scores(config) else None
    assert batch.selection is not None
    stats = batch_stats(config, plan.inputs.queries, hits, reasons, batch.selection, batch.scored, batch.rows,
                        batch.positives)
    stats.promoted_positives = int(sum(len(c) for c in batch.false_negatives)) \
        if config.promote_false_negatives else 0
    stats.bm25_seen, stats.bm25_blind = batch.bm25_seen, batch.bm25_blind
    stats.llm_judge = dict(batch.llm_counts)
    if batch.prescored is not None:
        stats.pairs_scored, stats.positive_pairs_scored = batch.prescored.pairs, batch.prescored.positive_pairs
    candidates = None
    if batch.audit:
        extras = candidate_values(batch.evidence, batch.prescored, batch.scored, config, batch.positives,
                                  _pair_scores(plan, batch) if config.score_all else None)
        candidates = candidate_columns(batch.rows, hits, reasons, batch.picks, batch.judge_values,
                                       scored.reference if scored is not None else None, batch.positives,
                                       batch.positive_judge, extras)
    dropped = np.isin(reasons, registry.SCORE_RULES)
    batch.result = BatchResult(
        batch.selection, stats, concat(scored.positive_scores) if scored is not None else np.empty(0, np.float32),
        scored.scores[dropped] if scored is not None else np.empty(0, np.float32), candidates,
        _false_negatives(batch))


def _false_negatives(batch: Batch) -> dict[str, np.ndarray]:
    """The candidates dropped as likely false negatives, as compact columns (the false-negatives file)."""
    rows, hits, reasons, found = batch.rows, batch.hits, batch.reasons, batch.false_negatives
    fn_rows = np.repeat(np.arange(len(rows)), [len(c) for c in found])
    fn_cols = np.concatenate(found).astype(np.int64) if found else np.empty(0, np.int64)
    judge = batch.judge_values
    return {"query": rows[fn_rows].astype(np.int64), "doc": hits.indices[fn_rows, fn_cols].astype(np.int64),
            "rank": fn_cols.astype(np.int32), "status": reasons[fn_rows, fn_cols].astype(np.int8),
            "judge_score": (judge[fn_rows, fn_cols] if judge is not None
                            else np.full(len(fn_cols), np.nan)).astype(np.float32)}


def _pair_scores(plan: Plan, batch: Batch) -> tuple[np.ndarray, list[np.ndarray]]:
    """The retriever's own scores of every candidate and positive (``--score-all``: for the candidates file)."""
    docs = [p + row[row >= 0].tolist() for p, row in zip(batch.positives, batch.hits.indices)]
    scores = plan.sources.pair_scores(plan, batch.rows, batch.texts, docs)
    values = np.full(batch.hits.indices.shape, np.nan, np.float32)
    positives = []
    for i, (p, row, s) in enumerate(zip(batch.positives, batch.hits.indices, scores)):
        s = np.asarray(s, dtype=np.float32)
        positives.append(s[: len(p)])
        values[i, row >= 0] = s[len(p) :]
    return values, positives


#: The stages of a query batch, in order.
STAGES: tuple[Callable[[Plan, Batch, Progress], None], ...] = (
    retrieve, candidate_rules, evidence_rules, score_ahead, sample, llm_judge, lay_out, account)


def mine_batch(plan: Plan, positions: np.ndarray, audit: bool, progress: Progress) -> BatchResult:
    """One query batch through the stages (``positions``: into ``plan.mined``); the time of each is added to
    ``plan.seconds``."""
    batch = Batch.of(plan, positions, audit)
    for stage in STAGES:
        started = time.perf_counter()
        stage(plan, batch, progress)
        plan.seconds[stage.__name__] = plan.seconds.get(stage.__name__, 0.0) + time.perf_counter() - started
    assert batch.result is not None
    return batch.result


def normalized_texts(plan: Plan, indices: np.ndarray, positives: list[list[int]]) -> dict[int, int]:
    """A digest of the normalised text of each document the duplicate rules compare (a batch's candidates and
    positives), computed once per document per run."""
    if plan.doc_digests is None:
        plan.doc_digests = np.zeros(len(plan.inputs.corpus), dtype=np.uint64)
    digests = plan.doc_digests
    wanted = np.unique(np.concatenate([indices[indices >= 0].ravel(),
                                       np.fromiter((d for p in positives for d in p), dtype=np.int64)]))
    todo = wanted[digests[wanted] == 0]
    for start in range(0, todo.size, 8192):
        part = todo[start : start + 8192]
        for d, text in zip(part, plan.inputs.corpus.texts.take(part)):
            digests[d] = text_digest(text) | 1  # never 0: 0 means not computed
    return dict(zip(wanted.tolist(), digests[wanted].tolist()))
