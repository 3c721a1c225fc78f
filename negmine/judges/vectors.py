"""The retrieval bi-encoder's vectors of a batch, and what the rules read from them: the cosine of (query,
document) pairs, and each candidate's cosines to its query's positives (its highest cosine to a positive, for the
near-duplicate rule; how much nearer a positive than the query it is, for the positive-proximity rule), computed
once for both."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np

from negmine.judges.base import SCORE_PAIRS
from negmine.retrieve.encoders import identity_record
from negmine.retrieve.exact import inner_products


class Vectors:
    """Embeddings of the mined queries and of corpus documents, taken from the dense retriever when it has them,
    else embedded (through the cache) the first time they are asked for."""

    def __init__(self, dense: Any, query_texts: Sequence[str], doc_texts: Sequence[str]) -> None:
        self.dense = dense
        self.query_texts = query_texts
        self.doc_texts = doc_texts
        self._q = dense.query_vectors
        self._docs = dense.doc_vectors
        self._doc_rows: dict[int, np.ndarray] = {}

    def queries(self, rows: np.ndarray) -> np.ndarray:
        if self._q is None:
            self._q = self.dense.embed(list(self.query_texts), "query")
        return self._q[rows]

    def ensure(self, idx: np.ndarray) -> None:
        """Embed, in one call, the documents of ``idx`` not embedded yet (none when the retriever has them)."""
        if self._docs is not None:
            return
        missing = sorted({int(i) for i in idx if int(i) not in self._doc_rows})
        if missing:
            vecs = self.dense.embed([self.doc_texts[i] for i in missing], "document")
            self._doc_rows.update(zip(missing, vecs))

    def docs(self, idx: np.ndarray) -> np.ndarray:
        if self._docs is not None:
            return np.asarray(self._docs[idx])
        self.ensure(idx)
        dim = next(iter(self._doc_rows.values())).shape[0] if self._doc_rows else 0
        return np.stack([self._doc_rows[int(i)] for i in idx]) if len(idx) else np.empty((0, dim), np.float32)


@dataclass
class BiEncoderScorer:
    """Cosine similarity of the bi-encoder's embeddings."""

    vectors: Vectors
    name: str = "bi-encoder"

    def identity(self) -> dict[str, Any]:
        encoder = self.vectors.dense.encoder

        return {"type": self.name, "model": identity_record(encoder) if encoder else None}

    def score(self, query_rows: np.ndarray, docs: np.ndarray) -> np.ndarray:
        query_rows, docs = np.asarray(query_rows, dtype=np.int64), np.asarray(docs, dtype=np.int64)
        out = np.empty(len(docs), dtype=np.float32)
        self.vectors.ensure(docs)
        for s in range(0, len(docs), SCORE_PAIRS):  # the vectors gathered a bounded number of pairs at a time
            e = s + SCORE_PAIRS
            out[s:e] = np.einsum("ij,ij->i", self.vectors.queries(query_rows[s:e]), self.vectors.docs(docs[s:e]))
        return out


#: Products of PositiveCosines computed at a time (their vectors, 2,048 x 384 float32 twice, stay in the CPU's cache).
PRODUCTS = 2048


class PositiveCosines:
    """The cosines of candidates to their query's positives, computed once per pair for both rules that read them:
    ``similarity`` (the highest cosine to a positive) and ``proximity`` (the highest cos(document, positive) -
    cos(query, positive): above 0, the document sits nearer the positive than the query does) are Scorers over it.

    Every cosine is ``negmine.retrieve.exact.inner_products`` of the two vectors, over all the pairs of a call at
    once: its bits depend on the two vectors alone, not on the batch, the BLAS library or the CPU.
    """

    def __init__(self, vectors: Vectors, positives: Sequence[Sequence[int]]) -> None:
        self.vectors = vectors
        self.positives = positives
        self._pos: dict[int, np.ndarray] = {}
        self._offset: dict[int, np.ndarray] = {}
        self._last: Optional[_Products] = None
        self.similarity = _Part(self, "similarity", "positive similarity")
        self.proximity = _Part(self, "proximity", "positive proximity")

    def cosines(self, query_rows: np.ndarray, docs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per (query row, document) pair, the document's cosine to each of the query's positives, flat: pair i's
        are ``values[starts[i]:starts[i + 1]]`` in the order of its positives. The last pairs asked for are kept,
        so that the second rule asking for the same pairs computes nothing."""
        query_rows, docs = np.asarray(query_rows, dtype=np.int64), np.asarray(docs, dtype=np.int64)
        last = self._last
        if last is not None and np.array_equal(last.rows, query_rows) and np.array_equal(last.docs, docs):
            return last.values, last.starts
        queries, inverse = np.unique(query_rows, return_inverse=True)
        for q in set(queries.tolist()) - set(self._pos):
            self._pos[q] = self.vectors.docs(np.asarray(self.positives[q], dtype=np.int64))
        per_query = np.array([len(self._pos[q]) for q in queries.tolist()], dtype=np.int64)
        counts = per_query[inverse]
        starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        pair = np.repeat(np.arange(len(docs)), counts)  # the pair of each (pair, positive) product
        first = np.concatenate([[0], np.cumsum(per_query)[:-1]]).astype(np.int64)
        at = first[inverse][pair] + np.arange(starts[-1]) - starts[pair]  # its positive among the stacked ones
        values = np.empty(int(starts[-1]), dtype=np.float32)
        if len(values):
            stacked = np.concatenate([self._pos[q] for q in queries.tolist()])
            self.vectors.ensure(docs)
            for s in range(0, len(values), PRODUCTS):  # a few vectors gathered at a time: they stay in the cache
                e = s + PRODUCTS
                values[s:e] = inner_products(self.vectors.docs(docs[pair[s:e]]), stacked[at[s:e]])
        self._last = _Products(query_rows, docs, values, starts, queries, at)
        return values, starts

    def query_cosines(self) -> np.ndarray:
        """For the last pairs asked for, flat as their cosines: each query's own cosine to the positive (what
        proximity is measured against)."""
        last = self._last
        assert last is not None
        if not len(last.values):
            return last.values
        return np.concatenate([self.offsets(q) for q in last.queries.tolist()])[last.at]

    def offsets(self, query_row: int) -> np.ndarray:
        """The query's own cosine to each of its positives."""
        if query_row not in self._offset:
            qv = self.vectors.queries(np.array([query_row], dtype=np.int64))
            self._offset[query_row] = inner_products(self._pos[query_row], qv)
        return self._offset[query_row]


@dataclass(frozen=True)
class _Products:
    """The last pairs PositiveCosines computed: their cosines, flat, and where each came from."""

    rows: np.ndarray
    docs: np.ndarray
    values: np.ndarray
    starts: np.ndarray
    queries: np.ndarray  # the distinct query rows
    at: np.ndarray  # per value, its positive among the distinct queries' positives, stacked


@dataclass
class _Part:
    """One of the values of PositiveCosines, as a Scorer."""

    source: PositiveCosines
    which: str
    name: str

    def identity(self) -> dict[str, Any]:
        return {"type": self.name}

    def score(self, query_rows: np.ndarray, docs: np.ndarray) -> np.ndarray:
        values, starts = self.source.cosines(query_rows, docs)
        if not len(values):
            return np.empty(0, dtype=np.float32)
        if self.which == "proximity":
            values = values - self.source.query_cosines()
        return np.maximum.reduceat(values, starts[:-1]).astype(np.float32)
