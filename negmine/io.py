"""Inputs and outputs: reading the inputs (any format ``negmine.sources`` reads) with column detection and row
checks, fingerprints, output paths, atomic writes, Parquet and JSON Lines sinks, provenance."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Optional, Sequence

import pyarrow as pa
import pyarrow.json as pjson
import pyarrow.parquet as pq

from negmine.errors import ConfigError, InputError, storage_error
from negmine.inputs.beir import beir_files as beir_files
from negmine.inputs.columns import read_schema
from negmine.inputs.formats import first_line
from negmine.jsonl import SIDECAR, STDOUT, JsonLinesSink, sidecar_path
from negmine.storage.files import PathLike, _umask, atomic_target, check_writable, temp_path

METADATA_KEY = b"negmine"


#: File name endings negmine writes outputs in, and the format each means.
OUTPUT_FORMATS = {".parquet": "parquet", ".jsonl": "jsonl", ".jsonl.gz": "jsonl.gz"}


OUTPUT_SUFFIXES = tuple(OUTPUT_FORMATS)


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
