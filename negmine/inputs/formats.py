"""Input files of every format negmine reads, behind one interface: ``InputFile`` gives a file's schema and its
rows as record batches, whatever the format, which the name's ending chooses:

```
.jsonl  .jsonl.gz   JSON Lines (pyarrow.json): one object per line; JSON types kept (strings, integers, numbers)
.csv    .csv.gz     CSV (pyarrow.csv): a header line, then comma-separated values; RFC 4180 quotes, which may
                    hold commas and line breaks
.tsv    .tsv.gz     TSV (pyarrow.csv): a header line, then tab-separated values, no quoting (BEIR's qrels)
anything else       Parquet (pyarrow.parquet)
```

CSV and TSV values are untyped text: negmine reads every column as strings, and a column of ids becomes integers
only if every value is an integer written plainly (``12``, not ``012`` or ``+12``), so that no id changes.

Messages name a Parquet file's rows (0-based, as pyarrow and pandas count them) and a text file's lines (1-based,
as editors count them; a CSV or TSV header is line 1). Lines are found by reading the file again, and only when
a message needs one. Also here: the files of a BEIR folder.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Iterator, Optional, Sequence, Union

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.json as pjson
import pyarrow.parquet as pq

from negmine.errors import InputError

PathLike = Union[str, "os.PathLike[str]"]


PARQUET, JSONL, CSV, TSV = "parquet", "jsonl", "csv", "tsv"


#: Name endings of the text formats (each also with ``.gz``); any other name is read as Parquet.
TEXT_SUFFIXES = {".jsonl": JSONL, ".csv": CSV, ".tsv": TSV}

FORMAT_NAMES = {PARQUET: "Parquet", JSONL: "JSON Lines", CSV: "CSV", TSV: "TSV"}

#: What the formats are called in advice.
READABLE = "Parquet, or JSON Lines, CSV or TSV named .jsonl, .csv or .tsv (each optionally .gz)"

#: Rows per record batch that ``InputFile.batches`` yields, whatever the format.
READ_BATCH = 65536

#: Bytes pyarrow reads of a text file at a time (and infers a JSON file's column types from).
BLOCK = 1 << 20

#: A CSV id column whose values all match this becomes int64 (when they fit).
PLAIN_INTEGER = r"^-?(0|[1-9][0-9]{0,18})$"

#: What the empty-file message calls each role's file.
EMPTY_NAMES = {"corpus": "the corpus", "queries": "the query file", "qrels": "the qrels file",
               "pairs": "the pairs file"}


def input_format(path: PathLike) -> tuple[str, bool]:
    """(format, gzipped) of an input file, from its name: ``.jsonl``, ``.csv``, ``.tsv`` (each optionally
    ``.gz``), else Parquet."""
    name = Path(path).name.lower()
    gz = name.endswith(".gz")
    base = name[:-3] if gz else name
    for suffix, fmt in TEXT_SUFFIXES.items():
        if base.endswith(suffix):
            return fmt, gz
    return PARQUET, False


def row_label(row: int) -> str:
    """How a message names a row of an in-memory or Parquet input: ``row N`` (0-based)."""
    return f"row {row}"


class InputFile:
    """One input file: its schema and its rows as record batches, for any format negmine reads.

    Args:
        path: The file.
        role: What it is (``corpus``, ``queries``, ``qrels``, ``pairs``), for messages.
        option: The flag that gave the path (default ``--{role}``); ``None`` when no flag did.

    Raises:
        InputError: The file does not exist, or is a directory.
    """

    def __init__(self, path: PathLike, role: str, option: Optional[str] = "") -> None:
        self.path = Path(path)
        self.role = role
        self.format, self.gzip = input_format(self.path)
        self._schema: Optional[pa.Schema] = None
        if not self.path.exists():
            flag = f"--{role}" if option == "" else option
            raise InputError(f"{role} file not found: {self.path}" + (f" (check the {flag} path)" if flag else ""))
        if self.path.is_dir():
            raise InputError(f"{role} path is a directory, not a {FORMAT_NAMES[self.format]} file: {self.path}")

    @property
    def is_text(self) -> bool:
        """JSON Lines, CSV or TSV: messages name lines, not rows."""
        return self.format != PARQUET

    @property
    def untyped(self) -> bool:
        """CSV or TSV: every value is text, read as a string."""
        return self.format in (CSV, TSV)

    @property
    def kind(self) -> str:
        """The format's name, as messages say it."""
        return FORMAT_NAMES[self.format] + (" (gzip)" if self.gzip else "")

    def __repr__(self) -> str:
        return f"InputFile({str(self.path)!r}, {self.format}{', gzip' if self.gzip else ''})"

    # --- schema and batches ------------------------------------------------------------------------------------

    def schema(self) -> pa.Schema:
        """The file's columns: Parquet's schema; a JSON Lines file's as pyarrow infers them from its first block;
        a CSV or TSV file's header, every column a string."""
        if self._schema is None:
            self._schema = self._read_schema()
        return self._schema

    def _read_schema(self) -> pa.Schema:
        if self.format == PARQUET:
            try:
                return pq.read_schema(self.path)
            except (pa.ArrowInvalid, OSError) as exc:
                hint = "" if self.path.name.lower().endswith(".parquet") else f"; negmine reads {READABLE}"
                raise InputError(f"{self.path}: not a readable Parquet file ({first_line(exc)}){hint}") from exc
        try:
            with self._stream() as stream:
                if self.format == JSONL:
                    schema = open_json(stream, pjson.ReadOptions(block_size=BLOCK)).schema
                else:
                    reader = pcsv.open_csv(stream, read_options=pcsv.ReadOptions(block_size=BLOCK),
                                           parse_options=self._csv_parse())
                    schema = pa.schema([(name, pa.string()) for name in reader.schema.names])
        except (pa.ArrowInvalid, OSError, EOFError) as exc:
            if self._records() == 0:
                raise InputError(f"{self.path}: {EMPTY_NAMES.get(self.role, 'the file')} is empty (no rows)") from None
            raise self.read_error(exc, []) from exc
        return schema

    def read(self, columns: Sequence[str], types: Optional[dict[str, pa.DataType]] = None) -> pa.Table:
        """The named columns, whole, in the order given."""
        if self.format == PARQUET:
            try:
                return pq.read_table(self.path, columns=list(columns))
            except (pa.ArrowInvalid, OSError) as exc:
                raise self.read_error(exc, columns) from exc
        parts = list(self.batches(columns, types))
        if not parts:
            return pa.table({c: pa.array([], self._type(c, types)) for c in columns})
        return pa.Table.from_batches(parts)

    def batches(self, columns: Sequence[str], types: Optional[dict[str, pa.DataType]] = None,
                batch_size: int = READ_BATCH) -> Iterator[pa.RecordBatch]:
        """The named columns, ``batch_size`` rows at a time (the last batch shorter), read as the file streams.

        ``types`` fixes a text file's column types (a JSON Lines file's scores as float64, say); by default a JSON
        column keeps the type pyarrow infers from the first block (strings where it saw only nulls), and a CSV
        or TSV column is a string.

        Raises:
            InputError: The file cannot be read or parsed; for a text file the message names the first line that
                is wrong, when one is.
        """
        columns = list(columns)
        try:
            if self.format == PARQUET:
                yield from pq.ParquetFile(self.path).iter_batches(batch_size=batch_size, columns=columns)
                return
            with self._stream() as stream:
                if self.format == JSONL:
                    schema = pa.schema([(c, self._type(c, types)) for c in columns])
                    reader: Any = open_json(stream, pjson.ReadOptions(block_size=BLOCK), pjson.ParseOptions(
                        explicit_schema=schema, unexpected_field_behavior="ignore"))
                else:
                    reader = pcsv.open_csv(
                        stream, read_options=pcsv.ReadOptions(block_size=BLOCK), parse_options=self._csv_parse(),
                        convert_options=pcsv.ConvertOptions(
                            include_columns=columns, column_types={c: self._type(c, types) for c in columns},
                            strings_can_be_null=False))
                yield from _rebatch((b.select(columns) for b in reader), batch_size)
        except (pa.ArrowInvalid, OSError, EOFError) as exc:
            if isinstance(exc, OSError) and not isinstance(exc, pa.ArrowException) and exc.errno is not None:
                raise  # a storage failure (the disk), not the file's content
            raise self.read_error(exc, columns, types) from exc

    def _type(self, column: str, types: Optional[dict[str, pa.DataType]]) -> pa.DataType:
        if types and column in types:
            return types[column]
        if self.untyped:
            return pa.string()
        t = self.schema().field(column).type
        return pa.string() if pa.types.is_null(t) or pa.types.is_large_string(t) else t

    def _csv_parse(self) -> pcsv.ParseOptions:
        if self.format == TSV:
            return pcsv.ParseOptions(delimiter="\t", quote_char=False, ignore_empty_lines=True)
        return pcsv.ParseOptions(delimiter=",", quote_char='"', double_quote=True, newlines_in_values=True,
                                 ignore_empty_lines=True)

    @contextmanager
    def _stream(self) -> Iterator[Any]:
        with pa.input_stream(str(self.path), compression="gzip" if self.gzip else None) as stream:
            yield stream

    # --- where a row is ----------------------------------------------------------------------------------------

    def where(self, row: int) -> str:
        """How a message names data row ``row`` (0-based): ``row N`` in a Parquet file, ``line N`` (1-based, as
        editors count them) in a text file."""
        if not self.is_text:
            return row_label(row)
        line = self.lines_of([row]).get(row)
        return f"line {line}" if line is not None else f"row {row}"

    def lines_of(self, rows: Sequence[int]) -> dict[int, int]:
        """The line on which each data row starts (reading the file up to the last of them): blank lines are
        skipped as pyarrow skips them, a CSV header is line 1, a quoted CSV value may span lines."""
        wanted = set(rows)
        found: dict[int, int] = {}
        if not wanted:
            return found
        last = max(wanted)
        for row, line in self._record_lines():
            if row in wanted:
                found[row] = line
            if row >= last:
                break
        return found

    def _records(self) -> int:
        """How many data rows the file holds (a text file's, read again)."""
        n = 0
        try:
            for _ in self._record_lines():
                n += 1
        except (OSError, EOFError, UnicodeDecodeError, csv.Error):
            return -1
        return n

    def _record_lines(self) -> Iterator[tuple[int, int]]:
        """(data row, line it starts on) of a text file, in order."""
        with self._binary() as fh:
            if self.format == JSONL:
                row = 0
                for number, raw in enumerate(fh, 1):
                    if raw.strip(b" \t\r\n"):
                        yield row, number
                        row += 1
                return
            text = _text(fh)
            with _csv_limit():
                reader = csv.reader(text, **self._csv_dialect())
                previous, row, header = 0, 0, True
                for record in reader:
                    start, previous = previous + 1, reader.line_num
                    if not record:
                        continue
                    if header:
                        header = False
                        continue
                    yield row, start
                    row += 1

    def _csv_dialect(self) -> dict[str, Any]:
        if self.format == TSV:
            return {"delimiter": "\t", "quoting": csv.QUOTE_NONE}
        return {"delimiter": ",", "quotechar": '"', "doublequote": True}

    @contextmanager
    def _binary(self) -> Iterator[IO[bytes]]:
        if self.gzip:
            with gzip.open(self.path, "rb") as fh:
                yield fh  # type: ignore[misc]
        else:
            with open(self.path, "rb") as fh:
                yield fh

    # --- what went wrong ---------------------------------------------------------------------------------------

    def read_error(self, exc: BaseException, columns: Sequence[str],
                   types: Optional[dict[str, pa.DataType]] = None) -> InputError:
        """A one-line InputError for a failure to read the file: for a text file, the first line that is wrong and
        why, when one is found; else pyarrow's reason."""
        if self.is_text:
            try:
                found = self._json_problem(columns, types) if self.format == JSONL else self._csv_problem()
            except (OSError, EOFError) as err:
                found = f"not a readable gzip file ({first_line(err)})" if self.gzip else None
            if found:
                return InputError(f"{self.path}: {found}")
            return InputError(f"{self.path}: not a readable {self.kind} file ({first_line(exc)})")
        what = f"could not read columns {', '.join(columns)}" if columns else "not a readable Parquet file"
        return InputError(f"{self.path}: {what} ({first_line(exc)})")

    def _json_problem(self, columns: Sequence[str], types: Optional[dict[str, pa.DataType]]) -> Optional[str]:
        """The first line of a JSON Lines file that pyarrow cannot take: not UTF-8, not JSON, not an object, a
        key given twice, or a value of another JSON type than the column holds (its type, or else the type of its
        first value)."""
        expected: dict[str, str] = {}
        if self._schema is not None:
            for c in columns:
                kind = _json_kind_of(self._type(c, types))
                if kind:
                    expected[c] = kind
        with self._binary() as fh:
            for number, raw in enumerate(fh, 1):
                if not raw.strip(b" \t\r\n"):
                    continue
                try:
                    text = raw.decode("utf-8").rstrip("\r\n")
                except UnicodeDecodeError:
                    return f"line {number}: not UTF-8 text"
                try:
                    value = json.loads(text, object_pairs_hook=_unique_keys)
                except _DuplicateKey as dup:
                    return f"line {number}: key {dup.key!r} appears twice"
                except json.JSONDecodeError as err:
                    return f"line {number}: not valid JSON ({err.msg}, at character {err.colno})"
                if not isinstance(value, dict):
                    return f"line {number}: not a JSON object (a line holds one {{...}} object per row)"
                for key, item in value.items():
                    kind = _json_kind(item)
                    if kind is None:
                        continue
                    want = expected.setdefault(key, kind)
                    if not _compatible(want, kind):
                        return (f"column {key!r} line {number}: {_A[kind]} where the column holds {_PLURAL[want]} "
                                "(a column holds one JSON type)")
        return None

    def _csv_problem(self) -> Optional[str]:
        """The first line of a CSV or TSV file that pyarrow cannot take: not UTF-8, or a row whose number of
        values differs from the header's."""
        with self._binary() as fh:
            for number, raw in enumerate(fh, 1):
                try:
                    raw.decode("utf-8")
                except UnicodeDecodeError:
                    return f"line {number}: not UTF-8 text"
        with self._binary() as fh, _csv_limit():
            reader = csv.reader(_text(fh), **self._csv_dialect())
            previous, width = 0, None
            for record in reader:
                start, previous = previous + 1, reader.line_num
                if not record:
                    continue
                if width is None:
                    width = len(record)
                elif len(record) != width:
                    sep = "a tab" if self.format == TSV else "a comma"
                    advice = ("TSV values cannot hold tabs or line breaks" if self.format == TSV else
                              "quote a value that holds a comma, a quote or a line break")
                    return (f"line {start}: {len(record)} values where the header has {width} (values are "
                            f"separated by {sep}; {advice})")
        return None


