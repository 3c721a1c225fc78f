"""One dataset prepared for the false-negative benchmarks: one positive per query, every judged relevant document,
the model's full dense ranking (all-MiniLM-L6-v2 cosine over the whole corpus), BM25 scores, and the candidate
lists negmine builds (dense, bm25, hybrid RRF). Embeddings and BM25 matrices are cached as .npy files.

Used by false_negatives.py (the full dense ranking: depth, positive strength, blind baselines) and
fn_prototype.py (everything).
"""

from __future__ import annotations

import hashlib
import os
from collections import defaultdict
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Optional

import numpy as np
from common import load

import negmine
from negmine.inputs.data import Qrels

#: All benchmark caches (negmine's embedding cache, .npy matrices, ST's embedding cache) live under here.
DEFAULT_CACHE = Path(os.environ.get("NEGMINE_FN_CACHE", "/work/fn-cache"))


def pick_positives(qrels: Qrels) -> tuple[dict[str, str], dict[str, set[str]]]:
    """The one positive per query (highest grade, then smallest id) and every judged relevant doc."""
    relevant: dict[str, set[str]] = defaultdict(set)
    best: dict[str, tuple[float, str]] = {}

    def id_key(d: str) -> tuple[int, int | str]:
        return (0, int(d)) if d.isdigit() else (1, d)

    for q, d, s in zip(qrels.query_ids, qrels.doc_ids, qrels.scores):
        q, d = str(q), str(d)
        if s <= 0:
            continue
        relevant[q].add(d)
        if q not in best or (s, _neg(id_key(d))) > (best[q][0], _neg(id_key(best[q][1]))):
            best[q] = (s, d)
    return {q: d for q, (_, d) in best.items()}, relevant


def _neg(key: tuple[int, int | str]) -> tuple:
    """Invert an id key so that max() picks the smallest id."""
    kind, value = key
    return (-kind, -value) if isinstance(value, int) else (-kind, tuple(-ord(c) for c in value))


def _digest(*parts: object) -> str:
    h = hashlib.blake2b(digest_size=8)
    for p in parts:
        if isinstance(p, (list, tuple)):
            for x in p:
                h.update(str(x).encode("utf-8", "surrogatepass"))
                h.update(b"\0")
        else:
            h.update(str(p).encode())
        h.update(b"\1")
    return h.hexdigest()


