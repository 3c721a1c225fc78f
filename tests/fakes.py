"""A deterministic, fast stand-in for a sentence-transformers bi-encoder: hashed bag of words, L2-normalised.

Texts sharing words get similar vectors, so retrieval and filters behave sensibly on test data, in microseconds.
It records every text it encodes, so tests can check what the cache spared.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Optional, Sequence

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
