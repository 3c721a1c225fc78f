"""A reranker behind an endpoint, as the judge of the score rules (``--reranker rerank:MODEL@URL``): ``POST
{url}/rerank`` in the common shape (infinity, Cohere, Jina: ``{"query", "documents"}`` -> ``{"results": [{"index",
"relevance_score"}]}``; text-embeddings-inference's ``{"query", "texts"}`` -> ``[{"index", "score"}]`` is read too).

A query's documents go in one request (``batch_size`` at most), requests run ``concurrency`` at once, and every
score is kept on disk (``negmine.endpoints.store``) under the served model's identity, so a rerun sends nothing
twice. Scores are the server's, as it computes them (relevance in [0, 1] for most; the margins read them as a
cross-encoder's)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from negmine.endpoints.client import Endpoint, EndpointError, split_served
from negmine.endpoints.store import AnswerStore, key_of
from negmine.errors import ConfigError

#: What the provenance and the candidates file call this judge.
NAME = "rerank-endpoint"
#: The pair whose score identifies the model behind the endpoint.
PROBE = ("negmine probe: which document answers this query?",
         "negmine probe: a fixed document whose score identifies the reranker behind an endpoint.")


def parse_reranker(spec: str) -> Optional[tuple[str, str]]:
    """``rerank:MODEL@URL`` -> (MODEL, URL); ``None`` for anything else."""
    if not spec.startswith("rerank:"):
        return None
    served = split_served(spec[len("rerank:"):])
    if served is None:
        raise ConfigError(f"--reranker {spec!r}: a rerank endpoint is written rerank:MODEL@URL, e.g. "
                          "rerank:bge-reranker-base@http://localhost:7997/v1")
    return served


@dataclass
class EndpointReranker:
    """Scores (query, document) pairs through ``endpoint``'s ``/rerank`` (see the module's docstring)."""

    endpoint: Endpoint
    query_texts: Sequence[str]
    doc_texts: Sequence[str]
    cache: Optional[Path] = None
    batch_size: int = 32
    name: str = NAME
    _store: Optional[AnswerStore] = field(default=None, init=False, repr=False)
    _probe: Optional[float] = field(default=None, init=False, repr=False)

    def load(self) -> "EndpointReranker":
        """Ask the probe pair (the endpoint answers, and its score identifies the model) and open the answers'
        store under that identity."""
        if self._store is None:
            self._probe = self._ask(PROBE[0], [PROBE[1]])[0]
            self._store = AnswerStore(self.cache, json.dumps(self._identity(), sort_keys=True))
        return self

    def identity(self) -> dict[str, Any]:
        """The model's name and its probe pair's score (not the URL: the same model elsewhere scores the same)."""
        self.load()
        return self._identity()

    def _identity(self) -> dict[str, Any]:
        return {"type": NAME, "model": self.endpoint.model, "probe": round(float(self._probe or 0.0), 4)}

    def for_texts(self, query_texts: Sequence[str], doc_texts: Sequence[str]) -> "EndpointReranker":
        other = dataclasses.replace(self, query_texts=query_texts, doc_texts=doc_texts)
        other._store = self._store
        return other

    def score(self, query_rows: np.ndarray, docs: np.ndarray) -> np.ndarray:
        """Scores of (query, document) pairs: from the store, else asked, a query's documents together."""
        store = self.load()._store
        assert store is not None
        out = np.empty(len(docs), dtype=np.float32)
        asks: dict[int, list[int]] = {}
        keys = []
        for i, (q, d) in enumerate(zip(query_rows.tolist(), docs.tolist())):
            key = key_of(self.endpoint.model, self.query_texts[q], self.doc_texts[d])
            keys.append(key)
            found = store.get(key)
            if found is None:
                asks.setdefault(q, []).append(i)
            else:
                out[i] = found
        requests = [(q, rows[s:s + self.batch_size]) for q, rows in asks.items()
                    for s in range(0, len(rows), self.batch_size)]
        def ask(request: tuple[int, list[int]]) -> list[float]:
            q, rows = request
            return self._ask(self.query_texts[q], [self.doc_texts[int(docs[i])] for i in rows])

        for (_, rows), scores in zip(requests, self.endpoint.map(ask, requests)):
            for i, s in zip(rows, scores):
                out[i] = s
                store.put(keys[i], float(s))
        return out

    def _ask(self, query: str, texts: list[str]) -> list[float]:
        answer = self.endpoint.post("/rerank", {"model": self.endpoint.model, "query": query,
                                                "documents": texts, "texts": texts, "return_documents": False,
                                                "top_n": len(texts), "raw_scores": False})
        where = f"endpoint {self.endpoint.url}/rerank"
        results = answer.get("results", answer.get("data")) if isinstance(answer, dict) else answer
        if not isinstance(results, list) or len(results) != len(texts):
            raise EndpointError(f"{where}: {len(results) if isinstance(results, list) else 'no'} scores for "
                                f"{len(texts)} documents")
        scores = [float("nan")] * len(texts)
        try:
            for r in results:
                value = r.get("relevance_score", r.get("score"))
                scores[int(r["index"])] = float(value)
        except (TypeError, KeyError, ValueError, IndexError) as exc:
            raise EndpointError(f"{where}: an answer without an index and a score per document ({exc})") from None
        if not np.isfinite(scores).all():
            raise EndpointError(f"{where}: scores missing or not finite numbers")
        return scores
