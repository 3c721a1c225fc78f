"""The judge ``--reranker`` names, loaded before any retrieval: a cross-encoder, another bi-encoder (judging by
cosine), or none (the retrieval bi-encoder judges its own candidates)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

from negmine.endpoints.embeddings import parse_model
from negmine.endpoints.rerank import EndpointReranker, parse_reranker
from negmine.judges.cross_encoder import CrossEncoderScorer
from negmine.retrieve.encoders import model_kind


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
    cross: Any = None  # a CrossEncoderScorer, or an EndpointReranker


def load_judge(reranker: Optional[str], make_encoder: Any, query_texts: Sequence[str], doc_texts: Sequence[str],
               batch_size: int = 32, max_length: Optional[int] = None, device: str = "auto",
               precision: str = "auto", endpoint: Any = None, cache: Optional[Path] = None) -> Judge:
    """The judge ``--reranker`` names, loaded now so that a wrong model fails before any retrieval: a
    sentence-transformers bi-encoder (recognised from its files, or ``openai:MODEL@URL``) judges by cosine, a
    rerank endpoint (``rerank:MODEL@URL``: ``endpoint(model, url)`` makes its ``Endpoint``, its scores kept under
    ``cache``) or anything else, a trained cross-encoder. ``make_encoder(model)`` builds the bi-encoder."""
    if not reranker:
        return Judge()
    served = parse_reranker(reranker)
    if served is not None:
        return Judge("cross-encoder", cross=EndpointReranker(endpoint(*served), query_texts, doc_texts, cache,
                                                             batch_size).load())  # type: ignore[arg-type]
    if model_kind(reranker) == "bi-encoder" or parse_model(reranker) is not None:
        encoder = make_encoder(reranker)
        load = getattr(encoder, "load", None)
        if load is not None:
            load()
        return Judge("bi-encoder", encoder=encoder)
    cross = CrossEncoderScorer(reranker, query_texts, doc_texts, batch_size, max_length, device,
                               precision=precision)
    cross.load()
    return Judge("cross-encoder", cross=cross)
