"""JSON Lines output: a table's rows as one JSON object per line, written as batches come (into a temporary file
renamed into place, or to stdout), with the provenance in a sidecar file ``OUT.provenance.json``.

The bytes depend on the rows alone: keys in column order, no spaces, UTF-8 (non-ASCII characters as themselves),
integers and ids as they are, floats as the shortest text that reads back to the same value (a float32 score 0.3
is written ``0.3``, not ``0.30000001192092896``), NaN and infinities as ``null`` (JSON has neither), and the
characters U+2028, U+2029 and U+0085 escaped so that no reader splits a row in two. A ``.gz`` file is gzip with
neither a name nor a timestamp in its header, compressed in fixed-size pieces.
"""

from __future__ import annotations

import errno
import gzip
import json
import os
import select
import stat
import sys
from pathlib import Path
from typing import IO, Any, Optional, Union

import numpy as np
import pyarrow as pa

from negmine.errors import storage_error
from negmine.storage.files import _umask, temp_path

PathLike = Union[str, "os.PathLike[str]"]

#: The sidecar of ``OUT`` is ``OUT.provenance.json``.
SIDECAR = ".provenance.json"

#: What ``-o -`` means: JSON Lines on stdout.
STDOUT = "-"

GZIP_LEVEL = 6

#: Bytes handed to the compressor at a time (fixed, so the compressed bytes do not depend on the batches).
CHUNK = 1 << 20

_ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False, check_circular=False).encode

_LINE_BREAKS = (("\u2028", "\\u2028"), ("\u2029", "\\u2029"), ("\x85", "\\u0085"))


def sidecar_path(path: PathLike) -> Path:
    """Where the provenance of a JSON Lines output goes: ``OUT.provenance.json``."""
    return Path(str(path) + SIDECAR)


def _plain(array: Any) -> Any:
    """An Arrow array whose values convert to the Python values written: floats as float64 holding the shortest
    decimal of the original (float32 included), non-finite floats as nulls; lists likewise, inside."""
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    t = array.type
    if pa.types.is_floating(t):
        values = np.asarray(array.to_numpy(zero_copy_only=False))
        if t.bit_width < 64:  # numpy prints a float32 as its shortest round-tripping decimal
            values = values.astype(str).astype(np.float64)
        else:
            values = values.astype(np.float64)
        invalid = ~np.isfinite(values)
        if array.null_count:
            invalid |= np.asarray(array.is_null().to_numpy(zero_copy_only=False), dtype=bool)
        return pa.array(values, type=pa.float64(), mask=invalid if invalid.any() else None)
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        inner = _plain(array.values)
        if inner is array.values:
            return array
        mask = array.is_null() if array.null_count else None
        return type(array).from_arrays(array.offsets, inner, mask=mask)
    return array


def json_lines(table: pa.Table) -> str:
    """The rows of ``table`` as JSON Lines text (a line per row, each ending in a newline)."""
    if table.num_rows == 0:
        return ""
    names = table.column_names
    columns = [_plain(c).to_pylist() for c in table.columns]
    text = "\n".join(_ENCODE(dict(zip(names, row))) for row in zip(*columns)) + "\n"
    for char, escaped in _LINE_BREAKS:
        if char in text:
            text = text.replace(char, escaped)
    return text


class _Chunked:
    """Hands the bytes written to ``out`` in pieces of exactly CHUNK bytes (the last one shorter)."""

    def __init__(self, out: Any) -> None:
        self.out = out
        self.buffer = bytearray()

    def write(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) >= CHUNK:
            whole = len(self.buffer) - len(self.buffer) % CHUNK
            view = memoryview(self.buffer)
            for start in range(0, whole, CHUNK):
                self.out.write(view[start : start + CHUNK])
            view.release()
            del self.buffer[:whole]

    def close(self) -> None:
        if self.buffer:
            self.out.write(bytes(self.buffer))
            self.buffer.clear()
        self.out.close()


