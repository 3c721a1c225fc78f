"""Content-addressed on-disk caches: text embeddings (per text, per model identity) and built indexes.

The embeddings of one model identity live in ``embeddings/<digest of the identity>/``:

```
identity.txt         the identity, for people
lock                 held shared while segments are read, exclusively while they are merged
<seg>.keys.npy       16-byte BLAKE2b digests of the texts, sorted
<seg>.vecs.npy       their vectors (float32), in the same order
<seg>.json           manifest: each file's size and SHA-256, the count and the dimension; written last, it commits
                     the segment
```

Segments never change once written. New vectors are committed as new segments while they are encoded, so a
crash loses at most the vectors of one commit; segments of the same size tier are merged (streaming, under the
exclusive lock) once there are ``MERGE_FANIN`` of them. Every file is written under a temporary name and renamed
into place; a segment whose files do not match its manifest is deleted (with a warning) and its texts encoded
again, never read. Any number of processes can share a cache.
"""

from __future__ import annotations

import logging
import math
import os
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence, Union

import numpy as np

from negmine.errors import storage_error
from negmine.progress import Progress
from negmine.storage.cache import (
    atomic_save_npy,
    check_manifest,
    digest_of,
    file_lock,
    read_only,
    reserve,
    text_hashes,
    touch,
    write_manifest,
)
from negmine.storage.files import atomic_write_text, remove_stale_temps, temp_path

#: Merge the segments of one size tier (counts within a factor MERGE_FANIN) once there are this many.
MERGE_FANIN = 8

logger = logging.getLogger("negmine")

#: Commit newly encoded vectors as a segment once this many are pending and COMMIT_SECONDS have passed since the
#: last commit, or once MAX_PENDING are pending: a crash loses at most that much encoding work.
COMMIT_ROWS = 512

COMMIT_SECONDS = 10.0

MAX_PENDING = 65536

#: Rows copied at a time when reading or merging vectors (bounds the memory of a copy).
COPY_BLOCK = 65536

#: What ``encode`` may return: all vectors at once, or (positions, vectors) batches as they are ready.
Encoded = Union[np.ndarray, Iterable[tuple[np.ndarray, np.ndarray]]]


def _prefix(keys: np.ndarray) -> np.ndarray:
    """The first 8 bytes of each 16-byte key as an unsigned integer: sorted keys have sorted prefixes."""
    return np.ascontiguousarray(keys[:, :8]).view(">u8").ravel().astype(np.uint64)


def _sort_keys(keys: np.ndarray) -> np.ndarray:
    """The order that sorts 16-byte keys bytewise (stable)."""
    return np.argsort(np.ascontiguousarray(keys).view("V16").ravel(), kind="stable")


@dataclass
class _Segment:
    name: str
    keys: np.ndarray  # (n, 16) uint8, sorted
    prefix: np.ndarray  # (n,) uint64, sorted
    dim: int
    verified: bool = False  # the vectors file checked against the manifest
    rows: Optional[np.ndarray] = None  # a shard of negmine 0.1 holds unsorted keys: sorted position -> its row

    @property
    def count(self) -> int:
        return int(self.keys.shape[0])


