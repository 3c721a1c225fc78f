"""Offline simulator of false-negative rules: candidate rules as pure numpy functions over a batch of candidates.

    HF_HUB_OFFLINE=1 python benchmarks/fn_prototype.py [--datasets cranfield msmarco-dl19-subset scifact]
        [--stage all|single|grid] [--cache-dir /work/fn-cache] [--out benchmarks/out]

Per dataset it computes once (cached as .npy under --cache-dir): the full dense cosine matrix of all-MiniLM-L6-v2
(queries x corpus), BM25 scores (negmine.retrieve.bm25.BM25Retriever) of the queries and of each query's positive
text, and the candidate lists negmine builds (dense top 201, bm25 top 201, hybrid = both fused by RRF, as
negmine.retrieve.fusion.fuse).
A ``Batch`` holds, for every query, its first 200 non-positive candidates (a positive's exact or near-identical copy
dropped as negmine does) and per-candidate evidence:

  s_qc     the judge's score of (query, candidate): here the bi-encoder cosine
  s_pc     bi-encoder cosine of the candidate with the query's positive
  lex_pc   BM25 score of the candidate with the positive's text as query / the positive's own score (0..~1)
  bm25_rank_c, dense_rank_c   the candidate's rank in each retriever's full ranking (1 = best)
  cross_q  the candidate is the given positive of another query whose normalised text equals this one's or
           whose bi-encoder cosine to it is >= 0.95

plus per-query s_qp (judge score of the positive), its ranks, and run-level calibration: the empirical CDF F of ALL
positives' judge scores in the run. A rule is a pure function (batch features, calibration, parameters) -> drop mask
(queries x candidates). A rule set applies its rules in order (a candidate's reason is the first that drops it);
sampling takes the first N kept candidates in list order (``top``) or a seeded uniform sample of them (``random``).
Every figure comes from fn_metrics (FN, served, median depth, lift, by positive strength) and, for short-listed
sets, the blind-at-depth FN; starved queries are counted with the rule that dropped most of their candidates and
whether their positive scored below most of their candidates.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import fn_metrics as M
import numpy as np
from fn_data import DEFAULT_CACHE, Prepared, prepare

from negmine.rules.duplicates import normalize_text

OUT = Path(__file__).resolve().parent / "out"
SPLITS = {"scifact": "train"}
FN_DATASETS = ("cranfield", "msmarco-dl19-subset")
N = 5
WINDOW = 200


# --------------------------------------------------------------------------------------------------------------
# the batch: candidates and their evidence

@dataclass
class Batch:
    """Candidates of every query of one dataset from one candidate source, with their evidence."""

    data: Prepared
    source: str
    cand: np.ndarray            # (Q, K) corpus indices in list order, positive and its copies removed; -1 = none
    valid: np.ndarray           # (Q, K)
    fn: np.ndarray              # (Q, K) judged relevant (not the positive)
    f: dict[str, np.ndarray]    # per-candidate evidence (Q, K)
    g: dict[str, np.ndarray]    # per-query evidence (Q,)
    full_list: dict[int, list[int]] = field(default_factory=dict)  # the list as sampled from (for lift)

    @property
    def nq(self) -> int:
        return self.cand.shape[0]


def cross_query_positives(data: Prepared, cos_min: float = 0.95) -> list[set[int]]:
    """For each query, the given positives of the other queries whose normalised text equals its own or whose
    bi-encoder cosine to it is >= ``cos_min``."""
    norm = [normalize_text(t) for t in data.qtexts]
    qq = data.q_emb @ data.q_emb.T
    out: list[set[int]] = []
    for i in range(len(data.qids)):
        twins = [j for j in range(len(data.qids)) if j != i and (norm[j] == norm[i] or qq[i, j] >= cos_min)]
        out.append({int(data.pos_idx[j]) for j in twins})
    return out


def token_overlap(data: Prepared, cand: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(Jaccard of the token sets of positive and candidate, idf-weighted share of the positive's tokens that the
    candidate contains), NaN for empty slots. Tokens: negmine's BM25 tokenizer (stemmed, no stopwords)."""
    sets, idf = data.token_sets, data.idf
    jac = np.full(cand.shape, np.nan)
    cov = np.full(cand.shape, np.nan)
    for i in range(cand.shape[0]):
        p = sets[int(data.pos_idx[i])]
        pw = sum(idf[t] for t in p) or 1.0
        for j, d in enumerate(cand[i]):
            if d < 0:
                continue
            c = sets[int(d)]
            inter = p & c
            union = len(p | c)
            jac[i, j] = len(inter) / union if union else 0.0
            cov[i, j] = sum(idf[t] for t in inter) / pw
    return jac, cov


