"""What a cache folder holds and when each entry was last used, and pruning it (``negmine cache info`` and
``negmine cache prune``).

A cache folder's parts (``CACHE_PARTS`` and ``runs``) hold entries, each removed whole:

```
inputs/<key>/      an input file's Arrow copy          last used: its manifest's time (touched on each use)
bm25/<key>/        a BM25 index                        likewise
vectors/<key>/     a corpus matrix of embeddings       likewise
faiss/<key>/       a faiss index                       likewise
embeddings/<id>/   one model identity's embeddings     its identity.txt's time (touched on use), or its newest file
runs/<key>/        the finished batches of a run that  its newest batch
                   did not complete (to resume from)
```

An embeddings entry is removed under its exclusive lock: one a running process reads from is skipped (and
counted). The other entries are whole folders that a run finds complete or absent; prune while no run uses the
cache to be sure none loses an index it is about to open.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Optional

from negmine.errors import ConfigError, storage_error
from negmine.storage.cache import CACHE_PARTS, existing_folder, file_lock
from negmine.storage.files import remove_stale_temps

#: The parts ``info`` and ``prune`` know, in the order they are shown.
PARTS = ("inputs", "embeddings", "bm25", "vectors", "faiss", "runs")

_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")

_UNITS = {"": 86400.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 7 * 86400.0}


def parse_age(text: str) -> float:
    """Seconds in an age such as ``7d``, ``12h``, ``30m``, ``90s``, ``2w`` (a bare number is days)."""
    m = _AGE.match(text)
    if m is None:
        raise ConfigError(f"--older-than {text!r}: give an age such as 7d, 12h, 30m or 2w")
    return float(m.group(1)) * _UNITS[m.group(2)]


@dataclass
class Entry:
    """One removable entry of a cache folder."""

    part: str
    path: Path
    bytes: int
    last_used: float  # seconds since the epoch


@dataclass
class PartInfo:
    """The entries of one part: how many, their size, and the oldest and newest use."""

    entries: int = 0
    bytes: int = 0
    oldest: Optional[float] = None
    newest: Optional[float] = None

    def add(self, entry: Entry) -> None:
        self.entries += 1
        self.bytes += entry.bytes
        self.oldest = entry.last_used if self.oldest is None else min(self.oldest, entry.last_used)
        self.newest = entry.last_used if self.newest is None else max(self.newest, entry.last_used)


@dataclass
class CacheInfo:
    """What ``info`` found: per part, and in all (``bytes`` counts every file under the folder)."""

    root: Path
    parts: dict[str, PartInfo]
    bytes: int

    def to_dict(self) -> dict:
        return {"cache_dir": str(self.root), "bytes": self.bytes,
                "parts": {name: {"entries": p.entries, "bytes": p.bytes, "oldest_use": p.oldest,
                                 "newest_use": p.newest} for name, p in self.parts.items()}}


@dataclass
class PruneResult:
    """What ``prune`` removed (or, with ``dry_run``, would remove), and the entries in use it left."""

    removed: list[Entry] = field(default_factory=list)
    busy: list[Entry] = field(default_factory=list)
    dry_run: bool = False

    @property
    def bytes(self) -> int:
        return sum(e.bytes for e in self.removed)


def _size(path: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:  # removed meanwhile
                pass
    return total


def _newest(path: Path) -> float:
    newest = 0.0
    for dirpath, _, files in os.walk(path):
        for name in files:
            try:
                newest = max(newest, os.lstat(os.path.join(dirpath, name)).st_mtime)
            except OSError:
                pass
    return newest or _mtime(path)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _last_used(part: str, folder: Path) -> float:
    if part in ("inputs", "bm25", "vectors", "faiss"):
        manifest = folder / "manifest.json"
        return _mtime(manifest) if manifest.exists() else _newest(folder)
    if part == "embeddings":
        return max(_mtime(folder / "identity.txt"), max((_mtime(p) for p in folder.glob("*.json")), default=0.0)) \
            or _newest(folder)
    return _newest(folder)  # runs


def entries(root: Path, parts: Iterable[str] = PARTS) -> Iterator[Entry]:
    """The entries of ``parts`` under the cache folder ``root`` (temporary folders of running builds left out)."""
    for part in parts:
        base = Path(root) / part
        if not base.is_dir():
            continue
        for folder in sorted(base.iterdir()):
            if not folder.is_dir() or folder.name.startswith("."):
                continue
            yield Entry(part, folder, _size(folder), _last_used(part, folder))


def info(root: Path, option: str = "--cache-dir") -> CacheInfo:
    """Sizes and last uses per part of the cache folder ``root``."""
    root = existing_folder(root, option, "give the cache folder", "nothing is cached there")
    parts = {name: PartInfo() for name in PARTS}
    for entry in entries(root):
        parts[entry.part].add(entry)
    return CacheInfo(root, parts, _size(root))


def prune(root: Path, older_than: float = 0.0, parts: Optional[Iterable[str]] = None, dry_run: bool = False,
          option: str = "--cache-dir", now: Optional[float] = None) -> PruneResult:
    """Remove the entries of ``parts`` (default: all) last used more than ``older_than`` seconds ago (0: every
    one), and the temporary files that processes which no longer run left behind.

    Raises:
        ConfigError: ``root`` is not a folder, or a part is unknown.
        StorageError: an entry cannot be removed (a read-only folder).
    """

    root = existing_folder(root, option, "give the cache folder", "nothing is cached there")
    chosen = tuple(parts) if parts else PARTS
    unknown = sorted(set(chosen) - set(PARTS))
    if unknown:
        raise ConfigError(f"--part {', '.join(unknown)}: not a part of the cache; the parts are {', '.join(PARTS)}")
    now = time.time() if now is None else now
    result = PruneResult(dry_run=dry_run)
    for entry in list(entries(root, chosen)):
        if now - entry.last_used < older_than:
            continue
        if dry_run:
            result.removed.append(entry)
            continue
        try:
            if entry.part == "embeddings":
                with file_lock(entry.path / "lock", exclusive=True, wait=False) as locked:
                    if not locked:
                        result.busy.append(entry)
                        continue
                    _remove(entry.path)
            else:
                _remove(entry.path)
        except OSError as exc:
            raise storage_error(entry.path, exc, "cannot remove it") from exc
        result.removed.append(entry)
    if not dry_run:
        for folder in (root, *(root / p for p in (*CACHE_PARTS, "runs"))):
            if folder.is_dir():
                remove_stale_temps(folder)
    return result


def _remove(folder: Path) -> None:
    """Remove an entry: its manifests first (so a reader never takes a half-removed entry for a whole one)."""
    for manifest in folder.glob("*.json"):
        manifest.unlink(missing_ok=True)
    shutil.rmtree(folder)
