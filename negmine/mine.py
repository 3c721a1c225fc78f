"""The mining pipeline: read -> retrieve -> filter -> sample -> write. The only module that knows the order."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence, Union, cast

import numpy as np
import pyarrow as pa

from negmine import evidence, filters, io
from negmine.cache import prepare_cache_dir
from negmine.config import MineConfig, flag
from negmine.data import Corpus, Positives, Qrels, Queries, match_positives, pairs_to_inputs
from negmine.dense import DenseRetriever, read_embeddings
from negmine.errors import ConfigError, EmptyResultError, InputError
from negmine.models import Encoder, check_device, identity_record
from negmine.progress import Progress
from negmine.report import MineStats, score_summary
from negmine.retrieve import Hits, Retriever
from negmine.sample import sampling_orders, take_first
from negmine.score import (
    BiEncoderScorer,
    Judge,
    ScoredCandidates,
    Scorer,
    ScoreRules,
    Vectors,
    lazy_select,
    load_judge,
)
from negmine.write import Selection, build_candidates_table, build_table, negatives_in, select_columns

logger = logging.getLogger("negmine")

Source = Union[str, Path]


@dataclass
class MineResult:
    """What a run produced.

    Attributes:
        table: The training table (also written to ``output`` when one was given).
        stats: Counts of what was read, dropped and written.
        metadata: The provenance stored in the output file.
        output: Where the table was written, if anywhere.
        seconds: Wall time per stage (not part of the provenance, so outputs stay byte-identical).
    """

    table: pa.Table
    stats: MineStats
    metadata: dict[str, Any]
    output: Optional[Path] = None
    seconds: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


@dataclass
class Inputs:
    """The loaded inputs of a run and where they came from."""

    corpus: Corpus
    queries: Queries
    qrels: Qrels
    files: dict[str, str]


def load_inputs(
    config: MineConfig,
    corpus: Union[Source, Corpus, None] = None,
    queries: Union[Source, Queries, None] = None,
    qrels: Union[Source, Qrels, None] = None,
    pairs: Union[Source, Sequence[tuple[str, str]], None] = None,
) -> Inputs:
    """Read (or take as given) the corpus, queries and qrels of a run; a pairs file stands for queries and qrels."""
    files: dict[str, str] = {}

    def path_of(role: str, value: Any) -> Optional[str]:
        if isinstance(value, (str, Path)):
            files[role] = str(value)
            return str(value)
        return None

    if pairs is not None:
        if queries is not None or qrels is not None:
            raise ConfigError("--pairs replaces --queries and --qrels: give either pairs or queries and qrels")
    elif queries is None or qrels is None:
        raise ConfigError("give --queries and --qrels (with --corpus), or --pairs")
    elif corpus is None:
        raise ConfigError("--corpus is required with --queries and --qrels")

    c: Optional[Corpus] = None
    if corpus is not None:
        p = path_of("corpus", corpus)
        c = io.read_corpus(p, config.corpus_id_column, config.corpus_text_column, config.corpus_title_column) \
            if p else corpus  # type: ignore[assignment]
    if pairs is not None:
        p = path_of("pairs", pairs)
        if p:
            anchors, positives = io.read_pairs(p, config.pairs_anchor_column, config.pairs_positive_column)
        else:
            rows = list(cast("Sequence[tuple[str, str]]", pairs))
            anchors, positives = [a for a, _ in rows], [b for _, b in rows]
        q, c, r = pairs_to_inputs(anchors, positives, p or "<pairs>", c)
    else:
        p = path_of("queries", queries)
        q = io.read_queries(p, config.query_id_column, config.query_text_column) if p else queries  # type: ignore
        p = path_of("qrels", qrels)
        r = io.read_qrels(p, config.qrels_query_column, config.qrels_doc_column, config.qrels_score_column) \
            if p else qrels  # type: ignore[assignment]
    assert c is not None
    return Inputs(c, q, r, files)


def make_encoder(config: MineConfig, model: Optional[str] = None) -> Encoder:
    """The bi-encoder the config names (loaded lazily, on first use); with ``model``, that model as a judge
    (``--reranker``), with its own prompts and the reranker's batch size and length."""
    from negmine.models import SentenceTransformerEncoder

    if model is not None:
        return SentenceTransformerEncoder(model, batch_size=config.reranker_batch_size,
                                          max_seq_length=config.reranker_max_length, device=config.device)
    return SentenceTransformerEncoder(
        config.model, config.query_prompt, config.corpus_prompt, config.query_prompt_name,
        config.corpus_prompt_name, config.batch_size, config.max_seq_length, config.device,
    )


