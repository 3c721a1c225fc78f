"""The cache folder: where it is, opening it (read-only when it cannot be written), content-addressed entries
(``cached_dir``: built once, sealed with a manifest), file locks and digests."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence, Union

import numpy as np

from negmine.errors import ConfigError, StorageError, storage_error
from negmine.storage.files import (
    PathLike,
    atomic_target,
    atomic_write_text,
    check_writable,
    file_sha256,
    remove_stale_temps,
    temp_path,
)

logger = logging.getLogger("negmine")

#: Sub-folders of a cache folder.
CACHE_PARTS = ("embeddings", "bm25", "faiss", "vectors", "tmp")


def default_cache_dir() -> Path:
    """``$NEGMINE_CACHE_DIR``, else ``$XDG_CACHE_HOME/negmine``, else ``~/.cache/negmine``."""
    if os.environ.get("NEGMINE_CACHE_DIR"):
        return Path(os.environ["NEGMINE_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "negmine"


def resolve_cache_dir(cache_dir: Optional[PathLike], index_dir: Optional[PathLike]) -> Path:
    """The directory indexes and embeddings are cached in: ``index_dir`` (which must exist), ``cache_dir``, or
    the default cache."""

    if index_dir is not None:
        if cache_dir is not None:
            raise ConfigError("give --index-dir or --cache-dir, not both")
        return existing_folder(index_dir, "--index-dir", "give the folder negmine index built",
                               "build it with negmine index")
    return Path(cache_dir) if cache_dir is not None else default_cache_dir()


def existing_folder(path: PathLike, option: str, if_file: str, if_missing: str) -> Path:
    """``path``, checked to be a folder that exists (else a ConfigError naming ``option``, with the advice)."""

    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{option} {folder}: is a file, not a folder; {if_file}")
    if not folder.is_dir():
        raise ConfigError(f"{option} {folder}: no such directory; {if_missing}")
    return folder


def cache_option(cache_dir: Optional[PathLike], index_dir: Optional[PathLike]) -> str:
    """How messages name the cache folder of a run: the option that gave it, or the variable."""
    if index_dir is not None:
        return "--index-dir"
    if cache_dir is not None or not os.environ.get("NEGMINE_CACHE_DIR"):
        return "--cache-dir"
    return "$NEGMINE_CACHE_DIR"


#: Cache folders this process opened read-only (resolved paths): what they hold is read, nothing is written there.
_READ_ONLY: set[Path] = set()


def read_only(path: Union[str, Path]) -> bool:
    """Whether ``path`` lies in a cache folder opened read-only (``prepare_cache_dir``)."""
    if not _READ_ONLY:
        return False
    p = Path(path).resolve()
    return any(p == root or root in p.parents for root in _READ_ONLY)


class ReadOnlyCache(StorageError):
    """Something must be written into a cache folder that was opened read-only (``what``: what it is)."""

    def __init__(self, message: str, what: str = "") -> None:
        super().__init__(message)
        self.what = what


def prepare_cache_dir(root: Path, option: str = "--cache-dir", writable: bool = False) -> Path:
    """Create the cache folder if needed and check, before any work, that negmine can use it: a folder that exists
    but cannot be written (a read-only volume holding indexes built ahead) is opened read-only, unless ``writable``
    is required: what it holds is read, and whatever a run would have to write there is an error naming it.

    Raises:
        ConfigError: the folder is a file.
        StorageError: the folder cannot be created, one of its parts is a file, or (``writable``) the folder cannot
            be written.
    """

    root = Path(root)
    if root.exists() and not root.is_dir():
        raise ConfigError(f"{root}: {option} is a file, not a folder; give a folder")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise storage_error(root, exc, f"cannot create the {option} folder") from exc
    for part in CACHE_PARTS:
        p = root / part
        if p.exists() and not p.is_dir():
            raise StorageError(f"{p}: is a file, but negmine keeps its {part} cache there; move it away or give "
                               f"another {option}")

    resolved = root.resolve()
    try:
        check_writable(root, option)
    except StorageError:
        if writable:
            raise
        if resolved not in _READ_ONLY:
            logger.info("%s %s cannot be written: reading it, writing nothing there", option, root)
        _READ_ONLY.add(resolved)
        return root
    _READ_ONLY.discard(resolved)
    return root


def read_only_error(root: Path, what: str) -> ReadOnlyCache:
    """The error for ``what`` a run would have to write into the read-only cache folder ``root``."""
    return ReadOnlyCache(f"{root}: cannot be written (read-only), and it lacks the {what}; build that ahead with "
                         "negmine index and the same options into a writable folder, or give a writable --cache-dir",
                         what)


def text_hashes(texts: Sequence[str]) -> np.ndarray:
    """A 16-byte BLAKE2b digest per text, as an ``(n, 16)`` uint8 array."""
    out = np.empty((len(texts), 16), dtype=np.uint8)
    for i, t in enumerate(texts):
        out[i] = np.frombuffer(hashlib.blake2b(t.encode("utf-8"), digest_size=16).digest(), dtype=np.uint8)
    return out


def digest_of(*parts: bytes | str) -> str:
    """SHA-256 hex digest of the concatenated parts."""
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode("utf-8") if isinstance(p, str) else p)
    return h.hexdigest()


def atomic_save_npy(path: Path, array: np.ndarray) -> None:
    """``np.save`` atomically."""
    with atomic_target(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, array, allow_pickle=False)


def reserve(path: Path, start: int = 0) -> None:
    """Allocate the disk blocks of a (sparse) file from ``start`` to its end, so that a full disk is an OSError
    now rather than a SIGBUS when a memory map of it is written."""
    size = os.path.getsize(path)
    if size > start and hasattr(os, "posix_fallocate"):
        fd = os.open(path, os.O_RDWR)
        try:
            os.posix_fallocate(fd, start, size - start)
        finally:
            os.close(fd)


def write_manifest(
    folder: Path, files: Sequence[Path], extra: Optional[dict] = None, name: str = "manifest.json"
) -> None:
    """Record size and SHA-256 of ``files`` (relative to ``folder``); written last, it commits the entry."""
    entry = {"files": {str(f.relative_to(folder)): {"size": f.stat().st_size, "sha256": file_sha256(f)}
                       for f in files}}
    entry.update(extra or {})
    atomic_write_text(folder / name, json.dumps(entry, sort_keys=True))


def check_manifest(folder: Path, name: str = "manifest.json", only: Optional[Sequence[str]] = None) -> Optional[dict]:
    """The manifest if every file it lists (or those of them in ``only``) exists with its size and SHA-256, else
    ``None``."""
    try:
        entry = json.loads((folder / name).read_text(encoding="utf-8"))
        for rel, meta in entry["files"].items():
            if only is not None and rel not in only:
                continue
            f = folder / rel
            if f.stat().st_size != meta["size"] or file_sha256(f) != meta["sha256"]:
                return None
        return entry
    except (OSError, ValueError, KeyError, TypeError):
        return None


@contextmanager
def file_lock(path: Path, exclusive: bool = False, wait: bool = True) -> Iterator[bool]:
    """``flock`` on ``path`` (created if missing): shared or exclusive; with ``wait=False`` yields ``False`` at once
    when someone else holds it. Where ``fcntl`` does not exist the lock always succeeds."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield True
        return
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError:
        if exclusive or not path.exists():  # a folder nobody can write: nobody changes it, no lock is needed
            if exclusive:
                raise
            yield True
            return
        fd = os.open(path, os.O_RDONLY)  # a shared lock on a read-only volume
    try:
        mode = (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | (0 if wait else fcntl.LOCK_NB)
        try:
            fcntl.flock(fd, mode)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def touch(path: Path) -> None:
    """Record a use of a cache entry (its file's modification time; ``negmine cache prune`` reads it)."""
    try:
        os.utime(path)
    except OSError:  # gone, or not ours to change: the use just goes unrecorded
        pass


def cached_dir(root: Path, kind: str, key: str, build: Callable[[Path], None], extra: Optional[dict] = None,
               what: str = "") -> Path:
    """A built artefact (an index folder) stored under ``root/kind/key``: reused when its manifest checks out
    (its manifest's time then records the use, for ``negmine cache prune``), else built by ``build(tmp_folder)``,
    sealed with a manifest and renamed into place. Several processes may build the same artefact at once: the
    first to finish wins, the others discard theirs.

    Raises:
        ReadOnlyCache: it must be built, but ``root`` was opened read-only (``what`` names it in the message).
    """
    target = Path(root) / kind / key
    ro = read_only(root)
    if target.exists():
        if check_manifest(target) is not None:
            if not ro:
                touch(target / "manifest.json")
            return target
        if ro:
            raise read_only_error(Path(root), f"intact {what or kind + ' cache entry'} ({target} is corrupt)")
        logger.warning("%s cache %s is corrupt or incomplete; rebuilding it", kind, target)
        shutil.rmtree(target, ignore_errors=True)
    if ro:
        raise read_only_error(Path(root), what or f"{kind} cache entry {key}")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(target.parent)
        tmp = temp_path(target.parent, key, directory=True)
    except OSError as exc:
        raise storage_error(target.parent, exc, f"cannot write the {kind} cache") from exc
    try:
        build(tmp)
        write_manifest(tmp, [p for p in sorted(tmp.rglob("*")) if p.is_file()], extra)
        try:
            os.replace(tmp, target)
        except OSError:
            if check_manifest(target) is None:  # not a lost race: a real failure
                raise
            shutil.rmtree(tmp, ignore_errors=True)  # another run won the race; theirs is as good as ours
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise storage_error(target, exc, f"cannot write the {kind} cache") from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def new_npy(path: Path, shape: tuple[int, ...]) -> np.memmap:
    """A new float32 ``.npy`` file, memory-mapped for writing, its disk space reserved."""
    mm = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=shape)
    reserve(path)
    return mm
