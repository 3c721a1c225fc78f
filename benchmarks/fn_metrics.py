"""False-negative metrics over plain dicts, shared by false_negatives.py and fn_prototype.py.

Every function takes plain mappings keyed by query id (any hashable: a string id or a row number):

    picks[q]     the documents mined as q's negatives (any order; empty or missing = none)
    relevant[q]  every document judged relevant for q, its positive included
    positive[q]  the ONE document given to the miner as q's positive
    cand[q]      the candidate list the method sampled from, best first (the positive may be in it)
    rank[q][d]   d's rank in q's full dense ranking (1 = best), or a callable (q, d) -> rank

A false negative (FN) is a mined negative that is judged relevant but is not the given positive.
"""

from __future__ import annotations

import math
from typing import Callable, Hashable, Iterable, Mapping, Sequence, Union

import numpy as np

Q = Hashable
D = Hashable
RankLookup = Union[Mapping[Q, Mapping[D, int]], Callable[[Q, D], int]]

#: Positive strength buckets: the given positive's rank in the model's full dense ranking.
STRENGTH_BINS: tuple[tuple[str, int, float], ...] = (("top10", 1, 10), ("11-100", 11, 100), (">100", 101, math.inf))


def is_fn(q: Q, d: D, relevant: Mapping[Q, set], positive: Mapping[Q, D]) -> bool:
    """Whether document ``d`` mined as a negative of ``q`` is a false negative."""
    return d != positive.get(q) and d in relevant.get(q, ())


def fn_flags(docs: Iterable[D], q: Q, relevant: Mapping[Q, set], positive: Mapping[Q, D]) -> list[bool]:
    """The FN indicator of each document in ``docs`` (as negatives of ``q``)."""
    return [is_fn(q, d, relevant, positive) for d in docs]


def fn_rate(picks: Mapping[Q, Sequence[D]], relevant: Mapping[Q, set], positive: Mapping[Q, D]) -> float:
    """Share of all mined negatives (pooled over queries) that are false negatives; NaN when nothing was mined."""
    flags = [f for q, docs in picks.items() for f in fn_flags(docs, q, relevant, positive)]
    return float(np.mean(flags)) if flags else math.nan


def served(picks: Mapping[Q, Sequence[D]], queries: Sequence[Q], n: int) -> float:
    """Share of ``queries`` that got at least ``n`` negatives."""
    if not queries:
        return math.nan
    return sum(1 for q in queries if len(picks.get(q, ())) >= n) / len(queries)


def _rank_of(rank: RankLookup) -> Callable[[Q, D], int]:
    return rank if callable(rank) else (lambda q, d: rank[q][d])  # type: ignore[index]


def depth(picks: Mapping[Q, Sequence[D]], rank: RankLookup) -> float:
    """Median rank (1 = best) of all mined negatives (pooled) in their query's full dense ranking."""
    of = _rank_of(rank)
    ranks = [of(q, d) for q, docs in picks.items() for d in docs]
    return float(np.median(ranks)) if ranks else math.nan


def blind_baseline(flags: Sequence[bool], position: int, window: int = 10) -> float:
    """Mean FN indicator of the documents at positions ``position - window .. position + window`` (clipped to the
    list) of a candidate list whose FN indicators are ``flags`` (the positive already removed from the list)."""
    lo, hi = max(0, position - window), min(len(flags), position + window + 1)
    return float(np.mean(flags[lo:hi])) if hi > lo else math.nan


def pick_positions(picks: Mapping[Q, Sequence[D]], cand: Mapping[Q, Sequence[D]],
                   positive: Mapping[Q, D]) -> dict[Q, list[int]]:
    """Each pick's 0-based position in its query's candidate list with the positive removed (picks not in the
    list are left out)."""
    out: dict[Q, list[int]] = {}
    for q, docs in picks.items():
        where = {d: i for i, d in enumerate(x for x in cand.get(q, ()) if x != positive.get(q))}
        out[q] = [where[d] for d in docs if d in where]
    return out


