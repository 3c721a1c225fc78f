"""Dense retrieval: exact search against brute force, faiss factory indexes (quality, caching), user-supplied
embeddings (.npy and Parquet), and DenseRetriever with the fake encoder (cache, pair scores, the corpus matrix)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fakes import FakeEncoder
from helpers import SMALL_TEXTS

from negmine.errors import ConfigError, InputError
from negmine.inputs.vectors import read_embeddings
from negmine.retrieve import dense, exact
from negmine.retrieve.dense import DenseRetriever
from negmine.retrieve.exact import exact_search
from negmine.retrieve.faiss_index import build_factory_index, factory_search


def unit(rng: np.random.Generator, n: int, dim: int = 16) -> np.ndarray:
    v = rng.normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def brute_force(docs: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k by inner product, best first, ties to the lower index."""
    s = queries.astype(np.float64) @ docs.astype(np.float64).T
    order = np.stack([np.lexsort((np.arange(len(docs)), -row)) for row in s])[:, :k]
    return order, np.take_along_axis(s, order, 1)


@pytest.fixture(scope="module")
def vectors() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    return unit(rng, 300), unit(rng, 25)


# --- exact search ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("k", [1, 10, 50])
def test_exact_search_equals_brute_force(vectors: tuple[np.ndarray, np.ndarray], k: int) -> None:
    docs, queries = vectors
    hits = exact_search(docs, queries, k)
    idx, scores = brute_force(docs, queries, k)
    assert hits.indices.shape == (25, k) and hits.indices.dtype == np.int64
    assert np.array_equal(hits.indices, idx)
    np.testing.assert_allclose(hits.scores, scores, atol=1e-5)
    assert (np.diff(hits.scores, axis=1) <= 0).all()


