"""Tuning without re-mining: ``sweep`` runs the rules and the sampling over a candidates file once per setting of
a grid and reports, per setting, what it would write (negatives, queries served, and the scores and ranks of the
picks), in seconds where a re-mine per setting takes minutes. The file is read once; each setting is a
``negmine refilter`` that writes nothing.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from negmine.errors import ConfigError
from negmine.judges.base import MissingScore
from negmine.output.files import check_output_path
from negmine.progress import Progress
from negmine.run.batch import mine_batch
from negmine.run.stored import open_stored
from negmine.settings.config import flag
from negmine.storage.files import atomic_target

#: The options a sweep can vary (the rules and the sampling; the output's layout does not change what is picked).
SWEEP_OPTIONS = (
    "absolute_margin", "relative_margin", "max_score", "min_score", "margin_reference", "max_positive_similarity",
    "positive_proximity", "lexical_overlap", "agreement", "cross_query", "percentile_margin", "percentile_floor",
    "percentile_cap",
    "range_min", "range_max", "num_negatives", "sampling_strategy", "simans_a", "simans_b", "seed",
)


@dataclass
class SweepRow:
    """What one setting of a sweep would write.

    Attributes:
        settings: The swept options' values.
        negatives: Negatives written.
        queries_served: Share of the mined queries whose every pair got all its negatives.
        short_queries: Queries that got fewer.
        score: Quantiles (p5, p50, p95) of the picks' scores (the judge's, else the retriever's).
        rank: Quantiles (p5, p50, p95) of the picks' ranks in their candidate list (1 = best).
        dropped: Candidates dropped per rule (those that dropped any).
        seconds: Wall time of this setting.
    """

    settings: dict[str, Any]
    negatives: int
    queries_served: float
    short_queries: int
    score: dict[str, Optional[float]]
    rank: dict[str, Optional[float]]
    dropped: dict[str, int]
    seconds: float


@dataclass
class SweepResult:
    """A sweep's rows, in grid order, and what they were measured with.

    Attributes:
        rows: One per setting.
        scorer: Whose scores ``SweepRow.score`` holds (``judge: <name>`` or ``retriever``).
        seconds: Wall time: reading the file and the inputs (``read``), and all settings (``settings``).
        png: The trade-off picture, when one was written.
    """

    rows: list[SweepRow]
    scorer: str
    seconds: dict[str, float] = field(default_factory=dict)
    png: Optional[Path] = None

    def to_dict(self) -> dict[str, Any]:
        return {"scorer": self.scorer, "seconds": self.seconds, "png": str(self.png) if self.png else None,
                "rows": [asdict(r) for r in self.rows]}


def grid_of(values: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination of the values (the product, in the order given; the last option varies fastest)."""
    unknown = sorted(set(values) - set(SWEEP_OPTIONS))
    if unknown:
        raise ConfigError(f"{', '.join(flag(u) for u in unknown)}: not an option a sweep can vary (those are: "
                          f"{', '.join(flag(o) for o in SWEEP_OPTIONS)})")
    names = list(values)
    for name in names:
        if not values[name]:
            raise ConfigError(f"{flag(name)}: no value to sweep")
    return [dict(zip(names, combo)) for combo in itertools.product(*(values[n] for n in names))]


