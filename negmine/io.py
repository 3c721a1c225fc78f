"""Inputs and outputs: reading the inputs (any format ``negmine.sources`` reads) with column detection and row
checks, fingerprints, output paths, atomic writes, Parquet and JSON Lines sinks, provenance."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pjson
import pyarrow.parquet as pq

from negmine.data import Corpus, Qrels, Queries, pairs_to_inputs
from negmine.errors import ConfigError, InputError, storage_error
from negmine.jsonl import SIDECAR, STDOUT, JsonLinesSink, sidecar_path
from negmine.sources import JSONL, PLAIN_INTEGER, READ_BATCH, InputFile, first_line
from negmine.sources import beir_files as beir_files  # the files of a BEIR folder, for mine() and the CLI
from negmine.storage.files import PathLike, _umask, atomic_target, check_writable, fingerprint, temp_path

CORPUS_ID = ("_id", "id", "doc_id", "docid", "corpus_id", "corpus-id", "pid")


CORPUS_TEXT = ("text", "contents", "content", "passage", "document", "body")


TITLE = ("title",)


QUERY_ID = ("_id", "id", "query_id", "query-id", "qid")


QUERY_TEXT = ("text", "query", "question", "anchor")


QRELS_QUERY = ("query-id", "query_id", "qid")


QRELS_DOC = ("corpus-id", "corpus_id", "doc_id", "docid", "doc-id", "pid")


QRELS_SCORE = ("score", "relevance", "label", "grade")


PAIRS_ANCHOR = ("anchor", "query", "question")


PAIRS_POSITIVE = ("positive", "pos", "document", "passage", "answer")


METADATA_KEY = b"negmine"


#: File name endings negmine writes outputs in, and the format each means.
OUTPUT_FORMATS = {".parquet": "parquet", ".jsonl": "jsonl", ".jsonl.gz": "jsonl.gz"}


OUTPUT_SUFFIXES = tuple(OUTPUT_FORMATS)


def read_schema(path: PathLike, role: str, option: Optional[str] = "") -> pa.Schema:
    """The schema of a Parquet file, or an InputError that says what is wrong with the file.

    ``option`` is the flag that gave the path (default ``--{role}``); ``None`` when no flag did.
    """
    p = Path(path)
    if not p.exists():
        flag = f"--{role}" if option == "" else option
        raise InputError(f"{role} file not found: {p}" + (f" (check the {flag} path)" if flag else ""))
    if p.is_dir():
        raise InputError(f"{role} path is a directory, not a Parquet file: {p}")
    try:
        return pq.read_schema(p)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"{p}: not a readable Parquet file ({first_line(exc)})") from exc


def pick_column(
    schema: pa.Schema, path: PathLike, given: Optional[str], candidates: Sequence[str], what: str, option: str,
    required: bool = True, hint: Optional[str] = None,
) -> Optional[str]:
    """Resolve a column: the one the user named, else the first of ``candidates`` the file has.

    ``hint`` replaces the advice to name the column with ``option`` (for files whose columns no flag names).
    """
    names = schema.names
    if given is not None:
        if given == "" and not required:
            return None
        if given not in names:
            raise InputError(f"{path}: no column {given!r} ({option}); the columns are: {', '.join(names)}")
        return given
    for name in candidates:
        if name in names:
            return name
    if not required:
        return None
    advice = hint or f"name it with {option}"
    raise InputError(
        f"{path}: no {what} column (looked for {', '.join(candidates)}); {advice}. "
        f"The columns are: {', '.join(names)}"
    )


def open_input(path: PathLike, role: str, option: Optional[str] = "") -> InputFile:
    """An input file of any format negmine reads (by its name: ``.jsonl``, ``.csv``, ``.tsv``, each optionally
    ``.gz``, else Parquet), checked to exist; see ``negmine.sources``."""
    return InputFile(path, role, option)


def _first_bad_row(mask: pa.Array | pa.ChunkedArray) -> Optional[int]:
    hits = np.flatnonzero(np.asarray(mask.to_numpy(zero_copy_only=False), dtype=bool))
    return int(hits[0]) if hits.size else None


def _first_invalid_utf8(col: pa.Array | pa.ChunkedArray) -> Optional[int]:
    """The first row of a string column whose bytes are not UTF-8 (pyarrow's JSON and Parquet readers let such
    bytes through; a reader of the output would fail on them), or ``None``."""
    offset = 0
    for chunk in (col.chunks if isinstance(col, pa.ChunkedArray) else [col]):
        try:
            chunk.validate(full=True)
        except pa.ArrowInvalid:
            lo, hi = 0, len(chunk)  # the first bad row lies in [lo, hi): halve until one row is left
            while hi - lo > 1:
                mid = (lo + hi) // 2
                try:
                    chunk.slice(lo, mid - lo).validate(full=True)
                    lo = mid
                except pa.ArrowInvalid:
                    hi = mid
            return offset + lo
        offset += len(chunk)
    return None


def _ids(table: Any, column: str, src: InputFile, offset: int = 0) -> Any:
    """The id column of a table (or record batch), checked: strings or integers, none null or empty. Messages name
    rows counted from the file's first row (``offset``: the rows before this batch), or a text file's lines."""
    col = table.column(column)
    t = col.type
    if pa.types.is_null(t) and len(col):
        raise InputError(f"{src.path}: column {column!r} {src.where(offset)}: id is null")
    if not (pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_integer(t)):
        raise InputError(f"{src.path}: column {column!r} holds {t}; ids must be strings or integers")
    row = _first_bad_row(col.is_null())
    if row is not None:
        raise InputError(f"{src.path}: column {column!r} {src.where(offset + row)}: id is null")
    if not pa.types.is_integer(t):
        row = _first_invalid_utf8(col)
        if row is not None:
            raise InputError(f"{src.path}: column {column!r} {src.where(offset + row)}: id is not UTF-8 text")
        row = _first_bad_row(pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(col)), 0))
        if row is not None:
            raise InputError(f"{src.path}: column {column!r} {src.where(offset + row)}: id is empty")
        if pa.types.is_large_string(t):
            col = pc.cast(col, pa.string())
    return col


def _plain_integers(ids: Any) -> bool:
    """Whether every id is an integer written plainly (``12``; not ``012``, ``+12`` or ``12.0``)."""
    if not (pa.types.is_string(ids.type) or pa.types.is_large_string(ids.type)):
        return False
    return len(ids) == 0 or bool(pc.all(pc.match_substring_regex(ids, PLAIN_INTEGER)).as_py())


def _integer_ids(ids: Any) -> Any:
    """A CSV or TSV id column as int64 when every value is a plain integer that fits, else as it is (strings)."""
    if len(ids) == 0 or not _plain_integers(ids):
        return ids
    try:
        return pc.cast(ids, pa.int64())
    except (pa.ArrowInvalid, OverflowError):  # past int64: keep the strings
        return ids


def _texts(table: Any, column: str, src: InputFile, offset: int = 0) -> Any:
    col = table.column(column)
    if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
        raise InputError(f"{src.path}: column {column!r} holds {col.type}; texts must be strings")
    row = _first_bad_row(col.is_null())
    if row is not None:
        raise InputError(f"{src.path}: column {column!r} {src.where(offset + row)}: text is null")
    row = _first_invalid_utf8(col)
    if row is not None:
        raise InputError(f"{src.path}: column {column!r} {src.where(offset + row)}: not UTF-8 text")
    return pc.cast(col, pa.string()) if pa.types.is_large_string(col.type) else col


def _join_titles(table: Any, title: Optional[str], texts: Any, src: InputFile, offset: int = 0) -> Any:
    """``title + " " + text`` (whitespace trimmed at both ends) where a title is given, else the text."""
    if title is None:
        return texts
    titles = table.column(title)
    if pa.types.is_null(titles.type):
        return texts
    if not (pa.types.is_string(titles.type) or pa.types.is_large_string(titles.type)):
        raise InputError(f"{src.path}: column {title!r} holds {titles.type}; titles must be strings "
                         "(--corpus-title-column '' ignores it)")
    titles = pc.cast(titles, pa.string())
    row = _first_invalid_utf8(titles)
    if row is not None:
        raise InputError(f"{src.path}: column {title!r} {src.where(offset + row)}: title is not UTF-8 text")
    has_title = pc.and_kleene(pc.is_valid(titles), pc.not_equal(titles, ""))
    joined = pc.utf8_trim_whitespace(pc.binary_join_element_wise(titles, texts, " "))
    return pc.if_else(has_title, joined, texts)


def _scores(table: Any, column: str, src: InputFile) -> np.ndarray:
    """A qrels score column as float64, checked: numbers (a CSV's values parsed), none null or NaN."""
    col = table.column(column)
    if src.untyped:
        text = pc.utf8_trim_whitespace(col)
        row = _first_bad_row(pc.invert(pc.match_substring_regex(text, NUMBER)))
        if row is not None:
            value = text[row].as_py()
            what = "score is empty" if value == "" else f"score {value!r} is not a number"
            raise InputError(f"{src.path}: column {column!r} {src.where(row)}: {what}")
        col = pc.cast(text, pa.float64())
    if not (pa.types.is_integer(col.type) or pa.types.is_floating(col.type) or pa.types.is_boolean(col.type)):
        raise InputError(f"{src.path}: column {column!r} holds {col.type}; relevance scores must be numbers")
    row = _first_bad_row(col.is_null())
    if row is not None:
        raise InputError(f"{src.path}: column {column!r} {src.where(row)}: score is null")
    if pa.types.is_floating(col.type):
        row = _first_bad_row(pc.is_nan(col))
        if row is not None:
            raise InputError(f"{src.path}: column {column!r} {src.where(row)}: score is NaN")
    return np.asarray(pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)


#: A number as a CSV or TSV score may be written.
NUMBER = r"^[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$"


def _collection_table(src: InputFile, columns: list[str], convert: Callable[[Any, int], dict[str, Any]],
                      role: str, cache_dir: Optional[PathLike]) -> pa.Table:
    """An input file's checked columns as an Arrow table: read into memory, or (with ``cache_dir``) converted
    batch by batch into an Arrow IPC file in the cache, keyed by the file's fingerprint, format and columns, and
    memory-mapped from there (no private memory for the texts, and no conversion next time). The converted ``id``
    column of a CSV or TSV file becomes int64 when every id is a plain integer."""
    path = src.path

    def in_memory() -> pa.Table:
        table = src.read(columns)
        if table.num_rows == 0:
            raise InputError(f"{path}: the {role} is empty (no rows)")
        out = pa.table(convert(table, 0))
        if src.untyped:
            at = out.column_names.index("id")
            out = out.set_column(at, "id", _integer_ids(out.column("id")))
        return out

    if cache_dir is None:
        return in_memory()
    from negmine.storage.cache import ReadOnlyCache, cached_dir, digest_of

    parts = ["inputs-v1", role, fingerprint(path), json.dumps(columns)]
    if src.is_text:  # the same bytes read as another format are another table
        parts.append(src.format + ("-v1" if src.untyped else ""))
    key = digest_of(*parts)[:32]

    def build(folder: Path) -> None:
        writer = None
        integers = src.untyped
        target = folder / "table.arrow"
        try:
            offset = 0
            for batch in src.batches(columns, batch_size=READ_BATCH):
                part = pa.record_batch(convert(batch, offset))
                integers = integers and _plain_integers(part.column("id"))
                if writer is None:
                    writer = pa.ipc.new_file(str(target), part.schema)
                writer.write_batch(part)
                offset += batch.num_rows
        finally:
            if writer is not None:
                writer.close()
        if writer is None:
            raise InputError(f"{path}: the {role} is empty (no rows)")
        if integers:
            _cast_ids(target)

    try:
        folder = cached_dir(Path(cache_dir), "inputs", key, build, {"path": str(path), "columns": columns})
    except ReadOnlyCache:  # a read-only cache without this file's copy: read it into memory instead
        return in_memory()
    return pa.ipc.open_file(pa.memory_map(str(folder / "table.arrow"))).read_all()


def _cast_ids(target: Path) -> None:
    """Rewrite an IPC table with its ``id`` column as int64 (every id a plain integer), batch by batch; left as it
    is when an id does not fit."""
    tmp = target.with_name("table.int.arrow")
    source = pa.ipc.open_file(pa.memory_map(str(target)))
    schema = source.schema.set(0, pa.field("id", pa.int64()))
    try:
        with pa.ipc.new_file(str(tmp), schema) as writer:
            for i in range(source.num_record_batches):
                batch = source.get_batch(i)
                writer.write_batch(batch.set_column(0, "id", pc.cast(batch.column(0), pa.int64())))
    except (pa.ArrowInvalid, OverflowError):
        tmp.unlink(missing_ok=True)
        return
    tmp.replace(target)


def read_corpus(
    path: PathLike, id_column: Optional[str] = None, text_column: Optional[str] = None,
    title_column: Optional[str] = None, cache_dir: Optional[PathLike] = None,
) -> Corpus:
    """Read and check a corpus file (Parquet, JSON Lines, CSV or TSV, by its name). A title column, when there is
    one, is joined before the text.

    With ``cache_dir`` the corpus is converted once into a memory-mapped Arrow file there (see
    ``_collection_table``): texts then take no private memory, whatever the corpus's size.
    """
    src = open_input(path, "corpus")
    schema = src.schema()
    idc = pick_column(schema, path, id_column, CORPUS_ID, "id", "--corpus-id-column")
    txc = pick_column(schema, path, text_column, CORPUS_TEXT, "text", "--corpus-text-column")
    tic = pick_column(schema, path, title_column, TITLE, "title", "--corpus-title-column", required=False)
    assert idc is not None and txc is not None

    def convert(batch: Any, offset: int) -> dict[str, Any]:
        bodies = _texts(batch, txc, src, offset)
        out = {"id": _ids(batch, idc, src, offset), "text": _join_titles(batch, tic, bodies, src, offset)}
        if tic is not None:
            out["body"] = bodies
        return out

    table = _collection_table(src, list(dict.fromkeys(c for c in (idc, txc, tic) if c)), convert, "corpus",
                              cache_dir)
    return Corpus(table.column("id"), table.column("text"), f"{path}: column {idc!r}",
                  table.column("body") if "body" in table.column_names else None, where=src.where)


def read_queries(path: PathLike, id_column: Optional[str] = None, text_column: Optional[str] = None,
                 cache_dir: Optional[PathLike] = None) -> Queries:
    """Read and check a query file (memory-mapped from ``cache_dir`` when given, as ``read_corpus``)."""
    src = open_input(path, "queries")
    schema = src.schema()
    idc = pick_column(schema, path, id_column, QUERY_ID, "id", "--query-id-column")
    txc = pick_column(schema, path, text_column, QUERY_TEXT, "text", "--query-text-column")
    assert idc is not None and txc is not None

    def convert(batch: Any, offset: int) -> dict[str, Any]:
        return {"id": _ids(batch, idc, src, offset), "text": _texts(batch, txc, src, offset)}

    table = _collection_table(src, list(dict.fromkeys((idc, txc))), convert, "query file", cache_dir)
    return Queries(table.column("id"), table.column("text"), f"{path}: column {idc!r}", where=src.where)


def read_qrels(
    path: PathLike, query_column: Optional[str] = None, doc_column: Optional[str] = None,
    score_column: Optional[str] = None,
) -> Qrels:
    """Read and check relevance judgments. Without a score column every row is a positive."""
    src = open_input(path, "qrels")
    schema = src.schema()
    qc = pick_column(schema, path, query_column, QRELS_QUERY, "query id", "--qrels-query-column")
    dc = pick_column(schema, path, doc_column, QRELS_DOC, "document id", "--qrels-doc-column")
    sc = pick_column(schema, path, score_column, QRELS_SCORE, "score", "--qrels-score-column", required=False)
    assert qc is not None and dc is not None
    types = None
    if sc is not None and src.format == JSONL:
        t = schema.field(sc).type
        if pa.types.is_integer(t) or pa.types.is_floating(t):  # 1 on the first lines, 0.5 later: numbers
            types = {sc: pa.float64()}
    table = src.read(list(dict.fromkeys(c for c in (qc, dc, sc) if c)), types)
    if table.num_rows == 0:
        raise InputError(f"{path}: the qrels file is empty (no rows)")
    qids = _ids(table, qc, src)
    dids = _ids(table, dc, src)
    if src.untyped:
        qids, dids = _integer_ids(qids), _integer_ids(dids)
    scores: Any = np.ones(table.num_rows) if sc is None else _scores(table, sc, src)
    return Qrels(qids, dids, scores, str(path), where=src.where)


def read_pairs(
    path: PathLike, anchor_column: Optional[str] = None, positive_column: Optional[str] = None
) -> tuple[list[str], list[str]]:
    """Read (anchor, positive) text pairs, as sentence-transformers datasets hold them."""
    src = open_input(path, "pairs")
    schema = src.schema()
    ac = pick_column(schema, path, anchor_column, PAIRS_ANCHOR, "anchor (query text)", "--pairs-anchor-column")
    pc_ = pick_column(schema, path, positive_column, PAIRS_POSITIVE, "positive text", "--pairs-positive-column")
    assert ac is not None and pc_ is not None
    if ac == pc_:
        raise ConfigError(f"{path}: the anchor and positive columns are both {ac!r}")
    table = src.read([ac, pc_])
    if table.num_rows == 0:
        raise InputError(f"{path}: the pairs file is empty (no rows)")
    return _texts(table, ac, src).to_pylist(), _texts(table, pc_, src).to_pylist()


@dataclass
class Inputs:
    """The loaded inputs of a run and where they came from (role -> path, for the provenance)."""

    corpus: Corpus
    queries: Queries
    qrels: Qrels
    files: dict[str, str]
    beir: Optional[dict[str, str]] = None  # the BEIR folder and split the files came from, when they did


def load_inputs(
    config: Any, corpus: Any = None, queries: Any = None, qrels: Any = None, pairs: Any = None,
    cache_dir: Optional[PathLike] = None,
) -> Inputs:
    """Read (or take as given) the corpus, queries and qrels of a run; a pairs file stands for queries and qrels.
    Files are read as the config's column options say, memory-mapped from ``cache_dir`` when given."""
    files: dict[str, str] = {}

    def path_of(role: str, value: Any) -> Optional[str]:
        if isinstance(value, (str, Path)):
            files[role] = str(value)
            return str(value)
        return None

    if pairs is not None:
        if queries is not None or qrels is not None:
            raise ConfigError("--pairs replaces --queries and --qrels: give either pairs or queries and qrels")
    elif queries is None or qrels is None:
        raise ConfigError("give --queries and --qrels (with --corpus), or --pairs")
    elif corpus is None:
        raise ConfigError("--corpus is required with --queries and --qrels")

    c: Optional[Corpus] = None
    if corpus is not None:
        p = path_of("corpus", corpus)
        c = read_corpus(p, config.corpus_id_column, config.corpus_text_column, config.corpus_title_column,
                        cache_dir) if p else corpus
    if pairs is not None:
        p = path_of("pairs", pairs)
        if p:
            anchors, positives = read_pairs(p, config.pairs_anchor_column, config.pairs_positive_column)
        else:
            rows = list(pairs)
            anchors, positives = [a for a, _ in rows], [b for _, b in rows]
        q, c, r = pairs_to_inputs(anchors, positives, p or "<pairs>", c)
    else:
        p = path_of("queries", queries)
        q = read_queries(p, config.query_id_column, config.query_text_column, cache_dir) if p else queries
        p = path_of("qrels", qrels)
        r = read_qrels(p, config.qrels_query_column, config.qrels_doc_column, config.qrels_score_column) \
            if p else qrels
    assert c is not None
    return Inputs(c, q, r, files)


def output_format(path: PathLike) -> Optional[str]:
    """What an output path is written as, by its name: ``parquet``, ``jsonl``, ``jsonl.gz``, ``stdout`` (``-``:
    JSON Lines on stdout), or ``None`` for a name negmine does not write."""
    if str(path) == STDOUT:
        return "stdout"
    name = Path(path).name.lower()
    for suffix in sorted(OUTPUT_FORMATS, key=len, reverse=True):
        if name.endswith(suffix):
            return OUTPUT_FORMATS[suffix]
    return None


def check_output_path(output: PathLike, inputs: Sequence[Optional[PathLike]], option: str = "--output",
                      suffixes: Optional[tuple[str, ...]] = None, stdout: bool = False) -> Path:
    """Refuse an output path that is one of the inputs, whose folder does not exist, or whose name says no format
    negmine writes: ``.parquet``, ``.jsonl``, ``.jsonl.gz`` (a JSON Lines output's provenance sidecar,
    ``OUT.provenance.json``, is checked as well), or ``-`` for stdout where ``stdout`` allows it; ``suffixes``
    names the only file kinds allowed instead (``(".png",)``, say)."""
    kind = output_format(output) if suffixes is None else "other"
    if kind == "stdout":
        if not stdout:
            raise ConfigError(f"{option} -: only --output can go to stdout; give {option} a file path")
        return Path(STDOUT)
    out = Path(output)
    targets = [out, sidecar_path(out)] if kind in ("jsonl", "jsonl.gz") else [out]
    for target in targets:
        for given in inputs:
            if given is None or str(given) == STDOUT:
                continue
            inp = Path(given)
            same = target.resolve() == inp.resolve() or (target.exists() and inp.exists()
                                                         and os.path.samefile(target, inp))
            if same:
                raise ConfigError(
                    f"{option} {target} is an input file; negmine never overwrites its inputs: choose another path"
                )
    if out.is_dir():
        raise ConfigError(f"{option} {out} is a directory; give a file path such as {out / 'negatives.parquet'}")
    if suffixes is not None and not out.name.lower().endswith(suffixes):
        raise ConfigError(f"{option} {out}: name the file with a {' or '.join(suffixes)} extension")
    if kind is None:
        written = ".parquet, .jsonl or .jsonl.gz (the format follows the extension)"
        raise ConfigError(f"{option} {out}: the name says no format negmine writes; end it with {written}"
                          + (", or give - for JSON Lines on stdout" if stdout else ""))
    if len(targets) > 1 and targets[1].is_dir():
        raise ConfigError(f"{option} {out}: {targets[1]} (where its provenance goes) is a directory")
    if not out.parent.exists():
        raise ConfigError(f"{option} {out}: folder {out.parent} does not exist")
    check_writable(out.parent, option)
    return out


def open_sink(path: PathLike, row_group_size: int) -> "ParquetSink | JsonLinesSink":
    """The sink an output path's name asks for (see ``output_format``): Parquet in row groups of
    ``row_group_size`` rows, JSON Lines (gzipped for ``.jsonl.gz``), or JSON Lines on stdout for ``-``."""
    kind = output_format(path)
    if kind == "stdout":
        return JsonLinesSink(None)
    if kind in ("jsonl", "jsonl.gz"):
        return JsonLinesSink(path, compress=kind == "jsonl.gz")
    return ParquetSink(path, row_group_size)


def read_output(path: PathLike, schema: Optional[pa.Schema] = None) -> pa.Table:
    """An output negmine wrote, as a table (``read_metadata`` gives its provenance): Parquet as it is; JSON Lines
    read with ``schema`` (the types of the rows written; default: as pyarrow infers them)."""
    kind = output_format(path)
    if kind == "stdout":
        raise ConfigError("the output went to stdout (-), so it cannot be read back; write it to a file")
    if kind not in ("jsonl", "jsonl.gz"):
        return pq.read_table(path)
    options = pjson.ParseOptions(explicit_schema=schema) if schema is not None else None
    with pa.input_stream(str(path), compression="gzip" if kind == "jsonl.gz" else None) as stream:
        try:
            table = pjson.read_json(stream, parse_options=options)
        except pa.ArrowInvalid as exc:
            if schema is not None and "Empty" in str(exc):
                table = schema.empty_table()
            else:
                raise InputError(f"{path}: not a readable JSON Lines file ({first_line(exc)})") from exc
    return table.select(schema.names) if schema is not None else table


def write_parquet(table: pa.Table, path: PathLike, metadata: Optional[dict[str, Any]] = None) -> None:
    """Write ``table`` atomically: to a temporary file beside ``path``, then rename it into place.

    ``metadata`` is stored as JSON under the file's ``negmine`` key-value entry.
    """
    target = Path(path)
    if metadata is not None:
        meta = dict(table.schema.metadata or {})
        meta[METADATA_KEY] = json.dumps(metadata, sort_keys=True, default=str).encode("utf-8")
        table = table.replace_schema_metadata(meta)
    with atomic_target(target) as tmp:
        pq.write_table(table, tmp, compression="zstd")


class ParquetSink:
    """A Parquet file written as tables arrive, in row groups of exactly ``row_group_size`` rows whatever the
    sizes of the tables (so the file's bytes depend on its rows alone, not on how they were batched), into a
    temporary file beside ``path`` that ``commit`` renames into place and ``abort`` removes.

    An ``OSError`` (a full disk, no permission) becomes a one-line ``StorageError`` naming ``path``.
    """

    def __init__(self, path: PathLike, row_group_size: int = 16384) -> None:
        self.target = Path(path)
        self.row_group_size = row_group_size
        try:
            self.tmp = temp_path(self.target.parent, self.target.name)
        except OSError as exc:
            raise storage_error(self.target, exc) from exc
        self.writer: Optional[pq.ParquetWriter] = None
        self.pending: list[pa.Table] = []
        self.n_pending = 0
        self.rows = 0

    def write(self, table: pa.Table) -> None:
        """Add rows; full row groups are written at once."""
        self.pending.append(table)
        self.n_pending += table.num_rows
        while self.n_pending >= self.row_group_size:
            self._flush(self.row_group_size)

    def _flush(self, n: int) -> None:
        table = pa.concat_tables(self.pending) if len(self.pending) > 1 else self.pending[0]
        head, rest = table.slice(0, n), table.slice(n)
        try:
            if self.writer is None:
                self.writer = pq.ParquetWriter(self.tmp, head.schema, compression="zstd")
            self.writer.write_table(head, row_group_size=max(n, 1))
        except OSError as exc:
            self.abort()
            raise storage_error(self.target, exc) from exc
        self.pending, self.n_pending = [rest], rest.num_rows
        self.rows += n

    def commit(self, metadata: Optional[dict[str, Any]] = None, empty: Optional[pa.Table] = None) -> Path:
        """Write what is left, the ``negmine`` metadata entry, and rename the file into place. ``empty`` gives the
        schema of a file no row was written to."""
        try:
            if self.n_pending or self.writer is None:
                if not self.pending:
                    self.pending = [empty if empty is not None else pa.table({})]
                self._flush(self.n_pending)
            assert self.writer is not None
            if metadata is not None:
                self.writer.add_key_value_metadata(
                    {METADATA_KEY: json.dumps(metadata, sort_keys=True, default=str).encode("utf-8")})
            self.writer.close()
            os.chmod(self.tmp, 0o666 & ~_umask())
            os.replace(self.tmp, self.target)
        except OSError as exc:
            self.abort()
            raise storage_error(self.target, exc) from exc
        except BaseException:
            self.abort()
            raise
        return self.target

    def abort(self) -> None:
        """Remove the temporary file (nothing was published)."""
        if self.writer is not None:
            try:
                self.writer.close()
            except Exception:  # noqa: BLE001 - already failing; the file goes anyway
                pass
            self.writer = None
        self.tmp.unlink(missing_ok=True)


def read_metadata(path: PathLike) -> dict[str, Any]:
    """The provenance negmine stored with an output it wrote: a Parquet file's ``negmine`` key-value entry, or a
    JSON Lines file's sidecar ``OUT.provenance.json`` (the sidecar's own path works too)."""
    p = Path(path)
    side = p if p.name.endswith(SIDECAR) else sidecar_path(p) if output_format(p) in ("jsonl", "jsonl.gz") else None
    if side is None:
        read_schema(path, "negmine output", None)
        meta = pq.read_metadata(path).metadata or {}
        if METADATA_KEY not in meta:
            raise InputError(f"{path}: no negmine metadata; was it written by negmine mine?")
        return json.loads(meta[METADATA_KEY])
    if not p.exists():
        raise InputError(f"negmine output file not found: {p}")
    if not side.is_file():
        raise InputError(f"{p}: no provenance file {side.name} beside it; negmine mine writes one with every JSON "
                         "Lines file (but none for stdout)")
    try:
        data = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{side}: not a readable provenance file ({first_line(exc)})") from exc
    if not isinstance(data, dict) or "config" not in data:
        raise InputError(f"{side}: no negmine provenance; was it written by negmine mine?")
    return data
