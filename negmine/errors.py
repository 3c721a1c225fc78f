"""Exceptions raised by the library. The CLI maps them to exit codes; the library never exits."""

from __future__ import annotations

import errno
import re
from pathlib import Path
from typing import Union


class NegmineError(Exception):
    """Base class of every error negmine raises on purpose.

    The message is one line that names the file, column, row or value at fault and says how to fix it.
    """

    exit_code = 1


class InputError(NegmineError):
    """The data is wrong: a missing or unreadable file, a missing column, a bad row. Exit code 1."""

    exit_code = 1


class ConfigError(NegmineError):
    """The options are wrong or contradict each other. Exit code 2, like any usage error."""

    exit_code = 2


class StorageError(NegmineError):
    """A file or folder negmine must write (an output, the cache) cannot be written: no permission, a read-only
    or full file system, a file where a folder should be. Exit code 1."""

    exit_code = 1


class BrokenPipe(StorageError):
    """The reader of the output on stdout (``-o -``) stopped reading before the run wrote everything
    (``negmine mine -o - | head``). Exit code 141, as a shell reports a program that SIGPIPE stopped."""

    exit_code = 141


class EmptyResultError(NegmineError):
    """The run would write no negatives at all (every candidate dropped). Exit code 1; ``allow_empty`` accepts
    such a run."""

    exit_code = 1


_HINTS = {
    errno.ENOSPC: "no space left on the device: free some space or write elsewhere",
    errno.EDQUOT: "disk quota exceeded: free some space or write elsewhere",
    errno.EROFS: "read-only file system: write elsewhere",
    errno.EACCES: "permission denied: write elsewhere or fix the folder's permissions",
    errno.EPERM: "operation not permitted: write elsewhere or fix the folder's permissions",
    errno.ENOTDIR: "a file stands where a folder should be",
    errno.EISDIR: "a folder stands where a file should be",
    errno.EPIPE: "broken pipe: the reader stopped reading, so the rest was not written",
}


def storage_error(path: Union[str, Path], exc: OSError, what: str = "") -> StorageError:
    """A one-line ``StorageError`` for an ``OSError`` met while writing ``path``: ``PATH: reason`` (a
    ``BrokenPipe`` for EPIPE)."""
    code = exc.errno
    if code is None:  # pyarrow's errors carry it in the text: "[Errno 28] No space left on device"
        m = re.search(r"\[Errno (\d+)\]", str(exc))
        code = int(m.group(1)) if m else None
    if code is None and re.search(r"\d+ requested and \d+ written", str(exc)):  # numpy's short write: a full disk
        code = errno.ENOSPC
    text = exc.strerror or (str(exc).strip().splitlines() or [""])[0] or type(exc).__name__
    reason = _HINTS.get(code if code is not None else -1) or text
    kind = BrokenPipe if code == errno.EPIPE else StorageError
    return kind(f"{path}: {what + ': ' if what else ''}{reason}")