def make_retriever(
    config: MineConfig, corpus: Corpus, progress: Progress, cache_dir: Path, encoder: Optional[Encoder] = None,
    corpus_vectors: Optional[np.ndarray] = None,
) -> Retriever:
    """Build the retriever the config names over the corpus (indexes come from ``cache_dir`` when present)."""
    from negmine.bm25 import BM25Retriever
    from negmine.dense import DenseRetriever
    from negmine.fusion import HybridRetriever

    parts: dict[str, Retriever] = {}
    if config.retriever in ("bm25", "hybrid"):
        parts["bm25"] = BM25Retriever(
            config.bm25_k1, config.bm25_b, config.bm25_method, config.bm25_stemmer, config.bm25_stopwords
        ).index(corpus.texts, progress, cache_dir)
    if config.retriever in ("dense", "hybrid"):
        dense = DenseRetriever(encoder or make_encoder(config), cache_dir, config.faiss_index, config.device)
        parts["dense"] = dense.index(corpus.texts, progress, corpus_vectors)
    if len(parts) == 1:
        return next(iter(parts.values()))
    return HybridRetriever(parts, config.fusion, config.rrf_k)


def _dense_part(retriever: Retriever) -> Any:
    from negmine.dense import DenseRetriever
    from negmine.fusion import HybridRetriever

    if isinstance(retriever, DenseRetriever):
        return retriever
    if isinstance(retriever, HybridRetriever):
        return retriever.retrievers.get("dense")
    return None


