"""The plan of a run, made once: the inputs read and matched, the options checked against them, the judge loaded,
the indexes opened (or built), and the run-wide pre-passes (an approximate index's setting, the percentile gate's
calibration)."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import pyarrow.compute as pc

from negmine.errors import ConfigError, InputError
from negmine.inputs.data import Positives, Queries, match_positives, take_rows
from negmine.inputs.read import Inputs, load_inputs
from negmine.inputs.vectors import read_embeddings
from negmine.judges.judge import Judge, load_judge
from negmine.judges.llm import load_llm_judge
from negmine.progress import Progress
from negmine.report.stats import MineStats, input_stats
from negmine.retrieve import build as retrievers
from negmine.retrieve.bm25 import cached_settings
from negmine.retrieve.dense import RECALL_SAMPLE, DenseRetriever
from negmine.retrieve.encoders import Encoder, check_device
from negmine.rules import percentile_gate, registry
from negmine.rules.cross_query import Owners
from negmine.rules.duplicates import normalize_text
from negmine.run.sources import LiveSources
from negmine.settings.config import NO_MODEL, MineConfig, ngram_length
from negmine.storage.cache import read_only, read_only_error

logger = logging.getLogger("negmine")

#: ``encode_corpus(texts, encoder, progress)``: encode the corpus texts the cache lacks ahead of indexing (an
#: engine's, on a cluster).
EncodeCorpus = Callable[[Any, Encoder, Progress], None]


@dataclass
class Plan:
    """A run made ready: its settings, inputs and mined queries, and where its values come from.

    Attributes:
        config: The settings, as given (the provenance records them).
        rules: The settings the rules read: ``config`` with the relative margin resolved for the judge.
        inputs: The corpus, the queries, the qrels, and the files they came from.
        positives: Each query's positives.
        mined: The input rows of the queries mined, in input order.
        depth: Candidates retrieved per query.
        sources: Where retrieval, evidence and scores come from: ``LiveSources`` (the indexes and models) or
            ``StoredSources`` (a candidates file).
        cache: The cache folder.
        judge_kind: ``self``, ``bi-encoder`` or ``cross-encoder``.
        calibration: The judge's scores of every positive, sorted (the percentile gate).
        dense_search: An approximate index's setting and measured recall.
        warnings: What was warned about while planning and mining.
        doc_digests: Per document, a digest of its normalised text (0: not computed yet).
        seconds: Time per stage, summed over the batches.
        llm: The LLM judge (``--llm-judge``), if any.
    """

    config: MineConfig
    rules: MineConfig
    inputs: Inputs
    positives: Positives
    mined: np.ndarray
    depth: int
    sources: Any
    cache: Path
    judge_kind: str = "self"
    calibration: Optional[np.ndarray] = None
    dense_search: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    doc_digests: Optional[np.ndarray] = None
    seconds: dict[str, float] = field(default_factory=dict)
    llm: Any = None


def warn(warnings: list[str], message: str) -> None:
    warnings.append(message)
    logger.warning(message)


def judges_all(config: MineConfig) -> bool:
    """Whether the judge scores candidates ahead of sampling: every retrieved one (``--score-all``, for a complete
    candidates file) or those SimANS samples from."""
    return config.score_all or config.sampling_strategy == "simans"


def uses_bi_encoder(config: MineConfig) -> bool:
    """Whether a run needs the retrieval bi-encoder: to retrieve, or for the rules, the judge or twin queries."""
    if config.model == NO_MODEL:
        return False
    return config.retriever != "bm25" or registry.score_rules_on(config) or judges_all(config) \
        or config.cross_query is not None


def read_inputs(config: MineConfig, corpus: Any, queries: Any, qrels: Any, pairs: Any, cache: Optional[Path],
                progress: Progress, warnings: list[str]) -> tuple[Inputs, Positives, np.ndarray, MineStats]:
    """Read the inputs and match the qrels to them (no model): the inputs, the positives, the rows of the queries
    to mine (those with positives and a text) and the input statistics."""
    with progress.stage("reading inputs"):
        inputs = load_inputs(config, corpus, queries, qrels, pairs, cache)
        positives = match_positives(inputs.qrels, inputs.queries, inputs.corpus, config.strict)
    if positives.unknown_query_rows or positives.unknown_doc_rows:
        warn(warnings, f"{inputs.qrels.source}: skipped {positives.unknown_query_rows:,} rows naming unknown queries "
                       f"and {positives.unknown_doc_rows:,} naming unknown documents, e.g. "
                       f"{', '.join(positives.unknown_examples)} (--strict makes this an error)")
    with_positives = np.flatnonzero(positives.counts() > 0)
    empty = [int(q) for q in with_positives if not inputs.queries.texts[int(q)].strip()] \
        if len(with_positives) <= 1_000_000 else _empty_texts(inputs.queries, with_positives)
    stats = input_stats(inputs, positives)
    if empty:
        where = f"{inputs.queries.source}: {inputs.queries.where(empty[0])} (id {str(inputs.queries.ids[empty[0]])!r})"
        if config.strict or len(empty) == len(with_positives):
            raise InputError(f"{where}: the query text is empty" + (
                "" if config.strict else "; every query with positives has an empty text, so there is nothing to mine"))
        warn(warnings, f"{where}: the query text is empty; skipped {len(empty):,} such queries (--strict makes this "
                       "an error)")
        positives = positives.without(empty)
        stats.queries_empty_text = len(empty)
        stats.queries_mined -= len(empty)
    mined = np.flatnonzero(positives.counts() > 0)
    counts = positives.counts()[mined]
    n_docs = len(inputs.corpus)
    if config.num_negatives > n_docs - int(counts.min()):
        raise InputError(
            f"{inputs.corpus.source.split(':')[0]}: {config.num_negatives} negatives per query asked, but the corpus "
            f"has {n_docs} documents, so no query can get that many besides its positives; lower --num-negatives")
    return inputs, positives, mined, stats


def depth_of(config: MineConfig, positives: Positives, mined: np.ndarray, n_docs: int) -> int:
    """How many candidates a run retrieves per query: the rank window, plus room for the most positives a query
    has (they are dropped from the list), at most the corpus."""
    return min(n_docs, config.range_max + int(positives.counts()[mined].max()))


def plan(config: MineConfig, corpus: Any, queries: Any, qrels: Any, pairs: Any, cache: Path,
         encoder: Optional[Encoder], corpus_embeddings: Any, query_embeddings: Any, index_dir: bool,
         progress: Progress, warnings: list[str], encode_corpus: Optional[EncodeCorpus] = None,
         prepass: bool = True) -> tuple[Plan, MineStats]:
    """Read the inputs, match the qrels, check the options against them, load the judge, make the indexes ready
    (the corpus encoded by ``encode_corpus`` first, on a cluster), and (``prepass``) choose an approximate index's
    setting and calibrate: everything that happens once per run. A Ray worker plans without the pre-passes and
    takes their results from the driver."""
    inputs, positives, mined, stats = read_inputs(config, corpus, queries, qrels, pairs, cache, progress, warnings)
    judge = _judge(config, cache)
    llm = load_llm_judge(config.llm_judge, config.llm_confirm, config.llm_judge_prompt,
                         lambda model, url: retrievers.endpoint(config, model, url), cache)
    rules = config.for_judge(judge.kind)
    if index_dir or read_only(cache):
        gaps = index_gaps(config, inputs, cache, encoder, corpus_embeddings is not None)
        if gaps and read_only(cache):  # before any work: what this run would have to write there
            raise read_only_error(cache, gaps[0][0])
        for what, advice in gaps:
            warn(warnings, f"--index-dir {cache} lacks the {what}: building it there now. {advice}")
    sources = _sources(config, inputs, positives, mined, cache, encoder, corpus_embeddings, query_embeddings, judge,
                       progress, encode_corpus)
    _say_tokenizer(config, sources, warnings)
    run = Plan(config, rules, inputs, positives, mined, depth_of(config, positives, mined, len(inputs.corpus)),
               sources, cache, judge.kind, llm=llm)
    if retrievers.dense_part(sources.retriever) is not None and prepass:
        tune_dense_search(run, progress)
    if percentile_gate_on(rules) and prepass:
        run.calibration = calibrate(run, progress)
    return run, stats


def _say_tokenizer(config: MineConfig, sources: LiveSources, warnings: list[str]) -> None:
    """Once per run, when --bm25-tokenizer auto reads the corpus otherwise than as words: what it read and how."""
    bm25 = sources.bm25 if sources.bm25 is not None else retrievers.bm25_of(sources.retriever)
    if bm25 is None or config.bm25_tokenizer != "auto" or bm25.tokenizer_spec == "words":
        return
    n = ngram_length(bm25.tokenizer_spec)
    warn(warnings, f"BM25: {bm25.unspaced_share:.0%} of the letters of the corpus (a sample) are in scripts written "
                   f"without spaces: it reads them as character {n}-grams, and words elsewhere (--bm25-tokenizer "
                   f"{bm25.tokenizer_spec}; the stemmer and stopwords apply to those words only)")


def percentile_gate_on(config: MineConfig) -> bool:
    return registry.RULE_OF[percentile_gate.RULE.name].enabled(config)


def _judge(config: MineConfig, cache: Optional[Path]) -> Judge:
    """The judge, loaded (and the device checked) before any retrieval."""
    judged = registry.need_scores(config.for_judge(None)) or judges_all(config)
    if config.retriever != "bm25" or registry.score_rules_on(config.for_judge(None)) or judged or config.reranker \
            or config.cross_query is not None:
        check_device(config.device)
    if not judged:
        return Judge()
    return load_judge(config.reranker, lambda model: retrievers.make_encoder(config, model), [], [],
                      config.reranker_batch_size, config.reranker_max_length, config.device, config.precision,
                      lambda model, url: retrievers.endpoint(config, model, url), cache)


def _sources(config: MineConfig, inputs: Inputs, positives: Positives, mined: np.ndarray, cache: Path,
             encoder: Optional[Encoder], corpus_embeddings: Any, query_embeddings: Any, judge: Judge,
             progress: Progress, encode_corpus: Optional[EncodeCorpus]) -> Any:
    """The retriever and the indexes and vectors the rules read, made ready."""
    corpus_vectors = given = None
    if corpus_embeddings is not None:
        inputs.files["corpus_embeddings"] = str(corpus_embeddings)
        corpus_vectors = read_embeddings(Path(corpus_embeddings), inputs.corpus.ids, "corpus")
    if query_embeddings is not None:
        inputs.files["query_embeddings"] = str(query_embeddings)
        given = read_embeddings(Path(query_embeddings), inputs.queries.ids, "query")
    if config.retriever == "bm25" and (corpus_vectors is not None or given is not None):
        raise ConfigError("--corpus-embeddings / --query-embeddings need --retriever dense or hybrid")
    if encode_corpus is not None and config.retriever != "bm25" and corpus_vectors is None:
        encode_corpus(inputs.corpus.texts, encoder or retrievers.make_encoder(config), progress)
    retriever = retrievers.make_retriever(config, inputs.corpus, progress, cache, encoder, corpus_vectors)
    dense = retrievers.dense_part(retriever)
    if dense is None and uses_bi_encoder(config):
        dense = DenseRetriever(encoder or retrievers.make_encoder(config), cache, config.faiss_index, config.device)
    bm25 = retrievers.bm25_part(retriever, config, inputs.corpus, cache, progress)
    with progress.stage("planning"):
        owners = Owners.of([positives.of(int(q)).tolist() for q in mined], len(inputs.corpus))
        hashes = text_hashes(inputs.queries, mined) if config.cross_query is not None or config.score_all \
            else np.empty(0, np.uint64)
    return LiveSources(judge, retriever, dense, bm25, given, owners, hashes, cache)


def tune_dense_search(run: Plan, progress: Progress) -> None:
    """With an approximate faiss index, choose its setting (nprobe, efSearch) once, from a seeded sample of all
    the run's queries, so that the output does not depend on the query batches or on which worker mined them;
    the measured recall goes into the summary and the provenance."""
    dense = run.sources.dense
    if dense.factory() is None:
        return
    rows = np.sort(np.random.default_rng(0).choice(run.mined, size=min(RECALL_SAMPLE, len(run.mined)),
                                                   replace=False))
    with progress.stage("measuring the approximate index's recall"):
        if run.sources.given_queries is not None:
            vectors = run.sources.given_queries[rows]
        else:  # counted as encoded (or cached) here, once: the batches look them up again without counting them
            vectors = dense.embed(run.inputs.queries.texts.take(rows), "query")
        report = dense.tune(vectors, run.depth, progress)
    if report is not None:
        run.dense_search = {k: v for k, v in report.items() if k != "seconds"}


def calibrate(run: Plan, progress: Progress) -> np.ndarray:
    """The judge's scores of every positive of the run, sorted: what the percentile gate compares with."""
    scores = []
    with progress.stage("calibrating: scoring every positive", total=len(run.mined)) as advance:
        for positions in np.array_split(np.arange(len(run.mined)),
                                        max(1, -(-len(run.mined) // run.config.query_batch_size))):
            rows = run.mined[positions]
            texts = run.inputs.queries.texts.take(rows)
            scorer = run.sources.judge_scorer(run, texts, run.sources.vectors(run, texts))
            pos = [run.positives.of(int(q)) for q in rows]
            q = np.concatenate([np.full(len(p), i) for i, p in enumerate(pos)]).astype(np.int64)
            scores.append(scorer.score(q, np.concatenate(pos).astype(np.int64)))
            advance(len(rows))
    return np.sort(concat(scores).astype(np.float64))


def concat(parts: Any) -> np.ndarray:
    return np.concatenate(list(parts)).astype(np.float32) if len(parts) else np.empty(0, np.float32)


def index_gaps(config: MineConfig, inputs: Inputs, folder: Path, encoder: Optional[Encoder], vectors_given: bool
               ) -> list[tuple[str, str]]:
    """What a cache folder (an ``--index-dir``) lacks that this run needs from it: (what, how to build it ahead)."""
    gaps = []
    corpus = inputs.corpus
    if config.retriever in ("bm25", "hybrid") or registry.reads_bm25(config, config.score_all):
        bm25 = retrievers.make_bm25(config, corpus.texts)
        if not bm25.is_cached(corpus.texts, folder):
            held = "; ".join(cached_settings(folder)) or "none"
            gaps.append((f"BM25 index of this corpus with these settings ({bm25.describe()})",
                         f"It holds BM25 indexes with: {held}. Build it ahead with negmine index and the same options"))
    if uses_bi_encoder(config) and not vectors_given:
        dense = DenseRetriever(encoder or retrievers.make_encoder(config), folder)
        missing = dense.missing(corpus.texts, "document")
        if missing:
            gaps.append((f"embeddings of {missing:,} of the corpus's {len(corpus):,} documents from this model",
                         f"negmine index --retriever {config.retriever} with the same model encodes them ahead"))
    return gaps


def _empty_texts(queries: Queries, rows: np.ndarray) -> list[int]:
    """Rows whose query text is empty or blank (checked with Arrow, for large query sets)."""
    texts = take_rows(queries.text_array, rows)
    blank = pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(texts)), 0).to_numpy(zero_copy_only=False)
    return [int(r) for r in rows[np.asarray(blank, dtype=bool)]]


def text_digest(text: str) -> int:
    """An 8-byte digest of a text's normalised form (twin queries, duplicate documents)."""
    return int.from_bytes(hashlib.blake2b(normalize_text(text).encode("utf-8"), digest_size=8).digest(), "little")


def text_hashes(queries: Queries, rows: np.ndarray) -> np.ndarray:
    """A digest of each query's normalised text: twin queries have equal digests."""
    out = np.empty(len(rows), dtype=np.uint64)
    for start in range(0, len(rows), 8192):
        for i, text in enumerate(queries.texts.take(rows[start : start + 8192])):
            out[start + i] = text_digest(text)
    return out