def make_batch(data: Prepared, source: str, window: int = WINDOW, near_dup: Optional[float] = 0.98) -> Batch:
    raw = data.candidates(source, window + 1)
    nq = raw.shape[0]
    norm_pos = [normalize_text(data.corpus.texts[p]) for p in data.pos_idx]
    cand = np.full((nq, window), -1, dtype=np.int64)
    full_list: dict[int, list[int]] = {}
    for i in range(nq):
        p = int(data.pos_idx[i])
        row = [int(d) for d in raw[i] if d >= 0 and d != p]
        full_list[i] = row
        keep = []
        for d in row[:window]:  # the rank window counts non-positives, as negmine's does
            if normalize_text(data.corpus.texts[d]) == norm_pos[i]:
                continue
            if near_dup is not None and data.pos_doc_sims[i, d] > near_dup:
                continue
            keep.append(d)
        cand[i, : len(keep)] = keep
    valid = cand >= 0
    safe = np.where(valid, cand, 0)
    rows = np.arange(nq)[:, None]
    fn = np.zeros(cand.shape, dtype=bool)
    for i in range(nq):
        rel = data.rel_idx[i] - {int(data.pos_idx[i])}
        fn[i] = np.isin(cand[i], list(rel)) if rel else False
    fn &= valid
    self_lex = data.bm25_from_positive[np.arange(nq), data.pos_idx]
    xq = cross_query_positives(data)
    f = {
        "s_qc": data.sims[rows, safe],
        "s_pc": data.pos_doc_sims[rows, safe],
        "lex_pc": data.bm25_from_positive[rows, safe] / np.where(self_lex > 0, self_lex, 1)[:, None],
        "bm25_rank_c": data.bm25_rank[rows, safe].astype(np.float64),
        "dense_rank_c": data.rank[rows, safe].astype(np.float64),
        "cross_q": np.array([[int(d) in xq[i] for d in cand[i]] for i in range(nq)]) & valid,
    }
    f["jac_pc"], f["idf_pc"] = token_overlap(data, cand)
    for k in f:
        if f[k].dtype != bool:
            f[k] = np.where(valid, f[k], np.nan)
    pr = np.arange(nq)
    g = {"s_qp": data.pos_score.astype(np.float64), "bm25_rank_p": data.bm25_rank[pr, data.pos_idx].astype(float),
         "dense_rank_p": data.pos_rank.astype(float)}
    return Batch(data, source, cand, valid, fn, f, g, full_list)


# --------------------------------------------------------------------------------------------------------------
# calibration and rules (pure functions)

@dataclass
class Calibration:
    """Run-level calibration: the sorted judge scores of ALL positives of the run."""

    positive_scores: np.ndarray

    @classmethod
    def of(cls, s_qp: np.ndarray) -> "Calibration":
        return cls(np.sort(np.asarray(s_qp, dtype=np.float64)))

    def cdf(self, x: np.ndarray) -> np.ndarray:
        """F(x): share of the run's positive scores <= x (NaN stays NaN)."""
        out = np.searchsorted(self.positive_scores, np.nan_to_num(x, nan=-np.inf), side="right") / len(
            self.positive_scores)
        return np.where(np.isnan(x), np.nan, out)

    def quantile(self, p: float) -> float:
        return float(np.quantile(self.positive_scores, p))


Rule = Callable[..., np.ndarray]


def rule_margin(f: dict, g: dict, cal: Calibration, rm: float) -> np.ndarray:
    """Per-query relative margin (negmine/ST today): drop s_qc > s_qp - |s_qp| * rm."""
    thr = g["s_qp"] - np.abs(g["s_qp"]) * rm
    return f["s_qc"] > thr[:, None]


def rule_pct_gate(f: dict, g: dict, cal: Calibration, m: Optional[float] = None, lo: float = 0.0,
                  hi: float = 1.0) -> np.ndarray:
    """Gate in percentiles of the run's positive scores: with u = F(score), drop when
    u(s_qc) > clip(u(s_qp) - m, lo, hi) (without m: when u(s_qc) > hi).

    ``hi`` caps the gate (a strong positive does not open it: nothing scoring above the hi-quantile of all
    positives passes), ``lo`` floors it (a weak positive does not starve its query: anything below the lo-quantile
    passes this rule), ``m`` is the per-query margin, in percentile points below the positive's own percentile.
    Depends on the judge's scores only through their order: the same for cosines, logits or probabilities.
    """
    u_c = cal.cdf(f["s_qc"])
    if m is None:
        thr = np.full(g["s_qp"].shape, hi)
    else:
        thr = np.clip(cal.cdf(g["s_qp"]) - m, lo, hi)
    return u_c > thr[:, None]


def rule_pos_sim(f: dict, g: dict, cal: Calibration, delta: float = 0.0) -> np.ndarray:
    """Positive-aware: drop when the candidate is closer to the positive than the query is (bi-encoder cosine):
    s_pc > s_qp + delta."""
    return f["s_pc"] > (g["s_qp"] + delta)[:, None]


def rule_pos_gate(f: dict, g: dict, cal: Calibration, m: Optional[float] = None, lo: float = 0.0,
                  hi: float = 1.0) -> np.ndarray:
    """Positive-aware, calibrated like ``pct_gate`` but on the candidate's similarity to the positive: with
    u = F(cosine) over the run's (query, positive) bi-encoder cosines, drop when u(s_pc) > clip(u(s_qp) - m, lo, hi)
    (without m: when u(s_pc) > hi). "The candidate is closer to the positive than the hi-quantile query is to its
    positive." Always bi-encoder cosines on both sides, whatever the judge."""
    u_c = cal.cdf(f["s_pc"])
    if m is None:
        thr = np.full(g["s_qp"].shape, hi)
    else:
        thr = np.clip(cal.cdf(g["s_qp"]) - m, lo, hi)
    return u_c > thr[:, None]


