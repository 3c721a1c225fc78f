"""The ``negmine`` command: parse options into a MineConfig, call the library, render the result.

Stdout carries data (the output path, or the JSON Lines rows of ``-o -``); progress, summaries, warnings and errors
go to stderr. Importing this module loads neither numpy, pyarrow nor torch, so that ``--help`` answers at once;
commands import the library when they run.
"""

from __future__ import annotations

import logging
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Optional, Union

import typer
from typer.core import TyperCommand, TyperGroup
from typing_extensions import Annotated

from negmine.errors import ConfigError, NegmineError, storage_error
from negmine.progress import Advance, LineProgress, Progress
from negmine.settings.config import (
    BM25_METHODS,
    COLUMN_SETS,
    FUSIONS,
    MARGIN_REFERENCES,
    OUTPUT_FORMATS,
    PRECISIONS,
    RETRIEVERS,
    SAMPLING_STRATEGIES,
    MineConfig,
    flag,
)
from negmine.version import __version__

D = MineConfig()  # defaults live in the config; the options below show them


class _Group(TyperGroup):
    """A group of commands (negmine, negmine config). Its ``--help`` defaults to False rather than None, so that
    running a command does not have typer coerce that None through pydantic (imported for it: a tenth of a second
    on every run, --help included)."""

    def get_help_option(self, ctx: Any) -> Any:
        option = super().get_help_option(ctx)
        if option is not None and option.default is None:
            option.default = False
        return option

    def main(self, args: Any = None, prog_name: Optional[str] = None,  # type: ignore[override]  # varies by version
             complete_var: Optional[str] = None, standalone_mode: bool = True, **extra: Any) -> Any:
        """Run as click does, but a usage error reads as every other error: one line, ``negmine: error: ...``
        (with the command whose --help to read), exit code 2."""
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        import sys

        click = sys.modules[typer.BadParameter.__module__]  # click's exceptions, or those typer vendors
        try:
            code = super().main(args, prog_name, complete_var, False, **extra)
        except click.UsageError as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":  # a group called without a command: its help
                typer.echo(exc.format_message(), err=True)
                sys.exit(exc.exit_code)
            where = exc.ctx.command_path if exc.ctx is not None else "negmine"
            typer.echo(f"negmine: error: {exc.format_message().rstrip('.')}; see '{where} --help'", err=True)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            typer.echo(f"negmine: error: {exc.format_message()}", err=True)
            sys.exit(exc.exit_code)
        sys.exit(code if isinstance(code, int) else 0)


class _Command(TyperCommand):
    """A command whose ``--help`` lists the options under their groups (``rich_help_panel``), as plain text: rich's
    help renderer would cost more import time than the rest of ``--help``."""

    def format_options(self, ctx: Any, formatter: Any) -> None:
        for title, records in option_groups(self, ctx):
            with formatter.section(title):
                formatter.write_dl(records)


def option_groups(command: Any, ctx: Any) -> list[tuple[str, list[tuple[str, str]]]]:
    """(group title, [(flags, help)]) of a command's parameters, in order of each group's first option: arguments
    first, options without a group ("Options": --help) last."""
    groups: dict[str, list[tuple[str, str]]] = {}
    for param in command.get_params(ctx):
        record = param.get_help_record(ctx)
        if record is None:
            continue
        title = "Arguments" if param.param_type_name == "argument" else getattr(param, "rich_help_panel", None)
        groups.setdefault(title or "Options", []).append(record)
    order = sorted(groups, key=lambda t: (t != "Arguments", t == "Options"))
    return [(title, groups[title]) for title in order]


def _subcommands(name: str, help: str) -> typer.Typer:
    """A group of commands under ``negmine NAME``."""
    return typer.Typer(name=name, help=help, no_args_is_help=True, add_completion=False, rich_markup_mode=None,
                       pretty_exceptions_enable=False, cls=_Group)


app = typer.Typer(
    name="negmine",
    help="Mine hard negatives for training retrieval models (embedders, rerankers).",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    cls=_Group,
)
config_app = _subcommands("config", "Settings as TOML config files: show the resolved settings of a run, or those an "
                                     "output was mined with.")
app.add_typer(config_app)
cache_app = _subcommands("cache", "The cache folder: what it holds per part and when each entry was last used, and "
                                   "pruning it.")
app.add_typer(cache_app)

INPUTS = "Inputs"
COLUMNS = "Input columns (detected from the usual names when not given)"
BM25 = "BM25"
DENSE = "Dense retrieval"
FILTERS = "False-negative filters"
MINING = "Mining"
OUTPUT = "Output"


