"""Scoring candidates against their query with a reranker, lazily: in sampling order, batched across queries,
and only as far as each query needs to fill its negatives.

The reranker is a sentence-transformers CrossEncoder when one is given, else the bi-encoder (cosine of the
cached embeddings). Positives are scored by the same reranker, so margins compare like with like.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Optional, Protocol, Sequence

import numpy as np

from negmine.errors import ConfigError


class Scorer(Protocol):
    """Scores (query row, corpus index) pairs; higher means more relevant."""

    name: str

    def identity(self) -> dict[str, Any]:
        """What the scores depend on (for the provenance)."""
        ...

    def score(self, query_rows: np.ndarray, docs: np.ndarray) -> np.ndarray:
        """One score per pair."""
        ...


#: A batch's scorers: the judge, the retrieval bi-encoder's cosine, the cosine to the closest positive and the
#: positive proximity (``None`` where not available).
Scorers = tuple[Scorer, Optional[Scorer], Optional[Scorer], Optional[Scorer]]


#: Pairs whose vectors are gathered at a time when bi-encoder scores are computed (memory: 2 x 16,384 x dim floats).
SCORE_PAIRS = 1 << 14


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
        from negmine.retrieve.encoders import identity_record

        return {"type": self.name, "model": identity_record(encoder) if encoder else None}

    def score(self, query_rows: np.ndarray, docs: np.ndarray) -> np.ndarray:
        query_rows, docs = np.asarray(query_rows, dtype=np.int64), np.asarray(docs, dtype=np.int64)
        out = np.empty(len(docs), dtype=np.float32)
        self.vectors.ensure(docs)
        for s in range(0, len(docs), SCORE_PAIRS):  # the vectors gathered a bounded number of pairs at a time
            e = s + SCORE_PAIRS
            out[s:e] = np.einsum("ij,ij->i", self.vectors.queries(query_rows[s:e]), self.vectors.docs(docs[s:e]))
        return out


class PositiveSimilarity:
    """Scores (query row, document) by the document's highest bi-encoder cosine to one of the query's positives:
    what the near-duplicate rule reads."""

    name = "positive similarity"

    def __init__(self, vectors: Vectors, positives: Sequence[Sequence[int]]) -> None:
        self.vectors = vectors
        self.positives = positives
        self._pos: dict[int, np.ndarray] = {}
        self._offset: dict[int, np.ndarray] = {}

    def identity(self) -> dict[str, Any]:
        return {"type": self.name}

    def offsets(self, query_row: int, positives: np.ndarray) -> np.ndarray:
        """What each positive's cosine is measured against (here nothing: the plain cosine)."""
        return np.zeros(len(positives), dtype=np.float32)

    def score(self, query_rows: np.ndarray, docs: np.ndarray) -> np.ndarray:
        if len(docs) == 0:
            return np.empty(0, dtype=np.float32)
        for q in {int(q) for q in query_rows} - set(self._pos):
            self._pos[q] = self.vectors.docs(np.asarray(self.positives[q], dtype=np.int64))
            self._offset[q] = self.offsets(q, self._pos[q])
        query_rows, docs = np.asarray(query_rows, dtype=np.int64), np.asarray(docs, dtype=np.int64)
        self.vectors.ensure(docs)
        out = np.empty(len(docs), dtype=np.float32)
        for s in range(0, len(docs), SCORE_PAIRS):  # the vectors gathered a bounded number of pairs at a time
            dv = self.vectors.docs(docs[s : s + SCORE_PAIRS])
            out[s : s + len(dv)] = [float(np.max(self._pos[int(q)] @ v - self._offset[int(q)]))
                                    for q, v in zip(query_rows[s:], dv)]
        return out


class PositiveProximity(PositiveSimilarity):
    """Scores (query row, document) by how much closer the document is to one of the query's positives than the
    query itself is: the highest ``cos(document, positive) - cos(query, positive)`` over the query's positives
    (bi-encoder cosines). Above 0, the document sits inside the positive's neighbourhood, nearer to it than the
    query: what the positive-proximity rule reads."""

    name = "positive proximity"

    def offsets(self, query_row: int, positives: np.ndarray) -> np.ndarray:
        qv = self.vectors.queries(np.array([query_row], dtype=np.int64))[0]
        return np.asarray(positives @ qv, dtype=np.float32)


class MissingScore(LookupError):
    """A value a rule needs was not computed ahead (``what``: its name; ``row``, ``doc``: the pair)."""

    def __init__(self, what: str, row: int, doc: int) -> None:
        super().__init__(f"no {what} for query row {row}, document {doc}")
        self.what, self.row, self.doc = what, row, doc


class LookupScorer:
    """A Scorer over values computed ahead: ``values[q, c]`` for the candidate at ``indices[q, c]``, and
    ``positive_values[q][j]`` for the query's ``j``-th positive (NaN: not computed, which raises ``MissingScore``).

    Args:
        name: The name of the scorer the values came from (the summary shows it).
        what: The values' name, for ``MissingScore``.
        rows: The input rows of the queries (``MissingScore`` names them; default: their positions here).
    """

    def __init__(self, name: str, what: str, indices: np.ndarray, values: np.ndarray,
                 positives: Sequence[Sequence[int]], positive_values: Sequence[np.ndarray],
                 rows: Optional[np.ndarray] = None) -> None:
        self.name, self.what, self.rows = name, what, rows
        self._table: dict[tuple[int, int], float] = {}
        q, c = np.nonzero(indices >= 0)
        for qq, d, v in zip(q.tolist(), indices[q, c].tolist(), values[q, c].tolist()):
            self._table[(qq, d)] = v
        for qq, (pos, vals) in enumerate(zip(positives, positive_values)):
            for d, v in zip(pos, np.asarray(vals).tolist()):
                if not np.isnan(v) or (qq, int(d)) not in self._table:
                    self._table[(qq, int(d))] = v

    def identity(self) -> dict[str, Any]:
        return {"type": self.name}

    def score(self, query_rows: np.ndarray, docs: np.ndarray) -> np.ndarray:
        out = np.empty(len(docs), dtype=np.float32)
        for i, (q, d) in enumerate(zip(np.asarray(query_rows).tolist(), np.asarray(docs).tolist())):
            v = self._table.get((q, d), np.nan)
            if np.isnan(v):
                raise MissingScore(self.what, int(self.rows[q]) if self.rows is not None else q, d)
            out[i] = v
        return out


