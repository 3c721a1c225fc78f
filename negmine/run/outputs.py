"""A planned run's query batches, mined (by an engine) or resumed, written to the sinks in query order, then
the provenance: every file renamed into place only when everything succeeded."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pyarrow as pa

from negmine.errors import ConfigError, EmptyResultError, NegmineError
from negmine.output.batched import BATCH_COLUMN, BatchedRows
from negmine.output.candidates import build_candidates_table, build_false_negatives_table
from negmine.output.files import read_output
from negmine.output.layouts import build_table, negatives_in, select_columns
from negmine.output.provenance import METADATA_KEY, provenance
from negmine.output.sinks import ParquetSink, open_sink
from negmine.progress import Progress
from negmine.report.stats import MineStats, score_summary
from negmine.report.summary import blind_detail, blind_rules, why_empty
from negmine.rules import registry
from negmine.run.batch import BatchResult
from negmine.run.plan import Plan, concat, judges_all, warn
from negmine.sampling.selection import Selection
from negmine.storage.cache import digest_of
from negmine.storage.files import fingerprint
from negmine.storage.runs import RunStore
from negmine.version import __version__

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


def run_batches(run: Plan, stats: MineStats, store: RunStore, sinks: "Sinks", results: Any, engine: str,
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
            warn(warnings, f"resuming an interrupted run: {len(kept):,} of {len(batches):,} query batches were "
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
        if registry.need_scores(run.rules):
            stats.scores = score_summary(run.sources.judge_name(run), concat(positive_scores),
                                         concat(negative_scores), concat(dropped_scores))
        counted = run.sources.texts_counted()
        if counted is not None:
            stats.texts_encoded, stats.texts_cached = counted
        stats.endpoint_usage = endpoint_usage(run)
        stats.dense_search = dict(run.dense_search)
        stats.blind_rules = blind_rules(stats, run.rules)
        if stats.blind_rules:
            message = f"rules that could not see: {blind_detail(stats.blind_rules)}"
            if config.strict:
                raise ConfigError(f"{message} (--strict makes this an error)")
            warn(run.warnings, message)
        if stats.negatives_written == 0 and not config.allow_empty:
            raise EmptyResultError(why_empty(stats))
        if sinks.batched is not None:
            t = time.perf_counter()
            with progress.stage(f"composing training batches of {config.train_batch_size}"):
                stats.train_batches = sinks.compose(run)
            seconds["compose batches"] = time.perf_counter() - t
        metadata = provenance(config, run.inputs.files, stats, run.sources.embedder_identity(run),
                              run.sources.judge_identity(run, always=config.sampling_strategy == "simans"),
                              run.config.relative_margin_for(run.judge_kind), run.inputs.beir,
                              run.sources.bm25_tokenizer(run))
        if run.llm is not None:
            metadata["models"]["llm_judge"] = run.llm.identity()
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


class Sinks:
    """Where the batches' rows go: the output and the false-negatives file, each in the format its name says
    (Parquet in fixed row groups, or JSON Lines) into a temporary file, or the output as JSON Lines to stdout
    (``-``); the candidates file, always Parquet (``refilter`` reads it back); without an output path, the rows
    kept in memory."""

    def __init__(self, output: Optional[Path], candidates: Optional[Path],
                 false_negatives: Optional[Path] = None, train_batch_size: Optional[int] = None) -> None:
        self.output_path = output
        self.batched: Optional[BatchedRows] = None
        self.output: Any = None
        self.candidates: Optional[ParquetSink] = None
        self.false_negatives: Any = None
        try:
            self.output = open_sink(output, OUTPUT_ROW_GROUP) if output is not None else None
            self.candidates = ParquetSink(candidates, CANDIDATES_ROW_GROUP) if candidates is not None else None
            self.false_negatives = open_sink(false_negatives, CANDIDATES_ROW_GROUP) \
                if false_negatives is not None else None
            if train_batch_size is not None:  # rows kept aside beside the output until they are composed
                folder = output.parent if output is not None and str(output) != "-" else Path(tempfile.gettempdir())
                self.batched = BatchedRows(folder, output.name if output is not None else "negmine-output")
        except BaseException:
            self.abort()
            raise
        self.tables: list[pa.Table] = []
        self.schema: Optional[pa.Schema] = None  # of the output's rows

    def write(self, result: BatchResult, run: Plan) -> None:
        config, inputs = run.config, run.inputs
        table = select_columns(build_table(result.selection, inputs.queries, inputs.corpus, config.output_format,
                                           config.num_negatives, config.output_scores, config.prompt),
                               config.output_format, config.columns)
        assert result.stats.negatives_written == negatives_in(table, config.output_format)
        if self.schema is None:
            self.schema = table.schema if self.batched is None else \
                table.schema.append(pa.field(BATCH_COLUMN, pa.int32()))
        if self.batched is not None:
            self.batched.write(table, result.selection, config.output_format, config.num_negatives)
        elif self.output is not None:
            self.output.write(table)
        else:
            self.tables.append(table)
        self._write_candidates(result, run)

    def _write_candidates(self, result: BatchResult, run: Plan) -> None:
        inputs = run.inputs
        if self.candidates is not None and result.candidates is not None:
            self.candidates.write(build_candidates_table(result.candidates, inputs.queries, inputs.corpus))
        if self.false_negatives is not None and result.false_negatives is not None:
            self.false_negatives.write(build_false_negatives_table(result.false_negatives, inputs.queries,
                                                                   inputs.corpus))

    def compose(self, run: Plan) -> dict[str, Any]:
        """Compose the rows kept aside into training batches (``--train-batch-size``), ready for ``commit``; what
        the statistics record of it."""
        assert self.batched is not None and run.config.train_batch_size is not None
        sources = run.sources
        vectors = (lambda rows, kind: sources.row_vectors(run, rows, kind)) \
            if getattr(sources, "dense", None) is not None else None  # (a stored run composes nothing)
        self.batched.compose(run.config.train_batch_size, run.config.seed, run.positives.of,
                             run.inputs.corpus.texts, vectors)
        if not self.batched.similarity:
            warn(run.warnings, "no bi-encoder in this run (--model none, or bm25 without a rule that reads one): the "
                               "training batches are clean but not grouped by nearness, and positive proximity is "
                               "not checked between their rows")
        return self.batched.record()

    def commit(self, metadata: dict[str, Any], run: Plan) -> Optional[pa.Table]:
        """Publish the files; the in-memory table when there is no output file."""
        out_empty = select_columns(build_table(_empty_selection(), run.inputs.queries, run.inputs.corpus,
                                               run.config.output_format, run.config.num_negatives,
                                               run.config.output_scores, run.config.prompt),
                                   run.config.output_format, run.config.columns)
        if self.batched is not None:
            out_empty = out_empty.append_column(BATCH_COLUMN, pa.array([], pa.int32()))
            self.batched.write_into(self.output if self.output is not None else _Collect(self.tables),
                                    OUTPUT_ROW_GROUP)
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
        for sink in (self.output, self.candidates, self.false_negatives, self.batched):
            if sink is not None:
                sink.abort()


class _Collect:
    """A sink that keeps the tables in a list (a run without an output file)."""

    def __init__(self, tables: list[pa.Table]) -> None:
        self.tables = tables

    def write(self, table: pa.Table) -> None:
        self.tables.append(table)


def endpoint_usage(run: Plan) -> dict[str, Any]:
    """What the run asked of models behind endpoints (``negmine.endpoints``), by the name each goes by."""
    named = run.sources.endpoints() + [(f"LLM {e.model}", e) for e in (run.llm.endpoints() if run.llm else [])]
    return {name: endpoint.usage.as_dict() for name, endpoint in named if endpoint.usage.requests}


def candidates_record(run: Plan) -> dict[str, Any]:
    """What a candidates file holds, in its metadata: the retrieval depth, whether every candidate was scored,
    and the judge that scored (``negmine refilter`` reads them back)."""
    return {"depth": run.depth, "score_all": run.config.score_all,
            "judge": run.sources.judge_identity(run, always=True) if judges_all(run.config)
            or registry.need_scores(run.rules) else None,
            "judge_kind": run.judge_kind, "judge_name": run.sources.judge_name(run)}


def run_key(run: Plan, audit: bool) -> Optional[str]:
    """What identifies a run for resuming it: negmine's version, the settings, the inputs' fingerprints and the
    models; ``None`` (no resuming) when an input is an in-memory object."""
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
        "embedder": run.sources.embedder_identity(run),
        "judge": run.sources.judge_identity(run, always=True) if judges_all(run.config)
        or registry.need_scores(run.rules) else None,
    }
    return digest_of(json.dumps(parts, sort_keys=True, default=str))[:32]


def _empty_selection() -> Selection:
    return Selection(np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float32), [], [], [])
