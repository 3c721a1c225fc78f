"""The content-addressed caches: embeddings per text and model identity (hits, invalidation, corruption,
compaction) and built artefacts (``cached_dir``); text and content digests."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from fakes import FakeEncoder

from negmine.storage import cache as cache_mod
from negmine.storage import embeddings
from negmine.storage.cache import cached_dir, check_manifest, digest_of, text_hashes
from negmine.storage.embeddings import EmbeddingCache

TEXTS = [
    "cats purr when they are happy",
    "a dog needs a long walk",
    "goldfish live in a bowl of water",
    "parrots can learn words",
    "sharks swim in the deep ocean",
    "water the garden in the evening",
]


class Recorder:
    """An encode callback over a FakeEncoder that records each call's texts."""

    def __init__(self, encoder: FakeEncoder | None = None, kind: str = "document") -> None:
        self.encoder = encoder or FakeEncoder()
        self.kind = kind
        self.calls: list[list[str]] = []

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.calls.append(list(texts))
        return self.encoder.encode(texts, self.kind)

    @property
    def texts(self) -> list[str]:
        return [t for call in self.calls for t in call]

    def fresh(self, texts: list[str]) -> np.ndarray:
        """What encoding ``texts`` directly gives (not recorded)."""
        return np.stack([self.encoder.vector(self.encoder.prompts[self.kind] + t) for t in texts]).astype(np.float32)


def make_cache(root: Path, encoder: FakeEncoder | None = None, kind: str = "document") -> EmbeddingCache:
    return EmbeddingCache(root, (encoder or FakeEncoder()).identity(kind))


def shard_names(c: EmbeddingCache) -> list[str]:
    return sorted(p.stem for p in c.dir.glob("*.json"))


def no_temporary_files(root: Path) -> None:
    leftovers = [p for p in root.rglob("*") if p.name.endswith(".tmp") or p.name.startswith(".")]
    assert leftovers == []


# --- digests -----------------------------------------------------------------------------------------------------

def test_text_hashes_shape_and_values() -> None:
    h = text_hashes(["a", "b", "a", "", "héllo ✓"])
    assert h.shape == (5, 16) and h.dtype == np.uint8
    assert (h[0] == h[2]).all()
    assert not (h[0] == h[1]).all()
    assert len({row.tobytes() for row in h}) == 4
    assert h[4].tobytes() == hashlib.blake2b("héllo ✓".encode("utf-8"), digest_size=16).digest()
    assert text_hashes([]).shape == (0, 16)
    # deterministic across calls
    assert (text_hashes(["a", "b"]) == h[:2]).all()


def test_text_hashes_are_case_and_whitespace_sensitive() -> None:
    h = text_hashes(["cat", "Cat", "cat ", " cat"])
    assert len({row.tobytes() for row in h}) == 4


def test_digest_of() -> None:
    assert digest_of("abc") == hashlib.sha256(b"abc").hexdigest()
    assert digest_of("abc") == digest_of(b"abc")
    assert digest_of("a", b"b", "c") == digest_of("abc")
    assert digest_of("abc") != digest_of("abd")
    assert len(digest_of()) == 64 and digest_of() == hashlib.sha256().hexdigest()
    assert digest_of("é") == hashlib.sha256("é".encode("utf-8")).hexdigest()


# --- hits --------------------------------------------------------------------------------------------------------

def test_miss_then_hit(tmp_path: Path) -> None:
    enc = Recorder()
    c = make_cache(tmp_path, enc.encoder)
    vecs, encoded, cached = c.get(TEXTS, enc)
    assert (encoded, cached) == (len(TEXTS), 0)
    assert enc.calls == [TEXTS]
    assert vecs.dtype == np.float32 and vecs.shape == (len(TEXTS), enc.encoder.dim)
    assert np.array_equal(vecs, enc.fresh(TEXTS))

    again, encoded, cached = make_cache(tmp_path, enc.encoder).get(TEXTS, enc)
    assert (encoded, cached) == (0, len(TEXTS))
    assert len(enc.calls) == 1  # the callback was not called again
    assert np.array_equal(again, vecs)


def test_hit_never_calls_encode(tmp_path: Path) -> None:
    make_cache(tmp_path).get(TEXTS, Recorder())

    def boom(texts: list[str]) -> np.ndarray:
        raise AssertionError(f"encode called with {texts}")

    vecs, encoded, cached = make_cache(tmp_path).get(list(reversed(TEXTS)), boom)
    assert (encoded, cached) == (0, len(TEXTS))
    assert np.array_equal(vecs, Recorder().fresh(list(reversed(TEXTS))))


