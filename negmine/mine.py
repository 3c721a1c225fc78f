"""The mining pipeline, and the only module that knows the order of its stages:

```
plan      read the inputs (Arrow, memory-mapped), match qrels to rows, load the judge, build or open the indexes
calibrate score every positive once, when a rule reads the run's score distribution
per batch retrieve -> rules -> evidence -> lazy scoring -> sample  (a BatchResult, kept for a resumed run)
finish    lay each batch out as rows of the output (fixed row groups), merge the statistics, write the
          provenance, rename the files into place
```

Nothing per query outlives its batch but the statistics; a batch's result does not depend on the other queries of
its batch, so the output is the same bytes whatever the batch size, and after a resume.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np
import pyarrow as pa

from negmine import evidence, filters
from negmine.engine import Job, make_engine, remove_marker, write_marker
from negmine.errors import ConfigError, EmptyResultError, InputError, NegmineError
from negmine.inputs.beir import beir_files
from negmine.inputs.data import Corpus, Positives, Qrels, Queries, match_positives, take_rows
from negmine.inputs.read import Inputs, load_inputs, read_corpus
from negmine.inputs.vectors import read_embeddings
from negmine.output.candidates import build_candidates_table, build_false_negatives_table, candidate_columns
from negmine.output.files import check_outputs, read_output
from negmine.output.layouts import build_table, negatives_in, select_columns
from negmine.output.provenance import METADATA_KEY, provenance
from negmine.output.sinks import ParquetSink, open_sink
from negmine.progress import Progress
from negmine.report.stats import MineStats, score_summary
from negmine.report.summary import why_empty
from negmine.retrieve import build as retrievers
from negmine.retrieve.base import Retriever
from negmine.retrieve.build import _bm25_part, _dense_part, make_retriever
from negmine.retrieve.dense import DenseRetriever
from negmine.retrieve.encoders import Encoder, check_device, identity_record
from negmine.sampling.lazy import Prescored, ScoredCandidates, lazy_select, prescore
from negmine.sampling.orders import difficulty_bands, sampling_orders, simans_log_weights, take_first
from negmine.sampling.selection import judge_scores, retriever_scores, selection
from negmine.score import (
    BiEncoderScorer,
    Judge,
    MissingScore,
    PositiveProximity,
    PositiveSimilarity,
    Scorer,
    Scorers,
    ScoreRules,
    Vectors,
    load_judge,
)
from negmine.settings.config import NO_MODEL, MineConfig
from negmine.storage.cache import (
    cache_option,
    digest_of,
    prepare_cache_dir,
    read_only,
    read_only_error,
    resolve_cache_dir,
)
from negmine.storage.files import fingerprint
from negmine.storage.runs import RunStore
from negmine.write import BatchResult

logger = logging.getLogger("negmine")


Source = Union[str, Path]


#: Rows per row group of the output and of the candidates file.
OUTPUT_ROW_GROUP = 16384


CANDIDATES_ROW_GROUP = 65536


class MineResult:
    """What a run produced.

    Attributes:
        stats: Counts of what was read, dropped and written.
        metadata: The provenance stored in the output file.
        output: Where the table was written, if anywhere.
        seconds: Wall time per stage (not part of the provenance, so outputs stay byte-identical).
        warnings: What was warned about.
    """

    def __init__(self, table: Optional[pa.Table], stats: MineStats, metadata: dict[str, Any],
                 output: Optional[Path] = None, seconds: Optional[dict[str, float]] = None,
                 warnings: Optional[list[str]] = None, schema: Optional[pa.Schema] = None) -> None:
        self._table = table
        self.stats = stats
        self.metadata = metadata
        self.output = output
        self.seconds = seconds or {}
        self.warnings = warnings or []
        self._schema = schema

    @property
    def table(self) -> pa.Table:
        """The training table: the one kept in memory (no ``output``), else read back from ``output`` (a JSON Lines
        file with the column types it was written from; not possible for stdout)."""
        if self._table is None and self.output is not None:
            self._table = read_output(self.output, self._schema)
        assert self._table is not None
        return self._table


def uses_bi_encoder(config: MineConfig, rules: ScoreRules) -> bool:
    """Whether a run needs the retrieval bi-encoder: to retrieve, or for the rules, the judge or twin queries."""
    if config.model == NO_MODEL:
        return False
    return config.retriever != "bm25" or rules.active or rules.need_scores or judges_all(config) \
        or config.cross_query is not None


def judges_all(config: MineConfig) -> bool:
    """Whether the judge scores candidates ahead of sampling: every retrieved one (``--score-all``, for a complete
    candidates file) or those SimANS samples from."""
    return config.score_all or config.sampling_strategy == "simans"


@dataclass
class Run:
    """A run's plan: its inputs, the mined queries, and the stages made ready (indexes open, models loaded)."""

    config: MineConfig
    inputs: Inputs
    positives: Positives
    mined: np.ndarray  # input rows of the queries mined, in input order
    rules: ScoreRules
    judge: Judge
    retriever: Retriever
    dense: Optional[DenseRetriever]  # the retrieval bi-encoder (also for the rules), if any is needed
    bm25: Any  # the BM25 index the evidence rules read, if any
    given_queries: Optional[np.ndarray]  # --query-embeddings, one row per input query
    owners: evidence.Owners  # positives by document, over the mined queries
    query_hashes: np.ndarray  # a digest of each mined query's normalised text (twin queries)
    depth: int  # candidates retrieved per query
    cache: Path
    calibration: Optional[np.ndarray] = None  # the judge's scores of every positive, sorted
    dense_search: dict[str, Any] = field(default_factory=dict)  # an approximate index's setting and recall
    sources: Any = None  # where retrieval, evidence and scores come from (default: LiveSources)
    warnings: list[str] = field(default_factory=list)
    doc_digests: Optional[np.ndarray] = None  # per document, a digest of its normalised text (0: not computed yet)
    seconds: dict[str, float] = field(default_factory=dict)  # time per stage, summed over the batches

    def __post_init__(self) -> None:
        if self.sources is None:
            self.sources = LiveSources()