def rule_tri(f: dict, g: dict, cal: Calibration, delta: float = 0.0) -> np.ndarray:
    """TriSampler term: drop when s_pc > s_qc + delta (closer to the positive than to the query)."""
    return f["s_pc"] > f["s_qc"] + delta


def rule_lex(f: dict, g: dict, cal: Calibration, t: float = 0.3) -> np.ndarray:
    """Lexical overlap with the positive: drop when BM25(positive text -> c) / BM25(positive -> positive) > t."""
    return f["lex_pc"] > t


def rule_jaccard(f: dict, g: dict, cal: Calibration, t: float = 0.2) -> np.ndarray:
    """Lexical, token sets: drop when Jaccard(tokens(p), tokens(c)) > t."""
    return f["jac_pc"] > t


def rule_idf_cover(f: dict, g: dict, cal: Calibration, t: float = 0.5) -> np.ndarray:
    """Lexical, token sets: drop when the candidate holds more than a share t of the positive's tokens, each
    weighted by its idf (sum of idf of shared tokens / sum of idf of the positive's tokens)."""
    return f["idf_pc"] > t


def rule_agree(f: dict, g: dict, cal: Calibration) -> np.ndarray:
    """Agreement: both retrievers (BM25 and dense) rank the candidate above the positive."""
    return (f["bm25_rank_c"] < g["bm25_rank_p"][:, None]) & (f["dense_rank_c"] < g["dense_rank_p"][:, None])


def rule_cross_query(f: dict, g: dict, cal: Calibration) -> np.ndarray:
    """Cross-query: the candidate is the given positive of another query whose text is (near-)identical."""
    return f["cross_q"].copy()


def rule_skip(f: dict, g: dict, cal: Calibration, r: int = 10) -> np.ndarray:
    """Blind: drop the first r candidates of the list (negmine's --range-min): a rank cut-off, no evidence."""
    out = np.zeros(f["s_qc"].shape, dtype=bool)
    out[:, :r] = True
    return out


RULES: dict[str, Rule] = {
    "margin": rule_margin, "pct_gate": rule_pct_gate, "pos_sim": rule_pos_sim, "pos_gate": rule_pos_gate,
    "tri": rule_tri, "lex": rule_lex, "jaccard": rule_jaccard, "idf_cover": rule_idf_cover, "agree": rule_agree,
    "cross_query": rule_cross_query, "skip": rule_skip,
}


@dataclass(frozen=True)
class RuleSet:
    """Rules in order, each (name, params); plus the sampling strategy and an optional window (first W)."""

    rules: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...]
    sampling: str = "top"
    window: int = WINDOW

    @classmethod
    def make(cls, *rules: tuple[str, dict[str, Any]], sampling: str = "top", window: int = WINDOW) -> "RuleSet":
        return cls(tuple((n, tuple(sorted(p.items()))) for n, p in rules), sampling, window)

    @property
    def label(self) -> str:
        parts = []
        for name, params in self.rules:
            ps = ",".join(f"{k}={v}" for k, v in params)
            parts.append(f"{name}({ps})" if ps else name)
        extra = [] if self.sampling == "top" else [self.sampling]
        if self.window != WINDOW:
            extra.append(f"W={self.window}")
        return " + ".join(parts or ["none"]) + (f" [{' '.join(extra)}]" if extra else "")


def apply(batch: Batch, rs: RuleSet, cal: Calibration) -> np.ndarray:
    """Reason code per candidate: 0 kept, -1 no candidate / outside the window, i > 0 the i-th rule of ``rs``."""
    reasons = np.zeros(batch.cand.shape, dtype=np.int16)
    reasons[~batch.valid] = -1
    reasons[:, rs.window:] = -1
    for i, (name, params) in reversed(list(enumerate(rs.rules, start=1))):  # the first rule in order wins
        hit = RULES[name](batch.f, batch.g, cal, **dict(params)) & (reasons >= 0)
        reasons[hit] = i
    return reasons


def sample(reasons: np.ndarray, n: int, strategy: str, seed: int = 42) -> list[np.ndarray]:
    """Positions of the picks per query: the first n kept in list order, or a seeded uniform sample of the kept."""
    rng = np.random.default_rng(seed)
    out = []
    for row in reasons:
        kept = np.flatnonzero(row == 0)
        if strategy == "random" and kept.size > n:
            kept = np.sort(rng.choice(kept, n, replace=False))
        out.append(kept[:n])
    return out


# --------------------------------------------------------------------------------------------------------------
# evaluation

