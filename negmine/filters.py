"""Filters as pure masks over the candidate arrays. Each candidate gets the reason of the first rule that drops
it (or KEPT); the counts per reason are the run's drop statistics."""

from __future__ import annotations

from typing import Sequence

import numpy as np

KEPT = 0
NO_CANDIDATE = 1
POSITIVE = 2
RANK_WINDOW = 3

#: Reason names, indexed by reason code, as they appear in statistics and audit files.
REASONS = ("kept", "no_candidate", "positive", "rank_window")


def positive_mask(indices: np.ndarray, positives: Sequence[Sequence[int]]) -> np.ndarray:
    """True where a candidate is a known positive of its query."""
    mask = np.zeros(indices.shape, dtype=bool)
    for q, pos in enumerate(positives):
        if pos:
            mask[q] = np.isin(indices[q], np.asarray(pos, dtype=indices.dtype))
    return mask


def rank_among(eligible: np.ndarray) -> np.ndarray:
    """For each cell, its 0-based rank among the ``eligible`` cells of its row (-1 where not eligible)."""
    ranks = np.cumsum(eligible, axis=1) - 1
    return np.where(eligible, ranks, -1)


def window_mask(ranks: np.ndarray, range_min: int, range_max: int) -> np.ndarray:
    """True where a ranked candidate falls outside ``range_min <= rank < range_max``."""
    return (ranks >= 0) & ((ranks < range_min) | (ranks >= range_max))


def apply_rules(indices: np.ndarray, positives: Sequence[Sequence[int]], range_min: int, range_max: int) -> np.ndarray:
    """The reason code of every candidate: the first rule that drops it, or KEPT.

    Rules, in order: an empty slot (no candidate), a known positive, outside the rank window. Ranks for the window
    count only the non-positive candidates, so ``range_min=10`` skips the ten best-ranked non-positives.
    """
    reasons = np.full(indices.shape, KEPT, dtype=np.int8)
    valid = indices >= 0
    reasons[~valid] = NO_CANDIDATE
    is_pos = valid & positive_mask(indices, positives)
    reasons[is_pos] = POSITIVE
    ranks = rank_among(valid & ~is_pos)
    reasons[window_mask(ranks, range_min, range_max)] = RANK_WINDOW
    return reasons


def count_reasons(reasons: np.ndarray) -> dict[str, int]:
    """How many candidates each rule dropped (empty slots are not counted)."""
    counts = np.bincount(reasons.ravel(), minlength=len(REASONS))
    return {name: int(counts[code]) for code, name in enumerate(REASONS) if code not in (KEPT, NO_CANDIDATE)}
