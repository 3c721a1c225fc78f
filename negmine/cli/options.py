"""The options of the commands, declared once: per option its help group, help and flags. Its type comes from
the settings (``negmine.settings.files.option_kinds``), its default from ``MineConfig``, and the rules' options
(help included) from the rules themselves (``negmine.rules``); a command lists the options it takes by name, in
the order its ``--help`` shows them, in one of three forms (``parameters``):

- ``mine``: the option with its default (``negmine mine``, ``negmine index``);
- ``as mined``: optional, not given means as the candidates were mined (``negmine refilter``);
- ``list``: a comma-separated list of values to try (``negmine sweep``).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional, TypeVar

import typer
from typing_extensions import Annotated

from negmine.errors import ConfigError
from negmine.rules.registry import OPTIONS as RULE_OPTIONS
from negmine.settings import files as configfile
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
)

INPUTS = "Inputs"
COLUMNS = "Input columns (detected from the usual names when not given)"
BM25 = "BM25"
DENSE = "Dense retrieval"
FILTERS = "False-negative filters"
MINING = "Mining"
OUTPUT = "Output"
TUNING = "Tuning (each option takes a comma-separated list; the sweep runs every combination)"

#: What ``as mined`` options add to their help.
AS_MINED = " [default: as mined]"

#: The input formats, as the options' help says them.
FILE_KINDS = "Parquet, or .jsonl / .csv / .tsv (each optionally .gz)"

#: Key of ``ctx.meta`` naming the --config file a command read.
CONFIG_FILE = "negmine.config_file"


def choices(values: Iterable[str]) -> str:
    return "|".join(values)


@dataclass(frozen=True)
class Setting:
    """An option as the commands show it: its help group, its help, its flags (default: from its name) and any
    other ``typer.Option`` arguments."""

    panel: str
    help: str
    flags: tuple[str, ...] = ()
    show_default: bool = True
    extra: Mapping[str, Any] = field(default_factory=dict)
    kind: Optional[str] = None  # an option that is not a setting of a run: its kind (``path``, ``bool``)


def _s(panel: str, help: str, *flags: str, show_default: bool = True) -> Setting:
    return Setting(panel, help, flags, show_default)


def _load_config(ctx: typer.Context, param: typer.CallbackParam, value: Optional[Path]) -> Optional[Path]:
    """``--config FILE``: load the file into the command's default_map, so that its values stand in for the
    defaults and flags given on the command line still win. Eager: it runs before the other options are read."""
    if value is None or ctx.resilient_parsing:
        return value
    names = {p.name for p in ctx.command.params if p.name and p.name != "config"}
    try:
        values = configfile.load_config_file(value, allowed=names, ignored=configfile.option_kinds())
    except ConfigError as exc:
        typer.echo(f"negmine: error: {exc}", err=True)
        raise typer.Exit(exc.exit_code) from None
    ctx.default_map = {**(ctx.default_map or {}), **{k: cli_value(k, v) for k, v in values.items()}}
    ctx.meta[CONFIG_FILE] = str(value)
    return value


SETTINGS: dict[str, Setting] = {
    # Inputs
    "output": _s(INPUTS, "File to write (atomically), in the format its extension says: .parquet, .jsonl or "
                 ".jsonl.gz (provenance in OUT.provenance.json); - writes JSON Lines to stdout.", "--output", "-o",
                 show_default=False),
    "config": Setting(INPUTS, "TOML file of options, under their flag names without dashes (num-negatives = 5, "
                      'relative-margin = "none"); flags given here override it.', ("--config",), False,
                      {"is_eager": True, "callback": _load_config}, kind="path"),
    "corpus": _s(INPUTS, f"Corpus file (ids, texts, optional titles): {FILE_KINDS}."),
    "queries": _s(INPUTS, "Query file (ids, texts), as --corpus."),
    "qrels": _s(INPUTS, "Relevance judgments file, as --corpus; rows with score <= 0 are not positives."),
    "pairs": _s(INPUTS, "Instead of --queries/--qrels: file of (anchor, positive) text pairs, as --corpus; the "
                "corpus defaults to the positives."),
    "beir": _s(INPUTS, "Instead of --corpus/--queries/--qrels: a BEIR folder (corpus.jsonl, queries.jsonl, "
               "qrels/SPLIT.tsv; or .gz)."),
    "split": _s(INPUTS, "The qrels split of --beir (qrels/SPLIT.tsv) [default: train]."),
    "cache_dir": _s(INPUTS, "Cache for embeddings and indexes [default: $NEGMINE_CACHE_DIR or ~/.cache/negmine]."),
    "index_dir": _s(INPUTS, "Directory built by 'negmine index', used instead of the cache."),
    "corpus_embeddings": _s(INPUTS, "Precomputed corpus vectors: .npy in corpus row order, or Parquet with id and "
                            "vector columns."),
    "query_embeddings": _s(INPUTS, "Precomputed query vectors: .npy in query row order, or Parquet with id and "
                           "vector columns."),
    "strict": _s(INPUTS, "Fail on qrels naming unknown queries or documents, and on empty query texts, instead of "
                 "skipping them with a warning.", "--strict"),
    # Input columns
    "corpus_id_column": _s(COLUMNS, "Corpus id column [_id, id, doc_id, ...]."),
    "corpus_text_column": _s(COLUMNS, "Corpus text column [text, contents, ...]."),
    "corpus_title_column": _s(COLUMNS, "Corpus title column, joined before the text [title]; '' ignores it."),
    "query_id_column": _s(COLUMNS, "Query id column [_id, id, query_id, qid]."),
    "query_text_column": _s(COLUMNS, "Query text column [text, query, question]."),
    "qrels_query_column": _s(COLUMNS, "Qrels query id column [query-id, query_id, qid]."),
    "qrels_doc_column": _s(COLUMNS, "Qrels document id column [corpus-id, doc_id, ...]."),
    "qrels_score_column": _s(COLUMNS, "Qrels score column [score, relevance, label]; without one every row is "
                             "positive."),
    "pairs_anchor_column": _s(COLUMNS, "Pairs query text column [anchor, query, question]."),
    "pairs_positive_column": _s(COLUMNS, "Pairs positive text column [positive, pos, ...]."),
    # Mining
    "retriever": _s(MINING, f"Candidate retriever: {choices(RETRIEVERS)} (hybrid: BM25 and dense, fused)."),
    "fusion": _s(MINING, f"Hybrid fusion: {choices(FUSIONS)} (reciprocal rank fusion, or the sum of min-max "
                 "normalised scores)."),
    "rrf_k": _s(MINING, "Reciprocal rank fusion constant."),
    "range_min": _s(MINING, "Skip this many of the best-ranked non-positive candidates."),
    "range_max": _s(MINING, "Consider non-positive candidates up to this rank (exclusive)."),
    "num_negatives": _s(MINING, "Negatives per query-positive pair.", "--num-negatives", "-n"),
    "sampling_strategy": _s(MINING, f"{choices(SAMPLING_STRATEGIES)}: the best-ranked eligible candidates, a seeded "
                            "uniform sample of them, or a seeded sample weighted by SimANS (exp(-a (s - s_positive - "
                            "b)^2) of the judge's scores: candidates scoring near the positive are favoured)."),
    "simans_a": _s(MINING, "SimANS a: how fast the weight falls off away from the positive's score (1 / score^2 "
                   "units: raise it for cosines, whose spread is small)."),
    "simans_b": _s(MINING, "SimANS b: where the weight peaks, relative to the positive's score."),
    "seed": _s(MINING, "Random seed (random and simans sampling)."),
    "query_batch_size": _s(MINING, "Queries mined at a time: memory follows the batch, not the query set; the "
                           "output is the same whatever it is."),
    "resume": _s(MINING, "Keep finished query batches in the cache until the run completes, and continue after them "
                 "when the same run is started again after a crash.", "--resume/--no-resume"),
    "engine": _s(MINING, "Where the work runs: local (this process) or ray (a Ray cluster: corpus encoding and query "
                 "batches on actors; the same output)."),
    "ray_address": _s(MINING, "The Ray cluster: auto ($RAY_ADDRESS, else one started here) or an address."),
    "workers": _s(MINING, "Ray actors [default: one per node, or one per --gpus-per-worker GPUs]."),
    "gpus_per_worker": _s(MINING, "GPUs per Ray actor [default: 1 when the cluster has GPUs, else 0]."),
    # BM25
    "bm25_k1": _s(BM25, "BM25 k1 (term-frequency saturation)."),
    "bm25_b": _s(BM25, "BM25 b (length normalisation, 0..1)."),
    "bm25_method": _s(BM25, f"BM25 variant: {choices(BM25_METHODS)}."),
    "bm25_stemmer": _s(BM25, "Snowball stemmer language, or 'none'."),
    "bm25_stopwords": _s(BM25, "Stopword list (en, de, fr, es, ...), or 'none'."),
    "bm25_tokenizer": _s(BM25, "What BM25 takes for a token: words (split at spaces and punctuation), ngrams:N "
                         "(character N-grams over Chinese, Japanese, Korean, Thai and other scripts without spaces, "
                         "words elsewhere; ngrams is ngrams:2), model (the embedding model's sub-word tokenizer), or "
                         "auto (ngrams:2 when 20% or more of the letters of a corpus sample are in those scripts, "
                         "else words)."),
    # Dense retrieval
    "model": _s(DENSE, "Sentence-transformers model name or path, or a model behind an OpenAI-compatible "
                "embeddings endpoint: openai:MODEL@URL (URL: the API's base, e.g. http://localhost:7997/v1); 'none': "
                "no bi-encoder [default: the embedded all-MiniLM-L6-v2, offline]."),
    "query_prompt": _s(DENSE, "Text put before each query when embedding it."),
    "corpus_prompt": _s(DENSE, "Text put before each document when embedding it."),
    "query_prompt_name": _s(DENSE, "Name of a prompt stored with the model, for queries [default: its 'query' "
                            "prompt, if any]."),
    "corpus_prompt_name": _s(DENSE, "Name of a prompt stored with the model, for documents [default: its "
                             "'document' prompt, if any]."),
    "batch_size": _s(DENSE, "Texts per encoder batch (per request, for a model behind an endpoint)."),
    "endpoint_concurrency": _s(DENSE, "Requests in flight at once to a model behind an endpoint "
                               "(--model openai:MODEL@URL)."),
    "endpoint_retries": _s(DENSE, "Tries after the first for an endpoint request that failed in a way worth trying "
                           "again (429, 5xx, timeout, dropped connection, an answer that is not JSON), with "
                           "exponential backoff."),
    "endpoint_timeout": _s(DENSE, "Seconds to wait for an endpoint's answer."),
    "endpoint_max_requests": _s(DENSE, "The run's request budget: past it the run stops (exit 3), keeping what was "
                                "answered in the cache; run again to go on.", show_default=False),
    "endpoint_api_key_env": _s(DENSE, "The environment variable holding the endpoints' API key (sent as a bearer "
                               "token; never written anywhere)."),
    "max_seq_length": _s(DENSE, "Truncate texts to this many tokens [default: the model's]."),
    "device": _s(DENSE, "auto (CUDA when available), cpu, cuda, cuda:N, mps."),
    "precision": _s(DENSE, f"What the models compute in: {choices(PRECISIONS)} (auto: fp16 on CUDA, fp32 "
                    "elsewhere); part of the embeddings' cache key."),
    "faiss_index": _s(DENSE, "Flat (exact search); auto (exact up to 1M documents, an on-disk IVF index above); or "
                      "a faiss index factory string such as IVF1024,Flat or HNSW32. An approximate index's recall "
                      "is measured against exact search and reported."),
    # False-negative filters (the rules' own options come from the rules)
    "reranker": _s(FILTERS, "The judge of the score rules: a CrossEncoder name or path, or a sentence-transformers "
                   "bi-encoder (judges by cosine) [default: the retrieval bi-encoder's cosine]."),
    "reranker_batch_size": _s(FILTERS, "Pairs per reranker batch."),
    "reranker_max_length": _s(FILTERS, "Reranker input length in tokens [default: the model's]."),
    "margin_reference": _s(FILTERS, "With several positives, take margins from the "
                           f"{choices(MARGIN_REFERENCES)} positive score."),
    "score_all": _s(FILTERS, "Score every retrieved candidate and gather every rule's evidence, not only what "
                    "sampling needs: the same picks, more work, and a candidates file that 'negmine refilter' and "
                    "'negmine sweep' can re-filter.", "--score-all"),
    "promote_false_negatives": _s(FILTERS, "Write the candidates dropped as likely false negatives as extra "
                                  "positives of their query (rows of their own, with the negatives of its first "
                                  "positive); counted in the summary.", "--promote-false-negatives"),
    "llm_judge": _s(FILTERS, "MODEL@URL: a chat model behind an OpenAI-compatible endpoint judges each picked "
                    "negative (with its query and positive); one it calls relevant is dropped for the next candidate "
                    "(status llm_judge), or written as a positive with --promote-false-negatives. Verdicts are "
                    "cached: a rerun sends nothing twice.", show_default=False),
    "llm_confirm": _s(FILTERS, "MODEL@URL: a second (stronger) chat model that sees only what --llm-judge flagged; "
                      "a candidate is flagged when both call it relevant.", show_default=False),
    "llm_judge_prompt": _s(FILTERS, "A prompt template file for the LLM judge, with {query}, {positive} and "
                           "{candidate} [default: docs/judges.md's].", show_default=False),
    # Output
    "candidates_output": _s(OUTPUT, "Also write every candidate with its ranks, scores and fate (selected, kept, "
                            "not_scored or the rule that dropped it), and each query's positives with their "
                            "scores; Parquet, which refilter and sweep read back."),
    "false_negatives_output": _s(OUTPUT, "Also write the candidates dropped as likely false negatives in qrels form "
                                 "(query-id, corpus-id, score = 1) with the rule and scores: review them, or append "
                                 "them to the qrels; .parquet, .jsonl or .jsonl.gz."),
    "difficulty_bands": _s(OUTPUT, "Write each negative's difficulty band: the rank window cut into this many "
                           "slices, 1 = the best-ranked (hardest); for curriculum training.", show_default=False),
    "output_format": _s(OUTPUT, f"{choices(OUTPUT_FORMATS)}: sentence-transformers' layouts, or FlagEmbedding's "
                        "training data (a row per query: query, pos, neg)."),
    "output_scores": _s(OUTPUT, "Add score columns.", "--output-scores"),
    "prompt": _s(OUTPUT, "With --output-format flagembedding: the instruction written in every row's prompt column "
                 "(FlagEmbedding puts it before the query)."),
    "columns": _s(OUTPUT, f"{choices(COLUMN_SETS)}: every column (texts, ids, any scores), or only what a trainer "
                  "consumes (the texts and labels; FlagEmbedding's scores and prompt)."),
    "train_batch_size": _s(OUTPUT, "The trainer's batch size B (not the encoder's --batch-size): write the rows in "
                           "batches of B, in a 'batch' column, near anchors together and no in-batch false negative "
                           "(a known positive of another row's query, a shared positive, positive proximity); for "
                           "triplet, n-tuple and flagembedding. Train with negmine.batching.sampler.grouped_batches.",
                           show_default=False),
    "dataset_card": _s(OUTPUT, "Also write README.md beside the output: a Hugging Face dataset card (features, "
                       "inputs, models, settings, statistics). Replaces only a README.md negmine wrote.",
                       "--dataset-card"),
    "allow_empty": _s(OUTPUT, "Write the output even when every candidate was dropped (by default a run that writes "
                      "no negative fails, naming the rule that dropped most).", "--allow-empty"),
    "png": Setting(OUTPUT, "Where to draw the picture.", kind="path"),
    "json": Setting(OUTPUT, "Print it as JSON.", ("--json",), kind="bool"),
    "quiet": _s(OUTPUT, "No progress and no summary (warnings and errors still show).", "--quiet", "-q"),
    "verbose": _s(OUTPUT, "Also show timings per stage and debug logs.", "--verbose", "-v"),
}

#: The rules' options that take a number or ``none`` (``relative_margin`` also ``auto``): strings on the command
#: line, so that ``none`` is one.
NUMBERS = tuple(name for name, o in RULE_OPTIONS.items() if o.kind in ("optional number", "margin"))

_TYPES = {"str": str, "optional str": str, "path": Path, "int": int, "optional int": int, "float": float,
          "optional float": float, "bool": bool, "margin": str}
_DEFAULTS = MineConfig()


def setting(name: str) -> Setting:
    """How the commands show an option: from the table above, or from the rule that owns it."""
    found = SETTINGS.get(name)
    if found is not None:
        return found
    option = RULE_OPTIONS[name]
    dashed = name.replace("_", "-")
    return Setting(FILTERS, option.help, (f"--{dashed}/--no-{dashed}",) if option.kind == "bool" else ())


def option(name: str) -> Any:
    """The ``typer.Option`` of an option of the table, for a command with a plain signature."""
    spec = setting(name)
    return typer.Option(*spec.flags, help=spec.help, rich_help_panel=spec.panel, **spec.extra)


Quiet = Annotated[bool, option("quiet")]


def shown(value: Any) -> str:
    """An optional number as the command line takes it: ``none`` for None."""
    return "none" if value is None else value if isinstance(value, str) else f"{value:g}"


def _kind(name: str) -> str:
    if name in NUMBERS:
        return "margin"
    return setting(name).kind or configfile.option_kinds()[name]


def _default(name: str) -> Any:
    if hasattr(_DEFAULTS, name):
        value = getattr(_DEFAULTS, name)
        return shown(value) if name in NUMBERS else value
    return False if _kind(name) == "bool" else None


def _parameter(name: str, form: str, help: Optional[str], required: bool) -> inspect.Parameter:
    spec = setting(name)
    kind = _kind(name)
    base: Any = _TYPES[kind]
    flags, panel, text, show_default = spec.flags, spec.panel, help or spec.help, spec.show_default
    default: Any = None
    if form == "mine":
        default = inspect.Parameter.empty if required else _default(name)
        show_default = show_default and not required
        if default is None:
            base = Optional[base]
    elif form == "as mined":
        if kind == "bool" and not any("/" in f for f in flags):
            dashed = name.replace("_", "-")
            flags = (f"--{dashed}/--no-{dashed}",)
        base, text, show_default = Optional[base], text + AS_MINED, False
    elif form == "list":
        flags = () if kind == "bool" else flags
        base, panel, show_default = Optional[str], TUNING, False
        text += " Comma-separated values (true, false)." if kind == "bool" else " Comma-separated values."
    else:
        raise ValueError(f"unknown form {form!r}")
    option = typer.Option(*flags, help=text, rich_help_panel=panel, show_default=show_default, **spec.extra)
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                             annotation=Annotated[base, option])


def parameters(names: Iterable[str], form: str = "mine", help: Optional[Mapping[str, str]] = None,
               required: Iterable[str] = ()) -> list[inspect.Parameter]:
    """The parameters of the options ``names`` in a form (``mine``, ``as mined``, ``list``); ``help`` replaces
    some options' help for this command, ``required`` options have no default."""
    help, required = help or {}, set(required)
    return [_parameter(name, form, help.get(name), name in required) for name in names]


def argument(name: str, help: str) -> inspect.Parameter:
    """A required path argument."""
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY,
                             annotation=Annotated[Path, typer.Argument(help=help, show_default=False)])


#: The click context, for commands that read where their options came from.
CONTEXT = inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context)

F = TypeVar("F", bound=Callable[..., Any])


def takes(*parts: Iterable[inspect.Parameter]) -> Callable[[F], F]:
    """Give a command (``def command(**options)``) the parameters typer reads: its signature."""

    def decorate(command: F) -> F:
        command.__signature__ = inspect.Signature([p for part in parts for p in part])  # type: ignore[attr-defined]
        return command

    return decorate


def cli_value(name: str, value: Any) -> Any:
    """A config file's value as the option takes it on the command line: the optional numbers are strings there
    (``none``, ``auto``, ``0.1``)."""
    if name in NUMBERS:
        return "none" if value is None else value if isinstance(value, str) else repr(value)
    return value