def dicts(batch: Batch) -> tuple[dict, dict, Callable, dict, dict]:
    d = batch.data
    relevant = {i: d.rel_idx[i] for i in range(batch.nq)}
    positive = {i: int(d.pos_idx[i]) for i in range(batch.nq)}
    pos_rank = {i: int(d.pos_rank[i]) for i in range(batch.nq)}

    def rank(q: int, doc: int) -> int:
        return int(d.rank[q, doc])

    return relevant, positive, rank, pos_rank, batch.full_list


def pick(batch: Batch, rs: RuleSet, cal: Calibration) -> tuple[dict[int, list[int]], np.ndarray]:
    """The picks (query row -> corpus indices, in list order) and the reason codes."""
    reasons = apply(batch, rs, cal)
    pos = sample(reasons, N, rs.sampling)
    return {i: [int(batch.cand[i, j]) for j in p] for i, p in enumerate(pos)}, reasons


def evaluate(batch: Batch, rs: RuleSet, cal: Calibration, blind: bool = False) -> dict[str, Any]:
    picks, reasons = pick(batch, rs, cal)
    relevant, positive, rank, pos_rank, lists = dicts(batch)
    out: dict[str, Any] = M.summarize(picks, list(range(batch.nq)), N, relevant, positive, rank, pos_rank, lists)
    if blind:
        order = _Order(batch.data)
        out["blind_at_depth"] = M.blind_same_depth(picks, order, rank, relevant, positive)
    out.update(starvation(batch, rs, reasons))
    return out


def query_parts(batch: Batch, picks: dict[int, list[int]]) -> dict[str, Any]:
    """Per-query sums behind every pooled figure, so that resampled query sets can be scored without re-running."""
    relevant, positive, rank, pos_rank, lists = dicts(batch)
    parts: dict[str, Any] = {"n": [], "fn": [], "served": [], "ranks": [], "lift_fn": [], "lift_base": [],
                             "bucket": []}
    for q in range(batch.nq):
        docs = picks.get(q, [])
        pf, base, counted = M.lift_parts({q: docs}, lists, relevant, positive)
        parts["n"].append(len(docs))
        parts["fn"].append(sum(M.fn_flags(docs, q, relevant, positive)))
        parts["served"].append(len(docs) >= N)
        parts["ranks"].append([rank(q, d) for d in docs])
        parts["lift_fn"].append(pf * counted if counted else 0.0)
        parts["lift_base"].append(base * counted if counted else 0.0)
        parts["bucket"].append(M.strength_bucket(pos_rank[q]))
    return parts


def figures_of(parts: dict[str, Any], idx: np.ndarray) -> dict[str, float]:
    """The pooled figures of the queries ``idx`` (with repeats) from ``query_parts``."""
    n = np.asarray(parts["n"])[idx]
    fn = np.asarray(parts["fn"])[idx]
    bucket = np.asarray(parts["bucket"])[idx]
    ranks = [r for i in idx for r in parts["ranks"][i]]
    lb = float(np.asarray(parts["lift_base"])[idx].sum())
    top = bucket == "top10"
    a = fn[top].sum() / max(n[top].sum(), 1) if n[top].sum() else math.nan
    b = fn[~top].sum() / max(n[~top].sum(), 1) if n[~top].sum() else math.nan
    ratio = math.nan if math.isnan(a) or math.isnan(b) else (a / b if b > 0 else (0.0 if a == 0 else math.inf))
    return {"fn": fn.sum() / max(n.sum(), 1), "served": float(np.asarray(parts["served"])[idx].mean()),
            "depth": float(np.median(ranks)) if ranks else math.nan,
            "lift": float(np.asarray(parts["lift_fn"])[idx].sum()) / lb if lb > 0 else math.nan,
            "strength_ratio": ratio}


def bootstrap(lab: "Lab", name: str, src: str, rs: RuleSet, b: int = 500, seed: int = 0) -> dict[str, float]:
    """Share of query resamples (with replacement, ``b`` of them) in which each target is met, ST re-measured on
    the same resample: how much a verdict owes to a few queries."""
    st_src, st_rs = baselines()["ST rm=0.05 (sim)"]
    st_b, me_b = lab.batch(name, st_src), lab.batch(name, src)
    st_parts = query_parts(st_b, pick(st_b, st_rs, Calibration.of(st_b.g["s_qp"]))[0])
    me_parts = query_parts(me_b, pick(me_b, rs, Calibration.of(me_b.g["s_qp"]))[0])
    rng = np.random.default_rng(seed)
    hits: dict[str, int] = {}
    for _ in range(b):
        idx = rng.integers(0, me_b.nq, me_b.nq)
        ok = M.check_targets(figures_of(me_parts, idx), figures_of(st_parts, idx))
        ok["all"] = all(ok.values())
        for k, v in ok.items():
            hits[k] = hits.get(k, 0) + int(v)
    return {k: v / b for k, v in hits.items()}


class _Order(dict):
    def __init__(self, data: Prepared) -> None:
        super().__init__()
        self.data = data

    def __missing__(self, q: int) -> list[int]:
        v = self.data.order[q].tolist()
        self[q] = v
        return v