def test_duplicates_encoded_once_and_order_kept(tmp_path: Path) -> None:
    enc = Recorder()
    texts = ["b", "a", "b", "c", "a", "b"]
    vecs, encoded, cached = make_cache(tmp_path).get(texts, enc)
    assert enc.calls == [["b", "a", "c"]]  # distinct, in order of first appearance
    assert (encoded, cached) == (3, 0)
    assert np.array_equal(vecs, enc.fresh(texts))
    assert np.array_equal(vecs[0], vecs[2]) and np.array_equal(vecs[1], vecs[4])


def test_mixed_hits_and_misses_keep_order(tmp_path: Path) -> None:
    enc = Recorder()
    make_cache(tmp_path).get(TEXTS[:3], enc)
    texts = [TEXTS[4], TEXTS[0], TEXTS[3], TEXTS[2], TEXTS[4], TEXTS[1]]
    vecs, encoded, cached = make_cache(tmp_path).get(texts, enc)
    assert enc.calls[1] == [TEXTS[4], TEXTS[3]]
    assert encoded == 2 and cached == 3  # TEXTS[0], TEXTS[2], TEXTS[1]
    assert np.array_equal(vecs, enc.fresh(texts))
    # both segments now serve every text; counts are of distinct texts (TEXTS[4] appears twice)
    vecs2, encoded2, cached2 = make_cache(tmp_path).get(texts, enc)
    assert (encoded2, cached2) == (0, len(set(texts))) and len(enc.calls) == 2
    assert np.array_equal(vecs2, vecs)


def test_fills_the_given_out_array(tmp_path: Path) -> None:
    enc = Recorder()
    make_cache(tmp_path).get(TEXTS[:2], enc)
    out = np.full((len(TEXTS), enc.encoder.dim), np.nan, dtype=np.float32)
    vecs, _, _ = make_cache(tmp_path).get(TEXTS, enc, out=out)
    assert vecs is out
    assert np.array_equal(out, enc.fresh(TEXTS))


# --- invalidation ------------------------------------------------------------------------------------------------

def test_changed_text_only_it_is_reencoded(tmp_path: Path) -> None:
    enc = Recorder()
    make_cache(tmp_path).get(TEXTS, enc)
    edited = list(TEXTS)
    edited[3] = "parrots can learn many words"
    vecs, encoded, cached = make_cache(tmp_path).get(edited, enc)
    assert enc.calls[1] == [edited[3]]
    assert (encoded, cached) == (1, len(TEXTS) - 1)
    assert np.array_equal(vecs, enc.fresh(edited))


def test_changed_model_identity_reencodes_everything(tmp_path: Path) -> None:
    make_cache(tmp_path, FakeEncoder()).get(TEXTS, Recorder())
    other = Recorder(FakeEncoder(name="other"))
    c = make_cache(tmp_path, other.encoder)
    vecs, encoded, cached = c.get(TEXTS, other)
    assert other.calls == [TEXTS] and (encoded, cached) == (len(TEXTS), 0)
    assert np.array_equal(vecs, other.fresh(TEXTS))
    assert not np.allclose(vecs, Recorder().fresh(TEXTS))  # the other model's vectors, not the cached ones
    assert len(list((tmp_path / "embeddings").iterdir())) == 2
    assert (c.dir / "identity.txt").read_text() == other.encoder.identity("document")


def test_changed_dim_reencodes_everything(tmp_path: Path) -> None:
    make_cache(tmp_path, FakeEncoder()).get(TEXTS, Recorder())
    wide = Recorder(FakeEncoder(dim=32))
    vecs, encoded, _ = make_cache(tmp_path, wide.encoder).get(TEXTS, wide)
    assert encoded == len(TEXTS) and vecs.shape == (len(TEXTS), 32)


def test_changed_prompt_reencodes_everything(tmp_path: Path) -> None:
    make_cache(tmp_path, FakeEncoder()).get(TEXTS, Recorder())
    prompted = Recorder(FakeEncoder(corpus_prompt="passage: "))
    vecs, encoded, cached = make_cache(tmp_path, prompted.encoder).get(TEXTS, prompted)
    assert prompted.calls == [TEXTS] and (encoded, cached) == (len(TEXTS), 0)
    assert np.array_equal(vecs, prompted.fresh(TEXTS))
    # the query prompt does not touch the document identity
    q_only = FakeEncoder(query_prompt="query: ")
    assert q_only.identity("document") == FakeEncoder().identity("document")
    assert q_only.identity("query") != FakeEncoder().identity("query")


