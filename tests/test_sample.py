"""negmine.sample: top and seeded random choice of negatives."""

from __future__ import annotations

import numpy as np

from negmine.sample import sample_negatives


def _eligible() -> np.ndarray:
    return np.array([
        [True, False, True, True, False, True, True, True, True, True],  # 8 eligible
        [False, True, False, False, False, False, False, False, False, True],  # 2 eligible
        [False] * 10,  # none
    ])


def test_top_gives_the_first_eligible_positions() -> None:
    picks = sample_negatives(_eligible(), [2, 1, 1], 3, "top", seed=0)
    assert [p.tolist() for p in picks[0]] == [[0, 2, 3], [0, 2, 3]]  # same for every positive of a query
    assert [p.tolist() for p in picks[1]] == [[1, 9]]  # short: only two eligible
    assert [p.tolist() for p in picks[2]] == [[]]


def test_one_list_per_positive() -> None:
    picks = sample_negatives(_eligible(), [3, 0, 2], 2, "top", seed=0)
    assert [len(p) for p in picks] == [3, 0, 2]


def test_random_is_sorted_without_replacement_and_eligible() -> None:
    eligible = _eligible()
    allowed = set(np.flatnonzero(eligible[0]).tolist())
    picks = sample_negatives(eligible, [50, 1, 1], 4, "random", seed=123)
    for chosen in picks[0]:
        values = chosen.tolist()
        assert len(values) == 4
        assert values == sorted(values) and len(set(values)) == 4
        assert set(values) <= allowed
    # with 50 draws of 4 out of 8, more than one distinct subset comes up (per-positive draws)
    assert len({tuple(c.tolist()) for c in picks[0]}) > 1
    # and every eligible position gets drawn at some point
    assert set(np.concatenate(picks[0]).tolist()) == allowed
    # fewer eligible than asked: all of them, in rank order
    assert picks[1][0].tolist() == [1, 9]
    assert picks[2][0].tolist() == []


def test_random_is_seeded() -> None:
    eligible = np.ones((20, 30), dtype=bool)
    a = sample_negatives(eligible, [1] * 20, 5, "random", seed=7)
    b = sample_negatives(eligible, [1] * 20, 5, "random", seed=7)
    c = sample_negatives(eligible, [1] * 20, 5, "random", seed=8)

    def flat(picks):  # type: ignore[no-untyped-def]
        return [x.tolist() for per_q in picks for x in per_q]

    assert flat(a) == flat(b)
    assert flat(a) != flat(c)


def test_random_differs_from_top_when_there_is_a_choice() -> None:
    eligible = np.ones((10, 50), dtype=bool)
    top = sample_negatives(eligible, [1] * 10, 3, "top", seed=1)
    rnd = sample_negatives(eligible, [1] * 10, 3, "random", seed=1)
    assert all(t[0].tolist() == [0, 1, 2] for t in top)
    assert any(r[0].tolist() != [0, 1, 2] for r in rnd)
