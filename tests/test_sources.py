"""negmine.sources and the readers on it: JSON Lines, CSV and TSV inputs (each optionally gzipped) and BEIR folders
give what Parquet inputs give; their errors are one line naming the file's line."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import SMALL_CORPUS, SMALL_QRELS, SMALL_QUERIES
from helpers import NO_SCORING, NO_SCORING_OPTIONS, assert_cli_error, strip_meta, write_as, write_beir

import negmine
from negmine.errors import ConfigError, InputError
from negmine.inputs import formats, read
from negmine.inputs.beir import beir_files
from negmine.inputs.formats import InputFile
from negmine.inputs.read import read_corpus, read_pairs, read_qrels, read_queries

Cli = Callable[..., Any]
TABLES = {"corpus": SMALL_CORPUS, "queries": SMALL_QUERIES, "qrels": SMALL_QRELS}


def mined(paths: dict[str, Path], tmp_path: Path, **options: Any) -> pa.Table:
    result = negmine.mine(paths["corpus"], paths["queries"], paths["qrels"], cache_dir=tmp_path / "cache",
                          num_negatives=3, output_scores=True, **{**NO_SCORING_OPTIONS, **options})
    return strip_meta(result.table)


# --- the same output whatever the input format --------------------------------------------------------------------

@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz", ".csv", ".tsv", ".csv.gz", ".tsv.gz"])
def test_each_input_format_mines_what_parquet_mines(small: dict[str, Path], in_dir: Path, tmp_path: Path,
                                                    suffix: str) -> None:
    expected = mined(small, tmp_path)
    paths = {role: write_as(in_dir / f"{role}{suffix}", data) for role, data in TABLES.items()}
    got = mined(paths, tmp_path)
    assert got.equals(expected)
    assert got.schema == expected.schema  # ids keep their type (strings here)
    again = mined(paths, tmp_path)  # from the input cache this time
    assert again.equals(expected)


def test_the_formats_mix(small: dict[str, Path], in_dir: Path, tmp_path: Path) -> None:
    expected = mined(small, tmp_path)
    paths = {"corpus": write_as(in_dir / "c.jsonl.gz", SMALL_CORPUS), "queries": write_as(in_dir / "q.csv",
                                                                                          SMALL_QUERIES),
             "qrels": small["qrels"]}
    assert mined(paths, tmp_path).equals(expected)


def test_blank_lines_and_unread_columns_are_skipped(small: dict[str, Path], in_dir: Path, tmp_path: Path) -> None:
    """BEIR's corpus.jsonl files carry a ``metadata`` object; blank lines are no rows."""
    corpus = dict(SMALL_CORPUS, metadata=[{"url": f"u{i}"} if i % 2 else {} for i in range(12)])
    paths = {"corpus": write_as(in_dir / "c.jsonl", corpus, blank_lines=True), "queries": small["queries"],
             "qrels": small["qrels"]}
    assert mined(paths, tmp_path).equals(mined(small, tmp_path))


@pytest.mark.parametrize("cache", [False, True])
def test_csv_ids_are_integers_only_when_every_one_is_plain(in_dir: Path, tmp_path: Path, cache: bool) -> None:
    cache_dir = tmp_path / "cache" if cache else None
    c = read_corpus(write_as(in_dir / "a.csv", {"_id": ["3", "1", "2"], "text": ["c", "a", "b"]}),
                       cache_dir=cache_dir)
    assert c.ids == [3, 1, 2] and c.id_array.type == pa.int64()
    for ids in (["3", "01", "2"], ["3", "+1", "2"], ["3", "1.0", "2"], ["3", "x", "2"], ["3", "99999999999999999999",
                                                                                        "2"]):
        c = read_corpus(write_as(in_dir / f"b{len(ids[1])}.tsv", {"_id": ids, "text": ["c", "a", "b"]}),
                           cache_dir=cache_dir)
        assert c.ids == ids and c.id_array.type == pa.string(), ids


def test_json_ids_keep_their_json_type(in_dir: Path) -> None:
    assert read_queries(write_as(in_dir / "n.jsonl", {"_id": [10, 20], "text": ["a", "b"]})).ids == [10, 20]
    q = read_queries(write_as(in_dir / "s.jsonl", {"_id": ["10", "20"], "text": ["a", "b"]}))
    assert q.ids == ["10", "20"]