def mine(
    corpus: Union[Source, Corpus, None] = None,
    queries: Union[Source, Queries, None] = None,
    qrels: Union[Source, Qrels, None] = None,
    *,
    pairs: Union[Source, Sequence[tuple[str, str]], None] = None,
    beir: Optional[Source] = None,
    split: Optional[str] = None,
    output: Optional[Source] = None,
    config: Optional[MineConfig] = None,
    progress: Optional[Progress] = None,
    cache_dir: Optional[Source] = None,
    index_dir: Optional[Source] = None,
    corpus_embeddings: Optional[Source] = None,
    query_embeddings: Optional[Source] = None,
    encoder: Optional[Encoder] = None,
    candidates_output: Optional[Source] = None,
    false_negatives_output: Optional[Source] = None,
    explicit: Optional[Sequence[str]] = None,
    **options: Any,
) -> MineResult:
    """Mine hard negatives: retrieve candidates for each query, drop its positives and likely false negatives,
    sample, lay out for training.

    Args:
        corpus: Corpus file (or a ``Corpus``): Parquet, or JSON Lines, CSV or TSV by its name (``.jsonl``,
            ``.csv``, ``.tsv``, each optionally ``.gz``).
        queries: Query file, likewise (or ``Queries``).
        qrels: Relevance judgments file, likewise (or ``Qrels``); rows with score <= 0 are not positives.
        pairs: Instead of queries and qrels: a file (or a list) of (anchor, positive) text pairs; the corpus then
            defaults to the positives.
        beir: Instead of corpus, queries and qrels: a BEIR folder (``corpus.jsonl``, ``queries.jsonl``,
            ``qrels/SPLIT.tsv``).
        split: The qrels split of ``beir`` (default ``train``).
        output: Where to write the output (atomically), in the format its name says: ``.parquet``, ``.jsonl`` or
            ``.jsonl.gz`` (provenance in ``OUT.provenance.json``); ``"-"`` writes JSON Lines to stdout. ``None``
            keeps the table in memory.
        config: Settings; ``options`` override its fields by name (``num_negatives=10``).
        progress: Receives progress reports; the default shows nothing.
        cache_dir: Where embeddings, indexes, the inputs' Arrow copies and unfinished runs are kept (default:
            ``$NEGMINE_CACHE_DIR`` or the XDG cache).
        index_dir: A directory built by ``negmine index``; used as the cache (it must exist).
        corpus_embeddings: Precomputed corpus vectors: ``.npy`` in corpus row order, or Parquet with an id and a
            vector column.
        query_embeddings: Precomputed query vectors, likewise (``.npy`` in query row order; for pairs, in order
            of first appearance of each distinct anchor).
        encoder: An ``Encoder`` to use instead of loading ``config.model`` (tests use a fake one).
        candidates_output: Parquet path for an audit of every candidate: its ranks and scores, and whether it
            was selected, kept, not scored, or which rule dropped it; with ``score_all``, every value
            ``refilter`` needs.
        false_negatives_output: Path for the candidates dropped as likely false negatives, in qrels form
            (``query-id``, ``corpus-id``, ``score`` = 1) with the rule that dropped each and its scores: Parquet,
            or JSON Lines for a ``.jsonl`` or ``.jsonl.gz`` name.
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
    for message in config.ineffective(set(options) if explicit is None else explicit):
        _warn(warnings, message)
    config = config.for_run()
    folder: Optional[dict[str, str]] = None
    if beir is not None:
        if any(x is not None for x in (corpus, queries, qrels, pairs)):
            raise ConfigError("--beir stands for --corpus, --queries and --qrels: give either the BEIR folder or "
                              "the files")
        files = beir_files(beir, split if split is not None else "train")
        corpus, queries, qrels = files["corpus"], files["queries"], files["qrels"]
        folder = {"folder": str(beir), "split": split if split is not None else "train"}
    elif split is not None:
        raise ConfigError("--split chooses the qrels of a --beir folder: give --beir DIR, or drop --split")
    paths = [x for x in (corpus, queries, qrels, pairs, corpus_embeddings, query_embeddings)
             if isinstance(x, (str, Path))]
    out_path, cand_path, fn_path = check_outputs(output, candidates_output, false_negatives_output, paths)
    if "score_all" in (set(options) if explicit is None else explicit) and cand_path is None \
            and not score_rules_of(config).need_scores:
        _warn(warnings, "--score-all has no effect without --candidates-output and without a score rule (margins, "
                        "--max-score, --min-score, --percentile-cap)")
    cache = prepare_cache_dir(resolve_cache_dir(cache_dir, index_dir), cache_option(cache_dir, index_dir))
    engine = make_engine(config)
    job = Job(config, corpus, queries, qrels, pairs, cache, encoder, corpus_embeddings, query_embeddings,
              cand_path is not None, marker=write_marker(cache) if engine.name == "ray" else None, beir=folder)
    try:
        return _mine(job, engine, out_path, cand_path, fn_path, index_dir is not None, progress, seconds, warnings)
    finally:
        remove_marker(cache, job.marker)
        engine.close()


def _mine(job: Job, engine: Any, out_path: Optional[Path], cand_path: Optional[Path], fn_path: Optional[Path],
          index_dir: bool, progress: Progress, seconds: dict[str, float], warnings: list[str]) -> MineResult:
    """``mine`` once its options are checked and its engine ready: plan, then batches, then finish."""
    config, cache = job.config, job.cache
    t = time.perf_counter()
    run, stats = plan(config, job.corpus, job.queries, job.qrels, job.pairs, cache, job.encoder,
                      job.corpus_embeddings, job.query_embeddings, index_dir, progress, warnings, engine=engine,
                      job=job)
    job.calibration, job.dense_search = run.calibration, run.dense_search
    run.inputs.beir = job.beir
    seconds["plan"] = time.perf_counter() - t
    store = RunStore(cache, run_key(run, cand_path is not None) if config.resume else None)
    if not config.resume:
        RunStore(cache, run_key(run, cand_path is not None)).clear()
    return run_batches(run, stats, store, Sinks(out_path, cand_path, fn_path),
                       lambda todo, inner: engine.results(job, run, todo, inner), engine.name, progress, seconds,
                       warnings)


def run_batches(run: Run, stats: MineStats, store: RunStore, sinks: "Sinks", results: Any, engine: str,
                progress: Progress, seconds: dict[str, float], warnings: list[str]) -> MineResult:
    """Mine a planned run's query batches (``results(todo, progress)`` yields the results of the batches not kept
    by ``store``, in order), write them to ``sinks`` in query order, then the provenance; the files are renamed
    into place only when everything succeeded. The batches kept in ``store`` are removed once the files are in
    place, and when the run fails with a NegmineError (an empty result refused, a full disk, a closed pipe): only
    an interrupted, killed or crashed run leaves them to resume from."""
    config = run.config
    positive_scores: list[np.ndarray] = []
    negative_scores: list[np.ndarray] = []
    dropped_scores: list[np.ndarray] = []
    try:
        t = time.perf_counter()
        batches = np.array_split(np.arange(len(run.mined)), max(1, -(-len(run.mined) // config.query_batch_size)))
        kept: dict[int, tuple[dict[str, np.ndarray], dict[str, Any]]] = {}
        if store.finished():
            for i in range(len(batches)):
                stored = store.load(i)
                if stored is not None:
                    kept[i] = stored
        if kept:
            _warn(warnings, f"resuming an interrupted run: {len(kept):,} of {len(batches):,} query batches were "
                            "finished before (--no-resume starts over)")
        inner, outer = (progress, Progress()) if len(batches) == 1 and engine == "local" else (Progress(), progress)
        todo = [(i, positions) for i, positions in enumerate(batches) if i not in kept]
        computed = results(todo, inner)
        with outer.stage(f"mining query batches ({engine})", total=len(run.mined)) as advance:
            for i, positions in enumerate(batches):
                if i in kept:
                    result = BatchResult.from_store(*kept.pop(i))
                else:
                    result = next(computed)
                    store.save(i, *result.to_store())
                sinks.write(result, run)
                stats.add(result.stats)
                positive_scores.append(result.positive_scores)
                negative_scores.extend(result.selection.negative_scores)
                dropped_scores.append(result.dropped_scores)
                advance(len(positions))
        seconds["mine"] = time.perf_counter() - t
        seconds.update({f"mine: {k}": v for k, v in run.seconds.items()})
        if run.rules.need_scores:
            stats.scores = score_summary(run.sources.judge_name(run), _concat(positive_scores),
                                         _concat(negative_scores), _concat(dropped_scores))
        if run.dense is not None:
            stats.texts_encoded, stats.texts_cached = run.dense.encoded, run.dense.cached
        stats.dense_search = dict(run.dense_search)
        if stats.negatives_written == 0 and not config.allow_empty:
            raise EmptyResultError(why_empty(stats))
        metadata = provenance(config, run.inputs.files, stats, run.sources.embedder_identity(run),
                              run.sources.judge_identity(run, always=config.sampling_strategy == "simans"),
                              run.rules.relative_margin, run.inputs.beir)
        t = time.perf_counter()
        with progress.stage("writing output"):
            table = sinks.commit(metadata, run)
        seconds["write"] = time.perf_counter() - t
    except BaseException as exc:
        sinks.abort()
        if isinstance(exc, NegmineError):  # a run that failed on its own terms (refused, disk full) starts over;
            store.clear()  # one that was interrupted, killed or crashed resumes
        raise
    store.clear()
    warnings.extend(run.warnings)
    return MineResult(table, stats, metadata, sinks.output_path, seconds, warnings, sinks.schema)


def read_inputs(config: MineConfig, corpus: Any, queries: Any, qrels: Any, pairs: Any, cache: Optional[Path],
                progress: Progress, warnings: list[str]) -> tuple[Inputs, Positives, np.ndarray, MineStats]:
    """Read the inputs and match the qrels to them (no model): the inputs, the positives, the rows of the queries
    to mine (those with positives and a text) and the input statistics."""
    from negmine.report.stats import input_stats

    with progress.stage("reading inputs"):
        inputs = load_inputs(config, corpus, queries, qrels, pairs, cache)
        positives = match_positives(inputs.qrels, inputs.queries, inputs.corpus, config.strict)
    if positives.unknown_query_rows or positives.unknown_doc_rows:
        _warn(warnings, f"{inputs.qrels.source}: skipped {positives.unknown_query_rows:,} rows naming unknown queries "
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
        _warn(warnings, f"{where}: the query text is empty; skipped {len(empty):,} such queries (--strict makes this "
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


def plan(
    config: MineConfig, corpus: Any, queries: Any, qrels: Any, pairs: Any, cache: Path, encoder: Optional[Encoder],
    corpus_embeddings: Optional[Source], query_embeddings: Optional[Source], index_dir: bool, progress: Progress,
    warnings: list[str], engine: Any = None, job: Optional[Job] = None, prepass: bool = True,
) -> tuple[Run, MineStats]:
    """Read the inputs, match the qrels, check the options against them, load the judge, make the indexes ready
    (the corpus encoded by ``engine`` first, on a cluster), and (``prepass``) choose an approximate index's setting
    and calibrate: everything that happens once per run. A Ray worker plans without the pre-passes and takes their
    results from the driver's ``Job``."""
    inputs, positives, mined, stats = read_inputs(config, corpus, queries, qrels, pairs, cache, progress, warnings)
    n_docs = len(inputs.corpus)

    rules = score_rules_of(config)
    judged = rules.need_scores or judges_all(config)
    if config.retriever != "bm25" or rules.active or judged or config.reranker or config.cross_query is not None:
        check_device(config.device)
    judge = load_judge(config.reranker, lambda model: retrievers.make_encoder(config, model), [], [],
                       config.reranker_batch_size, config.reranker_max_length, config.device, config.precision) \
        if judged else Judge()
    rules = score_rules_of(config, judge.kind)
    if index_dir or read_only(cache):
        gaps = _index_dir_gaps(config, inputs.corpus, cache, encoder, corpus_embeddings is not None, rules)
        if gaps and read_only(cache):  # before any work: what this run would have to write there
            raise read_only_error(cache, gaps[0][0])
        for what, advice in gaps:
            _warn(warnings, f"--index-dir {cache} lacks the {what}: building it there now. {advice}")

    corpus_vectors = given = None
    if corpus_embeddings is not None:
        inputs.files["corpus_embeddings"] = str(corpus_embeddings)
        corpus_vectors = read_embeddings(Path(corpus_embeddings), inputs.corpus.ids, "corpus")
    if query_embeddings is not None:
        inputs.files["query_embeddings"] = str(query_embeddings)
        given = read_embeddings(Path(query_embeddings), inputs.queries.ids, "query")
    if config.retriever == "bm25" and (corpus_vectors is not None or given is not None):
        raise ConfigError("--corpus-embeddings / --query-embeddings need --retriever dense or hybrid")
    if engine is not None and engine.name == "ray" and job is not None and config.retriever != "bm25" \
            and corpus_vectors is None:
        engine.encode_corpus(job, inputs.corpus.texts, encoder or retrievers.make_encoder(config), progress)
    retriever = make_retriever(config, inputs.corpus, progress, cache, encoder, corpus_vectors)
    dense = _dense_part(retriever)
    if dense is None and uses_bi_encoder(config, rules):
        dense = DenseRetriever(encoder or retrievers.make_encoder(config), cache, config.faiss_index, config.device)
    bm25 = _bm25_part(retriever, config, inputs.corpus, cache, progress)
    with progress.stage("planning"):
        owners = evidence.Owners.of([positives.of(int(q)).tolist() for q in mined], n_docs)
        hashes = _text_hashes(inputs.queries, mined) if config.cross_query is not None or config.score_all \
            else np.empty(0, np.uint64)
    run = Run(config, inputs, positives, mined, rules, judge, retriever, dense, bm25, given, owners, hashes,
              depth_of(config, positives, mined, n_docs), cache)
    if _dense_part(retriever) is not None and prepass:
        tune_dense_search(run, progress)
    if rules.percentile_gate and prepass:
        run.calibration = calibrate(run, progress)
    return run, stats


