"""A sentence-transformers CrossEncoder as a judge: loaded and checked once (a bi-encoder, a bare transformer or
an untrained head is refused), scoring pairs in batches of one token length and a fixed size, so that a pair's
score does not depend on the pairs scored with it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import numpy as np

from negmine.errors import ConfigError
from negmine.retrieve.encoders import (
    _quiet_transformers,
    missing_weights,
    model_digest,
    model_kind,
    pick_device,
    resolve_precision,
    to_precision,
    transformers_log,
)


@dataclass
class CrossEncoderScorer:
    """A sentence-transformers CrossEncoder; scores are what its ``predict`` returns (with the model's default
    activation, e.g. a sigmoid for MS MARCO rerankers, or raw logits)."""

    model: str
    query_texts: Sequence[str]
    doc_texts: Sequence[str]
    batch_size: int = 32
    max_length: Optional[int] = None
    device: str = "auto"
    name: str = "cross-encoder"
    precision: str = "auto"
    _ce: Any = field(default=None, init=False, repr=False)

    def load(self) -> Any:
        """The CrossEncoder, loaded once and checked: a bi-encoder, a bare transformer, or a checkpoint whose
        classification weights are missing (transformers would initialise them at random) is refused."""
        if self._ce is None:

            kind = model_kind(self.model)
            if kind in ("bi-encoder", "sparse-encoder", "transformer"):
                what = {"bi-encoder": "a sentence-transformers embedding model (bi-encoder)",
                        "sparse-encoder": "a sparse embedding model",
                        "transformer": "a bare transformer without a classification head"}[kind]
                raise ConfigError(f"--reranker {self.model}: is {what}, not a cross-encoder; give a cross-encoder "
                                  "(a sequence-classification model with one output), or a sentence-transformers "
                                  "bi-encoder to judge by cosine")
            _quiet_transformers()
            from sentence_transformers import CrossEncoder

            try:
                with transformers_log() as log:
                    self._ce = CrossEncoder(self.model, device=pick_device(self.device), max_length=self.max_length)
            except Exception as exc:  # noqa: BLE001 - any loader failure is a usage problem
                raise ConfigError(f"--reranker {self.model}: could not load it "
                                  f"({str(exc).splitlines()[0][:300]})") from exc
            if missing_weights(log):
                self._ce = None
                raise ConfigError(f"--reranker {self.model}: its checkpoint lacks the classification weights "
                                  "(transformers initialised them at random, so every score would be noise); give a "
                                  "trained cross-encoder")
            if getattr(self._ce, "num_labels", 1) != 1:
                raise ConfigError(f"--reranker {self.model}: has {self._ce.num_labels} output labels; a reranker "
                                  "has one relevance score")
            to_precision(self._ce, resolve_precision(self.precision, self.device))
        return self._ce

    def identity(self) -> dict[str, Any]:

        ce = self.load()
        digest = model_digest(self.model, lambda: ce.model)
        # sentence-transformers >= 5 names it max_seq_length (max_length is deprecated); older ones max_length
        length = getattr(ce, "max_seq_length", None) or getattr(ce, "max_length", None)
        record = {"type": self.name, "model": self.model, "weights": digest, "max_length": length}

        precision = resolve_precision(self.precision, self.device)
        if precision != "fp32":
            record["precision"] = precision
        return record

    def for_texts(self, query_texts: Sequence[str], doc_texts: Sequence[str]) -> "CrossEncoderScorer":
        """This scorer (the model loaded once) over other texts: a query batch's."""
        other = dataclasses.replace(self, query_texts=query_texts, doc_texts=doc_texts)
        other._ce = self._ce
        return other

    def score(self, query_rows: np.ndarray, docs: np.ndarray) -> np.ndarray:
        """Scores of (query, document) pairs. Pairs are predicted in batches of the same token length and of
        exactly ``batch_size`` pairs (a short batch is filled with copies of its last pair): no batch holds padding
        and every forward pass has the same shape, so a pair's score depends neither on the pairs scored with it
        nor on how many threads run it."""
        if len(docs) == 0:
            return np.empty(0, dtype=np.float32)
        ce = self.load()
        pairs = [(self.query_texts[int(q)], self.doc_texts[int(d)]) for q, d in zip(query_rows, docs)]
        lengths = _pair_lengths(ce, pairs)
        out = np.empty(len(pairs), dtype=np.float32)
        order = np.lexsort((np.arange(len(pairs)), -lengths))
        for group in np.split(order, np.flatnonzero(np.diff(lengths[order])) + 1):
            for start in range(0, group.size, self.batch_size):
                rows = group[start : start + self.batch_size]
                filled = [pairs[i] for i in rows] + [pairs[rows[-1]]] * (self.batch_size - len(rows))
                scores = ce.predict(filled, batch_size=self.batch_size, show_progress_bar=False,
                                    convert_to_numpy=True)
                out[rows] = np.asarray(scores, dtype=np.float32).reshape(-1)[: len(rows)]
        return out


def _pair_lengths(ce: Any, pairs: list[tuple[str, str]]) -> np.ndarray:
    """The token length of each (query, document) input of a CrossEncoder (all zero when its tokenizer cannot
    say: then it batches as it would)."""
    tokenizer = getattr(ce, "tokenizer", None)
    if tokenizer is None:
        return np.zeros(len(pairs), dtype=np.int64)
    length = getattr(ce, "max_seq_length", None) or getattr(ce, "max_length", None)
    try:
        ids = tokenizer([a for a, _ in pairs], [b for _, b in pairs], truncation=True, max_length=length)["input_ids"]
    except Exception:  # noqa: BLE001 - an exotic tokenizer: the model's own batching
        return np.zeros(len(pairs), dtype=np.int64)
    return np.array([len(x) for x in ids], dtype=np.int64)