def mine(
    corpus: Union[Source, Corpus, None] = None,
    queries: Union[Source, Queries, None] = None,
    qrels: Union[Source, Qrels, None] = None,
    *,
    pairs: Union[Source, Sequence[tuple[str, str]], None] = None,
    output: Optional[Source] = None,
    config: Optional[MineConfig] = None,
    progress: Optional[Progress] = None,
    cache_dir: Optional[Source] = None,
    index_dir: Optional[Source] = None,
    corpus_embeddings: Optional[Source] = None,
    query_embeddings: Optional[Source] = None,
    encoder: Optional[Encoder] = None,
    candidates_output: Optional[Source] = None,
    explicit: Optional[Sequence[str]] = None,
    **options: Any,
) -> MineResult:
    """Mine hard negatives: retrieve candidates for each query, drop its positives, sample, lay out for training.

    Args:
        corpus: Corpus Parquet path (or a ``Corpus``).
        queries: Query Parquet path (or ``Queries``).
        qrels: Relevance judgments Parquet path (or ``Qrels``); rows with score <= 0 are not positives.
        pairs: Instead of queries and qrels: a Parquet file (or a list) of (anchor, positive) text pairs; the corpus
            then defaults to the positives.
        output: Where to write the Parquet output (atomically). ``None`` writes nothing.
        config: Settings; ``options`` override its fields by name (``num_negatives=10``).
        progress: Receives progress reports; the default shows nothing.
        cache_dir: Where embeddings and indexes are cached (default: ``$NEGMINE_CACHE_DIR`` or the XDG cache).
        index_dir: A directory built by ``negmine index``; used as the cache (it must exist).
        corpus_embeddings: Precomputed corpus vectors: ``.npy`` in corpus row order, or Parquet with an id and a
            vector column.
        query_embeddings: Precomputed query vectors, likewise (``.npy`` in query row order; for pairs, in order
            of first appearance of each distinct anchor).
        encoder: An ``Encoder`` to use instead of loading ``config.model`` (tests use a fake one).
        candidates_output: Parquet path for an audit of every candidate: its ranks and scores, and whether it
            was selected, kept, not scored, or which rule dropped it.
        explicit: The option names the caller set on purpose (default: the keys of ``options``); those that have
            no effect with the others are warned about.

    Returns:
        The table, the statistics and the provenance.

    Raises:
        ConfigError: Options that contradict each other or an output path that is an input.
        InputError: Inputs that are missing, unreadable or malformed.
        StorageError: An output or cache folder that cannot be written (checked before any work).
        EmptyResultError: Every candidate was dropped (unless ``allow_empty``).
    """
    config = (config or MineConfig()).replace(**options) if options else (config or MineConfig())
    progress = progress or Progress()
    seconds: dict[str, float] = {}
    warnings: list[str] = []

    def warn(message: str) -> None:
        warnings.append(message)
        logger.warning(message)

    for message in config.ineffective(set(options) if explicit is None else explicit):
        warn(message)
    paths = [x for x in (corpus, queries, qrels, pairs, corpus_embeddings, query_embeddings)
             if isinstance(x, (str, Path))]
    out_path = io.check_output_path(output, paths) if output is not None else None
    cand_path = io.check_output_path(candidates_output, paths, "--candidates-output") \
        if candidates_output is not None else None
    if cand_path is not None and out_path is not None and cand_path.resolve() == out_path.resolve():
        raise ConfigError("--candidates-output and --output are the same file; give two paths")
    cache = prepare_cache_dir(resolve_cache_dir(cache_dir, index_dir),
                              "--index-dir" if index_dir is not None else "--cache-dir")

    t = time.perf_counter()
    with progress.stage("reading inputs"):
        inputs = load_inputs(config, corpus, queries, qrels, pairs)
        positives = match_positives(inputs.qrels, inputs.queries, inputs.corpus, config.strict)
    seconds["read"] = time.perf_counter() - t
    stats = _input_stats(inputs, positives)
    if positives.unknown_query_rows or positives.unknown_doc_rows:
        warn(f"{inputs.qrels.source}: skipped {positives.unknown_query_rows:,} rows naming unknown queries and "
             f"{positives.unknown_doc_rows:,} naming unknown documents, e.g. {', '.join(positives.unknown_examples)} "
             "(--strict makes this an error)")
    empty = [i for i, p in enumerate(positives.by_query) if p and not inputs.queries.texts[i].strip()]
    if empty:
        where = f"{inputs.queries.source}: row {empty[0]} (id {str(inputs.queries.ids[empty[0]])!r})"
        if config.strict or len(empty) == stats.queries_mined:
            raise InputError(f"{where}: the query text is empty" + (
                "" if config.strict else "; every query with positives has an empty text, so there is nothing to mine"))
        warn(f"{where}: the query text is empty; skipped {len(empty):,} such queries (--strict makes this an error)")
        for i in empty:
            positives.by_query[i] = []
        stats.queries_empty_text = len(empty)
        stats.queries_mined -= len(empty)

    mined = [i for i, p in enumerate(positives.by_query) if p]
    pos_lists = [positives.by_query[i] for i in mined]
    n_docs = len(inputs.corpus)
    fewest_pos = min(len(p) for p in pos_lists)
    if config.num_negatives > n_docs - fewest_pos:
        raise InputError(
            f"{inputs.corpus.source.split(':')[0]}: {config.num_negatives} negatives per query asked, but the corpus "
            f"has {n_docs} documents, so no query can get that many besides its positives; lower --num-negatives"
        )

    qtexts = [inputs.queries.texts[i] for i in mined]
    rules = score_rules_of(config)
    if config.retriever != "bm25" or rules.active or config.reranker:
        check_device(config.device)
    judge = load_judge(config.reranker, lambda model: make_encoder(config, model), qtexts, inputs.corpus.texts,
                       config.reranker_batch_size, config.reranker_max_length, config.device) \
        if rules.need_scores else Judge()
    rules = score_rules_of(config, judge.kind)
    if index_dir is not None:
        for message in _index_dir_gaps(config, inputs.corpus, cache, encoder, corpus_embeddings is not None):
            warn(message)

    t = time.perf_counter()
    retriever, dense, hits = _retrieve(config, inputs, mined, pos_lists, cache, encoder, corpus_embeddings,
                                       query_embeddings, progress)
    seconds["retrieve"] = time.perf_counter() - t
    if dense is not None:
        stats.texts_encoded, stats.texts_cached = dense.encoded, dense.cached

    t = time.perf_counter()
    normalized = _normalized_texts(inputs.corpus, hits.indices, pos_lists)
    reasons = filters.apply_rules(hits.indices, pos_lists, config.range_min, config.range_max, normalized)
    vectors = None
    if rules.active or config.cross_query is not None:
        if dense is None:
            dense = DenseRetriever(encoder or make_encoder(config), cache, config.faiss_index, config.device)
        vectors = Vectors(dense, qtexts, inputs.corpus.texts)
    with progress.stage("gathering evidence"):
        found = evidence.gather(
            hits.indices, np.arange(len(mined)), pos_lists, bm25=_bm25_part(retriever, config, inputs.corpus, cache,
                                                                            progress),
            query_texts=qtexts, doc_texts=inputs.corpus.texts, owners=evidence.Owners.of(pos_lists, n_docs),
            normalized_queries=[filters.normalize_text(t) for t in qtexts],
            query_vectors=vectors.queries if vectors is not None else None,
            cross_query=config.cross_query is not None, lexical=config.lexical_overlap is not None,
            agreement=config.agreement, reference=config.margin_reference)
    reasons = filters.evidence_rules(reasons, found.twin_similarity, config.cross_query, found.overlap,
                                     config.lexical_overlap)
    orders = sampling_orders([np.flatnonzero(row == filters.KEPT) for row in reasons], [len(p) for p in pos_lists],
                             config.sampling_strategy, config.seed)
    scored: Optional[ScoredCandidates] = None
    scorer_name = None
    if rules.active:
        assert dense is not None and vectors is not None
        scorer = make_scorer(judge, vectors, cache, qtexts, inputs.corpus.texts)
        scorer_name = scorer.name
        scored = lazy_select(hits.indices, reasons, pos_lists, orders, config.num_negatives, scorer, rules, vectors,
                             config.score_all, progress, bm25_margin=found.bm25_margin,
                             cosine=BiEncoderScorer(vectors))
        reasons, picks = scored.reasons, scored.picks
        stats.pairs_scored, stats.positive_pairs_scored = scored.pairs_scored, scored.positive_pairs_scored
        stats.texts_encoded, stats.texts_cached = dense.encoded, dense.cached
    else:
        picks = take_first(orders, config.num_negatives)
    if config.output_format == "n-tuple":  # a pair short of N negatives has no row: none of its picks is written
        picks = [[p if len(p) == config.num_negatives else p[:0] for p in per_q] for per_q in picks]
    sel = _selection(mined, pos_lists, picks, hits)
    if scored is not None and rules.need_scores:
        _scores_from(sel, scored, mined)
    elif config.output_scores:
        _rescore(sel, retriever, qtexts, mined)
    table = build_table(sel, inputs.queries, inputs.corpus, config.output_format, config.num_negatives,
                        config.output_scores)
    table = select_columns(table, config.output_format, config.columns)
    seconds["filter+score+sample"] = time.perf_counter() - t

    _finish_stats(stats, config, inputs, hits, reasons, sel, table, scored if rules.need_scores else None,
                  scorer_name, mined, pos_lists)
    if stats.negatives_written == 0 and not config.allow_empty:
        raise EmptyResultError(_why_empty(stats))

    candidates_table = None
    if candidates_output is not None:
        judged = scored is not None and rules.need_scores
        candidates_table = build_candidates_table(inputs.queries, inputs.corpus, mined, hits, reasons, picks,
                                                  scored.scores if judged else None,  # type: ignore[union-attr]
                                                  scored.reference if judged else None)  # type: ignore[union-attr]
    metadata = provenance(config, inputs, stats, dense.encoder if dense is not None else None,
                          scorer.identity() if scored is not None and rules.need_scores else None,
                          rules.relative_margin)
    t = time.perf_counter()
    with progress.stage("writing output"):
        if candidates_table is not None:
            io.write_parquet(candidates_table, cand_path, metadata)  # type: ignore[arg-type]
        if out_path is not None:
            io.write_parquet(table, out_path, metadata)
    seconds["write"] = time.perf_counter() - t
    return MineResult(table, stats, metadata, out_path, seconds, warnings)