def _version(value: bool) -> None:
    if value:
        typer.echo(f"negmine {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """Mine hard negatives for training retrieval models (embedders, rerankers)."""


def _choices(values: tuple[str, ...]) -> str:
    return "|".join(values)


def _show(value: Optional[float]) -> str:
    """An optional number as the CLI shows it: 'none' for None."""
    return "none" if value is None else f"{value:g}"


def _opt(panel: str, help: str, *names: str, **kw: Any) -> Any:
    return typer.Option(*names, help=help, rich_help_panel=panel, **kw)


# Options shared by several commands, defined once. Defaults come from MineConfig (D).
#: The input formats, as the options' help says them.
FILE_KINDS = "Parquet, or .jsonl / .csv / .tsv (each optionally .gz)"
Corpus = Annotated[Optional[Path], _opt(INPUTS, f"Corpus file (ids, texts, optional titles): {FILE_KINDS}.")]
CorpusIdColumn = Annotated[Optional[str], _opt(COLUMNS, "Corpus id column [_id, id, doc_id, ...].")]
CorpusTextColumn = Annotated[Optional[str], _opt(COLUMNS, "Corpus text column [text, contents, ...].")]
QrelsQueryColumn = Annotated[Optional[str], _opt(COLUMNS, "Qrels query id column [query-id, query_id, qid].")]
QrelsDocColumn = Annotated[Optional[str], _opt(COLUMNS, "Qrels document id column [corpus-id, doc_id, ...].")]
QrelsScoreColumn = Annotated[Optional[str], _opt(COLUMNS, "Qrels score column [score, relevance, label]; without one "
                                                "every row is positive.")]
CorpusTitleColumn = Annotated[Optional[str], _opt(COLUMNS, "Corpus title column, joined before the text [title]; "
                                                  "'' ignores it.")]
Retriever = Annotated[str, _opt(MINING, f"Candidate retriever: {_choices(RETRIEVERS)} (hybrid: BM25 and dense, "
                                        "fused).")]
BM25K1 = Annotated[float, _opt(BM25, "BM25 k1 (term-frequency saturation).")]
BM25B = Annotated[float, _opt(BM25, "BM25 b (length normalisation, 0..1).")]
BM25Method = Annotated[str, _opt(BM25, f"BM25 variant: {_choices(BM25_METHODS)}.")]
BM25Stemmer = Annotated[str, _opt(BM25, "Snowball stemmer language, or 'none'.")]
BM25Stopwords = Annotated[str, _opt(BM25, "Stopword list (en, de, fr, es, ...), or 'none'.")]
Model = Annotated[Optional[str], _opt(DENSE, "Sentence-transformers model name or path [default: the embedded "
                                      "all-MiniLM-L6-v2, offline].")]
QueryPrompt = Annotated[Optional[str], _opt(DENSE, "Text put before each query when embedding it.")]
CorpusPrompt = Annotated[Optional[str], _opt(DENSE, "Text put before each document when embedding it.")]
QueryPromptName = Annotated[Optional[str], _opt(DENSE, "Name of a prompt stored with the model, for queries "
                                                "[default: its 'query' prompt, if any].")]
CorpusPromptName = Annotated[Optional[str], _opt(DENSE, "Name of a prompt stored with the model, for documents "
                                                 "[default: its 'document' prompt, if any].")]
BatchSize = Annotated[int, _opt(DENSE, "Texts per encoder batch.")]
MaxSeqLength = Annotated[Optional[int], _opt(DENSE, "Truncate texts to this many tokens [default: the model's].")]
Device = Annotated[str, _opt(DENSE, "auto (CUDA when available), cpu, cuda, cuda:N, mps.")]
Precision = Annotated[str, _opt(DENSE, f"What the models compute in: {_choices(PRECISIONS)} (auto: fp16 on CUDA, "
                                 "fp32 elsewhere); part of the embeddings' cache key.")]
FaissIndex = Annotated[str, _opt(DENSE, "Flat (exact search); auto (exact up to 1M documents, an on-disk IVF index "
                                 "above); or a faiss index factory string such as IVF1024,Flat or HNSW32. An "
                                 "approximate index's recall is measured against exact search and reported.")]


def _load_config(ctx: typer.Context, param: typer.CallbackParam, value: Optional[Path]) -> Optional[Path]:
    """``--config FILE``: load the file into the command's default_map, so that its values stand in for the
    defaults and flags given on the command line still win. Eager: it runs before the other options are read."""
    if value is None or ctx.resilient_parsing:
        return value
    from negmine.settings import files as configfile

    names = {p.name for p in ctx.command.params if p.name and p.name != "config"}
    try:
        values = configfile.load_config_file(value, allowed=names, ignored=configfile.option_kinds())
    except ConfigError as exc:
        typer.echo(f"negmine: error: {exc}", err=True)
        raise typer.Exit(exc.exit_code) from None
    ctx.default_map = {**(ctx.default_map or {}), **{k: _cli_value(k, v) for k, v in values.items()}}
    ctx.meta[_CONFIG_FILE] = str(value)
    return value


def _cli_value(name: str, value: Any) -> Any:
    """A config file's value as the option takes it on the command line: the optional numbers are strings there
    (``none``, ``auto``, ``0.1``)."""
    if name in _OPTIONAL_FLOATS:
        return "none" if value is None else value if isinstance(value, str) else repr(value)
    return value


_CONFIG_FILE = "negmine.config_file"
Config = Annotated[Optional[Path], typer.Option(
    "--config", help="TOML file of options, under their flag names without dashes (num-negatives = 5, "
    'relative-margin = "none"); flags given here override it.', is_eager=True, callback=_load_config,
    rich_help_panel=INPUTS, show_default=False)]
Engine = Annotated[str, _opt(MINING, "Where the work runs: local (this process) or ray (a Ray cluster: corpus "
                              "encoding and query batches on actors; the same output).")]
RayAddress = Annotated[str, _opt(MINING, "The Ray cluster: auto ($RAY_ADDRESS, else one started here) or an "
                                 "address.")]
Workers = Annotated[Optional[int], _opt(MINING, "Ray actors [default: one per node, or one per --gpus-per-worker "
                                        "GPUs].")]
GpusPerWorker = Annotated[Optional[float], _opt(MINING, "GPUs per Ray actor [default: 1 when the cluster has GPUs, "
                                                "else 0].")]
SamplingStrategy = Annotated[str, _opt(MINING, f"{_choices(SAMPLING_STRATEGIES)}: the best-ranked eligible "
                                        "candidates, a seeded uniform sample of them, or a seeded sample weighted by "
                                        "SimANS (exp(-a (s - s_positive - b)^2) of the judge's scores: candidates "
                                        "scoring near the positive are favoured).")]
SimansA = Annotated[float, _opt(MINING, "SimANS a: how fast the weight falls off away from the positive's score "
                                "(1 / score^2 units: raise it for cosines, whose spread is small).")]
SimansB = Annotated[float, _opt(MINING, "SimANS b: where the weight peaks, relative to the positive's score.")]
Seed = Annotated[int, _opt(MINING, "Random seed (random and simans sampling).")]
PromoteFalseNegatives = Annotated[bool, _opt(FILTERS, "Write the candidates dropped as likely false negatives as "
                                             "extra positives of their query (rows of their own, with the "
                                             "negatives of its first positive); counted in the summary.",
                                             "--promote-false-negatives")]
FalseNegativesOutput = Annotated[Optional[Path], _opt(OUTPUT, "Also write the candidates dropped as likely false "
                                                      "negatives in qrels form (query-id, corpus-id, score = 1) with "
                                                      "the rule and scores: review them, or append them to the "
                                                      "qrels; .parquet, .jsonl or .jsonl.gz.")]
OutputFile = Annotated[Path, _opt(INPUTS, "File to write (atomically), in the format its extension says: .parquet, "
                                  ".jsonl or .jsonl.gz (provenance in OUT.provenance.json); - writes JSON Lines to "
                                  "stdout.", "--output", "-o", show_default=False)]
DifficultyBands = Annotated[Optional[int], _opt(OUTPUT, "Write each negative's difficulty band: the rank window cut "
                                                "into this many slices, 1 = the best-ranked (hardest); for "
                                                "curriculum training.", show_default=False)]
Quiet = Annotated[bool, _opt(OUTPUT, "No progress and no summary (warnings and errors still show).", "--quiet",
                             "-q")]
Verbose = Annotated[bool, _opt(OUTPUT, "Also show timings per stage and debug logs.", "--verbose", "-v")]


@app.command(cls=_Command)
def mine(
    ctx: typer.Context,
    output: OutputFile,
    config: Config = None,
    corpus: Corpus = None,
    queries: Annotated[Optional[Path], _opt(INPUTS, "Query file (ids, texts), as --corpus.")] = None,
    qrels: Annotated[Optional[Path], _opt(INPUTS, "Relevance judgments file, as --corpus; rows with score <= 0 are "
                                          "not positives.")] = None,
    pairs: Annotated[Optional[Path], _opt(INPUTS, "Instead of --queries/--qrels: file of (anchor, positive) text "
                                          "pairs, as --corpus; the corpus defaults to the positives.")] = None,
    beir: Annotated[Optional[Path], _opt(INPUTS, "Instead of --corpus/--queries/--qrels: a BEIR folder "
                                         "(corpus.jsonl, queries.jsonl, qrels/SPLIT.tsv; or .gz).")] = None,
    split: Annotated[Optional[str], _opt(INPUTS, "The qrels split of --beir (qrels/SPLIT.tsv) [default: train].")]
    = None,
    cache_dir: Annotated[Optional[Path], _opt(INPUTS, "Cache for embeddings and indexes [default: "
                                              "$NEGMINE_CACHE_DIR or ~/.cache/negmine].")] = None,
    index_dir: Annotated[Optional[Path], _opt(INPUTS, "Directory built by 'negmine index', used instead of the "
                                              "cache.")] = None,
    corpus_embeddings: Annotated[Optional[Path], _opt(INPUTS, "Precomputed corpus vectors: .npy in corpus row "
                                                      "order, or Parquet with id and vector columns.")] = None,
    query_embeddings: Annotated[Optional[Path], _opt(INPUTS, "Precomputed query vectors: .npy in query row order, "
                                                     "or Parquet with id and vector columns.")] = None,
    strict: Annotated[bool, _opt(INPUTS, "Fail on qrels naming unknown queries or documents, and on empty query "
                                 "texts, instead of skipping them with a warning.", "--strict")] = D.strict,
    corpus_id_column: CorpusIdColumn = None,
    corpus_text_column: CorpusTextColumn = None,
    corpus_title_column: CorpusTitleColumn = None,
    query_id_column: Annotated[Optional[str], _opt(COLUMNS, "Query id column [_id, id, query_id, qid].")] = None,
    query_text_column: Annotated[Optional[str], _opt(COLUMNS, "Query text column [text, query, question].")] = None,
    qrels_query_column: QrelsQueryColumn = None,
    qrels_doc_column: QrelsDocColumn = None,
    qrels_score_column: QrelsScoreColumn = None,
    pairs_anchor_column: Annotated[Optional[str], _opt(COLUMNS, "Pairs query text column [anchor, query, "
                                                       "question].")] = None,
    pairs_positive_column: Annotated[Optional[str], _opt(COLUMNS, "Pairs positive text column [positive, pos, "
                                                         "...].")] = None,
    retriever: Retriever = D.retriever,
    fusion: Annotated[str, _opt(MINING, f"Hybrid fusion: {_choices(FUSIONS)} (reciprocal rank fusion, or the sum "
                                "of min-max normalised scores).")] = D.fusion,
    rrf_k: Annotated[int, _opt(MINING, "Reciprocal rank fusion constant.")] = D.rrf_k,
    range_min: Annotated[int, _opt(MINING, "Skip this many of the best-ranked non-positive candidates.")]
    = D.range_min,
    range_max: Annotated[int, _opt(MINING, "Consider non-positive candidates up to this rank (exclusive).")]
    = D.range_max,
    num_negatives: Annotated[int, _opt(MINING, "Negatives per query-positive pair.", "--num-negatives", "-n")]
    = D.num_negatives,
    sampling_strategy: SamplingStrategy = D.sampling_strategy,
    simans_a: SimansA = D.simans_a,
    simans_b: SimansB = D.simans_b,
    seed: Seed = D.seed,
    bm25_k1: BM25K1 = D.bm25_k1,
    bm25_b: BM25B = D.bm25_b,
    bm25_method: BM25Method = D.bm25_method,
    bm25_stemmer: BM25Stemmer = D.bm25_stemmer,
    bm25_stopwords: BM25Stopwords = D.bm25_stopwords,
    model: Model = D.model,
    query_prompt: QueryPrompt = D.query_prompt,
    corpus_prompt: CorpusPrompt = D.corpus_prompt,
    query_prompt_name: QueryPromptName = D.query_prompt_name,
    corpus_prompt_name: CorpusPromptName = D.corpus_prompt_name,
    batch_size: BatchSize = D.batch_size,
    max_seq_length: MaxSeqLength = D.max_seq_length,
    device: Device = D.device,
    precision: Precision = D.precision,
    faiss_index: FaissIndex = D.faiss_index,
    reranker: Annotated[Optional[str], _opt(FILTERS, "The judge of the score rules: a CrossEncoder name or path, "
                                            "or a sentence-transformers bi-encoder (judges by cosine) [default: the "
                                            "retrieval bi-encoder's cosine].")] = D.reranker,
    reranker_batch_size: Annotated[int, _opt(FILTERS, "Pairs per reranker batch.")] = D.reranker_batch_size,
    reranker_max_length: Annotated[Optional[int], _opt(FILTERS, "Reranker input length in tokens [default: the "
                                                       "model's].")] = D.reranker_max_length,
    absolute_margin: Annotated[str, _opt(FILTERS, "Drop candidates scoring above positive - M; a number or none.")]
    = _show(D.absolute_margin),
    relative_margin: Annotated[str, _opt(FILTERS, "Drop candidates scoring above positive - |positive| x R "
                                         "(sign-safe); a number, none, or auto: 0.05 with --reranker, none when "
                                         "the retrieval bi-encoder judges itself.")] = str(D.relative_margin),
    max_score: Annotated[str, _opt(FILTERS, "Drop candidates scoring above this; a number or none.")]
    = _show(D.max_score),
    min_score: Annotated[str, _opt(FILTERS, "Drop candidates scoring below this; a number or none.")]
    = _show(D.min_score),
    margin_reference: Annotated[str, _opt(FILTERS, "With several positives, take margins from the "
                                          f"{_choices(MARGIN_REFERENCES)} positive score.")] = D.margin_reference,
    max_positive_similarity: Annotated[str, _opt(FILTERS, "Drop candidates whose bi-encoder cosine to a positive "
                                                 "is above this (near-duplicates); a number or none.")]
    = _show(D.max_positive_similarity),
    positive_proximity: Annotated[str, _opt(FILTERS, "Drop candidates nearer a positive than the query is: "
                                            "cos(candidate, positive) above cos(query, positive) + this (bi-encoder "
                                            "cosines); a number or none.")] = _show(D.positive_proximity),
    lexical_overlap: Annotated[str, _opt(FILTERS, "Drop candidates repeating more than this share of a positive's "
                                         "wording (BM25 of the positive's text against the candidate, over its "
                                         "score against itself); a number or none.")] = _show(D.lexical_overlap),
    agreement: Annotated[bool, _opt(FILTERS, "Drop candidates that both retrievers put above the positive (higher "
                                    "BM25 score and higher bi-encoder cosine).", "--agreement/--no-agreement")]
    = D.agreement,
    cross_query: Annotated[str, _opt(FILTERS, "Drop candidates that are positives of another query asking the same "
                                     "question: equal normalised text, or a query-query cosine of at least this; a "
                                     "number or none.")] = _show(D.cross_query),
    percentile_margin: Annotated[str, _opt(FILTERS, "Margin in percentiles of the run's own positive scores (0.1: "
                                           "drop candidates above the positive's percentile minus 10 points); a "
                                           "number or none.")] = _show(D.percentile_margin),
    percentile_floor: Annotated[float, _opt(FILTERS, "The percentile margin never drops candidates below this "
                                            "percentile of all positives' scores (0..1).")] = D.percentile_floor,
    percentile_cap: Annotated[float, _opt(FILTERS, "Drop candidates scoring above this percentile of all "
                                          "positives' scores, whatever their own positive scored (0..1; 1: "
                                          "off).")] = D.percentile_cap,
    score_all: Annotated[bool, _opt(FILTERS, "Score every retrieved candidate and gather every rule's evidence, "
                                    "not only what sampling needs: the same picks, more work, and a candidates file "
                                    "that 'negmine refilter' and 'negmine sweep' can re-filter.", "--score-all")]
    = D.score_all,
    promote_false_negatives: PromoteFalseNegatives = D.promote_false_negatives,
    candidates_output: Annotated[Optional[Path], _opt(OUTPUT, "Also write every candidate with its ranks, scores "
                                                      "and fate (selected, kept, not_scored or the rule that dropped "
                                                      "it), and each query's positives with their scores; Parquet, "
                                                      "which refilter and sweep read back.")] = None,
    false_negatives_output: FalseNegativesOutput = None,
    difficulty_bands: DifficultyBands = D.difficulty_bands,
    output_format: Annotated[str, _opt(OUTPUT, f"{_choices(OUTPUT_FORMATS)}: sentence-transformers' layouts, or "
                                       "FlagEmbedding's training data (a row per query: query, pos, neg).")]
    = D.output_format,
    output_scores: Annotated[bool, _opt(OUTPUT, "Add score columns.", "--output-scores")] = D.output_scores,
    prompt: Annotated[Optional[str], _opt(OUTPUT, "With --output-format flagembedding: the instruction written in "
                                          "every row's prompt column (FlagEmbedding puts it before the query).")]
    = D.prompt,
    columns: Annotated[str, _opt(OUTPUT, f"{_choices(COLUMN_SETS)}: every column (texts, ids, any scores), or only "
                                 "what a trainer consumes (the texts and labels; FlagEmbedding's scores and "
                                 "prompt).")] = D.columns,
    dataset_card: Annotated[bool, _opt(OUTPUT, "Also write README.md beside the output: a Hugging Face dataset "
                                       "card (features, inputs, models, settings, statistics). Replaces only a "
                                       "README.md negmine wrote.", "--dataset-card")] = False,
    query_batch_size: Annotated[int, _opt(MINING, "Queries mined at a time: memory follows the batch, not the query "
                                          "set; the output is the same whatever it is.")] = D.query_batch_size,
    resume: Annotated[bool, _opt(MINING, "Keep finished query batches in the cache until the run completes, and "
                                 "continue after them when the same run is started again after a crash.",
                                 "--resume/--no-resume")] = D.resume,
    engine: Engine = D.engine,
    ray_address: RayAddress = D.ray_address,
    workers: Workers = D.workers,
    gpus_per_worker: GpusPerWorker = D.gpus_per_worker,
    allow_empty: Annotated[bool, _opt(OUTPUT, "Write the output even when every candidate was dropped (by default "
                                      "a run that writes no negative fails, naming the rule that dropped most).",
                                      "--allow-empty")] = D.allow_empty,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Mine hard negatives for each query and write them as a training table.

    \b
    Examples:
      negmine mine --corpus corpus.parquet --queries queries.parquet --qrels qrels.parquet \\
          -o negatives.parquet
      negmine mine --pairs pairs.parquet --columns training -o train.parquet
      negmine mine --beir scifact/ --split train --output-format flagembedding -o train.jsonl
      negmine mine --config negmine.toml -n 10 -o negatives.parquet   # flags override the file

    Prints the output path on stdout (with -o -, the JSON Lines rows instead); progress and a summary go to
    stderr.
    """
    options = {k: v for k, v in locals().items() if k not in _NOT_CONFIG}
    from negmine.run.api import mine as run_mine

    corpus, queries, qrels, pairs, beir, split = _inputs_over_file(ctx, corpus, queries, qrels, pairs, beir, split)
    inputs: tuple[Optional[Path], ...] = (corpus, queries, qrels, pairs, corpus_embeddings, query_embeddings)
    to_stdout = str(output) == "-"
    with _reporting(quiet, verbose) as progress:
        settings = _mine_config(ctx, options)
        if dataset_card:
            from negmine.report.card import check_card_path, write_dataset_card

            if to_stdout:
                raise ConfigError("--dataset-card describes an output file: give --output a path, not -")
            if beir is not None and not any((corpus, queries, qrels, pairs)):
                from negmine.inputs.beir import beir_files

                inputs += tuple(beir_files(beir, split or "train").values())
            check_card_path(output, inputs)  # before the work, not after it
        result = run_mine(corpus, queries, qrels, pairs=pairs, beir=beir, split=split, output=output,
                          config=settings, progress=progress, cache_dir=cache_dir, index_dir=index_dir,
                          corpus_embeddings=corpus_embeddings, query_embeddings=query_embeddings,
                          candidates_output=candidates_output, false_negatives_output=false_negatives_output,
                          explicit=_given(ctx, options))
        card = write_dataset_card(output, result.metadata, inputs) if dataset_card else None
    if not quiet:
        from negmine.report.summary import summary_rows

        rows = summary_rows(result.stats, settings.num_negatives)
        if card is not None:
            rows.append(("dataset card", str(card)))
        _print_table("negmine mine", rows, result.seconds if verbose else {},
                     Path("stdout") if to_stdout else result.output)
    if not to_stdout:  # with -o -, stdout holds the rows alone
        typer.echo(str(output))


def _inputs_over_file(ctx: Any, corpus: Any, queries: Any, qrels: Any, pairs: Any, beir: Any, split: Any
                      ) -> tuple[Any, ...]:
    """The inputs of a run, where the command line names inputs of one kind (a BEIR folder, or files) and the
    --config file the other: the command line's replace the file's, as any flag overrides the file."""
    files = {"corpus": corpus, "queries": queries, "qrels": qrels, "pairs": pairs}
    folder = {"beir": beir, "split": split}
    if any(_source(ctx, n) == "COMMANDLINE" for n in folder):
        files = {n: None if _source(ctx, n) == "DEFAULT_MAP" else v for n, v in files.items()}
    elif any(_source(ctx, n) == "COMMANDLINE" for n in files):
        folder = {n: None if _source(ctx, n) == "DEFAULT_MAP" else v for n, v in folder.items()}
    return files["corpus"], files["queries"], files["qrels"], files["pairs"], folder["beir"], folder["split"]


def _mine_config(ctx: Any, options: dict[str, Any]) -> MineConfig:
    """The MineConfig of a command's options; an invalid value that came from the --config file is reported
    with the file's name."""
    options = dict(options)
    try:
        for name in _OPTIONAL_FLOATS:
            if name in options:
                options[name] = _optional_float(options[name], name)
        return MineConfig(**options)
    except ConfigError as exc:
        source = ctx.meta.get(_CONFIG_FILE)
        named = set(re.findall(r"--[a-z0-9-]+", str(exc)))
        if source and any(flag(n) in named and _source(ctx, n) == "DEFAULT_MAP" for n in options):
            raise ConfigError(f"{source}: {exc}") from None
        raise


AS_MINED = " [default: as mined]"
TUNING = "Tuning (each option takes a comma-separated list; the sweep runs every combination)"


def _refilter_options(ctx: Any, values: dict[str, Any]) -> dict[str, Any]:
    """The options of a refilter given on purpose (on the command line or in --config), as MineConfig takes them;
    the others stay as mined."""
    options = {}
    for name, value in values.items():
        if name in _NOT_CONFIG or _source(ctx, name) not in ("COMMANDLINE", "ENVIRONMENT", "DEFAULT_MAP"):
            continue
        options[name] = _optional_float(value, name) if name in _OPTIONAL_FLOATS else value
    return options


@app.command(cls=_Command)
def refilter(
    ctx: typer.Context,
    candidates: Annotated[Path, typer.Argument(help="A candidates file of 'negmine mine --candidates-output' (with "
                                               "--score-all it holds every value any setting needs).",
                                               show_default=False)],
    output: OutputFile,
    config: Config = None,
    corpus: Annotated[Optional[Path], _opt(INPUTS, "The corpus, when not where the candidates file's provenance "
                                           "says (the same bytes).")] = None,
    queries: Annotated[Optional[Path], _opt(INPUTS, "The queries, likewise.")] = None,
    qrels: Annotated[Optional[Path], _opt(INPUTS, "The qrels, likewise.")] = None,
    pairs: Annotated[Optional[Path], _opt(INPUTS, "The pairs file, likewise.")] = None,
    cache_dir: Annotated[Optional[Path], _opt(INPUTS, "Cache for the inputs' Arrow copies [default: "
                                              "$NEGMINE_CACHE_DIR or ~/.cache/negmine].")] = None,
    range_min: Annotated[Optional[int], _opt(MINING, "Skip this many of the best-ranked non-positive candidates."
                                             + AS_MINED, show_default=False)] = None,
    range_max: Annotated[Optional[int], _opt(MINING, "Consider non-positive candidates up to this rank (at most "
                                             "as mined)." + AS_MINED, show_default=False)] = None,
    num_negatives: Annotated[Optional[int], _opt(MINING, "Negatives per query-positive pair." + AS_MINED,
                                                 "--num-negatives", "-n", show_default=False)] = None,
    sampling_strategy: Annotated[Optional[str], _opt(MINING, f"{_choices(SAMPLING_STRATEGIES)}." + AS_MINED,
                                                     show_default=False)] = None,
    simans_a: Annotated[Optional[float], _opt(MINING, "SimANS a." + AS_MINED, show_default=False)] = None,
    simans_b: Annotated[Optional[float], _opt(MINING, "SimANS b." + AS_MINED, show_default=False)] = None,
    seed: Annotated[Optional[int], _opt(MINING, "Random seed." + AS_MINED, show_default=False)] = None,
    absolute_margin: Annotated[Optional[str], _opt(FILTERS, "Drop candidates scoring above positive - M; a number "
                                                   "or none." + AS_MINED, show_default=False)] = None,
    relative_margin: Annotated[Optional[str], _opt(FILTERS, "Drop candidates scoring above positive - |positive| "
                                                   "x R; a number, none or auto." + AS_MINED, show_default=False)]
    = None,
    max_score: Annotated[Optional[str], _opt(FILTERS, "Drop candidates scoring above this; a number or none."
                                             + AS_MINED, show_default=False)] = None,
    min_score: Annotated[Optional[str], _opt(FILTERS, "Drop candidates scoring below this; a number or none."
                                             + AS_MINED, show_default=False)] = None,
    margin_reference: Annotated[Optional[str], _opt(FILTERS, f"{_choices(MARGIN_REFERENCES)}." + AS_MINED,
                                                    show_default=False)] = None,
    max_positive_similarity: Annotated[Optional[str], _opt(FILTERS, "Near-duplicate cosine; a number or none."
                                                           + AS_MINED, show_default=False)] = None,
    positive_proximity: Annotated[Optional[str], _opt(FILTERS, "Positive-proximity margin; a number or none."
                                                      + AS_MINED, show_default=False)] = None,
    lexical_overlap: Annotated[Optional[str], _opt(FILTERS, "Lexical overlap share; a number or none." + AS_MINED,
                                                   show_default=False)] = None,
    agreement: Annotated[Optional[bool], _opt(FILTERS, "The agreement rule." + AS_MINED,
                                              "--agreement/--no-agreement", show_default=False)] = None,
    cross_query: Annotated[Optional[str], _opt(FILTERS, "Twin-query cosine; a number or none." + AS_MINED,
                                               show_default=False)] = None,
    percentile_margin: Annotated[Optional[str], _opt(FILTERS, "Percentile margin; a number or none." + AS_MINED,
                                                     show_default=False)] = None,
    percentile_floor: Annotated[Optional[float], _opt(FILTERS, "Percentile floor (0..1)." + AS_MINED,
                                                      show_default=False)] = None,
    percentile_cap: Annotated[Optional[float], _opt(FILTERS, "Percentile cap (0..1)." + AS_MINED,
                                                    show_default=False)] = None,
    score_all: Annotated[Optional[bool], _opt(FILTERS, "Count every candidate as scored (the statistics of a "
                                              "--score-all run)." + AS_MINED, "--score-all/--no-score-all",
                                              show_default=False)] = None,
    promote_false_negatives: Annotated[Optional[bool], _opt(FILTERS, "Write likely false negatives as extra "
                                                            "positives." + AS_MINED,
                                                            "--promote-false-negatives/--no-promote-false-negatives",
                                                            show_default=False)] = None,
    output_format: Annotated[Optional[str], _opt(OUTPUT, f"{_choices(OUTPUT_FORMATS)}." + AS_MINED,
                                                 show_default=False)] = None,
    output_scores: Annotated[Optional[bool], _opt(OUTPUT, "Add score columns." + AS_MINED,
                                                  "--output-scores/--no-output-scores", show_default=False)] = None,
    prompt: Annotated[Optional[str], _opt(OUTPUT, "FlagEmbedding's prompt column (--output-format flagembedding)."
                                          + AS_MINED, show_default=False)] = None,
    columns: Annotated[Optional[str], _opt(OUTPUT, f"{_choices(COLUMN_SETS)}." + AS_MINED, show_default=False)]
    = None,
    difficulty_bands: Annotated[Optional[int], _opt(OUTPUT, "Difficulty bands per negative." + AS_MINED,
                                                    show_default=False)] = None,
    false_negatives_output: FalseNegativesOutput = None,
    allow_empty: Annotated[bool, _opt(OUTPUT, "Write the output even when every candidate was dropped.",
                                      "--allow-empty")] = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Re-apply the rules and the sampling to a candidates file with other settings, without a model, a retrieval
    or a score computed again: the output 'negmine mine' would have written with them.

    \b
    Examples:
      negmine mine ... --score-all --candidates-output cand.parquet -o neg.parquet
      negmine refilter cand.parquet --relative-margin 0.1 -n 10 -o neg-0.1.parquet

    Options not given keep the values the candidates were mined with. A value the file lacks (mined without
    --score-all, lazy scoring never reached it) is an error naming it. Prints the output path on stdout (with
    -o -, the JSON Lines rows instead).
    """
    from negmine.run.api import refilter as run_refilter

    values = {k: v for k, v in locals().items() if k not in ("ctx", "candidates")}
    with _reporting(quiet, verbose) as progress:
        options = _refilter_options(ctx, values)
        if allow_empty:
            options["allow_empty"] = True
        result = run_refilter(candidates, output, corpus=corpus, queries=queries, qrels=qrels, pairs=pairs,
                              cache_dir=cache_dir, progress=progress, false_negatives_output=false_negatives_output,
                              **options)
    if not quiet:
        from negmine.report.summary import summary_rows

        rows = summary_rows(result.stats, int(result.metadata["config"]["num_negatives"]), cache_counts=False)
        _print_table("negmine refilter", rows, result.seconds if verbose else {},
                     Path("stdout") if str(output) == "-" else result.output)
    if str(output) != "-":  # with -o -, stdout holds the rows alone
        typer.echo(str(output))


def _list_of(name: str, text: Optional[str]) -> Optional[list[Any]]:
    """A swept option's comma-separated values, as MineConfig takes them."""
    if text is None:
        return None
    from negmine.settings.files import option_kinds

    kind = option_kinds()[name]
    out: list[Any] = []
    for part in (p.strip() for p in str(text).split(",")):
        try:
            if name in _OPTIONAL_FLOATS:
                out.append(_optional_float(part, name))
            elif kind == "bool":
                if part.lower() not in ("true", "false", "yes", "no", "on", "off", "1", "0"):
                    raise ValueError(part)
                out.append(part.lower() in ("true", "yes", "on", "1"))
            elif kind in ("int", "optional int"):
                out.append(int(part))
            elif kind in ("float", "optional float"):
                out.append(float(part))
            else:
                out.append(part)
        except ValueError:
            raise ConfigError(f"{flag(name)}: {part!r} is not a value of it (a comma-separated list)") from None
    return out


def _sweep_opt(help: str, *names: str) -> Any:
    return _opt(TUNING, help + " Comma-separated values.", *names, show_default=False)


@app.command(cls=_Command)
def sweep(
    candidates: Annotated[Path, typer.Argument(help="A candidates file of 'negmine mine --score-all "
                                               "--candidates-output'.", show_default=False)],
    relative_margin: Annotated[Optional[str], _sweep_opt("Relative margins (numbers, none, auto).")] = None,
    absolute_margin: Annotated[Optional[str], _sweep_opt("Absolute margins (numbers or none).")] = None,
    max_score: Annotated[Optional[str], _sweep_opt("Maximum scores (numbers or none).")] = None,
    min_score: Annotated[Optional[str], _sweep_opt("Minimum scores (numbers or none).")] = None,
    margin_reference: Annotated[Optional[str], _sweep_opt(f"Margin references ({_choices(MARGIN_REFERENCES)}).")]
    = None,
    max_positive_similarity: Annotated[Optional[str], _sweep_opt("Near-duplicate cosines (numbers or none).")]
    = None,
    positive_proximity: Annotated[Optional[str], _sweep_opt("Positive-proximity margins (numbers or none).")]
    = None,
    lexical_overlap: Annotated[Optional[str], _sweep_opt("Lexical overlap shares (numbers or none).")] = None,
    agreement: Annotated[Optional[str], _sweep_opt("The agreement rule on or off (true, false).")] = None,
    cross_query: Annotated[Optional[str], _sweep_opt("Twin-query cosines (numbers or none).")] = None,
    percentile_margin: Annotated[Optional[str], _sweep_opt("Percentile margins (numbers or none).")] = None,
    percentile_floor: Annotated[Optional[str], _sweep_opt("Percentile floors (0..1).")] = None,
    percentile_cap: Annotated[Optional[str], _sweep_opt("Percentile caps (0..1).")] = None,
    range_min: Annotated[Optional[str], _sweep_opt("Window starts.")] = None,
    range_max: Annotated[Optional[str], _sweep_opt("Window ends (at most as mined).")] = None,
    num_negatives: Annotated[Optional[str], _sweep_opt("Negatives per pair.", "--num-negatives", "-n")] = None,
    sampling_strategy: Annotated[Optional[str], _sweep_opt(f"Strategies ({_choices(SAMPLING_STRATEGIES)}).")]
    = None,
    simans_a: Annotated[Optional[str], _sweep_opt("SimANS a values.")] = None,
    simans_b: Annotated[Optional[str], _sweep_opt("SimANS b values.")] = None,
    seed: Annotated[Optional[str], _sweep_opt("Seeds (random and simans sampling).")] = None,
    corpus: Annotated[Optional[Path], _opt(INPUTS, "The corpus, when not where the candidates file's provenance "
                                           "says.")] = None,
    queries: Annotated[Optional[Path], _opt(INPUTS, "The queries, likewise.")] = None,
    qrels: Annotated[Optional[Path], _opt(INPUTS, "The qrels, likewise.")] = None,
    pairs: Annotated[Optional[Path], _opt(INPUTS, "The pairs file, likewise.")] = None,
    cache_dir: Annotated[Optional[Path], _opt(INPUTS, "Cache for the inputs' Arrow copies.")] = None,
    png: Annotated[Optional[Path], _opt(OUTPUT, "Where to draw the trade-off [default: CANDIDATES with "
                                        ".sweep.png].")] = None,
    json: Annotated[bool, _opt(OUTPUT, "Print the results as JSON on stdout instead of the PNG's path.",
                               "--json")] = False,
    quiet: Quiet = False,
) -> None:
    """Try settings of the rules and the sampling on a candidates file, in seconds: per setting (every
    combination of the lists given), the negatives written, the queries served, and the scores and ranks of the
    picks; with a PNG of the trade-off. Nothing is written but the PNG.

    \b
    Examples:
      negmine sweep cand.parquet --relative-margin 0,0.05,0.1,0.2
      negmine sweep cand.parquet --range-max 50,100,200 --sampling-strategy top,simans --json > sweep.json

    Then write the chosen one with 'negmine refilter cand.parquet --relative-margin 0.05 -o neg.parquet'.
    """
    import json as json_module

    from negmine.run.sweep import SWEEP_OPTIONS, rows_table
    from negmine.run.sweep import sweep as run_sweep

    given = {k: v for k, v in locals().items() if k in SWEEP_OPTIONS and v is not None}
    with _reporting(quiet, False) as progress:
        grid = {k: values for k, v in given.items() if (values := _list_of(k, v)) is not None}
        if not grid:
            raise ConfigError("nothing to sweep: give at least one option with a comma-separated list of values, "
                              "e.g. --relative-margin 0,0.05,0.1")
        target = png if png is not None else candidates.with_suffix(".sweep.png")
        result = run_sweep(candidates, grid, png=target, corpus=corpus, queries=queries, qrels=qrels, pairs=pairs,
                           cache_dir=cache_dir, progress=progress)
    if json:
        typer.echo(json_module.dumps(result.to_dict(), indent=2, default=str))
        return
    if not quiet:
        from rich.table import Table

        header, rows = rows_table(result)
        table = Table(title=f"negmine sweep {candidates} (scores: {result.scorer})", title_justify="left")
        for h in header:
            table.add_column(h, justify="right")
        for r in rows:
            table.add_row(*r)
        _stderr().print(table)
        _stderr().print(f"read in {result.seconds['read']:.2f} s; {len(rows)} settings in "
                        f"{result.seconds['settings']:.2f} s", markup=False)
    typer.echo(str(result.png))


@app.command(cls=_Command)
def evaluate(
    output: Annotated[Path, typer.Argument(help="An output of 'negmine mine' or 'negmine refilter' (with its id "
                                           "columns).", show_default=False)],
    qrels: Annotated[Path, _opt(INPUTS, "Fuller relevance judgments (more relevant documents than the miner saw); "
                                "rows with a score > 0 are relevant.", show_default=False)],
    candidates: Annotated[Optional[Path], _opt(INPUTS, "The run's candidates file: each rule's precision, and the "
                                               "judge's scores for the bands.")] = None,
    qrels_query_column: QrelsQueryColumn = None,
    qrels_doc_column: QrelsDocColumn = None,
    qrels_score_column: QrelsScoreColumn = None,
    bands: Annotated[int, _opt(OUTPUT, "Score bands.")] = 5,
    json: Annotated[bool, _opt(OUTPUT, "Print the figures as JSON on stdout.", "--json")] = False,
    quiet: Quiet = False,
) -> None:
    """Audit an output against fuller judgments: the false-negative rate of the written negatives with a 95%
    confidence interval, the share of each rule's drops judged relevant (its precision, from the candidates
    file), the false-negative rate by score band and by the positive's strength, and the queries served.

    \b
    Examples:
      negmine evaluate neg.parquet --qrels dev-full-qrels.parquet --candidates cand.parquet
      negmine evaluate neg.parquet --qrels full.parquet --json > audit.json
      negmine report neg.parquet --qrels full.parquet --candidates cand.parquet   # the same, in the HTML report
    """
    import json as json_module

    from negmine.report.audit import evaluate as run_evaluate
    from negmine.report.audit import evaluation_rows

    if bands < 1:
        raise typer.BadParameter("must be at least 1", param_hint="--bands")
    with _reporting(quiet, False):
        result = run_evaluate(output, qrels, candidates=candidates, qrels_query_column=qrels_query_column,
                              qrels_doc_column=qrels_doc_column, qrels_score_column=qrels_score_column, bands=bands)
    if json:
        typer.echo(json_module.dumps(result.to_dict(), indent=2, default=str))
        return
    if not quiet:
        _print_table(f"negmine evaluate {output} against {qrels}", evaluation_rows(result), {}, None)
    typer.echo(f"{result.false_negatives.rate:.6f}")


@app.command(cls=_Command)
def index(
    ctx: typer.Context,
    corpus: Annotated[Path, _opt(INPUTS, f"Corpus file (ids, texts, optional titles): {FILE_KINDS}.",
                                 show_default=False)],
    index_dir: Annotated[Path, _opt(INPUTS, "Directory to build the indexes in (created if missing).",
                                    show_default=False)],
    config: Config = None,
    corpus_id_column: CorpusIdColumn = None,
    corpus_text_column: CorpusTextColumn = None,
    corpus_title_column: CorpusTitleColumn = None,
    retriever: Retriever = D.retriever,
    bm25_k1: BM25K1 = D.bm25_k1,
    bm25_b: BM25B = D.bm25_b,
    bm25_method: BM25Method = D.bm25_method,
    bm25_stemmer: BM25Stemmer = D.bm25_stemmer,
    bm25_stopwords: BM25Stopwords = D.bm25_stopwords,
    model: Model = D.model,
    corpus_prompt: CorpusPrompt = D.corpus_prompt,
    corpus_prompt_name: CorpusPromptName = D.corpus_prompt_name,
    batch_size: BatchSize = D.batch_size,
    max_seq_length: MaxSeqLength = D.max_seq_length,
    device: Device = D.device,
    precision: Precision = D.precision,
    faiss_index: FaissIndex = D.faiss_index,
    engine: Engine = D.engine,
    ray_address: RayAddress = D.ray_address,
    workers: Workers = D.workers,
    gpus_per_worker: GpusPerWorker = D.gpus_per_worker,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Build the BM25 and dense indexes of a corpus into a directory, for 'negmine mine --index-dir'.

    \b
    Example:
      negmine index --corpus corpus.parquet --index-dir idx/ && negmine mine --index-dir idx/ ...

    Re-running it after the corpus changed encodes only the documents whose text changed. Use the same retriever,
    model and BM25 settings as the later 'mine' runs: one --config file can serve both (index skips the options
    only mine takes). Prints the index directory on stdout.
    """
    options = {k: v for k, v in locals().items() if k not in _NOT_CONFIG}
    from negmine.run.api import build_index

    with _reporting(quiet, verbose) as progress:
        result = build_index(corpus, index_dir, config=_mine_config(ctx, options), progress=progress)
    if not quiet:
        rows = [("documents", f"{result.documents:,}"),
                ("texts encoded / from cache", f"{result.texts_encoded:,} / {result.texts_cached:,}"),
                ("size", f"{result.bytes / 2**20:,.1f} MiB")]
        _print_table("negmine index", rows, result.seconds if verbose else {}, Path(index_dir))
    typer.echo(str(index_dir))


@app.command(cls=_Command)
def report(
    path: Annotated[Path, typer.Argument(help="A file written by negmine mine (output or candidates): Parquet, or "
                                         "JSON Lines with its OUT.provenance.json.", show_default=False)],
    png: Annotated[Optional[Path], _opt(OUTPUT, "Where to write the picture [default: PATH with .report.png].")]
    = None,
    html: Annotated[Optional[Path], _opt(OUTPUT, "Where to write the HTML page [default: PATH with .report.html].")]
    = None,
    qrels: Annotated[Optional[Path], _opt(INPUTS, "Fuller relevance judgments: add the audit of 'negmine evaluate' "
                                          "(false negatives, each rule's precision) to the report.")] = None,
    candidates: Annotated[Optional[Path], _opt(INPUTS, "The run's candidates file, for the audit's per-rule "
                                               "precision and score bands.")] = None,
    quiet: Quiet = False,
) -> None:
    """Summarise a mining run from its output file: counts per rule, score quantiles, short queries, and a picture
    of positive vs negative scores and drops per rule (PNG and a self-contained HTML page).

    \b
    Example:
      negmine report negatives.parquet

    Prints the paths of the PNG and the HTML page on stdout.
    """
    from negmine.report import page as rep

    with _reporting(quiet, False):
        if candidates is not None and qrels is None:
            raise ConfigError("--candidates serves the audit: give --qrels with it")
        data, png, html = rep.write_report(path, png, html, qrels, candidates)
    if not quiet:
        rows = rep.report_rows(data)
        if data.get("evaluation") is not None:
            from negmine.report.audit import evaluation_rows

            rows += [(f"audit: {k}", v) for k, v in evaluation_rows(data["evaluation"])]
        _print_table(f"negmine report {path}", rows, {}, None)
    typer.echo(str(png))
    typer.echo(str(html))


@config_app.command("show", cls=_Command, context_settings={"ignore_unknown_options": True,
                                                           "allow_extra_args": True})
def config_show(ctx: typer.Context) -> None:
    """Print the settings of a 'negmine mine' run as TOML, after the --config file and the flags: every option,
    'none' for an unset number, a comment for an unset name or path. It takes every option of 'negmine mine'
    (--output is optional here) and runs nothing; warnings about options without effect go to stderr.

    \b
    Examples:
      negmine config show --config negmine.toml -n 10
      negmine config show --retriever bm25 > negmine.toml && negmine mine --config negmine.toml -o neg.parquet
    """
    from negmine.settings import files as configfile

    command = _mine_command(output_required=False)
    sub = command.make_context("show", list(ctx.args), parent=ctx.parent)  # errors read "negmine config show"
    options = {k: v for k, v in sub.params.items() if k not in _NOT_CONFIG}
    with _reporting(True, False):
        settings = _mine_config(sub, options)
        for message in settings.ineffective(_given(sub, options)):
            logging.getLogger("negmine").warning(message)
    resolved = settings.to_dict()
    values = {p.name: resolved[p.name] if p.name in resolved else _plain(sub.params.get(p.name))
              for p in command.params if p.name in sub.params and p.name != "config"}
    header = ["negmine mine settings" + (f", from {sub.meta[_CONFIG_FILE]} and the command line"
                                         if _CONFIG_FILE in sub.meta else ", from the command line")]
    typer.echo(configfile.config_to_toml(values, _groups(command), header), nl=False)


@config_app.command("from", cls=_Command)
def config_from(
    path: Annotated[Path, typer.Argument(help="A file written by negmine mine: Parquet, or JSON Lines with its "
                                         "OUT.provenance.json.", show_default=False)],
) -> None:
    """Print as TOML the settings an output was mined with (from its provenance): the input paths as they were
    given, and every option. Rerun it, byte for byte, from the same directory:

    \b
    Example:
      negmine mine --config <(negmine config from old.parquet) -o new.parquet
    """
    from negmine.output.provenance import read_metadata
    from negmine.settings import files as configfile

    with _reporting(True, False):
        meta = read_metadata(path)
        values = configfile.config_from_metadata(meta, str(path))
    inputs = meta.get("inputs") or {}
    header = [f"negmine mine settings of {path} (negmine {meta.get('negmine_version', '?')})",
              *(f"{role} fingerprint when mined: {item.get('fingerprint')}" for role, item in inputs.items())]
    command = _mine_command()
    order = {p.name: i for i, p in enumerate(command.params)}
    values = dict(sorted(values.items(), key=lambda kv: order.get(kv[0], len(order))))
    typer.echo(configfile.config_to_toml(values, _groups(command), header), nl=False)


CacheDir = Annotated[Optional[Path], _opt(INPUTS, "The cache folder (or an index folder) [default: "
                                        "$NEGMINE_CACHE_DIR or ~/.cache/negmine].")]


def _cache_root(cache_dir: Optional[Path]) -> tuple[Path, str]:
    from negmine.storage.cache import cache_option, resolve_cache_dir

    return resolve_cache_dir(cache_dir, None), cache_option(cache_dir, None)


def _age(seconds: Optional[float], now: float) -> str:
    if seconds is None:
        return "-"
    age = max(0.0, now - seconds)
    if age >= 86400:
        return f"{age / 86400:.1f} days ago"
    return f"{age / 3600:.1f} hours ago" if age >= 3600 else f"{age / 60:.0f} minutes ago"


@cache_app.command("info", cls=_Command)
def cache_info(
    cache_dir: CacheDir = None,
    json: Annotated[bool, _opt(OUTPUT, "Print it as JSON.", "--json")] = False,
) -> None:
    """Show what the cache folder holds: per part (inputs, embeddings, bm25, vectors, faiss, runs) the entries, their
    size, and when the oldest and the newest were last used.

    \b
    Example:
      negmine cache info --cache-dir /data/negmine-cache
    """
    import json as json_module
    import time

    from negmine.storage.housekeeping import info

    with _reporting(True, False):
        root, option = _cache_root(cache_dir)
        found = info(root, option)
    if json:
        typer.echo(json_module.dumps(found.to_dict(), indent=2))
        return
    now = time.time()
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"negmine cache {root}", title_justify="left")
    for column in ("part", "entries", "MiB", "oldest use", "newest use"):
        table.add_column(column, justify="right" if column in ("entries", "MiB") else "left")
    for name, part in found.parts.items():
        table.add_row(name, f"{part.entries:,}", f"{part.bytes / 2**20:,.1f}", _age(part.oldest, now),
                      _age(part.newest, now))
    table.add_row("all", "", f"{found.bytes / 2**20:,.1f}", "", "")
    Console(highlight=False).print(table)


@cache_app.command("prune", cls=_Command)
def cache_prune(
    cache_dir: CacheDir = None,
    older_than: Annotated[str, _opt(MINING, "Remove the entries last used longer ago than this: 7d, 12h, 30m, 2w "
                                            "(a bare number is days); 0 removes every entry.")] = "0",
    part: Annotated[Optional[list[str]], _opt(MINING, "Only this part: inputs, embeddings, bm25, vectors, faiss or "
                                                      "runs (repeat it for several) [default: all].")] = None,
    dry_run: Annotated[bool, _opt(OUTPUT, "List what would be removed, remove nothing.", "--dry-run")] = False,
    quiet: Quiet = False,
) -> None:
    """Remove cache entries not used for a while: input copies, indexes, embeddings of a model, and the batches of
    runs that never completed. Prints each removed entry's path on stdout; an embeddings entry a running process
    reads from is left (and counted). Prune while no run uses the cache.

    \b
    Examples:
      negmine cache prune --older-than 7d
      negmine cache prune --part runs --dry-run
    """
    from negmine.storage.housekeeping import parse_age, prune

    with _reporting(quiet, False):
        root, option = _cache_root(cache_dir)
        result = prune(root, parse_age(older_than), part, dry_run, option)
    for entry in result.removed:
        typer.echo(str(entry.path))
    if not quiet:
        verb = "would remove" if dry_run else "removed"
        rows = [(f"{verb}", f"{len(result.removed):,} entries, {result.bytes / 2**20:,.1f} MiB")]
        if result.busy:
            rows.append(("left (in use)", f"{len(result.busy):,} entries"))
        _print_table(f"negmine cache prune {root}", rows, {}, None)


def _mine_command(output_required: bool = True) -> Any:
    """The click command of 'negmine mine'; a copy whose --output is optional for ``output_required=False``."""
    import copy

    command = typer.main.get_command(app).commands["mine"]  # type: ignore[attr-defined]
    if output_required:
        return command
    command = copy.copy(command)
    command.params = [copy.copy(p) for p in command.params]
    for p in command.params:
        if p.name == "output":
            p.required = False
    return command


def _groups(command: Any) -> dict[str, str]:
    """Option name -> its help group, for the comments of a TOML config."""
    return {p.name: p.rich_help_panel for p in command.params if getattr(p, "rich_help_panel", None)}


def _plain(value: Any) -> Any:
    return str(value) if isinstance(value, Path) else value


_NOT_CONFIG = {"output", "corpus", "queries", "qrels", "pairs", "beir", "split", "quiet", "verbose", "cache_dir",
               "index_dir", "corpus_embeddings", "query_embeddings", "candidates_output", "ctx", "config",
               "dataset_card", "false_negatives_output", "candidates", "path", "json", "html", "png"}
_OPTIONAL_FLOATS = ("absolute_margin", "relative_margin", "max_score", "min_score", "max_positive_similarity",
                    "positive_proximity", "lexical_overlap", "cross_query", "percentile_margin")


def _source(ctx: Any, name: str) -> str:
    """Where an option's value came from: COMMANDLINE, ENVIRONMENT, DEFAULT_MAP (the --config file), DEFAULT."""
    return getattr(ctx.get_parameter_source(name), "name", "")


def _given(ctx: Any, names: Any) -> list[str]:
    """The options among ``names`` that were set on purpose: on the command line, or in the --config file to a
    value other than the default (a file written by ``negmine config show`` or ``config from`` lists every
    option; its defaults are not choices to warn about)."""
    if ctx is None:
        return []
    defaults = {p.name: p.default for p in ctx.command.params}
    given = []
    for name in names:
        source = _source(ctx, name)
        if source in ("COMMANDLINE", "ENVIRONMENT") or (
                source == "DEFAULT_MAP" and ctx.params.get(name) != defaults.get(name)):
            given.append(name)
    return given


def _optional_float(value: str, name: str) -> Union[float, str, None]:
    if value.strip().lower() in ("none", "off", ""):
        return None
    if name == "relative_margin" and value.strip().lower() == "auto":
        return "auto"
    try:
        return float(value)
    except ValueError:
        choices = "a number, 'none' or 'auto'" if name == "relative_margin" else "a number or 'none'"
        raise ConfigError(f"{flag(name)} takes {choices}, got {value!r}") from None


class RichProgress(Progress):
    """Progress bars on stderr, one line per stage."""

    def __init__(self, bar: Any) -> None:
        self.bar = bar

    @contextmanager
    def stage(self, description: str, total: Optional[int] = None) -> Iterator[Advance]:
        task = self.bar.add_task(description, total=total)

        def advance(n: int = 1) -> None:
            self.bar.advance(task, n)

        yield advance
        done = next((t.completed for t in self.bar.tasks if t.id == task), 0) or 1
        self.bar.update(task, total=done, completed=done)  # a lazy stage may end before its bound


def _stderr() -> Any:
    from rich.console import Console

    return Console(stderr=True, highlight=False)


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled as Ctrl-C is: temporary files are removed on the way out."""


def _on_sigterm(signum: int, frame: Any) -> None:
    raise Terminated()


@contextmanager
def _reporting(quiet: bool, verbose: bool) -> Iterator[Progress]:
    """Logging and progress for one command (a bar on a terminal, plain lines elsewhere). NegmineError, and any
    OSError that reaches here, becomes a one-line message and its exit code; Ctrl-C prints 'interrupted' (130)."""
    console = _stderr()
    handler = _ConsoleHandler(console)
    log = logging.getLogger("negmine")
    log.addHandler(handler)
    log.setLevel(logging.DEBUG if verbose else logging.WARNING)
    if quiet and verbose:
        log.warning("--quiet and --verbose together: no progress and no summary, but debug logs")
    try:
        if quiet:
            yield Progress()
        elif not console.is_terminal:
            yield LineProgress(lambda line: console.print(line, markup=False, soft_wrap=True, highlight=False))
        else:
            from rich.progress import BarColumn, MofNCompleteColumn, SpinnerColumn, TextColumn, TimeElapsedColumn
            from rich.progress import Progress as Bar

            with Bar(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                     TimeElapsedColumn(), console=console) as bar:
                yield RichProgress(bar)
    except NegmineError as exc:
        console.print(f"negmine: error: {exc}", markup=False, soft_wrap=True)
        raise typer.Exit(exc.exit_code) from None
    except OSError as exc:  # an edge the library did not name: still one line, with the path
        where = exc.filename or "negmine"
        console.print(f"negmine: error: {storage_error(where, exc)}", markup=False, soft_wrap=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt as exc:
        console.print("negmine: interrupted", markup=False)
        raise typer.Exit(143 if isinstance(exc, Terminated) else 130) from None
    finally:
        log.removeHandler(handler)


class _ConsoleHandler(logging.Handler):
    def __init__(self, console: Any) -> None:
        super().__init__()
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        self.console.print(f"negmine: {record.levelname.lower()}: {record.getMessage()}", markup=False,
                           soft_wrap=True)


def _print_table(title: str, rows: list[tuple[str, str]], seconds: dict[str, float], output: Optional[Path]) -> None:
    from rich.table import Table

    table = Table(title=title, show_header=False, title_justify="left")
    for label, value in rows:
        table.add_row(label, value)
    for stage, secs in seconds.items():
        table.add_row(f"time: {stage}", f"{secs:.2f} s")
    if output is not None:
        table.add_row("output", str(output))
    _stderr().print(table)


def main() -> None:
    """Entry point of the ``negmine`` console script."""
    import signal

    signal.signal(signal.SIGTERM, _on_sigterm)
    app(prog_name="negmine")


if __name__ == "__main__":  # pragma: no cover
    main()
