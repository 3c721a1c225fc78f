"""Choose N negatives per query-positive pair from the candidates the filters keep.

Sampling is expressed as an order over a query's candidates: the picks are the first N candidates of that order
that pass every filter, put back in rank order. ``top`` walks candidates in rank order (the same picks for every
positive of a query); ``random`` walks a seeded random permutation per positive, which yields a uniform sample
without replacement of the eligible candidates, and lets the reranker score them lazily, in that order;
``simans`` walks a weighted random order per positive, each next candidate drawn with probability proportional to
SimANS's weight exp(-a (s - s_positive - b)^2) among those left (Zhou et al. 2022). Each query draws from its own
generator, seeded by (seed, the query's row), so its picks do not depend on which other queries share its batch.
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

import numpy as np


def sampling_orders(
    candidates: Sequence[np.ndarray], n_positives: Sequence[int], strategy: str, seed: int,
    query_rows: Union[Sequence[int], np.ndarray, None] = None,
    log_weights: Optional[Sequence[Sequence[np.ndarray]]] = None,
) -> list[list[np.ndarray]]:
    """For each query and each of its positives, the order in which its candidate positions are considered.

    Args:
        candidates: Per query, the candidate positions (columns) still eligible before scoring, in rank order.
        n_positives: Number of positives of each query.
        strategy: ``top``, ``random`` or ``simans``.
        seed: Seed of the generators; the same seed gives the same orders.
        query_rows: Each query's row in the input (default: its position here); with ``seed`` it seeds the
            query's own generator.
        log_weights: ``simans``: per query and positive, the log of each candidate's weight (``simans_log_weights``),
            aligned with ``candidates``.
    """
    rows = range(len(candidates)) if query_rows is None else query_rows
    orders: list[list[np.ndarray]] = []
    for i, (positions, n_pos, row) in enumerate(zip(candidates, n_positives, rows)):
        if strategy == "top":
            orders.append([positions] * n_pos)
            continue
        rng = np.random.default_rng([seed, int(row)])
        if strategy == "random":
            orders.append([rng.permutation(positions) for _ in range(n_pos)])
        elif strategy == "simans":
            if log_weights is None:
                raise ValueError("simans sampling needs log_weights")
            orders.append([weighted_order(positions, log_weights[i][j], rng) for j in range(n_pos)])
        else:
            raise ValueError(f"unknown sampling strategy {strategy!r}")
    return orders


def weighted_order(positions: np.ndarray, log_weights: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random order of ``positions`` in which each next one is drawn, among those left, with probability
    proportional to its weight (``exp(log_weights)``): sorted by log(E) - log(w) with E ~ Exp(1) (exponential
    clocks; Efraimidis and Spirakis 2006). Log weights, so a tiny weight never underflows to a tie."""
    clocks = np.log(rng.exponential(size=len(positions))) - np.asarray(log_weights, dtype=np.float64)
    return np.asarray(positions)[np.argsort(clocks, kind="stable")]


def simans_log_weights(scores: np.ndarray, positive_score: float, a: float, b: float) -> np.ndarray:
    """The log of SimANS's sampling weight of candidates scoring ``scores`` against a positive scoring
    ``positive_score``: -a (s - s_positive - b)^2. Highest for candidates scoring s_positive + b (b = 0: as close
    to the positive's score as possible; a negative b centres the draws below it), falling off faster the larger
    ``a``: ``a`` is in 1 / score^2 units, so it depends on the judge's scale."""
    return -a * (np.asarray(scores, dtype=np.float64) - float(positive_score) - b) ** 2


def difficulty_bands(ranks: np.ndarray, range_min: int, range_max: int, bands: int) -> np.ndarray:
    """The difficulty band of negatives at window ranks ``ranks`` (0-based ranks among the query's non-positive
    candidates): the window ``range_min .. range_max`` cut into ``bands`` equal slices, 1 = the best-ranked
    (hardest) slice."""
    width = range_max - range_min
    band = 1 + (np.asarray(ranks, dtype=np.int64) - range_min) * bands // width
    return np.clip(band, 1, bands).astype(np.int8)


def take_first(orders: list[list[np.ndarray]], num_negatives: int) -> list[list[np.ndarray]]:
    """With every filter already applied: the first ``num_negatives`` of each order, back in rank order."""
    return [[np.sort(order[:num_negatives]).astype(np.int64) for order in per_query] for per_query in orders]


def sample_negatives(
    eligible: np.ndarray, n_positives: Sequence[int], num_negatives: int, strategy: str, seed: int
) -> list[list[np.ndarray]]:
    """Pick candidate positions for every positive of every query, when every filter has already run.

    Args:
        eligible: ``(n_queries, k)`` mask of candidates that passed every filter, in rank order.
        n_positives: Number of positives of each query; each gets its own pick.
        num_negatives: How many to pick; fewer when fewer are eligible.
        strategy: ``top`` (the best-ranked eligible candidates, the same for every positive of a query) or
            ``random`` (a uniform sample without replacement, drawn per positive).
        seed: Seed of the generator (``random``); the same seed gives the same picks.

    Returns:
        ``picks[q][j]``: positions, in rank order, of the negatives for query ``q``'s ``j``-th positive.
    """
    candidates = [np.flatnonzero(row) for row in eligible]
    return take_first(sampling_orders(candidates, n_positives, strategy, seed), num_negatives)
