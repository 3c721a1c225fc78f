"""The judge ``--reranker`` names, loaded before any retrieval: a cross-encoder, another bi-encoder (judging by
cosine), or none (the retrieval bi-encoder judges its own candidates)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

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
    cross: Optional[CrossEncoderScorer] = None


def load_judge(reranker: Optional[str], make_encoder: Any, query_texts: Sequence[str], doc_texts: Sequence[str],
               batch_size: int = 32, max_length: Optional[int] = None, device: str = "auto",
               precision: str = "auto") -> Judge:
    """The judge ``--reranker`` names, loaded now so that a wrong model fails before any retrieval: a
    sentence-transformers bi-encoder (recognised from its files) judges by cosine, anything else must be a trained
    cross-encoder. ``make_encoder(model)`` builds the bi-encoder."""
    if not reranker:
        return Judge()

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