def tune_dense_search(run: Run, progress: Progress) -> None:
    """With an approximate faiss index, choose its setting (nprobe, efSearch) once, from a seeded sample of all
    the run's queries, so that the output does not depend on the query batches or on which worker mined them;
    the measured recall goes into the summary and the provenance."""
    assert run.dense is not None
    if run.dense.factory() is None:
        return
    from negmine.retrieve.dense import RECALL_SAMPLE

    rows = np.sort(np.random.default_rng(0).choice(run.mined, size=min(RECALL_SAMPLE, len(run.mined)),
                                                   replace=False))
    with progress.stage("measuring the approximate index's recall"):
        if run.given_queries is not None:
            vectors = run.given_queries[rows]
        else:  # counted as encoded (or cached) here, once: the batches look them up again without counting them
            vectors = run.dense.embed(run.inputs.queries.texts.take(rows), "query")
        report = run.dense.tune(vectors, run.depth, progress)
    if report is not None:
        run.dense_search = {k: v for k, v in report.items() if k != "seconds"}


def calibrate(run: Run, progress: Progress) -> np.ndarray:
    """The judge's scores of every positive of the run, sorted: what the percentile gate compares with."""
    scores = []
    with progress.stage("calibrating: scoring every positive", total=len(run.mined)) as advance:
        for positions in np.array_split(np.arange(len(run.mined)),
                                        max(1, -(-len(run.mined) // run.config.query_batch_size))):
            rows = run.mined[positions]
            texts = run.inputs.queries.texts.take(rows)
            scorer = make_scorer(run, texts, _vectors(run, texts, rows))
            pos = [run.positives.of(int(q)) for q in rows]
            q = np.concatenate([np.full(len(p), i) for i, p in enumerate(pos)]).astype(np.int64)
            scores.append(scorer.score(q, np.concatenate(pos).astype(np.int64)))
            advance(len(rows))
    return np.sort(_concat(scores).astype(np.float64))


def mine_batch(run: Run, positions: np.ndarray, audit: bool, progress: Progress) -> BatchResult:
    """One query batch through retrieval, the rules, lazy scoring and sampling (``positions``: into
    ``run.mined``). The result of a query depends on that query alone, not on the others of its batch."""
    config, sources = run.config, run.sources
    rows = run.mined[positions]
    qtexts = run.inputs.queries.texts.take(rows)
    pos_lists = [run.positives.of(int(q)).tolist() for q in rows]

    clock = _Clock(run.seconds)
    hits = sources.search(run, rows, qtexts, progress)
    clock("retrieve")
    normalized = _normalized_texts(run, hits.indices, pos_lists)
    reasons = filters.apply_rules(hits.indices, pos_lists, config.range_min, config.range_max, normalized)
    with progress.stage("gathering evidence"):
        found = sources.evidence(run, hits.indices, positions, pos_lists, qtexts)
    reasons = filters.evidence_rules(reasons, found.twin_similarity, config.cross_query, found.overlap,
                                     config.lexical_overlap)
    bm25_margin = found.bm25_margin(config.margin_reference) if config.agreement else None
    clock("rules and evidence")

    judge = cosine = similarity = proximity = None
    if run.rules.active or judges_all(config):
        judge, cosine, similarity, proximity = sources.scorers(run, rows, qtexts, pos_lists)
    prescored: Optional[Prescored] = None
    if judges_all(config):  # score ahead: everything retrieved (--score-all), or what SimANS samples from
        assert judge is not None
        cells = (hits.indices >= 0) & (reasons != filters.POSITIVE) if config.score_all else reasons == filters.KEPT
        prescored = prescore(hits.indices, cells, pos_lists, judge,
                             cosine if config.score_all or (config.agreement and bm25_margin is not None) else None,
                             similarity if config.score_all or config.max_positive_similarity is not None else None,
                             progress,
                             proximity=proximity if config.score_all or config.positive_proximity is not None
                             else None)
        judge, cosine, similarity, proximity = prescored.scorers(hits.indices, pos_lists, judge.name, rows)
    kept = [np.flatnonzero(row == filters.KEPT) for row in reasons]
    log_weights = None
    if config.sampling_strategy == "simans":
        assert prescored is not None
        log_weights = [[simans_log_weights(prescored.judge[i, cols], s_pos, config.simans_a, config.simans_b)
                        for s_pos in prescored.positive_judge[i]] for i, cols in enumerate(kept)]
    orders = sampling_orders(kept, [len(p) for p in pos_lists], config.sampling_strategy, config.seed, rows,
                             log_weights)
    scored: Optional[ScoredCandidates] = None
    if run.rules.active:
        assert judge is not None
        scored = lazy_select(hits.indices, reasons, pos_lists, orders, config.num_negatives, judge, run.rules,
                             None, config.score_all, progress, bm25_margin=bm25_margin,
                             cosine=cosine, calibration=run.calibration, similarity=similarity,
                             proximity=proximity)
        reasons, picks = scored.reasons, scored.picks
    else:
        picks = take_first(orders, config.num_negatives)
    if config.output_format == "n-tuple":  # a pair short of N negatives has no row: none of its picks is written
        picks = [[p if len(p) == config.num_negatives else p[:0] for p in per_q] for per_q in picks]

    false_negatives = [np.flatnonzero(np.isin(row, filters.FALSE_NEGATIVE_RULES)) for row in reasons]
    out_positives, out_picks = pos_lists, picks
    if config.promote_false_negatives:  # extra positives, with the negatives of the query's first positive
        out_positives = [p + hits.indices[i, cols].tolist() for i, (p, cols) in
                         enumerate(zip(pos_lists, false_negatives))]
        out_picks = [per_q + [per_q[0]] * len(cols) for per_q, cols in zip(picks, false_negatives)]
    sel = selection(rows, out_positives, out_picks, hits)
    if config.difficulty_bands is not None:
        ranks = filters.rank_among((hits.indices >= 0) & ~filters.positive_mask(hits.indices, pos_lists))
        row_of = {int(q): i for i, q in enumerate(rows)}
        sel.negative_bands = [difficulty_bands(ranks[row_of[int(q)], cols], config.range_min, config.range_max,
                                               config.difficulty_bands)
                              for q, cols in zip(sel.query, sel.negative_positions)]
    judged = scored is not None and run.rules.need_scores
    judge_values = prescored.judge if prescored is not None else scored.scores if judged else None  # type: ignore
    positive_judge = prescored.positive_judge if prescored is not None else \
        scored.positive_scores if judged else None  # type: ignore[union-attr]
    if judged:
        assert judge_values is not None and positive_judge is not None
        if config.promote_false_negatives:  # a promoted positive's score is its score as a candidate
            positive_judge = [np.concatenate([pj, judge_values[i, cols]]).astype(np.float32)
                              for i, (pj, cols) in enumerate(zip(positive_judge, false_negatives))]
        judge_scores(sel, judge_values, positive_judge)
    elif config.output_scores:
        retriever_scores(sel, lambda docs: sources.pair_scores(run, rows, qtexts, docs))

    clock("score and sample")

    from negmine.report.stats import batch_stats

    stats = batch_stats(config, run.inputs.queries, hits, reasons, sel, scored, rows, pos_lists)
    stats.promoted_positives = int(sum(len(c) for c in false_negatives)) if config.promote_false_negatives else 0
    if prescored is not None:
        stats.pairs_scored, stats.positive_pairs_scored = prescored.pairs, prescored.positive_pairs
    dropped = np.isin(reasons, filters.SCORE_RULES)
    fn_rows = np.repeat(np.arange(len(rows)), [len(c) for c in false_negatives])
    fn_cols = np.concatenate(false_negatives).astype(np.int64) if false_negatives else np.empty(0, np.int64)
    fn = {"query": rows[fn_rows].astype(np.int64), "doc": hits.indices[fn_rows, fn_cols].astype(np.int64),
          "rank": fn_cols.astype(np.int32), "status": reasons[fn_rows, fn_cols].astype(np.int8),
          "judge_score": (judge_values[fn_rows, fn_cols] if judge_values is not None
                          else np.full(len(fn_cols), np.nan)).astype(np.float32)}
    candidates = None
    if audit:
        extras = _audit_values(run, found, prescored, scored, hits, rows, qtexts, pos_lists)
        candidates = candidate_columns(rows, hits, reasons, picks, judge_values,
                                       scored.reference if judged else None,  # type: ignore[union-attr]
                                       pos_lists, positive_judge, extras)
    return BatchResult(
        sel, stats,
        _concat(scored.positive_scores) if judged else np.empty(0, np.float32),  # type: ignore[union-attr]
        scored.scores[dropped] if judged else np.empty(0, np.float32),  # type: ignore[union-attr]
        candidates, fn)


def _audit_values(run: Run, found: evidence.Evidence, prescored: Optional[Prescored],
                  scored: Optional[ScoredCandidates], hits: Any, rows: np.ndarray, qtexts: Sequence[str],
                  pos_lists: list[list[int]]) -> dict[str, tuple[np.ndarray, Sequence[np.ndarray]]]:
    """The values the candidates file keeps beside the judge's scores, as (per candidate, per positive) pairs:
    the evidence gathered, the cosines scored (ahead, or as lazy scoring reached them), and (``--score-all``)
    the retriever's own pair scores."""
    def none_for_positives(values: np.ndarray) -> tuple[np.ndarray, Sequence[np.ndarray]]:
        return values, [np.full(len(p), np.nan, np.float32) for p in pos_lists]

    out: dict[str, tuple[np.ndarray, Sequence[np.ndarray]]] = {}
    if found.bm25_scores is not None and found.bm25_positive is not None:
        out["bm25_score"] = (found.bm25_scores, found.bm25_positive)
    if found.twin_similarity is not None:
        out["twin_similarity"] = none_for_positives(found.twin_similarity)
    if found.overlap is not None:
        out["lexical_overlap"] = none_for_positives(found.overlap)
    if prescored is not None:
        if prescored.cosine is not None and prescored.positive_cosine is not None:
            out["cosine"] = (prescored.cosine, prescored.positive_cosine)
        if prescored.similarity is not None:
            out["positive_similarity"] = none_for_positives(prescored.similarity)
        if prescored.proximity is not None:
            out["positive_proximity"] = none_for_positives(prescored.proximity)
    elif scored is not None:
        if scored.cosines is not None and run.config.agreement and found.bm25_scores is not None:
            out["cosine"] = (scored.cosines, scored.positive_cosines)
        if scored.similarities is not None and run.rules.max_positive_similarity is not None:
            out["positive_similarity"] = none_for_positives(scored.similarities)
        if scored.proximities is not None and run.rules.positive_proximity is not None:
            out["positive_proximity"] = none_for_positives(scored.proximities)
    if run.config.score_all:
        docs = [p + row[row >= 0].tolist() for p, row in zip(pos_lists, hits.indices)]
        scores = run.sources.pair_scores(run, rows, qtexts, docs)
        values = np.full(hits.indices.shape, np.nan, np.float32)
        positives = []
        for i, (p, row, s) in enumerate(zip(pos_lists, hits.indices, scores)):
            s = np.asarray(s, dtype=np.float32)
            positives.append(s[: len(p)])
            values[i, row >= 0] = s[len(p) :]
        out["pair_score"] = (values, positives)
    return out


class LiveSources:
    """Where a mining run's values come from: its retriever, the evidence gathered from the indexes and inputs,
    and the judge, scoring as it goes. (``negmine.stored.StoredSources`` reads them back from a candidates file.)"""

    def search(self, run: Run, rows: np.ndarray, qtexts: Sequence[str], progress: Progress) -> Any:
        if run.dense is not None:
            run.dense.given_query_vectors = run.given_queries[rows] if run.given_queries is not None else None
        return run.retriever.search(qtexts, run.depth, progress)

    def evidence(self, run: Run, indices: np.ndarray, positions: np.ndarray, pos_lists: list[list[int]],
                 qtexts: Sequence[str]) -> evidence.Evidence:
        """The evidence the enabled rules read (every kind with ``--score-all``, for the candidates file)."""
        config = run.config
        everything = config.score_all
        cross = (config.cross_query is not None or everything) and run.dense is not None
        return evidence.gather(
            indices, positions, pos_lists, bm25=run.bm25, query_texts=qtexts, doc_texts=run.inputs.corpus.texts,
            owners=run.owners, normalized_queries=run.query_hashes,
            query_vectors=(lambda p: _query_vectors(run, p)) if cross else None,
            cross_query=config.cross_query is not None or everything,
            lexical=config.lexical_overlap is not None or everything, agreement=config.agreement or everything)

    def scorers(self, run: Run, rows: np.ndarray, qtexts: Sequence[str], pos_lists: list[list[int]]) -> Scorers:
        """The judge, the retrieval bi-encoder's cosine, the cosine to the positives and the positive proximity,
        for a batch."""
        vectors = _vectors(run, qtexts, rows)
        assert vectors is not None
        return (make_scorer(run, qtexts, vectors), BiEncoderScorer(vectors), PositiveSimilarity(vectors, pos_lists),
                PositiveProximity(vectors, pos_lists))

    def pair_scores(self, run: Run, rows: np.ndarray, qtexts: Sequence[str], docs: list[list[int]]
                    ) -> list[np.ndarray]:
        """The retriever's own scores of given documents for each of a batch's queries (after its search)."""
        return run.retriever.pair_scores(list(qtexts), docs)

    def judge_name(self, run: Run) -> str:
        return run.judge.cross.name if run.judge.cross is not None else "bi-encoder"

    def embedder_identity(self, run: Run) -> Optional[dict[str, Any]]:
        return identity_record(run.dense.encoder) if run.dense is not None and run.dense.encoder else None

    def judge_identity(self, run: Run, always: bool = False) -> Optional[dict[str, Any]]:
        """The judge, as the provenance records it: ``None`` when no rule read its scores (unless ``always``)."""
        if not run.rules.need_scores and not always:
            return None
        if run.judge.cross is not None:
            return run.judge.cross.identity()
        encoder = run.judge.encoder or (run.dense.encoder if run.dense is not None else None)
        return {"type": "bi-encoder", "model": identity_record(encoder) if encoder else None}


class Sinks:
    """Where the batches' rows go: the output and the false-negatives file, each in the format its name says
    (Parquet in fixed row groups, or JSON Lines) into a temporary file, or the output as JSON Lines to stdout
    (``-``); the candidates file, always Parquet (``refilter`` reads it back); without an output path, the rows
    kept in memory."""

    def __init__(self, output: Optional[Path], candidates: Optional[Path],
                 false_negatives: Optional[Path] = None) -> None:
        self.output_path = output
        self.output: Any = None
        self.candidates: Optional[ParquetSink] = None
        self.false_negatives: Any = None
        try:
            self.output = open_sink(output, OUTPUT_ROW_GROUP) if output is not None else None
            self.candidates = ParquetSink(candidates, CANDIDATES_ROW_GROUP) if candidates is not None else None
            self.false_negatives = open_sink(false_negatives, CANDIDATES_ROW_GROUP) \
                if false_negatives is not None else None
        except BaseException:
            self.abort()
            raise
        self.tables: list[pa.Table] = []
        self.schema: Optional[pa.Schema] = None  # of the output's rows

    def write(self, result: BatchResult, run: Run) -> None:
        config, inputs = run.config, run.inputs
        table = select_columns(build_table(result.selection, inputs.queries, inputs.corpus, config.output_format,
                                           config.num_negatives, config.output_scores, config.prompt),
                               config.output_format, config.columns)
        assert result.stats.negatives_written == negatives_in(table, config.output_format)
        if self.schema is None:
            self.schema = table.schema
        if self.output is not None:
            self.output.write(table)
        else:
            self.tables.append(table)
        if self.candidates is not None and result.candidates is not None:
            self.candidates.write(build_candidates_table(result.candidates, inputs.queries, inputs.corpus))
        if self.false_negatives is not None and result.false_negatives is not None:
            self.false_negatives.write(build_false_negatives_table(result.false_negatives, inputs.queries,
                                                                   inputs.corpus))

    def commit(self, metadata: dict[str, Any], run: Run) -> Optional[pa.Table]:
        """Publish the files; the in-memory table when there is no output file."""
        out_empty = select_columns(build_table(_empty_selection(), run.inputs.queries, run.inputs.corpus,
                                               run.config.output_format, run.config.num_negatives,
                                               run.config.output_scores, run.config.prompt),
                                   run.config.output_format, run.config.columns)
        if self.schema is None:
            self.schema = out_empty.schema
        if self.candidates is not None:
            self.candidates.commit({**metadata, "candidates": candidates_record(run)})
        if self.false_negatives is not None:
            self.false_negatives.commit(metadata, build_false_negatives_table(None, run.inputs.queries,
                                                                              run.inputs.corpus))
        if self.output is not None:
            self.output.commit(metadata, out_empty)
            return None
        table = pa.concat_tables(self.tables) if self.tables else out_empty
        meta = dict(table.schema.metadata or {})
        meta[METADATA_KEY] = json.dumps(metadata, sort_keys=True, default=str).encode("utf-8")
        return table.replace_schema_metadata(meta)

    def abort(self) -> None:
        for sink in (self.output, self.candidates, self.false_negatives):
            if sink is not None:
                sink.abort()


def candidates_record(run: Run) -> dict[str, Any]:
    """What a candidates file holds, in its metadata: the retrieval depth, whether every candidate was scored,
    and the judge that scored (``negmine refilter`` reads them back)."""
    return {"depth": run.depth, "score_all": run.config.score_all,
            "judge": run.sources.judge_identity(run, always=True) if judges_all(run.config)
            or run.rules.need_scores else None,
            "judge_kind": run.judge.kind, "judge_name": run.sources.judge_name(run)}


def run_key(run: Run, audit: bool) -> Optional[str]:
    """What identifies a run for resuming it: negmine's version, the settings, the inputs' fingerprints and the
    models; ``None`` (no resuming) when an input is an in-memory object."""
    from negmine.version import __version__

    if "corpus" not in run.inputs.files and "pairs" not in run.inputs.files:
        return None
    if "pairs" not in run.inputs.files and not {"queries", "qrels"} <= set(run.inputs.files):
        return None
    settings = run.config.to_dict()
    settings.pop("resume")
    settings.pop("allow_empty")
    parts = {
        "version": __version__, "config": settings, "audit": audit,
        "inputs": {role: fingerprint(path) for role, path in sorted(run.inputs.files.items())},
        "embedder": identity_record(run.dense.encoder) if run.dense is not None and run.dense.encoder else None,
        "judge": run.sources.judge_identity(run, always=True) if judges_all(run.config) or run.rules.need_scores
        else None,
    }
    return digest_of(json.dumps(parts, sort_keys=True, default=str))[:32]


def score_rules_of(config: MineConfig, judge_kind: Optional[str] = None) -> ScoreRules:
    """The score rules of the config; ``judge_kind`` resolves ``relative_margin="auto"`` (default: decided by
    whether ``--reranker`` is given)."""
    return ScoreRules(config.max_positive_similarity, config.max_score, config.min_score, config.absolute_margin,
                      config.relative_margin_for(judge_kind), config.margin_reference, config.agreement,
                      config.percentile_margin, config.percentile_floor, config.percentile_cap,
                      config.positive_proximity)


def make_scorer(run: Run, query_texts: Sequence[str], vectors: Optional[Vectors]) -> Scorer:
    """The judge's scorer for a batch of queries: the cross-encoder, another bi-encoder (through the cache), or
    the retrieval bi-encoder's own vectors."""
    if run.judge.cross is not None:
        return run.judge.cross.for_texts(query_texts, run.inputs.corpus.texts)
    if run.judge.encoder is not None:
        return BiEncoderScorer(Vectors(DenseRetriever(run.judge.encoder, run.cache), query_texts,
                                       run.inputs.corpus.texts))
    assert vectors is not None
    return BiEncoderScorer(vectors)


def refilter(
    candidates: Source,
    output: Optional[Source] = None,
    *,
    corpus: Union[Source, Corpus, None] = None,
    queries: Union[Source, Queries, None] = None,
    qrels: Union[Source, Qrels, None] = None,
    pairs: Union[Source, Sequence[tuple[str, str]], None] = None,
    cache_dir: Optional[Source] = None,
    progress: Optional[Progress] = None,
    false_negatives_output: Optional[Source] = None,
    explicit: Optional[Sequence[str]] = None,
    **options: Any,
) -> MineResult:
    """Re-apply the rules and the sampling to a candidates file with other settings, without a model, a retrieval
    or a score computed again: the output ``mine`` would have written with these settings, when the file holds
    every value they need (``mine --score-all --candidates-output`` keeps them all; a value it lacks is an error
    naming it).

    Args:
        candidates: A candidates file written by ``mine`` (``candidates_output``).
        output: Where to write the Parquet output (atomically); ``None`` keeps the table in memory.
        corpus, queries, qrels, pairs: The inputs, when not where the file's provenance says (they must hold the
            same bytes), or when they were given in memory.
        cache_dir: Where the inputs' Arrow copies are kept.
        progress: Receives progress reports.
        false_negatives_output: Parquet path for the candidates dropped as likely false negatives (qrels form).
        explicit: The options the caller set on purpose (default: the keys of ``options``).
        **options: Filter, sampling and output options (``stored.REFILTER_OPTIONS``), by name.

    Raises:
        ConfigError: An option fixed by the mining run, a deeper window than was retrieved, or a value the file
            lacks.
        InputError: A file that is not a candidates file, or inputs that changed since.
    """
    progress = progress or Progress()
    seconds: dict[str, float] = {}
    warnings: list[str] = []
    t = time.perf_counter()
    stored = open_stored(candidates, corpus=corpus, queries=queries, qrels=qrels, pairs=pairs, cache_dir=cache_dir,
                         progress=progress, warnings=warnings)
    config = stored.config(options)
    for message in config.ineffective(set(options) if explicit is None else explicit):
        _warn(warnings, message)
    out_path, _, fn_path = check_outputs(output, None, false_negatives_output,
                                         [stored.path, *stored.files.values()])
    run, stats = stored.plan(config)
    seconds["plan"] = time.perf_counter() - t
    try:
        return run_batches(run, stats, RunStore(None, None), Sinks(out_path, None, fn_path),
                           lambda todo, inner: (mine_batch(run, p, False, inner) for _, p in todo), "local",
                           progress, seconds, warnings)
    except MissingScore as exc:
        raise stored.sources.missing(exc, run.inputs.queries, run.inputs.corpus) from None


class StoredRun:
    """A candidates file and the inputs it was mined from, read once, ready to plan runs with other settings
    (``refilter`` plans one, ``sweep`` many)."""

    def __init__(self, path: Path, meta: dict[str, Any], files: dict[str, Any], inputs: Inputs, positives: Positives,
                 mined: np.ndarray, stats: MineStats, cache: Optional[Path], warnings: list[str]) -> None:
        from negmine.stored import StoredSources

        self.path, self.meta, self.files = path, meta, files
        self.inputs, self.positives, self.mined, self.stats = inputs, positives, mined, stats
        self.cache, self.warnings = cache, warnings
        self.sources = StoredSources(path, meta, inputs.queries, inputs.corpus)
        self.doc_digests: Optional[np.ndarray] = None

    def config(self, options: dict[str, Any]) -> MineConfig:
        """The mined settings with ``options`` (filter, sampling and output options) in their place."""
        from negmine import stored

        return stored.config_of(self.meta, options, self.path)

    def plan(self, config: MineConfig) -> tuple[Run, MineStats]:
        """A run of these candidates with ``config`` (checked against what the file holds), and its statistics so
        far."""
        import copy

        judge = Judge(self.sources.judge_kind or "self")
        rules = score_rules_of(config, self.sources.judge_kind)
        depth = depth_of(config, self.positives, self.mined, len(self.inputs.corpus))
        self.sources.check(config, depth, rules.need_scores)
        run = Run(config, self.inputs, self.positives, self.mined, rules, judge, None, None, None, None,  # type: ignore
                  evidence.Owners(np.zeros(1, np.int64), np.empty(0, np.int64)), np.empty(0, np.uint64), depth,
                  self.cache or Path("."), sources=self.sources)
        if self.doc_digests is None:
            self.doc_digests = np.zeros(len(self.inputs.corpus), dtype=np.uint64)
        run.doc_digests = self.doc_digests  # computed once, shared by every setting
        if rules.percentile_gate:
            run.calibration = self.sources.calibration(self.mined)
        return run, copy.deepcopy(self.stats)


def open_stored(candidates: Source, *, corpus: Any = None, queries: Any = None, qrels: Any = None, pairs: Any = None,
                cache_dir: Optional[Source] = None, progress: Optional[Progress] = None,
                warnings: Optional[list[str]] = None) -> StoredRun:
    """Read a candidates file and the inputs it was mined from (those of its provenance, or the ones given)."""
    from negmine import stored

    progress = progress or Progress()
    warnings = [] if warnings is None else warnings
    path = Path(candidates)
    if not path.is_file():
        raise InputError(f"{path}: no such candidates file")
    meta = stored.read_record(path)
    config = stored.config_of(meta, {}, path)
    given = {"corpus": corpus, "queries": queries, "qrels": qrels, "pairs": pairs}
    files = stored.input_paths(meta, {k: v for k, v in given.items() if isinstance(v, (str, Path))}, path) \
        if not any(v is not None and not isinstance(v, (str, Path)) for v in given.values()) else {}
    sources = {k: v if v is not None and not isinstance(v, (str, Path)) else files.get(k) for k, v in given.items()}
    cache = prepare_cache_dir(resolve_cache_dir(cache_dir, None), "--cache-dir")
    inputs, positives, mined, stats = read_inputs(config, sources["corpus"], sources["queries"], sources["qrels"],
                                                  sources["pairs"], cache, progress, warnings)
    for role in ("corpus_embeddings", "query_embeddings"):
        if role in files:
            inputs.files[role] = files[role]
    return StoredRun(path, meta, files, inputs, positives, mined, stats, cache, warnings)


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
    """Build what a ``mine`` run with these settings needs from its cache for ``corpus`` into ``index_dir``
    (created if missing): the retriever's indexes, the BM25 index the lexical-overlap and agreement rules read, and
    the documents' embeddings when a rule reads bi-encoder cosines (whatever the retriever).

    ``mine(..., index_dir=index_dir)`` with the same corpus and settings then encodes and indexes nothing (and can
    read the folder from a read-only volume). Re-running it after the corpus changed encodes only the changed
    texts. A folder it created is removed again when it fails before writing anything there.
    """
    config = ((config or MineConfig()).replace(**options) if options else (config or MineConfig())).for_run()
    progress = progress or Progress()
    folder = Path(index_dir)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"--index-dir {folder}: is a file, not a folder; give a folder to build the indexes in")
    created = not folder.exists()
    prepare_cache_dir(folder, "--index-dir", writable=True)
    try:
        return _build_index(corpus, folder, config, progress, encoder)
    except BaseException:
        if created:
            _remove_if_empty(folder)
        raise


def _build_index(corpus: Union[Source, Corpus], folder: Path, config: MineConfig, progress: Progress,
                 encoder: Optional[Encoder]) -> IndexResult:
    t = time.perf_counter()
    with progress.stage("reading corpus"):
        c = corpus if isinstance(corpus, Corpus) else read_corpus(
            corpus, config.corpus_id_column, config.corpus_text_column, config.corpus_title_column, folder)
    rules = score_rules_of(config)
    if config.engine == "ray" and uses_bi_encoder(config, rules):
        engine = make_engine(config)
        job = Job(config, corpus, None, None, None, folder, encoder, None, None, False, marker=write_marker(folder))
        try:
            engine.encode_corpus(job, c.texts, encoder or retrievers.make_encoder(config), progress)
        finally:
            remove_marker(folder, job.marker)
            engine.close()
    retriever = make_retriever(config, c, progress, folder, encoder)
    _bm25_part(retriever, config, c, folder, progress)
    dense = _dense_part(retriever)
    if dense is not None:
        dense.prepare()
    elif uses_bi_encoder(config, rules):  # the rules read the documents' embeddings: store them too
        dense = DenseRetriever(encoder or retrievers.make_encoder(config), folder, config.faiss_index, config.device)
        dense.embed(c.texts, "document", progress)
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    return IndexResult(folder, len(c), dense.encoded if dense else 0, dense.cached if dense else 0, size,
                       {"index": time.perf_counter() - t})


def _remove_if_empty(folder: Path) -> None:
    """Remove ``folder`` when no file is left under it (its empty sub-folders go with it)."""
    if any(p.is_file() for p in folder.rglob("*")):
        return
    import shutil

    shutil.rmtree(folder, ignore_errors=True)


class _Clock:
    """Adds the time since its last call to ``seconds[stage]``."""

    def __init__(self, seconds: dict[str, float]) -> None:
        self.seconds = seconds
        self.last = time.perf_counter()

    def __call__(self, stage: str) -> None:
        now = time.perf_counter()
        self.seconds[stage] = self.seconds.get(stage, 0.0) + now - self.last
        self.last = now


def _warn(warnings: list[str], message: str) -> None:
    warnings.append(message)
    logger.warning(message)


def _concat(parts: Sequence[np.ndarray]) -> np.ndarray:
    return np.concatenate(list(parts)).astype(np.float32) if len(parts) else np.empty(0, np.float32)


def _empty_texts(queries: Queries, rows: np.ndarray) -> list[int]:
    """Rows whose query text is empty or blank (checked with Arrow, for large query sets)."""
    import pyarrow.compute as pc

    texts = take_rows(queries.text_array, rows)
    blank = pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(texts)), 0).to_numpy(zero_copy_only=False)
    return [int(r) for r in rows[np.asarray(blank, dtype=bool)]]


