"""Choose N negatives per query-positive pair from the candidates the filters keep.

Sampling is expressed as an order over a query's candidates: the picks are the first N candidates of that order
that pass every filter, put back in rank order. ``top`` walks candidates in rank order (the same picks for every
positive of a query); ``random`` walks a seeded random permutation per positive, which yields a uniform sample
without replacement of the eligible candidates, and lets the reranker score them lazily, in that order.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def sampling_orders(
    candidates: Sequence[np.ndarray], n_positives: Sequence[int], strategy: str, seed: int
) -> list[list[np.ndarray]]:
    """For each query and each of its positives, the order in which its candidate positions are considered.

    Args:
        candidates: Per query, the candidate positions (columns) still eligible before scoring, in rank order.
        n_positives: Number of positives of each query.
        strategy: ``top`` or ``random``.
        seed: Seed of the generator; the same seed gives the same orders.
    """
    rng = np.random.default_rng(seed)
    orders: list[list[np.ndarray]] = []
    for positions, n_pos in zip(candidates, n_positives):
        if strategy == "top":
            orders.append([positions] * n_pos)
        else:
            orders.append([rng.permutation(positions) for _ in range(n_pos)])
    return orders


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