@dataclass
class IndexResult:
    """What ``build_index`` did."""

    index_dir: Path
    documents: int
    texts_encoded: int
    texts_cached: int
    bytes: int
    seconds: dict[str, float] = field(default_factory=dict)


def build_index(
    corpus: Union[Source, Corpus],
    index_dir: Source,
    *,
    config: Optional[MineConfig] = None,
    progress: Optional[Progress] = None,
    encoder: Optional[Encoder] = None,
    **options: Any,
) -> IndexResult:
    """Build the indexes a ``mine`` run with these settings needs for ``corpus`` into ``index_dir`` (created if
    missing): the retriever's, and the BM25 index the lexical-overlap and agreement rules read.

    ``mine(..., index_dir=index_dir)`` with the same corpus and settings then encodes and indexes nothing.
    Re-running it after the corpus changed encodes only the changed texts.
    """
    config = (config or MineConfig()).replace(**options) if options else (config or MineConfig())
    progress = progress or Progress()
    folder = Path(index_dir)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"--index-dir {folder} is a file, not a directory")
    prepare_cache_dir(folder, "--index-dir")
    t = time.perf_counter()
    with progress.stage("reading corpus"):
        c = corpus if isinstance(corpus, Corpus) else io.read_corpus(
            corpus, config.corpus_id_column, config.corpus_text_column, config.corpus_title_column)
    retriever = make_retriever(config, c, progress, folder, encoder)
    _bm25_part(retriever, config, c, folder, progress)
    dense = _dense_part(retriever)
    if dense is not None:
        dense.prepare()
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    return IndexResult(folder, len(c), dense.encoded if dense else 0, dense.cached if dense else 0, size,
                       {"index": time.perf_counter() - t})


