"""Reading the inputs of a run: the corpus, the queries, the qrels and pairs files, checked, as Arrow
tables (memory-mapped from the cache's copy when there is a cache folder)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from negmine.errors import ConfigError, InputError
from negmine.inputs.beir import beir_files as beir_files
from negmine.inputs.columns import (
    CORPUS_ID,
    CORPUS_TEXT,
    PAIRS_ANCHOR,
    PAIRS_POSITIVE,
    QRELS_DOC,
    QRELS_QUERY,
    QRELS_SCORE,
    QUERY_ID,
    QUERY_TEXT,
    TITLE,
    _ids,
    _integer_ids,
    _join_titles,
    _plain_integers,
    _scores,
    _texts,
    open_input,
    pick_column,
)
from negmine.inputs.data import Corpus, Qrels, Queries, pairs_to_inputs
from negmine.inputs.formats import JSONL, READ_BATCH, InputFile
from negmine.storage.cache import ReadOnlyCache, cached_dir, digest_of
from negmine.storage.files import PathLike, fingerprint


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