def open_json(stream: Any, read_options: Any, parse_options: Any = None) -> Any:
    """pyarrow's streaming JSON reader (a ``schema`` and record batches); before pyarrow 18, which has none, the
    whole file read at once behind the same interface."""
    if hasattr(pjson, "open_json"):
        return pjson.open_json(stream, read_options=read_options, parse_options=parse_options)
    table = pjson.read_json(stream, read_options=read_options, parse_options=parse_options)  # pragma: no cover

    class _Whole:  # pragma: no cover
        schema = table.schema

        def __iter__(self) -> Iterator[pa.RecordBatch]:
            return iter(table.to_batches())

    return _Whole()  # pragma: no cover


def _rebatch(batches: Iterator[pa.RecordBatch], size: int) -> Iterator[pa.RecordBatch]:
    """Record batches of exactly ``size`` rows (the last one shorter), whatever the reader's block sizes."""
    pending: list[pa.RecordBatch] = []
    count = 0
    for batch in batches:
        if batch.num_rows == 0:
            continue
        pending.append(batch)
        count += batch.num_rows
        if count < size:
            continue
        table = pa.Table.from_batches(pending)
        start = 0
        while count - start >= size:
            yield table.slice(start, size).combine_chunks().to_batches()[0]
            start += size
        pending = table.slice(start).combine_chunks().to_batches() if start < count else []
        count -= start
    if count:
        yield pa.Table.from_batches(pending).combine_chunks().to_batches()[0]


def _text(fh: IO[bytes]) -> io.TextIOWrapper:
    """A text file's lines for Python's csv module (line breaks inside quoted values kept)."""
    return io.TextIOWrapper(fh, encoding="utf-8-sig", errors="replace", newline="")


@contextmanager
def _csv_limit() -> Iterator[None]:
    """Python's csv module refuses values over 128 KiB by default; a corpus's texts may be longer."""
    old = csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    try:
        yield
    finally:
        csv.field_size_limit(old)


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


_A = {"string": "a string", "integer": "an integer", "number": "a number", "boolean": "true or false",
      "array": "an array", "object": "an object"}


_PLURAL = {"string": "strings", "integer": "integers", "number": "numbers", "boolean": "true or false",
           "array": "arrays", "object": "objects"}


def _json_kind(value: Any) -> Optional[str]:
    if value is None:
        return None
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _json_kind_of(t: pa.DataType) -> Optional[str]:
    if pa.types.is_integer(t):
        return "integer"
    if pa.types.is_floating(t):
        return "number"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "string"
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return "array"
    if pa.types.is_struct(t):
        return "object"
    return None


def _compatible(want: str, kind: str) -> bool:
    return want == kind or (want == "number" and kind == "integer")


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type's name if it has none)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
