"""negmine evaluate: an output audited against fuller judgments, checked against figures computed by hand."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Callable

import pyarrow.parquet as pq
import pytest
from helpers import TINY

import negmine
from negmine.report.audit import evaluate, wilson


def test_wilson_interval_by_hand() -> None:
    # 3 of 10: p = 0.3, z = 1.96 -> centre (0.3 + 0.19208) / 1.38415 = 0.35544, half-width 0.24778
    low, high = wilson(3, 10)
    assert low == pytest.approx(0.10779, abs=1e-4) and high == pytest.approx(0.60322, abs=1e-4)
    assert wilson(0, 20)[0] == 0.0 and wilson(0, 20)[1] == pytest.approx(0.16113, abs=1e-4)
    assert wilson(5, 5)[1] == 1.0
    assert all(math.isnan(x) for x in wilson(0, 0))


@pytest.fixture
def judged(make_parquet: Callable[..., Path]) -> dict[str, Path]:
    """A hand-made output (two queries, six negatives), its candidates file and fuller qrels: q1's n2 and n3 and
    q2's n5 are judged relevant (3 of 6), and so are two of the candidates the rules dropped."""
    output = make_parquet("out.parquet", {
        "anchor": ["a1"] * 4 + ["a2"] * 2, "positive": ["p"] * 6, "negative": ["n"] * 6,
        "query_id": ["q1"] * 4 + ["q2"] * 2, "positive_id": ["p1"] * 4 + ["p2"] * 2,
        "negative_id": ["n1", "n2", "n3", "n4", "n5", "n6"]})
    candidates = make_parquet("cand.parquet", {
        "query_id": ["q1"] * 8 + ["q2"] * 5,
        "doc_id": ["p1", "n1", "n2", "n3", "n4", "x1", "x2", "p1", "p2", "n5", "n6", "x3", "p2"],
        "rank": [0, 1, 2, 3, 4, 5, 6, None, 0, 1, 2, 3, None],
        "reranker_score": [0.9, 0.8, 0.85, 0.5, 0.2, 0.95, 0.3, 0.9, 0.7, 0.6, 0.1, 0.75, 0.7],
        "status": ["positive", "selected", "selected", "selected", "selected", "relative_margin", "lexical_overlap",
                   "qrel", "positive", "selected", "selected", "relative_margin", "qrel"]})
    qrels = make_parquet("full.parquet", {
        "query-id": ["q1", "q1", "q1", "q1", "q2", "q2", "q2", "q2"],
        "corpus-id": ["p1", "n2", "n3", "x1", "p2", "n5", "x3", "n6"],
        "score": [1, 2, 1, 1, 1, 1, 1, 0]})  # n6 is judged, but not relevant
    return {"output": output, "candidates": candidates, "qrels": qrels}


def test_figures_against_hand_counts(judged: dict[str, Path]) -> None:
    ev = evaluate(judged["output"], judged["qrels"], candidates=judged["candidates"], bands=2)
    fn = ev.false_negatives
    assert (fn.n, fn.relevant, fn.rate) == (6, 3, 0.5)
    assert (fn.low, fn.high) == pytest.approx(wilson(3, 6))
    rules = {r.label: (r.n, r.relevant) for r in ev.by_rule}
    assert rules == {"selected": (6, 3), "relative_margin": (2, 2), "lexical_overlap": (1, 0)}
    assert [r.label for r in ev.by_rule][0] == "selected"
    # scores of the negatives: 0.8 0.85 0.5 0.2 0.6 0.1, relevant: n2 (0.85) n3 (0.5) n5 (0.6)
    # two bands split at the median: {0.1, 0.2, 0.5} has 1 relevant, {0.6, 0.8, 0.85} has 2
    assert [(b.n, b.relevant) for b in ev.by_score] == [(3, 1), (3, 2)]
    assert ev.by_score[0].detail["low_score"] == pytest.approx(0.1)
    # positives: q1's p1 scores 0.9 (4 negatives, 2 relevant), q2's p2 scores 0.7 (2 negatives, 1 relevant)
    assert {(b.n, b.relevant) for b in ev.by_positive} == {(2, 1), (4, 2)}
    assert ev.scorer.startswith("judge")


def test_without_candidates_or_scores(judged: dict[str, Path]) -> None:
    ev = evaluate(judged["output"], judged["qrels"])
    assert ev.false_negatives.rate == 0.5 and not ev.by_rule and not ev.by_score
    assert any("--candidates" in n for n in ev.notes)


