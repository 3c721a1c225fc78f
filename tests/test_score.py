"""negmine.sampling.lazy.lazy_select: lazy scoring gives the picks full scoring gives, with less reranker work.

The scorer is a fake: scores come from a hand-made (query row, corpus index) table, and it records every pair it
was asked for.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
import pytest
import rulekit as filters
from rulekit import KEPT, NOT_SCORED, apply_rules, score_rules
from rulekit import settings as ScoreRules

from negmine.judges.base import Scorers
from negmine.judges.vectors import PositiveCosines
from negmine.rules import registry
from negmine.sampling.lazy import ScoredCandidates, lazy_select
from negmine.sampling.orders import sampling_orders


def select(indices: np.ndarray, cheap: np.ndarray, positives: Any, orders: Any, n: int, scorer: Any, rules: Any,
           vectors: Any = None, score_all: bool = False, round_size: int = 4096) -> ScoredCandidates:
    """lazy_select with the judge ``scorer`` and, given ``vectors``, the cosines to the positives."""
    similarity = PositiveCosines(vectors, positives).similarity if vectors is not None else None
    return lazy_select(indices, cheap, positives, orders, n, Scorers(scorer, None, similarity), rules, score_all,
                       round_size=round_size)


class TableScorer:
    """A Scorer whose score of (query row q, document d) is ``table[q, d]``; counts the pairs it scored."""

    name = "table"

    def __init__(self, table: np.ndarray) -> None:
        self.table = np.asarray(table, dtype=np.float32)
        self.calls: list[list[tuple[int, int]]] = []

    def identity(self) -> dict[str, Any]:
        return {"type": self.name}

    def score(self, query_rows: np.ndarray, docs: np.ndarray) -> np.ndarray:
        pairs = [(int(q), int(d)) for q, d in zip(query_rows, docs)]
        self.calls.append(pairs)
        return self.table[np.asarray(query_rows, dtype=np.int64), np.asarray(docs, dtype=np.int64)]

    @property
    def pairs(self) -> list[tuple[int, int]]:
        return [p for call in self.calls for p in call]


class FakeVectors:
    """The part of negmine.score.Vectors lazy_select uses: document vectors by corpus index."""

    def __init__(self, vectors: np.ndarray) -> None:
        self.vectors = vectors
        self.asked = 0

    def ensure(self, idx: np.ndarray) -> None:
        pass

    def docs(self, idx: np.ndarray) -> np.ndarray:
        self.asked += len(idx)
        return self.vectors[np.asarray(idx, dtype=np.int64)]


class Problem:
    """A random mining problem: candidate lists, positives, cheap-rule reasons and a score table."""

    def __init__(self, seed: int, nq: int = 30, k: int = 50, n_docs: int = 200, range_min: int = 2,
                 range_max: int = 40, spread: float = 1.0) -> None:
        rng = np.random.default_rng(seed)
        self.positives = [sorted(rng.choice(n_docs, size=int(rng.integers(1, 4)), replace=False).tolist())
                          for _ in range(nq)]
        rows = []
        for q in range(nq):
            row = rng.choice(n_docs, size=k, replace=False)
            # most queries find their positives among the candidates, somewhere near the top
            for p in self.positives[q]:
                if p not in row and rng.random() < 0.8:
                    row[int(rng.integers(0, 10))] = p
            rows.append(row)
        self.indices = np.array(rows, dtype=np.int64)
        self.indices[3, 45:] = -1  # a short candidate list
        self.cheap = apply_rules(self.indices, self.positives, range_min, range_max)
        # positives score high, candidates lower, with some overlap so the margins drop a few
        self.table = rng.normal(0.0, spread, size=(nq, n_docs)).astype(np.float32)
        for q, pos in enumerate(self.positives):
            self.table[q, pos] += 2.5
        self.vectors = rng.normal(size=(n_docs, 8)).astype(np.float32)
        self.vectors /= np.linalg.norm(self.vectors, axis=1, keepdims=True)

    def orders(self, strategy: str, seed: int = 7) -> list[list[np.ndarray]]:
        return sampling_orders([np.flatnonzero(r == KEPT) for r in self.cheap], [len(p) for p in self.positives],
                               strategy, seed)

    def select(self, strategy: str, rules: Any, n: int = 5, score_all: bool = False,
               vectors: Optional[FakeVectors] = None, round_size: int = 4096) -> tuple[ScoredCandidates, TableScorer]:
        scorer = TableScorer(self.table)
        out = select(self.indices, self.cheap, self.positives, self.orders(strategy), n, scorer, rules, vectors,
                     score_all, round_size=round_size)
        return out, scorer

    def oracle(self, strategy: str, rules: Any, n: int = 5,
               vectors: Optional[FakeVectors] = None) -> tuple[np.ndarray, list[list[np.ndarray]]]:
        """Every cell's final reason with everything scored, and the first n passing cells of each order."""
        reasons = self.cheap.copy()
        for q in range(len(self.positives)):
            cells = np.flatnonzero(self.cheap[q] == KEPT)
            docs = self.indices[q, cells]
            pos = np.asarray(self.positives[q])
            ref = filters.margin_reference(self.table[q, pos], rules.margin_reference)
            sims = None
            if vectors is not None and rules.max_positive_similarity is not None:
                sims = (self.vectors[docs] @ self.vectors[pos].T).max(axis=1)
            reasons[q, cells] = score_rules(self.table[q, docs], ref, sims, rules.max_positive_similarity,
                                            rules.max_score, rules.min_score, rules.absolute_margin,
                                            rules.relative_margin)
        picks = [[np.array(sorted([int(c) for c in order if reasons[q, c] == KEPT][:n]), dtype=np.int64)
                  for order in per_q] for q, per_q in enumerate(self.orders(strategy))]
        return reasons, picks


