"""Run statistics: what was read, retrieved, dropped and written. Stored in the output's provenance and shown
by the CLI's summary."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np


@dataclass
class MineStats:
    """Counts of a mining run. No timings (those are in ``MineResult.seconds``); ``texts_encoded`` and
    ``texts_cached`` depend on the cache's state and are left out of the output's provenance, so the same inputs
    give the same file."""

    queries: int = 0
    queries_mined: int = 0
    queries_without_positives: int = 0
    queries_empty_text: int = 0
    positives: int = 0
    documents: int = 0
    qrels_rows: int = 0
    qrels_nonpositive: int = 0
    qrels_unknown_query: int = 0
    qrels_unknown_doc: int = 0
    texts_encoded: int = 0
    texts_cached: int = 0
    candidates_seen: int = 0
    pairs_scored: int = 0
    positive_pairs_scored: int = 0
    not_scored: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    negatives_written: int = 0
    rows_written: int = 0
    short_pairs: int = 0
    short_queries: int = 0
    short_examples: list[str] = field(default_factory=list)
    short_by_rule: dict[str, int] = field(default_factory=dict)
    short_weak_positive: int = 0
    promoted_positives: int = 0
    scores: dict[str, Any] = field(default_factory=dict)
    dense_search: dict[str, Any] = field(default_factory=dict)  # an approximate faiss index: setting, recall@k

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def add(self, other: "MineStats") -> None:
        """Add a query batch's counts to these (the run's)."""
        for name in ("candidates_seen", "pairs_scored", "positive_pairs_scored", "not_scored", "negatives_written",
                     "rows_written", "short_pairs", "short_queries", "short_weak_positive", "promoted_positives"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for target, extra in ((self.dropped, other.dropped), (self.short_by_rule, other.short_by_rule)):
            for key, n in extra.items():
                target[key] = target.get(key, 0) + n
        self.short_examples = (self.short_examples + other.short_examples)[:3]


def input_stats(inputs: Any, positives: Any) -> MineStats:
    """The statistics known once the inputs are read and matched."""
    n_mined = int((positives.counts() > 0).sum())
    return MineStats(
        queries=len(inputs.queries),
        queries_mined=n_mined,
        queries_without_positives=len(inputs.queries) - n_mined,
        positives=positives.count,
        documents=len(inputs.corpus),
        qrels_rows=len(inputs.qrels),
        qrels_nonpositive=positives.nonpositive_rows,
        qrels_unknown_query=positives.unknown_query_rows,
        qrels_unknown_doc=positives.unknown_doc_rows,
    )


def batch_stats(config: Any, queries: Any, hits: Any, reasons: np.ndarray, sel: Any, scored: Any, rows: np.ndarray,
                positives: list[list[int]]) -> MineStats:
    """A query batch's counts: candidates seen and dropped per rule, pairs scored, negatives and rows written,
    the pairs that came up short and why."""
    from negmine import filters

    stats = MineStats(candidates_seen=int((hits.indices >= 0).sum()), dropped=filters.count_reasons(reasons),
                      not_scored=int((reasons == filters.NOT_SCORED).sum()))
    if scored is not None:
        stats.pairs_scored, stats.positive_pairs_scored = scored.pairs_scored, scored.positive_pairs_scored
    from negmine.write import written

    counts = np.array([len(n) for n in sel.negatives], dtype=np.int64)
    stats.rows_written, stats.negatives_written = written(sel, config.output_format, config.num_negatives)
    short = np.flatnonzero(counts < config.num_negatives)
    short_q = sorted({int(sel.query[r]) for r in short})
    stats.short_pairs = int(short.size)
    stats.short_queries = len(short_q)
    stats.short_examples = [str(q) for q in queries.ids.take(short_q[:3])]
    if short_q:
        row_of = {int(q): r for r, q in enumerate(rows)}
        at = np.array([row_of[q] for q in short_q], dtype=np.int64)
        for code in filters.dominant_drop(reasons[at]):
            name = filters.REASONS[code] if code >= 0 else "no_candidates"
            stats.short_by_rule[name] = stats.short_by_rule.get(name, 0) + 1
        stats.short_weak_positive = int(filters.weak_positive(hits.indices[at], [positives[r] for r in at]).sum())
    return stats


def summary_rows(stats: MineStats, num_negatives: int, cache_counts: bool = True) -> list[tuple[str, str]]:
    """(label, value) lines for a human summary of a run. ``cache_counts=False`` leaves out the texts encoded and
    read from the cache (a file's provenance does not record them: they depend on the cache, not the inputs); a run
    that looked up no text (no model, or every batch resumed) shows none either."""
    queries = f"{stats.queries:,} ({stats.queries_mined:,} with positives"
    queries += f", {stats.queries_empty_text:,} skipped: empty text)" if stats.queries_empty_text else ")"
    rows = [
        ("queries", queries),
        ("documents", f"{stats.documents:,}"),
        ("positives", f"{stats.positives:,}"),
        *([("texts encoded / from cache", f"{stats.texts_encoded:,} / {stats.texts_cached:,}")]
          if cache_counts and stats.texts_encoded + stats.texts_cached else []),
        ("candidates seen", f"{stats.candidates_seen:,}"),
    ]
    if stats.pairs_scored or stats.positive_pairs_scored:
        rows.append(("reranker pairs scored", f"{stats.pairs_scored:,} candidates of {stats.candidates_seen:,} "
                     f"retrieved (+ {stats.positive_pairs_scored:,} positives); {stats.not_scored:,} not needed"))
    for rule, n in sorted(stats.dropped.items(), key=lambda item: _rule_order(item[0])):
        if n:
            rows.append((f"dropped: {rule.replace('_', ' ')}", f"{n:,}"))
    if stats.scores:
        for role in ("positive", "negative"):
            q = stats.scores[role]
            if q["count"]:
                rows.append((f"{role} scores", f"p5 {q['p5']:.3f}  median {q['p50']:.3f}  p95 {q['p95']:.3f}"))
    if stats.promoted_positives:
        rows.append(("promoted to positives", f"{stats.promoted_positives:,} likely false negatives (written as "
                                              "extra positive rows)"))
    if stats.dense_search:
        d = stats.dense_search
        setting = "".join(f", {name} {d[name]}" for name in ("nprobe", "efSearch") if d.get(name) is not None)
        rows.append(("dense search", f"{d['index']}{' on disk' if d.get('on_disk') else ''}{setting}: recall@"
                                     f"{d['k']} {d['recall_at_k']:.3f} against exact search on {d['sample']:,} "
                                     "sampled queries"))
    rows.append(("negatives written", f"{stats.negatives_written:,} in {stats.rows_written:,} rows"))
    short = (f"{stats.short_queries:,} queries ({stats.short_pairs:,} query-positive pairs) got fewer than "
             f"{num_negatives}")
    if stats.short_examples:
        short += f", e.g. {', '.join(stats.short_examples)}"
    rows.append(("short", short))
    why = starvation(stats)
    if why:
        rows.append(("why short", why))
    return rows


def _rule_order(rule: str) -> int:
    """Where a rule comes in the order the rules run (the summary lists them so, whatever the counts' order)."""
    from negmine.filters import REASONS

    return REASONS.index(rule) if rule in REASONS else len(REASONS)


#: What to change when a rule drops too much.
KNOBS = {
    "rank_window": "raise --range-max (or lower --range-min)",
    "duplicate_text": "nothing: those candidates copy a positive",
    "duplicate_candidate": "nothing: those candidates copy each other",
    "cross_query": "raise --cross-query (or none)",
    "lexical_overlap": "raise --lexical-overlap (or none)",
    "near_duplicate": "raise --max-positive-similarity",
    "positive_proximity": "raise --positive-proximity (or none)",
    "agreement": "--no-agreement, or a deeper --range-max",
    "max_score": "raise --max-score",
    "min_score": "lower --min-score",
    "absolute_margin": "lower --absolute-margin (or none)",
    "relative_margin": "lower --relative-margin (or none)",
    "percentile_gate": "raise --percentile-margin or --percentile-cap",
    "no_candidates": "use --retriever dense or hybrid (BM25 finds only documents sharing a word)",
    "positive": "the corpus holds little besides the positives: add documents",
}
#: Below this share of queries served, the summary says why the others starved.
SERVED_ENOUGH = 0.95


def why_empty(stats: MineStats) -> str:
    """The message of a run that would write nothing: the rule that dropped most, and the knob to turn."""
    if stats.candidates_seen == stats.dropped.get("positive", 0):
        return ("no negatives written: no query retrieved a candidate besides its positives (BM25 needs words "
                "shared with the query: check the texts, or use --retriever dense or hybrid); --allow-empty writes "
                "an empty file anyway")
    rule, count = max(((r, n) for r, n in stats.dropped.items() if r != "positive"), key=lambda kv: kv[1])
    return (f"no negatives written: every candidate was dropped, most by the {rule.replace('_', ' ')} rule "
            f"({count:,} of {stats.candidates_seen:,}); {KNOBS.get(rule, 'loosen that rule')}, or pass "
            "--allow-empty to write an empty file anyway")


def starvation(stats: MineStats) -> str:
    """Why queries starved, when fewer than SERVED_ENOUGH of them got all their negatives: the rule that dropped
    most for most of them and the knob to turn, and how many have a weak positive; '' otherwise."""
    if not stats.queries_mined or not stats.short_by_rule:
        return ""
    if 1 - stats.short_queries / stats.queries_mined >= SERVED_ENOUGH:
        return ""
    rule, n = max(stats.short_by_rule.items(), key=lambda kv: kv[1])
    served = 1 - stats.short_queries / stats.queries_mined
    text = (f"{served:.0%} of queries served; for {n:,} of the {stats.short_queries:,} short ones the "
            f"{rule.replace('_', ' ')} rule dropped most candidates: {KNOBS.get(rule, 'loosen it')}")
    if stats.short_weak_positive:
        text += (f". {stats.short_weak_positive / stats.short_queries:.0%} of them have a weak positive (it ranks "
                 "below most of their candidates): their positive may be mislabelled, or the query ambiguous")
    return text


QUANTILES = (0, 5, 25, 50, 75, 95, 100)


def quantiles(values: np.ndarray) -> dict[str, Any]:
    """Count, mean and the QUANTILES of ``values`` (None when empty)."""
    values = np.asarray(values, dtype=np.float64)
    values = values[~np.isnan(values)]
    out: dict[str, Any] = {"count": int(values.size), "mean": float(values.mean()) if values.size else None}
    for q in QUANTILES:
        out[f"p{q}"] = float(np.percentile(values, q)) if values.size else None
    return out


def score_summary(scorer: str, positive: np.ndarray, negative: np.ndarray, dropped: np.ndarray,
                  bins: int = 30) -> dict[str, Any]:
    """Quantiles and a shared-bin histogram of positive, written-negative and score-dropped candidate scores."""
    arrays = {"positive": np.asarray(positive, np.float64), "negative": np.asarray(negative, np.float64),
              "dropped": np.asarray(dropped, np.float64)}
    arrays = {k: v[~np.isnan(v)] for k, v in arrays.items()}
    everything = np.concatenate(list(arrays.values()))
    lo, hi = (float(everything.min()), float(everything.max())) if everything.size else (0.0, 1.0)
    if hi <= lo:
        hi = lo + 1.0
    edges = np.linspace(lo, hi, bins + 1)
    return {
        "scorer": scorer,
        **{k: quantiles(v) for k, v in arrays.items()},
        "histogram": {"edges": [round(float(e), 6) for e in edges],
                      **{k: np.histogram(v, bins=edges)[0].astype(int).tolist() for k, v in arrays.items()}},
    }


def load_report(path: Any) -> dict[str, Any]:
    """The statistics and settings a negmine output (or candidates file) carries in its metadata."""
    from negmine.io import read_metadata

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
    from negmine.storage.files import atomic_target

    with atomic_target(png) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def html_report(report: dict[str, Any], png: Any) -> str:
    """A self-contained HTML page: the summary table and the picture, inlined; with ``report["evaluation"]`` (an
    ``negmine.audit.Evaluation``), the audit against fuller judgments too."""
    import base64
    import html

    with open(png, "rb") as fh:
        image = base64.b64encode(fh.read()).decode("ascii")
    rows = "\n".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in report_rows(report))
    audit = ""
    if report.get("evaluation") is not None:
        from negmine.audit import evaluation_rows

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
        qrels: Fuller judgments to audit the output against (``negmine.audit.evaluate``), in the page.
        candidates: The run's candidates file, for the audit's per-rule precision and bands.
        **qrels_columns: ``qrels_query_column``, ``qrels_doc_column``, ``qrels_score_column``.

    Returns:
        The report data (from the file's provenance), and the PNG and HTML paths.
    """
    from negmine.errors import ConfigError
    from negmine.storage.files import atomic_write_text, check_writable

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
        from negmine.audit import evaluate

        data["evaluation"] = evaluate(path, qrels, candidates=candidates,
                                      qrels_query_column=qrels_columns.get("qrels_query_column"),
                                      qrels_doc_column=qrels_columns.get("qrels_doc_column"),
                                      qrels_score_column=qrels_columns.get("qrels_score_column"))
    plot_report(data, png)
    atomic_write_text(html, html_report(data, png))
    return data, png, html
