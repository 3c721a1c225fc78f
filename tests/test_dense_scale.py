"""Dense retrieval at scale, on small data: batch-invariant exact search, memory-mapped inputs that are not
copied, given embeddings used in place or normalised into the cache, on-disk IVF indexes and their measured
recall, ``faiss_index="auto"``."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from negmine.errors import InputError
from negmine.inputs.vectors import read_embeddings
from negmine.retrieve import dense, exact, ivf
from negmine.retrieve.dense import DenseRetriever
from negmine.retrieve.exact import exact_search, inner_products


def unit(n: int, dim: int = 32, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def canonical_top(docs: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k by ``inner_products`` over every pair, ties to the lower index."""
    s = np.stack([inner_products(docs, q) for q in queries])
    order = np.stack([np.lexsort((np.arange(len(docs)), -row)) for row in s])[:, :k]
    return order, np.take_along_axis(s, order, 1)


def tie_heavy_corpus() -> tuple[np.ndarray, np.ndarray]:
    """384 dimensions: random documents, exact duplicates, near-duplicates (a few float32 ulps apart, which
    faiss's kernels may order either way), and queries that are documents (their twins tie at the top)."""
    rng = np.random.default_rng(3)
    base = unit(1500, 384, seed=1)
    near = base[:300] + rng.normal(scale=3e-8, size=(300, 384)).astype(np.float32)
    docs = np.concatenate([base, base[rng.integers(0, 1500, 600)], near, np.tile(base[:1], (40, 1))])
    docs = docs[rng.permutation(len(docs))]
    queries = np.concatenate([unit(700, 384, seed=2), base[:100]])  # 800: faiss's BLAS blocks come into play
    return docs, queries.astype(np.float32)


# --- exact search: batch invariance ----------------------------------------------------------------------------

@pytest.mark.parametrize("block", [1 << 17, 500])
def test_exact_search_is_batch_invariant(monkeypatch: pytest.MonkeyPatch, block: int) -> None:
    docs, queries = tie_heavy_corpus()
    monkeypatch.setattr(exact, "DOC_BLOCK", block)
    k = 60
    whole = exact_search(docs, queries, k)
    alone = [exact_search(docs, queries[i : i + 1], k) for i in range(len(queries))]  # another faiss kernel
    threes = [exact_search(docs, queries[i : i + 3], k) for i in range(0, len(queries), 3)]
    for parts in (alone, threes):
        assert np.concatenate([h.indices for h in parts]).tobytes() == whole.indices.tobytes()
        assert np.concatenate([h.scores for h in parts]).tobytes() == whole.scores.tobytes()
    idx, scores = canonical_top(docs, queries, k)
    assert np.array_equal(whole.indices, idx) and whole.scores.tobytes() == scores.tobytes()