def sweep(
    candidates: Any, grid: Mapping[str, Sequence[Any]], *, png: Optional[Any] = None,
    corpus: Any = None, queries: Any = None, qrels: Any = None, pairs: Any = None, cache_dir: Any = None,
    progress: Optional[Progress] = None, **options: Any,
) -> SweepResult:
    """Run every setting of ``grid`` (option -> values; their product) over a candidates file, on top of
    ``options`` (fixed for all), and report what each would write.

    Args:
        candidates: A candidates file of ``negmine mine --candidates-output`` (with ``--score-all`` it holds every
            value any setting needs).
        grid: The values of each swept option (``{"relative_margin": [0, 0.05, 0.1]}``).
        png: Where to draw the trade-off (queries served and negatives written, the picks' scores and ranks, per
            setting); ``None`` draws nothing.
        corpus, queries, qrels, pairs, cache_dir: As for ``negmine.refilter``.
        progress: Receives one step per setting.
        **options: Options every setting shares.

    Raises:
        ConfigError: An option a sweep cannot vary, or a setting the file cannot serve (a deeper window, a value it
            lacks), named with the setting.
    """

    progress = progress or Progress()
    settings = grid_of(grid)
    t = time.perf_counter()
    stored = open_stored(candidates, corpus=corpus, queries=queries, qrels=qrels, pairs=pairs, cache_dir=cache_dir,
                         progress=progress)
    if png is not None:
        png = check_output_path(png, [stored.path, *stored.files.values()], "--png", (".png",))
    seconds = {"read": time.perf_counter() - t}
    judged = "reranker_score" in stored.sources.columns
    column = "reranker_score" if judged else "retrieval_score"
    rows: list[SweepRow] = []
    t_all = time.perf_counter()
    with progress.stage("sweeping settings", total=len(settings)) as advance:
        for setting in settings:
            t = time.perf_counter()
            config = stored.config({**options, **setting, "allow_empty": True})
            try:
                run, stats = stored.plan(config)
            except ConfigError as exc:
                raise ConfigError(f"setting {_label(setting)}: {exc}") from None
            scores: list[np.ndarray] = []
            ranks: list[np.ndarray] = []
            batches = np.array_split(np.arange(len(run.mined)), max(1, -(-len(run.mined) // config.query_batch_size)))
            for positions in batches:
                try:
                    result = mine_batch(run, positions, False, Progress())
                except MissingScore as exc:
                    error = stored.sources.missing(exc, run.inputs.queries, run.inputs.corpus)
                    raise ConfigError(f"setting {_label(setting)}: {error}") from None
                stats.add(result.stats)
                sel = result.selection
                for q, cols in zip(sel.query, sel.negative_positions):
                    ranks.append(np.asarray(cols, dtype=np.int64) + 1)
                    scores.append(stored.sources.values_at(column, np.full(len(cols), q), np.asarray(cols)))
            served = 1 - stats.short_queries / stats.queries_mined if stats.queries_mined else float("nan")
            rows.append(SweepRow(setting, stats.negatives_written, served, stats.short_queries,
                                 _quantiles(np.concatenate(scores) if scores else np.empty(0)),
                                 _quantiles(np.concatenate(ranks) if ranks else np.empty(0)),
                                 {k: v for k, v in stats.dropped.items() if v}, time.perf_counter() - t))
            advance(1)
    seconds["settings"] = time.perf_counter() - t_all
    swept = SweepResult(rows, f"judge: {stored.sources.name}" if judged else "retriever", seconds)
    if png is not None:
        plot_sweep(swept, png)
        swept.png = Path(png)
    return swept


def _quantiles(values: np.ndarray) -> dict[str, Optional[float]]:
    values = np.asarray(values, dtype=np.float64)
    values = values[~np.isnan(values)]
    return {f"p{p}": (float(np.percentile(values, p)) if values.size else None) for p in (5, 50, 95)}


def _label(setting: Mapping[str, Any]) -> str:
    return " ".join(f"{flag(k)} {_show(v)}" for k, v in setting.items())


def _show(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value).lower() if isinstance(value, bool) else str(value)


def rows_table(result: SweepResult) -> tuple[list[str], list[list[str]]]:
    """The sweep as a header and rows of text (for the terminal)."""
    names = list(result.rows[0].settings) if result.rows else []
    header = [flag(n) for n in names] + ["negatives", "served", "score p5 / p50 / p95", "rank p50 / p95", "seconds"]
    out = []
    for r in result.rows:
        s = r.score
        score = " / ".join("-" if s[k] is None else f"{s[k]:.3f}" for k in ("p5", "p50", "p95"))
        rank = " / ".join("-" if r.rank[k] is None else f"{r.rank[k]:g}" for k in ("p50", "p95"))
        out.append([_show(r.settings[n]) for n in names] + [f"{r.negatives:,}", f"{r.queries_served:.1%}", score,
                                                             rank, f"{r.seconds:.2f}"])
    return header, out


def plot_sweep(result: SweepResult, png: Any) -> None:
    """The trade-off of a sweep as a PNG: per setting, the queries served and the negatives written (left), and
    the picks' scores (median, with p5-p95) and median rank (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt


    names = list(result.rows[0].settings) if result.rows else []
    if len(names) == 1:  # the values on the axis, the option under it
        labels = [_show(r.settings[names[0]]) for r in result.rows]
    else:
        labels = ["\n".join(f"{flag(k)[2:]} {_show(v)}" for k, v in r.settings.items()) for r in result.rows]
    x = np.arange(len(result.rows))
    fig, axes = plt.subplots(1, 2, figsize=(max(10, 1.4 * len(x) + 4), 4.8))
    ax = axes[0]
    ax.plot(x, [100 * r.queries_served for r in result.rows], "o-", color="tab:green", label="queries served (%)")
    ax.set_ylabel("queries served (%)", color="tab:green")
    ax.set_ylim(0, 105)
    twin = ax.twinx()
    twin.bar(x, [r.negatives for r in result.rows], alpha=0.3, color="tab:blue")
    twin.set_ylabel("negatives written", color="tab:blue")
    ax.set_title("What each setting writes")
    ax = axes[1]
    mid = np.array([np.nan if r.score["p50"] is None else r.score["p50"] for r in result.rows], dtype=float)
    lo = np.array([np.nan if r.score["p5"] is None else r.score["p5"] for r in result.rows], dtype=float)
    hi = np.array([np.nan if r.score["p95"] is None else r.score["p95"] for r in result.rows], dtype=float)
    ax.errorbar(x, mid, yerr=[mid - lo, hi - mid], fmt="o", color="tab:red", capsize=4)
    ax.set_ylabel(f"picks' score, p5-p50-p95 ({result.scorer})", color="tab:red")
    twin = ax.twinx()
    twin.plot(x, [np.nan if r.rank["p50"] is None else r.rank["p50"] for r in result.rows], "s--", color="tab:gray")
    twin.set_ylabel("picks' median rank", color="tab:gray")
    ax.set_title("How hard the picks are")
    for a in axes:
        a.set_xticks(x)
        a.set_xticklabels(labels, fontsize=8, rotation=0 if len(names) == 1 else 30)
        if len(names) == 1:
            a.set_xlabel(flag(names[0]))
    fig.tight_layout()
    with atomic_target(png) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