def lift_parts(picks: Mapping[Q, Sequence[D]], cand: Mapping[Q, Sequence[D]], relevant: Mapping[Q, set],
               positive: Mapping[Q, D], window: int = 10) -> tuple[float, float, int]:
    """(mean FN of the picks, mean of their blind baselines, picks counted) -- see ``lift``."""
    pick_fn: list[float] = []
    blind: list[float] = []
    for q, docs in picks.items():
        lst = [x for x in cand.get(q, ()) if x != positive.get(q)]
        flags = fn_flags(lst, q, relevant, positive)
        where = {d: i for i, d in enumerate(lst)}
        for d in docs:
            if d not in where:
                continue
            pick_fn.append(float(is_fn(q, d, relevant, positive)))
            blind.append(blind_baseline(flags, where[d], window))
    if not pick_fn:
        return math.nan, math.nan, 0
    return float(np.mean(pick_fn)), float(np.mean(blind)), len(pick_fn)


def lift(picks: Mapping[Q, Sequence[D]], cand: Mapping[Q, Sequence[D]], relevant: Mapping[Q, set],
         positive: Mapping[Q, D], window: int = 10) -> float:
    """Filter lift: FN rate of the picks / FN rate of blind picks at the same ranks of the same candidate list.

    For a pick at position r of q's candidate list (positive removed), the blind baseline is the mean FN indicator
    of the list's documents at positions r - window .. r + window; lift = mean FN of picks / mean of baselines.
    1 = the filter knows nothing beyond rank; < 1 = it drops false negatives that rank alone would keep.
    NaN when the baselines hold no false negative at all.
    """
    fn, base, _ = lift_parts(picks, cand, relevant, positive, window)
    return fn / base if base and base > 0 else math.nan


def lift_interval(picks: Mapping[Q, Sequence[D]], cand: Mapping[Q, Sequence[D]], relevant: Mapping[Q, set],
                  positive: Mapping[Q, D], window: int = 10, level: float = 0.95, draws: int = 2000,
                  seed: int = 0) -> tuple[float, float]:
    """A bootstrap interval of ``lift`` over queries: the queries drawn with replacement ``draws`` times, the lift
    of each draw (its picks' FN over their baselines, pooled), and the central ``level`` share of those lifts.
    With a few dozen queries the interval is wide: a lift just under a threshold is not a lift under it."""
    per_query = []
    for q in picks:
        fn, base, counted = lift_parts({q: picks[q]}, cand, relevant, positive, window)
        if counted:
            per_query.append((fn * counted, base * counted))
    if not per_query:
        return math.nan, math.nan
    fn_sum, base_sum = np.array(per_query).T
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(per_query), size=(draws, len(per_query)))
    num, den = fn_sum[idx].sum(axis=1), base_sum[idx].sum(axis=1)
    lifts = num[den > 0] / den[den > 0]
    if not lifts.size:
        return math.nan, math.nan
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(lifts, [tail, 100 - tail])
    return float(lo), float(hi)


def strength_bucket(rank: int) -> str:
    """The positive-strength bucket of a positive at full dense rank ``rank``."""
    for name, lo, hi in STRENGTH_BINS:
        if lo <= rank <= hi:
            return name
    raise ValueError(rank)


def by_strength(picks: Mapping[Q, Sequence[D]], relevant: Mapping[Q, set], positive: Mapping[Q, D],
                positive_rank: Mapping[Q, int], queries: Sequence[Q] | None = None) -> dict[str, dict[str, float]]:
    """FN rate split by the given positive's rank in the model's full dense ranking (top10 / 11-100 / >100), plus
    the rest (``11+``: every query whose positive is outside the top 10).

    Returns per bucket: ``fn`` (pooled FN rate of its queries' negatives), ``queries``, ``negatives``.
    """
    queries = list(queries if queries is not None else positive_rank)
    groups: dict[str, list[Q]] = {name: [] for name, _, _ in STRENGTH_BINS}
    groups["11+"] = []
    for q in queries:
        b = strength_bucket(positive_rank[q])
        groups[b].append(q)
        if b != "top10":
            groups["11+"].append(q)
    out: dict[str, dict[str, float]] = {}
    for name, qs in groups.items():
        sub = {q: picks.get(q, ()) for q in qs}
        out[name] = {"fn": fn_rate(sub, relevant, positive), "queries": len(qs),
                     "negatives": sum(len(v) for v in sub.values())}
    return out


