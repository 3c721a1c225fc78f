"""Dense retrieval: cached embeddings and faiss inner-product search.

Whatever is proportional to the corpus lives in files and is memory-mapped: the corpus matrix (assembled once in the
cache, in corpus order, and reused by the next run without a lookup), given ``.npy`` embeddings (used in place when
their rows are unit-norm, else normalised once into the cache), and the inverted lists of IVF indexes. Exact search
streams corpus blocks through faiss (on every core) and scores the candidates it keeps canonically
(``inner_products``), so a query's hits do not depend on the other queries of its batch. ``faiss_index="auto"``
searches exactly up to AUTO_EXACT_MAX documents and through an on-disk IVF index above, with ``nprobe`` chosen by
the recall measured against exact search on a sample of the run's queries (``DenseRetriever.search_report``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np

from negmine.errors import ConfigError, InputError
from negmine.inputs.vectors import VECTORS_FORMAT, vectors_key
from negmine.progress import Progress
from negmine.retrieve.base import Hits
from negmine.retrieve.encoders import Encoder, encode_stream
from negmine.retrieve.exact import exact_search, gpu_count, inner_products
from negmine.retrieve.faiss_index import FaissIndex, build_factory_index
from negmine.retrieve.ivf import auto_nlist
from negmine.storage.cache import cached_dir, digest_of, new_npy, text_hashes
from negmine.storage.embeddings import EmbeddingCache

logger = logging.getLogger("negmine")

#: ``faiss_index="auto"`` searches exactly up to this many documents, through an on-disk IVF index above.
AUTO_EXACT_MAX = 1_000_000

#: The recall@k an approximate index should reach against exact search, the queries it is measured on, and the
#: settings tried (smallest first): IVF ``nprobe``, HNSW ``efSearch``.
RECALL_TARGET = 0.95

RECALL_SAMPLE = 100

NPROBES = (16, 32, 64, 128, 256, 512, 1024)

EF_SEARCHES = (64, 128, 256, 512, 1024)

#: Part of the cache keys of what this module writes: bump it when the files' layout or meaning changes.
INDEX_FORMAT = "2"


def _recall(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean over queries of the share of the exact top-k that the approximate top-k holds."""
    shares = []
    for f, t in zip(found, truth):
        t = t[t >= 0]
        if t.size:
            shares.append(len(np.intersect1d(f[f >= 0], t)) / t.size)
    return float(np.mean(shares)) if shares else 1.0


