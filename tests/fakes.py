"""A deterministic, fast stand-in for a sentence-transformers bi-encoder: hashed bag of words, L2-normalised.

Texts sharing words get similar vectors, so retrieval and filters behave sensibly on test data, in microseconds.
It records every text it encodes, so tests can check what the cache spared.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from typing import Any, Iterator, Optional, Sequence

import numpy as np

from negmine.progress import Progress

WORD = re.compile(r"\w+")


class FakeEncoder:
    """Implements negmine.models.Encoder."""

    def __init__(self, dim: int = 64, name: str = "fake", query_prompt: str = "", corpus_prompt: str = "") -> None:
        self.dim = dim
        self.name = name
        self.prompts = {"query": query_prompt, "document": corpus_prompt}
        self.encoded: list[str] = []
        self.calls = 0

    def identity(self, kind: str) -> str:
        return json.dumps({"model": self.name, "dim": self.dim, "prompt": self.prompts[kind]}, sort_keys=True)

    def vector(self, text: str) -> np.ndarray:
        v = np.zeros(self.dim, dtype=np.float32)
        for word in WORD.findall(text.lower()):
            h = hashlib.blake2b(f"{self.name}:{word}".encode(), digest_size=8).digest()
            v[int.from_bytes(h[:4], "little") % self.dim] += 1.0 if h[4] % 2 else -1.0
        norm = np.linalg.norm(v)
        return v / norm if norm else v

    def encode(self, texts: Sequence[str], kind: str, progress: Optional[Progress] = None) -> np.ndarray:
        self.calls += 1
        self.encoded.extend(texts)
        prompt = self.prompts[kind]
        if not texts:
            return np.empty((0, self.dim), dtype=np.float32)
        return np.stack([self.vector(prompt + t) for t in texts]).astype(np.float32)


class SlowEncoder(FakeEncoder):
    """A FakeEncoder that yields batches of ``batch`` texts, sleeping ``delay`` seconds before each: a long
    encoding run that a test can interrupt or kill part-way."""

    def __init__(self, delay: float = 0.05, batch: int = 2, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.delay = delay
        self.batch = batch

    def encode_batches(self, texts: Sequence[str], kind: str) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for start in range(0, len(texts), self.batch):
            time.sleep(self.delay)
            part = list(texts[start : start + self.batch])
            yield np.arange(start, start + len(part)), self.encode(part, kind)


class Dense:
    """Named like sentence-transformers' Dense module (a projection after the pooling)."""


class PaddingSensitiveST:
    """Stands in for a loaded SentenceTransformer whose vectors, like a real model's, change in the last bits with
    the padding of the batch they are computed in (the longest text of the batch sets it); with ``dense``, also
    with the batch's size, as a projection after the pooling makes them."""

    def __init__(self, dim: int = 16, dense: bool = False) -> None:
        self.inner = FakeEncoder(dim=dim, name="padding-sensitive")
        self.calls: list[list[str]] = []
        self.dense = dense

    def __iter__(self) -> Iterator[Any]:
        return iter([Dense()] if self.dense else [])

    @staticmethod
    def _tokens(text: str) -> int:
        return len(WORD.findall(text)) + 2

    def preprocess(self, texts: Sequence[str], prompt: Optional[str] = None) -> dict[str, Any]:
        import torch

        lengths = [self._tokens((prompt or "") + t) for t in texts]
        mask = torch.zeros((len(texts), max(lengths, default=0)), dtype=torch.long)
        for i, n in enumerate(lengths):
            mask[i, :n] = 1
        return {"attention_mask": mask}

    def encode(self, texts: Sequence[str], prompt: Optional[str] = None, **_: Any) -> np.ndarray:
        self.calls.append(list(texts))
        pad = max((self._tokens((prompt or "") + t) for t in texts), default=0)
        vecs = self.inner.encode([(prompt or "") + t for t in texts], "document")
        if self.dense:
            pad += len(texts)  # the batch's size changes the sums too
        return (vecs * np.float32(1 + 1e-6 * pad)).astype(np.float32)  # what padding does to the float sums

    def get_sentence_embedding_dimension(self) -> int:
        return self.inner.dim
