"""negmine refilter: the rules and the sampling re-applied to a candidates file write the bytes mine writes with
the same options, without a model, a retrieval or a score computed again; and what it refuses."""

from __future__ import annotations

import importlib
import random
import shutil
from pathlib import Path
from typing import Any

import pytest
from helpers import assert_cli_error, read_candidates

import negmine
from negmine.errors import ConfigError, InputError

#: Options a refilter may change, with values to draw from (the window stays inside the mined depth).
CHOICES: dict[str, list[Any]] = {
    "range_min": [0, 0, 1, 3],
    "range_max": [12, 20, 30],
    "num_negatives": [1, 2, 3],
    "sampling_strategy": ["top", "random", "simans"],
    "seed": [1, 7],
    "simans_a": [0.5, 20.0],
    "relative_margin": [None, "auto", 0.02, 0.1],
    "absolute_margin": [None, 0.05],
    "max_score": [None, 0.6],
    "min_score": [None, -0.2],
    "margin_reference": ["min", "mean", "max"],
    "percentile_margin": [None, 0.1],
    "percentile_cap": [1.0, 0.9],
    "max_positive_similarity": [None, 0.9, 0.98],
    "positive_proximity": [None, 0.0, 0.02, 0.1],
    "lexical_overlap": [None, 0.1, 0.3],
    "agreement": [True, False],
    "cross_query": [None, 0.95],
    "output_format": ["triplet", "n-tuple", "labeled-pair", "labeled-list", "flagembedding"],
    "prompt": [None, "Represent: "],
    "output_scores": [False, True],
    "difficulty_bands": [None, 3],
    "promote_false_negatives": [False, True],
}
#: The mining run every refilter reads: everything scored, the widest window the draws use.
MINED = {"range_max": 30, "score_all": True}


def draw(rng: random.Random) -> dict[str, Any]:
    options = {k: rng.choice(v) for k, v in CHOICES.items() if rng.random() < 0.6}
    options.setdefault("range_max", 30)
    if options.get("range_min", 0) + options.get("num_negatives", 5) > options["range_max"]:
        options["range_min"] = 0
    return options


