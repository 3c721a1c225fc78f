"""Files written safely: atomic writes (a temporary file beside the target, renamed into place), temporary
names that say whose they are (so a later run removes those of dead processes), writability checks, and the
inputs' fingerprints."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import socket
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Union

from negmine.errors import storage_error

PathLike = Union[str, "os.PathLike[str]"]


def file_sha256(path: PathLike) -> str:
    """SHA-256 hex digest of a file's bytes, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


_FINGERPRINTS: dict[tuple[str, int, int], str] = {}


def fingerprint(path: PathLike) -> str:
    """SHA-256 of a file's bytes, as ``sha256:<hex>`` (an input's fingerprint in the provenance); computed once
    per process for a file of unchanged size and modification time."""
    st = os.stat(path)
    key = (str(Path(path).resolve()), st.st_size, st.st_mtime_ns)
    if key not in _FINGERPRINTS:
        _FINGERPRINTS[key] = "sha256:" + file_sha256(path)
    return _FINGERPRINTS[key]


def check_writable(folder: PathLike, what: str = "") -> None:
    """Raise a one-line StorageError unless a file can be created in ``folder`` (tried, then removed), so a run
    fails before its work rather than after it."""
    remove_stale_temps(folder)
    try:
        fd, probe = tempfile.mkstemp(prefix=_temp_prefix("write-test"), suffix=".tmp", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise storage_error(Path(folder), exc, f"{what} folder is not writable" if what else
                            "folder is not writable") from exc


_HOST = re.sub(r"[^A-Za-z0-9_]", "_", socket.gethostname()) or "host"

#: ``.NAME.HOST-PID.RANDOM.tmp``: whose temporary file it is, so a later run can remove those of dead processes.
_TEMP = re.compile(r"^\..*\.(?P<host>[A-Za-z0-9_]+)-(?P<pid>\d+)\.[^.]+\.tmp$")


def _temp_prefix(name: str) -> str:
    return f".{name}.{_HOST}-{os.getpid()}."


def temp_path(folder: PathLike, name: str, directory: bool = False) -> Path:
    """A new temporary file (or folder) in ``folder`` for ``name``, named after this host and process."""
    if directory:
        return Path(tempfile.mkdtemp(prefix=_temp_prefix(name), suffix=".tmp", dir=folder))
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(name), suffix=".tmp", dir=folder)
    os.close(fd)
    return Path(tmp)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def remove_stale_temps(folder: PathLike) -> int:
    """Remove the temporary files and folders that processes of this host which no longer run (killed with -9,
    say) left in ``folder``; returns how many. Others' are left alone."""
    removed = 0
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    for entry in entries:
        m = _TEMP.match(entry.name)
        if m is None or m["host"] != _HOST or _alive(int(m["pid"])):
            continue
        try:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
            removed += 1
        except OSError:  # another run cleaned it first
            pass
    return removed


@contextmanager
def atomic_target(path: PathLike) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; renamed onto ``path`` when the block succeeds, removed when
    it fails, so a reader never sees a half-written file. An ``OSError`` (a full disk, no permission) becomes a
    one-line ``StorageError`` naming ``path``."""
    target = Path(path)
    try:
        tmp = temp_path(target.parent, target.name)
    except OSError as exc:
        raise storage_error(target, exc) from exc
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise storage_error(target, exc) from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: PathLike, text: str) -> None:
    """Write a text file atomically."""
    with atomic_target(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