# --- corruption --------------------------------------------------------------------------------------------------

def _truncate_vecs(c: EmbeddingCache, name: str) -> None:
    p = c.dir / f"{name}.vecs.npy"
    p.write_bytes(p.read_bytes()[:-17])


def _flip_byte(c: EmbeddingCache, name: str) -> None:
    p = c.dir / f"{name}.vecs.npy"
    data = bytearray(p.read_bytes())
    data[-3] ^= 0x40  # inside a vector: the file still loads, with a wrong value
    p.write_bytes(bytes(data))


def _delete_keys(c: EmbeddingCache, name: str) -> None:
    (c.dir / f"{name}.keys.npy").unlink()


def _garbage_manifest(c: EmbeddingCache, name: str) -> None:
    (c.dir / f"{name}.json").write_text("{not json at all")


def _manifest_without_files(c: EmbeddingCache, name: str) -> None:
    (c.dir / f"{name}.json").write_text(json.dumps({"count": 3}))


def _flip_key(c: EmbeddingCache, name: str) -> None:
    p = c.dir / f"{name}.keys.npy"
    data = bytearray(p.read_bytes())
    data[-1] ^= 0x01
    p.write_bytes(bytes(data))


CORRUPTIONS: dict[str, Callable[[EmbeddingCache, str], None]] = {
    "truncated-vecs": _truncate_vecs,
    "flipped-vecs-byte": _flip_byte,
    "deleted-keys": _delete_keys,
    "garbage-manifest": _garbage_manifest,
    "manifest-without-files": _manifest_without_files,
    "flipped-key-byte": _flip_key,
}


@pytest.mark.parametrize("corrupt", list(CORRUPTIONS.values()), ids=list(CORRUPTIONS))
def test_corrupt_shard_is_detected_deleted_and_rebuilt(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                       corrupt: Callable[[EmbeddingCache, str], None]) -> None:
    enc = Recorder()
    c = make_cache(tmp_path)
    fresh, _, _ = c.get(TEXTS, enc)
    (old,) = shard_names(c)
    corrupt(c, old)

    with caplog.at_level(logging.WARNING, logger="negmine"):
        vecs, encoded, cached = make_cache(tmp_path).get(TEXTS, enc)
    assert np.array_equal(vecs, fresh)  # never trusted
    assert enc.calls[1] == TEXTS and (encoded, cached) == (len(TEXTS), 0)
    warnings = [r for r in caplog.records if r.name == "negmine" and r.levelno == logging.WARNING]
    assert len(warnings) == 1 and old in warnings[0].getMessage() and "corrupt" in warnings[0].getMessage()
    # the corrupt shard is gone, a sound one replaced it
    assert not list(c.dir.glob(f"{old}.*"))
    (new,) = shard_names(c)
    assert new != old and check_manifest(c.dir, f"{new}.json") is not None

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="negmine"):
        again, encoded, cached = make_cache(tmp_path).get(TEXTS, enc)
    assert (encoded, cached) == (0, len(TEXTS)) and len(enc.calls) == 2
    assert np.array_equal(again, fresh)
    assert not caplog.records


