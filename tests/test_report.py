"""Run statistics (pairs scored, score quantiles and histogram) and the ``negmine report`` command."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import NO_SCORING_OPTIONS, error_line

import negmine
from negmine.output.provenance import read_metadata
from negmine.report.page import load_report, report_rows
from negmine.report.stats import QUANTILES, quantiles, score_summary

Cli = Callable[..., Any]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def scored_run(tiny: dict[str, Path], out_dir: Path) -> negmine.MineResult:
    """A lazy run with score rules on (bi-encoder = FakeEncoder), written to out/run.parquet."""
    return negmine.mine(tiny["corpus"], tiny["queries"], tiny["qrels"], output=out_dir / "run.parquet",
                        retriever="bm25", num_negatives=3, max_score=0.4, relative_margin=0.15, lexical_overlap=None,
                        agreement=False, cross_query=None)


# --- statistics --------------------------------------------------------------------------------------------------

def test_lazy_run_scores_fewer_pairs_than_it_sees(scored_run: negmine.MineResult) -> None:
    s = scored_run.stats
    assert 0 < s.pairs_scored < s.candidates_seen
    assert s.positive_pairs_scored == s.positives == 40
    assert s.not_scored > 0
    # every candidate is a positive, outside the window, dropped, scored, or not scored
    cheap = sum(s.dropped[r] for r in ("positive", "rank_window", "duplicate_text", "duplicate_candidate"))
    assert cheap + s.pairs_scored + s.not_scored == s.candidates_seen


def test_score_statistics(scored_run: negmine.MineResult) -> None:
    scores = scored_run.stats.scores
    assert scores["scorer"] == "bi-encoder"
    for role in ("positive", "negative", "dropped"):
        q = scores[role]
        assert set(q) == {"count", "mean"} | {f"p{p}" for p in QUANTILES}
        values = [q[f"p{p}"] for p in QUANTILES]
        assert values == sorted(values)
        assert q["p0"] <= q["mean"] <= q["p100"]
    assert scores["positive"]["count"] == 40
    assert scores["negative"]["count"] == scored_run.stats.negatives_written
    score_drops = sum(scored_run.stats.dropped[r] for r in ("near_duplicate", "positive_proximity", "max_score",
                                                             "min_score", "absolute_margin", "relative_margin"))
    assert scores["dropped"]["count"] == score_drops > 0
    assert scores["dropped"]["p100"] > 0.4  # max-score drops are above 0.4
    # the written negatives' scores are at most 0.4
    assert scores["negative"]["p100"] <= 0.4 + 1e-6
    assert scored_run.stats.dropped["max_score"] > 0
    hist = scores["histogram"]
    edges = hist["edges"]
    assert len(edges) == 31 and edges == sorted(edges)
    for role in ("positive", "negative", "dropped"):
        assert len(hist[role]) == 30
        assert sum(hist[role]) == scores[role]["count"]
        assert all(isinstance(c, int) and c >= 0 for c in hist[role])
    lo = min(scores[r]["p0"] for r in ("positive", "negative", "dropped"))
    hi = max(scores[r]["p100"] for r in ("positive", "negative", "dropped"))
    assert edges[0] == pytest.approx(lo, abs=1e-5) and edges[-1] == pytest.approx(hi, abs=1e-5)


def test_stats_are_in_the_provenance(scored_run: negmine.MineResult) -> None:
    assert scored_run.output is not None
    stats = read_metadata(scored_run.output)["stats"]
    assert stats["pairs_scored"] == scored_run.stats.pairs_scored
    assert stats["scores"]["histogram"] == scored_run.stats.scores["histogram"]
    assert "texts_encoded" not in stats and "texts_cached" not in stats


def test_no_score_statistics_when_scoring_is_off(tiny: dict[str, Path]) -> None:
    result = negmine.mine(tiny["corpus"], tiny["queries"], tiny["qrels"], **NO_SCORING_OPTIONS)
    assert result.stats.scores == {}
    assert result.stats.pairs_scored == result.stats.positive_pairs_scored == result.stats.not_scored == 0


def test_quantiles_and_histogram_helpers() -> None:
    q = quantiles(np.array([1.0, 2.0, 3.0, 4.0, np.nan]))
    assert q["count"] == 4 and q["mean"] == 2.5 and q["p0"] == 1.0 and q["p100"] == 4.0 and q["p50"] == 2.5
    empty = quantiles(np.array([]))
    assert empty["count"] == 0 and empty["mean"] is None and empty["p50"] is None
    s = score_summary("x", np.array([0.9, 1.0]), np.array([0.1, 0.2, 0.3]), np.array([]), bins=4)
    assert s["histogram"]["edges"] == pytest.approx([0.1, 0.325, 0.55, 0.775, 1.0])
    assert s["histogram"]["positive"] == [0, 0, 0, 2]          # the top edge is included
    assert s["histogram"]["negative"] == [3, 0, 0, 0]
    assert s["histogram"]["dropped"] == [0, 0, 0, 0]
    # all scores equal: a non-empty range is still made
    same = score_summary("x", np.array([0.5]), np.array([0.5]), np.array([0.5]), bins=2)
    assert same["histogram"]["edges"] == [0.5, 1.0, 1.5]
    assert sum(same["histogram"]["negative"]) == 1


# --- the report command ---------------------------------------------------------------------------------------------

def _png_ok(path: Path) -> bytes:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert len(data) > 10_000  # two panels, not an empty picture
    return data


def test_report_writes_png_and_html(cli: Cli, scored_run: negmine.MineResult, out_dir: Path) -> None:
    run = out_dir / "run.parquet"
    result = cli("report", run)
    assert result.exit_code == 0, result.stderr
    png, html = out_dir / "run.report.png", out_dir / "run.report.html"
    assert result.stdout.splitlines() == [str(png), str(html)]
    data = _png_ok(png)
    page = html.read_text(encoding="utf-8")
    assert page.startswith("<!doctype html>")
    match = re.search(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert match and base64.b64decode(match.group(1)) == data  # self-contained: the picture is inlined
    for label in ("negatives written", "candidates seen", "reranker pairs scored", "dropped: max score",
                  "positive score quantiles", "negative score quantiles", "scorer", "bi-encoder"):
        assert label in page, label
    assert f"{scored_run.stats.negatives_written:,} in {scored_run.stats.rows_written:,} rows" in page
    assert "<script" not in page and "http://" not in page and "https://" not in page
    # the summary also goes to stderr, and nothing else lands next to the output
    assert "negatives written" in result.stderr
    assert sorted(p.name for p in out_dir.iterdir()) == ["run.parquet", "run.report.html", "run.report.png"]


def test_report_png_and_html_options(cli: Cli, scored_run: negmine.MineResult, out_dir: Path,
                                     tmp_path: Path) -> None:
    png, html = tmp_path / "pic.png", tmp_path / "page.html"
    result = cli("report", out_dir / "run.parquet", "--png", png, "--html", html, "-q")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == [str(png), str(html)]
    assert result.stderr == ""
    _png_ok(png)
    assert "data:image/png;base64," in html.read_text(encoding="utf-8")
    assert not (out_dir / "run.report.png").exists() and not (out_dir / "run.report.html").exists()


def test_report_of_a_candidates_file(cli: Cli, tiny: dict[str, Path], out_dir: Path) -> None:
    cand = out_dir / "cand.parquet"
    negmine.mine(tiny["corpus"], tiny["queries"], tiny["qrels"], output=out_dir / "o.parquet", retriever="bm25",
                 candidates_output=cand)
    result = cli("report", cand, "-q")
    assert result.exit_code == 0, result.stderr
    _png_ok(out_dir / "cand.report.png")
    assert "negatives written" in (out_dir / "cand.report.html").read_text(encoding="utf-8")


def test_report_on_a_parquet_file_negmine_did_not_write(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "other.parquet"
    pq.write_table(pa.table({"a": [1, 2]}), path)
    result = cli("report", path)
    assert result.exit_code == 1
    line = error_line(result)
    assert str(path) in line and "negmine" in line
    assert result.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.parquet"]


def test_report_on_a_missing_file(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "missing.parquet"
    result = cli("report", path)
    assert result.exit_code == 1
    assert "not found" in error_line(result) and str(path) in error_line(result)
    assert result.stdout == "" and list(tmp_path.iterdir()) == []


def test_report_on_a_file_that_is_not_parquet(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "notes.parquet"
    path.write_text("hello")
    result = cli("report", path)
    assert result.exit_code == 1
    assert str(path) in error_line(result)


def test_report_refuses_to_overwrite_its_input(cli: Cli, scored_run: negmine.MineResult, out_dir: Path) -> None:
    run = out_dir / "run.parquet"
    before = run.read_bytes()
    result = cli("report", run, "--png", run)
    assert result.exit_code == 2
    assert "input" in error_line(result)
    assert run.read_bytes() == before


def test_report_of_a_run_without_scores(cli: Cli, tiny: dict[str, Path], out_dir: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    run = out_dir / "plain.parquet"
    negmine.mine(tiny["corpus"], tiny["queries"], tiny["qrels"], output=run, retriever="bm25",
                 relative_margin=None, max_positive_similarity=None, positive_proximity=None)
    texts: list[str] = []
    import matplotlib.axes

    original = matplotlib.axes.Axes.text

    def spy(self: Any, x: float, y: float, s: str, *args: Any, **kwargs: Any) -> Any:
        texts.append(s)
        return original(self, x, y, s, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "text", spy)
    result = cli("report", run)
    assert result.exit_code == 0, result.stderr
    assert any("no reranker scores" in t for t in texts)  # the histogram panel says so
    _png_ok(out_dir / "plain.report.png")
    page = (out_dir / "plain.report.html").read_text(encoding="utf-8")
    assert "negatives written" in page and "data:image/png;base64," in page
    assert "score quantiles" not in page and "reranker pairs scored" not in page


def test_report_rows_follow_the_stats(scored_run: negmine.MineResult) -> None:
    data = load_report(scored_run.output)
    rows = dict(report_rows(data))
    assert rows["negatives written"].startswith(f"{scored_run.stats.negatives_written:,} in ")
    assert rows["candidates seen"] == f"{scored_run.stats.candidates_seen:,}"
    assert rows["scorer"] == "bi-encoder"
    assert f"(n={scored_run.stats.scores['positive']['count']:,})" in rows["positive score quantiles"]
    assert rows["dropped: max score"] == f"{scored_run.stats.dropped['max_score']:,}"


# --- known bugs -------------------------------------------------------------------------------------------------------

def test_negative_score_histogram_counts_only_written_negatives(tiny: dict[str, Path]) -> None:
    result = negmine.mine(tiny["corpus"], tiny["queries"], tiny["qrels"], retriever="bm25", num_negatives=3,
                          max_score=0.5, output_format="n-tuple")
    assert result.stats.short_pairs > 0
    assert result.stats.scores["negative"]["count"] == result.stats.negatives_written


def test_near_duplicate_alone_reports_no_reranker_pairs(tiny: dict[str, Path]) -> None:
    result = negmine.mine(tiny["corpus"], tiny["queries"], tiny["qrels"], retriever="bm25", relative_margin=None,
                          max_positive_similarity=0.5)
    assert result.metadata["models"]["reranker"] is None
    assert result.stats.dropped["near_duplicate"] > 0
    assert result.stats.pairs_scored == 0


@pytest.mark.parametrize("option", ["--png", "--html"])
def test_report_into_a_missing_folder(cli: Cli, scored_run: negmine.MineResult, out_dir: Path, tmp_path: Path,
                                      option: str) -> None:
    target = tmp_path / "no-such-folder" / "x.out"
    result = cli("report", out_dir / "run.parquet", option, target)
    assert result.exit_code == 2
    assert "no-such-folder" in error_line(result)


def test_report_png_and_html_on_the_same_path(cli: Cli, scored_run: negmine.MineResult, tmp_path: Path,
                                              out_dir: Path) -> None:
    same = tmp_path / "report.out"
    result = cli("report", out_dir / "run.parquet", "--png", same, "--html", same)
    assert result.exit_code == 2
    assert "--png" in error_line(result) and "--html" in error_line(result)
