"""Sinks: an output written as batches arrive, into a temporary file renamed into place by ``commit`` (or
removed by ``abort``): Parquet in fixed row groups, JSON Lines, or JSON Lines on stdout."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Optional

import pyarrow as pa
import pyarrow.parquet as pq

from negmine.errors import storage_error
from negmine.inputs.beir import beir_files as beir_files
from negmine.output.files import output_format
from negmine.output.jsonl import JsonLinesSink
from negmine.output.provenance import METADATA_KEY
from negmine.storage.files import PathLike, _umask, temp_path


def open_sink(path: PathLike, row_group_size: int) -> "ParquetSink | JsonLinesSink":
    """The sink an output path's name asks for (see ``output_format``): Parquet in row groups of
    ``row_group_size`` rows, JSON Lines (gzipped for ``.jsonl.gz``), or JSON Lines on stdout for ``-``."""
    kind = output_format(path)
    if kind == "stdout":
        return JsonLinesSink(None)
    if kind in ("jsonl", "jsonl.gz"):
        return JsonLinesSink(path, compress=kind == "jsonl.gz")
    return ParquetSink(path, row_group_size)


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