class DenseRetriever:
    """Bi-encoder retrieval: embeddings come from the cache (or the user), search from faiss.

    Args:
        encoder: The bi-encoder (may be ``None`` when both embedding sets are given).
        cache_dir: Where embeddings, the corpus matrix and indexes are cached.
        faiss_index: ``"Flat"`` for exact search; ``"auto"`` for exact search up to AUTO_EXACT_MAX documents and an
            on-disk IVF index above; or a faiss index factory string (``"IVF1024,Flat"``, ``"HNSW32"``,
            ``"IVF4096,PQ32"``).
        device: ``auto`` uses faiss-gpu when it sees a GPU, ``cpu`` never does.

    After the first ``search``, ``search_report`` says how it searched: ``index`` (``"exact"`` or the factory
    string), ``on_disk``, ``nprobe`` / ``efSearch`` (the setting chosen), ``recall_at_k`` (measured against exact
    search on ``sample`` of the queries; 1.0 for exact search), ``k``, ``sample``, ``tried`` (recall per setting)
    and ``seconds`` (the measurement's time).
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
        self.search_report: Optional[dict[str, Any]] = None
        self._caches: dict[str, EmbeddingCache] = {}
        self.encoded = 0
        self.cached = 0
        self._seen: dict[str, np.ndarray] = {}  # per identity, the texts counted (their digests' first 8 bytes)
        self._texts: Sequence[str] = ()
        self._given_docs = False
        self._key: Optional[str] = None
        self._index: Optional[FaissIndex] = None

    def embed(self, texts: Sequence[str], kind: str, progress: Optional[Progress] = None,
              out: Union[np.ndarray, Callable[[int], np.ndarray], None] = None,
              keys: Optional[np.ndarray] = None, remember: bool = True) -> np.ndarray:
        """Embeddings of ``texts`` through the cache; counts the distinct texts encoded and those found in the
        cache (each once per run). ``out``: the array to fill, or a function making it from the dimension;
        ``keys``: ``text_hashes(texts)`` if known; ``remember=False``: a one-time look at many texts (the whole
        corpus), counted without remembering which (a later look would count them again)."""
        if self.encoder is None:
            option = "--query-embeddings" if kind == "query" else "--corpus-embeddings"
            raise ConfigError(f"no model to embed {kind} texts: give --model or {option}")
        enc = self.encoder
        identity = enc.identity(kind)
        cache = self._caches.get(identity)
        if cache is None:
            cache = self._caches[identity] = EmbeddingCache(self.cache_dir, identity)
        label = f"encoding {'queries' if kind == 'query' else 'documents'} ({getattr(enc, 'name', 'model')})"
        keys = text_hashes(texts) if keys is None else keys
        vecs, encoded, cached = cache.get(texts, encode_stream(enc, kind), out, progress, label, keys=keys)
        self._count(identity, keys, encoded, cached, remember)
        return vecs

    def _count(self, identity: str, keys: np.ndarray, encoded: int, cached: int, remember: bool) -> None:
        """Count the distinct texts encoded, and those taken from the cache that this run did not encode itself
        nor count before (a text looked up again, in another query batch, counts once)."""
        self.encoded += encoded
        if not remember:
            self.cached += cached
            return
        seen = self._seen.get(identity, np.empty(0, np.uint64))
        prefix = np.unique(np.ascontiguousarray(keys[:, :8]).view("<u8").ravel())
        new = prefix[~np.isin(prefix, seen, assume_unique=True)]
        self._seen[identity] = np.union1d(seen, new)
        self.cached += max(0, int(new.size) - encoded)

    def missing(self, texts: Sequence[str], kind: str) -> int:
        """How many distinct ``texts`` of ``kind`` the cache has no vector for."""
        if self.encoder is None:
            return 0
        return EmbeddingCache(self.cache_dir, self.encoder.identity(kind)).count_missing(texts)

    def index(self, texts: Sequence[str], progress: Optional[Progress] = None,
              vectors: Optional[np.ndarray] = None) -> "DenseRetriever":
        """Take the given ``vectors``, or the corpus matrix from the cache: ``vectors/<key>/vectors.npy``, keyed by
        the encoder's identity and the texts, assembled in corpus order (from the embedding cache, encoding what it
        lacks) the first time and memory-mapped."""
        self._texts = texts
        self._index = None
        self.search_report = None
        self._key = None
        if vectors is not None:
            self.doc_vectors = vectors
            self._given_docs = True
            return self
        if self.encoder is None:
            raise ConfigError("no model to embed the corpus: give --model or --corpus-embeddings")
        self._given_docs = False
        self.doc_vectors = self._corpus_matrix(texts, progress or Progress())
        return self

    def _corpus_matrix(self, texts: Sequence[str], progress: Progress) -> np.ndarray:
        assert self.encoder is not None
        if len(texts) == 0:
            return self.embed([], "document", progress)
        identity = self.encoder.identity("document")
        with progress.stage("dense: hashing the corpus", total=len(texts)):
            keys = text_hashes(texts)
        h = hashlib.sha256(f"negmine corpus vectors {VECTORS_FORMAT}\n{identity}\n".encode())
        h.update(np.ascontiguousarray(keys).data)
        self._key = h.hexdigest()
        extra: dict[str, Any] = {"documents": len(texts), "identity": identity}

        def build(tmp: Path) -> None:
            before = self.encoded + self.cached

            def matrix(dim: int) -> np.ndarray:
                return new_npy(tmp / "vectors.npy", (len(texts), dim))

            mm = self.embed(texts, "document", progress, out=matrix, keys=keys, remember=False)
            if isinstance(mm, np.memmap):
                mm.flush()
            del mm
            extra["distinct"] = self.encoded + self.cached - before

        start = self.encoded + self.cached
        folder = cached_dir(self.cache_dir, "vectors", self._key[:32], build, extra,
                            what=f"embeddings of this corpus from {getattr(self.encoder, 'name', 'this model')}")
        if self.encoded + self.cached == start:  # reused: count its texts as cached, as a lookup would have
            try:
                manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
                self.cached += int(manifest.get("distinct", len(texts)))
            except (OSError, ValueError):
                self.cached += len(texts)
        return np.load(folder / "vectors.npy", mmap_mode="r")

    def _corpus_key(self) -> str:
        """What a faiss index built over the corpus vectors depends on."""
        assert self.doc_vectors is not None, "index() first"
        if self._key is None:
            self._key = vectors_key(self.doc_vectors)
        return self._key

    def factory(self) -> Optional[str]:
        """The faiss factory string searched with, ``None`` for exact search (``auto`` resolved by corpus size)."""
        assert self.doc_vectors is not None, "index() first"
        f = self.faiss_index.strip()
        if f.lower() in ("flat", "exact", ""):
            return None
        if f.lower() == "auto":

            n = int(self.doc_vectors.shape[0])
            return None if n <= AUTO_EXACT_MAX else f"IVF{auto_nlist(n)},Flat"
        return f

    def search(self, queries: Sequence[str], k: int, progress: Optional[Progress] = None) -> Hits:
        """Top-k documents per query by cosine similarity (query vectors: ``given_query_vectors`` if set).

        The first call with an approximate index measures its recall against exact search on a seeded sample of
        these queries and picks the setting (``nprobe``, ``efSearch``) that reaches RECALL_TARGET.
        """
        assert self.doc_vectors is not None, "index() first"
        given = self.given_query_vectors
        self.query_vectors = given if given is not None else self.embed(queries, "query", progress)
        if self.query_vectors.shape[1] != self.doc_vectors.shape[1]:
            raise InputError(
                f"query vectors have {self.query_vectors.shape[1]} dimensions but corpus vectors "
                f"{self.doc_vectors.shape[1]}: --corpus-embeddings / --query-embeddings must come from the same "
                "model as each other and as --model"
            )
        index = self._open(progress)
        if index is None:
            if self.search_report is None:
                self.search_report = {"index": "exact", "on_disk": False, "recall_at_k": 1.0, "k": int(k),
                                      "sample": 0}
            return exact_search(self.doc_vectors, self.query_vectors, k, self.use_gpu, progress)
        if self.search_report is None:
            self.search_report = self._tune(index, self.query_vectors, k)
        return index.search(self.query_vectors, k, self.doc_vectors, progress)

    def tune(self, queries: np.ndarray, k: int, progress: Optional[Progress] = None) -> Optional[dict[str, Any]]:
        """Choose an approximate index's setting from ``queries`` (vectors: a sample of a run's queries) before
        searching, so that every query batch, and every worker, searches with the same setting; ``None`` for
        exact search. ``search`` tunes on its first call's queries when this was not called."""
        index = self._open(progress)
        if index is None:
            return None
        self.search_report = self._tune(index, np.ascontiguousarray(queries, dtype=np.float32), k)
        return self.search_report

    def use_setting(self, report: dict[str, Any]) -> None:
        """Search with the setting ``tune`` chose elsewhere (``report``: its ``search_report``, on the driver of a
        Ray run), without measuring it again."""
        index = self._open()
        if index is not None and index.param is not None and report.get(index.param) is not None:
            index.set(int(report[index.param]))
        self.search_report = dict(report)

    def _open(self, progress: Optional[Progress] = None) -> Optional["FaissIndex"]:
        """The approximate index searched with (built or found in the cache), ``None`` for exact search."""
        folder = self.prepare(progress)
        if folder is None:
            return None
        if self._index is None or self._index.path != folder / "index.faiss":
            self._index = FaissIndex(folder / "index.faiss", self.use_gpu)
            self.search_report = None
        return self._index

    def _tune(self, index: FaissIndex, queries: np.ndarray, k: int) -> dict[str, Any]:
        """Measure recall@k against exact search on a seeded sample of ``queries`` for the index's settings,
        smallest first, and keep the first that reaches RECALL_TARGET (else the best, with a warning)."""
        assert self.doc_vectors is not None
        started = time.perf_counter()
        nq = queries.shape[0]
        rows = np.sort(np.random.default_rng(0).choice(nq, size=min(RECALL_SAMPLE, nq), replace=False))
        sample = np.ascontiguousarray(queries[rows], dtype=np.float32)
        truth = exact_search(self.doc_vectors, sample, k, self.use_gpu)
        values: Sequence[Optional[int]] = [None]
        if index.param == "nprobe":
            values = sorted({min(v, index.nlist) for v in NPROBES})
        elif index.param == "efSearch":
            values = sorted({max(v, k) for v in EF_SEARCHES})
        tried: dict[str, float] = {}
        best: tuple[float, Optional[int]] = (-1.0, None)
        for v in values:
            if v is not None:
                index.set(v)
            r = _recall(index.search(sample, k, self.doc_vectors).indices, truth.indices)
            tried[str(v)] = round(r, 4)
            if r > best[0]:
                best = (r, v)
            if r >= RECALL_TARGET:
                best = (r, v)
                break
        recall, value = best
        if value is not None:
            index.set(value)
        factory = self.factory()
        report: dict[str, Any] = {"index": factory, "on_disk": index.on_disk, "recall_at_k": round(recall, 4),
                                  "k": int(min(k, index.ntotal)), "sample": int(len(rows)), "tried": tried,
                                  "seconds": round(time.perf_counter() - started, 2)}
        if index.param is not None:
            report[index.param] = value
        if recall < RECALL_TARGET:
            setting = f", {index.param} {value}" if index.param else ""
            logger.warning("dense: the %s index finds %.1f%% of the exact top-%d on %d sampled queries%s (target "
                           "%.0f%%): candidates will be missing; use exact search (--faiss-index Flat), more lists "
                           "probed, or an index with exact codes", factory, 100 * recall, report["k"], len(rows),
                           setting, 100 * RECALL_TARGET)
        else:
            logger.debug("dense: %s recall@%d %.3f on %d queries (%s)", factory, k, recall, len(rows), tried)
        return report

    def prepare(self, progress: Optional[Progress] = None) -> Optional[Path]:
        """Build (or find in the cache) the faiss index the factory string asks for; ``None`` for exact search."""
        assert self.doc_vectors is not None, "index() first"
        factory = self.factory()
        if factory is None:
            return None
        docs = self.doc_vectors
        key = digest_of(self._corpus_key(), factory, INDEX_FORMAT)[:32]

        def build(tmp: Path) -> None:
            build_factory_index(docs, factory, tmp, progress=progress)

        return cached_dir(self.cache_dir, "faiss", key, build,
                          {"factory": factory, "documents": int(docs.shape[0]), "format": INDEX_FORMAT},
                          what=f"faiss index {factory} of these corpus vectors")

    def pair_scores(self, queries: Sequence[str], docs: Sequence[Sequence[int]]) -> list[np.ndarray]:
        """Cosine similarity of given documents for each query (queries as passed to ``search``), scored as the
        search scores them (``inner_products``)."""
        assert self.doc_vectors is not None and self.query_vectors is not None, "search() first"
        out = []
        for q, d in enumerate(docs):
            idx = np.asarray(d, dtype=np.int64)
            rows = np.asarray(self.doc_vectors[idx], dtype=np.float32)
            out.append(inner_products(rows, np.asarray(self.query_vectors[q], dtype=np.float32)))
        return out
