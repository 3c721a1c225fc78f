"""The ``negmine`` command: parse options into a MineConfig, call the library, render the result.

Stdout carries data (the output path); progress, summaries, warnings and errors go to stderr.
"""

from __future__ import annotations

import logging
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Optional

import typer
from typing_extensions import Annotated

from negmine import __version__
from negmine.config import BM25_METHODS, OUTPUT_FORMATS, RETRIEVERS, SAMPLING_STRATEGIES, MineConfig
from negmine.errors import NegmineError
from negmine.progress import Advance, Progress

D = MineConfig()  # defaults live in the config; the options below show them

app = typer.Typer(
    name="negmine",
    help="Mine hard negatives for training retrieval models (embedders, rerankers).",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)

INPUTS = "Inputs"
COLUMNS = "Input columns (detected from the usual names when not given)"
BM25 = "BM25"
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


@app.command()
def mine(
    output: Annotated[Path, typer.Option("--output", "-o", help="Parquet file to write (atomically).",
                                         rich_help_panel=INPUTS, show_default=False)],
    corpus: Annotated[Optional[Path], typer.Option(help="Corpus Parquet file (ids, texts, optional titles).",
                                                   rich_help_panel=INPUTS)] = None,
    queries: Annotated[Optional[Path], typer.Option(help="Query Parquet file (ids, texts).",
                                                    rich_help_panel=INPUTS)] = None,
    qrels: Annotated[Optional[Path], typer.Option(help="Relevance judgments Parquet file; rows with score <= 0 "
                                                  "are not positives.", rich_help_panel=INPUTS)] = None,
    pairs: Annotated[Optional[Path], typer.Option(help="Instead of --queries/--qrels: Parquet file of (anchor, "
                                                  "positive) text pairs; the corpus defaults to the positives.",
                                                  rich_help_panel=INPUTS)] = None,
    corpus_id_column: Annotated[Optional[str], typer.Option(help="Corpus id column [_id, id, doc_id, ...].",
                                                            rich_help_panel=COLUMNS)] = None,
    corpus_text_column: Annotated[Optional[str], typer.Option(help="Corpus text column [text, contents, ...].",
                                                              rich_help_panel=COLUMNS)] = None,
    corpus_title_column: Annotated[Optional[str], typer.Option(help="Corpus title column, joined before the text "
                                                               "[title]; '' ignores it.",
                                                               rich_help_panel=COLUMNS)] = None,
    query_id_column: Annotated[Optional[str], typer.Option(help="Query id column [_id, id, query_id, qid].",
                                                           rich_help_panel=COLUMNS)] = None,
    query_text_column: Annotated[Optional[str], typer.Option(help="Query text column [text, query, question].",
                                                             rich_help_panel=COLUMNS)] = None,
    qrels_query_column: Annotated[Optional[str], typer.Option(help="Qrels query id column [query-id, query_id, "
                                                              "qid].", rich_help_panel=COLUMNS)] = None,
    qrels_doc_column: Annotated[Optional[str], typer.Option(help="Qrels document id column [corpus-id, doc_id, "
                                                            "...].", rich_help_panel=COLUMNS)] = None,
    qrels_score_column: Annotated[Optional[str], typer.Option(help="Qrels score column [score, relevance, label]; "
                                                              "without one every row is positive.",
                                                              rich_help_panel=COLUMNS)] = None,
    pairs_anchor_column: Annotated[Optional[str], typer.Option(help="Pairs query text column [anchor, query, "
                                                               "question].", rich_help_panel=COLUMNS)] = None,
    pairs_positive_column: Annotated[Optional[str], typer.Option(help="Pairs positive text column [positive, pos, "
                                                                 "...].", rich_help_panel=COLUMNS)] = None,
    retriever: Annotated[str, typer.Option(help=f"Candidate retriever: {_choices(RETRIEVERS)}.",
                                           rich_help_panel=MINING)] = D.retriever,
    bm25_k1: Annotated[float, typer.Option(help="BM25 k1 (term-frequency saturation).",
                                           rich_help_panel=BM25)] = D.bm25_k1,
    bm25_b: Annotated[float, typer.Option(help="BM25 b (length normalisation, 0..1).",
                                          rich_help_panel=BM25)] = D.bm25_b,
    bm25_method: Annotated[str, typer.Option(help=f"BM25 variant: {_choices(BM25_METHODS)}.",
                                             rich_help_panel=BM25)] = D.bm25_method,
    bm25_stemmer: Annotated[str, typer.Option(help="Snowball stemmer language, or 'none'.",
                                              rich_help_panel=BM25)] = D.bm25_stemmer,
    bm25_stopwords: Annotated[str, typer.Option(help="Stopword list (en, de, fr, es, ...), or 'none'.",
                                                rich_help_panel=BM25)] = D.bm25_stopwords,
    range_min: Annotated[int, typer.Option(help="Skip this many of the best-ranked non-positive candidates.",
                                           rich_help_panel=MINING)] = D.range_min,
    range_max: Annotated[int, typer.Option(help="Consider non-positive candidates up to this rank (exclusive).",
                                           rich_help_panel=MINING)] = D.range_max,
    num_negatives: Annotated[int, typer.Option("--num-negatives", "-n", help="Negatives per query-positive pair.",
                                               rich_help_panel=MINING)] = D.num_negatives,
    sampling_strategy: Annotated[str, typer.Option(help=f"{_choices(SAMPLING_STRATEGIES)}: the best-ranked "
                                                   "eligible candidates, or a seeded random sample of them.",
                                                   rich_help_panel=MINING)] = D.sampling_strategy,
    seed: Annotated[int, typer.Option(help="Random seed (random sampling).", rich_help_panel=MINING)] = D.seed,
    output_format: Annotated[str, typer.Option(help=f"{_choices(OUTPUT_FORMATS)}.",
                                               rich_help_panel=OUTPUT)] = D.output_format,
    output_scores: Annotated[bool, typer.Option("--output-scores", help="Add score columns.",
                                                rich_help_panel=OUTPUT)] = D.output_scores,
    strict: Annotated[bool, typer.Option("--strict", help="Fail on qrels naming unknown queries or documents "
                                         "instead of skipping them with a warning.", rich_help_panel=INPUTS)]
    = D.strict,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress and no summary (warnings and errors "
                                        "still show).", rich_help_panel=OUTPUT)] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Also show timings per stage and debug logs.",
                                          rich_help_panel=OUTPUT)] = False,
) -> None:
    """Mine hard negatives for each query and write them as a training table.

    Example:

        negmine mine --corpus corpus.parquet --queries queries.parquet --qrels qrels.parquet -o negatives.parquet

    Prints the output path on stdout; progress and a summary go to stderr.
    """
    options = {k: v for k, v in locals().items() if k not in _NOT_CONFIG}
    from negmine.mine import mine as run_mine

    with _reporting(quiet, verbose) as progress:
        config = MineConfig(**options)
        result = run_mine(corpus, queries, qrels, pairs=pairs, output=output, config=config, progress=progress)
        if not quiet:
            _summary(result, config, verbose)
    typer.echo(str(output))


