"""Run statistics: what was read, retrieved, dropped and written, per batch and merged. Stored in the output's
provenance."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from negmine.output.layouts import written
from negmine.rules import registry


@dataclass
class MineStats:
    """Counts of a mining run. No timings (those are in ``MineResult.seconds``); ``texts_encoded`` and
    ``texts_cached`` depend on the cache's state and are left out of the output's provenance, so the same inputs
    give the same file."""

    queries: int = 0
    queries_mined: int = 0
    queries_without_positives: int = 0
    queries_empty_text: int = 0
    positives: int = 0
    documents: int = 0
    qrels_rows: int = 0
    qrels_nonpositive: int = 0
    qrels_unknown_query: int = 0
    qrels_unknown_doc: int = 0
    texts_encoded: int = 0
    texts_cached: int = 0
    candidates_seen: int = 0
    pairs_scored: int = 0
    positive_pairs_scored: int = 0
    not_scored: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    negatives_written: int = 0
    rows_written: int = 0
    short_pairs: int = 0
    short_queries: int = 0
    short_examples: list[str] = field(default_factory=list)
    short_by_rule: dict[str, int] = field(default_factory=dict)
    short_weak_positive: int = 0
    promoted_positives: int = 0
    scores: dict[str, Any] = field(default_factory=dict)
    dense_search: dict[str, Any] = field(default_factory=dict)  # an approximate faiss index: setting, recall@k
    bm25_seen: int = 0  # candidates the BM25 rules looked at (kept by the candidate rules)
    bm25_blind: int = 0  # of those, the ones sharing no BM25 token with their positive
    blind_rules: dict[str, float] = field(default_factory=dict)  # rules that could not see: bm25_blind's share
    train_batches: dict[str, Any] = field(default_factory=dict)  # the composition of --train-batch-size
    endpoint_usage: dict[str, Any] = field(default_factory=dict)  # requests and tokens, per model behind an endpoint
    llm_judge: dict[str, int] = field(default_factory=dict)  # picks judged and flagged by --llm-judge

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def add(self, other: "MineStats") -> None:
        """Add a query batch's counts to these (the run's)."""
        for name in ("candidates_seen", "pairs_scored", "positive_pairs_scored", "not_scored", "negatives_written",
                     "rows_written", "short_pairs", "short_queries", "short_weak_positive", "promoted_positives",
                     "bm25_seen", "bm25_blind"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for target, extra in ((self.dropped, other.dropped), (self.short_by_rule, other.short_by_rule),
                              (self.llm_judge, other.llm_judge)):
            for key, n in extra.items():
                target[key] = target.get(key, 0) + n
        self.short_examples = (self.short_examples + other.short_examples)[:3]


def input_stats(inputs: Any, positives: Any) -> MineStats:
    """The statistics known once the inputs are read and matched."""
    n_mined = int((positives.counts() > 0).sum())
    return MineStats(
        queries=len(inputs.queries),
        queries_mined=n_mined,
        queries_without_positives=len(inputs.queries) - n_mined,
        positives=positives.count,
        documents=len(inputs.corpus),
        qrels_rows=len(inputs.qrels),
        qrels_nonpositive=positives.nonpositive_rows,
        qrels_unknown_query=positives.unknown_query_rows,
        qrels_unknown_doc=positives.unknown_doc_rows,
    )


def batch_stats(config: Any, queries: Any, hits: Any, reasons: np.ndarray, sel: Any, scored: Any, rows: np.ndarray,
                positives: list[list[int]]) -> MineStats:
    """A query batch's counts: candidates seen and dropped per rule, pairs scored, negatives and rows written,
    the pairs that came up short and why."""

    stats = MineStats(candidates_seen=int((hits.indices >= 0).sum()), dropped=registry.count_reasons(reasons),
                      not_scored=int((reasons == registry.NOT_SCORED).sum()))
    if scored is not None:
        stats.pairs_scored, stats.positive_pairs_scored = scored.pairs_scored, scored.positive_pairs_scored

    counts = np.array([len(n) for n in sel.negatives], dtype=np.int64)
    stats.rows_written, stats.negatives_written = written(sel, config.output_format, config.num_negatives)
    short = np.flatnonzero(counts < config.num_negatives)
    short_q = sorted({int(sel.query[r]) for r in short})
    stats.short_pairs = int(short.size)
    stats.short_queries = len(short_q)
    stats.short_examples = [str(q) for q in queries.ids.take(short_q[:3])]
    if short_q:
        row_of = {int(q): r for r, q in enumerate(rows)}
        at = np.array([row_of[q] for q in short_q], dtype=np.int64)
        for code in registry.dominant_drop(reasons[at]):
            name = registry.REASONS[code] if code >= 0 else "no_candidates"
            stats.short_by_rule[name] = stats.short_by_rule.get(name, 0) + 1
        stats.short_weak_positive = int(registry.weak_positive(hits.indices[at], [positives[r] for r in at]).sum())
    return stats


QUANTILES = (0, 5, 25, 50, 75, 95, 100)


def quantiles(values: np.ndarray) -> dict[str, Any]:
    """Count, mean and the QUANTILES of ``values`` (None when empty)."""
    values = np.asarray(values, dtype=np.float64)
    values = values[~np.isnan(values)]
    out: dict[str, Any] = {"count": int(values.size), "mean": float(values.mean()) if values.size else None}
    for q in QUANTILES:
        out[f"p{q}"] = float(np.percentile(values, q)) if values.size else None
    return out


def score_summary(scorer: str, positive: np.ndarray, negative: np.ndarray, dropped: np.ndarray,
                  bins: int = 30) -> dict[str, Any]:
    """Quantiles and a shared-bin histogram of positive, written-negative and score-dropped candidate scores."""
    arrays = {"positive": np.asarray(positive, np.float64), "negative": np.asarray(negative, np.float64),
              "dropped": np.asarray(dropped, np.float64)}
    arrays = {k: v[~np.isnan(v)] for k, v in arrays.items()}
    everything = np.concatenate(list(arrays.values()))
    lo, hi = (float(everything.min()), float(everything.max())) if everything.size else (0.0, 1.0)
    if hi <= lo:
        hi = lo + 1.0
    edges = np.linspace(lo, hi, bins + 1)
    return {
        "scorer": scorer,
        **{k: quantiles(v) for k, v in arrays.items()},
        "histogram": {"edges": [round(float(e), 6) for e in edges],
                      **{k: np.histogram(v, bins=edges)[0].astype(int).tolist() for k, v in arrays.items()}},
    }
