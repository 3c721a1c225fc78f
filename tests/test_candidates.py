"""--candidates-output (every candidate, its ranks, scores and fate) and the property that no written negative is
ever a positive of its query, or a duplicate text of one, whatever the format, sampling and filters."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from helpers import NO_SCORING, TINY, assert_cli_error, grouped_negatives, pairs_of, read_table

import negmine
from negmine.output.provenance import read_metadata
from negmine.rules.duplicates import normalize_text

Cli = Callable[..., Any]

STATUSES = {"selected", "kept", "not_scored", "positive", "rank_window", "duplicate_text", "duplicate_candidate",
            "cross_query", "lexical_overlap", "near_duplicate", "positive_proximity", "agreement", "max_score",
            "min_score", "absolute_margin", "relative_margin", "percentile_gate"}
CHEAP = {"positive", "rank_window", "duplicate_text", "duplicate_candidate", "cross_query", "lexical_overlap"}
SCORE_RULES = {"positive_proximity", "agreement", "max_score", "min_score", "absolute_margin", "relative_margin",
               "percentile_gate"}


@pytest.fixture(scope="module")
def tiny_info() -> dict[str, Any]:
    corpus = pq.read_table(TINY / "corpus.parquet").to_pylist()
    positives: dict[str, set[str]] = {}
    for r in pq.read_table(TINY / "qrels.parquet").to_pylist():
        if r["score"] > 0:
            positives.setdefault(r["query-id"], set()).add(r["corpus-id"])
    return {"text": {d["_id"]: f"{d['title']} {d['text']}".strip() for d in corpus}, "positives": positives}


@pytest.fixture
def dup_qrels(make_parquet: Callable[..., Path]) -> Path:
    """The tiny qrels without the positives d009 and d120: they become candidates of q02 and q30 although their
    texts differ from the positives d002 and d114 only by case, spacing and punctuation."""
    rows = [r for r in pq.read_table(TINY / "qrels.parquet").to_pylist() if r["corpus-id"] not in ("d009", "d120")]
    return make_parquet("qrels.parquet", {k: [r[k] for r in rows] for k in ("query-id", "corpus-id", "score")})


def mine_cli(cli: Cli, tiny: dict[str, Path], out: Path, *extra: Any, qrels: Path | None = None) -> Any:
    result = cli("mine", "--corpus", tiny["corpus"], "--queries", tiny["queries"], "--qrels", qrels or tiny["qrels"],
                 "--output", out, "-q", *extra)
    assert result.exit_code == 0, result.stderr
    return result


def check_candidates(rows: list[dict[str, Any]], out: Path, fmt: str, positives: dict[str, set[str]]) -> None:
    """What every candidates file must satisfy, given the main output it came with."""
    stats = read_metadata(out)["stats"]
    # a 'qrel' row per known positive of each mined query, without a rank, then the candidates
    qrels = [c for c in rows if c["status"] == "qrel"]
    assert all(c["rank"] is None and c["retrieval_score"] is None for c in qrels)
    assert sorted((c["query_id"], c["doc_id"]) for c in qrels) == sorted(
        (q, d) for q, docs in positives.items() for d in docs)
    cand = [c for c in rows if c["status"] != "qrel"]
    assert len(cand) == stats["candidates_seen"]
    keys = [(c["query_id"], c["doc_id"]) for c in cand]
    assert len(keys) == len(set(keys)), "a candidate appears twice"
    assert {c["query_id"] for c in cand} == set(positives)  # every mined query
    by_query: dict[str, list[int]] = {}
    for c in cand:
        by_query.setdefault(c["query_id"], []).append(c["rank"])
    for q, ranks in by_query.items():
        assert sorted(ranks) == list(range(len(ranks))), q
    statuses = Counter(c["status"] for c in cand)
    assert set(statuses) <= STATUSES
    # the selected rows are exactly the (query, negative) pairs of the output
    written = {(q, n) for (q, _), negs in grouped_negatives(read_table(out), fmt).items() for n in negs}
    selected = {(c["query_id"], c["doc_id"]) for c in cand if c["status"] == "selected"}
    assert selected == written
    # positives are marked as such, and only positives
    for c in cand:
        assert (c["status"] == "positive") == (c["doc_id"] in positives[c["query_id"]]), c
    # the drop counts of the statistics are the statuses of the file
    for rule, n in stats["dropped"].items():
        assert statuses.get(rule, 0) == n, rule
    assert statuses.get("not_scored", 0) == stats["not_scored"]


# --- the file ---------------------------------------------------------------------------------------------------

def test_candidates_file_hybrid(cli: Cli, tiny: dict[str, Path], out_dir: Path, tiny_info: dict[str, Any]) -> None:
    out, cand_path = out_dir / "o.parquet", out_dir / "c.parquet"
    mine_cli(cli, tiny, out, "--candidates-output", cand_path, "-n", "3", "--range-max", "30", "--retriever", "hybrid",
             "--relative-margin", "0.15")
    table = read_table(cand_path)
    # the judge's scores, then what the rules on read: the bi-encoder's cosines (agreement), the cosines to the
    # positives (near duplicates), the positive proximity, the evidence gathered (agreement, cross-query, lexical
    # overlap)
    assert table.column_names == ["query_id", "doc_id", "rank", "retrieval_score", "bm25_rank", "dense_rank",
                                  "reranker_score", "positive_score", "cosine", "positive_similarity",
                                  "positive_proximity", "bm25_score", "twin_similarity", "lexical_overlap", "status"]
    check_candidates(table.to_pylist(), out, "triplet", tiny_info["positives"])
    cand = [c for c in table.to_pylist() if c["status"] != "qrel"]
    statuses = Counter(c["status"] for c in cand)
    assert statuses["selected"] and statuses["not_scored"] and statuses["positive"] and statuses["rank_window"]
    for c in cand:
        # a candidate found by one retriever only has no rank in the other (null), never both null
        assert c["bm25_rank"] is not None or c["dense_rank"] is not None
        # reranker scores exist exactly for the candidates the score rules looked at
        scored = c["status"] in {"selected", "kept", "near_duplicate"} | SCORE_RULES
        assert (c["reranker_score"] is not None) == scored, c
        assert c["positive_score"] is not None
    # candidates come in fused order
    for q in {c["query_id"] for c in cand}:
        rows = sorted((c for c in cand if c["query_id"] == q), key=lambda c: c["rank"])
        scores = [c["retrieval_score"] for c in rows]
        assert scores == sorted(scores, reverse=True)
    # the file carries the run's provenance, like the output, and what it holds for negmine refilter
    meta = read_metadata(cand_path)
    assert meta.pop("candidates") == {"depth": 33, "score_all": False, "judge": meta["models"]["reranker"],
                                      "judge_kind": "self", "judge_name": "bi-encoder"}
    assert meta == read_metadata(out)
    assert sorted(p.name for p in out_dir.iterdir()) == ["c.parquet", "o.parquet"]  # no temporary leftovers


def test_candidates_file_bm25_without_scoring(cli: Cli, tiny: dict[str, Path], out_dir: Path,
                                              tiny_info: dict[str, Any]) -> None:
    out, cand_path = out_dir / "o.parquet", out_dir / "c.parquet"
    mine_cli(cli, tiny, out, "--candidates-output", cand_path, *NO_SCORING, "--range-max", "20")
    table = read_table(cand_path)
    # no fused source ranks, and no reranker columns when nothing is scored
    assert table.column_names == ["query_id", "doc_id", "rank", "retrieval_score", "status"]
    check_candidates(table.to_pylist(), out, "triplet", tiny_info["positives"])
    cand = [c for c in table.to_pylist() if c["status"] != "qrel"]
    assert "not_scored" not in {c["status"] for c in cand}
    assert {c["status"] for c in cand} <= {"selected", "kept", "positive", "rank_window", "duplicate_text",
                                           "duplicate_candidate"}


@pytest.mark.parametrize("fmt", ["triplet", "labeled-list"])  # n-tuple: see the test below
@pytest.mark.parametrize("strategy", ["top", "random"])
def test_selected_rows_are_the_written_negatives(cli: Cli, tiny: dict[str, Path], out_dir: Path,
                                                 tiny_info: dict[str, Any], fmt: str, strategy: str) -> None:
    out, cand_path = out_dir / "o.parquet", out_dir / "c.parquet"
    mine_cli(cli, tiny, out, "--candidates-output", cand_path, "--output-format", fmt, "--sampling-strategy",
             strategy, "-n", "3", "--max-score", "0.5", "--retriever", "bm25")
    check_candidates(read_table(cand_path).to_pylist(), out, fmt, tiny_info["positives"])


NTUPLE_SHORT = ("--output-format", "n-tuple", "-n", "3", "--max-score", "0.5", "--retriever", "bm25",
                "--relative-margin", "0.05", "--lexical-overlap", "none", "--no-agreement", "--positive-proximity",
                "none")


def test_ntuple_short_pair_setup(cli: Cli, tiny: dict[str, Path], out_dir: Path) -> None:
    """The setting of the next test: q21 gets a single negative (d107) of the 3 asked, so n-tuple leaves its rows
    out of the output (n-tuple rows need exactly -n negatives)."""
    out, cand_path = out_dir / "o.parquet", out_dir / "c.parquet"
    mine_cli(cli, tiny, out, "--candidates-output", cand_path, *NTUPLE_SHORT)
    stats = read_metadata(out)["stats"]
    assert stats["short_examples"] == ["q21"] and stats["short_pairs"] == 2
    assert "q21" not in read_table(out).column("query_id").to_pylist()
    q21 = {c["doc_id"]: c["status"] for c in read_table(cand_path).to_pylist() if c["query_id"] == "q21"}
    assert q21["d107"] == "kept"  # passed every rule, but the short pair has no row


@pytest.mark.parametrize("strategy", ["top", "random"])
def test_ntuple_selected_rows_are_the_written_negatives(cli: Cli, tiny: dict[str, Path], out_dir: Path,
                                                       strategy: str) -> None:
    out, cand_path = out_dir / "o.parquet", out_dir / "c.parquet"
    mine_cli(cli, tiny, out, "--candidates-output", cand_path, "--sampling-strategy", strategy, *NTUPLE_SHORT)
    written = {(q, n) for (q, _), negs in grouped_negatives(read_table(out), "n-tuple").items() for n in negs}
    selected = {(c["query_id"], c["doc_id"]) for c in read_table(cand_path).to_pylist() if c["status"] == "selected"}
    assert selected == written


def test_score_all_leaves_nothing_unscored(cli: Cli, tiny: dict[str, Path], out_dir: Path,
                                           tiny_info: dict[str, Any]) -> None:
    lazy_out, lazy_cand = out_dir / "lazy.parquet", out_dir / "lazy-c.parquet"
    full_out, full_cand = out_dir / "full.parquet", out_dir / "full-c.parquet"
    mine_cli(cli, tiny, lazy_out, "--candidates-output", lazy_cand, "--relative-margin", "0.15")
    mine_cli(cli, tiny, full_out, "--candidates-output", full_cand, "--relative-margin", "0.15", "--score-all")
    check_candidates(read_table(full_cand).to_pylist(), full_out, "triplet", tiny_info["positives"])
    lazy, full = ([c for c in read_table(p).to_pylist() if c["status"] != "qrel"] for p in (lazy_cand, full_cand))
    assert "not_scored" not in {c["status"] for c in full}
    # every retrieved candidate but the known positives has the judge's score, the rank window's too
    assert all((c["reranker_score"] is not None) == (c["status"] != "positive") for c in full)
    # the same candidates, and where the lazy run scored one, the same fate and score
    assert [(c["query_id"], c["doc_id"]) for c in lazy] == [(c["query_id"], c["doc_id"]) for c in full]
    for a, b in zip(lazy, full):
        if a["status"] != "not_scored":
            assert a["status"] == b["status"] or {a["status"], b["status"]} <= {"kept", "selected"}, (a, b)
            if a["reranker_score"] is not None:
                assert a["reranker_score"] == b["reranker_score"]
        else:
            assert b["status"] not in CHEAP
    assert {(c["query_id"], c["doc_id"]) for c in lazy if c["status"] == "selected"} == \
        {(c["query_id"], c["doc_id"]) for c in full if c["status"] == "selected"}


def test_candidates_output_with_the_python_api(tiny: dict[str, Path], tmp_path: Path,
                                               tiny_info: dict[str, Any]) -> None:
    cand_path = tmp_path / "c.parquet"
    result = negmine.mine(tiny["corpus"], tiny["queries"], tiny["qrels"], candidates_output=cand_path,
                          output=tmp_path / "o.parquet", retriever="bm25")
    assert result.output == tmp_path / "o.parquet"
    check_candidates(read_table(cand_path).to_pylist(), tmp_path / "o.parquet", "triplet", tiny_info["positives"])


def test_candidates_reranker_score_matches_the_output_scores(cli: Cli, tiny: dict[str, Path],
                                                             out_dir: Path) -> None:
    out, cand_path = out_dir / "o.parquet", out_dir / "c.parquet"
    mine_cli(cli, tiny, out, "--candidates-output", cand_path, "--output-scores", "--retriever", "bm25",
             "--relative-margin", "0.15")
    cand = {(c["query_id"], c["doc_id"]): c for c in read_table(cand_path).to_pylist() if c["status"] != "qrel"}
    for r in read_table(out).to_pylist():
        c = cand[(r["query_id"], r["negative_id"])]
        assert c["status"] == "selected"
        assert c["reranker_score"] == pytest.approx(r["negative_score"], abs=1e-6)


# --- errors ---------------------------------------------------------------------------------------------------------

def test_candidates_output_equal_to_output(cli: Cli, tiny: dict[str, Path], out_dir: Path) -> None:
    out = out_dir / "o.parquet"
    result = cli("mine", "--corpus", tiny["corpus"], "--queries", tiny["queries"], "--qrels", tiny["qrels"],
                 "--output", out, "--candidates-output", out)
    assert_cli_error(result, 2, ["--candidates-output", "--output"], out)


def test_candidates_output_equal_to_output_spelled_differently(cli: Cli, tiny: dict[str, Path],
                                                                out_dir: Path) -> None:
    out = out_dir / "o.parquet"
    result = cli("mine", "--corpus", tiny["corpus"], "--queries", tiny["queries"], "--qrels", tiny["qrels"],
                 "--output", out, "--candidates-output", out_dir / "." / "o.parquet")
    assert_cli_error(result, 2, ["--candidates-output"], out)


@pytest.mark.parametrize("role", ["corpus", "queries", "qrels"])
def test_candidates_output_equal_to_an_input(cli: Cli, tiny: dict[str, Path], in_dir: Path, out_dir: Path,
                                             role: str) -> None:
    paths = {}
    for name in ("corpus", "queries", "qrels"):
        paths[name] = in_dir / f"{name}.parquet"
        paths[name].write_bytes(tiny[name].read_bytes())
    before = paths[role].read_bytes()
    out = out_dir / "o.parquet"
    result = cli("mine", "--corpus", paths["corpus"], "--queries", paths["queries"], "--qrels", paths["qrels"],
                 "--output", out, "--candidates-output", paths[role])
    assert_cli_error(result, 2, ["--candidates-output", str(paths[role])], out)
    assert paths[role].read_bytes() == before


def test_candidates_output_folder_missing(cli: Cli, tiny: dict[str, Path], out_dir: Path) -> None:
    out = out_dir / "o.parquet"
    result = cli("mine", "--corpus", tiny["corpus"], "--queries", tiny["queries"], "--qrels", tiny["qrels"],
                 "--output", out, "--candidates-output", out_dir / "nope" / "c.parquet")
    assert_cli_error(result, 2, ["--candidates-output"], out)


def test_a_failed_run_writes_no_candidates_file(cli: Cli, tiny: dict[str, Path], make_parquet: Callable[..., Path],
                                                out_dir: Path) -> None:
    qrels = make_parquet("qrels.parquet", {"query-id": ["q01"], "corpus-id": ["nope"], "score": [1]})
    out, cand_path = out_dir / "o.parquet", out_dir / "c.parquet"
    result = cli("mine", "--corpus", tiny["corpus"], "--queries", tiny["queries"], "--qrels", qrels, "--output", out,
                 "--candidates-output", cand_path, "--retriever", "bm25")
    assert result.exit_code == 1
    assert list(out_dir.iterdir()) == []


def test_candidates_file_replaces_an_old_one_atomically(cli: Cli, tiny: dict[str, Path], out_dir: Path) -> None:
    out, cand_path = out_dir / "o.parquet", out_dir / "c.parquet"
    cand_path.write_bytes(b"old")
    mine_cli(cli, tiny, out, "--candidates-output", cand_path, "--retriever", "bm25")
    assert read_table(cand_path).num_rows > 0
    assert sorted(p.name for p in out_dir.iterdir()) == ["c.parquet", "o.parquet"]


# --- the property: a negative is never a positive or a duplicate of one --------------------------------------

FILTERS = {
    "defaults": (),
    "off": ("--relative-margin", "none", "--max-positive-similarity", "none", "--positive-proximity", "none"),
    "all": ("--absolute-margin", "0.01", "--max-score", "0.6", "--min-score", "-0.5", "--margin-reference", "max",
            "--max-positive-similarity", "0.9"),
}


@pytest.mark.parametrize("fmt", ["triplet", "n-tuple", "labeled-list"])
@pytest.mark.parametrize("strategy", ["top", "random"])
@pytest.mark.parametrize("filters_name", list(FILTERS))
def test_no_negative_is_a_positive_or_a_duplicate_of_one(cli: Cli, tiny: dict[str, Path], dup_qrels: Path,
                                                        out_dir: Path, tiny_info: dict[str, Any], fmt: str,
                                                        strategy: str, filters_name: str) -> None:
    out, cand_path = out_dir / "o.parquet", out_dir / "c.parquet"
    mine_cli(cli, tiny, out, "--output-format", fmt, "--sampling-strategy", strategy, "-n", "3",
             "--candidates-output", cand_path, *FILTERS[filters_name], qrels=dup_qrels)
    text = tiny_info["text"]
    positives = {q: set(p) - {"d009", "d120"} for q, p in tiny_info["positives"].items()}
    rows = pairs_of(read_table(out), fmt)
    assert rows
    for q, pos, negs in rows:
        assert pos in positives[q]
        forbidden = {normalize_text(text[p]) for p in positives[q]}
        for n in negs:
            assert n not in positives[q], (q, n)
            assert normalize_text(text[n]) not in forbidden, (q, n)
    # the rule really met the two planted duplicates
    cand = read_table(cand_path).to_pylist()
    dups = {(c["query_id"], c["doc_id"]) for c in cand if c["status"] == "duplicate_text"}
    assert {("q02", "d009"), ("q30", "d120")} <= dups
    check_candidates(cand, out, fmt, positives)


@pytest.mark.parametrize("strategy", ["top", "random"])
def test_no_negative_is_a_positive_with_pairs_input(cli: Cli, tiny: dict[str, Path], out_dir: Path,
                                                    strategy: str) -> None:
    # pairs: the anchor of q02 has a positive and its case/punctuation variant; the corpus is the positives
    out = out_dir / "o.parquet"
    result = cli("mine", "--pairs", tiny["pairs"], "--output", out, "-q", "-n", "2", "--sampling-strategy", strategy,
                 "--output-format", "n-tuple")
    assert result.exit_code == 0, result.stderr
    pairs = pq.read_table(tiny["pairs"]).to_pylist()
    positives: dict[str, set[str]] = {}
    for p in pairs:
        positives.setdefault(p["anchor"], set()).add(normalize_text(p["positive"]))
    table = read_table(out).to_pylist()
    assert table
    for r in table:
        assert normalize_text(r["positive"]) in positives[r["anchor"]]
        for j in (1, 2):
            assert normalize_text(r[f"negative_{j}"]) not in positives[r["anchor"]]