def test_qrels_ids_match_by_their_text(in_dir: Path, tmp_path: Path) -> None:
    """BEIR's corpus ids are JSON strings and its qrels' TSV integers: they match by their digits."""
    corpus = {"_id": [str(i) for i in range(12)], "text": SMALL_CORPUS["text"]}
    qrels = {"query-id": ["q1", "q2", "q3"], "corpus-id": ["0", "4", "8"], "score": ["1", "1", "2"]}
    r = read_qrels(write_as(in_dir / "r.tsv", qrels))
    assert r.doc_ids == [0, 4, 8] and r.scores == [1.0, 1.0, 2.0]
    paths = {"corpus": write_as(in_dir / "c.jsonl", corpus), "queries": write_as(in_dir / "q.jsonl", SMALL_QUERIES),
             "qrels": in_dir / "r.tsv"}
    table = mined(paths, tmp_path)
    assert table.column("positive_id").to_pylist()[:1] == ["0"]  # the corpus's id, in the corpus's type


def test_json_scores_may_mix_integers_and_fractions(in_dir: Path) -> None:
    rows = {"qid": ["q1", "q2"], "pid": ["d1", "d2"], "score": [1, 0.5]}
    assert read_qrels(write_as(in_dir / "r.jsonl", rows)).scores == [1.0, 0.5]


def test_a_quoted_csv_value_may_hold_commas_quotes_and_line_breaks(in_dir: Path) -> None:
    texts = ['one, two', 'a "quoted" word', "two\nlines", "plain"]
    corpus = read_corpus(write_as(in_dir / "c.csv", {"_id": ["a", "b", "c", "d"], "text": texts}))
    assert corpus.texts == texts


def test_tsv_values_are_not_quoted(in_dir: Path) -> None:
    """MS MARCO's passages start with quotes; TSV (as BEIR writes it) has no quoting."""
    p = in_dir / "c.tsv"
    p.write_text('_id\ttext\nd1\t"A quote," she said\nd2\tplain\n', encoding="utf-8")
    assert read_corpus(p).texts == ['"A quote," she said', "plain"]