def starvation(batch: Batch, rs: RuleSet, reasons: np.ndarray) -> dict[str, Any]:
    """Queries left short of N: which rule dropped most of their window, and whether their positive scored below
    most of their candidates (a weak positive)."""
    kept = (reasons == 0).sum(1)
    short = np.flatnonzero(kept < N)
    by_rule: dict[str, int] = {}
    weak = 0
    for i in short:
        codes = reasons[i][reasons[i] > 0]
        if codes.size:
            top = int(np.bincount(codes).argmax())
            name = rs.rules[top - 1][0]
        else:
            name = "window"
        by_rule[name] = by_rule.get(name, 0) + 1
        s = batch.f["s_qc"][i][batch.valid[i]]
        weak += int(s.size > 0 and batch.g["s_qp"][i] < np.median(s))
    return {"starved": int(short.size), "starved_by": by_rule, "starved_weak_positive": weak}


# --------------------------------------------------------------------------------------------------------------
# what is swept

def baselines() -> dict[str, tuple[str, RuleSet]]:
    """Reference points simulated here (checked against the real runs in false_negatives.py)."""
    return {
        "ST rm=0.05 (sim)": ("dense-nodup", RuleSet.make(("margin", {"rm": 0.05}), window=51)),
        "negmine defaults (sim)": ("hybrid", RuleSet.make(("margin", {"rm": 0.15}))),
        "plain dense top-k": ("dense", RuleSet.make()),
        "plain bm25 top-k": ("bm25", RuleSet.make()),
        "plain hybrid top-k": ("hybrid", RuleSet.make()),
    }


X_RULE = ("cross_query", {})
#: The rule sets this study recommends (see the module's report); the first is the default proposal.
RECOMMENDED: dict[str, tuple[str, RuleSet]] = {
    "R1 lex(0.1) + agree [dense]": ("dense", RuleSet.make(X_RULE, ("lex", {"t": 0.1}), ("agree", {}))),
    "R2 R1 + pos_gate(m=0, lo=0.5) [dense]": (
        "dense", RuleSet.make(X_RULE, ("pos_gate", {"m": 0.0, "lo": 0.5, "hi": 1.0}), ("lex", {"t": 0.1}),
                              ("agree", {}))),
    "R3 R1 + pos_sim(0) [dense] (meets all, fragile)": (
        "dense", RuleSet.make(X_RULE, ("pos_sim", {"delta": 0.0}), ("lex", {"t": 0.1}), ("agree", {}))),
    "R4 R1 + pct_gate(hi=0.75) [dense]": (
        "dense", RuleSet.make(X_RULE, ("pct_gate", {"hi": 0.75}), ("lex", {"t": 0.1}), ("agree", {}))),
    "R1 on hybrid candidates": ("hybrid", RuleSet.make(X_RULE, ("lex", {"t": 0.1}), ("agree", {}))),
    "R1 on bm25 candidates": ("bm25", RuleSet.make(X_RULE, ("lex", {"t": 0.1}), ("agree", {}))),
    "R1 random sampling [dense]": ("dense", RuleSet.make(X_RULE, ("lex", {"t": 0.1}), ("agree", {}),
                                                         sampling="random")),
}


def single_rule_sets() -> list[tuple[str, RuleSet]]:
    """Each rule alone, over its knob, on each candidate source: the frontier of every kind of evidence."""
    sets: list[tuple[str, RuleSet]] = []
    for src in ("dense", "hybrid", "bm25"):
        sets += [(src, RuleSet.make(("margin", {"rm": rm}))) for rm in (0.0, 0.05, 0.1, 0.15, 0.2, 0.3)]
        sets += [(src, RuleSet.make(("skip", {"r": r}))) for r in (5, 10, 20, 30, 50, 100)]
        sets += [(src, RuleSet.make(("pct_gate", {"hi": hi}))) for hi in (0.1, 0.25, 0.5, 0.75, 0.9)]
        sets += [(src, RuleSet.make(("pct_gate", {"m": m, "lo": lo, "hi": hi})))
                 for m in (0.0, 0.1, 0.2) for lo in (0.0, 0.1) for hi in (0.5, 0.75, 1.0)]
        sets += [(src, RuleSet.make(("pos_sim", {"delta": d}))) for d in (-0.2, -0.15, -0.1, -0.05, 0.0, 0.05, 0.1)]
        sets += [(src, RuleSet.make(("pos_gate", {"hi": t}))) for t in (0.05, 0.1, 0.25, 0.5, 0.75)]
        sets += [(src, RuleSet.make(("pos_gate", {"m": 0.0, "lo": lo, "hi": 1.0}))) for lo in (0.0, 0.25, 0.5)]
        sets += [(src, RuleSet.make(("tri", {"delta": d}))) for d in (-0.1, -0.05, 0.0, 0.05, 0.1, 0.2)]
        sets += [(src, RuleSet.make(("lex", {"t": t}))) for t in (0.05, 0.1, 0.15, 0.2, 0.3, 0.5)]
        sets += [(src, RuleSet.make(("jaccard", {"t": t}))) for t in (0.05, 0.1, 0.15, 0.2)]
        sets += [(src, RuleSet.make(("idf_cover", {"t": t}))) for t in (0.1, 0.2, 0.3, 0.5)]
        sets += [(src, RuleSet.make(("agree", {}))), (src, RuleSet.make(("cross_query", {})))]
        sets += [(src, RuleSet.make(sampling="random", window=w)) for w in (10, 20, 50, 100, 200)]
        sets += [(src, RuleSet.make(("margin", {"rm": 0.15}), sampling="random"))]
    return sets