def strength_ratio(split: Mapping[str, Mapping[str, float]]) -> float:
    """FN rate of queries with a top-10 positive / FN rate of the other queries (NaN when undefined)."""
    a, b = split["top10"]["fn"], split["11+"]["fn"]
    if math.isnan(a) or math.isnan(b):
        return math.nan
    if b == 0:
        return 0.0 if a == 0 else math.inf
    return a / b


def blind_same_depth(picks: Mapping[Q, Sequence[D]], order: Mapping[Q, Sequence[D]], rank: RankLookup,
                     relevant: Mapping[Q, set], positive: Mapping[Q, D], window: int = 10,
                     seeds: Sequence[int] = (0, 1, 2, 3, 4)) -> float:
    """FN rate of a blind pick at the same depth: every pick at full dense rank r is replaced by a random document
    at full dense ranks r - window .. r + window of the query's full dense ranking ``order`` (positive excluded,
    no document twice per query), averaged over ``seeds``. A method whose FN rate is not below this has won
    nothing a rank cut-off would not give."""
    of = _rank_of(rank)
    rates = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        flags: list[bool] = []
        for q, docs in picks.items():
            full = order[q]
            taken: set = set()
            for d in docs:
                r = of(q, d) - 1
                lo, hi = max(0, r - window), min(len(full), r + window + 1)
                pool = [x for x in full[lo:hi] if x != positive.get(q) and x not in taken]
                if not pool:
                    continue
                x = pool[int(rng.integers(len(pool)))]
                taken.add(x)
                flags.append(is_fn(q, x, relevant, positive))
        rates.append(float(np.mean(flags)) if flags else math.nan)
    return float(np.mean(rates))


def summarize(picks: Mapping[Q, Sequence[D]], queries: Sequence[Q], n: int, relevant: Mapping[Q, set],
              positive: Mapping[Q, D], rank: RankLookup, positive_rank: Mapping[Q, int],
              cand: Mapping[Q, Sequence[D]] | None = None, window: int = 10) -> dict[str, float]:
    """All figures of one method: fn, served, depth, lift (with its parts), fn_top10 / fn_11_100 / fn_gt100 /
    fn_11plus and strength_ratio."""
    split = by_strength(picks, relevant, positive, positive_rank, queries)
    out = {"fn": fn_rate(picks, relevant, positive), "served": served(picks, queries, n),
           "depth": depth(picks, rank), "negatives": sum(len(v) for v in picks.values()),
           "fn_top10": split["top10"]["fn"], "fn_11_100": split["11-100"]["fn"], "fn_gt100": split[">100"]["fn"],
           "fn_11plus": split["11+"]["fn"], "strength_ratio": strength_ratio(split),
           "q_top10": split["top10"]["queries"], "q_11_100": split["11-100"]["queries"],
           "q_gt100": split[">100"]["queries"]}
    if cand is not None:
        pf, base, counted = lift_parts(picks, cand, relevant, positive, window)
        lo, hi = lift_interval(picks, cand, relevant, positive, window)
        out.update({"lift": pf / base if base and base > 0 else math.nan, "lift_picks_fn": pf, "lift_blind_fn": base,
                    "lift_counted": counted, "lift_lo": lo, "lift_hi": hi})
    return out


#: Targets (issue): filter lift <= 0.6; FN <= 0.5 x ST's at >= 95% served; depth <= 3 x ST's; FN(top10 positive)
#: <= 1.5 x FN(other queries).
TARGETS = {"lift": 0.6, "fn_vs_st": 0.5, "served": 0.95, "depth_vs_st": 3.0, "strength_ratio": 1.5}


def check_targets(m: Mapping[str, float], st: Mapping[str, float]) -> dict[str, bool]:
    """Which targets method ``m`` meets, against ST's figures ``st`` (NaN counts as not met)."""
    def le(a: float, b: float) -> bool:
        return not math.isnan(a) and a <= b

    fn_ratio = m["fn"] / st["fn"] if st["fn"] > 0 else math.nan
    return {
        "lift<=0.6": le(m.get("lift", math.nan), TARGETS["lift"]),
        "FN<=0.5xST": le(fn_ratio, TARGETS["fn_vs_st"]),
        "served>=95%": m["served"] >= TARGETS["served"],
        "depth<=3xST": le(m["depth"] / st["depth"], TARGETS["depth_vs_st"]),
        "top10<=1.5x": le(m["strength_ratio"], TARGETS["strength_ratio"]),
    }
