"""Relabelling false negatives: --false-negatives-output writes the candidates dropped as likely false negatives in
qrels form (append them to the qrels and mine again), --promote-false-negatives makes them positives in one run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import TINY, read_candidates

import negmine
from negmine.rules.registry import FALSE_NEGATIVE_RULES, REASONS

INPUTS = [TINY / f"{n}.parquet" for n in ("corpus", "queries", "qrels")]
FN_RULES = {REASONS[c] for c in FALSE_NEGATIVE_RULES}
#: Margins tight enough to drop some candidates as likely false negatives on the tiny set.
TIGHT = {"relative_margin": 0.02, "num_negatives": 3, "score_all": True}


def test_false_negatives_file(tmp_path: Path) -> None:
    cand, fn = tmp_path / "c.parquet", tmp_path / "fn.parquet"
    negmine.mine(*INPUTS, output=tmp_path / "o.parquet", candidates_output=cand, false_negatives_output=fn,
                 cache_dir=tmp_path / "cache", **TIGHT)
    rows = pq.read_table(fn).to_pylist()
    assert pq.read_table(fn).column_names == ["query-id", "corpus-id", "score", "rule", "rank", "judge_score"]
    dropped = {(c["query_id"], c["doc_id"]): c for c in read_candidates(cand) if c["status"] in FN_RULES}
    assert rows and {(r["query-id"], r["corpus-id"]) for r in rows} == set(dropped)
    for r in rows:
        c = dropped[(r["query-id"], r["corpus-id"])]
        assert r["score"] == 1 and r["rule"] == c["status"] and r["rank"] == c["rank"]
        assert r["judge_score"] == pytest.approx(c["reranker_score"])
    # the known positives are never in it
    qrels = pq.read_table(TINY / "qrels.parquet").to_pylist()
    known = {(r["query-id"], r["corpus-id"]) for r in qrels if r["score"] > 0}
    assert not {(r["query-id"], r["corpus-id"]) for r in rows} & known
    assert negmine.read_metadata(fn)["config"]["relative_margin"] == 0.02


def test_appended_false_negatives_become_positives(tmp_path: Path) -> None:
    """The file appends to the qrels as it is; mining again, its documents are positives, never negatives."""
    fn = tmp_path / "fn.parquet"
    negmine.mine(*INPUTS, false_negatives_output=fn, cache_dir=tmp_path / "cache", **TIGHT)
    qrels = pq.read_table(TINY / "qrels.parquet")
    extra = pq.read_table(fn).select(["query-id", "corpus-id", "score"]).cast(qrels.schema)
    merged = tmp_path / "qrels+fn.parquet"
    pq.write_table(pa.concat_tables([qrels, extra]), merged)
    again = negmine.mine(INPUTS[0], INPUTS[1], merged, cache_dir=tmp_path / "cache", **TIGHT)
    promoted = set(zip(extra.column("query-id").to_pylist(), extra.column("corpus-id").to_pylist()))
    written = set(zip(again.table.column("query_id").to_pylist(), again.table.column("negative_id").to_pylist()))
    assert promoted and not promoted & written
    positive_rows = sum(1 for s in qrels.column("score").to_pylist() if s > 0)
    assert again.stats.positives == positive_rows + extra.num_rows


@pytest.mark.parametrize("fmt", ["triplet", "n-tuple", "labeled-list"])
def test_promoted_positives_are_never_negatives(tmp_path: Path, fmt: str) -> None:
    cand, fn = tmp_path / "c.parquet", tmp_path / "fn.parquet"
    plain = negmine.mine(*INPUTS, cache_dir=tmp_path / "cache", output_format=fmt, **TIGHT)
    result = negmine.mine(*INPUTS, candidates_output=cand, false_negatives_output=fn, cache_dir=tmp_path / "cache",
                          output_format=fmt, promote_false_negatives=True, **TIGHT)
    promoted = set(zip(*pq.read_table(fn).select(["query-id", "corpus-id"]).to_pydict().values()))
    assert result.stats.promoted_positives == len(promoted) > 0
    table = result.table.to_pylist()
    negatives, positives = set(), set()
    for row in table:
        q = row["query_id"]
        if fmt == "triplet":
            negatives.add((q, row["negative_id"]))
            positives.add((q, row["positive_id"]))
        elif fmt == "n-tuple":
            negatives.update((q, d) for d in row["negative_ids"])
            positives.add((q, row["positive_id"]))
        else:
            positives.add((q, row["doc_ids"][0]))
            negatives.update((q, d) for d, label in zip(row["doc_ids"][1:], row["labels"][1:]) if label == 0)
    assert not promoted & negatives
    # written as positives of rows of their own, with the negatives of the query's first positive (a query that got
    # none has no rows to write them in)
    served = {q for q, _ in negatives}
    assert {(q, d) for q, d in promoted if q in served} <= positives
    assert {q for q, _ in promoted} & served
    # the original pairs are written as before: promotion only adds rows
    assert result.table.num_rows > plain.table.num_rows
    def positive(row: dict[str, Any]) -> str:
        return row["doc_ids"][0] if fmt == "labeled-list" else row["positive_id"]

    original = [r for r in table if (r["query_id"], positive(r)) not in promoted]
    assert len(original) == plain.table.num_rows


def test_promote_in_the_summary(cli: Any, tiny: dict[str, Path], out_dir: Path) -> None:
    out = out_dir / "o.parquet"
    result = cli("mine", "--corpus", tiny["corpus"], "--queries", tiny["queries"], "--qrels", tiny["qrels"],
                 "-o", out, "--relative-margin", "0.02", "--promote-false-negatives",
                 "--false-negatives-output", out_dir / "fn.parquet")
    assert result.exit_code == 0, result.stderr
    assert "promoted to positives" in result.stderr
    assert negmine.read_metadata(out)["stats"]["promoted_positives"] > 0