def grid_rule_sets(sources: Sequence[str] = ("dense", "hybrid", "bm25")) -> list[tuple[str, RuleSet]]:
    """Combinations: a score gate on the query side (per-query margin, or the calibrated percentile gate) +
    positive-aware evidence (calibrated gate, or raw cosine comparisons) + lexical overlap + agreement; the
    cross-query rule always first (it drops known positives of twin queries, whatever else is set)."""
    gates: list[Optional[tuple[str, dict]]] = [None, ("margin", {"rm": 0.05}), ("margin", {"rm": 0.1})]
    gates += [("pct_gate", {"hi": hi}) for hi in (0.5, 0.75)]
    gates += [("pct_gate", {"m": m, "lo": 0.1, "hi": 0.75}) for m in (0.0, 0.1)]
    pos: list[Optional[tuple[str, dict]]] = [None]
    pos += [("pos_gate", {"hi": hi}) for hi in (0.25, 0.5)]
    pos += [("pos_gate", {"m": 0.0, "lo": lo, "hi": 1.0}) for lo in (0.0, 0.25, 0.5)]
    pos += [("pos_sim", {"delta": d}) for d in (-0.1, 0.0)]
    pos += [("tri", {"delta": 0.0})]
    lex: list[Optional[tuple[str, dict]]] = [None] + [("lex", {"t": t}) for t in (0.05, 0.1, 0.15, 0.2)]
    agree: list[Optional[tuple[str, dict]]] = [None, ("agree", {})]
    sets = []
    for src in sources:
        for combo in itertools.product([X_RULE], gates, pos, lex, agree):
            rules = [r for r in combo if r is not None]
            sets.append((src, RuleSet.make(*rules)))
    return sets


def frontier_families() -> dict[str, list[tuple[str, str, RuleSet]]]:
    """What the frontier PNG draws: (knob label, source, rule set) per family."""
    r1 = lambda t: (X_RULE, ("lex", {"t": t}), ("agree", {}))  # noqa: E731
    return {
        "ST rm (sim, dense window 51)": [(f"rm={rm}", "dense-nodup", RuleSet.make(("margin", {"rm": rm}), window=51))
                                         for rm in (0.0, 0.05, 0.1, 0.15, 0.2, 0.3)],
        "negmine today: hybrid margin rm": [(f"rm={rm}", "hybrid", RuleSet.make(("margin", {"rm": rm})))
                                            for rm in (0.0, 0.05, 0.1, 0.15, 0.2, 0.3)],
        "blind: dense skip first R": [(f"R={r}", "dense", RuleSet.make(("skip", {"r": r})))
                                      for r in (0, 5, 10, 20, 30, 50, 100)],
        "blind: random in dense top W": [(f"W={w}", "dense", RuleSet.make(sampling="random", window=w))
                                         for w in (10, 20, 50, 100, 200)],
        "calibrated gate pct_gate(hi) [dense]": [(f"hi={h}", "dense", RuleSet.make(("pct_gate", {"hi": h})))
                                                 for h in (0.1, 0.25, 0.5, 0.75, 0.9)],
        "R1 lex(t)+agree [dense]": [(f"t={t}", "dense", RuleSet.make(*r1(t))) for t in (0.05, 0.1, 0.15, 0.2, 0.3)],
        "R1 lex(t)+agree [hybrid]": [(f"t={t}", "hybrid", RuleSet.make(*r1(t))) for t in (0.05, 0.1, 0.15, 0.2, 0.3)],
        "R1 lex(t)+agree [bm25]": [(f"t={t}", "bm25", RuleSet.make(*r1(t))) for t in (0.05, 0.1, 0.15, 0.2, 0.3)],
    }


def oracle(batch: Batch) -> dict[str, float]:
    """What a perfect filter gets on these candidates: the first N non-FN of each query's window."""
    d = batch.data
    served = 0
    all_ranks: list[int] = []
    for i in range(batch.nq):
        ok = np.flatnonzero(batch.valid[i] & ~batch.fn[i])[:N]
        served += int(ok.size >= N)
        all_ranks += [int(d.rank[i, batch.cand[i, j]]) for j in ok]
    return {"served": served / batch.nq, "depth": float(np.median(all_ranks)) if all_ranks else math.nan}


# --------------------------------------------------------------------------------------------------------------
# reporting

def fmt(x: Any, kind: str = "pct") -> str:
    if x is None or (isinstance(x, float) and (math.isnan(x) or math.isinf(x))):
        return "-"
    return f"{x:.1%}" if kind == "pct" else (f"{x:.0f}" if kind == "int" else f"{x:.2f}")


