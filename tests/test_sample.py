"""negmine.sample: top and seeded random choice of negatives."""

from __future__ import annotations

import numpy as np

from negmine.sampling.orders import sample_negatives


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


# --- SimANS ---------------------------------------------------------------------------------------------------------

def test_simans_weights_follow_the_formula() -> None:
    from negmine.sampling.orders import simans_log_weights

    scores = np.array([0.9, 0.7, 0.5, 0.2])
    logw = simans_log_weights(scores, 0.8, a=2.0, b=-0.1)
    assert np.allclose(np.exp(logw), np.exp(-2.0 * (scores - 0.8 + 0.1) ** 2))
    assert int(np.argmax(logw)) == 1  # the candidate at s_positive + b = 0.7 weighs most


def test_simans_first_draws_follow_the_weights() -> None:
    """Each query row seeds its own generator: over 6000 rows the first candidate of each order is drawn with
    probability w_i / sum(w) (a chi-square test at the 0.1% level, with a fixed seed)."""
    from negmine.sampling.orders import sampling_orders, simans_log_weights

    positions = np.arange(6)
    scores = np.array([0.95, 0.8, 0.7, 0.5, 0.3, 0.0])
    logw = simans_log_weights(scores, 0.75, a=8.0, b=0.0)
    expected = np.exp(logw) / np.exp(logw).sum()
    n = 6000
    orders = sampling_orders([positions] * n, [1] * n, "simans", seed=11, query_rows=range(n),
                             log_weights=[[logw]] * n)
    first = np.bincount([int(o[0][0]) for o in orders], minlength=6)
    chi2 = float((((first - n * expected) ** 2) / (n * expected)).sum())
    assert chi2 < 20.5, (first, n * expected)  # chi-square, 5 degrees of freedom, p = 0.001
    # and the order is a draw without replacement: each order is a permutation
    assert all(sorted(o[0].tolist()) == positions.tolist() for o in orders[:50])


def test_simans_second_draws_follow_the_remaining_weights() -> None:
    """Given the first draw, the second is drawn from the others in proportion to their weights."""
    from negmine.sampling.orders import sampling_orders

    logw = np.log(np.array([0.5, 0.3, 0.2]))
    n = 6000
    orders = sampling_orders([np.arange(3)] * n, [1] * n, "simans", seed=3, query_rows=range(n),
                             log_weights=[[logw]] * n)
    after0 = [int(o[0][1]) for o in orders if int(o[0][0]) == 0]
    share = np.mean(np.array(after0) == 1)
    assert abs(share - 0.3 / 0.5) < 0.04, share


def test_simans_is_reproducible_and_seeded() -> None:
    from negmine.sampling.orders import sampling_orders

    logw = [[np.array([-0.1, -0.5, -1.0, -2.0, -0.2])]] * 20
    cands = [np.arange(5)] * 20
    a = sampling_orders(cands, [1] * 20, "simans", 5, range(20), logw)
    b = sampling_orders(cands, [1] * 20, "simans", 5, range(20), logw)
    c = sampling_orders(cands, [1] * 20, "simans", 6, range(20), logw)
    assert all(np.array_equal(x[0], y[0]) for x, y in zip(a, b))
    assert not all(np.array_equal(x[0], y[0]) for x, y in zip(a, c))


def test_simans_tiny_weights_do_not_tie() -> None:
    """Weights far below float range (log -5000) still order by weight, not by position."""
    from negmine.sampling.orders import weighted_order

    order = weighted_order(np.arange(3), np.array([-5000.0, -1.0, -9000.0]), np.random.default_rng(0))
    assert order[0] == 1


def test_difficulty_bands() -> None:
    from negmine.sampling.orders import difficulty_bands

    assert difficulty_bands(np.array([0, 9, 10, 19, 20, 29]), 0, 30, 3).tolist() == [1, 1, 2, 2, 3, 3]
    assert difficulty_bands(np.array([5, 6, 14]), 5, 15, 2).tolist() == [1, 1, 2]
    assert difficulty_bands(np.array([3, 7]), 0, 8, 1).tolist() == [1, 1]
