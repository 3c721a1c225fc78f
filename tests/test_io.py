"""negmine.io: column detection, row checks, fingerprints, output path checks, atomic writes, metadata."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from negmine.errors import ConfigError, InputError, StorageError
from negmine.inputs.columns import CORPUS_ID, CORPUS_TEXT, QRELS_SCORE, TITLE, pick_column, read_schema
from negmine.inputs.read import read_corpus, read_pairs, read_qrels, read_queries
from negmine.output.files import check_output_path
from negmine.output.provenance import read_metadata, write_parquet
from negmine.storage.files import fingerprint

# --- reading files -------------------------------------------------------------------------------------------

def test_read_schema_missing_file(tmp_path: Path) -> None:
    p = tmp_path / "nope.parquet"
    with pytest.raises(InputError) as info:
        read_schema(p, "corpus")
    assert str(info.value) == f"corpus file not found: {p} (check the --corpus path)"


def test_read_schema_directory(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="corpus path is a directory, not a Parquet file"):
        read_schema(tmp_path, "corpus")


def test_read_schema_not_parquet(tmp_path: Path) -> None:
    p = tmp_path / "x.parquet"
    p.write_text("_id,text\nd1,hello\n")
    with pytest.raises(InputError) as info:
        read_schema(p, "corpus")
    assert str(info.value).startswith(f"{p}: not a readable Parquet file (")


def test_pick_column_given_detected_and_missing(tmp_path: Path) -> None:
    schema = pa.schema([("doc_id", pa.string()), ("id", pa.string()), ("body", pa.string())])
    p = tmp_path / "c.parquet"
    # given wins over detection
    assert pick_column(schema, p, "doc_id", CORPUS_ID, "id", "--corpus-id-column") == "doc_id"
    # detection takes the first candidate in the candidates' order, not the file's order
    assert pick_column(schema, p, None, CORPUS_ID, "id", "--corpus-id-column") == "id"
    assert pick_column(schema, p, None, CORPUS_TEXT, "text", "--corpus-text-column") == "body"
    # optional and absent -> None; "" means "ignore" for an optional column
    assert pick_column(schema, p, None, TITLE, "title", "--corpus-title-column", required=False) is None
    assert pick_column(schema, p, "", TITLE, "title", "--corpus-title-column", required=False) is None
    with pytest.raises(InputError) as info:
        pick_column(schema, p, "heading", TITLE, "title", "--corpus-title-column", required=False)
    assert str(info.value) == f"{p}: no column 'heading' (--corpus-title-column); the columns are: doc_id, id, body"
    with pytest.raises(InputError) as info:
        pick_column(schema, p, None, QRELS_SCORE, "score", "--qrels-score-column")
    msg = str(info.value)
    assert "no score column (looked for score, relevance, label, grade)" in msg
    assert "name it with --qrels-score-column" in msg and "The columns are: doc_id, id, body" in msg


def test_read_corpus_joins_title_before_text(make_parquet: Callable[..., Path]) -> None:
    p = make_parquet("c.parquet", {"_id": ["a", "b", "c"], "title": ["Head", None, ""], "text": ["body a", "b", "c"]})
    corpus = read_corpus(p)
    assert corpus.ids == ["a", "b", "c"]
    assert corpus.texts == ["Head body a", "b", "c"]
    assert read_corpus(p, title_column="").texts == ["body a", "b", "c"]


def test_read_corpus_named_columns(make_parquet: Callable[..., Path]) -> None:
    p = make_parquet("c.parquet", {"_id": ["x", "y"], "doc_key": ["a", "b"], "text": ["decoy", "decoy"],
                                   "body": ["one", "two"], "title": ["T", "T"], "heading": ["H1", "H2"]})
    corpus = read_corpus(p, id_column="doc_key", text_column="body", title_column="heading")
    assert corpus.ids == ["a", "b"]
    assert corpus.texts == ["H1 one", "H2 two"]
    assert corpus.index == {"a": 0, "b": 1}


def test_read_corpus_integer_ids_keep_their_type(make_parquet: Callable[..., Path]) -> None:
    p = make_parquet("c.parquet", {"_id": pa.array([3, 1, 2], pa.int64()), "text": ["c", "a", "b"]})
    corpus = read_corpus(p)
    assert corpus.ids == [3, 1, 2] and all(type(i) is int for i in corpus.ids)
    assert corpus.keys == ["3", "1", "2"]


@pytest.mark.parametrize(
    ("ids", "needle"),
    [
        (["a", None, "c"], "column '_id' row 1: id is null"),
        (["a", "b", ""], "column '_id' row 2: id is empty"),
        (["a", "  ", "c"], "column '_id' row 1: id is empty"),
        (["a", "b", "a"], "column '_id': row 2: duplicate id 'a' (first seen at row 0)"),
    ],
)
def test_read_corpus_bad_ids(make_parquet: Callable[..., Path], ids: list, needle: str) -> None:
    p = make_parquet("c.parquet", {"_id": pa.array(ids, pa.string()), "text": ["x", "y", "z"]})
    with pytest.raises(InputError) as info:
        read_corpus(p)
    assert str(info.value).startswith(str(p))
    assert needle in str(info.value)


def test_float_ids_are_refused(make_parquet: Callable[..., Path]) -> None:
    p = make_parquet("c.parquet", {"_id": [1.0, 2.0], "text": ["x", "y"]})
    with pytest.raises(InputError, match="column '_id' holds double; ids must be strings or integers"):
        read_corpus(p)


def test_null_text(make_parquet: Callable[..., Path]) -> None:
    p = make_parquet("c.parquet", {"_id": ["a", "b"], "text": ["x", None]})
    with pytest.raises(InputError) as info:
        read_corpus(p)
    assert str(info.value) == f"{p}: column 'text' row 1: text is null"


def test_non_string_text(make_parquet: Callable[..., Path]) -> None:
    p = make_parquet("q.parquet", {"_id": ["a", "b"], "text": [1, 2]})
    with pytest.raises(InputError, match="column 'text' holds int64; texts must be strings"):
        read_queries(p)


def test_empty_files(make_parquet: Callable[..., Path]) -> None:
    s = pa.schema([("_id", pa.string()), ("text", pa.string())])
    p = make_parquet("c.parquet", {"_id": [], "text": []}, schema=s)
    with pytest.raises(InputError, match="the corpus is empty"):
        read_corpus(p)
    with pytest.raises(InputError, match="the query file is empty"):
        read_queries(p)


def test_read_queries_detects_names(make_parquet: Callable[..., Path]) -> None:
    p = make_parquet("q.parquet", {"qid": ["q1", "q2"], "question": ["what", "why"]})
    q = read_queries(p)
    assert (q.ids, q.texts) == (["q1", "q2"], ["what", "why"])


def test_read_qrels_scores(make_parquet: Callable[..., Path]) -> None:
    p = make_parquet("r.parquet", {"query_id": ["q1", "q2"], "doc_id": ["d1", "d2"], "relevance": [2, 0]})
    r = read_qrels(p)
    assert (r.query_ids, r.doc_ids, r.scores) == (["q1", "q2"], ["d1", "d2"], [2.0, 0.0])
    assert r.source == str(p)


def test_read_qrels_without_score_column(make_parquet: Callable[..., Path]) -> None:
    p = make_parquet("r.parquet", {"qid": ["q1", "q2"], "pid": ["d1", "d2"]})
    assert read_qrels(p).scores == [1.0, 1.0]


def test_read_qrels_bad_scores(make_parquet: Callable[..., Path]) -> None:
    p = make_parquet("r.parquet", {"query-id": ["q1"], "corpus-id": ["d1"], "score": ["high"]})
    with pytest.raises(InputError, match="column 'score' holds string; relevance scores must be numbers"):
        read_qrels(p)
    p = make_parquet("r2.parquet", {"query-id": ["q1", "q2"], "corpus-id": ["d1", "d2"],
                                    "score": pa.array([1, None], pa.int64())})
    with pytest.raises(InputError, match="column 'score' row 1: score is null"):
        read_qrels(p)


def test_read_pairs(make_parquet: Callable[..., Path]) -> None:
    p = make_parquet("p.parquet", {"question": ["a?", "b?"], "answer": ["A", "B"]})
    assert read_pairs(p) == (["a?", "b?"], ["A", "B"])
    with pytest.raises(ConfigError, match="the anchor and positive columns are both 'question'"):
        read_pairs(p, anchor_column="question", positive_column="question")


# --- fingerprints, output paths, atomic writes -------------------------------------------------------------------

def test_fingerprint_is_sha256_of_the_bytes(tmp_path: Path) -> None:
    p = tmp_path / "f.bin"
    data = os.urandom(3 << 20)  # more than one read block
    p.write_bytes(data)
    assert fingerprint(p) == "sha256:" + hashlib.sha256(data).hexdigest()


def test_check_output_path(tmp_path: Path) -> None:
    inp = tmp_path / "corpus.parquet"
    inp.write_bytes(b"x")
    out = tmp_path / "out.parquet"
    assert check_output_path(out, [inp, None]) == out
    with pytest.raises(ConfigError) as info:
        check_output_path(tmp_path / "sub" / ".." / "corpus.parquet", [inp])
    assert "is an input file; negmine never overwrites its inputs" in str(info.value)
    with pytest.raises(ConfigError, match="is a directory; give a file path"):
        check_output_path(tmp_path, [inp])
    with pytest.raises(ConfigError, match="does not exist"):
        check_output_path(tmp_path / "missing" / "out.parquet", [inp])


def test_check_output_path_symlink_to_input(tmp_path: Path) -> None:
    inp = tmp_path / "corpus.parquet"
    inp.write_bytes(b"x")
    link = tmp_path / "link.parquet"
    link.symlink_to(inp)
    with pytest.raises(ConfigError, match="is an input file"):
        check_output_path(link, [inp])


def test_write_parquet_is_atomic_and_stores_metadata(tmp_path: Path) -> None:
    out = tmp_path / "o.parquet"
    table = pa.table({"a": [1, 2]})
    write_parquet(table, out, {"config": {"num_negatives": 3}, "x": "y"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.parquet"]
    assert pq.read_table(out).column("a").to_pylist() == [1, 2]
    assert read_metadata(out) == {"config": {"num_negatives": 3}, "x": "y"}


def test_write_parquet_failure_leaves_no_temp_and_keeps_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "o.parquet"
    out.write_bytes(b"old content")

    def boom(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pq, "write_table", boom)
    with pytest.raises(StorageError, match=f"^{out}: no space left on the device"):
        write_parquet(pa.table({"a": [1]}), out, {"k": 1})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.parquet"]
    assert out.read_bytes() == b"old content"


def test_read_metadata_of_a_foreign_file(tmp_path: Path) -> None:
    p = tmp_path / "plain.parquet"
    pq.write_table(pa.table({"a": [1]}), p)
    with pytest.raises(InputError, match="no negmine metadata"):
        read_metadata(p)