def row_text(label: str, r: dict[str, Any], st: Optional[dict[str, Any]], fn_ok: bool = True) -> str:
    ok = ""
    if st is not None and fn_ok:
        ok = " ".join(("+" if v else "-") + k for k, v in M.check_targets(r, st).items())
    pct = (lambda x: fmt(x)) if fn_ok else (lambda x: "-")
    fn_st = r["fn"] / st["fn"] if st and fn_ok and st["fn"] > 0 else math.nan
    d_st = r["depth"] / st["depth"] if st else math.nan
    return (f"  {label[:70]:70} {pct(r['fn']):>6} {fmt(r['served']):>6} {fmt(r['depth'], 'int'):>5} "
            f"{fmt(r.get('lift'), 'f') if fn_ok else '-':>5} {pct(r.get('blind_at_depth', math.nan)):>7} "
            f"{pct(r['fn_top10']):>6} {pct(r['fn_11_100']):>6} {pct(r['fn_gt100']):>6} "
            f"{fmt(r['strength_ratio'], 'f') if fn_ok else '-':>6} {fmt(fn_st, 'f'):>5} {fmt(d_st, 'f'):>5} "
            f"{r['starved']:>4} {ok}")


HEAD = (f"  {'rule set [source]':70} {'FN':>6} {'served':>6} {'depth':>5} {'lift':>5} {'blind@d':>7} {'top10':>6} "
        f"{'11-100':>6} {'>100':>6} {'t10/11+':>6} {'FN/ST':>5} {'d/ST':>5} {'strv':>4} targets")


class Lab:
    """Batches per (dataset, source), the run's calibration, results per (dataset, source, rule set)."""

    def __init__(self, names: Sequence[str], cache: Path) -> None:
        self.data = {n: prepare(n, SPLITS.get(n, "test"), cache) for n in names}
        self.batches: dict[tuple[str, str], Batch] = {}
        self.results: dict[tuple[str, str, RuleSet], dict[str, Any]] = {}

    def batch(self, name: str, source: str) -> Batch:
        key = (name, source)
        if key not in self.batches:
            if source == "dense-nodup":  # ST: no duplicate-text / near-duplicate rule
                self.batches[key] = make_batch(self.data[name], "dense", WINDOW, None)
                self.batches[key].source = source
            else:
                self.batches[key] = make_batch(self.data[name], source)
        return self.batches[key]

    def run(self, name: str, source: str, rs: RuleSet, blind: bool = False) -> dict[str, Any]:
        key = (name, source, rs)
        r = self.results.get(key)
        if r is None or (blind and "blind_at_depth" not in r):
            b = self.batch(name, source)
            r = evaluate(b, rs, Calibration.of(b.g["s_qp"]), blind)
            self.results[key] = r
        return r


def meets_all(r: dict[str, Any], st: dict[str, Any]) -> bool:
    return all(M.check_targets(r, st).values())