def _retrieve(
    config: MineConfig, inputs: Inputs, mined: list[int], pos_lists: list[list[int]], cache: Path,
    encoder: Optional[Encoder], corpus_embeddings: Optional[Source], query_embeddings: Optional[Source],
    progress: Progress,
) -> tuple[Retriever, Optional[DenseRetriever], Hits]:
    """Build the retriever (with any precomputed vectors) and fetch every mined query's candidates."""
    corpus_vectors = query_vectors = None
    if corpus_embeddings is not None:
        inputs.files["corpus_embeddings"] = str(corpus_embeddings)
        corpus_vectors = read_embeddings(Path(corpus_embeddings), inputs.corpus.ids, "corpus")
    if query_embeddings is not None:
        inputs.files["query_embeddings"] = str(query_embeddings)
        query_vectors = read_embeddings(Path(query_embeddings), inputs.queries.ids, "query")[mined]
    if config.retriever == "bm25" and (corpus_vectors is not None or query_vectors is not None):
        raise ConfigError("--corpus-embeddings / --query-embeddings need --retriever dense or hybrid")
    retriever = make_retriever(config, inputs.corpus, progress, cache, encoder, corpus_vectors)
    dense = _dense_part(retriever)
    if dense is not None:
        dense.given_query_vectors = query_vectors
    depth = min(len(inputs.corpus), config.range_max + max(len(p) for p in pos_lists))
    hits = retriever.search([inputs.queries.texts[i] for i in mined], depth, progress)
    return retriever, dense, hits


