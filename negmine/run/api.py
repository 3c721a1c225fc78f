"""The public entry points: ``mine()``, ``refilter()``, ``build_index()``."""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence, Union

from negmine.errors import ConfigError
from negmine.inputs.beir import beir_files
from negmine.inputs.data import Corpus, Qrels, Queries
from negmine.inputs.read import read_corpus
from negmine.judges.base import MissingScore
from negmine.output.files import check_outputs
from negmine.progress import Progress
from negmine.retrieve import build as retrievers
from negmine.retrieve.dense import DenseRetriever
from negmine.retrieve.encoders import Encoder
from negmine.rules import registry
from negmine.run.batch import mine_batch
from negmine.run.engines import Job, make_engine, remove_marker, write_marker
from negmine.run.outputs import MineResult, Sinks, run_batches, run_key
from negmine.run.plan import plan, uses_bi_encoder, warn
from negmine.run.stored import open_stored
from negmine.settings.config import MineConfig
from negmine.storage.cache import cache_option, prepare_cache_dir, resolve_cache_dir
from negmine.storage.runs import RunStore

logger = logging.getLogger("negmine")

Source = Union[str, Path]


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
        warn(warnings, message)
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
            and not registry.need_scores(config):
        warn(warnings, "--score-all has no effect without --candidates-output and without a score rule (margins, "
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
                      job.corpus_embeddings, job.query_embeddings, index_dir, progress, warnings,
                      (lambda texts, encoder, inner: engine.encode_corpus(job, texts, encoder, inner))
                      if engine.name == "ray" else None)
    job.calibration, job.dense_search = run.calibration, run.dense_search
    run.inputs.beir = job.beir
    seconds["plan"] = time.perf_counter() - t
    store = RunStore(cache, run_key(run, cand_path is not None) if config.resume else None)
    if not config.resume:
        RunStore(cache, run_key(run, cand_path is not None)).clear()
    return run_batches(run, stats, store, Sinks(out_path, cand_path, fn_path, config.train_batch_size),
                       lambda todo, inner: engine.results(job, run, todo, inner), engine.name, progress, seconds,
                       warnings)


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
        warn(warnings, message)
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
    if config.engine == "ray" and uses_bi_encoder(config):
        engine = make_engine(config)
        job = Job(config, corpus, None, None, None, folder, encoder, None, None, False, marker=write_marker(folder))
        try:
            engine.encode_corpus(job, c.texts, encoder or retrievers.make_encoder(config), progress)
        finally:
            remove_marker(folder, job.marker)
            engine.close()
    retriever = retrievers.make_retriever(config, c, progress, folder, encoder)
    retrievers.bm25_part(retriever, config, c, folder, progress)
    dense = retrievers.dense_part(retriever)
    if dense is not None:
        dense.prepare()
    elif uses_bi_encoder(config):  # the rules read the documents' embeddings: store them too
        dense = DenseRetriever(encoder or retrievers.make_encoder(config), folder, config.faiss_index, config.device)
        dense.embed(c.texts, "document", progress)
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    return IndexResult(folder, len(c), dense.encoded if dense else 0, dense.cached if dense else 0, size,
                       {"index": time.perf_counter() - t})


def _remove_if_empty(folder: Path) -> None:
    """Remove ``folder`` when no file is left under it (its empty sub-folders go with it)."""
    if any(p.is_file() for p in folder.rglob("*")):
        return
    shutil.rmtree(folder, ignore_errors=True)