def frontier_png(lab: Lab, name: str, st: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 6.5))
    ax.fill_between([0.9, 3 * st["depth"]], 0, 0.5 * st["fn"], color="tab:green", alpha=0.12,
                    label="target: FN <= 0.5 x ST, depth <= 3 x ST")
    markers = "osD^v<>phX*"
    for i, (fam, runs) in enumerate(frontier_families().items()):
        pts = sorted(((lab.run(name, src, rs), knob) for knob, src, rs in runs), key=lambda p: p[0]["depth"])
        xs = [p[0]["depth"] for p in pts]
        ys = [p[0]["fn"] for p in pts]
        line = ax.plot(xs, ys, "-", marker=markers[i % len(markers)], label=fam, alpha=0.85,
                       color=plt.get_cmap("tab20")(i % 20))[0]
        for (r, knob), x, y in zip(pts, xs, ys):
            if r["served"] < 0.95:
                ax.plot([x], [y], marker=markers[i % len(markers)], markersize=11, markerfacecolor="white",
                        markeredgecolor=line.get_color(), linestyle="none")
            ax.annotate(knob, (x, y), textcoords="offset points", xytext=(4, 3), fontsize=6.5,
                        color=line.get_color())
    o = oracle(lab.batch(name, "dense"))
    ax.plot([o["depth"]], [0.0], marker="*", markersize=14, color="black", linestyle="none",
            label=f"perfect filter on dense top 200 (serves {o['served']:.0%})")
    ax.set_xscale("log")
    ax.set_xlabel("depth: median rank of the negatives in the model's full dense ranking (log)")
    ax.set_ylabel("false-negative rate")
    ax.set_title(f"{name}: simulated rules, FN vs depth (hollow = < 95% of queries served)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="+", default=["cranfield", "msmarco-dl19-subset", "scifact"])
    ap.add_argument("--stage", nargs="+", choices=("single", "grid", "recommended"),
                    default=["single", "grid", "recommended"])
    ap.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--top", type=int, default=12, help="grid rule sets shown per dataset")
    ap.add_argument("--bootstrap", type=int, default=500, help="query resamples per robustness figure")
    args = ap.parse_args()
    t0 = time.perf_counter()
    lab = Lab(args.datasets, args.cache_dir)
    fn_sets = [n for n in args.datasets if n in FN_DATASETS]
    st_of: dict[str, dict[str, Any]] = {}
    report: dict[str, Any] = {"baselines": {}, "oracle": {}, "single": {}, "grid": {}, "recommended": {}}

    print("Baselines (simulated) and the perfect filter's bounds (first N non-FN of each window)")
    for name in args.datasets:
        print(f"\n{name}\n{HEAD}")
        for label, (src, rs) in baselines().items():
            r = lab.run(name, src, rs, blind=True)
            if label.startswith("ST"):
                st_of[name] = r
            print(row_text(f"{label} [{src}]", r, st_of.get(name), name in FN_DATASETS))
            report["baselines"][f"{name}|{label}"] = r
        if name in FN_DATASETS:
            bounds = {src: oracle(lab.batch(name, src)) for src in ("dense", "hybrid", "bm25")}
            report["oracle"][name] = bounds
            print("  perfect filter: " + "; ".join(f"{src} served {o['served']:.1%} depth {o['depth']:.1f}"
                                                  for src, o in bounds.items())
                  + f"  (targets: served >= 95%, depth <= {3 * st_of[name]['depth']:.0f})")

    if "single" in args.stage:
        print("\nEach rule alone (frontier per kind of evidence)")
        for name in args.datasets:
            print(f"\n{name}\n{HEAD}")
            for src, rs in single_rule_sets():
                r = lab.run(name, src, rs)
                print(row_text(f"{rs.label} [{src}]", r, st_of.get(name), name in FN_DATASETS))
                report["single"][f"{name}|{src}|{rs.label}"] = r

    if "grid" in args.stage:
        sets = grid_rule_sets()
        print(f"\nCombinations: {len(sets)} rule sets x {len(args.datasets)} datasets")
        passing: dict[tuple[str, RuleSet], list[str]] = {}
        for name in args.datasets:
            for src, rs in sets:
                r = lab.run(name, src, rs)
                if name in FN_DATASETS and meets_all(r, st_of[name]):
                    passing.setdefault((src, rs), []).append(name)
        both = [k for k, v in passing.items() if len(v) == len(fn_sets)]
        for n in fn_sets:
            print(f"  rule sets meeting every target on {n}: {sum(1 for v in passing.values() if n in v)}")
        print(f"  ... on {' and '.join(fn_sets)}: {len(both)}" +
              "".join(f"\n    {rs.label} [{src}]" for src, rs in both))

        def key(k: tuple[str, RuleSet]) -> tuple:
            src, rs = k
            met = sum(sum(M.check_targets(lab.run(n, src, rs), st_of[n]).values()) for n in fn_sets)
            return (met, -sum(lab.run(n, src, rs)["fn"] / st_of[n]["fn"] for n in fn_sets), -len(rs.rules))

        ranked = sorted(sets, key=key, reverse=True)[: args.top]
        for name in args.datasets:
            print(f"\n{name}: best {args.top} by targets met on {'+'.join(fn_sets)}, then FN/ST\n{HEAD}")
            for src, rs in ranked:
                r = lab.run(name, src, rs, blind=True)
                print(row_text(f"{rs.label} [{src}]", r, st_of.get(name), name in FN_DATASETS))
        report["grid"] = {f"{n}|{src}|{rs.label}": lab.results[(n, src, rs)] for n in args.datasets
                          for src, rs in sets}
        report["passing_both"] = [f"{src}|{rs.label}" for src, rs in both]

    if "recommended" in args.stage:
        print(f"\nRecommended rule sets (share of {args.bootstrap} query resamples meeting each target in brackets)")
        for name in args.datasets:
            fn_ok = name in FN_DATASETS
            print(f"\n{name}\n{HEAD}")
            for label, (src, rs) in RECOMMENDED.items():
                r = lab.run(name, src, rs, blind=True)
                print(row_text(f"{label}", r, st_of.get(name), fn_ok))
                entry = dict(r, rule_set=rs.label, source=src)
                if r["starved"]:
                    print(f"      starved {r['starved']}: most dropped by {r['starved_by']}; positive scored below "
                          f"most of its candidates in {r['starved_weak_positive']}")
                if fn_ok and args.bootstrap:
                    boot = bootstrap(lab, name, src, rs, args.bootstrap)
                    entry["bootstrap"] = boot
                    print("      robustness: " + " ".join(f"{k} {v:.0%}" for k, v in boot.items()))
                report["recommended"][f"{name}|{label}"] = entry

    args.out.mkdir(parents=True, exist_ok=True)
    for name in fn_sets:
        frontier_png(lab, name, st_of[name], args.out / f"prototype-frontier-{name}.png")
    (args.out / "fn_prototype.json").write_text(json.dumps(report, indent=1, default=str))
    print(f"\n{time.perf_counter() - t0:.0f} s; figures in {args.out / 'fn_prototype.json'}, frontier PNGs "
          f"{', '.join(str(args.out / f'prototype-frontier-{n}.png') for n in fn_sets)}")


if __name__ == "__main__":
    main()