def same_picks(a: list[list[np.ndarray]], b: list[list[np.ndarray]]) -> bool:
    return len(a) == len(b) and all(len(x) == len(y) and all(np.array_equal(u, v) for u, v in zip(x, y))
                                    for x, y in zip(a, b))


RULE_SETS = {
    "relative": ScoreRules(relative_margin=0.1),
    "absolute+limits": ScoreRules(absolute_margin=0.3, max_score=2.0, min_score=-2.0),
    "everything-mean": ScoreRules(max_positive_similarity=0.6, max_score=2.5, min_score=-1.5, absolute_margin=0.2,
                                  relative_margin=0.05, margin_reference="mean"),
    "max-reference": ScoreRules(absolute_margin=1.0, margin_reference="max"),
}


# --- (a) lazy equals full, and both equal an independent oracle --------------------------------------------------

@pytest.mark.parametrize("strategy", ["top", "random"])
@pytest.mark.parametrize("rules_name", list(RULE_SETS))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lazy_gives_the_same_picks_and_reasons_as_score_all(strategy: str, rules_name: str, seed: int) -> None:
    problem = Problem(seed)
    rules = RULE_SETS[rules_name]
    vectors = FakeVectors(problem.vectors)
    lazy, lazy_scorer = problem.select(strategy, rules, vectors=vectors)
    full, full_scorer = problem.select(strategy, rules, score_all=True, vectors=vectors)
    want_reasons, want_picks = problem.oracle(strategy, rules, vectors=vectors)

    assert same_picks(lazy.picks, full.picks)
    assert same_picks(lazy.picks, want_picks)
    scored = ~np.isnan(lazy.scores)
    # every cell the lazy walk scored has the reason (and score) full scoring gives it
    assert np.array_equal(lazy.reasons[scored], full.reasons[scored])
    assert np.array_equal(lazy.reasons[scored], want_reasons[scored])
    np.testing.assert_array_equal(lazy.scores[scored], full.scores[scored])
    # full scoring scores exactly the cheap-kept cells and reproduces the oracle everywhere
    assert np.array_equal(~np.isnan(full.scores), problem.cheap == KEPT)
    assert np.array_equal(full.reasons, want_reasons)
    # cells the cheap rules dropped keep their cheap reason
    cheap_dropped = problem.cheap != KEPT
    assert np.array_equal(lazy.reasons[cheap_dropped], problem.cheap[cheap_dropped])
    # the positive scores and the reference are the same
    np.testing.assert_array_equal(lazy.reference, full.reference)
    # no pair is scored twice
    for scorer in (lazy_scorer, full_scorer):
        assert len(scorer.pairs) == len(set(scorer.pairs))
    # picks are in rank order and are cells that passed everything
    for q, per_q in enumerate(lazy.picks):
        for chosen in per_q:
            assert np.all(np.diff(chosen) > 0)
            assert np.all(lazy.reasons[q, chosen] == KEPT)