def test_batches_are_fixed_whatever_the_blocks(in_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(formats, "BLOCK", 256)  # many small blocks
    n = 500
    data = {"_id": [f"d{i}" for i in range(n)], "text": [f"text {i}" for i in range(n)]}
    for suffix in (".jsonl", ".csv"):
        src = InputFile(write_as(in_dir / f"c{suffix}", data), "corpus")
        sizes = [b.num_rows for b in src.batches(["_id", "text"], batch_size=64)]
        assert sizes == [64] * 7 + [52]
        table = pa.Table.from_batches(list(src.batches(["text", "_id"], batch_size=64)))
        assert table.column_names == ["text", "_id"] and table.column("_id").to_pylist() == data["_id"]


# --- errors name the line ---------------------------------------------------------------------------------------------

BAD = [
    ("corpus.jsonl", '{"_id": "d1", "text": "a"}\n\n{"_id": "d2", "text": null}\n',
     "corpus.jsonl: column 'text' line 3: text is null"),
    ("corpus.jsonl", '{"_id": "d1", "text": "a"}\n{"_id": "d2", "text": "b"\n',
     "corpus.jsonl: line 2: not valid JSON (Expecting ',' delimiter"),
    ("corpus.jsonl", '{"_id": "d1", "text": "a"}\n["d2", "b"]\n', "corpus.jsonl: line 2: not a JSON object"),
    ("corpus.jsonl", '{"_id": "d1", "text": "a"}\n{"_id": 2, "text": "b"}\n',
     "corpus.jsonl: column '_id' line 2: an integer where the column holds strings"),
    ("corpus.jsonl", '{"_id": "d1", "text": "a", "text": "b"}\n', "corpus.jsonl: line 1: key 'text' appears twice"),
    ("corpus.jsonl", '{"_id": "d1", "text": "a"}\n{"_id": "", "text": "b"}\n',
     "corpus.jsonl: column '_id' line 2: id is empty"),
    ("corpus.jsonl", '{"_id": "d1", "text": 5}\n', "corpus.jsonl: column 'text' holds int64; texts must be strings"),
    ("corpus.jsonl", "", "corpus.jsonl: the corpus is empty (no rows)"),
    ("corpus.jsonl", "\n\n", "corpus.jsonl: the corpus is empty (no rows)"),
    ("corpus.csv", "_id,text\n", "corpus.csv: the corpus is empty (no rows)"),
    ("corpus.csv", '_id,text\nd1,a\n\nd2,"b\nc"\nd3,x,y\n',
     "corpus.csv: line 6: 3 values where the header has 2 (values are separated by a comma; quote a value"),
    ("corpus.csv", '_id,text\nd1,a\n"d2","two\nlines"\nd1,c\n',
     "corpus.csv: column '_id': line 5: duplicate id 'd1' (first seen at line 2)"),
    ("corpus.csv", "_id,text\nd1,a\n ,b\n", "corpus.csv: column '_id' line 3: id is empty"),
    ("corpus.tsv", "_id\ttext\nd1\ta\nd2\tb\tc\n",
     "corpus.tsv: line 3: 3 values where the header has 2 (values are separated by a tab; TSV values cannot hold"),
    ("corpus.csv", b"_id,text\nd1,a\nd2,\xff\n", "corpus.csv: line 3: not UTF-8 text"),
    ("corpus.jsonl.gz", b"not gzip", "corpus.jsonl.gz: not a readable gzip file"),
    ("corpus.txt", "_id,text\n", "corpus.txt: not a readable Parquet file ("),
]


@pytest.mark.parametrize(("name", "content", "needle"), BAD, ids=[f"{b[0]}-{i}" for i, b in enumerate(BAD)])
def test_bad_corpus_files_give_one_line_naming_the_line(cli: Cli, small: dict[str, Path], in_dir: Path,
                                                        out_dir: Path, name: str, content: Any, needle: str) -> None:
    p = in_dir / name
    if isinstance(content, bytes):
        p.write_bytes(content)
    else:
        p.write_text(content, encoding="utf-8")
    out = out_dir / "neg.parquet"
    result = cli("mine", "--corpus", p, "--queries", small["queries"], "--qrels", small["qrels"], "-o", out,
                 *NO_SCORING)
    line = assert_cli_error(result, 1, [f"negmine: error: {in_dir / needle}"], out)
    assert line.startswith(f"negmine: error: {in_dir / needle}")
    if name.endswith(".txt"):
        assert "negmine reads Parquet, or JSON Lines, CSV or TSV named .jsonl, .csv or .tsv" in line


@pytest.mark.parametrize(("content", "needle"), [
    ("query-id\tcorpus-id\tscore\nq1\td1\t1\n\nq2\td5\thigh\n", "qrels.tsv: column 'score' line 4: score 'high' is "
                                                                "not a number"),
    ("query-id\tcorpus-id\tscore\nq1\td1\t\n", "qrels.tsv: column 'score' line 2: score is empty"),
    ("query-id\tcorpus-id\tscore\nq1\td1\t1\nq9\td1\t1\n", "qrels.tsv: line 3: query id 'q9' is not in"),
])
def test_bad_qrels_rows_name_the_line(cli: Cli, small: dict[str, Path], in_dir: Path, out_dir: Path, content: str,
                                      needle: str) -> None:
    p = in_dir / "qrels.tsv"
    p.write_text(content)
    out = out_dir / "neg.parquet"
    result = cli("mine", "--corpus", small["corpus"], "--queries", small["queries"], "--qrels", p, "-o", out,
                 "--strict", *NO_SCORING)
    assert_cli_error(result, 1, [f"{in_dir / needle}"], out)


def test_skipped_qrels_rows_and_empty_queries_are_named_by_line(in_dir: Path, tmp_path: Path) -> None:
    queries = write_as(in_dir / "q.jsonl", {"_id": ["q1", "q2", "q3"], "text": ["why do cats purr", " ", "fish"]})
    qrels = in_dir / "r.tsv"
    qrels.write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n\nq2\td5\t1\nq3\td9\t1\nq7\td1\t1\n")
    corpus = write_as(in_dir / "c.jsonl", SMALL_CORPUS)
    result = negmine.mine(corpus, queries, qrels, cache_dir=tmp_path / "c", num_negatives=2, **NO_SCORING_OPTIONS)
    text = "\n".join(result.warnings)
    assert "query 'q7' (line 6)" in text
    assert f"{queries}: column '_id': line 2 (id 'q2'): the query text is empty" in text


def test_line_numbers_across_blocks_and_batches(in_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bad row far into a file, past many blocks and batches, is named by its line."""
    monkeypatch.setattr(formats, "BLOCK", 512)
    monkeypatch.setattr(read, "READ_BATCH", 7)
    ids = [f"d{i}" for i in range(300)]
    texts: list[Any] = [f"t{i}" for i in range(300)]
    texts[250] = None
    p = write_as(in_dir / "c.jsonl", {"_id": ids, "text": texts}, blank_lines=True)  # row r is on line 2r + 1
    for cache in (None, in_dir / "cache"):
        with pytest.raises(InputError) as info:
            read_corpus(p, cache_dir=cache)
        assert str(info.value) == f"{p}: column 'text' line 501: text is null"
    rows = [json.dumps({"_id": i, "text": "t"}) for i in range(300)]
    rows[260] = json.dumps({"_id": "x260", "text": "t"})
    (in_dir / "m.jsonl").write_text("\n".join(rows) + "\n")
    with pytest.raises(InputError, match="m.jsonl: column '_id' line 261: a string where the column holds integers"):
        read_corpus(in_dir / "m.jsonl")


def test_where_names_rows_of_parquet_and_lines_of_text(small: dict[str, Path], in_dir: Path) -> None:
    assert InputFile(small["corpus"], "corpus").where(3) == "row 3"
    p = in_dir / "c.csv"
    p.write_text('_id,text\n\nd1,"a\nb"\nd2,c\n')
    src = InputFile(p, "corpus")
    assert (src.where(0), src.where(1)) == ("line 3", "line 5")
    assert src.lines_of([1, 0, 9]) == {0: 3, 1: 5}


def test_missing_and_directory_inputs(in_dir: Path) -> None:
    with pytest.raises(InputError, match="corpus file not found: .*c.jsonl \\(check the --corpus path\\)"):
        read_corpus(in_dir / "c.jsonl")
    (in_dir / "d.jsonl").mkdir()
    with pytest.raises(InputError, match="corpus path is a directory, not a JSON Lines file"):
        read_corpus(in_dir / "d.jsonl")


def test_pairs_from_jsonl(small: dict[str, Path], in_dir: Path) -> None:
    p = write_as(in_dir / "pairs.jsonl", {"anchor": ["a?", "b?"], "positive": ["A", "B"]})
    assert read_pairs(p) == (["a?", "b?"], ["A", "B"])


# --- BEIR folders -------------------------------------------------------------------------------------------------

def make_beir(root: Path, gz: bool = False, splits: tuple[str, ...] = ("train", "test")) -> Path:
    return write_beir(root, SMALL_CORPUS, SMALL_QUERIES, SMALL_QRELS, gz, splits)


@pytest.mark.parametrize("gz", [False, True])
def test_a_beir_folder_mines_what_parquet_mines(small: dict[str, Path], tmp_path: Path, gz: bool) -> None:
    root = make_beir(tmp_path / "scifact", gz)
    result = negmine.mine(beir=root, split="test", cache_dir=tmp_path / "cache", num_negatives=3,
                          output_scores=True, **NO_SCORING_OPTIONS)
    assert strip_meta(result.table).equals(mined(small, tmp_path))
    ext = ".gz" if gz else ""
    assert {r: i["path"] for r, i in result.metadata["inputs"].items()} == {
        "corpus": str(root / f"corpus.jsonl{ext}"), "queries": str(root / f"queries.jsonl{ext}"),
        "qrels": str(root / "qrels" / f"test.tsv{ext}")}


def test_beir_split_defaults_to_train(tmp_path: Path) -> None:
    root = make_beir(tmp_path / "b")
    assert beir_files(root)["qrels"] == root / "qrels" / "train.tsv"


def test_beir_errors(cli: Cli, small: dict[str, Path], tmp_path: Path, out_dir: Path) -> None:
    root = make_beir(tmp_path / "b", splits=("test", "dev"))
    out = out_dir / "n.parquet"
    result = cli("mine", "--beir", root, "-o", out, *NO_SCORING)
    assert_cli_error(result, 1, [f"--beir {root}: no qrels/train.tsv (--split train); the splits there are: dev, "
                                 "test"], out)
    result = cli("mine", "--beir", root, "--corpus", small["corpus"], "--split", "test", "-o", out, *NO_SCORING)
    assert_cli_error(result, 2, ["--beir stands for --corpus, --queries and --qrels"], out)
    result = cli("mine", "--split", "test", *[a for r in ("corpus", "queries", "qrels") for a in (f"--{r}",
                                                                                                     small[r])],
                 "-o", out, *NO_SCORING)
    assert_cli_error(result, 2, ["--split chooses the qrels of a --beir folder"], out)
    (root / "corpus.jsonl").unlink()
    result = cli("mine", "--beir", root, "--split", "test", "-o", out, *NO_SCORING)
    assert_cli_error(result, 1, [f"--beir {root}: no corpus.jsonl (or corpus.jsonl.gz); a BEIR folder holds"], out)
    with pytest.raises(InputError, match="no such folder"):
        beir_files(tmp_path / "nope")
    with pytest.raises(ConfigError, match="--beir stands for"):
        negmine.mine(small["corpus"], beir=root)


def test_beir_on_the_command_line(cli: Cli, tmp_path: Path, out_dir: Path) -> None:
    root = make_beir(tmp_path / "b")
    out = out_dir / "n.parquet"
    result = cli("mine", "--beir", root, "--split", "test", "-o", out, "-n", "2", *NO_SCORING)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"{out}\n" and pq.read_table(out).num_rows == 8
