"""Sampling by difficulty in a run: --sampling-strategy simans (weighted by the judge's scores around the
positive's, seeded, lazy where it can be) and --difficulty-bands (each negative's slice of the rank window)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from helpers import TINY, grouped_negatives, read_candidates

import negmine

INPUTS = [TINY / f"{n}.parquet" for n in ("corpus", "queries", "qrels")]


def run(tmp_path: Path, name: str, **options: Any) -> negmine.MineResult:
    return negmine.mine(*INPUTS, output=tmp_path / f"{name}.parquet", cache_dir=tmp_path / "cache", **options)


def test_simans_picks_near_the_positive(tmp_path: Path) -> None:
    """With a sharp a, SimANS's picks score closer to their positive than random picks from the same window."""
    opts = {"num_negatives": 3, "range_max": 60, "max_positive_similarity": None, "lexical_overlap": None,
            "agreement": False, "cross_query": None}
    gaps = {}
    for strategy in ("random", "simans"):
        cand = tmp_path / f"{strategy}-c.parquet"
        negmine.mine(*INPUTS, candidates_output=cand, cache_dir=tmp_path / "cache", sampling_strategy=strategy,
                     simans_a=200.0, score_all=True, **opts)
        rows = pq.read_table(cand).to_pylist()
        pos = {r["query_id"]: r["reranker_score"] for r in rows if r["status"] == "qrel"}
        gaps[strategy] = np.mean([abs(r["reranker_score"] - pos[r["query_id"]]) for r in rows
                                  if r["status"] == "selected"])
    assert gaps["simans"] < 0.7 * gaps["random"], gaps


def test_simans_is_seeded(tmp_path: Path) -> None:
    a = run(tmp_path, "a", sampling_strategy="simans", seed=1)
    run(tmp_path, "b", sampling_strategy="simans", seed=1)
    c = run(tmp_path, "c", sampling_strategy="simans", seed=2)
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()
    assert grouped_negatives(a.table, "triplet") != grouped_negatives(c.table, "triplet")
    meta = negmine.read_metadata(tmp_path / "a.parquet")
    assert meta["config"]["simans_a"] == 0.5 and meta["config"]["simans_b"] == 0.0
    assert meta["models"]["reranker"] is not None  # the judge's scores shaped the picks: it is recorded


def test_simans_scores_only_the_window(tmp_path: Path) -> None:
    """Without --score-all SimANS scores the candidates it samples from (the window), not the whole depth."""
    lazy = run(tmp_path, "lazy", sampling_strategy="simans", range_max=10)
    full = run(tmp_path, "full", sampling_strategy="simans", range_max=10, score_all=True)
    assert 0 < lazy.stats.pairs_scored < full.stats.pairs_scored
    assert (tmp_path / "lazy.parquet").read_bytes() != (tmp_path / "full.parquet").read_bytes()  # stats differ
    assert grouped_negatives(lazy.table, "triplet") == grouped_negatives(full.table, "triplet")


@pytest.mark.parametrize("fmt, column", [("triplet", "difficulty_band"), ("n-tuple", "difficulty_bands"),
                                         ("labeled-list", "difficulty_bands")])
def test_difficulty_bands_follow_the_rank(tmp_path: Path, fmt: str, column: str) -> None:
    cand = tmp_path / "c.parquet"
    result = negmine.mine(*INPUTS, output=tmp_path / "o.parquet", candidates_output=cand,
                          cache_dir=tmp_path / "cache", output_format=fmt, difficulty_bands=4, range_max=40,
                          sampling_strategy="random", num_negatives=3)
    table = result.table
    assert column in table.column_names
    ranks = {}  # the window rank of each candidate: its rank among the query's non-positive candidates
    by_query: dict[str, list[dict[str, Any]]] = {}
    for c in read_candidates(cand):
        by_query.setdefault(c["query_id"], []).append(c)
    for q, rows in by_query.items():
        non_pos = [c for c in sorted(rows, key=lambda c: c["rank"]) if c["status"] != "positive"]
        ranks.update({(q, c["doc_id"]): i for i, c in enumerate(non_pos)})
    seen = set()
    for row in table.to_pylist():
        if fmt == "triplet":
            pairs = [(row["negative_id"], row[column])]
        elif fmt == "n-tuple":
            pairs = list(zip(row["negative_ids"], row[column]))
        else:
            assert row[column][0] == 0  # the positive
            pairs = list(zip(row["doc_ids"][1:], row[column][1:]))
        for doc, band in pairs:
            assert band == 1 + ranks[(row["query_id"], doc)] * 4 // 40
            seen.add(band)
    assert len(seen) > 1
    # a training table has no band column
    training = negmine.mine(*INPUTS, cache_dir=tmp_path / "cache", output_format=fmt, difficulty_bands=4,
                            columns="training")
    assert column not in training.table.column_names


def test_difficulty_bands_must_fit_the_window() -> None:
    with pytest.raises(negmine.ConfigError, match="--difficulty-bands must be between 1 and the rank window"):
        negmine.MineConfig(difficulty_bands=300)