def test_only_the_corrupt_shard_is_reencoded(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    enc = Recorder()
    c = make_cache(tmp_path)
    c.get(TEXTS[:3], enc)
    (first,) = shard_names(c)
    c.get(TEXTS[3:], enc)
    _flip_byte(c, first)
    with caplog.at_level(logging.WARNING, logger="negmine"):
        vecs, encoded, cached = make_cache(tmp_path).get(TEXTS, enc)
    assert enc.calls[2] == TEXTS[:3]
    assert (encoded, cached) == (3, 3)
    assert np.array_equal(vecs, enc.fresh(TEXTS))
    assert any(first in r.getMessage() for r in caplog.records)


def test_orphan_vector_files_without_manifest_are_ignored(tmp_path: Path) -> None:
    """A crash before the manifest is written leaves files that are never read."""
    enc = Recorder()
    c = make_cache(tmp_path)
    c.get(TEXTS, enc)
    (name,) = shard_names(c)
    (c.dir / f"{name}.json").unlink()
    vecs, encoded, _ = make_cache(tmp_path).get(TEXTS, enc)
    assert encoded == len(TEXTS)
    assert np.array_equal(vecs, enc.fresh(TEXTS))


# --- merging -----------------------------------------------------------------------------------------------------

def test_merging_keeps_every_vector(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embeddings, "MERGE_FANIN", 3)
    enc = Recorder()
    c = make_cache(tmp_path)
    batches = [TEXTS[0:2], TEXTS[2:3], TEXTS[3:5]]
    c.get(batches[0], enc)
    c.get(batches[1], enc)
    assert len(shard_names(c)) == 2
    c.get(batches[2] + batches[0], enc)  # a third small segment: MERGE_FANIN of one tier, merged into one
    assert len(shard_names(c)) == 1
    assert len(list(c.dir.glob("*.npy"))) == 2
    (name,) = shard_names(c)
    assert json.loads((c.dir / f"{name}.json").read_text())["count"] == 5
    assert check_manifest(c.dir, f"{name}.json") is not None

    texts = TEXTS[:5]
    vecs, encoded, cached = make_cache(tmp_path).get(texts, enc)
    assert (encoded, cached) == (0, 5) and len(enc.calls) == 3
    assert np.array_equal(vecs, enc.fresh(texts))
    no_temporary_files(tmp_path)


def test_many_segments_merge_by_tier(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Segments of one size tier merge once there are MERGE_FANIN of them, so their number grows with the log of
    the cache's size, and no vector is moved more than once per tier."""
    monkeypatch.setattr(embeddings, "MERGE_FANIN", 3)
    enc = Recorder()
    texts = [f"text number {i}" for i in range(30)]
    for i, t in enumerate(texts):
        make_cache(tmp_path).get([t], enc)
        counts = sorted(json.loads(p.read_text())["count"] for p in make_cache(tmp_path).dir.glob("*.json"))
        assert sum(counts) == i + 1
        # at most MERGE_FANIN - 1 segments per tier (1-2, 3-8, 9-26, 27-80)
        tiers = [sum(1 for c in counts if lo <= c < hi) for lo, hi in ((1, 3), (3, 9), (9, 27), (27, 81))]
        assert max(tiers) <= 2, counts
    vecs, encoded, cached = make_cache(tmp_path).get(texts, enc)
    assert (encoded, cached) == (0, 30)
    assert np.array_equal(vecs, enc.fresh(texts))


def test_merge_all(tmp_path: Path) -> None:
    enc = Recorder()
    for t in TEXTS:
        make_cache(tmp_path).get([t], enc)
    c = make_cache(tmp_path)
    assert len(shard_names(c)) == len(TEXTS)
    c.merge_all()
    assert len(shard_names(c)) == 1
    vecs, encoded, cached = make_cache(tmp_path).get(TEXTS, enc)
    assert (encoded, cached) == (0, len(TEXTS)) and np.array_equal(vecs, enc.fresh(TEXTS))
    no_temporary_files(tmp_path)


# --- atomicity ---------------------------------------------------------------------------------------------------

def test_no_temporary_files_and_identity_recorded(tmp_path: Path) -> None:
    enc = Recorder()
    c = make_cache(tmp_path)
    c.get(TEXTS[:2], enc)
    c.get(TEXTS, enc)
    no_temporary_files(tmp_path)
    assert (c.dir / "identity.txt").read_text() == FakeEncoder().identity("document")
    names = shard_names(c)
    assert len(names) == 2
    for n in names:
        entry = check_manifest(c.dir, f"{n}.json")
        assert entry is not None
        assert sorted(entry["files"]) == [f"{n}.keys.npy", f"{n}.vecs.npy"]
        assert entry["dim"] == FakeEncoder().dim


def test_failing_encode_writes_nothing(tmp_path: Path) -> None:
    def boom(texts: list[str]) -> np.ndarray:
        raise RuntimeError("encoder crashed")

    with pytest.raises(RuntimeError, match="encoder crashed"):
        make_cache(tmp_path).get(TEXTS, boom)
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]


def test_empty_request_on_empty_cache(tmp_path: Path) -> None:
    vecs, encoded, cached = make_cache(tmp_path).get([], Recorder())
    assert vecs.shape[0] == 0 and (encoded, cached) == (0, 0)


def test_empty_request_on_filled_cache(tmp_path: Path) -> None:
    enc = Recorder()
    make_cache(tmp_path).get(TEXTS, enc)
    vecs, encoded, cached = make_cache(tmp_path).get([], enc)
    assert vecs.shape == (0, enc.encoder.dim) and (encoded, cached) == (0, 0) and len(enc.calls) == 1


# --- cached_dir --------------------------------------------------------------------------------------------------

class Builder:
    def __init__(self, payload: bytes = b"index bytes") -> None:
        self.payload = payload
        self.calls = 0

    def __call__(self, folder: Path) -> None:
        self.calls += 1
        (folder / "index.bin").write_bytes(self.payload)
        (folder / "sub").mkdir()
        (folder / "sub" / "part.json").write_text('{"a": 1}')


def test_cached_dir_builds_once_and_reuses(tmp_path: Path) -> None:
    build = Builder()
    target = cached_dir(tmp_path, "thing", "k1", build, {"factory": "X"})
    assert target == tmp_path / "thing" / "k1"
    assert build.calls == 1
    assert (target / "index.bin").read_bytes() == b"index bytes"
    entry = check_manifest(target)
    assert entry is not None and entry["factory"] == "X"
    assert sorted(entry["files"]) == ["index.bin", "sub/part.json"]

    assert cached_dir(tmp_path, "thing", "k1", build) == target
    assert build.calls == 1
    cached_dir(tmp_path, "thing", "k2", build)
    assert build.calls == 2
    assert sorted(p.name for p in (tmp_path / "thing").iterdir()) == ["k1", "k2"]  # no temporary folders


@pytest.mark.parametrize("damage", ["truncate", "flip", "delete-file", "delete-manifest", "garbage-manifest"])
def test_cached_dir_rebuilds_a_corrupt_artefact(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                damage: str) -> None:
    build = Builder(b"0123456789" * 10)
    target = cached_dir(tmp_path, "faiss", "key", build)
    f = target / "index.bin"
    if damage == "truncate":
        f.write_bytes(f.read_bytes()[:50])
    elif damage == "flip":
        data = bytearray(f.read_bytes())
        data[10] ^= 0xFF
        f.write_bytes(bytes(data))
    elif damage == "delete-file":
        f.unlink()
    elif damage == "delete-manifest":
        (target / "manifest.json").unlink()
    else:
        (target / "manifest.json").write_text("]]")
    with caplog.at_level(logging.WARNING, logger="negmine"):
        again = cached_dir(tmp_path, "faiss", "key", build)
    assert again == target and build.calls == 2
    assert f.read_bytes() == b"0123456789" * 10
    assert check_manifest(target) is not None
    assert any("corrupt" in r.getMessage() and str(target) in r.getMessage() for r in caplog.records)
    no_temporary_files(tmp_path)


def test_cached_dir_failed_build_leaves_nothing(tmp_path: Path) -> None:
    def boom(folder: Path) -> None:
        (folder / "half.bin").write_bytes(b"half")
        raise RuntimeError("build failed")

    with pytest.raises(RuntimeError, match="build failed"):
        cached_dir(tmp_path, "bm25", "key", boom)
    assert list((tmp_path / "bm25").iterdir()) == []
    # and the next attempt builds it properly
    build = Builder()
    target = cached_dir(tmp_path, "bm25", "key", build)
    assert build.calls == 1 and check_manifest(target) is not None


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NEGMINE_CACHE_DIR", str(tmp_path / "a"))
    assert cache_mod.default_cache_dir() == tmp_path / "a"
    monkeypatch.delenv("NEGMINE_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_mod.default_cache_dir() == tmp_path / "xdg" / "negmine"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_mod.default_cache_dir() == tmp_path / "home" / ".cache" / "negmine"


def test_a_shard_of_negmine_0_1_with_unsorted_keys_is_read(tmp_path: Path) -> None:
    """negmine 0.1 wrote shards in encoding order; they are still found, and merged like any segment."""
    enc = Recorder()
    c = make_cache(tmp_path)
    c.dir.mkdir(parents=True)
    keys = text_hashes(TEXTS)
    assert not (np.diff(keys[:, 0].astype(int)) >= 0).all()  # not sorted
    files = [c.dir / "old.keys.npy", c.dir / "old.vecs.npy"]
    np.save(files[0], keys)
    np.save(files[1], enc.fresh(TEXTS))
    cache_mod.write_manifest(c.dir, files, {"count": len(TEXTS), "dim": enc.encoder.dim}, "old.json")
    vecs, encoded, cached = make_cache(tmp_path).get(list(reversed(TEXTS)), enc)
    assert (encoded, cached) == (0, len(TEXTS)) and np.array_equal(vecs, enc.fresh(list(reversed(TEXTS))))
    make_cache(tmp_path).get(["a new text"], enc)
    c.merge_all()
    vecs, encoded, cached = make_cache(tmp_path).get(TEXTS + ["a new text"], enc)
    assert (encoded, cached) == (0, len(TEXTS) + 1) and np.array_equal(vecs, enc.fresh(TEXTS + ["a new text"]))