# --- (b) lazy does less work ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("strategy", ["top", "random"])
def test_lazy_scores_fewer_pairs_when_filters_drop_few(strategy: str) -> None:
    problem = Problem(3, spread=0.5)
    rules = ScoreRules(relative_margin=0.05)
    lazy, lazy_scorer = problem.select(strategy, rules)
    full, full_scorer = problem.select(strategy, rules, score_all=True)
    dropped = np.isin(full.reasons, [filters.RELATIVE_MARGIN]).sum()
    assert dropped < 0.1 * (problem.cheap == KEPT).sum()  # "few" drops
    assert full.pairs_scored == int((problem.cheap == KEPT).sum())
    assert lazy.pairs_scored < full.pairs_scored / 2
    assert len(lazy_scorer.pairs) < len(full_scorer.pairs)
    assert same_picks(lazy.picks, full.picks)


def asked_candidates(scorer: TableScorer, n_positives: int) -> list[int]:
    """The documents the scorer was asked for after the positives, in the order asked (one query)."""
    return [d for _, d in scorer.pairs[n_positives:]]


def test_lazy_scores_only_the_head_of_the_order() -> None:
    # one query, positive at rank 0, 19 candidates, nothing dropped: the first round fills the query, asking for
    # at least what it needs and at most twice that, in order
    indices = np.arange(20)[None, :]
    cheap = apply_rules(indices, [[0]], 0, 100)
    table = np.linspace(0.0, -1.0, 20)[None, :].astype(np.float32)
    table[0, 0] = 5.0
    scorer = TableScorer(table)
    out = select(indices, cheap, [[0]], sampling_orders([np.arange(1, 20)], [1], "top", 0), 3, scorer,
                      ScoreRules(relative_margin=0.01))
    assert out.picks[0][0].tolist() == [1, 2, 3]
    assert scorer.calls[0] == [(0, 0)]                         # the positive first, alone
    assert 3 <= out.pairs_scored <= 6
    assert asked_candidates(scorer, 1) == list(range(1, 1 + out.pairs_scored))  # a prefix of the order
    assert len(scorer.calls) == 2                              # one round was enough
    assert (out.reasons[0] == NOT_SCORED).sum() == 19 - out.pairs_scored


def test_lazy_walks_on_past_drops_in_rounds() -> None:
    # candidates 1..4 score above the positive (dropped): the walk goes on in later rounds until 5 and 6 pass
    indices = np.arange(12)[None, :]
    cheap = apply_rules(indices, [[0]], 0, 100)
    table = np.zeros((1, 12), np.float32)
    table[0, 0] = 1.0
    table[0, 1:5] = 2.0
    scorer = TableScorer(table)
    out = select(indices, cheap, [[0]], sampling_orders([np.arange(1, 12)], [1], "top", 0), 2, scorer,
                      ScoreRules(absolute_margin=0.0))
    assert out.picks[0][0].tolist() == [5, 6]
    assert len(scorer.calls) >= 3                              # positives, then at least two rounds
    assert 6 <= out.pairs_scored <= 8                          # never more than twice what is still needed
    assert asked_candidates(scorer, 1) == list(range(1, 1 + out.pairs_scored))
    n_kept = out.pairs_scored - 4
    assert out.reasons[0].tolist() == ([filters.POSITIVE] + [filters.ABSOLUTE_MARGIN] * 4 + [KEPT] * n_kept
                                       + [NOT_SCORED] * (7 - n_kept))


@pytest.mark.parametrize("score_all", [False, True])
def test_round_size_does_not_change_the_picks(score_all: bool) -> None:
    problem = Problem(4)
    rules = RULE_SETS["relative"]
    big, _ = problem.select("random", rules, score_all=score_all)
    small, small_scorer = problem.select("random", rules, score_all=score_all, round_size=7)
    assert same_picks(big.picks, small.picks)
    assert np.array_equal(big.reasons, small.reasons)
    assert big.pairs_scored == small.pairs_scored
    if score_all:
        assert max(len(c) for c in small_scorer.calls[1:]) <= 7  # batches never exceed the round size


# --- (c) a query whose every candidate is filtered -----------------------------------------------------------------