def _text_hashes(queries: Queries, rows: np.ndarray) -> np.ndarray:
    """An 8-byte digest of each query's normalised text: twin queries have equal digests."""
    import hashlib

    out = np.empty(len(rows), dtype=np.uint64)
    for start in range(0, len(rows), 8192):
        for i, text in enumerate(queries.texts.take(rows[start : start + 8192])):
            digest = hashlib.blake2b(filters.normalize_text(text).encode("utf-8"), digest_size=8).digest()
            out[start + i] = int.from_bytes(digest, "little")
    return out


def _vectors(run: Run, query_texts: Sequence[str], rows: np.ndarray) -> Optional[Vectors]:
    """The retrieval bi-encoder's vectors of a batch's queries and of corpus documents, when a rule needs them."""
    if run.dense is None:
        return None
    return Vectors(run.dense, query_texts, run.inputs.corpus.texts)


def _query_vectors(run: Run, positions: np.ndarray) -> np.ndarray:
    """The retrieval bi-encoder's vectors of mined queries (``positions`` into ``run.mined``), from the given
    embeddings or through the embedding cache."""
    rows = run.mined[np.asarray(positions, dtype=np.int64)]
    if run.given_queries is not None:
        return np.asarray(run.given_queries[rows], dtype=np.float32)
    assert run.dense is not None
    return run.dense.embed(run.inputs.queries.texts.take(rows), "query")