_NOT_CONFIG = {"output", "corpus", "queries", "qrels", "pairs", "quiet", "verbose"}


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
        self.bar.update(task, total=total or 1, completed=total or 1)


def _stderr() -> Any:
    from rich.console import Console

    return Console(stderr=True, highlight=False)


@contextmanager
def _reporting(quiet: bool, verbose: bool) -> Iterator[Progress]:
    """Logging and progress for one command; NegmineError becomes a one-line message and its exit code."""
    console = _stderr()
    handler = _ConsoleHandler(console)
    log = logging.getLogger("negmine")
    log.addHandler(handler)
    log.setLevel(logging.DEBUG if verbose else logging.WARNING)
    try:
        if quiet:
            yield Progress()
        else:
            from rich.progress import BarColumn, MofNCompleteColumn, SpinnerColumn, TextColumn, TimeElapsedColumn
            from rich.progress import Progress as Bar

            with Bar(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                     TimeElapsedColumn(), console=console, transient=not console.is_terminal) as bar:
                yield RichProgress(bar)
    except NegmineError as exc:
        console.print(f"negmine: error: {exc}", markup=False, soft_wrap=True)
        raise typer.Exit(exc.exit_code) from None
    finally:
        log.removeHandler(handler)


class _ConsoleHandler(logging.Handler):
    def __init__(self, console: Any) -> None:
        super().__init__()
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        self.console.print(f"negmine: {record.levelname.lower()}: {record.getMessage()}", markup=False,
                           soft_wrap=True)


def _summary(result: Any, config: MineConfig, verbose: bool) -> None:
    from rich.table import Table

    from negmine.report import summary_rows

    table = Table(title="negmine mine", show_header=False, title_justify="left")
    for label, value in summary_rows(result.stats, config.num_negatives):
        table.add_row(label, value)
    if verbose:
        for stage, secs in result.seconds.items():
            table.add_row(f"time: {stage}", f"{secs:.2f} s")
    if result.output is not None:
        table.add_row("output", str(result.output))
    _stderr().print(table)


def main() -> None:
    """Entry point of the ``negmine`` console script."""
    app(prog_name="negmine")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
