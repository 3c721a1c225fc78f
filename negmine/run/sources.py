"""Where a mining run's values come from: its retriever, the evidence gathered from the indexes and the inputs,
and the judge, scoring as it goes. (``negmine.run.stored.StoredSources`` reads them back from a candidates file.)"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from negmine.judges.base import Scorer, Scorers
from negmine.judges.judge import Judge
from negmine.judges.vectors import BiEncoderScorer, PositiveCosines, Vectors
from negmine.progress import Progress
from negmine.retrieve.base import Hits, Retriever
from negmine.retrieve.build import bm25_of
from negmine.retrieve.dense import DenseRetriever
from negmine.retrieve.encoders import identity_record
from negmine.rules import registry
from negmine.rules.evidence import Context


@dataclass
class LiveSources:
    """A run's retriever, its indexes and models, made ready once by the plan.

    Attributes:
        judge: The judge the rules read (``--reranker``; by default the retrieval bi-encoder).
        retriever: The candidates' retriever.
        dense: The retrieval bi-encoder (the dense retriever's, or one the rules use), if any is needed.
        bm25: The BM25 index the evidence rules read, if any.
        given_queries: ``--query-embeddings``, one row per input query.
        owners: Positives by document, over the mined queries (the cross-query rule).
        query_hashes: A digest of each mined query's normalised text (twin queries).
        cache: The cache folder (a judging bi-encoder's embeddings).
    """

    judge: Judge
    retriever: Retriever
    dense: Optional[DenseRetriever]
    bm25: Any
    given_queries: Optional[np.ndarray]
    owners: Any
    query_hashes: np.ndarray
    cache: Path

    def search(self, plan: Any, rows: np.ndarray, texts: Sequence[str], progress: Progress) -> Hits:
        if self.dense is not None:
            self.dense.given_query_vectors = self.given_queries[rows] if self.given_queries is not None else None
        return self.retriever.search(texts, plan.depth, progress)

    def evidence(self, plan: Any, indices: np.ndarray, positions: np.ndarray, positives: list[list[int]],
                 texts: Sequence[str]) -> dict[str, Any]:
        """The evidence the enabled rules read (every kind with ``--score-all``, for the candidates file)."""
        everything = plan.config.score_all
        cross = (plan.config.cross_query is not None or everything) and self.dense is not None
        context = Context(indices, positions, positives, self.bm25, texts, plan.inputs.corpus.texts, self.owners,
                          self.query_hashes, (lambda p: self.query_vectors(plan, p)) if cross else None)
        return registry.gather(context, plan.config, everything)

    def query_vectors(self, plan: Any, positions: np.ndarray) -> np.ndarray:
        """The retrieval bi-encoder's vectors of mined queries (``positions`` into ``plan.mined``)."""
        return self.row_vectors(plan, plan.mined[np.asarray(positions, dtype=np.int64)], "query")

    def row_vectors(self, plan: Any, rows: np.ndarray, kind: str) -> np.ndarray:
        """The retrieval bi-encoder's vectors of input queries or corpus documents (``kind``) by row: the given
        embeddings first, then the retriever's corpus matrix, then the embedding cache."""
        if kind == "query" and self.given_queries is not None:
            return np.asarray(self.given_queries[rows], dtype=np.float32)
        assert self.dense is not None
        if kind == "document" and self.dense.doc_vectors is not None:
            return np.asarray(self.dense.doc_vectors[rows], dtype=np.float32)
        texts = plan.inputs.queries.texts if kind == "query" else plan.inputs.corpus.texts
        return self.dense.embed(texts.take(rows), kind)

    def endpoints(self) -> list[tuple[str, Any]]:
        """(name, ``Endpoint``) of the run's models behind endpoints: the bi-encoder, the judge."""
        models = (self.dense.encoder if self.dense is not None else None, self.judge.encoder, self.judge.cross)
        found = [(getattr(m, "name", "endpoint"), getattr(m, "endpoint", None)) for m in models]
        return [(name, endpoint) for name, endpoint in found if endpoint is not None]

    def vectors(self, plan: Any, texts: Sequence[str]) -> Optional[Vectors]:
        """The retrieval bi-encoder's vectors of a batch's queries and of corpus documents, when a rule needs them."""
        return Vectors(self.dense, texts, plan.inputs.corpus.texts) if self.dense is not None else None

    def judge_scorer(self, plan: Any, texts: Sequence[str], vectors: Optional[Vectors]) -> Scorer:
        """The judge's scorer for a batch of queries: the cross-encoder, another bi-encoder (through the cache), or
        the retrieval bi-encoder's own vectors."""
        if self.judge.cross is not None:
            return self.judge.cross.for_texts(texts, plan.inputs.corpus.texts)
        if self.judge.encoder is not None:
            return BiEncoderScorer(Vectors(DenseRetriever(self.judge.encoder, self.cache), texts,
                                           plan.inputs.corpus.texts))
        assert vectors is not None
        return BiEncoderScorer(vectors)

    def scorers(self, plan: Any, rows: np.ndarray, texts: Sequence[str], positives: list[list[int]]) -> Scorers:
        """The judge, the retrieval bi-encoder's cosine, and the cosines to the positives, for a batch."""
        vectors = self.vectors(plan, texts)
        assert vectors is not None
        cosines = PositiveCosines(vectors, positives)
        return Scorers(self.judge_scorer(plan, texts, vectors), BiEncoderScorer(vectors), cosines.similarity,
                       cosines.proximity)

    def pair_scores(self, plan: Any, rows: np.ndarray, texts: Sequence[str], docs: list[list[int]]
                    ) -> list[np.ndarray]:
        """The retriever's own scores of given documents for each of a batch's queries (after its search)."""
        return self.retriever.pair_scores(list(texts), docs)

    def judge_name(self, plan: Any) -> str:
        return self.judge.cross.name if self.judge.cross is not None else "bi-encoder"

    def embedder_identity(self, plan: Any) -> Optional[dict[str, Any]]:
        return identity_record(self.dense.encoder) if self.dense is not None and self.dense.encoder else None

    def bm25_tokenizer(self, plan: Any) -> Optional[str]:
        """The tokenizer of the BM25 index the run reads (the evidence's, else the retriever's), if any."""
        bm25 = self.bm25 if self.bm25 is not None else bm25_of(self.retriever)
        return str(bm25.settings.get("tokenizer", "words")) if bm25 is not None else None

    def judge_identity(self, plan: Any, always: bool = False) -> Optional[dict[str, Any]]:
        """The judge, as the provenance records it: ``None`` when no rule read its scores (unless ``always``)."""
        if not registry.need_scores(plan.rules) and not always:
            return None
        if self.judge.cross is not None:
            return self.judge.cross.identity()
        encoder = self.judge.encoder or (self.dense.encoder if self.dense is not None else None)
        return {"type": "bi-encoder", "model": identity_record(encoder) if encoder else None}

    def texts_counted(self) -> Optional[tuple[int, int]]:
        """(texts encoded, texts found in the cache) by the retrieval bi-encoder, if there is one."""
        return (self.dense.encoded, self.dense.cached) if self.dense is not None else None
