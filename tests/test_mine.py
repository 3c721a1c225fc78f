"""negmine.mine (the Python API): options, results, the mining rules end to end, provenance, determinism."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import NO_SCORING_OPTIONS, grouped_negatives, pairs_of, positives_from_qrels

import negmine
from negmine import ConfigError, InputError, MineConfig, MineStats
from negmine.inputs.data import Corpus, Qrels, Queries, text_id

FORMATS = ["triplet", "n-tuple", "labeled-list"]


def mine(*args, **options):  # type: ignore[no-untyped-def]
    """negmine.mine with the model-based score rules off (see helpers.NO_SCORING) unless the test sets them."""
    if "config" not in options:
        options = {**NO_SCORING_OPTIONS, **options}
    return negmine.mine(*args, **options)


def _run(tiny: dict[str, Path], **options):  # type: ignore[no-untyped-def]
    return mine(tiny["corpus"], tiny["queries"], tiny["qrels"], **options)


# --- the API -----------------------------------------------------------------------------------------------------

def test_mine_returns_table_stats_and_metadata(tiny: dict[str, Path], tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = _run(tiny, num_negatives=2)
    assert isinstance(result, negmine.MineResult)
    assert isinstance(result.table, pa.Table) and isinstance(result.stats, MineStats)
    assert result.table.column_names[:6] == ["anchor", "positive", "negative", "query_id", "positive_id",
                                             "negative_id"]
    s = result.stats
    assert (s.queries, s.queries_mined, s.documents, s.positives) == (30, 30, 120, 40)
    assert (s.qrels_rows, s.qrels_nonpositive, s.qrels_unknown_query, s.qrels_unknown_doc) == (43, 3, 0, 0)
    assert s.rows_written == result.table.num_rows == s.negatives_written == 2 * 40 - s.short_pairs * 0
    assert result.metadata["config"]["num_negatives"] == 2
    assert result.output is None
    assert list(tmp_path.iterdir()) == []  # no output asked, nothing written


def test_mine_with_config_and_overrides(tiny: dict[str, Path]) -> None:
    cfg = MineConfig(num_negatives=4, output_format="n-tuple", seed=5, **NO_SCORING_OPTIONS)
    result = _run(tiny, config=cfg, num_negatives=2)
    assert [c for c in result.table.column_names if c.startswith("negative_") and c[9:].isdigit()] == [
        "negative_1", "negative_2"]
    assert result.metadata["config"]["output_format"] == "n-tuple"
    assert result.metadata["config"]["num_negatives"] == 2
    assert result.metadata["config"]["seed"] == 5
    assert cfg.num_negatives == 4  # the given config is not changed


def test_mine_with_config_only(tiny: dict[str, Path]) -> None:
    result = _run(tiny, config=MineConfig(num_negatives=1, output_format="labeled-list", **NO_SCORING_OPTIONS))
    assert result.table.column_names == ["anchor", "docs", "labels", "query_id", "doc_ids"]
    assert all(len(d) == 2 for d in result.table.column("doc_ids").to_pylist())


def test_mine_unknown_option(tiny: dict[str, Path]) -> None:
    with pytest.raises(ConfigError) as info:
        _run(tiny, num_negativs=3)
    assert "unknown option(s): num_negativs" in str(info.value)
    with pytest.raises(ConfigError, match="unknown option"):
        _run(tiny, config=MineConfig(), bogus=True)


def test_mine_invalid_option_value(tiny: dict[str, Path]) -> None:
    with pytest.raises(ConfigError, match="--sampling-strategy must be one of top, random, simans; got 'best'"):
        _run(tiny, sampling_strategy="best")


def test_mine_in_memory_inputs() -> None:
    corpus = Corpus(["a", "b", "c", "d"], ["red apple pie", "green apple tart", "apple juice", "blue car"])
    queries = Queries(["q"], ["apple pie recipe"])
    qrels = Qrels(["q"], ["a"], [1.0])
    result = mine(corpus, queries, qrels, num_negatives=2, range_max=3)
    # "apple juice" is shorter than "green apple tart", so it ranks first; "blue car" shares no term
    assert result.table.column("negative_id").to_pylist() == ["c", "b"]
    assert result.metadata["inputs"] == {}


def test_mine_pairs_list() -> None:
    pairs = [("apple pie recipe", "red apple pie"), ("fast blue car", "blue car")]
    corpus = Corpus(["a", "b", "c", "d"], ["red apple pie", "green apple tart", "apple juice", "blue car"])
    result = mine(corpus, pairs=pairs, num_negatives=2, range_max=3)
    groups = grouped_negatives(result.table, "triplet")
    assert groups == {(text_id("q_", "apple pie recipe"), "a"): ["c", "b"]}
    assert result.stats.short_pairs == 1  # "fast blue car" has no candidate besides its positive


def test_mine_pairs_without_corpus(tiny: dict[str, Path]) -> None:
    result = mine(pairs=tiny["pairs"], num_negatives=3)
    pairs = pq.read_table(tiny["pairs"]).to_pylist()
    positives = {(p["anchor"], p["positive"]) for p in pairs}
    rows = result.table.to_pylist()
    assert result.stats.documents == len({p["positive"] for p in pairs})
    assert result.stats.positives == len(positives)
    assert rows and all((r["anchor"], r["positive"]) in positives for r in rows)
    assert all((r["anchor"], r["negative"]) not in positives for r in rows)
    assert set(result.metadata["inputs"]) == {"pairs"}


def test_mine_pairs_with_titled_corpus_never_mines_the_positive_itself(tiny: dict[str, Path]) -> None:
    result = mine(tiny["corpus"], pairs=tiny["pairs"], num_negatives=5)
    rows = result.table.to_pylist()
    assert rows
    assert [r for r in rows if r["positive"] in r["negative"]] == []
    assert result.stats.documents == 120


def test_mine_pairs_with_corpus_without_titles(tiny: dict[str, Path]) -> None:
    result = mine(tiny["corpus"], pairs=tiny["pairs"], num_negatives=5, corpus_title_column="")
    rows = result.table.to_pylist()
    assert result.stats.documents == 120  # every positive is a corpus document
    assert all(r["positive_id"].startswith("d") and r["negative_id"].startswith("d") for r in rows)
    assert [r for r in rows if r["positive"] == r["negative"]] == []


# --- mining rules --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("strategy", ["top", "random"])
def test_no_negative_is_a_positive_of_its_query(tiny: dict[str, Path], tiny_tables: dict[str, pa.Table],
                                               fmt: str, strategy: str) -> None:
    positives = positives_from_qrels(tiny_tables["qrels"])
    result = _run(tiny, num_negatives=3, output_format=fmt, sampling_strategy=strategy, range_max=20)
    rows = pairs_of(result.table, fmt)
    assert len(rows) >= 35
    for q, p, negs in rows:
        assert p in positives[q]
        assert not set(negs) & positives[q], (q, negs)
        assert len(set(negs)) == len(negs)
    # every positive of every query shows up
    assert {(q, p) for q, p, _ in rows} == {(q, d) for q, ds in positives.items() for d in ds}


def test_judged_negatives_are_never_positives(tiny: dict[str, Path]) -> None:
    result = _run(tiny, num_negatives=5)
    rows = pairs_of(result.table, "triplet")
    judged = {("q06", "d015"), ("q12", "d040"), ("q26", "d116")}
    assert not {(q, p) for q, p, _ in rows} & judged
    # they are ordinary documents otherwise: lexically close, so some are mined as hard negatives
    assert {(q, n) for q, _, negs in rows for n in negs} & judged
    assert result.stats.qrels_nonpositive == 3


def test_several_positives_one_row_per_positive_and_negative(small: dict[str, Path]) -> None:
    result = mine(small["corpus"], small["queries"], small["qrels"], num_negatives=2)
    groups = grouped_negatives(result.table, "triplet")
    assert set(groups) == {("q1", "d1"), ("q1", "d2"), ("q2", "d5"), ("q3", "d9")}
    # q1: both positives get the same (top) negatives, one row each
    assert groups[("q1", "d1")] == groups[("q1", "d2")]
    assert len(groups[("q1", "d1")]) == 2 and not {"d1", "d2"} & set(groups[("q1", "d1")])
    assert result.table.num_rows == sum(len(v) for v in groups.values())
    # q2's judged negative d6 (score 0) is not a positive, but it can be a negative
    assert result.stats.positives == 4 and result.stats.qrels_nonpositive == 1
    assert "d6" in groups[("q2", "d5")]


def test_range_min_skips_the_best_non_positives(tiny: dict[str, Path]) -> None:
    """Whether a candidate is kept does not depend on the window: ranks 3..5 hold what ranks 0..5 hold and ranks
    0..2 do not."""
    base = grouped_negatives(_run(tiny, num_negatives=6, range_min=0, range_max=6).table, "triplet")
    top3 = grouped_negatives(_run(tiny, num_negatives=3, range_min=0, range_max=3).table, "triplet")
    skipped = grouped_negatives(_run(tiny, num_negatives=3, range_min=3, range_max=6).table, "triplet")
    assert set(base) == set(skipped)
    assert sum(len(v) >= 6 for v in base.values()) > 20
    for key, negs in base.items():
        assert skipped.get(key, []) == [n for n in negs if n not in top3[key]], key
        assert not set(skipped.get(key, [])) & set(top3[key])


def test_range_max_bounds_random_sampling(tiny: dict[str, Path]) -> None:
    window = grouped_negatives(_run(tiny, num_negatives=4, range_max=4).table, "triplet")
    sampled = grouped_negatives(
        _run(tiny, num_negatives=2, range_max=4, sampling_strategy="random", seed=3).table, "triplet"
    )
    assert set(window) == set(sampled)
    for key, negs in sampled.items():
        assert set(negs) <= set(window[key])
        # sorted in rank order
        assert negs == [n for n in window[key] if n in negs]


def test_random_seed(tiny: dict[str, Path]) -> None:
    opts = {"num_negatives": 3, "range_max": 30, "sampling_strategy": "random"}
    a = _run(tiny, seed=1, **opts).table
    b = _run(tiny, seed=1, **opts).table
    c = _run(tiny, seed=2, **opts).table
    top = _run(tiny, num_negatives=3, range_max=30).table
    assert a.equals(b)
    assert not a.equals(c)
    assert not a.equals(top)
    assert a.num_rows == c.num_rows == top.num_rows


def test_short_pairs_are_counted(make_parquet: Callable[..., Path]) -> None:
    corpus = make_parquet("c.parquet", {"_id": ["a", "b", "c", "d", "e"],
                                        "text": ["apple pie", "apple tart", "car", "boat", "train"]})
    queries = make_parquet("q.parquet", {"_id": ["q1", "q2"], "text": ["apple", "car boat train"]})
    qrels = make_parquet("r.parquet", {"query-id": ["q1", "q2"], "corpus-id": ["a", "c"], "score": [1, 1]})
    result = mine(corpus, queries, qrels, num_negatives=2)
    groups = grouped_negatives(result.table, "triplet")
    assert groups == {("q1", "a"): ["b"], ("q2", "c"): ["d", "e"]}
    s = result.stats
    assert (s.short_pairs, s.short_queries, s.short_examples) == (1, 1, ["q1"])
    assert s.negatives_written == 3 and s.rows_written == 3
    ntuple = mine(corpus, queries, qrels, num_negatives=2, output_format="n-tuple")
    assert ntuple.table.column("query_id").to_pylist() == ["q2"]
    assert ntuple.stats.negatives_written == 2


def test_unknown_qrels_ids_warn(make_parquet: Callable[..., Path], small: dict[str, Path]) -> None:
    qrels = make_parquet("r2.parquet", {"query-id": ["q1", "qX", "q2", "q3"], "corpus-id": ["d1", "d1", "dX", "d9"],
                                        "score": [1, 1, 1, 1]})
    result = mine(small["corpus"], small["queries"], qrels, num_negatives=1)
    assert (result.stats.qrels_unknown_query, result.stats.qrels_unknown_doc) == (1, 1)
    assert len(result.warnings) == 1
    assert "skipped 1 rows naming unknown queries and 1 naming unknown documents" in result.warnings[0]
    assert "query 'qX' (row 1)" in result.warnings[0] and "document 'dX' (row 2)" in result.warnings[0]
    with pytest.raises(InputError, match=r"row 1: query id 'qX' is not in"):
        mine(small["corpus"], small["queries"], qrels, num_negatives=1, strict=True)


def test_too_many_negatives_for_the_corpus(make_parquet: Callable[..., Path]) -> None:
    corpus = make_parquet("c.parquet", {"_id": ["a", "b", "c"], "text": ["red blue", "blue green", "green red"]})
    queries = make_parquet("q.parquet", {"_id": ["q"], "text": ["red green"]})
    qrels = make_parquet("r.parquet", {"query-id": ["q"], "corpus-id": ["a"], "score": [1]})
    with pytest.raises(InputError) as info:
        mine(corpus, queries, qrels, num_negatives=3, range_max=10)
    assert "3 negatives per query asked, but the corpus has 3 documents" in str(info.value)
    assert str(info.value).startswith(str(corpus))
    assert mine(corpus, queries, qrels, num_negatives=2, range_max=10).table.num_rows == 2


def test_output_scores_are_the_retriever_scores(tiny: dict[str, Path]) -> None:
    from negmine.retrieve.bm25 import BM25Retriever

    corpus = negmine.read_corpus(tiny["corpus"])
    retriever = BM25Retriever().index(corpus.texts)
    result = _run(tiny, num_negatives=2, output_scores=True)
    rows = result.table.to_pylist()
    for r in rows[:40]:
        scores = retriever.scores(r["anchor"])
        assert r["positive_score"] == pytest.approx(float(scores[corpus.index[r["positive_id"]]]), rel=1e-5)
        assert r["negative_score"] == pytest.approx(float(scores[corpus.index[r["negative_id"]]]), rel=1e-5)
        assert r["negative_score"] > 0


# --- output, provenance, determinism -------------------------------------------------------------------------------

def test_output_file_and_provenance(tiny: dict[str, Path], out_dir: Path) -> None:
    out = out_dir / "neg.parquet"
    result = _run(tiny, output=out, num_negatives=3, seed=9)
    assert result.output == out
    assert sorted(p.name for p in out_dir.iterdir()) == ["neg.parquet"]
    written = pq.read_table(out)
    assert written.replace_schema_metadata(None).equals(result.table.replace_schema_metadata(None))
    meta = negmine.read_metadata(out)
    assert meta == result.metadata
    assert meta["negmine_version"] == negmine.__version__
    assert meta["config"] == MineConfig(num_negatives=3, seed=9, **NO_SCORING_OPTIONS).to_dict(provenance=True)
    assert set(meta["inputs"]) == {"corpus", "queries", "qrels"}
    for role in ("corpus", "queries", "qrels"):
        assert meta["inputs"][role]["path"] == str(tiny[role])
        digest = hashlib.sha256(tiny[role].read_bytes()).hexdigest()
        assert meta["inputs"][role]["fingerprint"] == "sha256:" + digest
    assert meta["stats"]["rows_written"] == written.num_rows
    assert meta["stats"]["positives"] == 40
    assert meta["stats"]["dropped"] == result.stats.dropped


@pytest.mark.parametrize("strategy", ["top", "random"])
def test_same_inputs_same_bytes(tiny: dict[str, Path], out_dir: Path, strategy: str) -> None:
    a, b = out_dir / "a.parquet", out_dir / "b.parquet"
    for out in (a, b):
        _run(tiny, output=out, num_negatives=3, sampling_strategy=strategy, seed=11, range_max=40)
    assert a.read_bytes() == b.read_bytes()
    assert sorted(p.name for p in out_dir.iterdir()) == ["a.parquet", "b.parquet"]


def test_errors_write_nothing(tiny: dict[str, Path], out_dir: Path) -> None:
    out = out_dir / "neg.parquet"
    with pytest.raises(InputError):
        mine(tiny["corpus"], tiny["queries"], out_dir / "missing.parquet", output=out)
    with pytest.raises(ConfigError):
        mine(tiny["corpus"], tiny["queries"], tiny["qrels"], output=out, bm25_stemmer="klingon")
    assert list(out_dir.iterdir()) == []


def test_output_equal_to_input_is_refused(tiny: dict[str, Path], tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.parquet"
    corpus.write_bytes(tiny["corpus"].read_bytes())
    before = corpus.read_bytes()
    with pytest.raises(ConfigError, match="is an input file"):
        mine(corpus, tiny["queries"], tiny["qrels"], output=corpus)
    assert corpus.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus.parquet"]


def test_pairs_and_queries_together(tiny: dict[str, Path]) -> None:
    with pytest.raises(ConfigError, match="--pairs replaces --queries and --qrels"):
        mine(tiny["corpus"], tiny["queries"], pairs=tiny["pairs"])
    with pytest.raises(ConfigError, match="give --queries and --qrels"):
        mine(tiny["corpus"], tiny["queries"])
    with pytest.raises(ConfigError, match="--corpus is required"):
        mine(None, tiny["queries"], tiny["qrels"])