def _finish_stats(
    stats: MineStats, config: MineConfig, inputs: Inputs, hits: Hits, reasons: np.ndarray, sel: Selection,
    table: pa.Table, scored: Optional[ScoredCandidates], scorer_name: Optional[str], mined: list[int],
    pos_lists: list[list[int]],
) -> None:
    """Fill in what the filters dropped, what was written, who came up short and why, and the score
    distributions."""
    stats.candidates_seen = int((hits.indices >= 0).sum())
    stats.dropped = filters.count_reasons(reasons)
    stats.not_scored = int((reasons == filters.NOT_SCORED).sum())
    stats.negatives_written = negatives_in(table, config.output_format)
    stats.rows_written = table.num_rows
    short = [r for r, n in enumerate(sel.negatives) if len(n) < config.num_negatives]
    short_q = sorted({int(sel.query[r]) for r in short})
    stats.short_pairs = len(short)
    stats.short_queries = len(short_q)
    stats.short_examples = [str(inputs.queries.ids[q]) for q in short_q[:3]]
    row_of = {q: r for r, q in enumerate(mined)}
    rows = np.array([row_of[q] for q in short_q], dtype=np.int64)
    if rows.size:
        for code in filters.dominant_drop(reasons[rows]):
            name = filters.REASONS[code] if code >= 0 else "no_candidates"
            stats.short_by_rule[name] = stats.short_by_rule.get(name, 0) + 1
        stats.short_weak_positive = int(filters.weak_positive(hits.indices[rows], [pos_lists[r] for r in rows]).sum())
    if scored is not None:
        dropped = np.isin(scored.reasons, filters.SCORE_RULES)
        stats.scores = score_summary(scorer_name or "", np.concatenate(scored.positive_scores),
                                     np.concatenate(sel.negative_scores) if sel.negative_scores else np.empty(0),
                                     scored.scores[dropped])


def _input_stats(inputs: Inputs, positives: Positives) -> MineStats:
    n_mined = sum(1 for p in positives.by_query if p)
    return MineStats(
        queries=len(inputs.queries),
        queries_mined=n_mined,
        queries_without_positives=len(inputs.queries) - n_mined,
        positives=positives.count,
        documents=len(inputs.corpus),
        qrels_rows=len(inputs.qrels.query_ids),
        qrels_nonpositive=positives.nonpositive_rows,
        qrels_unknown_query=positives.unknown_query_rows,
        qrels_unknown_doc=positives.unknown_doc_rows,
    )


def score_rules_of(config: MineConfig, judge_kind: Optional[str] = None) -> ScoreRules:
    """The score rules of the config; ``judge_kind`` resolves ``relative_margin="auto"`` (default: decided by
    whether ``--reranker`` is given)."""
    return ScoreRules(config.max_positive_similarity, config.max_score, config.min_score, config.absolute_margin,
                      config.relative_margin_for(judge_kind), config.margin_reference, config.agreement,
                      config.percentile_margin, config.percentile_floor, config.percentile_cap)


def _bm25_part(retriever: Retriever, config: MineConfig, corpus: Corpus, cache: Path, progress: Progress) -> Any:
    """The BM25 index the evidence rules read: the retriever's own, else one built (or found in the cache) for
    them; ``None`` when no rule needs it."""
    from negmine.bm25 import BM25Retriever
    from negmine.fusion import HybridRetriever

    if config.lexical_overlap is None and not config.agreement:
        return None
    if isinstance(retriever, BM25Retriever):
        return retriever
    if isinstance(retriever, HybridRetriever) and "bm25" in retriever.retrievers:
        return retriever.retrievers["bm25"]
    return BM25Retriever(config.bm25_k1, config.bm25_b, config.bm25_method, config.bm25_stemmer,
                         config.bm25_stopwords).index(corpus.texts, progress, cache)