def test_exact_search_small_blocks_and_batches(vectors: tuple[np.ndarray, np.ndarray],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    docs, queries = vectors[0][:80], vectors[1][:9]
    whole = exact_search(docs, queries, 12)
    monkeypatch.setattr(exact, "DOC_BLOCK", 7)  # smaller than k: every block merge matters
    monkeypatch.setattr(exact, "QUERY_BATCH", 4)
    blocked = exact_search(docs, queries, 12)
    assert np.array_equal(blocked.indices, whole.indices)
    np.testing.assert_allclose(blocked.scores, whole.scores, atol=1e-6)
    idx, _ = brute_force(docs, queries, 12)
    assert np.array_equal(blocked.indices, idx)


def test_exact_search_k_beyond_corpus(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(1)
    docs, queries = unit(rng, 7), unit(rng, 3)
    for block in (1 << 17, 3):
        monkeypatch.setattr(exact, "DOC_BLOCK", block)
        hits = exact_search(docs, queries, 20)
        n = docs.shape[0]
        assert hits.indices.shape[1] >= n
        idx, scores = brute_force(docs, queries, n)
        assert np.array_equal(hits.indices[:, :n], idx)  # every document, best first
        np.testing.assert_allclose(hits.scores[:, :n], scores, atol=1e-5)
        assert (hits.indices[:, n:] == -1).all() and np.isneginf(hits.scores[:, n:]).all()  # padding, if any


def test_exact_search_ties_go_to_the_lower_index_within_the_top_k(monkeypatch: pytest.MonkeyPatch) -> None:
    # ten identical documents: all tie; the lower indices come first
    docs = np.tile(np.array([[1, 0, 0, 0]], np.float32), (10, 1))
    hits = exact_search(docs, docs[:2], 10)
    assert hits.indices.tolist() == [list(range(10))] * 2
    # two values, interleaved: equal scores in index order
    docs = np.zeros((8, 2), np.float32)
    docs[::2, 0] = 1
    docs[1::2, 1] = 1
    hits = exact_search(docs, np.array([[1, 0]], np.float32), 8)
    assert hits.indices[0].tolist() == [0, 2, 4, 6, 1, 3, 5, 7]
    monkeypatch.setattr(exact, "DOC_BLOCK", 3)
    assert exact_search(docs, np.array([[1, 0]], np.float32), 8).indices[0].tolist() == [0, 2, 4, 6, 1, 3, 5, 7]


def test_exact_search_ties_at_the_cut_go_to_the_lower_index(monkeypatch: pytest.MonkeyPatch) -> None:
    docs = np.array([[0, 1], [0, 1], [1, 0]], np.float32)  # scores 0, 0, 1 for the query below
    query = np.array([[1, 0]], np.float32)
    monkeypatch.setattr(exact, "DOC_BLOCK", 1)
    assert exact_search(docs, query, 2).indices[0].tolist() == [2, 0]  # one document per block: right
    monkeypatch.setattr(exact, "DOC_BLOCK", 1 << 17)
    assert exact_search(docs, query, 2).indices[0].tolist() == [2, 0]  # one block: [2, 1]


def test_exact_search_with_duplicates_equals_brute_force(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    base = unit(rng, 5, 8)
    assign = rng.integers(0, 5, size=200)
    docs = base[assign]
    queries = unit(rng, 20, 8)
    s = (queries @ base.T)[:, assign]  # exact ties by construction
    expected = np.stack([np.lexsort((np.arange(200), -row)) for row in s])[:, :50]
    assert np.array_equal(exact_search(docs, queries, 50).indices, expected)


# --- factory indexes ---------------------------------------------------------------------------------------------

def overlap(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean([len(set(x[x >= 0]) & set(y[y >= 0])) / len(set(y[y >= 0])) for x, y in zip(a, b)]))


def factory_retriever(cache: Path, factory: str, docs: np.ndarray, queries: np.ndarray) -> DenseRetriever:
    r = DenseRetriever(None, cache, factory, device="cpu").index([], vectors=docs)
    r.given_query_vectors = queries
    return r


@pytest.mark.parametrize("factory, min_overlap", [("IVF4,Flat", 0.99), ("HNSW8", 0.8)])
def test_factory_index_close_to_exact(tmp_path: Path, vectors: tuple[np.ndarray, np.ndarray], factory: str,
                                      min_overlap: float) -> None:
    docs, queries = vectors
    k = 10
    hits = factory_retriever(tmp_path, factory, docs, queries).search(["q"] * len(queries), k)
    exact = exact_search(docs, queries, k)
    assert hits.indices.shape == (len(queries), k)
    for row, srow, q in zip(hits.indices, hits.scores, queries):
        valid = row >= 0
        assert valid.sum() >= k - 1
        assert len(set(row[valid])) == valid.sum() and (row[valid] < len(docs)).all()
        np.testing.assert_allclose(srow[valid], docs[row[valid]] @ q, atol=1e-4)  # inner products, not distances
        assert (np.diff(srow[valid]) <= 1e-6).all()
        assert np.isneginf(srow[~valid]).all()
    assert overlap(hits.indices, exact.indices) >= min_overlap  # IVF4 probes all 4 lists: exact


def test_factory_index_is_cached_and_reused(tmp_path: Path, vectors: tuple[np.ndarray, np.ndarray],
                                            factory_builds: list[str]) -> None:
    docs, queries = vectors
    builds = factory_builds
    first = factory_retriever(tmp_path, "HNSW8", docs, queries).search(["q"] * 25, 5)
    assert builds == ["HNSW8"]
    (folder,) = list((tmp_path / "faiss").iterdir())
    assert (folder / "index.faiss").is_file() and (folder / "manifest.json").is_file()
    mtime = (folder / "index.faiss").stat().st_mtime_ns

    second = factory_retriever(tmp_path, "HNSW8", docs, queries).search(["q"] * 25, 5)
    assert builds == ["HNSW8"]  # not rebuilt
    assert (folder / "index.faiss").stat().st_mtime_ns == mtime
    assert np.array_equal(first.indices, second.indices)

    factory_retriever(tmp_path, "IVF4,Flat", docs, queries).search(["q"] * 25, 5)
    assert builds == ["HNSW8", "IVF4,Flat"]
    factory_retriever(tmp_path, "HNSW8", docs[:-1], queries).search(["q"] * 25, 5)  # other documents
    assert builds == ["HNSW8", "IVF4,Flat", "HNSW8"]
    assert len(list((tmp_path / "faiss").iterdir())) == 3


def test_factory_index_rebuilt_when_corrupt(tmp_path: Path, vectors: tuple[np.ndarray, np.ndarray],
                                            caplog: pytest.LogCaptureFixture) -> None:
    docs, queries = vectors
    first = factory_retriever(tmp_path, "IVF4,Flat", docs, queries).search(["q"] * 25, 5)
    (folder,) = list((tmp_path / "faiss").iterdir())
    f = folder / "index.faiss"
    f.write_bytes(f.read_bytes()[:100])
    second = factory_retriever(tmp_path, "IVF4,Flat", docs, queries).search(["q"] * 25, 5)
    assert np.array_equal(first.indices, second.indices)
    assert any("corrupt" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("factory", ["Flat", "flat", "exact", ""])
def test_flat_means_exact_search(tmp_path: Path, vectors: tuple[np.ndarray, np.ndarray], factory: str) -> None:
    docs, queries = vectors
    r = factory_retriever(tmp_path, factory, docs, queries)
    assert r.prepare() is None
    hits = r.search(["q"] * 25, 8)
    assert np.array_equal(hits.indices, exact_search(docs, queries, 8).indices)
    assert not (tmp_path / "faiss").exists()


@pytest.mark.parametrize("factory, needle", [("NotAnIndex", "cannot build it"), ("IVF5000,Flat", "training failed")])
def test_bad_factory_string(tmp_path: Path, vectors: tuple[np.ndarray, np.ndarray], factory: str,
                            needle: str) -> None:
    docs, queries = vectors
    with pytest.raises(ConfigError) as err:
        factory_retriever(tmp_path, factory, docs, queries).search(["q"] * 25, 5)
    assert f"--faiss-index {factory!r}" in str(err.value) and needle in str(err.value)
    assert list((tmp_path / "faiss").iterdir()) == []  # no half-built index left


def test_factory_search_with_k_beyond_the_index(tmp_path: Path, vectors: tuple[np.ndarray, np.ndarray]) -> None:
    docs, queries = vectors
    build_factory_index(docs[:6], "HNSW8", tmp_path)
    hits = factory_search(tmp_path / "index.faiss", queries[:3], 20)
    assert hits.indices.shape[1] <= 20
    for row in hits.indices:
        assert sorted(row[row >= 0].tolist()) == list(range(6))


# --- user-supplied embeddings ------------------------------------------------------------------------------------

def test_read_npy_embeddings_are_normalised(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    raw = rng.normal(size=(4, 5)).astype(np.float32) * 7
    raw[2] = 0  # a zero vector stays zero (no division by zero)
    np.save(tmp_path / "e.npy", raw)
    vecs = read_embeddings(tmp_path / "e.npy", ["a", "b", "c", "d"], "corpus")
    assert vecs.shape == (4, 5) and vecs.dtype == np.float32
    expected = raw / np.maximum(np.linalg.norm(raw, axis=1, keepdims=True), 1e-30)
    np.testing.assert_allclose(vecs, expected, rtol=1e-6)
    assert (vecs[2] == 0).all()
    np.testing.assert_allclose(np.linalg.norm(vecs[[0, 1, 3]], axis=1), 1, rtol=1e-6)


def test_read_npy_float64_and_float16(tmp_path: Path) -> None:
    raw = np.array([[3.0, 4.0], [0.0, 2.0]])
    for dtype in (np.float64, np.float16):
        np.save(tmp_path / "e.npy", raw.astype(dtype))
        vecs = read_embeddings(tmp_path / "e.npy", ["a", "b"], "query")
        assert vecs.dtype == np.float32
        np.testing.assert_allclose(vecs, [[0.6, 0.8], [0, 1]], atol=1e-3)


@pytest.mark.parametrize("shape", [(3, 4), (5, 4), (4,), (4, 2, 2)])
def test_read_npy_wrong_shape(tmp_path: Path, shape: tuple[int, ...]) -> None:
    np.save(tmp_path / "e.npy", np.ones(shape, np.float32))
    with pytest.raises(InputError) as err:
        read_embeddings(tmp_path / "e.npy", ["a", "b", "c", "d"], "corpus")
    assert str(tmp_path / "e.npy") in str(err.value) and "expected (4, dim)" in str(err.value)


def test_read_embeddings_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="--query-embeddings file not found"):
        read_embeddings(tmp_path / "nope.npy", ["a"], "query")


def write_vectors(path: Path, ids: list[Any], vectors: list[Any], id_name: str = "id",
                  vec_name: str = "embedding", vec_type: pa.DataType | None = None) -> Path:
    vec_type = vec_type or pa.list_(pa.float32())
    pq.write_table(pa.table({id_name: ids, vec_name: pa.array(vectors, type=vec_type)}), path)
    return path


def test_read_parquet_embeddings_follow_the_given_ids(tmp_path: Path) -> None:
    p = write_vectors(tmp_path / "e.parquet", ["c", "a", "b", "extra"],
                      [[0, 2], [3, 4], [1, 0], [9, 9]])
    vecs = read_embeddings(p, ["a", "b", "c"], "corpus")
    np.testing.assert_allclose(vecs, [[0.6, 0.8], [1, 0], [0, 1]], rtol=1e-6)
    assert vecs.dtype == np.float32


@pytest.mark.parametrize("id_name, vec_name", [("_id", "vector"), ("corpus_id", "emb"), ("doc", "embeddings")])
def test_read_parquet_embeddings_column_names(tmp_path: Path, id_name: str, vec_name: str) -> None:
    p = write_vectors(tmp_path / "e.parquet", ["x", "y"], [[1, 0], [0, 5]], id_name, vec_name)
    np.testing.assert_allclose(read_embeddings(p, ["y", "x"], "corpus"), [[0, 1], [1, 0]])


def test_read_parquet_embeddings_integer_ids_and_fixed_size_lists(tmp_path: Path) -> None:
    p = write_vectors(tmp_path / "e.parquet", [10, 20], [[1.0, 0.0], [0.0, 2.0]],
                      vec_type=pa.list_(pa.float64(), 2))
    np.testing.assert_allclose(read_embeddings(p, ["20", "10"], "query"), [[0, 1], [1, 0]])


def test_read_parquet_embeddings_missing_id(tmp_path: Path) -> None:
    p = write_vectors(tmp_path / "e.parquet", ["a", "b"], [[1, 0], [0, 1]])
    with pytest.raises(InputError) as err:
        read_embeddings(p, ["a", "b", "zz9"], "corpus")
    assert "'zz9'" in str(err.value) and "corpus id" in str(err.value) and str(p) in str(err.value)


def test_read_parquet_embeddings_bad_vectors(tmp_path: Path) -> None:
    p = write_vectors(tmp_path / "ragged.parquet", ["a", "b"], [[1, 0], [0, 1, 2]])
    with pytest.raises(InputError, match="3 values, expected 2"):
        read_embeddings(p, ["a", "b"], "corpus")
    p = write_vectors(tmp_path / "null.parquet", ["a", "b"], [[1, 0], None])
    with pytest.raises(InputError, match="null"):
        read_embeddings(p, ["a", "b"], "corpus")
    pq.write_table(pa.table({"id": ["a"], "embedding": ["1,2"]}), tmp_path / "str.parquet")
    with pytest.raises(InputError, match="lists of floats"):
        read_embeddings(tmp_path / "str.parquet", ["a"], "corpus")
    pq.write_table(pa.table({"id": ["a"], "something": [[1.0]]}), tmp_path / "nocol.parquet")
    with pytest.raises(InputError, match="--corpus-embeddings"):
        read_embeddings(tmp_path / "nocol.parquet", ["a"], "corpus")


# --- DenseRetriever with the fake encoder ------------------------------------------------------------------------

DOCS = SMALL_TEXTS
QUERIES = ["why do cats purr", "how long to walk a dog", "fish water", "cats purr"]


def test_dense_retriever_equals_exact_search_over_the_encoder(tmp_path: Path) -> None:
    fake = FakeEncoder()
    r = DenseRetriever(fake, tmp_path, device="cpu").index(DOCS)
    hits = r.search(QUERIES, 5)
    D = fake.encode(DOCS, "document")
    Q = fake.encode(QUERIES, "query")
    expected = exact_search(D, Q, 5)
    assert np.array_equal(hits.indices, expected.indices)
    np.testing.assert_allclose(hits.scores, expected.scores, atol=1e-6)
    assert hits.indices[0, 0] == 0 and hits.indices[2, 0] in (8, 9)  # sanity: bag-of-words neighbours
    assert r.encoded == len(DOCS) + len(QUERIES) and r.cached == 0
    assert np.array_equal(r.doc_vectors, D) and np.array_equal(r.query_vectors, Q)


def test_dense_retriever_reads_the_cache(tmp_path: Path) -> None:
    first = FakeEncoder()
    DenseRetriever(first, tmp_path, device="cpu").index(DOCS).search(QUERIES, 3)
    second = FakeEncoder()
    r = DenseRetriever(second, tmp_path, device="cpu").index(DOCS)
    hits = r.search(QUERIES, 3)
    assert second.encoded == [] and r.encoded == 0 and r.cached == len(DOCS) + len(QUERIES)
    assert np.array_equal(hits.indices, exact_search(first.encode(DOCS, "document"),
                                                     first.encode(QUERIES, "query"), 3).indices)
    third = FakeEncoder()
    edited = DOCS[:5] + ["a brand new document about dogs"] + DOCS[6:]
    r3 = DenseRetriever(third, tmp_path, device="cpu").index(edited)
    r3.search(QUERIES + ["a new query"], 3)
    assert third.encoded == ["a brand new document about dogs", "a new query"]


def test_pair_scores_are_cosines(tmp_path: Path) -> None:
    fake = FakeEncoder()
    r = DenseRetriever(fake, tmp_path, device="cpu").index(DOCS)
    r.search(QUERIES, 3)
    docs = [[0, 5, 11], [4], [], [3, 3, 0]]
    scores = r.pair_scores(QUERIES, docs)
    for q, (d, s) in enumerate(zip(docs, scores)):
        qv = fake.vector(QUERIES[q])
        expected = [float(fake.vector(DOCS[i]) @ qv) for i in d]
        np.testing.assert_allclose(s, expected, atol=1e-6)
        assert len(s) == len(d)
    assert scores[0][0] == pytest.approx(float(r.search(QUERIES, 1).scores[0, 0]), abs=1e-6)


def test_given_vectors_skip_the_encoder(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    D, Q = unit(rng, len(DOCS), 8), unit(rng, len(QUERIES), 8)
    fake = FakeEncoder()
    r = DenseRetriever(fake, tmp_path, device="cpu").index(DOCS, vectors=D)
    r.given_query_vectors = Q
    hits = r.search(QUERIES, 4)
    assert fake.encoded == [] and r.encoded == 0
    assert np.array_equal(hits.indices, exact_search(D, Q, 4).indices)


def test_no_encoder_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--corpus-embeddings"):
        DenseRetriever(None, tmp_path, device="cpu").index(DOCS)
    r = DenseRetriever(None, tmp_path, device="cpu").index(DOCS, vectors=unit(np.random.default_rng(0), 12, 4))
    with pytest.raises(ConfigError, match="--query-embeddings"):
        r.search(QUERIES, 3)


def test_corpus_matrix_is_memory_mapped_from_the_cache(tmp_path: Path) -> None:
    fake = FakeEncoder()
    r = DenseRetriever(fake, tmp_path, device="cpu").index(DOCS)
    assert isinstance(r.doc_vectors, np.memmap)
    (folder,) = list((tmp_path / "vectors").iterdir())
    assert Path(r.doc_vectors.filename) == folder / "vectors.npy" and (folder / "manifest.json").is_file()
    assert np.array_equal(r.doc_vectors, fake.encode(DOCS, "document"))  # corpus order
    assert not list((tmp_path / "vectors").glob("*.tmp"))


def test_corpus_matrix_is_reused_without_encoding_or_lookup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    texts = DOCS + DOCS[:3]  # repeated texts count once
    first = DenseRetriever(FakeEncoder(), tmp_path, device="cpu").index(texts)
    assert (first.encoded, first.cached) == (len(DOCS), 0)
    expected = first.search(QUERIES, 6)

    def no_lookup(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the embedding cache was consulted")

    monkeypatch.setattr(dense.EmbeddingCache, "get", no_lookup)
    again = FakeEncoder()
    r = DenseRetriever(again, tmp_path, device="cpu").index(texts)
    assert again.encoded == [] and (r.encoded, r.cached) == (0, len(DOCS))
    assert np.array_equal(np.asarray(r.doc_vectors), np.asarray(first.doc_vectors))
    r.given_query_vectors = first.query_vectors
    hits = r.search(QUERIES, 6)
    assert np.array_equal(hits.indices, expected.indices) and np.array_equal(hits.scores, expected.scores)


def test_corpus_matrix_rebuilt_when_corrupt(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    fake = FakeEncoder()
    first = np.asarray(DenseRetriever(fake, tmp_path, device="cpu").index(DOCS).doc_vectors).copy()
    (folder,) = list((tmp_path / "vectors").iterdir())
    raw = bytearray((folder / "vectors.npy").read_bytes())
    raw[-5] ^= 0xFF
    (folder / "vectors.npy").write_bytes(bytes(raw))
    again = FakeEncoder()
    r = DenseRetriever(again, tmp_path, device="cpu").index(DOCS)
    assert any("corrupt" in rec.getMessage() for rec in caplog.records)
    assert again.encoded == []  # rebuilt from the embedding cache
    assert np.array_equal(np.asarray(r.doc_vectors), first)


def test_corpus_matrix_follows_the_texts_and_the_model(tmp_path: Path) -> None:
    DenseRetriever(FakeEncoder(), tmp_path, device="cpu").index(DOCS)
    edited = DOCS[:5] + ["a brand new document about dogs"] + DOCS[6:]
    fake = FakeEncoder()
    r = DenseRetriever(fake, tmp_path, device="cpu").index(edited)
    assert fake.encoded == ["a brand new document about dogs"]
    assert np.array_equal(np.asarray(r.doc_vectors), fake.encode(edited, "document"))
    other = FakeEncoder(name="other")
    DenseRetriever(other, tmp_path, device="cpu").index(DOCS)
    assert len(other.encoded) == len(set(DOCS))
    assert len(list((tmp_path / "vectors").iterdir())) == 3


def test_corpus_matrix_of_no_documents(tmp_path: Path) -> None:
    r = DenseRetriever(FakeEncoder(), tmp_path, device="cpu").index([])
    assert r.doc_vectors is not None and r.doc_vectors.shape[0] == 0


def test_dense_retriever_with_factory_index_and_encoder(tmp_path: Path) -> None:
    fake = FakeEncoder()
    r = DenseRetriever(fake, tmp_path, "HNSW16", device="cpu").index(DOCS)
    hits = r.search(QUERIES, 5)
    exact = exact_search(fake.encode(DOCS, "document"), fake.encode(QUERIES, "query"), 5)
    # the fake's scores tie a lot: compare scores rank by rank, and each hit's score with its cosine
    np.testing.assert_allclose(hits.scores, exact.scores, atol=1e-5)
    D = fake.encode(DOCS, "document")
    for q, (row, srow) in enumerate(zip(hits.indices, hits.scores)):
        np.testing.assert_allclose(D[row] @ fake.vector(QUERIES[q]), srow, atol=1e-5)
    assert len(list((tmp_path / "faiss").iterdir())) == 1
