"""negmine.filters score rules (margins, score limits, near-duplicates, rule order, ties, duplicate text) and the
``mine`` command's score-filter options, checked against the FakeEncoder's cosines."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
import rulekit as filters
from fakes import FakeEncoder
from helpers import assert_cli_error, read_candidates, read_table
from rulekit import (
    ABSOLUTE_MARGIN,
    DUPLICATE_CANDIDATE,
    DUPLICATE_TEXT,
    KEPT,
    MAX_SCORE,
    MIN_SCORE,
    NEAR_DUPLICATE,
    NO_CANDIDATE,
    POSITIVE,
    RANK_WINDOW,
    RELATIVE_MARGIN,
    apply_rules,
    count_reasons,
    margin_reference,
    score_rules,
)

from negmine.errors import ConfigError
from negmine.output.provenance import read_metadata
from negmine.rules.duplicates import normalize_text
from negmine.settings.config import MineConfig

Cli = Callable[..., Any]


def codes(scores: list[float], reference: float = 0.0, **rules: Any) -> list[int]:
    return score_rules(np.asarray(scores, dtype=np.float64), reference, **rules).tolist()


# --- score_rules: each rule ----------------------------------------------------------------------------------------

def test_no_rule_keeps_everything() -> None:
    out = score_rules(np.array([5.0, -5.0, 0.0]), 1.0)
    assert out.tolist() == [KEPT] * 3
    assert out.dtype == np.int8


def test_absolute_margin_drops_iff_above_positive_minus_margin() -> None:
    # reference 1.0, M 0.25: threshold 0.75; a score equal to the threshold is kept (the rule is strictly greater)
    assert codes([0.9, 0.76, 0.75, 0.74, -3.0, 1.0, 2.0], 1.0, absolute_margin=0.25) == [
        ABSOLUTE_MARGIN, ABSOLUTE_MARGIN, KEPT, KEPT, KEPT, ABSOLUTE_MARGIN, ABSOLUTE_MARGIN]


def test_absolute_margin_with_a_negative_reference() -> None:
    # reference -2.0, M 0.5: threshold -2.5
    assert codes([-2.4, -2.5, -2.6], -2.0, absolute_margin=0.5) == [ABSOLUTE_MARGIN, KEPT, KEPT]


def test_absolute_margin_zero_drops_only_scores_above_the_positive() -> None:
    assert codes([1.0, 1.0001, 0.9999], 1.0, absolute_margin=0.0) == [KEPT, ABSOLUTE_MARGIN, KEPT]


def test_relative_margin_positive_reference() -> None:
    # pos 2.0, R 0.1: threshold 2.0 - 0.2 = 1.8 (kept at equality)
    assert codes([1.9, 1.81, 1.8, 1.79, 0.0], 2.0, relative_margin=0.1) == [
        RELATIVE_MARGIN, RELATIVE_MARGIN, KEPT, KEPT, KEPT]


def test_relative_margin_is_sign_safe_for_negative_logits() -> None:
    # pos -2.0, R 0.1: threshold -2.0 - |-2.0| * 0.1 = -2.2. The naive pos * (1 - R) = -1.8 would keep -1.9 and
    # -2.1 although they score within 10% of the positive.
    assert codes([-2.1, -2.3, -1.9, -2.2, -2.2001], -2.0, relative_margin=0.1) == [
        RELATIVE_MARGIN, KEPT, RELATIVE_MARGIN, KEPT, KEPT]
    naive = -2.0 * (1 - 0.1)
    assert not -2.1 > naive  # the naive threshold would have kept it


def test_relative_margin_zero_reference_and_zero_margin() -> None:
    assert codes([0.0, 1e-6, -1e-6], 0.0, relative_margin=0.5) == [KEPT, RELATIVE_MARGIN, KEPT]
    assert codes([3.0, 3.01, 2.99], 3.0, relative_margin=0.0) == [KEPT, RELATIVE_MARGIN, KEPT]


def test_max_score_and_min_score_are_strict() -> None:
    assert codes([0.5, 0.50001, 0.2], max_score=0.5) == [KEPT, MAX_SCORE, KEPT]
    assert codes([0.1, 0.09999, 0.2], min_score=0.1) == [KEPT, MIN_SCORE, KEPT]
    assert codes([-1.0, 0.0, 1.0, 2.0], min_score=0.0, max_score=1.0) == [MIN_SCORE, KEPT, KEPT, MAX_SCORE]


def test_near_duplicate_by_positive_similarity() -> None:
    sims = np.array([0.99, 0.98, 0.5, 0.981])
    out = score_rules(np.zeros(4), 0.0, positive_similarity=sims, max_positive_similarity=0.98)
    assert out.tolist() == [NEAR_DUPLICATE, KEPT, KEPT, NEAR_DUPLICATE]
    # without similarities, or without a limit, the rule is off
    assert score_rules(np.zeros(4), 0.0, max_positive_similarity=0.98).tolist() == [KEPT] * 4
    assert score_rules(np.zeros(4), 0.0, positive_similarity=sims).tolist() == [KEPT] * 4


def test_ties_at_every_threshold_are_kept() -> None:
    out = score_rules(np.array([0.5, 0.5]), 1.0, positive_similarity=np.array([0.9, 0.9]),
                      max_positive_similarity=0.9, max_score=0.5, min_score=0.5, absolute_margin=0.5,
                      relative_margin=0.5)
    assert out.tolist() == [KEPT, KEPT]


# --- score_rules: order ----------------------------------------------------------------------------------------------

def test_rule_order_first_rule_wins() -> None:
    # Every candidate below hits several rules; the code is the first rule in the documented order:
    # near_duplicate, max_score, min_score, absolute_margin, relative_margin.
    everything = dict(max_positive_similarity=0.5, max_score=0.0, min_score=10.0, absolute_margin=0.1,
                      relative_margin=0.1)
    scores = np.array([5.0, 5.0, 5.0, 5.0, 5.0])
    sims = np.array([0.9, 0.1, 0.1, 0.1, 0.1])
    # near-duplicate beats everything; max_score (5 > 0) beats min_score (5 < 10) and the margins
    out = score_rules(scores, 1.0, positive_similarity=sims, **everything)
    assert out.tolist() == [NEAR_DUPLICATE, MAX_SCORE, MAX_SCORE, MAX_SCORE, MAX_SCORE]
    # min_score before the margins (0.95 < 0.99, and above both margin thresholds 0.5)
    out = score_rules(np.array([0.95]), 1.0, min_score=0.99, absolute_margin=0.5, relative_margin=0.5)
    assert out.tolist() == [MIN_SCORE]
    # absolute before relative (0.995 is above both thresholds 0.99)
    out = score_rules(np.array([0.995]), 1.0, absolute_margin=0.01, relative_margin=0.01)
    assert out.tolist() == [ABSOLUTE_MARGIN]
    # each margin alone
    out = score_rules(np.array([0.95]), 1.0, absolute_margin=0.01, relative_margin=0.1)   # 0.99 / 0.9
    assert out.tolist() == [RELATIVE_MARGIN]
    out = score_rules(np.array([0.95]), 1.0, absolute_margin=0.1, relative_margin=0.01)   # 0.9 / 0.99
    assert out.tolist() == [ABSOLUTE_MARGIN]
    out = score_rules(np.array([0.85]), 1.0, absolute_margin=0.1, relative_margin=0.1)    # below both
    assert out.tolist() == [KEPT]


def test_rule_order_mixed_row() -> None:
    scores = np.array([0.99, 0.9, 0.05, 0.85, 0.78, 0.3])
    sims = np.array([0.1, 0.1, 0.1, 0.1, 0.1, 0.99])
    out = score_rules(scores, 1.0, positive_similarity=sims, max_positive_similarity=0.95, max_score=0.95,
                      min_score=0.1, absolute_margin=0.12, relative_margin=0.2)
    # 0.99 > max; 0.9 > 1 - 0.12; 0.05 < min; 0.85 > 0.88? no, > 0.8 -> relative; 0.78 kept; sim 0.99 -> near dup
    assert out.tolist() == [MAX_SCORE, ABSOLUTE_MARGIN, MIN_SCORE, RELATIVE_MARGIN, KEPT, NEAR_DUPLICATE]


# --- margin reference --------------------------------------------------------------------------------------------

def test_margin_reference_min_mean_max() -> None:
    pos = np.array([0.2, 0.8, 0.5], dtype=np.float32)
    assert margin_reference(pos, "min") == pytest.approx(0.2)
    assert margin_reference(pos, "max") == pytest.approx(0.8)
    assert margin_reference(pos, "mean") == pytest.approx(0.5)
    assert isinstance(margin_reference(pos, "mean"), float)
    one = np.array([-1.5])
    assert margin_reference(one, "min") == margin_reference(one, "max") == margin_reference(one, "mean") == -1.5


def test_margin_reference_changes_what_the_margin_drops() -> None:
    pos = np.array([0.4, 1.0])
    negs = np.array([0.35, 0.6, 0.95])
    by = {how: score_rules(negs, margin_reference(pos, how), absolute_margin=0.05).tolist()
          for how in ("min", "mean", "max")}
    assert by["min"] == [KEPT, ABSOLUTE_MARGIN, ABSOLUTE_MARGIN]        # threshold 0.35
    assert by["mean"] == [KEPT, KEPT, ABSOLUTE_MARGIN]                  # threshold 0.65
    assert by["max"] == [KEPT, KEPT, KEPT]                              # threshold 0.95


# --- duplicate text ------------------------------------------------------------------------------------------------

def test_normalize_text() -> None:
    assert normalize_text("Hello,   World!") == "hello world"
    assert normalize_text("  hello world  ") == "hello world"
    assert normalize_text("HELLO\tWORLD\n") == "hello world"
    assert normalize_text("hello_world--again") == "hello world again"
    assert normalize_text("ＨＥＬＬＯ ｗｏｒｌｄ") == "hello world"   # full-width forms (NFKC)
    assert normalize_text("ﬁne") == "fine"                            # ligature (NFKC)
    assert normalize_text("Café") == normalize_text("Cafe\u0301")     # composed vs decomposed accents
    assert normalize_text("90 degrees") != normalize_text("96 degrees")
    assert normalize_text("!!!") == ""


def test_duplicate_text_rule_drops_variants_of_a_positive() -> None:
    texts = {
        0: "The cat sat on the mat.",
        1: "the CAT   sat on the mat",           # case and spacing
        2: "The cat, sat; on the mat!!",          # punctuation
        3: "The cat sat on the hat.",             # a different text
        4: "The dog sat on the mat.",
        5: "THE DOG SAT ON THE MAT",              # variant of 4, which is not a positive of query 0
    }
    normalized = {d: normalize_text(t) for d, t in texts.items()}
    indices = np.array([[1, 0, 2, 3, 5, -1], [1, 4, 5, 0, 2, 3]])
    reasons = apply_rules(indices, [[0], [4]], 0, 10, normalized)
    assert reasons[0].tolist() == [DUPLICATE_TEXT, POSITIVE, DUPLICATE_TEXT, KEPT, KEPT, NO_CANDIDATE]
    # query 1: documents 0 and 2 repeat the text of document 1, a better-ranked candidate (not a positive)
    assert reasons[1].tolist() == [KEPT, POSITIVE, DUPLICATE_TEXT, DUPLICATE_CANDIDATE, DUPLICATE_CANDIDATE, KEPT]
    # without normalised texts the rules are off
    plain = apply_rules(indices, [[0], [4]], 0, 10).ravel().tolist()
    assert DUPLICATE_TEXT not in plain and DUPLICATE_CANDIDATE not in plain


def test_a_copy_of_a_skipped_candidate_is_a_repeat() -> None:
    """range_min skips the best candidates as likely false negatives: their copies further down are dropped too."""
    normalized = {0: "p", 1: "x", 2: "x", 3: "y", 4: "x"}
    reasons = apply_rules(np.array([[0, 1, 3, 2, 4]]), [[0]], 1, 10, normalized)
    assert reasons.tolist() == [[POSITIVE, RANK_WINDOW, KEPT, DUPLICATE_CANDIDATE, DUPLICATE_CANDIDATE]]


def test_duplicate_text_does_not_override_earlier_rules() -> None:
    normalized = {0: "a b", 1: "a b", 2: "a b", 3: "c"}
    # 1 and 2 duplicate positive 0; 2 is also outside the window (ranks count duplicates as non-positives)
    reasons = apply_rules(np.array([[0, 1, 3, 2]]), [[0]], 0, 2, normalized)
    assert reasons.tolist() == [[POSITIVE, DUPLICATE_TEXT, KEPT, RANK_WINDOW]]


def test_count_reasons_lists_every_drop_rule() -> None:
    reasons = np.array([[KEPT, POSITIVE, RANK_WINDOW, DUPLICATE_TEXT, DUPLICATE_CANDIDATE, filters.CROSS_QUERY,
                         filters.LEXICAL_OVERLAP, NEAR_DUPLICATE, filters.POSITIVE_PROXIMITY, filters.AGREEMENT,
                         MAX_SCORE, MIN_SCORE, ABSOLUTE_MARGIN, RELATIVE_MARGIN, RELATIVE_MARGIN,
                         filters.PERCENTILE_GATE, NO_CANDIDATE, filters.NOT_SCORED]], dtype=np.int8)
    counts = count_reasons(reasons)
    assert list(counts) == ["positive", "rank_window", "duplicate_text", "duplicate_candidate", "cross_query",
                            "lexical_overlap", "near_duplicate", "positive_proximity", "agreement", "max_score",
                            "min_score", "absolute_margin", "relative_margin", "percentile_gate"]
    assert counts == {"positive": 1, "rank_window": 1, "duplicate_text": 1, "duplicate_candidate": 1,
                      "cross_query": 1, "lexical_overlap": 1, "near_duplicate": 1, "positive_proximity": 1,
                      "agreement": 1, "max_score": 1, "min_score": 1, "absolute_margin": 1, "relative_margin": 2,
                      "percentile_gate": 1}
    assert list(count_reasons(np.zeros((0, 3), np.int8)).values()) == [0] * 14


def test_positive_proximity_is_strict_and_after_near_duplicates() -> None:
    near = np.array([0.05, 0.02, 0.021, -0.3])
    out = score_rules(np.zeros(4), 0.0, proximity=near, positive_proximity=0.02)
    assert out.tolist() == [filters.POSITIVE_PROXIMITY, KEPT, filters.POSITIVE_PROXIMITY, KEPT]
    # off without values or without a margin
    assert score_rules(np.zeros(4), 0.0, positive_proximity=0.02).tolist() == [KEPT] * 4
    assert score_rules(np.zeros(4), 0.0, proximity=near).tolist() == [KEPT] * 4
    # a near-duplicate is counted as one; the proximity rule comes before agreement and the score rules
    out = score_rules(np.array([0.9, 0.9, 0.9]), 1.0, positive_similarity=np.array([0.99, 0.5, 0.5]),
                      max_positive_similarity=0.98, proximity=np.array([0.5, 0.5, -1.0]), positive_proximity=0.0,
                      agreement=np.array([True, True, True]), max_score=0.5)
    assert out.tolist() == [NEAR_DUPLICATE, filters.POSITIVE_PROXIMITY, filters.AGREEMENT]


# --- the CLI options, with the FakeEncoder as the bi-encoder scorer ---------------------------------------------

FAKE = FakeEncoder()


def fake_cos(a: str, b: str) -> float:
    """The bi-encoder score negmine gives a (query, document) pair: queries and documents have the prompt ''."""
    return float(FAKE.vector(a) @ FAKE.vector(b))


@pytest.fixture(scope="module")
def tiny_data() -> dict[str, Any]:
    from helpers import TINY

    corpus = pq.read_table(TINY / "corpus.parquet").to_pylist()
    queries = pq.read_table(TINY / "queries.parquet").to_pylist()
    qrels = pq.read_table(TINY / "qrels.parquet").to_pylist()
    doc_text = {d["_id"]: f"{d['title']} {d['text']}".strip() for d in corpus}
    query_text = {q["_id"]: q["text"] for q in queries}
    positives: dict[str, list[str]] = {}
    for r in qrels:
        if r["score"] > 0:
            positives.setdefault(r["query-id"], []).append(r["corpus-id"])
    pos_scores = {q: [fake_cos(query_text[q], doc_text[d]) for d in ds] for q, ds in positives.items()}
    return {"doc_text": doc_text, "query_text": query_text, "positives": positives, "pos_scores": pos_scores}


#: The score rules under test, alone: the model-free evidence rules and agreement off, and a relative margin of
#: 0.15 (each test's own flags come after these, and win).
SCORE_RULES_ONLY = ("--retriever", "bm25", "-q", "--relative-margin", "0.15", "--lexical-overlap", "none",
                    "--no-agreement", "--cross-query", "none", "--positive-proximity", "none")


def run(cli: Cli, tiny: dict[str, Path], out: Path, *extra: Any) -> Any:
    result = cli("mine", "--corpus", tiny["corpus"], "--queries", tiny["queries"], "--qrels", tiny["qrels"],
                 "--output", out, *SCORE_RULES_ONLY, *extra)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == str(out)
    return read_table(out)


def test_output_scores_are_the_fake_bi_encoder_cosines(cli: Cli, tiny: dict[str, Path], out_dir: Path,
                                                        tiny_data: dict[str, Any]) -> None:
    table = run(cli, tiny, out_dir / "o.parquet", "--output-scores", "-n", "3")
    rows = table.to_pylist()
    assert len(rows) > 60
    for r in rows:
        assert r["negative_score"] == pytest.approx(fake_cos(r["anchor"], r["negative"]), abs=1e-5)
        assert r["positive_score"] == pytest.approx(fake_cos(r["anchor"], r["positive"]), abs=1e-5)
        assert r["negative"] == tiny_data["doc_text"][r["negative_id"]]  # the title is joined before the text


@pytest.mark.parametrize("how", ["min", "mean", "max"])
def test_absolute_margin_and_margin_reference(cli: Cli, tiny: dict[str, Path], out_dir: Path,
                                              tiny_data: dict[str, Any], how: str) -> None:
    out, cand = out_dir / "o.parquet", out_dir / "c.parquet"
    margin = 0.1
    table = run(cli, tiny, out, "--output-scores", "--absolute-margin", margin, "--relative-margin", "none",
                "--max-positive-similarity", "none", "--positive-proximity", "none", "--margin-reference", how,
                "--candidates-output", cand)
    ref = {q: float(getattr(np, how)(s)) for q, s in tiny_data["pos_scores"].items()}
    for r in table.to_pylist():
        assert r["negative_score"] <= ref[r["query_id"]] - margin + 1e-5
    candidates = read_candidates(cand)
    dropped = [c for c in candidates if c["status"] == "absolute_margin"]
    assert dropped, "the margin should drop something on the tiny set"
    for c in candidates:
        assert c["positive_score"] == pytest.approx(ref[c["query_id"]], abs=1e-5)
        if c["reranker_score"] is None:
            continue
        hit = c["reranker_score"] > c["positive_score"] - margin
        assert (c["status"] == "absolute_margin") == hit, c
    meta = read_metadata(out)["config"]
    assert (meta["absolute_margin"], meta["relative_margin"], meta["margin_reference"]) == (margin, None, how)


def test_positive_proximity_in_a_run(cli: Cli, tiny: dict[str, Path], out_dir: Path,
                                     tiny_data: dict[str, Any]) -> None:
    """--positive-proximity M drops exactly the candidates with max over the positives p of cos(c, p) - cos(q, p)
    above M (the fake bi-encoder's cosines), and its value is in the candidates file."""
    out, cand = out_dir / "o.parquet", out_dir / "c.parquet"
    margin = 0.05
    run(cli, tiny, out, "--relative-margin", "none", "--positive-proximity", margin, "--candidates-output", cand,
        "--score-all")
    docs, queries, positives = tiny_data["doc_text"], tiny_data["query_text"], tiny_data["positives"]
    rows = read_candidates(cand)
    dropped = 0
    for c in rows:
        if c["status"] == "positive":
            continue
        q, d = c["query_id"], c["doc_id"]
        expected = max(fake_cos(docs[d], docs[p]) - fake_cos(queries[q], docs[p]) for p in positives[q])
        assert c["positive_proximity"] == pytest.approx(expected, abs=1e-5), c
        if c["status"] in ("selected", "kept", "positive_proximity"):
            assert (c["status"] == "positive_proximity") == (expected > margin + 1e-6), c
            dropped += c["status"] == "positive_proximity"
    assert dropped == read_metadata(out)["stats"]["dropped"]["positive_proximity"] > 0
    # none: the rule is off and its value is not read
    run(cli, tiny, out, "--relative-margin", "none", "--max-score", "0.99", "--candidates-output", cand)
    assert "positive_proximity" not in pq.read_table(cand).column_names


def test_margin_reference_max_drops_at_least_as_much_as_min(cli: Cli, tiny: dict[str, Path],
                                                            out_dir: Path) -> None:
    dropped = {}
    for how in ("min", "max"):
        cand = out_dir / f"c-{how}.parquet"
        run(cli, tiny, out_dir / f"o-{how}.parquet", "--absolute-margin", "0.05", "--relative-margin", "none",
            "--margin-reference", how, "--candidates-output", cand, "--score-all")
        dropped[how] = {(c["query_id"], c["doc_id"]) for c in read_candidates(cand)
                        if c["status"] == "absolute_margin"}
    # a higher reference means a higher threshold: fewer drops, and only candidates min also drops
    assert dropped["max"] <= dropped["min"]
    assert len(dropped["max"]) < len(dropped["min"])


def test_relative_margin_option(cli: Cli, tiny: dict[str, Path], out_dir: Path, tiny_data: dict[str, Any]) -> None:
    out = out_dir / "o.parquet"
    table = run(cli, tiny, out, "--output-scores", "--relative-margin", "0.2", "--max-positive-similarity", "none",
                "--positive-proximity", "none")
    for r in table.to_pylist():
        ref = min(tiny_data["pos_scores"][r["query_id"]])
        assert r["negative_score"] <= ref - abs(ref) * 0.2 + 1e-5
    assert read_metadata(out)["config"]["relative_margin"] == 0.2


def test_max_and_min_score_options(cli: Cli, tiny: dict[str, Path], out_dir: Path) -> None:
    out, cand = out_dir / "o.parquet", out_dir / "c.parquet"
    table = run(cli, tiny, out, "--output-scores", "--max-score", "0.3", "--min-score", "0.1", "--relative-margin",
                "none", "--candidates-output", cand, "--score-all")
    scores = table.column("negative_score").to_pylist()
    assert scores and all(0.1 <= s <= 0.3 for s in scores)
    candidates = read_candidates(cand)
    by_status: dict[str, list[float]] = {}
    for c in candidates:
        by_status.setdefault(c["status"], []).append(c["reranker_score"])
    assert by_status["max_score"] and all(s > 0.3 for s in by_status["max_score"])
    assert by_status["min_score"] and all(s < 0.1 for s in by_status["min_score"])
    assert all(0.1 <= s <= 0.3 for s in by_status["selected"] + by_status.get("kept", []))


def test_max_positive_similarity_option(cli: Cli, tiny: dict[str, Path], out_dir: Path,
                                        tiny_data: dict[str, Any]) -> None:
    out, cand = out_dir / "o.parquet", out_dir / "c.parquet"
    limit = 0.3
    table = run(cli, tiny, out, "--max-positive-similarity", limit, "--relative-margin", "none",
                "--candidates-output", cand, "--score-all")
    doc_text, positives = tiny_data["doc_text"], tiny_data["positives"]

    def sim(q: str, d: str) -> float:
        return max(float(FAKE.vector(doc_text[d]) @ FAKE.vector(doc_text[p])) for p in positives[q])

    for r in table.to_pylist():
        assert sim(r["query_id"], r["negative_id"]) <= limit + 1e-5
    candidates = read_candidates(cand)
    near = [c for c in candidates if c["status"] == "near_duplicate"]
    assert near
    for c in candidates:
        if c["status"] in ("selected", "kept"):
            assert sim(c["query_id"], c["doc_id"]) <= limit + 1e-5, c
        elif c["status"] == "near_duplicate":
            assert sim(c["query_id"], c["doc_id"]) > limit - 1e-5, c
    # --score-all keeps each candidate's cosine to its positives (and the judge's scores, for negmine refilter);
    # no rule read the judge's scores, so the output's provenance names no reranker
    for c in candidates:
        if c["status"] != "positive":
            assert c["positive_similarity"] == pytest.approx(sim(c["query_id"], c["doc_id"]), abs=1e-5)
            assert c["reranker_score"] is not None
    assert read_metadata(out)["models"]["reranker"] is None


def test_score_all_gives_the_same_negatives(cli: Cli, tiny: dict[str, Path], out_dir: Path) -> None:
    lazy = run(cli, tiny, out_dir / "lazy.parquet", "--output-scores", "--sampling-strategy", "random")
    full = run(cli, tiny, out_dir / "full.parquet", "--output-scores", "--sampling-strategy", "random",
               "--score-all")
    assert lazy.replace_schema_metadata(None).equals(full.replace_schema_metadata(None))
    s_lazy = read_metadata(out_dir / "lazy.parquet")["stats"]
    s_full = read_metadata(out_dir / "full.parquet")["stats"]
    assert s_lazy["pairs_scored"] < s_full["pairs_scored"]
    assert s_full["not_scored"] == 0 < s_lazy["not_scored"]
    assert read_metadata(out_dir / "full.parquet")["config"]["score_all"] is True


@pytest.mark.parametrize("word", ["none", "None", "NONE", "off", ""])
def test_none_turns_an_optional_number_off(cli: Cli, tiny: dict[str, Path], out_dir: Path, word: str) -> None:
    out = out_dir / "o.parquet"
    run(cli, tiny, out, "--absolute-margin", word, "--relative-margin", word, "--max-score", word, "--min-score",
        word, "--max-positive-similarity", word)
    config = read_metadata(out)["config"]
    assert [config[k] for k in ("absolute_margin", "relative_margin", "max_score", "min_score",
                                "max_positive_similarity")] == [None] * 5
    stats = read_metadata(out)["stats"]
    assert stats["pairs_scored"] == stats["positive_pairs_scored"] == 0


def test_the_default_rules(cli: Cli, tiny: dict[str, Path], out_dir: Path) -> None:
    """Evidence beyond the judge's score by default; no relative margin when the bi-encoder judges itself."""
    out = out_dir / "o.parquet"
    result = cli("mine", "--corpus", tiny["corpus"], "--queries", tiny["queries"], "--qrels", tiny["qrels"],
                 "--output", out, "-q")
    assert result.exit_code == 0, result.stderr
    meta = read_metadata(out)
    config = meta["config"]
    assert (config["retriever"], config["relative_margin"], config["max_positive_similarity"],
            config["absolute_margin"], config["max_score"], config["min_score"], config["margin_reference"],
            config["lexical_overlap"], config["agreement"], config["cross_query"], config["percentile_margin"],
            config["percentile_floor"], config["percentile_cap"]) == (
        "dense", "auto", 0.98, None, None, None, "min", 0.1, True, 0.95, None, 0.0, 1.0)
    assert meta["resolved"]["relative_margin"] is None  # no --reranker: the bi-encoder judges itself, no margin
    dropped = meta["stats"]["dropped"]
    assert dropped["lexical_overlap"] > 0 and dropped["agreement"] > 0


def test_auto_relative_margin_depends_on_the_reranker() -> None:
    assert MineConfig().relative_margin_value is None
    assert MineConfig(reranker="some/cross-encoder").relative_margin_value == 0.05
    assert MineConfig().relative_margin_for("self") is None
    assert MineConfig().relative_margin_for("bi-encoder") == 0.05
    assert MineConfig().relative_margin_for("cross-encoder") == 0.05
    assert MineConfig(relative_margin=0.3, reranker="x").relative_margin_value == 0.3
    assert MineConfig(relative_margin=None).relative_margin_value is None
    with pytest.raises(ConfigError, match="--relative-margin"):
        MineConfig(relative_margin="sometimes")


@pytest.mark.parametrize("flag", ["--absolute-margin", "--relative-margin", "--max-score", "--min-score",
                                  "--max-positive-similarity"])
@pytest.mark.parametrize("value", ["abc", "1,5", "0.1.2"])
def test_non_numbers_exit_2_naming_the_flag(cli: Cli, tiny: dict[str, Path], out_dir: Path, flag: str,
                                            value: str) -> None:
    out = out_dir / "o.parquet"
    result = cli("mine", "--corpus", tiny["corpus"], "--queries", tiny["queries"], "--qrels", tiny["qrels"],
                 "--output", out, flag, value)
    assert_cli_error(result, 2, [flag, repr(value)], out)


@pytest.mark.parametrize("args, needles", [
    (("--min-score", "0.9", "--max-score", "0.1"), ["--min-score", "--max-score"]),
    (("--relative-margin", "-1"), ["--relative-margin", "-1"]),
    (("--relative-margin=-0.5",), ["--relative-margin"]),
    (("--margin-reference", "foo"), ["--margin-reference", "foo"]),
    (("--max-positive-similarity", "1.5"), ["--max-positive-similarity"]),
])
def test_bad_filter_values_exit_2(cli: Cli, tiny: dict[str, Path], out_dir: Path, args: tuple,
                                  needles: list[str]) -> None:
    out = out_dir / "o.parquet"
    result = cli("mine", "--corpus", tiny["corpus"], "--queries", tiny["queries"], "--qrels", tiny["qrels"],
                 "--output", out, *args)
    assert_cli_error(result, 2, needles, out)


@pytest.mark.parametrize("flag", ["--absolute-margin", "--relative-margin", "--max-score", "--min-score",
                                  "--max-positive-similarity"])
def test_nan_is_not_a_number(cli: Cli, tiny: dict[str, Path], out_dir: Path, flag: str) -> None:
    out = out_dir / "o.parquet"
    result = cli("mine", "--corpus", tiny["corpus"], "--queries", tiny["queries"], "--qrels", tiny["qrels"],
                 "--output", out, "--retriever", "bm25", flag, "nan")
    assert_cli_error(result, 2, [flag], out)


def test_equal_min_and_max_score_is_allowed(cli: Cli, tiny: dict[str, Path], out_dir: Path) -> None:
    out = out_dir / "o.parquet"
    run(cli, tiny, out, "--min-score", "0.2", "--max-score", "0.2", "-n", "1", "--allow-empty")
    table = read_table(out)
    # nothing on the tiny set scores exactly 0.2: every candidate is dropped and every query is short
    assert table.num_rows == 0
    stats = read_metadata(out)["stats"]
    assert stats["short_queries"] == 30
    assert stats["dropped"]["max_score"] + stats["dropped"]["min_score"] == stats["pairs_scored"] > 0


def test_filters_apply_to_every_output_format(cli: Cli, tiny: dict[str, Path], out_dir: Path,
                                              tiny_data: dict[str, Any]) -> None:
    for fmt in ("n-tuple", "labeled-list"):
        out = out_dir / f"{fmt}.parquet"
        table = run(cli, tiny, out, "--output-format", fmt, "--output-scores", "--max-score", "0.25", "-n", "2",
                    "--relative-margin", "none")
        assert table.num_rows > 0
        for r in table.to_pylist():
            scores = r["scores"]
            assert scores[0] == pytest.approx(fake_cos(r["anchor"], r["positive"] if fmt == "n-tuple"
                                                       else r["docs"][0]), abs=1e-5)
            assert all(s <= 0.25 for s in scores[1:])