def test_dense_retriever_search_is_batch_invariant(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    docs, queries = tie_heavy_corpus()
    monkeypatch.setattr(exact, "DOC_BLOCK", 700)
    r = DenseRetriever(None, tmp_path, device="cpu").index([], vectors=docs)
    r.given_query_vectors = queries
    whole = r.search(["q"] * len(queries), 25)
    for size in (1, 7):
        parts = []
        for s in range(0, len(queries), size):
            r.given_query_vectors = queries[s : s + size]
            parts.append(r.search(["q"] * len(r.given_query_vectors), 25))
            pair = r.pair_scores(["q"] * size, [p for p in parts[-1].indices])
            assert all(np.array_equal(a, b) for a, b in zip(pair, parts[-1].scores))  # the same scores
        assert np.concatenate([h.indices for h in parts]).tobytes() == whole.indices.tobytes()
        assert np.concatenate([h.scores for h in parts]).tobytes() == whole.scores.tobytes()


def test_inner_products_are_one_score_per_pair() -> None:
    x = unit(50, 384)
    y = unit(50, 384, seed=9)
    pairwise = inner_products(x, y)
    assert pairwise.dtype == np.float32
    np.testing.assert_allclose(pairwise, np.einsum("ij,ij->i", x.astype(np.float64), y.astype(np.float64)),
                               rtol=0, atol=1e-6)
    for i in (0, 7, 49):  # alone, in a slice, against a broadcast query: the same bits
        assert inner_products(x[i : i + 1], y[i : i + 1])[0] == pairwise[i]
        assert inner_products(x[i], y[i]) == pairwise[i]
        assert inner_products(np.ascontiguousarray(x[::7]), y[i])[i // 7 if i % 7 == 0 else 0] == \
            (pairwise[i] if i % 7 == 0 else inner_products(x[0], y[i]))


# --- memory-mapped inputs are not copied -----------------------------------------------------------------------

def write_npy(path: Path, vecs: np.ndarray) -> Path:
    np.save(path, vecs)
    return path


def test_given_unit_npy_is_used_in_place(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    p = write_npy(tmp_path / "e.npy", unit(300))
    with caplog.at_level(logging.DEBUG, logger="negmine"):
        vecs = read_embeddings(p, list(range(300)), "corpus", tmp_path / "cache")
    assert isinstance(vecs, np.memmap) and Path(vecs.filename) == p.resolve()
    assert not (tmp_path / "cache" / "vectors").exists()
    assert any("used in place" in r.getMessage() for r in caplog.records)


def test_given_npy_that_is_not_normalised_is_normalised_into_the_cache(tmp_path: Path,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    raw = unit(300) * np.linspace(0.5, 3, 300, dtype=np.float32)[:, None]
    raw[7] = 0
    p = write_npy(tmp_path / "e.npy", raw)
    cache = tmp_path / "cache"
    mapped = read_embeddings(p, list(range(300)), "corpus", cache)
    vecs = np.array(mapped)  # a copy: the file is damaged below
    (folder,) = list((cache / "vectors").iterdir())
    assert isinstance(mapped, np.memmap) and Path(mapped.filename) == folder / "vectors.npy"
    assert vecs.dtype == np.float32 and (vecs[7] == 0).all()
    np.testing.assert_allclose(vecs, raw / np.maximum(np.linalg.norm(raw, axis=1, keepdims=True), 1e-30), rtol=1e-6)
    mtime = (folder / "vectors.npy").stat().st_mtime_ns
    again = read_embeddings(p, list(range(300)), "corpus", cache)  # reused
    assert (folder / "vectors.npy").stat().st_mtime_ns == mtime and np.array_equal(again, vecs)
    (folder / "vectors.npy").write_bytes((folder / "vectors.npy").read_bytes()[:-8])  # truncated: rebuilt
    third = read_embeddings(p, list(range(300)), "corpus", cache)
    assert np.array_equal(third, vecs) and any("corrupt" in r.getMessage() for r in caplog.records)
    raw[0] *= 2  # other values: another copy
    read_embeddings(write_npy(p, raw), list(range(300)), "corpus", cache)
    assert len(list((cache / "vectors").iterdir())) == 2


def test_given_npy_other_dtypes_and_bad_rows(tmp_path: Path) -> None:
    v = unit(100)
    half = read_embeddings(write_npy(tmp_path / "h.npy", v.astype(np.float16)), list(range(100)), "query",
                           tmp_path / "c")
    assert half.dtype == np.float32 and isinstance(half, np.memmap)
    np.testing.assert_allclose(np.linalg.norm(half, axis=1), 1, rtol=1e-6)
    bad = v.copy()
    bad[77, 3] = np.inf
    with pytest.raises(InputError, match="row 77"):
        read_embeddings(write_npy(tmp_path / "b.npy", bad), list(range(100)), "corpus", tmp_path / "c")


RSS_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    from negmine.retrieve.dense import DenseRetriever
    from negmine.inputs.vectors import read_embeddings

    def rss_anon():
        for line in open("/proc/self/status"):
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024

    path, cache, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    queries = np.ascontiguousarray(np.load(path, mmap_mode="r")[:64])
    import faiss; faiss.knn(queries, queries, 2)  # faiss and its threads loaded
    before = rss_anon()
    vecs = read_embeddings(path, range(n), "corpus", cache)
    r = DenseRetriever(None, cache, "Flat", device="cpu").index([], vectors=vecs)
    r.given_query_vectors = queries
    hits = r.search(["q"] * 64, 10)
    assert (hits.indices[:, 0] == np.arange(64)).all()
    print(type(vecs).__name__, rss_anon() - before)
""")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
@pytest.mark.parametrize("scale", [1.0, 2.0])
def test_searching_a_given_npy_does_not_copy_it(tmp_path: Path, scale: float) -> None:
    n, dim = 150_000, 256  # 154 MB
    path = tmp_path / "big.npy"
    mm = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, dim))
    for s in range(0, n, 50_000):
        mm[s : s + 50_000] = unit(min(50_000, n - s), dim, seed=s) * scale  # scale 2: normalised into the cache
    mm.flush()
    del mm
    size = path.stat().st_size
    out = subprocess.run([sys.executable, "-c", RSS_SCRIPT, str(path), str(tmp_path / "cache"), str(n)],
                         capture_output=True, text=True, check=True)
    kind, grown = out.stdout.split()
    assert kind == "memmap"
    assert int(grown) < size // 4, f"private memory grew by {int(grown) >> 20} MiB for a {size >> 20} MiB file"


# --- approximate indexes: on disk, memory-mapped, measured --------------------------------------------------------

def ann(tmp_path: Path, factory: str, docs: np.ndarray, queries: np.ndarray) -> DenseRetriever:
    r = DenseRetriever(None, tmp_path, factory, device="cpu").index([], vectors=docs)
    r.given_query_vectors = queries
    return r


def clustered(n: int, dim: int = 32, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = unit(200, dim, seed=seed + 100)
    v = centres[rng.integers(0, 200, n)] + 0.15 * rng.normal(size=(n, dim)).astype(np.float32)
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def test_on_disk_ivf_is_memory_mapped_and_equals_the_in_ram_index(tmp_path: Path) -> None:
    import faiss

    docs, queries = clustered(5000), clustered(120, seed=5)
    r = ann(tmp_path, "IVF32,Flat", docs, queries)
    hits = r.search(["q"] * 120, 10)
    path = r.prepare() / "index.faiss"  # type: ignore[operator]
    assert r._index is not None and r._index.on_disk and ivf.is_mapped(r._index.index)
    assert str(path) in Path("/proc/self/maps").read_text()
    assert r.search_report is not None and r.search_report["on_disk"]
    in_ram = faiss.read_index(str(path))
    in_ram.nprobe = r.search_report["nprobe"]
    d, i = in_ram.search(queries, 10)
    assert np.array_equal(np.sort(i, axis=1), np.sort(hits.indices, axis=1))
    np.testing.assert_allclose(np.sort(d, axis=1), np.sort(hits.scores, axis=1), atol=1e-6)
    # batch invariant too: the lists a query probes are chosen canonically
    alone = np.concatenate([r.search(["q"], 10).indices for r.given_query_vectors in queries[:, None]])
    assert np.array_equal(alone, hits.indices)


def test_recall_is_measured_and_nprobe_chosen(tmp_path: Path) -> None:
    docs, queries = clustered(20_000), clustered(300, seed=5)
    r = ann(tmp_path, "IVF64,Flat", docs, queries)
    hits = r.search(["q"] * 300, 20)
    report = r.search_report
    assert report is not None
    assert report["index"] == "IVF64,Flat" and report["k"] == 20 and report["sample"] == dense.RECALL_SAMPLE
    assert report["nprobe"] in (16, 32, 64) and report["recall_at_k"] >= dense.RECALL_TARGET
    assert list(report["tried"])[-1] == str(report["nprobe"])
    exact = exact_search(docs, queries, 20)
    overlap = np.mean([len(set(a) & set(b)) / 20 for a, b in zip(hits.indices, exact.indices)])
    assert abs(overlap - report["recall_at_k"]) < 0.05  # the sample tells the truth
    r2 = ann(tmp_path, "IVF64,Flat", docs, queries)
    r2.search(["q"] * 300, 20)
    assert r2.search_report is not None
    assert {**r2.search_report, "seconds": 0} == {**report, "seconds": 0}  # seeded


def test_low_recall_warns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(dense, "NPROBES", (1,))
    docs, queries = unit(20_000), unit(150, seed=5)  # no clusters: one list of 64 finds little
    r = ann(tmp_path, "IVF64,Flat", docs, queries)
    with caplog.at_level(logging.WARNING, logger="negmine"):
        r.search(["q"] * 150, 20)
    assert r.search_report is not None and r.search_report["nprobe"] == 1
    assert r.search_report["recall_at_k"] < dense.RECALL_TARGET
    (warning,) = [rec for rec in caplog.records if rec.levelno == logging.WARNING]
    assert "IVF64,Flat" in warning.getMessage() and "exact" in warning.getMessage()


def test_hnsw_efsearch_is_tuned_and_pq_rescored(tmp_path: Path) -> None:
    docs, queries = clustered(3000), clustered(50, seed=5)
    r = ann(tmp_path, "HNSW16", docs, queries)
    r.search(["q"] * 50, 10)
    assert r.search_report is not None and r.search_report["efSearch"] >= 10 and not r.search_report["on_disk"]
    pq = ann(tmp_path, "IVF16,PQ8", docs, queries)
    hits = pq.search(["q"] * 50, 10)
    assert pq.search_report is not None and pq.search_report["on_disk"]
    for q, (row, srow) in enumerate(zip(hits.indices, hits.scores)):  # exact scores of the lossy candidates
        assert np.array_equal(srow, inner_products(docs[row], queries[q]))


def test_auto_is_exact_for_small_corpora_and_ivf_above(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    docs, queries = clustered(6000), clustered(60, seed=5)
    small = ann(tmp_path, "auto", docs, queries)
    hits = small.search(["q"] * 60, 10)
    assert small.prepare() is None and small.search_report is not None and small.search_report["index"] == "exact"
    assert np.array_equal(hits.indices, exact_search(docs, queries, 10).indices)
    monkeypatch.setattr(dense, "AUTO_EXACT_MAX", 5000)
    big = ann(tmp_path, "auto", docs, queries)
    big.search(["q"] * 60, 10)
    assert big.factory() == "IVF16,Flat"
    assert big.search_report is not None and big.search_report["index"] == "IVF16,Flat"
    assert big.search_report["on_disk"] and big.search_report["nprobe"] == 16


def test_an_approximate_index_is_tuned_once_per_run(tmp_path: Path) -> None:
    """mine with an IVF index: the setting is chosen from a sample of all the run's queries before the batches,
    so the output does not depend on the batch size; the recall is in the provenance and the summary."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    import negmine
    from negmine.report.summary import summary_rows

    docs, queries = clustered(3000), clustered(90, seed=5)
    n = len(queries)
    pq.write_table(pa.table({"_id": [f"d{i}" for i in range(len(docs))],
                             "text": [f"document {i} words w{i % 7}" for i in range(len(docs))]}),
                   tmp_path / "corpus.parquet")
    pq.write_table(pa.table({"_id": [f"q{i}" for i in range(n)], "text": [f"query {i}" for i in range(n)]}),
                   tmp_path / "queries.parquet")
    nearest = exact_search(docs, queries, 1).indices[:, 0]
    pq.write_table(pa.table({"query-id": [f"q{i}" for i in range(n)], "corpus-id": [f"d{j}" for j in nearest],
                             "score": [1] * n}), tmp_path / "qrels.parquet")
    np.save(tmp_path / "docs.npy", docs)
    np.save(tmp_path / "queries.npy", queries)
    outputs = []
    for batch in (7, 1024):
        out = tmp_path / f"out-{batch}.parquet"
        result = negmine.mine(tmp_path / "corpus.parquet", tmp_path / "queries.parquet", tmp_path / "qrels.parquet",
                              output=out, retriever="dense", faiss_index="IVF16,Flat", query_batch_size=batch,
                              corpus_embeddings=tmp_path / "docs.npy", query_embeddings=tmp_path / "queries.npy",
                              cache_dir=tmp_path / "cache", lexical_overlap=None, cross_query=None)
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1]
    recorded = negmine.read_metadata(out)["stats"]["dense_search"]
    assert recorded["index"] == "IVF16,Flat" and recorded["sample"] == min(dense.RECALL_SAMPLE, n)
    assert recorded["nprobe"] == 16 and 0 < recorded["recall_at_k"] <= 1 and "seconds" not in recorded
    (line,) = [v for label, v in summary_rows(result.stats, 5) if label == "dense search"]
    assert line.startswith("IVF16,Flat on disk, nprobe 16: recall@") and "on 90 sampled queries" in line


def test_a_setting_chosen_elsewhere_is_used_without_measuring_again(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A Ray worker takes the driver's nprobe (use_setting) and searches exactly as the driver would, with no
    recall measurement of its own."""
    docs, queries = clustered(5000), clustered(120, seed=5)
    driver = ann(tmp_path, "IVF32,Flat", docs, queries)
    report = driver.tune(queries, 10)
    assert report is not None and report["nprobe"] is not None
    expected = driver.search(["q"] * 120, 10)
    worker = ann(tmp_path, "IVF32,Flat", docs, queries)

    def no_measuring(*args: object) -> None:
        raise AssertionError("the worker measured recall again")

    monkeypatch.setattr(DenseRetriever, "_tune", no_measuring)
    worker.use_setting({k: v for k, v in report.items() if k != "seconds"})
    hits = worker.search(["q"] * 120, 10)
    assert np.array_equal(hits.indices, expected.indices) and np.array_equal(hits.scores, expected.scores)
    assert worker.search_report is not None and worker.search_report["nprobe"] == report["nprobe"]
