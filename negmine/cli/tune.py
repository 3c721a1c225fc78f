"""Tuning and reading a run: ``negmine refilter``, ``sweep``, ``evaluate`` and ``report``."""

from __future__ import annotations

import json as json_module
from pathlib import Path
from typing import Any, Optional

import typer
from typing_extensions import Annotated

from negmine.cli.base import print_table, reporting, stderr
from negmine.cli.options import CONTEXT, INPUTS, OUTPUT, Quiet, argument, option, parameters, takes
from negmine.cli.values import list_of, refilter_options
from negmine.errors import ConfigError

#: What refilter and sweep say of the inputs: where the candidates file's provenance says, unless given.
INPUTS_HELP = {
    "corpus": "The corpus, when not where the candidates file's provenance says (the same bytes).",
    "queries": "The queries, likewise.",
    "qrels": "The qrels, likewise.",
    "pairs": "The pairs file, likewise.",
    "cache_dir": "Cache for the inputs' Arrow copies [default: $NEGMINE_CACHE_DIR or ~/.cache/negmine].",
}

#: The settings refilter and sweep take, in the order their --help shows them (``negmine.run.stored`` says which
#: a stored run can change).
RULE_SETTINGS = (
    "absolute_margin", "relative_margin", "max_score", "min_score", "margin_reference", "max_positive_similarity",
    "positive_proximity", "lexical_overlap", "agreement", "cross_query", "percentile_margin", "percentile_floor",
    "percentile_cap",
)
SAMPLING_SETTINGS = ("range_min", "range_max", "num_negatives", "sampling_strategy", "simans_a", "simans_b", "seed")
REFILTERED = (*SAMPLING_SETTINGS, *RULE_SETTINGS, "score_all", "promote_false_negatives", "llm_judge", "llm_confirm",
              "llm_judge_prompt", "output_format", "output_scores", "prompt", "columns", "difficulty_bands")
#: The settings sweep takes, in the order of its --help and of its grid.
SWEPT = ("relative_margin", "absolute_margin", *RULE_SETTINGS[2:], *SAMPLING_SETTINGS)
RANGE_MAX = "Consider non-positive candidates up to this rank (at most as mined)."
CANDIDATES_FILE = ("A candidates file of 'negmine mine --candidates-output' (with --score-all it holds every value "
                   "any setting needs).")


@takes([CONTEXT, argument("candidates", CANDIDATES_FILE)], parameters(["output", "config"], required=["output"]),
       parameters(["corpus", "queries", "qrels", "pairs", "cache_dir"], help=INPUTS_HELP),
       parameters(REFILTERED, "as mined", help={
           "range_max": RANGE_MAX,
           "score_all": "Count every candidate as scored (the statistics of a --score-all run).",
           "promote_false_negatives": "Write likely false negatives as extra positives."}),
       parameters(["false_negatives_output", "allow_empty", "quiet", "verbose"],
                  help={"allow_empty": "Write the output even when every candidate was dropped."}))
def refilter(ctx: typer.Context, candidates: Path, **options: Any) -> None:
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

    o = options
    with reporting(o["quiet"], o["verbose"]) as progress:
        settings = refilter_options(ctx, o)
        if o["allow_empty"]:
            settings["allow_empty"] = True
        result = run_refilter(candidates, o["output"], corpus=o["corpus"], queries=o["queries"], qrels=o["qrels"],
                              pairs=o["pairs"], cache_dir=o["cache_dir"], progress=progress,
                              false_negatives_output=o["false_negatives_output"], **settings)
    to_stdout = str(o["output"]) == "-"
    if not o["quiet"]:
        from negmine.report.summary import summary_rows

        rows = summary_rows(result.stats, int(result.metadata["config"]["num_negatives"]), cache_counts=False)
        print_table("negmine refilter", rows, result.seconds if o["verbose"] else {},
                    Path("stdout") if to_stdout else result.output)
    if not to_stdout:  # with -o -, stdout holds the rows alone
        typer.echo(str(o["output"]))


@takes([argument("candidates", "A candidates file of 'negmine mine --score-all --candidates-output'.")],
       parameters(SWEPT, "list", help={
           "range_max": RANGE_MAX}),
       parameters(["corpus", "queries", "qrels", "pairs", "cache_dir"], help={
           **INPUTS_HELP, "corpus": "The corpus, when not where the candidates file's provenance says.",
           "cache_dir": "Cache for the inputs' Arrow copies."}),
       parameters(["png", "json", "quiet"], help={
           "png": "Where to draw the trade-off [default: CANDIDATES with .sweep.png].",
           "json": "Print the results as JSON on stdout instead of the PNG's path."}))
