"""Dense retrieval: cached embeddings and faiss inner-product search (exact by default, any index factory
string for large corpora, on the GPU when faiss-gpu sees one)."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from negmine.cache import EmbeddingCache, cached_dir, digest_of, text_hashes
from negmine.errors import ConfigError, InputError
from negmine.models import Encoder, encode_stream
from negmine.progress import Progress
from negmine.retrieve import Hits, topk

logger = logging.getLogger("negmine")

#: Corpus rows searched per exact-search block, and queries per batch: memory stays bounded.
DOC_BLOCK = 1 << 17
QUERY_BATCH = 4096
#: Corpus embeddings larger than this many bytes are assembled in a memory-mapped file, not in RAM.
MMAP_BYTES = 1 << 30


def _faiss() -> Any:
    import faiss

    return faiss


def gpu_count() -> int:
    """GPUs faiss can use (0 with faiss-cpu)."""
    faiss = _faiss()
    return int(faiss.get_num_gpus()) if hasattr(faiss, "get_num_gpus") else 0


def _merge_topk(
    d1: np.ndarray, i1: np.ndarray, d2: np.ndarray, i2: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    d = np.concatenate([d1, d2], axis=1)
    i = np.concatenate([i1, i2], axis=1)
    # best score first; among equal scores the lower corpus index first
    order = np.lexsort((np.where(i < 0, np.iinfo(np.int64).max, i), -d), axis=1)[:, :k]
    return np.take_along_axis(d, order, 1), np.take_along_axis(i, order, 1)


def _block_topk(xq: np.ndarray, xb: np.ndarray, k: int, gpu_res: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """Each query's top ``k`` of one corpus block, best first, ties broken by the lower index.

    faiss returns a few more than ``k``; when the fetched list ends inside the tie at rank ``k`` (so tied
    documents may have been cut arbitrarily), that query's block is scored in full and cut exactly.
    """
    faiss = _faiss()
    k = min(k, len(xb))
    fetch = min(len(xb), 2 * k + 8)
    if gpu_res is not None:
        d, i = faiss.knn_gpu(gpu_res, xq, xb, fetch, metric=faiss.METRIC_INNER_PRODUCT)
    else:
        d, i = faiss.knn(xq, xb, fetch, metric=faiss.METRIC_INNER_PRODUCT)
    d, i = d.astype(np.float32), i.astype(np.int64)
    order = np.lexsort((i, -d), axis=1)[:, :k]
    out_d, out_i = np.take_along_axis(d, order, 1), np.take_along_axis(i, order, 1)
    if fetch < len(xb):
        for row in np.flatnonzero(d[:, fetch - 1] >= out_d[:, k - 1]):
            out_i[row], out_d[row] = topk(xb @ xq[row], k)
    return out_d, out_i


def exact_search(docs: np.ndarray, queries: np.ndarray, k: int, use_gpu: bool = False,
                 progress: Optional[Progress] = None) -> Hits:
    """Exact top-k by inner product, over corpus blocks (``docs`` may be a memory map) and query batches."""
    faiss = _faiss()
    progress = progress or Progress()
    n, nq = docs.shape[0], queries.shape[0]
    k = min(k, n)
    hits = Hits.empty(nq, k)
    res = faiss.StandardGpuResources() if use_gpu else None
    with progress.stage("dense: searching", total=nq) as advance:
        for qs in range(0, nq, QUERY_BATCH):
            xq = np.ascontiguousarray(queries[qs : qs + QUERY_BATCH], dtype=np.float32)
            best_d = np.full((len(xq), 0), -np.inf, dtype=np.float32)
            best_i = np.full((len(xq), 0), -1, dtype=np.int64)
            for ds in range(0, n, DOC_BLOCK):
                xb = np.ascontiguousarray(docs[ds : ds + DOC_BLOCK], dtype=np.float32)
                d, i = _block_topk(xq, xb, k, res)
                i = np.where(i >= 0, i + ds, -1)
                best_d, best_i = _merge_topk(best_d, best_i, d, i, k)
            hits.scores[qs : qs + len(xq), : best_d.shape[1]] = best_d
            hits.indices[qs : qs + len(xq), : best_i.shape[1]] = best_i
            advance(len(xq))
    return hits


def factory_search(index_path: Path, queries: np.ndarray, k: int, use_gpu: bool = False,
                   progress: Optional[Progress] = None) -> Hits:
    """Top-k from a saved faiss index (approximate for IVF / HNSW / PQ)."""
    faiss = _faiss()
    progress = progress or Progress()
    index = faiss.read_index(str(index_path))
    if use_gpu:
        index = faiss.index_cpu_to_all_gpus(index)
    k = min(k, index.ntotal)
    hits = Hits.empty(queries.shape[0], k)
    with progress.stage("dense: searching (faiss index)", total=queries.shape[0]) as advance:
        for qs in range(0, queries.shape[0], QUERY_BATCH):
            xq = np.ascontiguousarray(queries[qs : qs + QUERY_BATCH], dtype=np.float32)
            d, i = index.search(xq, k)
            valid = i >= 0
            hits.indices[qs : qs + len(xq)] = np.where(valid, i, -1)
            hits.scores[qs : qs + len(xq)] = np.where(valid, d, -np.inf)
            advance(len(xq))
    return hits


def build_factory_index(docs: np.ndarray, factory: str, folder: Path) -> None:
    """Train (on up to 256 vectors per list, as faiss advises) and fill an index, saved as ``folder/index.faiss``."""
    faiss = _faiss()
    try:
        index = faiss.index_factory(int(docs.shape[1]), factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as exc:
        raise ConfigError(f"--faiss-index {factory!r}: faiss cannot build it ({str(exc).splitlines()[0]})") from exc
    if not index.is_trained:
        rng = np.random.default_rng(0)
        n_train = min(docs.shape[0], 256 * max(1, getattr(faiss.extract_index_ivf(index), "nlist", 1))
                      if "IVF" in factory else docs.shape[0])
        rows = np.sort(rng.choice(docs.shape[0], size=n_train, replace=False))
        try:
            index.train(np.ascontiguousarray(docs[rows], dtype=np.float32))
        except RuntimeError as exc:
            raise ConfigError(f"--faiss-index {factory!r}: training failed on {n_train} vectors "
                              f"({str(exc).splitlines()[0]}); use fewer lists or exact search") from exc
    for ds in range(0, docs.shape[0], DOC_BLOCK):
        index.add(np.ascontiguousarray(docs[ds : ds + DOC_BLOCK], dtype=np.float32))
    if "IVF" in factory:
        faiss.extract_index_ivf(index).nprobe = min(32, faiss.extract_index_ivf(index).nlist)
    faiss.write_index(index, str(folder / "index.faiss"))


def read_embeddings(path: Path, ids: Sequence[Any], role: str) -> np.ndarray:
    """User-supplied embeddings, L2-normalised, in the order of ``ids``.

    ``.npy``: one row per input row, in the input file's row order. Parquet: an id column (``id``, ``_id`` or the
    first column) and a list-of-floats column (``embedding``, ``vector`` or ``emb``). A row holding NaN or an
    infinity is an error.
    """
    p = Path(path)
    option = f"--{role}-embeddings"
    if not p.exists():
        raise InputError(f"{option} file not found: {p}")
    if p.suffix == ".npy":
        try:
            vecs = np.load(p, mmap_mode="r")
        except ValueError as exc:
            raise InputError(f"{p}: not a readable .npy file ({exc})") from exc
        if vecs.ndim != 2 or vecs.shape[0] != len(ids):
            raise InputError(f"{p}: shape {vecs.shape}, expected ({len(ids)}, dim): one row per {role} row, "
                             "in the input's row order")
        if not np.issubdtype(vecs.dtype, np.floating):
            raise InputError(f"{p}: holds {vecs.dtype}; vectors must be floating-point numbers")
        _check_finite(vecs, p, "row")
        return normalize(np.asarray(vecs, dtype=np.float32))
    import pyarrow as pa
    import pyarrow.parquet as pq

    from negmine.io import pick_column, read_schema

    schema = read_schema(p, f"{role}-embeddings")
    hint = f"{option} takes a .npy file, or a Parquet file with an id column and a vector (list of floats) column"
    idc = pick_column(schema, p, None, ("id", "_id", f"{role}_id", schema.names[0]), "id", option, hint=hint)
    vc = pick_column(schema, p, None, ("embedding", "vector", "emb", "embeddings"), "vector", option, hint=hint)
    table = pq.read_table(p, columns=[idc, vc])  # type: ignore[list-item]
    col = table.column(vc)  # type: ignore[arg-type]
    if not (pa.types.is_list(col.type) or pa.types.is_fixed_size_list(col.type) or pa.types.is_large_list(col.type)):
        raise InputError(f"{p}: column {vc!r} holds {col.type}; vectors must be lists of floats ({hint})")
    row_of = {str(k): r for r, k in enumerate(table.column(idc).to_pylist())}  # type: ignore[arg-type]
    vectors = col.to_pylist()
    out: Optional[np.ndarray] = None
    for i, key in enumerate(ids):
        r = row_of.get(str(key))
        if r is None:
            raise InputError(f"{p}: no vector for {role} id {str(key)!r} (column {idc!r})")
        v = vectors[r]
        if v is None:
            raise InputError(f"{p}: column {vc!r} row {r}: vector is null")
        if out is None:
            out = np.empty((len(ids), len(v)), dtype=np.float32)
        if len(v) != out.shape[1]:
            raise InputError(f"{p}: column {vc!r} row {r}: {len(v)} values, expected {out.shape[1]}")
        if any(x is None for x in v):
            raise InputError(f"{p}: column {vc!r} row {r}: the vector holds a null")
        out[i] = v
        if not np.isfinite(out[i]).all():
            raise InputError(f"{p}: column {vc!r} row {r}: the vector holds NaN or an infinity")
    assert out is not None
    return normalize(out)


def _check_finite(vecs: np.ndarray, path: Path, what: str) -> None:
    """An InputError naming the first row of ``vecs`` that holds NaN or an infinity (checked in blocks)."""
    for start in range(0, vecs.shape[0], DOC_BLOCK):
        block = np.asarray(vecs[start : start + DOC_BLOCK])
        bad = np.flatnonzero(~np.isfinite(block).all(axis=1))
        if bad.size:
            raise InputError(f"{path}: {what} {start + int(bad[0])}: the vector holds NaN or an infinity")


def normalize(vecs: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vecs, axis=1, keepdims=True)
    return vecs / np.where(norms == 0, 1, norms)


class DenseRetriever:
    """Bi-encoder retrieval: embeddings come from the cache (or the user), search from faiss.

    Args:
        encoder: The bi-encoder (may be ``None`` when both embedding sets are given).
        cache_dir: Where embeddings and indexes are cached.
        faiss_index: ``"Flat"`` for exact search, or a faiss index factory string (``"IVF1024,Flat"``,
            ``"HNSW32"``, ``"IVF4096,PQ32"``).
        device: ``auto`` uses faiss-gpu when it sees a GPU, ``cpu`` never does.
    """

    name = "dense"

    def __init__(self, encoder: Optional[Encoder], cache_dir: Path, faiss_index: str = "Flat",
                 device: str = "auto") -> None:
        self.encoder = encoder
        self.cache_dir = Path(cache_dir)
        self.faiss_index = faiss_index
        self.use_gpu = device != "cpu" and gpu_count() > 0
        self.doc_vectors: Optional[np.ndarray] = None
        self.query_vectors: Optional[np.ndarray] = None
        self.given_query_vectors: Optional[np.ndarray] = None
        self._caches: dict[str, EmbeddingCache] = {}
        self.encoded = 0
        self.cached = 0
        self._texts: Sequence[str] = ()
        self._given_docs = False

    def embed(self, texts: Sequence[str], kind: str, progress: Optional[Progress] = None,
              out: Optional[np.ndarray] = None, count: bool = True) -> np.ndarray:
        """Embeddings of ``texts`` through the cache; counts what was encoded and what was cached (unless
        ``count`` is false: a second look at texts already counted)."""
        if self.encoder is None:
            option = "--query-embeddings" if kind == "query" else "--corpus-embeddings"
            raise ConfigError(f"no model to embed {kind} texts: give --model or {option}")
        enc = self.encoder
        identity = enc.identity(kind)
        cache = self._caches.get(identity)
        if cache is None:
            cache = self._caches[identity] = EmbeddingCache(self.cache_dir, identity)
        label = f"encoding {'queries' if kind == 'query' else 'documents'} ({getattr(enc, 'name', 'model')})"
        vecs, encoded, cached = cache.get(texts, encode_stream(enc, kind), out, progress, label)
        if count:
            self.encoded += encoded
            self.cached += cached
        return vecs

    def missing(self, texts: Sequence[str], kind: str) -> int:
        """How many distinct ``texts`` of ``kind`` the cache has no vector for."""
        if self.encoder is None:
            return 0
        return EmbeddingCache(self.cache_dir, self.encoder.identity(kind)).count_missing(texts)

    def index(self, texts: Sequence[str], progress: Optional[Progress] = None,
              vectors: Optional[np.ndarray] = None) -> "DenseRetriever":
        """Embed the corpus through the cache (or take the given ``vectors``) for searching."""
        self._texts = texts
        if vectors is not None:
            self.doc_vectors = vectors
            self._given_docs = True
            return self
        if self.encoder is None:
            raise ConfigError("no model to embed the corpus: give --model or --corpus-embeddings")
        if 4 * 1024 * len(texts) > MMAP_BYTES:  # large: the first vector tells the dimension of the memory map
            first = self.embed(list(texts[:1]), "document", progress)
            self.doc_vectors = self._memmap(len(texts), first.shape[1])
            self.doc_vectors[0] = first[0]
            self.embed(texts[1:], "document", progress, self.doc_vectors[1:])
        else:
            self.doc_vectors = self.embed(texts, "document", progress)
        self._given_docs = False
        return self

    def _corpus_key(self) -> str:
        """What a faiss index built over the corpus vectors depends on (computed only when one is built)."""
        assert self.doc_vectors is not None, "index() first"
        if self._given_docs or self.encoder is None:
            return digest_of(np.ascontiguousarray(self.doc_vectors).tobytes())
        return digest_of(self.encoder.identity("document"), text_hashes(self._texts).tobytes())

    def _memmap(self, rows: int, dim: int) -> np.ndarray:
        """An unlinked memory-mapped file for a large corpus matrix: pages go to disk, not RAM."""
        folder = self.cache_dir / "tmp"
        folder.mkdir(parents=True, exist_ok=True)
        fd, path = tempfile.mkstemp(suffix=".npy", dir=folder)
        os.close(fd)
        try:
            return np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(rows, dim))
        finally:
            os.unlink(path)  # the mapping stays valid until it is dropped

    def search(self, queries: Sequence[str], k: int, progress: Optional[Progress] = None) -> Hits:
        """Top-k documents per query by cosine similarity (query vectors: ``given_query_vectors`` if set)."""
        assert self.doc_vectors is not None, "index() first"
        given = self.given_query_vectors
        self.query_vectors = given if given is not None else self.embed(queries, "query", progress)
        if self.query_vectors.shape[1] != self.doc_vectors.shape[1]:
            raise InputError(
                f"query vectors have {self.query_vectors.shape[1]} dimensions but corpus vectors "
                f"{self.doc_vectors.shape[1]}: --corpus-embeddings / --query-embeddings must come from the same "
                "model as each other and as --model"
            )
        folder = self.prepare()
        if folder is None:
            return exact_search(self.doc_vectors, self.query_vectors, k, self.use_gpu, progress)
        return factory_search(folder / "index.faiss", self.query_vectors, k, self.use_gpu, progress)

    def prepare(self) -> Optional[Path]:
        """Build (or find in the cache) the faiss index a factory string asks for; ``None`` for exact search."""
        assert self.doc_vectors is not None, "index() first"
        if self.faiss_index.strip().lower() in ("flat", "exact", ""):
            return None
        docs = self.doc_vectors
        key = digest_of(self._corpus_key(), self.faiss_index)[:32]
        return cached_dir(self.cache_dir, "faiss", key, lambda tmp: build_factory_index(docs, self.faiss_index, tmp),
                          {"factory": self.faiss_index})

    def pair_scores(self, queries: Sequence[str], docs: Sequence[Sequence[int]]) -> list[np.ndarray]:
        """Cosine similarity of given documents for each query (queries as passed to ``search``)."""
        assert self.doc_vectors is not None and self.query_vectors is not None, "search() first"
        return [self.doc_vectors[np.asarray(d, dtype=np.int64)] @ self.query_vectors[q] for q, d in enumerate(docs)]