def _empty_selection() -> Any:
    from negmine.sampling.selection import Selection

    return Selection(np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float32), [], [], [])


def _index_dir_gaps(config: MineConfig, corpus: Corpus, folder: Path, encoder: Optional[Encoder],
                    vectors_given: bool, rules: ScoreRules) -> list[tuple[str, str]]:
    """What a cache folder (an ``--index-dir``) lacks that this run needs from it: (what, how to build it ahead)."""
    from negmine.retrieve.bm25 import BM25Retriever, cached_settings

    gaps = []
    if config.retriever in ("bm25", "hybrid") or config.lexical_overlap is not None or config.agreement \
            or config.score_all:
        bm25 = BM25Retriever(config.bm25_k1, config.bm25_b, config.bm25_method, config.bm25_stemmer,
                             config.bm25_stopwords)
        if not bm25.is_cached(corpus.texts, folder):
            held = "; ".join(cached_settings(folder)) or "none"
            gaps.append((f"BM25 index of this corpus with these settings ({bm25.describe()})",
                         f"It holds BM25 indexes with: {held}. Build it ahead with negmine index and the same options"))
    if uses_bi_encoder(config, rules) and not vectors_given:
        dense = DenseRetriever(encoder or retrievers.make_encoder(config), folder)
        missing = dense.missing(corpus.texts, "document")
        if missing:
            gaps.append((f"embeddings of {missing:,} of the corpus's {len(corpus):,} documents from this model",
                         f"negmine index --retriever {config.retriever} with the same model encodes them ahead"))
    return gaps


def _normalized_texts(run: Run, indices: np.ndarray, positives: list[list[int]]) -> dict[int, int]:
    """A digest of the normalised text of each document the duplicate rules compare (a batch's candidates and
    positives), computed once per document per run."""
    if run.doc_digests is None:
        run.doc_digests = np.zeros(len(run.inputs.corpus), dtype=np.uint64)
    digests = run.doc_digests
    wanted = np.unique(np.concatenate([indices[indices >= 0].ravel(),
                                       np.fromiter((d for p in positives for d in p), dtype=np.int64)]))
    todo = wanted[digests[wanted] == 0]
    for start in range(0, todo.size, 8192):
        part = todo[start : start + 8192]
        for d, text in zip(part, run.inputs.corpus.texts.take(part)):
            digest = hashlib.blake2b(filters.normalize_text(text).encode("utf-8"), digest_size=8).digest()
            digests[d] = int.from_bytes(digest, "little") | 1  # never 0: 0 means not computed
    return dict(zip(wanted.tolist(), digests[wanted].tolist()))
