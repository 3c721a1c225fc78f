"""A bi-encoder behind an OpenAI-compatible ``POST /embeddings`` endpoint (vLLM, text-embeddings-inference,
infinity, Ollama, llama.cpp, OpenAI), as negmine's ``Encoder``.

Its identity, which keys the embedding cache and is recorded in the provenance, is what the server says it serves
(the ``model`` of its answer) and a digest of its vector of a fixed probe text, not the URL: the same model served
elsewhere reuses the cache; another model behind the same URL and name (a swapped deployment) gets another key,
so its vectors are never mixed with the first's. Every answer is checked: as many vectors as texts, the
dimension of the probe, finite values, and the model it names (a model swapped mid-run is an error naming both).
"""

from __future__ import annotations

import hashlib
import json
from typing import Iterator, Optional, Sequence

import numpy as np

from negmine.endpoints.client import Endpoint, EndpointError, split_served
from negmine.errors import ConfigError

#: The text whose vector identifies the served model.
PROBE = "negmine probe: a fixed text whose vector identifies the model behind an endpoint."
#: Texts per request.
BATCH = 64


class EndpointEncoder:
    """Embeddings from ``endpoint`` (``POST {url}/embeddings``), L2-normalised, ``batch_size`` texts a request,
    ``endpoint.concurrency`` requests at once; ``query_prompt`` / ``corpus_prompt`` are put before the texts."""

    def __init__(self, endpoint: Endpoint, batch_size: int = BATCH, query_prompt: str = "",
                 corpus_prompt: str = "") -> None:
        self.endpoint = endpoint
        self.batch_size = batch_size
        self.prompts = {"query": query_prompt or "", "document": corpus_prompt or ""}
        self.name = f"{endpoint.model}@{endpoint.url}"
        self._served: Optional[str] = None
        self._probe: Optional[np.ndarray] = None

    def identity(self, kind: str) -> str:
        self._check_identity()
        assert self._probe is not None
        probe = hashlib.sha256(np.round(self._probe, 3).astype("<f4").tobytes()).hexdigest()[:16]
        return json.dumps({"type": "endpoint", "api": "openai-embeddings", "model": self._served,
                           "probe": probe, "dim": int(self._probe.shape[0]), "prompt": self.prompts[kind]},
                          sort_keys=True)

    def encode(self, texts: Sequence[str], kind: str) -> np.ndarray:
        parts = [vectors for _, vectors in self.encode_batches(texts, kind)]
        dim = self.dimension()
        return np.concatenate(parts) if parts else np.empty((0, dim), np.float32)

    def encode_batches(self, texts: Sequence[str], kind: str) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``(positions, vectors)`` a request at a time, in order (``concurrency`` requests in flight)."""
        self._check_identity()
        prompt = self.prompts[kind]
        starts = list(range(0, len(texts), self.batch_size))
        chunks = [[prompt + t for t in texts[s:s + self.batch_size]] for s in starts]
        for start, vectors in zip(starts, self.endpoint.map(self._embed, chunks)):
            yield np.arange(start, start + len(vectors)), vectors

    def dimension(self) -> int:
        self._check_identity()
        assert self._probe is not None
        return int(self._probe.shape[0])

    def _check_identity(self) -> None:
        if self._probe is None:
            self._probe = self._embed([PROBE])[0]

    def _embed(self, texts: list[str]) -> np.ndarray:
        answer = self.endpoint.post("/embeddings", {"model": self.endpoint.model, "input": texts,
                                                    "encoding_format": "float"})
        where = f"endpoint {self.endpoint.url}/embeddings"
        served = answer.get("model")
        served = str(served) if served else self.endpoint.model
        if self._served is None:
            self._served = served
        elif served != self._served:
            raise EndpointError(f"{where}: it now serves {served!r}, not {self._served!r} (the model was swapped "
                                "mid-run); nothing from it was mixed into the cache: run again")
        data = answer.get("data")
        if not isinstance(data, list) or len(data) != len(texts):
            raise EndpointError(f"{where}: {len(data) if isinstance(data, list) else 'no'} vectors for "
                                f"{len(texts)} texts")
        try:
            rows = sorted(data, key=lambda d: int(d.get("index", 0)))
            vectors = np.array([r["embedding"] for r in rows], dtype=np.float32)
        except (TypeError, KeyError, ValueError, AttributeError) as exc:
            raise EndpointError(f"{where}: an answer without float vectors ({exc})") from None
        if vectors.ndim != 2 or not np.isfinite(vectors).all():
            raise EndpointError(f"{where}: vectors that are not finite numbers of one dimension")
        if self._probe is not None and vectors.shape[1] != self._probe.shape[0]:
            raise EndpointError(f"{where}: vectors of dimension {vectors.shape[1]}, not {self._probe.shape[0]} as "
                                "when the run began (the model was swapped mid-run); run again")
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        off = np.abs(norms[:, 0] - 1) > 1e-6  # unit vectors are kept as served (bit for bit)
        vectors[off] /= np.maximum(norms[off], 1e-12)
        return vectors


def parse_model(spec: str) -> Optional[tuple[str, str]]:
    """``openai:MODEL@URL`` -> (MODEL, URL); ``None`` for anything else (a local model's name or path)."""
    if not spec.startswith("openai:"):
        return None
    served = split_served(spec[len("openai:"):])
    if served is None:
        raise ConfigError(f"--model {spec!r}: an endpoint is written openai:MODEL@URL, e.g. "
                          "openai:all-MiniLM-L6-v2@http://localhost:7997/v1")
    return served