class EmbeddingCache:
    """Embeddings of texts under one model identity, stored as immutable segments of (sorted text digests,
    vectors).

    Args:
        root: The cache (or index) directory.
        identity: Everything that determines a text's vector: model, weights digest, prompt, max length.
    """

    def __init__(self, root: Path, identity: str) -> None:
        self.identity = identity
        self.dir = Path(root) / "embeddings" / digest_of(identity)[:32]
        self._segments: dict[str, _Segment] = {}
        self._cleaned = False
        #: The cache folder was opened read-only: texts it lacks are encoded into memory, never stored.
        self.read_only = read_only(root)

    # --- reading ------------------------------------------------------------------------------------------------

    @contextmanager
    def _shared(self) -> Iterator[None]:
        if not self.dir.exists():
            yield
            return
        with file_lock(self.dir / "lock"):
            yield

    def _refresh(self) -> list[_Segment]:
        """The committed segments, largest first: new ones loaded (their keys checked), vanished ones forgotten.
        Call with the shared lock held."""
        names = sorted(p.name[: -len(".json")] for p in self.dir.glob("*.json")) if self.dir.exists() else []
        for gone in set(self._segments) - set(names):
            del self._segments[gone]
        for name in names:
            if name not in self._segments:
                seg = self._load(name)
                if seg is not None:
                    self._segments[name] = seg
        return sorted(self._segments.values(), key=lambda s: (-s.count, s.name))

    def _load(self, name: str) -> Optional[_Segment]:
        entry = check_manifest(self.dir, f"{name}.json", only=[f"{name}.keys.npy"])
        if entry is None or f"{name}.vecs.npy" not in entry.get("files", {}):
            self._drop(name, "corrupt or truncated")
            return None
        try:
            keys = np.load(self.dir / f"{name}.keys.npy")
        except (OSError, ValueError):
            self._drop(name, "unreadable")
            return None
        if keys.ndim != 2 or keys.shape[1] != 16 or keys.shape[0] != entry.get("count"):
            self._drop(name, "corrupt")
            return None
        prefix = _prefix(keys)
        if np.any(prefix[1:] < prefix[:-1]):  # written unsorted by negmine 0.1: look up through an order
            order = _sort_keys(keys)
            return _Segment(name, keys[order], prefix[order], int(entry["dim"]), rows=order)
        return _Segment(name, keys, prefix, int(entry["dim"]))

    def _drop(self, name: str, why: str) -> None:
        if not (self.dir / f"{name}.json").exists():  # merged away by another process: nothing to report
            return
        logger.warning("embedding cache: segment %s in %s is %s; its texts will be encoded again", name, self.dir,
                       why)
        self._delete(name)

    def _delete(self, name: str) -> None:
        for suffix in (".json", ".keys.npy", ".vecs.npy"):  # the manifest first: without it nothing is read
            (self.dir / f"{name}{suffix}").unlink(missing_ok=True)
        self._segments.pop(name, None)

    def _vectors(self, seg: _Segment) -> Optional[np.ndarray]:
        """The segment's vectors, memory-mapped; checked against the manifest the first time (``None``, and the
        segment deleted, when they do not match)."""
        if not seg.verified:
            entry = check_manifest(self.dir, f"{seg.name}.json", only=[f"{seg.name}.vecs.npy"])
            if entry is None:
                self._drop(seg.name, "corrupt or truncated")
                return None
            seg.verified = True
        try:
            vecs = np.load(self.dir / f"{seg.name}.vecs.npy", mmap_mode="r")
        except (OSError, ValueError):
            self._drop(seg.name, "unreadable")
            return None
        if vecs.shape != (seg.count, seg.dim):
            self._drop(seg.name, "corrupt")
            return None
        return vecs

    @staticmethod
    def _lookup(segments: Sequence[_Segment], keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each key, the index of a segment holding it and its row in the segment's files (-1, -1 where none
        does)."""
        n = keys.shape[0]
        seg_of = np.full(n, -1, dtype=np.int64)
        row_of = np.full(n, -1, dtype=np.int64)
        prefix = _prefix(keys)
        for s, seg in enumerate(segments):
            todo = np.flatnonzero(seg_of < 0)
            if todo.size == 0 or seg.count == 0:
                continue
            pos = np.searchsorted(seg.prefix, prefix[todo])
            inside = pos < seg.count
            todo, pos = todo[inside], pos[inside]
            same = seg.prefix[pos] == prefix[todo]
            todo, pos = todo[same], pos[same]
            full = (seg.keys[pos] == keys[todo]).all(axis=1)
            seg_of[todo[full]], row_of[todo[full]] = s, pos[full]
            for i, p in zip(todo[~full], pos[~full]):  # two texts whose digests share 8 bytes: look further
                j = int(p) + 1
                while j < seg.count and seg.prefix[j] == prefix[i]:
                    if (seg.keys[j] == keys[i]).all():
                        seg_of[i], row_of[i] = s, j
                        break
                    j += 1
        for s, seg in enumerate(segments):
            if seg.rows is not None:
                here = seg_of == s
                row_of[here] = seg.rows[row_of[here]]
        return seg_of, row_of

    # --- the public operations ---------------------------------------------------------------------------------

    def missing(self, texts: Sequence[str]) -> np.ndarray:
        """The positions (first appearances) of the distinct ``texts`` that have no vector in the cache."""
        keys = text_hashes(texts)
        first, _ = _distinct(keys)
        with self._shared():
            seg_of, _ = self._lookup(self._refresh(), keys[first])
        return first[seg_of < 0]

    def count_missing(self, texts: Sequence[str]) -> int:
        """How many distinct ``texts`` have no vector in the cache (nothing is encoded)."""
        return int(self.missing(texts).size)

    def get(
        self, texts: Sequence[str], encode: Callable[[list[str]], Encoded],
        out: Union[np.ndarray, Callable[[int], np.ndarray], None] = None,
        progress: Optional[Progress] = None, label: str = "encoding", keys: Optional[np.ndarray] = None,
    ) -> tuple[np.ndarray, int, int]:
        """Vectors for ``texts``: from the cache where present, else from ``encode`` (and then stored).

        Args:
            texts: Texts in the order wanted.
            encode: Called once, with the distinct texts the cache lacks (in order of first appearance). It returns
                their vectors, or yields ``(positions, vectors)`` batches as they are ready: each batch lands in the
                cache within ``COMMIT_SECONDS``, so a crash loses little work.
            out: Optional array (for instance a memory map) to fill, or a function that makes it given the vectors'
                dimension (called once, when the dimension is known); allocated in RAM when ``None``.
            progress: Receives one stage, ``label``, advanced as vectors are encoded.
            label: The progress stage's description.
            keys: ``text_hashes(texts)``, when the caller has it already.

        Returns:
            (vectors, distinct texts encoded now, distinct texts found in the cache).
        """
        progress = progress or Progress()
        make: Callable[[int], np.ndarray] = out if callable(out) else \
            (lambda dim: np.empty((len(texts), dim), dtype=np.float32))
        out = None if callable(out) else out
        keys = text_hashes(texts) if keys is None else keys
        first, inverse = _distinct(keys)
        ukeys = keys[first]
        if not self._cleaned and self.dir.exists() and not self.read_only:
            remove_stale_temps(self.dir)
            touch(self.dir / "identity.txt")
            self._cleaned = True
        dim = 0
        for _ in range(3):  # a segment another process deleted as corrupt between our reads: look again
            with self._shared():
                segments = self._refresh()
                dim = segments[0].dim if segments else dim
                seg_of, row_of = self._lookup(segments, ukeys)
                found_all = True
                for s, seg in enumerate(segments):
                    rows_here = np.flatnonzero(seg_of == s)
                    if rows_here.size == 0:
                        continue
                    vecs = self._vectors(seg)
                    if vecs is None:
                        found_all = False
                        seg_of[rows_here] = -1
                        continue
                    if out is None:
                        out = make(seg.dim)
                    if seg.dim != out.shape[1]:  # another dimension under one identity: ignore that segment
                        seg_of[rows_here] = -1
                        continue
                    _copy_rows(vecs, row_of[rows_here], out, first[rows_here])
            if found_all:
                break
        missing = np.flatnonzero(seg_of < 0)
        cached = len(first) - missing.size
        if missing.size:
            out = self._encode_missing([texts[int(i)] for i in first[missing]], ukeys[missing], first[missing],
                                       encode, out, make, progress, label)
        if out is None:
            out = make(dim)
        _fill_duplicates(out, first, inverse)
        if missing.size and not self.read_only:
            self._maybe_merge()
        return out, int(missing.size), int(cached)

    # --- writing ------------------------------------------------------------------------------------------------

    def _encode_missing(
        self, texts: list[str], keys: np.ndarray, dest: np.ndarray, encode: Callable[[list[str]], Encoded],
        out: Optional[np.ndarray], make: Callable[[int], np.ndarray], progress: Progress, label: str,
    ) -> np.ndarray:
        """Encode ``texts`` into ``out[dest]``, committing segments as batches arrive."""
        pending: list[tuple[np.ndarray, np.ndarray]] = []
        with progress.stage(label, total=len(texts)) as advance:
            result = encode(texts)
            batches = [(np.arange(len(texts)), result)] if isinstance(result, np.ndarray) else result
            try:
                out = self._take(batches, keys, dest, out, make, advance, pending)
            except BaseException:  # what arrived before the failure (a spent request budget, say) is kept
                if pending and not self.read_only:
                    try:
                        self._write_segment(np.concatenate([k for k, _ in pending]),
                                            np.concatenate([v for _, v in pending]))
                    except Exception:  # noqa: BLE001 - already failing: the first error is the one to see
                        pass
                raise
            if pending:
                self._write_segment(np.concatenate([k for k, _ in pending]), np.concatenate([v for _, v in pending]))
        if out is None:  # an encoder that returned nothing for no texts
            out = make(0)
        return out

    def _take(self, batches: Any, keys: np.ndarray, dest: np.ndarray, out: Optional[np.ndarray],
              make: Callable[[int], np.ndarray], advance: Callable[[int], None],
              pending: list[tuple[np.ndarray, np.ndarray]]) -> Optional[np.ndarray]:
        """Copy the encoder's batches into ``out`` as they arrive, committing segments on the way; ``pending``
        holds what is not committed yet."""
        n_pending = sum(len(k) for k, _ in pending)
        last = time.monotonic()
        for positions, vecs in batches:
            positions = np.asarray(positions, dtype=np.int64)
            vecs = np.asarray(vecs, dtype=np.float32)
            if vecs.ndim != 2 or vecs.shape[0] != positions.size:
                raise ValueError(f"the encoder returned {vecs.shape} vectors for {positions.size} texts")
            if out is None:
                out = make(vecs.shape[1])
            out[dest[positions]] = vecs
            pending.append((keys[positions], vecs))
            n_pending += positions.size
            advance(positions.size)
            now = time.monotonic()
            if self.read_only:  # kept in memory only: nothing is written into a read-only cache
                pending.clear()
                n_pending = 0
            elif n_pending >= MAX_PENDING or (n_pending >= COMMIT_ROWS and now - last >= COMMIT_SECONDS):
                self._write_segment(np.concatenate([k for k, _ in pending]),
                                    np.concatenate([v for _, v in pending]))
                pending.clear()
                n_pending, last = 0, now
        return out

    def _write_segment(self, keys: np.ndarray, vecs: np.ndarray) -> str:
        """Commit (keys, vectors) as a new segment; returns its name."""
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise storage_error(self.dir, exc, "cannot create the embedding cache folder") from exc
        if not (self.dir / "identity.txt").exists():
            atomic_write_text(self.dir / "identity.txt", self.identity)
        order = _sort_keys(keys)
        name = f"{time.time_ns():016x}-{uuid.uuid4().hex[:8]}"
        files = [self.dir / f"{name}.keys.npy", self.dir / f"{name}.vecs.npy"]
        try:
            atomic_save_npy(files[0], np.ascontiguousarray(keys[order]))
            atomic_save_npy(files[1], np.ascontiguousarray(vecs[order], dtype=np.float32))
        except BaseException:  # a full disk, say: no file of an uncommitted segment stays behind
            for f in files:
                f.unlink(missing_ok=True)
            raise
        self._write_manifest(name, files, len(keys), int(vecs.shape[1]))
        return name

    def _write_manifest(self, name: str, files: Sequence[Path], count: int, dim: int) -> None:
        try:
            write_manifest(self.dir, files, {"count": int(count), "dim": int(dim)}, f"{name}.json")
        except OSError as exc:
            for f in files:
                f.unlink(missing_ok=True)
            raise storage_error(self.dir, exc, "cannot write the embedding cache") from exc

    def _maybe_merge(self) -> None:
        """Merge segments of one size tier once there are MERGE_FANIN of them, unless another process holds the
        lock (it will merge later)."""
        with file_lock(self.dir / "lock", exclusive=True, wait=False) as locked:
            if not locked:
                return
            while True:
                tiers: dict[int, list[_Segment]] = {}
                for seg in self._refresh():
                    tier = int(math.log(max(seg.count, 1), MERGE_FANIN))
                    tiers.setdefault(tier, []).append(seg)
                group = next((g for _, g in sorted(tiers.items()) if len(g) >= MERGE_FANIN), None)
                if group is None:
                    return
                self._merge(group)

    def merge_all(self) -> None:
        """Merge every segment into one (waits for the exclusive lock)."""
        if not self.dir.exists():
            return
        with file_lock(self.dir / "lock", exclusive=True):
            segments = self._refresh()
            if len(segments) > 1:
                self._merge(segments)

    def _merge(self, segments: list[_Segment]) -> None:
        """Write the union of ``segments`` (distinct keys) as one new segment, streaming the vectors through a
        memory map, then delete the old ones. Call with the exclusive lock held."""
        sources: list[tuple[_Segment, np.ndarray]] = []
        for seg in segments:
            vecs = self._vectors(seg)
            if vecs is not None:
                sources.append((seg, vecs))
        if len(sources) < 2:
            return
        dims = {seg.dim for seg, _ in sources}
        if len(dims) != 1:
            return
        keys = np.concatenate([seg.keys for seg, _ in sources])
        src = np.repeat(np.arange(len(sources)), [seg.count for seg, _ in sources])
        row = np.concatenate([np.arange(seg.count) if seg.rows is None else seg.rows for seg, _ in sources])
        order = _sort_keys(keys)
        keys, src, row = keys[order], src[order], row[order]
        keep = np.ones(len(keys), dtype=bool)
        keep[1:] = (keys[1:] != keys[:-1]).any(axis=1)
        keys, src, row = keys[keep], src[keep], row[keep]
        name = f"{time.time_ns():016x}-{uuid.uuid4().hex[:8]}"
        files = [self.dir / f"{name}.keys.npy", self.dir / f"{name}.vecs.npy"]
        atomic_save_npy(files[0], keys)
        tmp = temp_path(self.dir, files[1].name)
        try:
            merged = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(len(keys), dims.pop()))
            reserve(tmp)
            for s, (_, vecs) in enumerate(sources):
                dest = np.flatnonzero(src == s)
                _copy_rows(vecs, row[dest], merged, dest)
            merged.flush()
            del merged
            os.replace(tmp, files[1])
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            files[0].unlink(missing_ok=True)
            raise storage_error(self.dir, exc, "cannot merge the embedding cache") from exc
        except BaseException:
            tmp.unlink(missing_ok=True)
            files[0].unlink(missing_ok=True)
            raise
        self._write_manifest(name, files, len(keys), int(sources[0][0].dim))
        for seg, _ in sources:
            self._delete(seg.name)


def _distinct(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(position of each distinct key's first appearance, in order of appearance; for every position, the index
    of its key in that list)."""
    if keys.shape[0] == 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    _, first, inverse = np.unique(np.ascontiguousarray(keys).view("V16").ravel(), return_index=True,
                                  return_inverse=True)
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return first[order].astype(np.int64), rank[inverse.ravel()].astype(np.int64)


def _copy_rows(src: np.ndarray, rows: np.ndarray, dst: np.ndarray, dest: np.ndarray) -> None:
    """``dst[dest] = src[rows]`` in blocks, reading ``src`` (a memory map) in row order."""
    order = np.argsort(rows, kind="stable")
    rows, dest = rows[order], dest[order]
    for start in range(0, rows.size, COPY_BLOCK):
        dst[dest[start : start + COPY_BLOCK]] = src[rows[start : start + COPY_BLOCK]]


def _fill_duplicates(out: np.ndarray, first: np.ndarray, inverse: np.ndarray) -> None:
    """Copy each distinct text's vector to its later appearances."""
    if inverse.size == first.size:
        return
    dup = np.ones(inverse.size, dtype=bool)
    dup[first] = False
    where = np.flatnonzero(dup)
    for start in range(0, where.size, COPY_BLOCK):
        pos = where[start : start + COPY_BLOCK]
        out[pos] = out[first[inverse[pos]]]
