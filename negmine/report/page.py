"""Run statistics: what was read, retrieved, dropped and written. Stored in the output's provenance and shown
by the CLI's summary."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any, Optional

import numpy as np

from negmine.errors import ConfigError
from negmine.output.provenance import read_metadata
from negmine.report.audit import evaluate, evaluation_rows
from negmine.report.stats import QUANTILES, MineStats
from negmine.report.summary import summary_rows
from negmine.storage.files import atomic_target, atomic_write_text, check_writable


def load_report(path: Any) -> dict[str, Any]:
    """The statistics and settings a negmine output (or candidates file) carries in its metadata."""

    meta = read_metadata(path)
    return {"path": str(path), "stats": meta.get("stats", {}), "config": meta.get("config", {}),
            "models": meta.get("models", {}), "version": meta.get("negmine_version")}


def report_rows(report: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, value) lines of a report: the run summary plus the score quantiles."""
    stats = MineStats(**{k: v for k, v in report["stats"].items() if k in MineStats.__dataclass_fields__})
    rows = summary_rows(stats, int(report["config"].get("num_negatives", 0)),
                        cache_counts="texts_encoded" in report["stats"])
    scores = stats.scores
    if scores:
        rows.append(("scorer", str(scores.get("scorer"))))
        for role in ("positive", "negative", "dropped"):
            q = scores.get(role) or {}
            if q.get("count"):
                rows.append((f"{role} score quantiles",
                             "  ".join(f"p{p} {q[f'p{p}']:.3f}" for p in QUANTILES) + f"  (n={q['count']:,})"))
    return rows


def drop_counts(stats: dict[str, Any]) -> dict[str, int]:
    """Candidates dropped per rule, the rules that dropped none left out. ``not_scored`` is no rule: lazy scoring
    stopped before those candidates because their queries had enough negatives."""
    return {rule: n for rule, n in (stats.get("dropped") or {}).items() if n}


def plot_report(report: dict[str, Any], png: Any) -> None:
    """A PNG: positive / negative / dropped score distributions, and candidates dropped per rule."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stats = report["stats"]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    ax = axes[0]
    hist = (stats.get("scores") or {}).get("histogram")
    if hist:
        edges = np.asarray(hist["edges"])
        centers, width = (edges[:-1] + edges[1:]) / 2, np.diff(edges)
        for role, color in (("positive", "tab:green"), ("negative", "tab:blue"), ("dropped", "tab:red")):
            counts = np.asarray(hist.get(role, []), dtype=float)
            if counts.sum():
                ax.bar(centers, counts / counts.sum(), width=width, alpha=0.45, color=color,
                       label=f"{role} (n={int(counts.sum()):,})")
        ax.set_xlabel(f"score ({stats['scores'].get('scorer')})")
        ax.set_ylabel("share")
        ax.legend()
        ax.set_title("Positive vs negative scores")
    else:
        ax.text(0.5, 0.5, "no reranker scores in this run\n(score filters were off)", ha="center", va="center")
        ax.set_axis_off()
    ax = axes[1]
    dropped = drop_counts(stats)
    names = list(dropped)
    ax.barh(names, [dropped[n] for n in names], color="tab:gray")
    ax.set_xlabel("candidates")
    title = f"Candidates dropped per rule (of {stats.get('candidates_seen', 0):,})"
    if stats.get("not_scored"):  # not a drop: lazy scoring never needed them
        title += f"\n{stats['not_scored']:,} more were not scored (not needed)"
    ax.set_title(title)
    fig.tight_layout()

    with atomic_target(png) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def html_report(report: dict[str, Any], png: Any) -> str:
    """A self-contained HTML page: the summary table and the picture, inlined; with ``report["evaluation"]`` (an
    ``negmine.report.audit.Evaluation``), the audit against fuller judgments too."""
    with open(png, "rb") as fh:
        image = base64.b64encode(fh.read()).decode("ascii")
    rows = "\n".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in report_rows(report))
    audit = ""
    if report.get("evaluation") is not None:

        ev = report["evaluation"]
        lines = "\n".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
                           for k, v in evaluation_rows(ev))
        audit = (f"<h2>Audit against {html.escape(ev.qrels)}</h2>\n<p>Written negatives that these judgments mark "
                 "relevant are false negatives; a rule's row is the share of the candidates it dropped that are "
                 f"relevant (its precision).</p>\n<table>{lines}</table>")
    config = html.escape(json.dumps(report["config"], indent=2, sort_keys=True))
    models = html.escape(json.dumps(report["models"], indent=2, sort_keys=True))
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>negmine report: {html.escape(report['path'])}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1200px}}th{{text-align:left;padding-right:2em}}
td,th{{border-bottom:1px solid #ddd;padding:4px}}pre{{background:#f6f6f6;padding:1em;overflow:auto}}</style>
</head><body>
<h1>negmine report</h1>
<p><code>{html.escape(report['path'])}</code>, negmine {html.escape(str(report['version']))}</p>
<table>{rows}</table>
<img alt="score distributions and drops per rule" src="data:image/png;base64,{image}" style="max-width:100%">
{audit}
<h2>Models</h2><pre>{models}</pre>
<h2>Config</h2><pre>{config}</pre>
</body></html>
"""


def write_report(path: Any, png: Any = None, html: Any = None, qrels: Any = None, candidates: Any = None,
                 **qrels_columns: Optional[str]) -> tuple[dict[str, Any], Path, Path]:
    """Write the report of a negmine output (or candidates) file: a PNG and a self-contained HTML page.

    Args:
        path: The Parquet file negmine wrote.
        png: Where the picture goes (default: ``path`` with the suffix ``.report.png``).
        html: Where the page goes (default: ``path`` with the suffix ``.report.html``).
        qrels: Fuller judgments to audit the output against (``negmine.report.audit.evaluate``), in the page.
        candidates: The run's candidates file, for the audit's per-rule precision and bands.
        **qrels_columns: ``qrels_query_column``, ``qrels_doc_column``, ``qrels_score_column``.

    Returns:
        The report data (from the file's provenance), and the PNG and HTML paths.
    """

    path = Path(path)
    data = load_report(path)
    png = Path(png) if png is not None else path.with_suffix(".report.png")
    html = Path(html) if html is not None else path.with_suffix(".report.html")
    if png.resolve() == html.resolve():
        raise ConfigError(f"--png and --html are the same file ({png}); give two paths")
    for option, target in (("--png", png), ("--html", html)):
        if target.resolve() == path.resolve():
            raise ConfigError(f"{option} {target} is the input file; choose another path")
        if not target.parent.is_dir():
            raise ConfigError(f"{option} {target}: folder {target.parent} does not exist")
        check_writable(target.parent, option)
    if qrels is not None:

        data["evaluation"] = evaluate(path, qrels, candidates=candidates,
                                      qrels_query_column=qrels_columns.get("qrels_query_column"),
                                      qrels_doc_column=qrels_columns.get("qrels_doc_column"),
                                      qrels_score_column=qrels_columns.get("qrels_score_column"))
    plot_report(data, png)
    atomic_write_text(html, html_report(data, png))
    return data, png, html
