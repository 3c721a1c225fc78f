"""negmine.ivf: IVF indexes filled on disk are the files faiss writes for the same index filled in RAM, and they
are memory-mapped when read."""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np
import pytest

from negmine.retrieve import ivf


def unit(n: int, dim: int = 16, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def trained(factory: str, x: np.ndarray) -> faiss.Index:
    index = faiss.index_factory(x.shape[1], factory, faiss.METRIC_INNER_PRODUCT)
    index.train(x[ivf.training_rows(len(x), index)])
    return index


@pytest.mark.parametrize("factory, n", [
    ("IVF16,Flat", 3000),  # every list filled: a full table of sizes
    ("IVF64,Flat", 20),  # most lists empty: a sparse table
    ("IVF8,PQ4", 3000),  # residual codes
    ("IVF4,SQ8", 1000),
])
def test_written_on_disk_as_faiss_writes_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, factory: str,
                                            n: int) -> None:
    x = unit(3000)
    index = trained(factory, x)
    blob = faiss.serialize_index(index)
    in_ram = faiss.deserialize_index(blob)
    in_ram.add(x[:n])
    faiss.write_index(in_ram, str(tmp_path / "ram.faiss"))
    monkeypatch.setattr(ivf, "BLOCK", 700)  # several blocks: lists filled across blocks in corpus order
    ivf.write_lists(faiss.deserialize_index(blob), x[:n], tmp_path / "disk.faiss")
    assert (tmp_path / "disk.faiss").read_bytes() == (tmp_path / "ram.faiss").read_bytes()


def test_read_mapped_maps_the_lists(tmp_path: Path) -> None:
    x = unit(3000)
    index = trained("IVF16,Flat", x)
    ivf.write_lists(index, x, tmp_path / "index.faiss")
    mapped = ivf.read_mapped(tmp_path / "index.faiss")
    assert ivf.is_mapped(mapped) and mapped.ntotal == 3000
    maps = Path("/proc/self/maps")
    if maps.exists():
        assert str(tmp_path / "index.faiss") in maps.read_text()
    in_ram = faiss.read_index(str(tmp_path / "index.faiss"))
    assert not ivf.is_mapped(in_ram)
    for i in (mapped, in_ram):
        i.nprobe = 4
    d1, i1 = mapped.search(x[:50], 10)
    d2, i2 = in_ram.search(x[:50], 10)
    assert np.array_equal(i1, i2) and np.array_equal(d1, d2)


@pytest.mark.parametrize("factory", ["HNSW8", "PCA8,IVF4,Flat", "IVF4,Flat,Refine(Flat)"])
def test_other_indexes_are_not_written_on_disk(factory: str) -> None:
    assert not ivf.can_write(trained(factory, unit(2000)))


def test_auto_nlist_and_training_sample() -> None:
    assert ivf.auto_nlist(10) == 1 and ivf.auto_nlist(20_000) == 64 and ivf.auto_nlist(8_841_823) == ivf.AUTO_NLIST
    index = faiss.index_factory(8, "IVF64,Flat", faiss.METRIC_INNER_PRODUCT)
    rows = ivf.training_rows(1_000_000, index)
    assert len(rows) == max(ivf.TRAIN_MIN, 64 * ivf.TRAIN_PER_LIST) and (np.diff(rows) > 0).all()
    big = faiss.index_factory(8, "IVF4096,Flat", faiss.METRIC_INNER_PRODUCT)
    assert len(ivf.training_rows(10_000_000, big)) == 4096 * ivf.TRAIN_PER_LIST
    assert np.array_equal(rows, ivf.training_rows(1_000_000, index))  # seeded
    assert np.array_equal(ivf.training_rows(100, index), np.arange(100))
