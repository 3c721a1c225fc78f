"""Parquet in and out: column detection, schema and row checks, fingerprints, atomic writes."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence, Union

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from negmine.data import Corpus, Qrels, Queries
from negmine.errors import ConfigError, InputError

PathLike = Union[str, "os.PathLike[str]"]

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


def read_schema(path: PathLike, role: str) -> pa.Schema:
    """The schema of a Parquet file, or an InputError that says what is wrong with the file."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{role} file not found: {p} (check the --{role} path)")
    if p.is_dir():
        raise InputError(f"{role} path is a directory, not a Parquet file: {p}")
    try:
        return pq.read_schema(p)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"{p}: not a readable Parquet file ({_first_line(exc)})") from exc


def pick_column(
    schema: pa.Schema, path: PathLike, given: Optional[str], candidates: Sequence[str], what: str, option: str,
    required: bool = True,
) -> Optional[str]:
    """Resolve a column: the one the user named, else the first of ``candidates`` the file has."""
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
    raise InputError(
        f"{path}: no {what} column (looked for {', '.join(candidates)}); name it with {option}. "
        f"The columns are: {', '.join(names)}"
    )


def _read_columns(path: PathLike, columns: list[str]) -> pa.Table:
    try:
        return pq.read_table(path, columns=columns)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"{path}: could not read columns {', '.join(columns)} ({_first_line(exc)})") from exc


def _first_bad_row(mask: pa.Array | pa.ChunkedArray) -> Optional[int]:
    hits = np.flatnonzero(np.asarray(mask.to_numpy(zero_copy_only=False), dtype=bool))
    return int(hits[0]) if hits.size else None


def _ids(table: pa.Table, column: str, path: PathLike) -> list[Any]:
    col = table.column(column)
    t = col.type
    if not (pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_integer(t)):
        raise InputError(f"{path}: column {column!r} holds {t}; ids must be strings or integers")
    row = _first_bad_row(col.is_null())
    if row is not None:
        raise InputError(f"{path}: column {column!r} row {row}: id is null")
    if not pa.types.is_integer(t):
        row = _first_bad_row(pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(col)), 0))
        if row is not None:
            raise InputError(f"{path}: column {column!r} row {row}: id is empty")
    return col.to_pylist()


def _texts(table: pa.Table, column: str, path: PathLike) -> list[str]:
    col = table.column(column)
    if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
        raise InputError(f"{path}: column {column!r} holds {col.type}; texts must be strings")
    row = _first_bad_row(col.is_null())
    if row is not None:
        raise InputError(f"{path}: column {column!r} row {row}: text is null")
    return col.to_pylist()


def _join_titles(table: pa.Table, title: Optional[str], texts: list[str], path: PathLike) -> list[str]:
    if title is None:
        return texts
    titles = table.column(title)
    if not (pa.types.is_string(titles.type) or pa.types.is_large_string(titles.type)):
        raise InputError(f"{path}: column {title!r} holds {titles.type}; titles must be strings "
                         "(--corpus-title-column '' ignores it)")
    return [f"{t} {x}".strip() if t else x for t, x in zip(titles.to_pylist(), texts)]


def read_corpus(
    path: PathLike, id_column: Optional[str] = None, text_column: Optional[str] = None,
    title_column: Optional[str] = None,
) -> Corpus:
    """Read and check a corpus file. A title column, when there is one, is joined before the text."""
    schema = read_schema(path, "corpus")
    idc = pick_column(schema, path, id_column, CORPUS_ID, "id", "--corpus-id-column")
    txc = pick_column(schema, path, text_column, CORPUS_TEXT, "text", "--corpus-text-column")
    tic = pick_column(schema, path, title_column, TITLE, "title", "--corpus-title-column", required=False)
    assert idc is not None and txc is not None
    table = _read_columns(path, list(dict.fromkeys(c for c in (idc, txc, tic) if c)))
    if table.num_rows == 0:
        raise InputError(f"{path}: the corpus is empty (no rows)")
    ids = _ids(table, idc, path)
    bodies = _texts(table, txc, path)
    corpus = Corpus(ids, _join_titles(table, tic, bodies, path), f"{path}: column {idc!r}")
    corpus.bodies = bodies
    return corpus


def read_queries(path: PathLike, id_column: Optional[str] = None, text_column: Optional[str] = None) -> Queries:
    """Read and check a query file."""
    schema = read_schema(path, "queries")
    idc = pick_column(schema, path, id_column, QUERY_ID, "id", "--query-id-column")
    txc = pick_column(schema, path, text_column, QUERY_TEXT, "text", "--query-text-column")
    assert idc is not None and txc is not None
    table = _read_columns(path, list(dict.fromkeys((idc, txc))))
    if table.num_rows == 0:
        raise InputError(f"{path}: the query file is empty (no rows)")
    return Queries(_ids(table, idc, path), _texts(table, txc, path), f"{path}: column {idc!r}")