@pytest.mark.parametrize("strategy", ["top", "random"])
def test_a_query_with_every_candidate_dropped_gets_nothing_and_is_fully_scored(strategy: str) -> None:
    problem = Problem(5)
    problem.table[7, :] = 10.0   # every document scores above the max for query 7, positives included
    rules = ScoreRules(max_score=5.0)
    out, scorer = problem.select(strategy, rules)
    assert all(len(p) == 0 for p in out.picks[7])
    kept_cells = np.flatnonzero(problem.cheap[7] == KEPT)
    assert kept_cells.size > 0
    assert not np.isnan(out.scores[7, kept_cells]).any()
    assert np.all(out.reasons[7, kept_cells] == filters.MAX_SCORE)
    assert NOT_SCORED not in out.reasons[7].tolist()
    asked = {d for q, d in scorer.pairs if q == 7}
    assert set(problem.indices[7, kept_cells].tolist()) <= asked
    # the other queries still get their five
    assert all(len(p) == 5 for q, per_q in enumerate(out.picks) if q != 7 for p in per_q)


def test_a_query_with_fewer_eligible_than_asked_is_short() -> None:
    indices = np.array([[0, 1, 2, 3, 4, 5]])
    cheap = apply_rules(indices, [[0]], 0, 100)
    table = np.array([[1.0, 0.2, 0.99, 0.3, 0.98, 0.1]], np.float32)
    out = select(indices, cheap, [[0]], sampling_orders([np.arange(1, 6)], [1], "top", 0), 4,
                      TableScorer(table), ScoreRules(absolute_margin=0.05))
    assert out.picks[0][0].tolist() == [1, 3, 5]
    assert out.reasons[0].tolist() == [filters.POSITIVE, KEPT, filters.ABSOLUTE_MARGIN, KEPT,
                                       filters.ABSOLUTE_MARGIN, KEPT]


# --- (d) several positives -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("how, expected", [("min", 0.2), ("mean", 0.5), ("max", 0.8)])
def test_margins_from_the_chosen_positive(how: str, expected: float) -> None:
    # positives 0, 1, 2 score 0.8, 0.2, 0.5; candidates 3..8 score 0.1 .. 0.7
    indices = np.array([[0, 3, 1, 4, 5, 2, 6, 7, 8]])
    table = np.array([[0.8, 0.2, 0.5, 0.1, 0.25, 0.45, 0.55, 0.7, 0.15]], np.float32)
    positives = [[0, 1, 2]]
    cheap = apply_rules(indices, positives, 0, 100)
    orders = sampling_orders([np.flatnonzero(cheap[0] == KEPT)], [3], "top", 0)
    out = select(indices, cheap, positives, orders, 6, TableScorer(table), ScoreRules(absolute_margin=0.0,
                                                                                           margin_reference=how))
    assert out.reference[0] == pytest.approx(expected)
    np.testing.assert_allclose(out.positive_scores[0], [0.8, 0.2, 0.5])
    kept_docs = sorted(indices[0, out.picks[0][0]].tolist())
    assert kept_docs == sorted(d for d in (3, 4, 5, 6, 7, 8) if table[0, d] <= np.float32(expected))
    # every positive of a query gets the same picks with the top strategy
    assert all(np.array_equal(out.picks[0][0], p) for p in out.picks[0])


def test_default_reference_is_the_lowest_positive() -> None:
    assert ScoreRules().margin_reference == "min"
    problem = Problem(6)
    out, _ = problem.select("top", ScoreRules(relative_margin=0.1))
    for q, pos in enumerate(problem.positives):
        assert out.reference[q] == pytest.approx(float(problem.table[q, pos].min()))
        np.testing.assert_array_equal(out.positive_scores[q], problem.table[q, pos])


# --- (e) counts ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("score_all", [False, True])
def test_pairs_scored_counts(score_all: bool) -> None:
    problem = Problem(8)
    out, scorer = problem.select("random", ScoreRules(relative_margin=0.05), score_all=score_all)
    n_pos = sum(len(p) for p in problem.positives)
    assert out.positive_pairs_scored == n_pos
    assert len(scorer.pairs) == out.pairs_scored + n_pos
    assert out.pairs_scored == int((~np.isnan(out.scores)).sum())
    # the positives are scored first, in one batch
    assert scorer.calls[0] == [(q, d) for q, pos in enumerate(problem.positives) for d in pos]