def sweep(candidates: Path, **options: Any) -> None:
    """Try settings of the rules and the sampling on a candidates file, in seconds: per setting (every
    combination of the lists given), the negatives written, the queries served, and the scores and ranks of the
    picks; with a PNG of the trade-off. Nothing is written but the PNG.

    \b
    Examples:
      negmine sweep cand.parquet --relative-margin 0,0.05,0.1,0.2
      negmine sweep cand.parquet --range-max 50,100,200 --sampling-strategy top,simans --json > sweep.json

    Then write the chosen one with 'negmine refilter cand.parquet --relative-margin 0.05 -o neg.parquet'.
    """
    from negmine.run.sweep import rows_table
    from negmine.run.sweep import sweep as run_sweep

    o = options
    with reporting(o["quiet"], False) as progress:
        grid = {k: values for k in SWEPT if (values := list_of(k, o[k])) is not None}
        if not grid:
            raise ConfigError("nothing to sweep: give at least one option with a comma-separated list of values, "
                              "e.g. --relative-margin 0,0.05,0.1")
        target = o["png"] if o["png"] is not None else candidates.with_suffix(".sweep.png")
        result = run_sweep(candidates, grid, png=target, corpus=o["corpus"], queries=o["queries"],
                           qrels=o["qrels"], pairs=o["pairs"], cache_dir=o["cache_dir"], progress=progress)
    if o["json"]:
        typer.echo(json_module.dumps(result.to_dict(), indent=2, default=str))
        return
    if not o["quiet"]:
        from rich.table import Table

        header, rows = rows_table(result)
        table = Table(title=f"negmine sweep {candidates} (scores: {result.scorer})", title_justify="left")
        for h in header:
            table.add_column(h, justify="right")
        for r in rows:
            table.add_row(*r)
        stderr().print(table)
        stderr().print(f"read in {result.seconds['read']:.2f} s; {len(rows)} settings in "
                       f"{result.seconds['settings']:.2f} s", markup=False)
    typer.echo(str(result.png))


def _opt(panel: str, help: str, *names: str, **kw: Any) -> Any:
    return typer.Option(*names, help=help, rich_help_panel=panel, **kw)


def evaluate(
    output: Annotated[Path, typer.Argument(help="An output of 'negmine mine' or 'negmine refilter' (with its id "
                                           "columns).", show_default=False)],
    qrels: Annotated[Path, _opt(INPUTS, "Fuller relevance judgments (more relevant documents than the miner saw); "
                                "rows with a score > 0 are relevant.", show_default=False)],
    candidates: Annotated[Optional[Path], _opt(INPUTS, "The run's candidates file: each rule's precision, and the "
                                               "judge's scores for the bands.")] = None,
    qrels_query_column: Annotated[Optional[str], option("qrels_query_column")] = None,
    qrels_doc_column: Annotated[Optional[str], option("qrels_doc_column")] = None,
    qrels_score_column: Annotated[Optional[str], option("qrels_score_column")] = None,
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
    from negmine.report.audit import evaluate as run_evaluate
    from negmine.report.audit import evaluation_rows

    if bands < 1:
        raise typer.BadParameter("must be at least 1", param_hint="--bands")
    with reporting(quiet, False):
        result = run_evaluate(output, qrels, candidates=candidates, qrels_query_column=qrels_query_column,
                              qrels_doc_column=qrels_doc_column, qrels_score_column=qrels_score_column, bands=bands)
    if json:
        typer.echo(json_module.dumps(result.to_dict(), indent=2, default=str))
        return
    if not quiet:
        print_table(f"negmine evaluate {output} against {qrels}", evaluation_rows(result))
    typer.echo(f"{result.false_negatives.rate:.6f}")


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
    from negmine.report import page

    with reporting(quiet, False):
        if candidates is not None and qrels is None:
            raise ConfigError("--candidates serves the audit: give --qrels with it")
        data, png_path, html_path = page.write_report(path, png, html, qrels, candidates)
    if not quiet:
        rows = page.report_rows(data)
        if data.get("evaluation") is not None:
            from negmine.report.audit import evaluation_rows

            rows += [(f"audit: {k}", v) for k, v in evaluation_rows(data["evaluation"])]
        print_table(f"negmine report {path}", rows)
    typer.echo(str(png_path))
    typer.echo(str(html_path))