def test_training_columns_are_refused(judged: dict[str, Path], make_parquet: Callable[..., Path]) -> None:
    bare = make_parquet("bare.parquet", {"anchor": ["a"], "positive": ["p"], "negative": ["n"]})
    with pytest.raises(negmine.InputError, match="bare.parquet: no 'query_id' column.*--columns all"):
        evaluate(bare, judged["qrels"])


@pytest.mark.parametrize("fmt", ["triplet", "n-tuple", "labeled-list"])
def test_a_mined_output_against_its_hidden_positives(tmp_path: Path, make_parquet: Callable[..., Path],
                                                     fmt: str) -> None:
    """Hide half of each query's positives from the miner: the written negatives among them are the false
    negatives, counted the same whatever the output format."""
    rows = [r for r in pq.read_table(TINY / "qrels.parquet").to_pylist() if r["score"] > 0]
    seen: set[str] = set()
    given = []
    for r in rows:
        if r["query-id"] not in seen:
            seen.add(r["query-id"])
            given.append(r)
    qrels = make_parquet("given.parquet", {k: [r[k] for r in given] for k in ("query-id", "corpus-id", "score")})
    out, cand = tmp_path / "o.parquet", tmp_path / "c.parquet"
    negmine.mine(TINY / "corpus.parquet", TINY / "queries.parquet", qrels, output=out, candidates_output=cand,
                 output_format=fmt, num_negatives=4, relative_margin=None, lexical_overlap=None, agreement=False,
                 max_positive_similarity=None, positive_proximity=None, cross_query=None, cache_dir=tmp_path / "cache",
                 output_scores=True)
    relevant = {(r["query-id"], r["corpus-id"]) for r in rows}
    written = negmine.read_metadata(out)["stats"]["negatives_written"]
    picks = [(c["query_id"], c["doc_id"]) for c in pq.read_table(cand).to_pylist() if c["status"] == "selected"]
    hand = sum(p in relevant for p in picks)
    ev = evaluate(out, TINY / "qrels.parquet", candidates=cand)
    assert ev.false_negatives.n == written
    assert ev.false_negatives.relevant == hand > 0
    assert ev.by_score and ev.by_positive


def test_evaluate_cli_and_report(cli: Any, judged: dict[str, Path], out_dir: Path) -> None:
    result = cli("evaluate", judged["output"], "--qrels", judged["qrels"], "--candidates", judged["candidates"],
                 "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["false_negatives"]["rate"] == 0.5 and data["by_rule"][1]["label"] == "lexical_overlap"
    table = cli("evaluate", judged["output"], "--qrels", judged["qrels"])
    assert table.exit_code == 0 and table.stdout.strip() == "0.500000"
    assert "false negatives" in table.stderr and "50.0% (3 of 6; 95% CI" in table.stderr
    bad = cli("evaluate", judged["output"], "--qrels", out_dir / "nope.parquet")
    assert bad.exit_code != 0 and "nope.parquet" in bad.stderr


def test_the_audit_in_the_html_report(cli: Any, tmp_path: Path, make_parquet: Callable[..., Path],
                                      out_dir: Path) -> None:
    rows = [r for r in pq.read_table(TINY / "qrels.parquet").to_pylist() if r["score"] > 0]
    first = list({r["query-id"]: r for r in reversed(rows)}.values())  # one positive per query
    qrels = make_parquet("given.parquet", {k: [r[k] for r in first] for k in ("query-id", "corpus-id", "score")})
    out, cand = out_dir / "o.parquet", out_dir / "c.parquet"
    negmine.mine(TINY / "corpus.parquet", TINY / "queries.parquet", qrels, output=out, candidates_output=cand,
                 cache_dir=tmp_path / "cache")
    html, png = out_dir / "r.html", out_dir / "r.png"
    result = cli("report", out, "--qrels", TINY / "qrels.parquet", "--candidates", cand, "--html", html,
                 "--png", png)
    assert result.exit_code == 0, result.stderr
    page = html.read_text()
    expected = evaluate(out, TINY / "qrels.parquet", candidates=cand).false_negatives
    assert "Audit against" in page and f"({expected.relevant:,} of {expected.n:,}; 95% CI" in page
    assert "judged relevant: selected" in page
    assert "audit: false negatives" in result.stderr
    lone = cli("report", out, "--candidates", cand, "--html", html, "--png", png)
    assert lone.exit_code == 2 and "--qrels" in lone.stderr
