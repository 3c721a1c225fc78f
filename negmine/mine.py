"""The mining pipeline: read -> retrieve -> filter -> sample -> write. The only module that knows the order."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np
import pyarrow as pa

from negmine import filters, io
from negmine.config import MineConfig
from negmine.data import Corpus, Positives, Qrels, Queries, match_positives, pairs_to_inputs
from negmine.errors import ConfigError, InputError
from negmine.progress import Progress
from negmine.report import MineStats
from negmine.retrieve import Hits, Retriever
from negmine.sample import sample_negatives
from negmine.write import Selection, build_table, negatives_in

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
            anchors = [a for a, _ in pairs]  # type: ignore[union-attr]
            positives = [b for _, b in pairs]  # type: ignore[union-attr]
        q, c, r = pairs_to_inputs(anchors, positives, p or "<pairs>", c)
    else:
        p = path_of("queries", queries)
        q = io.read_queries(p, config.query_id_column, config.query_text_column) if p else queries  # type: ignore
        p = path_of("qrels", qrels)
        r = io.read_qrels(p, config.qrels_query_column, config.qrels_doc_column, config.qrels_score_column) \
            if p else qrels  # type: ignore[assignment]
    assert c is not None
    return Inputs(c, q, r, files)


def make_retriever(config: MineConfig, corpus: Corpus, progress: Progress) -> Retriever:
    """Build the retriever the config names over the corpus."""
    from negmine.bm25 import BM25Retriever

    return BM25Retriever(
        config.bm25_k1, config.bm25_b, config.bm25_method, config.bm25_stemmer, config.bm25_stopwords
    ).index(corpus.texts, progress)


def mine(
    corpus: Union[Source, Corpus, None] = None,
    queries: Union[Source, Queries, None] = None,
    qrels: Union[Source, Qrels, None] = None,
    *,
    pairs: Union[Source, Sequence[tuple[str, str]], None] = None,
    output: Optional[Source] = None,
    config: Optional[MineConfig] = None,
    progress: Optional[Progress] = None,
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

    Returns:
        The table, the statistics and the provenance.

    Raises:
        ConfigError: Options that contradict each other or an output path that is an input.
        InputError: Inputs that are missing, unreadable or malformed.
    """
    config = (config or MineConfig()).replace(**options) if options else (config or MineConfig())
    progress = progress or Progress()
    seconds: dict[str, float] = {}
    warnings: list[str] = []
    paths = [x for x in (corpus, queries, qrels, pairs) if isinstance(x, (str, Path))]
    out_path = io.check_output_path(output, paths) if output is not None else None

    t = time.perf_counter()
    with progress.stage("reading inputs"):
        inputs = load_inputs(config, corpus, queries, qrels, pairs)
        positives = match_positives(inputs.qrels, inputs.queries, inputs.corpus, config.strict)
    seconds["read"] = time.perf_counter() - t
    stats = _input_stats(inputs, positives)
    if positives.unknown_query_rows or positives.unknown_doc_rows:
        msg = (
            f"{inputs.qrels.source}: skipped {positives.unknown_query_rows:,} rows naming unknown queries and "
            f"{positives.unknown_doc_rows:,} naming unknown documents, e.g. {', '.join(positives.unknown_examples)} "
            "(--strict makes this an error)"
        )
        warnings.append(msg)
        logger.warning(msg)

    mined = [i for i, p in enumerate(positives.by_query) if p]
    pos_lists = [positives.by_query[i] for i in mined]
    n_docs = len(inputs.corpus)
    fewest_pos = min(len(p) for p in pos_lists)
    if config.num_negatives > n_docs - fewest_pos:
        raise InputError(
            f"{inputs.corpus.source.split(':')[0]}: {config.num_negatives} negatives per query asked, but the corpus "
            f"has {n_docs} documents, so no query can get that many besides its positives; lower --num-negatives"
        )

    t = time.perf_counter()
    retriever = make_retriever(config, inputs.corpus, progress)
    depth = min(n_docs, config.range_max + max(len(p) for p in pos_lists))
    hits: Hits = retriever.search([inputs.queries.texts[i] for i in mined], depth, progress)
    seconds["retrieve"] = time.perf_counter() - t

    t = time.perf_counter()
    reasons = filters.apply_rules(hits.indices, pos_lists, config.range_min, config.range_max)
    picks = sample_negatives(reasons == filters.KEPT, [len(p) for p in pos_lists], config.num_negatives,
                             config.sampling_strategy, config.seed)
    pos_scores = _positive_scores(retriever, inputs, mined, pos_lists) if config.output_scores else None
    sel = _selection(mined, pos_lists, picks, hits, pos_scores)
    table = build_table(sel, inputs.queries, inputs.corpus, config.output_format, config.num_negatives,
                        config.output_scores)
    seconds["filter+sample"] = time.perf_counter() - t

    stats.candidates_seen = int((hits.indices >= 0).sum())
    stats.dropped = filters.count_reasons(reasons)
    stats.negatives_written = negatives_in(table, config.output_format)
    stats.rows_written = table.num_rows
    short_q = sorted({int(sel.query[r]) for r, n in enumerate(sel.negatives) if len(n) < config.num_negatives})
    stats.short_pairs = sum(1 for n in sel.negatives if len(n) < config.num_negatives)
    stats.short_queries = len(short_q)
    stats.short_examples = [str(inputs.queries.ids[q]) for q in short_q[:3]]

    metadata = provenance(config, inputs, stats)
    if out_path is not None:
        t = time.perf_counter()
        with progress.stage("writing output"):
            io.write_parquet(table, out_path, metadata)
        seconds["write"] = time.perf_counter() - t
    return MineResult(table, stats, metadata, out_path, seconds, warnings)


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


def _positive_scores(
    retriever: Retriever, inputs: Inputs, mined: list[int], pos_lists: list[list[int]]
) -> list[np.ndarray]:
    """The retriever's score of each positive, for the score columns."""
    return retriever.pair_scores([inputs.queries.texts[i] for i in mined], pos_lists)


def _selection(
    mined: list[int], pos_lists: list[list[int]], picks: list[list[np.ndarray]], hits: Hits,
    pos_scores: Optional[list[np.ndarray]],
) -> Selection:
    query, positive, pscore, negs, nscores = [], [], [], [], []
    for row, q in enumerate(mined):
        for j, pos in enumerate(pos_lists[row]):
            cols = picks[row][j]
            query.append(q)
            positive.append(pos)
            pscore.append(pos_scores[row][j] if pos_scores is not None else np.nan)
            negs.append(hits.indices[row, cols])
            nscores.append(hits.scores[row, cols])
    return Selection(np.array(query, dtype=np.int64), np.array(positive, dtype=np.int64),
                     np.array(pscore, dtype=np.float32), negs, nscores)


def provenance(config: MineConfig, inputs: Inputs, stats: MineStats) -> dict[str, Any]:
    """What produced an output: negmine's and its libraries' versions, the config, input fingerprints, stats."""
    from importlib.metadata import PackageNotFoundError, version

    from negmine import __version__

    libs = {}
    for lib in ("bm25s", "pyarrow", "numpy"):
        try:
            libs[lib] = version(lib)
        except PackageNotFoundError:  # pragma: no cover
            libs[lib] = None
    return {
        "negmine_version": __version__,
        "libraries": libs,
        "config": config.to_dict(),
        "inputs": {role: {"path": path, "fingerprint": io.fingerprint(path)} for role, path in inputs.files.items()},
        "stats": stats.to_dict(),
    }
