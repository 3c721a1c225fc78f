"""Checks of the false-negative metrics on hand-made dicts: ``python -m pytest benchmarks/test_fn_metrics.py``."""

from __future__ import annotations

import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import fn_metrics as M  # noqa: E402
import pytest  # noqa: E402

REL = {"a": {"p", "r1", "r2"}, "b": {"P"}}
POS = {"a": "p", "b": "P"}


def test_fn_rate_pools_negatives_and_ignores_the_positive() -> None:
    picks = {"a": ["r1", "x", "p", "y"], "b": ["z"]}
    assert M.fn_rate(picks, REL, POS) == 1 / 5
    assert math.isnan(M.fn_rate({}, REL, POS))


def test_served_counts_full_queries() -> None:
    assert M.served({"a": ["x"] * 5, "b": ["y"] * 4}, ["a", "b", "c"], 5) == 1 / 3


def test_depth_is_the_pooled_median() -> None:
    rank = {"a": {"x": 1, "y": 3, "z": 10}, "b": {"w": 7}}
    assert M.depth({"a": ["x", "y", "z"], "b": ["w"]}, rank) == 5.0
    assert M.depth({"a": ["x"]}, lambda q, d: 42) == 42.0


def test_lift_interval_holds_the_lift_and_narrows_with_more_queries() -> None:
    # query k: list r, x (r relevant, x not); picking x gives FN 0 against a baseline of 1/2; picking r gives 2
    rel = {f"q{k}": {f"p{k}", f"r{k}"} for k in range(200)}
    pos = {f"q{k}": f"p{k}" for k in range(200)}
    cand = {f"q{k}": [f"r{k}", f"x{k}"] for k in range(200)}

    def picks(n: int) -> dict[str, list[str]]:  # every third query picks the relevant r: lift 2/3
        return {f"q{k}": [f"r{k}" if k % 3 == 0 else f"x{k}"] for k in range(n)}

    small, large = M.lift_interval(picks(30), cand, rel, pos, 1), M.lift_interval(picks(198), cand, rel, pos, 1)
    assert M.lift(picks(198), cand, rel, pos, 1) == pytest.approx(2 / 3)
    assert small[0] < 2 / 3 < small[1] and large[0] < 2 / 3 < large[1]
    assert large[1] - large[0] < small[1] - small[0]
    # every query the same: no spread
    assert M.lift_interval({"q0": ["x0"], "q1": ["x1"]}, cand, rel, pos, 1) == (0.0, 0.0)


def test_blind_baseline_window_is_clipped() -> None:
    flags = [True, False, False, False]
    assert M.blind_baseline(flags, 0, 1) == 0.5
    assert M.blind_baseline(flags, 3, 10) == 0.25


def test_lift_is_one_for_a_blind_pick_and_below_for_a_pick_that_skips_fns() -> None:
    # list (positive removed): r1 x r2 y z ...; window 1
    cand = {"a": ["p", "r1", "x", "r2", "y", "z"]}
    # pick x at position 1: its window holds r1, x, r2 -> baseline 2/3; pick is not FN -> lift 0
    assert M.lift({"a": ["x"]}, cand, REL, POS, window=1) == 0.0
    # pick r2 at position 2: window x, r2, y -> 1/3; pick FN -> 1 / (1/3) = 3
    assert M.lift({"a": ["r2"]}, cand, REL, POS, window=1) == 3.0
    # a list without any FN: undefined
    assert math.isnan(M.lift({"b": ["q"]}, {"b": ["q", "s"]}, REL, POS))
    # with the whole list as the window, picking everything gives lift 1
    assert M.lift({"a": ["r1", "x", "r2", "y", "z"]}, cand, REL, POS, window=100) == 1.0


def test_pick_positions_skip_the_positive() -> None:
    assert M.pick_positions({"a": ["x", "q"]}, {"a": ["p", "r1", "x"]}, POS) == {"a": [1]}


def test_by_strength_and_ratio() -> None:
    picks = {"a": ["r1", "x"], "b": ["y", "z"]}
    split = M.by_strength(picks, REL, POS, {"a": 3, "b": 50})
    assert split["top10"] == {"fn": 0.5, "queries": 1, "negatives": 2}
    assert split["11-100"]["fn"] == 0.0 and split["11+"]["queries"] == 1 and math.isnan(split[">100"]["fn"])
    assert M.strength_ratio(split) == math.inf
    assert M.strength_bucket(10) == "top10" and M.strength_bucket(11) == "11-100" and M.strength_bucket(101) == ">100"


def test_blind_same_depth_on_a_list_of_only_fns() -> None:
    order = {"a": ["p", "r1", "r2"]}
    rank = {"a": {"p": 1, "r1": 2, "r2": 3}}
    assert M.blind_same_depth({"a": ["r1"]}, order, rank, REL, POS, window=5) == 1.0


def test_check_targets() -> None:
    st = {"fn": 0.2, "depth": 10.0}
    good = {"lift": 0.5, "fn": 0.1, "served": 0.96, "depth": 30.0, "strength_ratio": 1.5}
    assert all(M.check_targets(good, st).values())
    bad = dict(good, lift=math.nan, served=0.9, depth=31.0)
    ok = M.check_targets(bad, st)
    assert not ok["lift<=0.6"] and not ok["served>=95%"] and not ok["depth<=3xST"] and ok["FN<=0.5xST"]
