"""negmine sweep: every setting of a grid over one candidates file, each what refilter would write."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from helpers import TINY, assert_cli_error

import negmine
from negmine.errors import ConfigError


@pytest.fixture(scope="module")
def cand(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("sweep")
    for name in ("corpus", "queries", "qrels"):
        shutil.copy(TINY / f"{name}.parquet", work / f"{name}.parquet")
    path = work / "cand.parquet"
    negmine.mine(*(work / f"{n}.parquet" for n in ("corpus", "queries", "qrels")), candidates_output=path,
                 score_all=True, range_max=40, num_negatives=3)
    return path


def test_each_setting_is_what_refilter_writes(cand: Path) -> None:
    grid = {"relative_margin": [None, 0.02, 0.1], "sampling_strategy": ["top", "simans"]}
    result = negmine.sweep(cand, grid)
    assert [r.settings for r in result.rows] == [
        {"relative_margin": m, "sampling_strategy": s} for m in (None, 0.02, 0.1) for s in ("top", "simans")]
    assert result.scorer == "judge: bi-encoder"
    for row in result.rows:
        refiltered = negmine.refilter(cand, allow_empty=True, **row.settings)
        stats = refiltered.stats
        assert row.negatives == stats.negatives_written
        assert row.short_queries == stats.short_queries
        assert row.queries_served == pytest.approx(1 - stats.short_queries / stats.queries_mined)
        assert row.dropped == {k: v for k, v in stats.dropped.items() if v}
        # the picks' ranks are those of the written negatives (1 = best)
        table = refiltered.table.to_pylist()
        assert row.rank["p50"] is not None and row.rank["p5"] >= 1
        assert len(table) == row.negatives
    # a tighter margin never writes more and never serves more queries
    top = [r for r in result.rows if r.settings["sampling_strategy"] == "top"]
    assert top[0].queries_served >= top[1].queries_served >= top[2].queries_served
    assert top[0].rank["p50"] <= top[2].rank["p50"]


def test_sweep_png_and_json(cli: Any, cand: Path, out_dir: Path) -> None:
    png = out_dir / "trade-off.png"
    result = cli("sweep", cand, "--relative-margin", "none,0,0.05", "--png", png, "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert [r["settings"]["relative_margin"] for r in data["rows"]] == [None, 0.0, 0.05]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    plain = cli("sweep", cand, "-n", "1,2", "--png", png)
    assert plain.exit_code == 0, plain.stderr
    assert plain.stdout.strip() == str(png) and "negatives" in plain.stderr and "settings in" in plain.stderr


def test_sweep_errors(cli: Any, cand: Path, out_dir: Path) -> None:
    png = out_dir / "s.png"
    assert_cli_error(cli("sweep", cand, "--png", png), 2, ["nothing to sweep"], png)
    assert_cli_error(cli("sweep", cand, "--relative-margin", "0,x", "--png", png), 2, ["--relative-margin", "'x'"],
                     png)
    assert_cli_error(cli("sweep", cand, "--range-max", "20,400", "--png", png), 2,
                     ["setting --range-max 400", "retrieved 43 deep"], png)
    assert_cli_error(cli("sweep", cand, "--agreement", "maybe", "--png", png), 2, ["--agreement"], png)
    with pytest.raises(ConfigError, match="--retriever: not an option a sweep can vary"):
        negmine.sweep(cand, {"retriever": ["bm25"]})
    with pytest.raises(ConfigError, match="--png .*: name the file with a .png extension"):
        negmine.sweep(cand, {"seed": [1]}, png=out_dir / "s.jpg")