def make_scorer(judge: Judge, vectors: Vectors, cache: Path, query_texts: list[str], doc_texts: list[str]) -> Scorer:
    """The scorer of a loaded judge: the cross-encoder, another bi-encoder (through the cache), or the retrieval
    bi-encoder's own vectors."""
    if judge.cross is not None:
        return judge.cross
    if judge.encoder is not None:
        return BiEncoderScorer(Vectors(DenseRetriever(judge.encoder, cache), query_texts, doc_texts))
    return BiEncoderScorer(vectors)


def _why_empty(stats: MineStats) -> str:
    """The message of a run that would write nothing: the rule that dropped most, and the knob to turn."""
    if stats.candidates_seen == stats.dropped.get("positive", 0):
        return ("no negatives written: no query retrieved a candidate besides its positives (BM25 needs words "
                "shared with the query: check the texts, or use --retriever dense or hybrid); --allow-empty writes "
                "an empty file anyway")
    rule, count = max(((r, n) for r, n in stats.dropped.items() if r != "positive"), key=lambda kv: kv[1])
    knobs = {"relative_margin": f"lower {flag('relative_margin')} (or none)",
             "absolute_margin": f"lower {flag('absolute_margin')} (or none)",
             "max_score": f"raise {flag('max_score')}", "min_score": f"lower {flag('min_score')}",
             "near_duplicate": f"raise {flag('max_positive_similarity')}",
             "rank_window": f"raise {flag('range_max')} or lower {flag('range_min')}",
             "positive": "the corpus holds little besides the positives: add documents",
             "duplicate_text": "the candidates repeat the positives' texts",
             "duplicate_candidate": "the candidates repeat each other's texts",
             "cross_query": f"raise {flag('cross_query')} (or none)",
             "lexical_overlap": f"raise {flag('lexical_overlap')} (or none)",
             "agreement": "--no-agreement",
             "percentile_gate": f"raise {flag('percentile_margin')} or {flag('percentile_cap')}"}
    return (f"no negatives written: every candidate was dropped, most by the {rule.replace('_', ' ')} rule "
            f"({count:,} of {stats.candidates_seen:,}); {knobs.get(rule, 'loosen that rule')}, or pass "
            "--allow-empty to write an empty file anyway")


def _index_dir_gaps(config: MineConfig, corpus: Corpus, folder: Path, encoder: Optional[Encoder],
                    vectors_given: bool) -> list[str]:
    """What an ``--index-dir`` lacks for this run (it will be built into it now), as warnings."""
    from negmine.bm25 import BM25Retriever, cached_settings

    gaps = []
    if config.retriever in ("bm25", "hybrid") or config.lexical_overlap is not None or config.agreement:
        bm25 = BM25Retriever(config.bm25_k1, config.bm25_b, config.bm25_method, config.bm25_stemmer,
                             config.bm25_stopwords)
        if not bm25.is_cached(corpus.texts, folder):
            held = "; ".join(cached_settings(folder)) or "none"
            gaps.append(f"--index-dir {folder}: no BM25 index of this corpus with these settings ({bm25.describe()}); "
                        f"building one there now (it holds: {held}). Build it ahead with negmine index and the same "
                        "options")
    if config.retriever != "bm25" and not vectors_given:
        dense = DenseRetriever(encoder or make_encoder(config), folder)
        missing = dense.missing(corpus.texts, "document")
        if missing:
            gaps.append(f"--index-dir {folder}: {missing:,} of {len(corpus):,} documents have no embedding there "
                        f"from this model; encoding them into it now (negmine index --retriever "
                        f"{config.retriever} builds them ahead)")
    return gaps


def _normalized_texts(corpus: Corpus, indices: np.ndarray, positives: list[list[int]]) -> dict[int, str]:
    """Normalised texts of the documents the duplicate rule compares (candidates and positives only)."""
    wanted = set(np.unique(indices[indices >= 0]).tolist())
    for p in positives:
        wanted.update(p)
    return {d: filters.normalize_text(corpus.texts[d]) for d in wanted}


