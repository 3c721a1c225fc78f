"""Columns of the input files: the usual names each role is detected by, and the checks of an id, a text, a
title and a score column, with messages that name the file, the column and the row (or line)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from negmine.errors import InputError
from negmine.inputs.beir import beir_files as beir_files
from negmine.inputs.formats import PLAIN_INTEGER, InputFile, first_line
from negmine.storage.files import PathLike

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
    ``.gz``, else Parquet), checked to exist; see ``negmine.inputs.read``."""
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
