"""Evidence beyond the judge's score: twin queries' positives, lexical overlap with the positive, agreement of
BM25 and the bi-encoder, the percentile gate calibrated on the run's positives, and why queries starve."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rulekit as evidence
import rulekit as filters
from fakes import FakeEncoder
from helpers import NO_SCORING_OPTIONS, assert_cli_error, mine_args, read_candidates

import negmine
from negmine.errors import ConfigError
from negmine.retrieve.bm25 import BM25Retriever
from negmine.settings.config import MineConfig

Cli = Callable[..., Any]
OFF = {"lexical_overlap": None, "agreement": False, "cross_query": None, "max_positive_similarity": None}


# --- pure rules ----------------------------------------------------------------------------------------------------

def test_twin_query_mask() -> None:
    sims = np.array([[np.inf, 0.97, 0.9, -np.inf]], dtype=np.float32)
    assert filters.twin_query_mask(sims, 0.95).tolist() == [[True, True, False, False]]


def test_lexical_overlap_mask() -> None:
    assert filters.lexical_overlap_mask(np.array([0.0, 0.1, 0.11, 1.0]), 0.1).tolist() == [False, False, True, True]


def test_agreement_needs_both_retrievers() -> None:
    bm25 = np.array([5.0, 5.0, 1.0, 1.0])
    cos = np.array([0.9, 0.1, 0.9, 0.1])
    assert filters.agreement_mask(bm25, 2.0, cos, 0.5).tolist() == [True, False, False, False]
    # equal to the positive is not above it
    assert filters.agreement_mask(np.array([2.0]), 2.0, np.array([0.9]), 0.5).tolist() == [False]


def test_percentile_gate_depends_only_on_the_order_of_scores() -> None:
    rng = np.random.default_rng(0)
    positives = rng.normal(2.0, 1.0, 500)
    candidates = rng.normal(0.0, 2.0, 300)
    reference = rng.choice(positives, 300)

    def gate(f: Callable[[np.ndarray], np.ndarray], **kw: Any) -> np.ndarray:
        return filters.percentile_gate_mask(f(candidates), f(reference), np.sort(f(positives)), **kw)

    for kw in ({"margin": 0.1}, {"margin": 0.2, "floor": 0.3, "cap": 0.8}, {"margin": None, "cap": 0.5}):
        logits = gate(lambda x: x, **kw)
        assert 0 < logits.sum() < len(candidates)
        assert np.array_equal(logits, gate(lambda x: 1 / (1 + np.exp(-x)), **kw))  # probabilities
        assert np.array_equal(logits, gate(lambda x: 10 * x - 3, **kw))  # another scale


def test_percentile_gate_floor_and_cap() -> None:
    calibration = np.arange(1, 101, dtype=np.float64)  # F(x) = x / 100
    scores = np.array([20.0, 45.0, 85.0, 95.0])
    # a weak positive (its percentile 10): with the floor at 0.4 candidates up to the 40th percentile pass
    weak = filters.percentile_gate_mask(scores, 10.0, calibration, margin=0.05, floor=0.4)
    assert weak.tolist() == [False, True, True, True]
    # a strong positive (99): the cap at 0.9 still drops what scores above the 90th percentile of all positives
    strong = filters.percentile_gate_mask(scores, 99.0, calibration, margin=0.05, cap=0.9)
    assert strong.tolist() == [False, False, False, True]
    assert filters.percentile_gate_mask(scores, 99.0, calibration, margin=None, cap=0.5).tolist() == [
        False, False, True, True]


def test_evidence_rules_order_and_only_on_kept() -> None:
    reasons = np.array([[filters.KEPT, filters.KEPT, filters.KEPT, filters.POSITIVE]], dtype=np.int8)
    twin = np.array([[np.inf, -np.inf, -np.inf, np.inf]], dtype=np.float32)
    overlap = np.array([[0.9, 0.9, 0.0, 0.9]], dtype=np.float32)
    out = filters.evidence_rules(reasons, twin, 0.95, overlap, 0.1)
    assert out.tolist() == [[filters.CROSS_QUERY, filters.LEXICAL_OVERLAP, filters.KEPT, filters.POSITIVE]]
    assert filters.evidence_rules(reasons, twin, None, overlap, None).tolist() == reasons.tolist()


def test_dominant_drop_and_weak_positive() -> None:
    reasons = np.array([[filters.POSITIVE, filters.LEXICAL_OVERLAP, filters.LEXICAL_OVERLAP, filters.AGREEMENT],
                        [filters.POSITIVE, filters.KEPT, filters.NOT_SCORED, filters.KEPT]], dtype=np.int8)
    assert filters.dominant_drop(reasons).tolist() == [filters.LEXICAL_OVERLAP, -1]
    indices = np.array([[7, 1, 2, 3], [1, 2, 3, 7], [1, 2, -1, -1]])
    assert filters.weak_positive(indices, [[7], [7], [7]]).tolist() == [False, True, True]


# --- evidence from the retrievers ----------------------------------------------------------------------------------

def test_owners() -> None:
    owners = evidence.Owners.of([[3, 1], [1], [], [0]], 5)
    assert [sorted(owners.of_doc(d).tolist()) for d in range(5)] == [[3], [0, 1], [], [0], []]


def test_twin_similarity() -> None:
    owners = evidence.Owners.of([[10], [11], [12], [13]], 20)
    norm = ["how do cats purr", "how do cats purr", "why do cats purr", "dogs"]
    vecs = np.eye(4, dtype=np.float32)
    vecs[2] = [0.96, 0.28, 0, 0]  # query 2 is a paraphrase of query 0
    indices = np.array([[11, 12, 13, 10, -1]])
    sims = evidence.twin_similarity(indices, np.array([0]), owners, norm, lambda rows: vecs[rows])
    assert sims[0, 0] == np.inf  # the same text
    assert sims[0, 1] == pytest.approx(0.96)
    assert sims[0, 2] == pytest.approx(0.0)
    assert sims[0, 3] == -np.inf and sims[0, 4] == -np.inf  # its own positive; an empty slot
    # without vectors only equal texts count
    assert evidence.twin_similarity(indices, np.array([0]), owners, norm, None)[0, :3].tolist() == [
        np.inf, -np.inf, -np.inf]


def test_lexical_overlap_and_bm25_margin() -> None:
    texts = ["cats purr when happy and warm", "cats purr when happy and warm today", "dogs bark loudly at night",
             "a cat sleeps in the sun", "warm sun"]
    bm25 = BM25Retriever().index(texts)
    indices = np.array([[1, 2, 3, -1]])
    overlap = evidence.lexical_overlap(indices, [[0]], evidence.bm25_scorer(bm25, texts))
    assert overlap[0, 0] > 0.9 and overlap[0, 1] == 0.0 and 0 < overlap[0, 2] < 0.5 and overlap[0, 3] == 0
    scores, positive = evidence.bm25_scores(indices, [[0]], evidence.bm25_scorer(bm25, ["cats purr"]))
    margin = evidence.bm25_margin(scores, positive)
    assert margin[0, 0] < 0 < -margin[0, 1] and margin[0, 3] == -np.inf
    full = bm25.scores("cats purr")
    assert margin[0, 2] == pytest.approx(full[3] - full[0])


# --- the rules in a run ----------------------------------------------------------------------------------------

CORPUS = {
    "_id": [f"d{i}" for i in range(12)],
    "text": [
        "cats purr when they are happy and warm",              # d0 positive of q1
        "cats purr when they are happy and warm and fed",      # d1 repeats d0's wording: lexical overlap
        "a purring cat is a happy cat",                        # d2 positive of q2 (the same question as q1)
        "why cats purr: happiness, warmth and comfort",        # d3 closer to the query than d0 in both retrievers
        "dogs bark at the mail carrier",
        "goldfish live in a bowl",
        "parrots repeat words",
        "the weather is warm today",
        "a cat chases a mouse",
        "kittens play with string",
        "happy dogs wag their tails",
        "warm milk before bed",
    ],
}
QUERIES = {"_id": ["q1", "q2", "q3"], "text": ["why do cats purr", "Why do cats purr?", "dogs"]}
QRELS = {"query-id": ["q1", "q2", "q3"], "corpus-id": ["d0", "d2", "d4"], "score": [1, 1, 1]}


@pytest.fixture
def purr(make_parquet: Callable[..., Path]) -> dict[str, Path]:
    return {"corpus": make_parquet("corpus.parquet", CORPUS), "queries": make_parquet("queries.parquet", QUERIES),
            "qrels": make_parquet("qrels.parquet", QRELS)}


def statuses(path: Path) -> dict[tuple[str, str], str]:
    return {(c["query_id"], c["doc_id"]): c["status"] for c in read_candidates(path)}


def test_each_rule_drops_what_it_should(purr: dict[str, Path], out_dir: Path) -> None:
    cand = out_dir / "c.parquet"
    # the positives here are one short sentence: sharing "cats purr" is already 40% of one's wording
    result = negmine.mine(purr["corpus"], purr["queries"], purr["qrels"], output=out_dir / "o.parquet",
                          candidates_output=cand, num_negatives=2, max_positive_similarity=None,
                          positive_proximity=None, score_all=True, lexical_overlap=0.5)
    fate = statuses(cand)
    assert fate[("q1", "d2")] == fate[("q2", "d0")] == "cross_query"  # the twin query's positive
    assert fate[("q1", "d1")] == "lexical_overlap"
    assert fate[("q1", "d3")] == "agreement"
    dropped = result.stats.dropped
    assert dropped["cross_query"] == 2 and dropped["lexical_overlap"] >= 1 and dropped["agreement"] >= 1
    # the same run with each rule off keeps what that rule dropped
    for option, value, pair in (("cross_query", None, ("q1", "d2")), ("lexical_overlap", None, ("q1", "d1")),
                                ("agreement", False, ("q1", "d3"))):
        off = out_dir / f"off-{option}.parquet"
        negmine.mine(purr["corpus"], purr["queries"], purr["qrels"], candidates_output=off, num_negatives=2,
                     max_positive_similarity=None, positive_proximity=None, score_all=True,
                     **{"lexical_overlap": 0.5, option: value})
        assert statuses(off)[pair] in ("selected", "kept"), option


def test_the_cross_query_rule_reads_query_vectors(purr: dict[str, Path], out_dir: Path,
                                                  make_parquet: Callable[..., Path]) -> None:
    """A paraphrase is a twin when the two queries' cosine reaches --cross-query."""
    queries = make_parquet("q2.parquet", {"_id": ["q1", "q2", "q3"], "text": ["why do cats purr",
                                                                              "why do cats purr so much", "dogs"]})
    fake = FakeEncoder()
    cos = float(fake.vector("why do cats purr") @ fake.vector("why do cats purr so much"))
    for threshold, expected in ((cos - 0.01, "cross_query"), (cos + 0.01, None)):
        cand = out_dir / f"c{threshold}.parquet"
        negmine.mine(purr["corpus"], queries, purr["qrels"], candidates_output=cand, num_negatives=2,
                     max_positive_similarity=None, positive_proximity=None, score_all=True, cross_query=threshold,
                     lexical_overlap=None, agreement=False)
        status = statuses(cand).get(("q1", "d2"))
        assert (status == "cross_query") == (expected == "cross_query"), (threshold, status)