def _scores_from(sel: Selection, scored: ScoredCandidates, mined: list[int]) -> None:
    """Reranker scores of the selected positives and negatives."""
    row_of = {q: r for r, q in enumerate(mined)}
    j_of: dict[int, int] = {}
    for i, q in enumerate(sel.query):
        row = row_of[int(q)]
        j = j_of.get(row, 0)
        j_of[row] = j + 1
        sel.positive_score[i] = scored.positive_scores[row][j]
        sel.negative_scores[i] = scored.scores[row, sel.negative_positions[i]]


def _selection(mined: list[int], pos_lists: list[list[int]], picks: list[list[np.ndarray]], hits: Hits) -> Selection:
    query, positive, negs, nscores, positions = [], [], [], [], []
    for row, q in enumerate(mined):
        for j, pos in enumerate(pos_lists[row]):
            cols = picks[row][j]
            query.append(q)
            positive.append(pos)
            negs.append(hits.indices[row, cols])
            nscores.append(hits.scores[row, cols])
            positions.append(cols)
    return Selection(np.array(query, dtype=np.int64), np.array(positive, dtype=np.int64),
                     np.full(len(query), np.nan, dtype=np.float32), negs, nscores, positions)


def _rescore(sel: Selection, retriever: Retriever, texts: list[str], mined: list[int]) -> None:
    """Score positives and negatives with the retriever's own pair score (BM25 score, or the bi-encoder's cosine
    for dense and hybrid, whose fused scores exist only for retrieved documents)."""
    row_of = {q: r for r, q in enumerate(mined)}
    docs: list[list[int]] = [[] for _ in mined]
    for i, q in enumerate(sel.query):
        docs[row_of[int(q)]].extend([int(sel.positive[i]), *map(int, sel.negatives[i])])
    scores = retriever.pair_scores(texts, docs)
    lookup = [dict(zip(d, s)) for d, s in zip(docs, scores)]
    for i, q in enumerate(sel.query):
        table = lookup[row_of[int(q)]]
        sel.positive_score[i] = table[int(sel.positive[i])]
        sel.negative_scores[i] = np.array([table[int(d)] for d in sel.negatives[i]], dtype=np.float32)


def resolve_cache_dir(cache_dir: Optional[Source], index_dir: Optional[Source]) -> Path:
    """The directory indexes and embeddings are cached in: ``index_dir`` (which must exist), ``cache_dir``, or
    the default cache."""
    from negmine.cache import default_cache_dir

    if index_dir is not None:
        if cache_dir is not None:
            raise ConfigError("give --index-dir or --cache-dir, not both")
        if not Path(index_dir).is_dir():
            raise ConfigError(f"--index-dir {index_dir}: no such directory; build it with negmine index")
        return Path(index_dir)
    return Path(cache_dir) if cache_dir is not None else default_cache_dir()


def provenance(config: MineConfig, inputs: Inputs, stats: MineStats, encoder: Optional[Encoder] = None,
               reranker: Optional[dict[str, Any]] = None, relative_margin: Optional[float] = None) -> dict[str, Any]:
    """What produced an output: negmine's and its libraries' versions, the config, input fingerprints, stats."""
    from importlib.metadata import PackageNotFoundError, version

    from negmine import __version__

    libs: dict[str, str] = {}
    for lib in ("bm25s", "pyarrow", "numpy", "faiss-cpu", "faiss-gpu", "sentence-transformers", "torch"):
        try:
            libs[lib] = version(lib)
        except PackageNotFoundError:  # an optional one (faiss-gpu, say) is not installed
            pass
    return {
        "negmine_version": __version__,
        "libraries": libs,
        "config": config.to_dict(),
        "resolved": {"relative_margin": relative_margin},
        "inputs": {role: {"path": path, "fingerprint": io.fingerprint(path)} for role, path in inputs.files.items()},
        "models": {"embedder": identity_record(encoder) if encoder is not None else None,
                   "reranker": reranker},
        # cache hits depend on what earlier runs left in the cache, not on the inputs: kept out of the file
        "stats": {k: v for k, v in stats.to_dict().items() if k not in ("texts_encoded", "texts_cached")},
    }