class JsonLinesSink:
    """A JSON Lines file written as tables arrive, into a temporary file beside ``path`` that ``commit`` renames
    into place (with the provenance in ``path.provenance.json``) and ``abort`` removes; ``gzip`` compresses it.
    With ``path`` None the lines go to stdout as they come, and an error simply cuts the stream.

    An ``OSError`` (a full disk, no permission, a closed pipe) becomes a one-line ``StorageError``.
    """

    def __init__(self, path: Optional[PathLike], compress: bool = False) -> None:

        self.target = Path(path) if path is not None else None
        self.rows = 0
        self.tmp: Optional[Path] = None
        self.raw: Optional[IO[bytes]] = None
        self.out: Any
        if self.target is None:
            self.out = _stdout()
            return
        try:
            self.tmp = temp_path(self.target.parent, self.target.name)
            self.raw = open(self.tmp, "wb")
        except OSError as exc:
            self.abort()
            raise storage_error(self.target, exc) from exc
        self.out = _Chunked(gzip.GzipFile(filename="", mode="wb", fileobj=self.raw, compresslevel=GZIP_LEVEL,
                                          mtime=0)) if compress else self.raw

    @property
    def name(self) -> str:
        return str(self.target) if self.target is not None else "stdout"

    def write(self, table: pa.Table) -> None:
        """Add rows (written at once: on stdout, every byte of them, or an error)."""
        data = json_lines(table).encode("utf-8")
        try:
            self.out.write(data)
            if self.target is None:
                self.out.flush()
        except OSError as exc:
            self._failed(exc)
        self.rows += table.num_rows

    def _failed(self, exc: OSError) -> None:
        self.abort()
        if self.target is None and exc.errno == errno.EPIPE:
            _silence_stdout()
        raise storage_error(self.name, exc) from exc

    def commit(self, metadata: Optional[dict[str, Any]] = None, empty: Optional[pa.Table] = None) -> Path:
        """Finish the file, write the provenance beside it (``OUT.provenance.json``, none for stdout) and rename
        both into place. ``empty`` is unused (a JSON Lines file without rows is empty)."""
        if self.target is None:
            try:
                self.out.flush()
                if _reader_gone(self.out):  # all was written into the pipe, but the reader left without it
                    raise OSError(errno.EPIPE, os.strerror(errno.EPIPE))
            except OSError as exc:
                self._failed(exc)
            return Path(STDOUT)

        assert self.tmp is not None
        side_tmp: Optional[Path] = None
        try:
            self.out.close()
            if self.raw is not None:  # gzip leaves the file it wrote into open
                self.raw.close()
                self.raw = None
            os.chmod(self.tmp, 0o666 & ~_umask())
            if metadata is not None:
                side = sidecar_path(self.target)
                side_tmp = temp_path(side.parent, side.name)
                side_tmp.write_text(json.dumps(metadata, sort_keys=True, default=str, indent=2) + "\n",
                                    encoding="utf-8")
                os.chmod(side_tmp, 0o666 & ~_umask())
            os.replace(self.tmp, self.target)
            if side_tmp is not None:
                os.replace(side_tmp, sidecar_path(self.target))
        except OSError as exc:
            self.abort()
            if side_tmp is not None:
                side_tmp.unlink(missing_ok=True)
            raise storage_error(self.target, exc) from exc
        except BaseException:
            self.abort()
            if side_tmp is not None:
                side_tmp.unlink(missing_ok=True)
            raise
        return self.target

    def abort(self) -> None:
        """Remove the temporary file (nothing was published); on stdout, stop writing."""
        if self.raw is not None:
            try:
                self.raw.close()
            except OSError:  # already failing; the file goes anyway
                pass
            self.raw = None
        if self.tmp is not None:
            self.tmp.unlink(missing_ok=True)


class _TextOut:
    """Bytes written to a text stream that has no binary buffer (a notebook's stdout)."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def write(self, data: bytes) -> None:
        self.stream.write(data.decode("utf-8"))

    def flush(self) -> None:
        self.stream.flush()


class _FdOut:
    """Bytes written straight to a file descriptor, every one of them: a write the system takes only in part (a
    pipe whose reader stops) goes on with the rest, so a reader that left is always an EPIPE, never lost bytes."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view):]

    def flush(self) -> None:
        pass


def _stdout() -> Any:
    sys.stdout.flush()  # what was printed before comes first
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # a notebook's or a test runner's stdout
        buffer = getattr(sys.stdout, "buffer", None)
        return _TextOut(sys.stdout) if buffer is None else buffer
    return _FdOut(fd)


def _reader_gone(out: Any) -> bool:
    """Whether ``out`` is a pipe whose reader has closed it (what was written there and not read is lost)."""
    if not isinstance(out, _FdOut):
        return False
    try:
        if not stat.S_ISFIFO(os.fstat(out.fd).st_mode):
            return False
        poll = select.poll()
        poll.register(out.fd, 0)  # POLLERR is always reported: a pipe without a reader
        return any(event & select.POLLERR for _, event in poll.poll(0))
    except (OSError, AttributeError):  # no poll on this system: the next write would tell
        return False


def _silence_stdout() -> None:
    """After the reader of stdout went away (``negmine mine -o - | head``), send what is left to /dev/null, so that
    Python's own flush at exit does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # no real file descriptor (a test runner's stdout)
        pass
