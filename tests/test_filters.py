"""negmine.filters: the rules as pure masks over candidate arrays."""

from __future__ import annotations

import numpy as np
import rulekit as filters
from rulekit import KEPT, NO_CANDIDATE, POSITIVE, RANK_WINDOW, apply_rules, count_reasons


def test_positive_mask() -> None:
    idx = np.array([[5, 3, 9, -1], [1, 2, 3, 4]])
    mask = filters.positive_mask(idx, [[3, 9], []])
    assert mask.tolist() == [[False, True, True, False], [False, False, False, False]]


def test_rank_among_counts_only_eligible_cells() -> None:
    eligible = np.array([[True, False, True, True, False]])
    assert filters.rank_among(eligible).tolist() == [[0, -1, 1, 2, -1]]


def test_window_mask() -> None:
    ranks = np.array([[0, 1, 2, 3, -1]])
    assert filters.window_mask(ranks, 1, 3).tolist() == [[True, False, False, True, False]]


def test_apply_rules_positives_window_and_padding() -> None:
    indices = np.array([
        [7, 2, 8, 3, 9, 4, -1, -1],   # positives 2 and 9 among the candidates, two empty slots
        [1, 0, 5, 6, -1, -1, -1, -1],  # positive 0
    ])
    reasons = apply_rules(indices, [[2, 9], [0]], range_min=1, range_max=3)
    # row 0: non-positives in rank order 7 (r0), 8 (r1), 3 (r2), 4 (r3): window 1..3 keeps 8 and 3
    assert reasons[0].tolist() == [RANK_WINDOW, POSITIVE, KEPT, KEPT, POSITIVE, RANK_WINDOW, NO_CANDIDATE,
                                   NO_CANDIDATE]
    # row 1: non-positives 1 (r0), 5 (r1), 6 (r2): keeps 5 and 6
    assert reasons[1].tolist() == [RANK_WINDOW, POSITIVE, KEPT, KEPT] + [NO_CANDIDATE] * 4
    assert reasons.dtype == np.int8


def test_apply_rules_range_min_zero_keeps_the_best() -> None:
    indices = np.array([[4, 0, 1, 2, 3]])
    reasons = apply_rules(indices, [[4]], range_min=0, range_max=2)
    assert reasons.tolist() == [[POSITIVE, KEPT, KEPT, RANK_WINDOW, RANK_WINDOW]]


def test_apply_rules_a_positive_outside_the_window_is_still_a_positive() -> None:
    indices = np.array([[0, 1, 2, 3]])
    reasons = apply_rules(indices, [[3]], range_min=0, range_max=1)
    assert reasons.tolist() == [[KEPT, RANK_WINDOW, RANK_WINDOW, POSITIVE]]


def test_count_reasons() -> None:
    reasons = np.array([[KEPT, POSITIVE, RANK_WINDOW, RANK_WINDOW, NO_CANDIDATE, KEPT]], dtype=np.int8)
    counts = count_reasons(reasons)
    assert (counts["positive"], counts["rank_window"]) == (1, 2)
    # kept candidates and empty slots are not drops
    assert "kept" not in counts and "no_candidate" not in counts
    assert sum(counts.values()) == 3
    zero = count_reasons(np.full((2, 2), KEPT, dtype=np.int8))
    assert zero["positive"] == zero["rank_window"] == 0 and sum(zero.values()) == 0
