"""The retrievers and the encoder a config names, built over a corpus (indexes found in, or added to, the cache)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from negmine.endpoints.client import Endpoint
from negmine.endpoints.embeddings import EndpointEncoder, parse_model
from negmine.errors import ConfigError
from negmine.inputs.data import Corpus
from negmine.progress import Progress
from negmine.retrieve.base import Retriever
from negmine.retrieve.bm25 import BM25Retriever
from negmine.retrieve.bm25_tokenizers import resolve
from negmine.retrieve.dense import DenseRetriever
from negmine.retrieve.encoders import Encoder, SentenceTransformerEncoder
from negmine.retrieve.fusion import HybridRetriever
from negmine.rules import registry
from negmine.settings.config import NO_MODEL, MineConfig


def make_encoder(config: MineConfig, model: Optional[str] = None) -> Encoder:
    """The bi-encoder the config names (loaded lazily, on first use); with ``model``, that model as a judge
    (``--reranker``), with its own prompts and the reranker's batch size and length."""

    if model is None and config.model == NO_MODEL:  # nothing should ask: a guard, not a message users meet
        raise ConfigError("--model none: this run has no bi-encoder")
    served = parse_model(model if model is not None else config.model or "")
    if served is not None:
        judge = model is not None
        return EndpointEncoder(endpoint(config, *served), config.batch_size,
                               "" if judge else config.query_prompt or "", "" if judge else config.corpus_prompt or "")
    if model is not None:
        return SentenceTransformerEncoder(model, batch_size=config.reranker_batch_size,
                                          max_seq_length=config.reranker_max_length, device=config.device,
                                          precision=config.precision)
    return SentenceTransformerEncoder(
        config.model, config.query_prompt, config.corpus_prompt, config.query_prompt_name,
        config.corpus_prompt_name, config.batch_size, config.max_seq_length, config.device, config.precision,
    )


def endpoint(config: MineConfig, model: str, url: str) -> Endpoint:
    """The endpoint serving ``model`` at ``url``, called as the config says (concurrency, retries, budget, key)."""
    return Endpoint(url, model, config.endpoint_api_key_env, config.endpoint_concurrency, config.endpoint_retries,
                    config.endpoint_timeout, max_requests=config.endpoint_max_requests)


def make_retriever(
    config: MineConfig, corpus: Corpus, progress: Progress, cache_dir: Path, encoder: Optional[Encoder] = None,
    corpus_vectors: Optional[np.ndarray] = None,
) -> Retriever:
    """Build the retriever the config names over the corpus (indexes come from ``cache_dir`` when present)."""
    parts: dict[str, Retriever] = {}
    if config.retriever in ("bm25", "hybrid"):
        parts["bm25"] = make_bm25(config, corpus.texts).index(corpus.texts, progress, cache_dir)
    if config.retriever in ("dense", "hybrid"):
        dense = DenseRetriever(encoder or make_encoder(config), cache_dir, config.faiss_index, config.device)
        parts["dense"] = dense.index(corpus.texts, progress, corpus_vectors)
    if len(parts) == 1:
        return next(iter(parts.values()))
    return HybridRetriever(parts, config.fusion, config.rrf_k)


def dense_part(retriever: Retriever) -> Any:
    """The dense retriever of a retriever (itself, or a hybrid's), if it has one."""
    if isinstance(retriever, DenseRetriever):
        return retriever
    if isinstance(retriever, HybridRetriever):
        return retriever.retrievers.get("dense")
    return None


def bm25_of(retriever: Retriever) -> Optional[BM25Retriever]:
    """The BM25 retriever of a retriever (itself, or a hybrid's), if it has one."""
    if isinstance(retriever, BM25Retriever):
        return retriever
    if isinstance(retriever, HybridRetriever):
        found = retriever.retrievers.get("bm25")
        return found if isinstance(found, BM25Retriever) else None
    return None


def bm25_part(retriever: Retriever, config: MineConfig, corpus: Corpus, cache: Path, progress: Progress) -> Any:
    """The BM25 index the evidence rules read: the retriever's own, else one built (or found in the cache) for
    them; ``None`` when no rule needs it."""
    if not registry.reads_bm25(config, config.score_all):
        return None
    found = bm25_of(retriever)
    if found is not None:
        return found
    return make_bm25(config, corpus.texts).index(corpus.texts, progress, cache)


def make_bm25(config: MineConfig, texts: Sequence[str]) -> BM25Retriever:
    """The BM25 retriever the config names, its tokenizer decided over ``texts`` (the corpus) for ``auto``; not
    indexed yet. Its ``tokenizer_spec`` says the tokenizer it reads with, ``unspaced_share`` what ``auto`` read."""
    spec, share = resolve(config.bm25_tokenizer, texts)
    bm25 = BM25Retriever(config.bm25_k1, config.bm25_b, config.bm25_method, config.bm25_stemmer,
                         config.bm25_stopwords, tokenizer=spec, model=config.model)
    bm25.unspaced_share = share
    return bm25
