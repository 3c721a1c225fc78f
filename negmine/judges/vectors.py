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


class PositiveCosines:
    """The cosines of candidates to their query's positives, computed once per pair for both rules that read them:
    ``similarity`` (the highest cosine to a positive) and ``proximity`` (the highest cos(document, positive) -
    cos(query, positive): above 0, the document sits nearer the positive than the query does) are Scorers over it.
    """

    def __init__(self, vectors: Vectors, positives: Sequence[Sequence[int]]) -> None:
        self.vectors = vectors
        self.positives = positives
        self._pos: dict[int, np.ndarray] = {}
        self._offset: dict[int, np.ndarray] = {}
        self._last: Optional[tuple[np.ndarray, np.ndarray, list[np.ndarray]]] = None
        self.similarity = _Part(self, "similarity", "positive similarity")
        self.proximity = _Part(self, "proximity", "positive proximity")

    def cosines(self, query_rows: np.ndarray, docs: np.ndarray) -> list[np.ndarray]:
        """Per (query row, document) pair, the document's cosine to each of the query's positives; the last pairs
        asked for are kept, so that the second rule asking for the same pairs computes nothing."""
        query_rows, docs = np.asarray(query_rows, dtype=np.int64), np.asarray(docs, dtype=np.int64)
        last = self._last
        if last is not None and np.array_equal(last[0], query_rows) and np.array_equal(last[1], docs):
            return last[2]
        out: list[np.ndarray] = []
        if len(docs):
            for q in {int(q) for q in query_rows} - set(self._pos):
                self._pos[q] = self.vectors.docs(np.asarray(self.positives[q], dtype=np.int64))
            self.vectors.ensure(docs)
        for s in range(0, len(docs), SCORE_PAIRS):  # the vectors gathered a bounded number of pairs at a time
            dv = self.vectors.docs(docs[s : s + SCORE_PAIRS])
            out.extend(self._pos[q] @ v for q, v in zip(query_rows[s:].tolist(), dv))
        self._last = (query_rows, docs, out)
        return out

    def offsets(self, query_row: int) -> np.ndarray:
        """The query's own cosine to each of its positives (what proximity is measured against)."""
        if query_row not in self._offset:
            qv = self.vectors.queries(np.array([query_row], dtype=np.int64))[0]
            self._offset[query_row] = np.asarray(self._pos[query_row] @ qv, dtype=np.float32)
        return self._offset[query_row]


@dataclass
class _Part:
    """One of the values of PositiveCosines, as a Scorer."""

    source: PositiveCosines
    which: str
    name: str

    def identity(self) -> dict[str, Any]:
        return {"type": self.name}

    def score(self, query_rows: np.ndarray, docs: np.ndarray) -> np.ndarray:
        cosines = self.source.cosines(query_rows, docs)
        if self.which == "similarity":
            return np.array([float(np.max(c)) for c in cosines], dtype=np.float32)
        rows = np.asarray(query_rows, dtype=np.int64).tolist()
        return np.array([float(np.max(c - self.source.offsets(q))) for q, c in zip(rows, cosines)],
                        dtype=np.float32)