def test_near_duplicate_alone_scores_nothing() -> None:
    problem = Problem(9)
    vectors = FakeVectors(problem.vectors)
    rules = ScoreRules(max_positive_similarity=0.5)
    assert registry.score_rules_on(rules) and not registry.need_scores(rules)
    out, scorer = problem.select("top", rules, vectors=vectors)
    assert scorer.calls == []
    assert out.positive_pairs_scored == 0
    assert np.isnan(out.reference).all()
    assert np.isnan(out.scores).all()
    assert vectors.asked > 0
    # the walk stops early: cells it never reached are NOT_SCORED
    assert (out.reasons == NOT_SCORED).sum() > 0
    assert (out.reasons == filters.NEAR_DUPLICATE).sum() > 0
    _, want_picks = problem.oracle("top", rules, vectors=vectors)
    assert same_picks(out.picks, want_picks)


# --- (f) NOT_SCORED --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("strategy", ["top", "random"])
def test_not_scored_cells_are_exactly_the_unscored_cheap_kept_cells(strategy: str) -> None:
    problem = Problem(10)
    out, scorer = problem.select(strategy, RULE_SETS["absolute+limits"])
    unscored = np.isnan(out.scores)
    assert np.array_equal(out.reasons == NOT_SCORED, (problem.cheap == KEPT) & unscored)
    assert (out.reasons == NOT_SCORED).sum() > 0
    asked = set(scorer.pairs[sum(len(p) for p in problem.positives):])
    for q, r in zip(*np.nonzero(~unscored)):
        assert (int(q), int(problem.indices[q, r])) in asked
    full, _ = problem.select(strategy, RULE_SETS["absolute+limits"], score_all=True)
    assert NOT_SCORED not in full.reasons.ravel().tolist()


def test_bi_encoder_scores_do_not_depend_on_how_many_pairs_are_gathered_at_once(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Pairs are scored a bounded number at a time (memory); the scores are the same bytes in chunks or whole."""
    from negmine.judges import vectors as score

    rng = np.random.default_rng(0)
    docs = rng.normal(size=(50, 16)).astype(np.float32)
    queries = rng.normal(size=(7, 16)).astype(np.float32)

    class Dense:
        query_vectors, doc_vectors, encoder = queries, docs, None

    q, d = rng.integers(0, 7, 300), rng.integers(0, 50, 300)
    positives = [[1, 2], [3], [4, 5, 6], [7], [8], [9, 10], [11]]
    whole = score.BiEncoderScorer(score.Vectors(Dense(), [], [])).score(q, d)
    near = score.PositiveCosines(score.Vectors(Dense(), [], []), positives).similarity.score(q, d)
    monkeypatch.setattr(score, "SCORE_PAIRS", 7)
    assert score.BiEncoderScorer(score.Vectors(Dense(), [], [])).score(q, d).tobytes() == whole.tobytes()
    assert score.PositiveCosines(score.Vectors(Dense(), [], []), positives).similarity.score(q, d).tobytes() == \
        near.tobytes()
    expected = np.array([max(float(docs[p] @ docs[j]) for p in positives[i]) for i, j in zip(q, d)], np.float32)
    assert np.allclose(near, expected, atol=1e-6)


def test_positive_proximity_is_the_largest_gain_over_the_query_per_positive() -> None:
    """max over the positives p of cos(d, p) - cos(q, p): per positive, not the closest positive's cosine minus
    another positive's; in chunks or whole the same bytes."""
    from negmine.judges import vectors as score

    rng = np.random.default_rng(1)
    docs = rng.normal(size=(30, 8)).astype(np.float32)
    queries = rng.normal(size=(4, 8)).astype(np.float32)
    docs /= np.linalg.norm(docs, axis=1, keepdims=True)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)

    class Dense:
        query_vectors, doc_vectors, encoder = queries, docs, None

    positives = [[0, 1], [2], [3, 4, 5], [6]]
    q, d = rng.integers(0, 4, 200), rng.integers(7, 30, 200)
    got = score.PositiveCosines(score.Vectors(Dense(), [], []), positives).proximity.score(q, d)
    expected = np.array([max(float(docs[p] @ docs[j]) - float(queries[i] @ docs[p]) for p in positives[i])
                         for i, j in zip(q, d)], np.float32)
    assert np.allclose(got, expected, atol=1e-6)
    # a positive's own proximity is 1 - cos(query, positive): it is nearer itself than the query is
    own = score.PositiveCosines(score.Vectors(Dense(), [], []), positives).proximity.score(np.array([1]),
                                                                                         np.array([2]))
    assert np.isclose(own[0], 1 - float(queries[1] @ docs[2]), atol=1e-6)