@pytest.fixture(scope="module")
def mined(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The tiny set mined once with --score-all into a candidates file (its own cache folder)."""
    from helpers import TINY

    work = tmp_path_factory.mktemp("refilter")
    for name in ("corpus", "queries", "qrels"):
        shutil.copy(TINY / f"{name}.parquet", work / f"{name}.parquet")
    return {"work": work, "inputs": [work / f"{n}.parquet" for n in ("corpus", "queries", "qrels")]}


def mine_to(mined: dict[str, Any], name: str, retriever: str = "dense", **options: Any) -> tuple[Path, Path]:
    out, cand = mined["work"] / f"{name}.parquet", mined["work"] / f"{name}-cand.parquet"
    negmine.mine(*mined["inputs"], output=out, candidates_output=cand, cache_dir=mined["work"] / "cache",
                 retriever=retriever, **{**MINED, **options})
    return out, cand


@pytest.mark.parametrize("retriever", ["dense", "bm25"])
def test_refilter_writes_what_mine_writes(mined: dict[str, Any], retriever: str, monkeypatch: pytest.MonkeyPatch
                                          ) -> None:
    _, cand = mine_to(mined, f"base-{retriever}", retriever)
    rng = random.Random(retriever)
    tried = 0
    for i in range(12):
        options = draw(rng)
        want = mined["work"] / f"want-{retriever}-{i}.parquet"
        try:
            negmine.mine(*mined["inputs"], output=want, cache_dir=mined["work"] / "cache", retriever=retriever,
                         **{**MINED, **options})
        except negmine.EmptyResultError:
            options["allow_empty"] = True
            negmine.mine(*mined["inputs"], output=want, cache_dir=mined["work"] / "cache", retriever=retriever,
                         **{**MINED, **options})
        got = mined["work"] / f"got-{retriever}-{i}.parquet"
        with monkeypatch.context() as m:  # no model: refilter must not load one
            m.setattr(importlib.import_module("negmine.retrieve.build"), "make_encoder",
                      lambda *a, **k: pytest.fail("refilter loaded a model"))
            negmine.refilter(cand, got, cache_dir=mined["work"] / "cache", **options)
        assert got.read_bytes() == want.read_bytes(), options
        tried += 1
    assert tried == 12


def test_refilter_of_the_same_options_is_the_mined_output(mined: dict[str, Any]) -> None:
    out, cand = mine_to(mined, "same", num_negatives=3, relative_margin=0.05)
    again = mined["work"] / "again.parquet"
    result = negmine.refilter(cand, again)
    assert again.read_bytes() == out.read_bytes()
    assert result.stats.negatives_written > 0


def test_refilter_cli(cli: Any, mined: dict[str, Any], out_dir: Path) -> None:
    _, cand = mine_to(mined, "cli")
    out = out_dir / "r.parquet"
    result = cli("refilter", cand, "-o", out, "--relative-margin", "0.05", "-n", "2")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == str(out)
    assert "negatives written" in result.stderr
    meta = negmine.read_metadata(out)
    assert meta["config"]["relative_margin"] == 0.05 and meta["config"]["num_negatives"] == 2


# --- what refilter refuses -------------------------------------------------------------------------------------

def test_a_deeper_window_than_mined_is_refused(mined: dict[str, Any]) -> None:
    _, cand = mine_to(mined, "deep")
    with pytest.raises(ConfigError, match="--range-max 60: the candidates .* were retrieved 33 deep"):
        negmine.refilter(cand, range_max=60)


def test_hybrid_needs_the_mined_depth(mined: dict[str, Any]) -> None:
    _, cand = mine_to(mined, "hybrid", "hybrid")
    with pytest.raises(ConfigError, match="hybrid"):
        negmine.refilter(cand, range_max=20)
    assert negmine.refilter(cand, relative_margin=0.1).stats.negatives_written > 0


def test_options_fixed_by_the_mining_run_are_refused(mined: dict[str, Any]) -> None:
    _, cand = mine_to(mined, "fixed")
    with pytest.raises(ConfigError, match="--reranker, --retriever: fixed by the mining run"):
        negmine.refilter(cand, retriever="bm25", reranker="x")


def test_a_value_the_file_lacks_is_named(mined: dict[str, Any]) -> None:
    """Without --score-all lazy scoring stops early: a looser window asks for scores nobody computed."""
    _, cand = mine_to(mined, "lazy", score_all=False, relative_margin=0.05, num_negatives=2)
    with pytest.raises(ConfigError, match=r"the judge's score \(reranker_score\) of query 'q\d+', document "
                                          r"'d\d+' is not in this candidates file.*--score-all"):
        negmine.refilter(cand, relative_margin=0.05, num_negatives=2, range_min=5)
    # a rule whose evidence was never gathered
    _, cand = mine_to(mined, "nolex", score_all=False, lexical_overlap=None)
    with pytest.raises(ConfigError, match="--lexical-overlap needs .*lexical_overlap"):
        negmine.refilter(cand, lexical_overlap=0.2)
    # a value no rule read: the positive proximity of a run without that rule
    _, cand = mine_to(mined, "noprox", score_all=False, positive_proximity=None)
    with pytest.raises(ConfigError, match=r"--positive-proximity needs .*\(positive_proximity\)"):
        negmine.refilter(cand, positive_proximity=0.02)


def test_changed_inputs_are_refused(mined: dict[str, Any], tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    work = tmp_path / "w"
    work.mkdir()
    inputs = []
    for p in mined["inputs"]:
        shutil.copy(p, work / p.name)
        inputs.append(work / p.name)
    cand = work / "c.parquet"
    negmine.mine(*inputs, candidates_output=cand, score_all=True)
    table = pq.read_table(inputs[0])
    pq.write_table(table.slice(0, table.num_rows - 1), inputs[0])
    with pytest.raises(InputError, match="corpus.parquet: changed since the candidates"):
        negmine.refilter(cand)
    inputs[0].unlink()
    with pytest.raises(InputError, match="give its new path with --corpus"):
        negmine.refilter(cand)


def test_an_output_file_is_not_a_candidates_file(mined: dict[str, Any]) -> None:
    out, _ = mine_to(mined, "notcand")
    with pytest.raises(InputError, match="not a candidates file"):
        negmine.refilter(out)


def test_refilter_cli_errors(cli: Any, mined: dict[str, Any], out_dir: Path) -> None:
    _, cand = mine_to(mined, "clierr")
    out = out_dir / "r.parquet"
    assert_cli_error(cli("refilter", cand, "-o", out, "--range-max", "500"), 2, ["--range-max 500"], out)
    assert_cli_error(cli("refilter", cand, "-o", cand), 2, ["--output", str(cand)], out, empty_dir=False)
    assert_cli_error(cli("refilter", out_dir / "nope.parquet", "-o", out), 1, ["no such candidates file"], out)


def test_false_negatives_file_from_refilter(mined: dict[str, Any]) -> None:
    _, cand = mine_to(mined, "fn")
    fn = mined["work"] / "fn.parquet"
    negmine.refilter(cand, false_negatives_output=fn, relative_margin=0.02)
    import pyarrow.parquet as pq

    rows = pq.read_table(fn).to_pylist()
    dropped = {(c["query_id"], c["doc_id"]) for c in read_candidates(cand)}
    assert rows and all((r["query-id"], r["corpus-id"]) in dropped and r["score"] == 1 for r in rows)