@dataclass
class Prepared:
    """A dataset with one positive per judged query; query rows follow ``qids``, documents the corpus order."""

    name: str
    split: str
    corpus: negmine.Corpus
    queries: negmine.Queries
    qrels: Qrels
    qids: list[str]
    positive: dict[str, str]
    relevant: dict[str, set[str]]
    cache: Path
    q_emb: np.ndarray = field(repr=False)
    d_emb: np.ndarray = field(repr=False)

    # --- basic arrays ---------------------------------------------------------------------------------------
    @cached_property
    def qtexts(self) -> list[str]:
        return [self.queries.texts[self.queries.index[q]] for q in self.qids]

    @cached_property
    def pos_idx(self) -> np.ndarray:
        """Corpus index of each query's positive."""
        return np.array([self.corpus.index[self.positive[q]] for q in self.qids], dtype=np.int64)

    @cached_property
    def rel_idx(self) -> list[set[int]]:
        """Corpus indices of every judged relevant document of each query (positive included)."""
        return [{self.corpus.index[d] for d in self.relevant[q] if d in self.corpus.index} for q in self.qids]

    @cached_property
    def one_positive_qrels(self) -> Qrels:
        return Qrels(self.qids, [self.positive[q] for q in self.qids], [1.0] * len(self.qids), "one-positive")

    @cached_property
    def sims(self) -> np.ndarray:
        """(queries x corpus) cosine of the bi-encoder."""
        return (self.q_emb @ self.d_emb.T).astype(np.float32)

    @cached_property
    def order(self) -> np.ndarray:
        """(queries x corpus) corpus indices, best dense score first (ties: lower index)."""
        return np.argsort(-self.sims, axis=1, kind="stable").astype(np.int32)

    @cached_property
    def rank(self) -> np.ndarray:
        """(queries x corpus) 1-based rank of each document in the query's full dense ranking."""
        r = np.empty_like(self.order)
        rows = np.arange(len(self.qids))[:, None]
        r[rows, self.order] = np.arange(1, self.order.shape[1] + 1, dtype=np.int32)[None, :]
        return r

    @cached_property
    def pos_rank(self) -> np.ndarray:
        return self.rank[np.arange(len(self.qids)), self.pos_idx]

    @cached_property
    def pos_score(self) -> np.ndarray:
        """Bi-encoder cosine of each query with its positive."""
        return self.sims[np.arange(len(self.qids)), self.pos_idx]

    # --- BM25 -----------------------------------------------------------------------------------------------
    @cached_property
    def bm25_retriever(self):  # type: ignore[no-untyped-def]
        from negmine.retrieve.bm25 import BM25Retriever

        return BM25Retriever().index(self.corpus.texts, None, self.cache / "negmine")

    def _bm25_matrix(self, tag: str, texts: list[str]) -> np.ndarray:
        path = self.cache / "proto" / f"{self.name}-{self.split}-bm25-{tag}-{_digest(texts, len(self.corpus))}.npy"
        if path.exists():
            return np.load(path)
        bm = self.bm25_retriever
        out = np.stack([bm.scores(t) for t in texts]).astype(np.float32)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, out)
        return out

    @cached_property
    def bm25(self) -> np.ndarray:
        """(queries x corpus) BM25 score of each document for each query (0: shares no term)."""
        return self._bm25_matrix("q", self.qtexts)

    @cached_property
    def bm25_rank(self) -> np.ndarray:
        """(queries x corpus) 1-based BM25 rank; documents sharing no term with the query rank last (corpus
        size + 1)."""
        order = np.argsort(-self.bm25, axis=1, kind="stable")
        r = np.empty(order.shape, dtype=np.int32)
        rows = np.arange(len(self.qids))[:, None]
        r[rows, order] = np.arange(1, order.shape[1] + 1, dtype=np.int32)[None, :]
        r[self.bm25 <= 0] = self.bm25.shape[1] + 1
        return r

    @cached_property
    def bm25_from_positive(self) -> np.ndarray:
        """(queries x corpus) BM25 score of each document with the query's POSITIVE text as the query."""
        return self._bm25_matrix("p", [self.corpus.texts[i] for i in self.pos_idx])

    @cached_property
    def pos_doc_sims(self) -> np.ndarray:
        """(queries x corpus) bi-encoder cosine of each document with the query's positive."""
        return (self.d_emb[self.pos_idx] @ self.d_emb.T).astype(np.float32)

    @cached_property
    def token_sets(self) -> list[frozenset[str]]:
        """Each document's set of BM25 tokens (lower-cased, stopwords removed, stemmed: negmine's tokenizer)."""
        return [frozenset(t) for t in self.bm25_retriever.tokenize(self.corpus.texts)]

    @cached_property
    def idf(self) -> dict[str, float]:
        """Lucene idf of every token of the corpus: log(1 + (N - df + 0.5) / (df + 0.5))."""
        from collections import Counter

        df = Counter(t for s in self.token_sets for t in s)
        n = len(self.token_sets)
        return {t: float(np.log(1 + (n - c + 0.5) / (c + 0.5))) for t, c in df.items()}

    # --- candidate lists --------------------------------------------------------------------------------------
    def candidates(self, source: str, k: int = 201, rrf_k: int = 60) -> np.ndarray:
        """(queries x width) corpus indices of the candidate list negmine builds (-1 = empty slot): ``dense`` top
        k, ``bm25`` top k (documents sharing a term), or ``hybrid``: both fused by RRF (up to 2k)."""
        from negmine.retrieve.base import Hits, topk
        from negmine.retrieve.fusion import fuse

        def hits(scores: np.ndarray, lexical: bool) -> Hits:
            h = Hits.empty(scores.shape[0], k)
            for i, row in enumerate(scores):
                match = np.flatnonzero(row > 0) if lexical else np.arange(row.size)
                idx, val = topk(row[match], k)
                h.indices[i, : idx.size] = match[idx]
                h.scores[i, : idx.size] = val
            return h

        if source == "dense":
            return hits(self.sims, False).indices
        if source == "bm25":
            return hits(self.bm25, True).indices
        if source == "hybrid":
            return fuse({"bm25": hits(self.bm25, True), "dense": hits(self.sims, False)}, "rrf", rrf_k).indices
        raise ValueError(source)


def prepare(name: str, split: str = "test", cache: Optional[Path] = None) -> Prepared:
    """Load a dataset and embed it (through negmine's embedding cache, then a .npy copy under ``cache``)."""
    cache = Path(cache or DEFAULT_CACHE)
    corpus, queries, qrels, _ = load(name, split)
    positive, relevant = pick_positives(qrels)
    qids = [q for q in (str(k) for k in queries.ids) if q in positive and positive[q] in corpus.index]
    qtexts = [queries.texts[queries.index[q]] for q in qids]
    folder = cache / "proto"
    folder.mkdir(parents=True, exist_ok=True)
    dpath = folder / f"{name}-docs-{_digest(corpus.texts)}.npy"
    qpath = folder / f"{name}-{split}-queries-{_digest(qtexts)}.npy"
    if dpath.exists() and qpath.exists():
        d_emb, q_emb = np.load(dpath), np.load(qpath)
    else:
        from negmine.retrieve.build import make_encoder
        from negmine.retrieve.dense import DenseRetriever

        dense = DenseRetriever(make_encoder(negmine.MineConfig(device="cpu")), cache / "negmine")
        d_emb = np.asarray(dense.embed(corpus.texts, "document"), dtype=np.float32)
        q_emb = np.asarray(dense.embed(qtexts, "query"), dtype=np.float32)
        np.save(dpath, d_emb)
        np.save(qpath, q_emb)
    return Prepared(name, split, corpus, queries, qrels, qids, positive, relevant, cache, q_emb, d_emb)
