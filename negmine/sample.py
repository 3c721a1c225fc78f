"""Choose N negatives per query-positive pair from the candidates the filters kept."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def sample_negatives(
    eligible: np.ndarray, n_positives: Sequence[int], num_negatives: int, strategy: str, seed: int
) -> list[list[np.ndarray]]:
    """Pick candidate positions (columns of ``eligible``) for every positive of every query.

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
    rng = np.random.default_rng(seed)
    picks: list[list[np.ndarray]] = []
    for q, n_pos in enumerate(n_positives):
        positions = np.flatnonzero(eligible[q])
        per_positive = []
        for _ in range(n_pos):
            if strategy == "top" or positions.size <= num_negatives:
                chosen = positions[:num_negatives]
            else:
                chosen = np.sort(rng.choice(positions, size=num_negatives, replace=False))
            per_positive.append(chosen)
        picks.append(per_positive)
    return picks