def read_qrels(
    path: PathLike, query_column: Optional[str] = None, doc_column: Optional[str] = None,
    score_column: Optional[str] = None,
) -> Qrels:
    """Read and check relevance judgments. Without a score column every row is a positive."""
    schema = read_schema(path, "qrels")
    qc = pick_column(schema, path, query_column, QRELS_QUERY, "query id", "--qrels-query-column")
    dc = pick_column(schema, path, doc_column, QRELS_DOC, "document id", "--qrels-doc-column")
    sc = pick_column(schema, path, score_column, QRELS_SCORE, "score", "--qrels-score-column", required=False)
    assert qc is not None and dc is not None
    table = _read_columns(path, list(dict.fromkeys(c for c in (qc, dc, sc) if c)))
    if table.num_rows == 0:
        raise InputError(f"{path}: the qrels file is empty (no rows)")
    qids = _ids(table, qc, path)
    dids = _ids(table, dc, path)
    if sc is None:
        scores = [1.0] * table.num_rows
    else:
        col = table.column(sc)
        if not (pa.types.is_integer(col.type) or pa.types.is_floating(col.type) or pa.types.is_boolean(col.type)):
            raise InputError(f"{path}: column {sc!r} holds {col.type}; relevance scores must be numbers")
        row = _first_bad_row(col.is_null())
        if row is not None:
            raise InputError(f"{path}: column {sc!r} row {row}: score is null")
        if pa.types.is_floating(col.type):
            row = _first_bad_row(pc.is_nan(col))
            if row is not None:
                raise InputError(f"{path}: column {sc!r} row {row}: score is NaN")
        scores = [float(s) for s in col.to_pylist()]
    return Qrels(qids, dids, scores, str(path))


def read_pairs(
    path: PathLike, anchor_column: Optional[str] = None, positive_column: Optional[str] = None
) -> tuple[list[str], list[str]]:
    """Read (anchor, positive) text pairs, as sentence-transformers datasets hold them."""
    schema = read_schema(path, "pairs")
    ac = pick_column(schema, path, anchor_column, PAIRS_ANCHOR, "anchor (query text)", "--pairs-anchor-column")
    pc_ = pick_column(schema, path, positive_column, PAIRS_POSITIVE, "positive text", "--pairs-positive-column")
    assert ac is not None and pc_ is not None
    if ac == pc_:
        raise ConfigError(f"{path}: the anchor and positive columns are both {ac!r}")
    table = _read_columns(path, [ac, pc_])
    if table.num_rows == 0:
        raise InputError(f"{path}: the pairs file is empty (no rows)")
    return _texts(table, ac, path), _texts(table, pc_, path)


def file_sha256(path: PathLike) -> str:
    """SHA-256 hex digest of a file's bytes, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def fingerprint(path: PathLike) -> str:
    """SHA-256 of a file's bytes, as ``sha256:<hex>`` (an input's fingerprint in the provenance)."""
    return "sha256:" + file_sha256(path)


def check_output_path(output: PathLike, inputs: Sequence[Optional[PathLike]], option: str = "--output") -> Path:
    """Refuse an output path that is one of the inputs, or whose folder does not exist."""
    out = Path(output)
    for given in inputs:
        if given is None:
            continue
        inp = Path(given)
        same = out.resolve() == inp.resolve() or (out.exists() and inp.exists() and os.path.samefile(out, inp))
        if same:
            raise ConfigError(
                f"{option} {out} is an input file; negmine never overwrites its inputs: choose another path"
            )
    if out.is_dir():
        raise ConfigError(f"{option} {out} is a directory; give a file path such as {out / 'negatives.parquet'}")
    if not out.parent.exists():
        raise ConfigError(f"{option} {out}: folder {out.parent} does not exist")
    return out


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


@contextmanager
def atomic_target(path: PathLike) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; renamed onto ``path`` when the block succeeds, removed when
    it fails, so a reader never sees a half-written file."""
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: PathLike, text: str) -> None:
    """Write a text file atomically."""
    with atomic_target(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def read_metadata(path: PathLike) -> dict[str, Any]:
    """The provenance negmine stored in a Parquet file it wrote."""
    meta = read_schema(path, "output").metadata or {}
    if METADATA_KEY not in meta:
        raise InputError(f"{path}: no negmine metadata; was it written by negmine mine?")
    return json.loads(meta[METADATA_KEY])


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