#: What the values of a candidates file are called in messages: column -> description.
VALUE_NAMES = {"reranker_score": "the judge's score (reranker_score)", "cosine": "the bi-encoder's cosine (cosine)",
               "positive_similarity": "the cosine to the closest positive (positive_similarity)",
               "positive_proximity": "how much nearer a positive than the query it is (positive_proximity)",
               "pair_score": "the retriever's pair score (pair_score)"}


def lookup_scorers(indices: np.ndarray, positives: Sequence[Sequence[int]], judge_name: str, judge: np.ndarray,
                   positive_judge: Sequence[np.ndarray], cosine: Optional[np.ndarray] = None,
                   positive_cosine: Optional[Sequence[np.ndarray]] = None, similarity: Optional[np.ndarray] = None,
                   rows: Optional[np.ndarray] = None, proximity: Optional[np.ndarray] = None) -> Scorers:
    """The judge, the bi-encoder cosine, the positive-similarity and the positive-proximity scorers over values
    computed ahead (``None`` where those values are not given)."""
    nan = [np.full(len(p), np.nan, np.float32) for p in positives]
    return (LookupScorer(judge_name, VALUE_NAMES["reranker_score"], indices, judge, positives, positive_judge, rows),
            None if cosine is None else LookupScorer("bi-encoder", VALUE_NAMES["cosine"], indices, cosine, positives,
                                                     positive_cosine if positive_cosine is not None else nan, rows),
            None if similarity is None else LookupScorer("positive similarity", VALUE_NAMES["positive_similarity"],
                                                         indices, similarity, positives, nan, rows),
            None if proximity is None else LookupScorer("positive proximity", VALUE_NAMES["positive_proximity"],
                                                        indices, proximity, positives, nan, rows))


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
            from negmine.retrieve.encoders import (
                _quiet_transformers,
                missing_weights,
                model_kind,
                pick_device,
                resolve_precision,
                to_precision,
                transformers_log,
            )

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
        from negmine.retrieve.encoders import model_digest

        ce = self.load()
        digest = model_digest(self.model, lambda: ce.model)
        # sentence-transformers >= 5 names it max_seq_length (max_length is deprecated); older ones max_length
        length = getattr(ce, "max_seq_length", None) or getattr(ce, "max_length", None)
        record = {"type": self.name, "model": self.model, "weights": digest, "max_length": length}
        from negmine.retrieve.encoders import resolve_precision

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


@dataclass
class Judge:
    """Who scores (query, document) pairs for the score rules, loaded and checked before retrieval starts.

    Attributes:
        kind: ``self`` (the retrieval bi-encoder judges its own candidates), ``bi-encoder`` (another embedding model,
            by cosine) or ``cross-encoder``.
        encoder: The judging bi-encoder (kind ``bi-encoder``).
        cross: The cross-encoder scorer (kind ``cross-encoder``).
    """

    kind: str = "self"
    encoder: Any = None
    cross: Optional[CrossEncoderScorer] = None


def load_judge(reranker: Optional[str], make_encoder: Any, query_texts: Sequence[str], doc_texts: Sequence[str],
               batch_size: int = 32, max_length: Optional[int] = None, device: str = "auto",
               precision: str = "auto") -> Judge:
    """The judge ``--reranker`` names, loaded now so that a wrong model fails before any retrieval: a
    sentence-transformers bi-encoder (recognised from its files) judges by cosine, anything else must be a trained
    cross-encoder. ``make_encoder(model)`` builds the bi-encoder."""
    if not reranker:
        return Judge()
    from negmine.retrieve.encoders import model_kind

    if model_kind(reranker) == "bi-encoder":
        encoder = make_encoder(reranker)
        load = getattr(encoder, "load", None)
        if load is not None:
            load()
        return Judge("bi-encoder", encoder=encoder)
    cross = CrossEncoderScorer(reranker, query_texts, doc_texts, batch_size, max_length, device,
                               precision=precision)
    cross.load()
    return Judge("cross-encoder", cross=cross)


@dataclass
class ScoreRules:
    """The score filters' settings (see ``filters.score_rules``)."""

    max_positive_similarity: Optional[float] = None
    max_score: Optional[float] = None
    min_score: Optional[float] = None
    absolute_margin: Optional[float] = None
    relative_margin: Optional[float] = None
    margin_reference: str = "min"
    agreement: bool = False
    percentile_margin: Optional[float] = None
    percentile_floor: float = 0.0
    percentile_cap: float = 1.0
    positive_proximity: Optional[float] = None

    @property
    def percentile_gate(self) -> bool:
        return self.percentile_margin is not None or self.percentile_cap < 1.0

    @property
    def need_scores(self) -> bool:
        """Whether the judge must score candidates (the rules on its scores)."""
        return self.percentile_gate or any(v is not None for v in (self.max_score, self.min_score,
                                                                   self.absolute_margin, self.relative_margin))

    @property
    def active(self) -> bool:
        return self.need_scores or self.agreement or self.max_positive_similarity is not None \
            or self.positive_proximity is not None