def test_rules_off_give_the_retrievers_own_picks(purr: dict[str, Path]) -> None:
    on = negmine.mine(purr["corpus"], purr["queries"], purr["qrels"], num_negatives=2, retriever="bm25",
                      lexical_overlap=0.5).table
    off = negmine.mine(purr["corpus"], purr["queries"], purr["qrels"], num_negatives=2, **NO_SCORING_OPTIONS).table
    assert on.column("negative_id").to_pylist() != off.column("negative_id").to_pylist()


def test_percentile_gate_in_a_run(tiny: dict[str, Path], out_dir: Path) -> None:
    cand = out_dir / "c.parquet"
    result = negmine.mine(tiny["corpus"], tiny["queries"], tiny["qrels"], candidates_output=cand,
                          percentile_margin=0.0, percentile_floor=0.2, **OFF)
    assert result.stats.dropped["percentile_gate"] > 0 and result.stats.pairs_scored > 0
    cap = negmine.mine(tiny["corpus"], tiny["queries"], tiny["qrels"], percentile_cap=0.3, **OFF).stats
    assert cap.dropped["percentile_gate"] > 0
    assert negmine.mine(tiny["corpus"], tiny["queries"], tiny["qrels"], **OFF).stats.dropped["percentile_gate"] == 0


def test_why_queries_starve(cli: Cli, tiny: dict[str, Path], out_dir: Path) -> None:
    result = cli(*mine_args(tiny, out_dir / "o.parquet", "--retriever", "dense", "--lexical-overlap", "0.001",
                            "--range-max", "8", scoring=True))
    assert result.exit_code == 0, result.stderr
    assert "why short" in result.stderr
    stats = negmine.read_metadata(out_dir / "o.parquet")["stats"]
    assert max(stats["short_by_rule"], key=stats["short_by_rule"].get) == "lexical_overlap"
    assert sum(stats["short_by_rule"].values()) == stats["short_queries"]
    from negmine.report.stats import MineStats
    from negmine.report.summary import starvation

    why = starvation(MineStats(**stats))
    assert "lexical overlap rule dropped most candidates: raise --lexical-overlap (or none)" in why
    # enough served: no explanation (the fake's crude cosines put many candidates nearer the positive than the
    # query: that rule off)
    fine = cli(*mine_args(tiny, out_dir / "p.parquet", "--retriever", "dense", "--positive-proximity", "none",
                          scoring=True))
    assert "why short" not in fine.stderr


@pytest.mark.parametrize(("args", "needle"), [
    (("--lexical-overlap", "-0.1"), "--lexical-overlap"),
    (("--cross-query", "1.5"), "--cross-query"),
    (("--percentile-margin", "2"), "--percentile-margin"),
    (("--percentile-floor", "0.9", "--percentile-cap", "0.5", "--percentile-margin", "0.1"), "--percentile-floor"),
])
def test_bad_rule_values(cli: Cli, tiny: dict[str, Path], out_dir: Path, args: tuple, needle: str) -> None:
    out = out_dir / "o.parquet"
    assert_cli_error(cli(*mine_args(tiny, out, *args)), 2, [needle], out)


def test_rule_options_round_trip_through_the_config() -> None:
    config = MineConfig(lexical_overlap=None, agreement=False, cross_query=0.9, percentile_margin=0.1,
                        percentile_floor=0.2, percentile_cap=0.95)
    assert config.replace().to_dict() == config.to_dict()
    with pytest.raises(ConfigError, match="--percentile-cap"):
        MineConfig(percentile_cap=1.5)
