"""Results that do not depend on the cache's history, bad values refused or warned about, hints that point the
right way, and counts that add up (the reliability issue's items 4, 7, 8 and 9)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fakes import FakeEncoder, PaddingSensitiveST
from helpers import NO_SCORING_OPTIONS, TINY, assert_cli_error, mine_args

import negmine
from negmine.retrieve.encoders import SentenceTransformerEncoder
from negmine.rules.duplicates import normalize_text

Cli = Callable[..., Any]


# --- 4. the same bytes whatever the cache holds ------------------------------------------------------------------

def padding_sensitive(tmp_path: Path, dense: bool = False) -> SentenceTransformerEncoder:
    """A SentenceTransformerEncoder over a model whose vectors change with the padding of their batch (and with
    its size, when ``dense``)."""
    folder = tmp_path / "model"
    if not folder.exists():
        folder.mkdir()
        (folder / "model.safetensors").write_bytes(b"weights")
        (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 64}))
    encoder = SentenceTransformerEncoder(str(folder), batch_size=4)
    encoder._st = PaddingSensitiveST(dense=dense)
    return encoder


def test_a_vector_does_not_depend_on_its_batch(tmp_path: Path) -> None:
    texts = ["short one", "a much longer text with many more words in it", "two words", "short two"]
    raw = PaddingSensitiveST()
    alone = raw.encode(["short one"])[0]
    assert not np.array_equal(alone, raw.encode(texts)[0])  # the model itself is batch-sensitive
    encoder = padding_sensitive(tmp_path)
    together = encoder.encode(texts, "document")
    for i, text in enumerate(texts):
        assert together[i].tobytes() == encoder.encode([text], "document")[0].tobytes()
    # batches hold texts of one token length, longest first
    assert [len(c) for c in encoder._st.calls[:3]] == [1, 3, 1]


def test_a_model_with_a_projection_runs_full_batches(tmp_path: Path) -> None:
    """A Dense module after the pooling makes vectors depend on the batch's size: such a model always gets
    batches of exactly batch_size texts."""
    texts = ["short one", "two words", "short two", "a much longer text with many more words in it", "one more"]
    encoder = padding_sensitive(tmp_path, dense=True)
    together = encoder.encode(texts, "document")
    for i, text in enumerate(texts):
        assert together[i].tobytes() == encoder.encode([text], "document")[0].tobytes()
    assert {len(c) for c in encoder._st.calls} == {4}


@pytest.mark.real_model
def test_the_real_model_gives_the_same_bytes_in_any_batch() -> None:
    texts = negmine.read_corpus(TINY / "corpus.parquet").texts[:24]
    encoder = SentenceTransformerEncoder(batch_size=8)
    together = encoder.encode(texts, "document")
    for i in (0, 5, 17):
        assert together[i].tobytes() == encoder.encode([texts[i]], "document")[0].tobytes()


def test_outputs_do_not_depend_on_the_cache_history(tmp_path: Path) -> None:
    """Cold cache, warm cache, and a cache warmed by a different run (BM25 with the bi-encoder judging, which
    encodes only the candidates it needs): the same bytes, scores included."""
    inputs = (TINY / "corpus.parquet", TINY / "queries.parquet", TINY / "qrels.parquet")
    opts: dict[str, Any] = {"output_scores": True, "candidates_output": None}

    def run(name: str, cache: str, **extra: Any) -> bytes:
        out = tmp_path / f"{name}.parquet"
        negmine.mine(*inputs, output=out, encoder=padding_sensitive(tmp_path), cache_dir=tmp_path / cache,
                     **{**opts, **extra})
        return out.read_bytes()

    cold = run("cold", "a")
    assert run("warm", "a") == cold
    run("other", "b", retriever="bm25")  # encodes candidates in small lazy rounds
    assert run("after-other", "b") == cold
    run("dense", "c", retriever="dense")
    assert run("after-dense", "c") == cold


# --- 7. bad values are refused or warned about -------------------------------------------------------------------

def test_empty_query_texts_are_skipped_with_a_warning(cli: Cli, tiny: dict[str, Path],
                                                      make_parquet: Callable[..., Path], out_dir: Path) -> None:
    queries = pq.read_table(tiny["queries"]).to_pylist()
    queries[1]["text"], queries[4]["text"] = "", "   "
    path = make_parquet("q.parquet", {"_id": [q["_id"] for q in queries], "text": [q["text"] for q in queries]})
    out = out_dir / "o.parquet"
    result = cli(*mine_args({**tiny, "queries": path}, out))
    assert result.exit_code == 0, result.stderr
    assert f"{path}: column '_id': row 1 (id 'q02'): the query text is empty; skipped 2 such queries" in result.stderr
    table = pq.read_table(out)
    assert "" not in table.column("anchor").to_pylist() and "q02" not in table.column("query_id").to_pylist()
    assert negmine.read_metadata(out)["stats"]["queries_empty_text"] == 2
    strict = cli(*mine_args({**tiny, "queries": path}, out_dir / "s.parquet", "--strict"))
    assert_cli_error(strict, 1, [str(path), "row 1", "the query text is empty"], out_dir / "s.parquet",
                     empty_dir=False)


@pytest.mark.parametrize("suffix", [".npy", ".parquet"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_vectors_are_refused(cli: Cli, tiny: dict[str, Path], tiny_tables: dict[str, pa.Table],
                                        in_dir: Path, out_dir: Path, suffix: str, bad: float) -> None:
    ids = tiny_tables["corpus"].column("_id").to_pylist()
    vectors = np.random.default_rng(0).normal(size=(len(ids), 8)).astype(np.float32)
    vectors[7, 3] = bad
    path = in_dir / f"emb{suffix}"
    if suffix == ".npy":
        np.save(path, vectors)
        where = "row 7"
    else:
        pq.write_table(pa.table({"id": ids, "embedding": vectors.tolist()}), path)
        where = "column 'embedding' row 7"
    out = out_dir / "o.parquet"
    result = cli(*mine_args(tiny, out, "--retriever", "dense", "--relative-margin", "none",
                            "--max-positive-similarity", "none", "--positive-proximity", "none",
                            "--corpus-embeddings", path, scoring=True))
    assert_cli_error(result, 1, [str(path), where, "NaN or an infinity"], out)


@pytest.mark.parametrize("name", ["out.csv", "out.txt", "out.json", "out"])
def test_outputs_negmine_does_not_write_are_refused(cli: Cli, tiny: dict[str, Path], out_dir: Path,
                                                    name: str) -> None:
    out = out_dir / name
    result = cli(*mine_args(tiny, out))
    assert_cli_error(result, 2, ["--output", "no format negmine writes", ".parquet, .jsonl or .jsonl.gz"], out)


def test_unknown_device(cli: Cli, tiny: dict[str, Path], out_dir: Path) -> None:
    out = out_dir / "o.parquet"
    line = assert_cli_error(cli(*mine_args(tiny, out, "--device", "tpu")), 2, ["--device", "'tpu'"], out)
    assert "--model" not in line


def test_ineffective_options_warn(cli: Cli, tiny: dict[str, Path], out_dir: Path) -> None:
    result = cli(*mine_args(tiny, out_dir / "o.parquet", "--seed", "3", "--fusion", "score", "--rrf-k", "10",
                            "-q", "-v"))
    assert result.exit_code == 0, result.stderr
    for needle in ("--seed has no effect with --sampling-strategy top", "--fusion has no effect with --retriever "
                   "bm25", "--rrf-k has no effect with --retriever bm25", "--quiet and --verbose together"):
        assert needle in result.stderr
    quiet = cli(*mine_args(tiny, out_dir / "p.parquet", "--seed", "42", "--sampling-strategy", "random", "-q"))
    assert quiet.exit_code == 0 and quiet.stderr == ""


def test_ineffective_options_warn_in_python(tiny: dict[str, Path]) -> None:
    result = negmine.mine(tiny["corpus"], tiny["queries"], tiny["qrels"], seed=1, **NO_SCORING_OPTIONS)
    assert result.warnings == ["--seed has no effect with --sampling-strategy top"]


def test_index_dir_gaps_are_announced(cli: Cli, tiny: dict[str, Path], out_dir: Path, tmp_path: Path) -> None:
    idx = tmp_path / "idx"
    assert cli("index", "--corpus", tiny["corpus"], "--index-dir", idx, "--retriever", "bm25", "-q").exit_code == 0
    result = cli("mine", "--corpus", tiny["corpus"], "--queries", tiny["queries"], "--qrels", tiny["qrels"], "-o",
                 out_dir / "a.parquet", "--index-dir", idx, "--model", "another-model", "-q")
    assert result.exit_code == 0, result.stderr
    assert f"--index-dir {idx} lacks the embeddings of 120 of the corpus's 120 documents from this model: building " \
           "it there now" in result.stderr
    assert "BM25 index" not in result.stderr
    again = cli(*mine_args(tiny, out_dir / "b.parquet", "--index-dir", idx, "--bm25-k1", "0.9", "-q"))
    assert f"--index-dir {idx} lacks the BM25 index of this corpus with these settings (method=lucene k1=0.9 b=0.75" \
           in again.stderr
    assert "It holds BM25 indexes with: method=lucene k1=1.5 b=0.75 stemmer=english stopwords=en" in again.stderr
    third = cli(*mine_args(tiny, out_dir / "c.parquet", "--index-dir", idx, "--bm25-k1", "0.9", "-q"))
    assert third.stderr == ""  # built into it by the run before


# --- 8. hints that point the right way ---------------------------------------------------------------------------

def test_a_qrels_file_given_as_embeddings(cli: Cli, tiny: dict[str, Path], out_dir: Path) -> None:
    out = out_dir / "o.parquet"
    result = cli(*mine_args(tiny, out, "--retriever", "dense", "--corpus-embeddings", tiny["qrels"]))
    line = assert_cli_error(result, 1, [str(tiny["qrels"]), "no vector column", "--corpus-embeddings takes a .npy "
                                        "file, or a Parquet file with an id column and a vector"], out)
    assert "name it with" not in line


def test_report_of_a_missing_file_names_no_option(cli: Cli, tmp_path: Path) -> None:
    result = cli("report", tmp_path / "nope.parquet")
    assert result.exit_code == 1
    assert result.stderr.strip() == f"negmine: error: negmine output file not found: {tmp_path / 'nope.parquet'}"


def test_relative_margin_error_names_auto(cli: Cli, tiny: dict[str, Path], out_dir: Path) -> None:
    out = out_dir / "o.parquet"
    assert_cli_error(cli(*mine_args(tiny, out, "--relative-margin", "wide")), 2,
                     ["--relative-margin takes a number, 'none' or 'auto', got 'wide'"], out)


def test_ids_of_other_types_are_shown(cli: Cli, make_parquet: Callable[..., Path], out_dir: Path) -> None:
    paths = {
        "corpus": make_parquet("c.parquet", {"_id": [1, 2, 3], "text": ["red apple", "green pear", "blue plum"]}),
        "queries": make_parquet("q.parquet", {"_id": [10], "text": ["apple"]}),
        "qrels": make_parquet("r.parquet", {"query-id": ["q10"], "corpus-id": ["doc1"], "score": [1]}),
    }
    out = out_dir / "o.parquet"
    assert_cli_error(cli(*mine_args(paths, out)), 1, [
        "the ids differ in type or form", "row 0 names query 'q10' (str) and document 'doc1' (str)",
        "the query ids look like 10 (int) and the corpus ids like 1 (int)"], out)


# --- 9. counts that add up, rows without repeats, the encoder as documented --------------------------------------

def test_cache_counts_are_of_distinct_texts(make_parquet: Callable[..., Path], tmp_path: Path) -> None:
    texts = ["cats purr", "dogs bark", "cats purr", "fish swim", "birds sing", "dogs bark"]
    paths = (make_parquet("c.parquet", {"_id": [f"d{i}" for i in range(6)], "text": texts}),
             make_parquet("q.parquet", {"_id": ["q"], "text": ["cats"]}),
             make_parquet("r.parquet", {"query-id": ["q"], "corpus-id": ["d0"], "score": [1]}))
    opts: dict[str, Any] = {"retriever": "dense", "num_negatives": 1, "cache_dir": tmp_path / "cache"}
    cold = negmine.mine(*paths, **opts).stats
    warm = negmine.mine(*paths, **opts).stats
    assert (cold.texts_encoded, cold.texts_cached) == (5, 0)  # 4 distinct documents and the query
    assert (warm.texts_encoded, warm.texts_cached) == (0, 5)


def test_report_shows_no_cache_counts_it_cannot_know(tiny: dict[str, Path], tmp_path: Path) -> None:
    from negmine.report import page as report

    out = tmp_path / "o.parquet"
    negmine.mine(tiny["corpus"], tiny["queries"], tiny["qrels"], output=out, max_positive_similarity=None,
                 positive_proximity=None)
    data = report.load_report(out)
    labels = [label for label, _ in report.report_rows(data)]
    assert "texts encoded / from cache" not in labels and "candidates seen" in labels
    assert data["stats"]["not_scored"] > 0
    assert "not_scored" not in report.drop_counts(data["stats"])


def test_a_row_never_repeats_a_text(make_parquet: Callable[..., Path], out_dir: Path) -> None:
    texts = ["Grind coffee beans coarse.", "grind COFFEE beans, coarse!", "Grind coffee beans   coarse",
             "coffee beans for espresso", "espresso beans", "coffee grinder review", "beans and coffee",
             "the positive about coffee beans grinding"]
    paths = (make_parquet("c.parquet", {"_id": [f"d{i}" for i in range(8)], "text": texts}),
             make_parquet("q.parquet", {"_id": ["q"], "text": ["grind coffee beans"]}),
             make_parquet("r.parquet", {"query-id": ["q"], "corpus-id": ["d7"], "score": [1]}))
    table = negmine.mine(*paths, output=out_dir / "o.parquet", num_negatives=4, output_format="n-tuple",
                         **NO_SCORING_OPTIONS).table
    assert table.num_rows == 1
    negatives = [table.column(f"negative_{j}")[0].as_py() for j in range(1, 5)]
    assert len({normalize_text(t) for t in negatives}) == 4
    assert negatives[0] == "Grind coffee beans coarse." and not set(negatives) & set(texts[1:3])


class MinimalEncoder:
    """An encoder written from the documented protocol alone: ``identity(kind)`` (JSON text) and
    ``encode(texts, kind)``."""

    def __init__(self) -> None:
        self.fake = FakeEncoder()

    def identity(self, kind: str) -> str:
        return json.dumps({"model": "minimal", "kind": kind})

    def encode(self, texts: list[str], kind: str) -> np.ndarray:
        return self.fake.encode(texts, kind)


def test_an_encoder_with_the_documented_signature_works(tiny: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "o.parquet"
    result = negmine.mine(tiny["corpus"], tiny["queries"], tiny["qrels"], output=out, encoder=MinimalEncoder(),
                          cache_dir=tmp_path / "cache")
    assert result.stats.negatives_written > 0
    assert negmine.read_metadata(out)["models"]["embedder"] == {"model": "minimal", "kind": "document"}


# --- 6. progress without a terminal ------------------------------------------------------------------------------

def test_line_progress_prints_at_most_every_interval() -> None:
    import time

    from negmine.progress import LineProgress

    lines: list[str] = []
    progress = LineProgress(lines.append, interval=0.2)
    with progress.stage("quick", total=3) as advance:
        advance(3)
    assert lines == []  # a stage shorter than the interval prints nothing
    with progress.stage("encoding documents (m)", total=100) as advance:
        for _ in range(10):
            advance(5)
            time.sleep(0.05)
    with progress.stage("indexing") as advance:
        time.sleep(0.3)
    assert 1 <= len([x for x in lines if "encoding documents" in x]) <= 4
    first = lines[0]
    assert first.startswith("negmine: encoding documents (m): ") and "/100 (" in first and "/s" in first
    assert "left" in first
    assert lines[-3].startswith("negmine: encoding documents (m): done, 50/100 in ")
    assert lines[-2].startswith("negmine: indexing: running for ")
    assert lines[-1].startswith("negmine: indexing: done, in ")


def test_the_cli_prints_plain_lines_without_a_terminal(cli: Cli, tiny: dict[str, Path], out_dir: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib
    import re

    from fakes import SlowEncoder

    import negmine.progress

    # a slow encoding stage (0.6 s) and a progress line every 0.05 s
    monkeypatch.setattr(importlib.import_module("negmine.retrieve.build"), "make_encoder",
                        lambda config, model=None: SlowEncoder(0.01))
    monkeypatch.setattr(negmine.progress.LineProgress.__init__, "__defaults__", (None, 0.05, "negmine: "))
    result = cli(*mine_args(tiny, out_dir / "o.parquet", "--retriever", "dense", "--cache-dir", out_dir.parent / "c",
                            scoring=True))
    assert result.exit_code == 0, result.stderr
    assert re.search(r"^negmine: encoding documents \(fake\): \d+/120 \(\d+%\), [\d.]+/s, about \d+ s left$",
                     result.stderr, re.M)
    assert re.search(r"^negmine: encoding documents \(fake\): done, 120/120 in \d+ s$", result.stderr, re.M)
    assert "\x1b[" not in result.stderr  # no terminal control codes in a log
