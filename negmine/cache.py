"""Content-addressed on-disk caches: text embeddings (per text, per model identity) and built indexes.

Every file is written to a temporary name and renamed into place; a manifest, written last, records each file's
size and SHA-256, and nothing whose manifest does not match is ever read: a truncated or corrupt entry is deleted
and rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from negmine.io import atomic_target, atomic_write_text, file_sha256
from negmine.progress import Progress

logger = logging.getLogger("negmine")

#: Merge a model's embedding shards into one once there are more than this many.
MAX_SHARDS = 32


def default_cache_dir() -> Path:
    """``$NEGMINE_CACHE_DIR``, else ``$XDG_CACHE_HOME/negmine``, else ``~/.cache/negmine``."""
    if os.environ.get("NEGMINE_CACHE_DIR"):
        return Path(os.environ["NEGMINE_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "negmine"


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


def write_manifest(
    folder: Path, files: Sequence[Path], extra: Optional[dict] = None, name: str = "manifest.json"
) -> None:
    """Record size and SHA-256 of ``files`` (relative to ``folder``); written last, it commits the entry."""
    entry = {"files": {str(f.relative_to(folder)): {"size": f.stat().st_size, "sha256": file_sha256(f)}
                       for f in files}}
    entry.update(extra or {})
    atomic_write_text(folder / name, json.dumps(entry, sort_keys=True))


def check_manifest(folder: Path, name: str = "manifest.json") -> Optional[dict]:
    """The manifest if every file it lists exists with its size and SHA-256, else ``None``."""
    try:
        entry = json.loads((folder / name).read_text(encoding="utf-8"))
        for rel, meta in entry["files"].items():
            f = folder / rel
            if f.stat().st_size != meta["size"] or file_sha256(f) != meta["sha256"]:
                return None
        return entry
    except (OSError, ValueError, KeyError, TypeError):
        return None


class EmbeddingCache:
    """Embeddings of texts under one model identity, stored as shards of (text digests, vectors).

    Args:
        root: The cache (or index) directory.
        identity: Everything that determines a text's vector: model, weights digest, prompt, max length.
    """

    def __init__(self, root: Path, identity: str) -> None:
        self.identity = identity
        self.dir = Path(root) / "embeddings" / digest_of(identity)[:32]
        self._loaded: Optional[tuple[list[tuple[str, np.ndarray, Path]], dict[bytes, tuple[int, int]]]] = None

    def _index(self) -> tuple[list[tuple[str, np.ndarray, Path]], dict[bytes, tuple[int, int]]]:
        """The valid shards and where each text digest is (shard, row); checked once, then kept."""
        if self._loaded is None:
            shards = self._shards()
            where: dict[bytes, tuple[int, int]] = {}
            for s, (_, skeys, _) in enumerate(shards):
                for row, k in enumerate(skeys):
                    where.setdefault(k.tobytes(), (s, row))
            self._loaded = (shards, where)
        return self._loaded

    def _shards(self) -> list[tuple[str, np.ndarray, Path]]:
        """Valid shards as (name, keys, vectors path); corrupt ones are deleted with a warning."""
        shards: list[tuple[str, np.ndarray, Path]] = []
        if not self.dir.exists():
            return shards
        for manifest in sorted(self.dir.glob("*.json")):
            name = manifest.stem
            entry = check_manifest(self.dir, manifest.name)
            if entry is None:
                logger.warning("embedding cache: shard %s in %s is corrupt or truncated; it will be rebuilt",
                               name, self.dir)
                self._delete(name)
                continue
            shards.append((name, np.load(self.dir / f"{name}.keys.npy"), self.dir / f"{name}.vecs.npy"))
        return shards

    def _delete(self, name: str) -> None:
        for suffix in (".json", ".keys.npy", ".vecs.npy"):
            (self.dir / f"{name}{suffix}").unlink(missing_ok=True)

    def _write_shard(self, keys: np.ndarray, vecs: np.ndarray) -> str:
        self.dir.mkdir(parents=True, exist_ok=True)
        if not (self.dir / "identity.txt").exists():
            atomic_write_text(self.dir / "identity.txt", self.identity)
        name = uuid.uuid4().hex
        files = [self.dir / f"{name}.keys.npy", self.dir / f"{name}.vecs.npy"]
        atomic_save_npy(files[0], np.ascontiguousarray(keys))
        atomic_save_npy(files[1], np.ascontiguousarray(vecs.astype(np.float32)))
        write_manifest(self.dir, files, {"count": int(len(keys)), "dim": int(vecs.shape[1])}, f"{name}.json")
        return name

    def get(
        self, texts: Sequence[str], encode: Callable[[list[str]], np.ndarray], out: Optional[np.ndarray] = None,
        progress: Optional[Progress] = None,
    ) -> tuple[np.ndarray, int, int]:
        """Vectors for ``texts``: from the cache where present, else from ``encode`` (then stored).

        Args:
            texts: Texts in the order wanted.
            encode: Called once, with the distinct texts the cache lacks.
            out: Optional array (for instance a memory map) to fill; allocated when ``None``.

        Returns:
            (vectors, texts encoded now, texts found in the cache).
        """
        progress = progress or Progress()
        keys = text_hashes(texts)
        keyview = [k.tobytes() for k in keys]
        shards, where = self._index()
        if len(texts) == 0:
            dim = int(np.load(shards[0][2], mmap_mode="r").shape[1]) if shards else 0
            return (out if out is not None else np.empty((0, dim), dtype=np.float32)), 0, 0
        missing_at: dict[bytes, int] = {}
        for i, k in enumerate(keyview):
            if k not in where and k not in missing_at:
                missing_at[k] = i
        cached = sum(1 for k in keyview if k in where)
        new_vecs: Optional[np.ndarray] = None
        if missing_at:
            idx = list(missing_at.values())
            new_vecs = np.asarray(encode([texts[i] for i in idx]), dtype=np.float32)
            name = self._write_shard(keys[idx], new_vecs)
            shards.append((name, keys[idx], self.dir / f"{name}.vecs.npy"))
        dim = new_vecs.shape[1] if new_vecs is not None else int(np.load(shards[0][2], mmap_mode="r").shape[1])
        if out is None:
            out = np.empty((len(texts), dim), dtype=np.float32)
        with progress.stage("reading cached embeddings", total=len(texts)) as advance:
            by_shard: dict[int, tuple[list[int], list[int]]] = {}
            for i, k in enumerate(keyview):
                hit = where.get(k)
                if hit is not None:
                    pos, rows = by_shard.setdefault(hit[0], ([], []))
                    pos.append(i)
                    rows.append(hit[1])
            if new_vecs is not None:  # now in the index too, for the next call
                for row, k in enumerate(missing_at):
                    where[k] = (len(shards) - 1, row)
            for s, (pos, rows) in by_shard.items():
                vecs = np.load(shards[s][2], mmap_mode="r")
                order = np.argsort(rows)
                out[np.asarray(pos)[order]] = vecs[np.asarray(rows)[order]]
                advance(len(pos))
            if new_vecs is not None:
                new_row = {k: r for r, k in enumerate(missing_at)}
                pos = [i for i, k in enumerate(keyview) if k in new_row]
                out[pos] = new_vecs[[new_row[keyview[i]] for i in pos]]
                advance(len(pos))
        if len(shards) > MAX_SHARDS:
            self.compact()
        return out, len(missing_at), cached

    def compact(self) -> None:
        """Merge all shards into one."""
        self._loaded = None
        shards = self._shards()
        keys = np.concatenate([k for _, k, _ in shards])
        vecs = np.concatenate([np.load(p) for _, _, p in shards])
        _, first = np.unique(keys, axis=0, return_index=True)
        self._write_shard(keys[np.sort(first)], vecs[np.sort(first)])
        for name, _, _ in shards:
            self._delete(name)
        self._loaded = None


def cached_dir(root: Path, kind: str, key: str, build: Callable[[Path], None], extra: Optional[dict] = None) -> Path:
    """A built artefact (an index folder) stored under ``root/kind/key``: reused when its manifest checks out,
    else built by ``build(tmp_folder)``, sealed with a manifest and renamed into place."""
    target = Path(root) / kind / key
    if target.exists():
        if check_manifest(target) is not None:
            return target
        logger.warning("%s cache %s is corrupt or incomplete; rebuilding it", kind, target)
        shutil.rmtree(target, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=target.parent))
    try:
        build(tmp)
        write_manifest(tmp, [p for p in sorted(tmp.rglob("*")) if p.is_file()], extra)
        try:
            os.replace(tmp, target)
        except OSError:  # another run won the race; theirs is as good as ours
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target
