"""Query batches end to end: the output's bytes do not depend on the batch size, an interrupted run resumes after
its last finished batch and writes the same bytes, and the corpus is read memory-mapped, not copied."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import NO_SCORING_OPTIONS, TINY

import negmine
import negmine.output.jsonl
from negmine.inputs.read import read_corpus

ENGINES = importlib.import_module("negmine.run.engines")  # where the local engine calls mine_batch
OUTPUTS = importlib.import_module("negmine.run.outputs")
REAL_MINE_BATCH = ENGINES.mine_batch
INPUTS = (TINY / "corpus.parquet", TINY / "queries.parquet", TINY / "qrels.parquet")

SETTINGS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "bm25, rules off": NO_SCORING_OPTIONS,
    "hybrid, judge margin, scores": {"retriever": "hybrid", "relative_margin": 0.15, "output_scores": True},
    "random, n-tuple": {"sampling_strategy": "random", "output_format": "n-tuple", "num_negatives": 3},
    "labeled-list, percentile gate": {"output_format": "labeled-list", "percentile_margin": 0.1,
                                      "percentile_floor": 0.2, "output_scores": True},
    "random, flagembedding, scores": {"sampling_strategy": "random", "output_format": "flagembedding",
                                      "output_scores": True, "prompt": "Represent: "},
    "labeled-pair, judge margin": {"output_format": "labeled-pair", "relative_margin": 0.15, "output_scores": True},
}


def run(tmp_path: Path, name: str, suffix: str = ".parquet", **options: Any) -> tuple[bytes, bytes]:
    out, cand = tmp_path / f"{name}{suffix}", tmp_path / f"{name}-c.parquet"  # the candidates file is Parquet
    negmine.mine(*INPUTS, output=out, candidates_output=cand, cache_dir=tmp_path / "cache", **options)
    return out.read_bytes(), cand.read_bytes()


@pytest.mark.parametrize("setting", list(SETTINGS), ids=list(SETTINGS))
def test_the_bytes_do_not_depend_on_the_batch_size(tmp_path: Path, setting: str) -> None:
    options = SETTINGS[setting]
    whole = run(tmp_path, "whole", **options)
    for size in (1, 4, 7):
        assert run(tmp_path, f"b{size}", query_batch_size=size, **options) == whole, size


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz"])
@pytest.mark.parametrize("setting", ["defaults", "random, flagembedding, scores", "labeled-pair, judge margin"])
def test_json_lines_bytes_do_not_depend_on_the_batch_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          setting: str, suffix: str) -> None:
    import negmine.output.jsonl

    monkeypatch.setattr(negmine.output.jsonl, "CHUNK", 4096)  # many compressor pieces, cut across the batches
    options = SETTINGS[setting]
    whole = run(tmp_path, "whole", suffix, **options)
    side = (tmp_path / f"whole{suffix}.provenance.json").read_bytes()
    for size in (1, 7):
        assert run(tmp_path, f"b{size}", suffix, query_batch_size=size, **options) == whole, size
        assert (tmp_path / f"b{size}{suffix}.provenance.json").read_bytes() == side


def test_row_groups_are_fixed_whatever_the_batches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(OUTPUTS, "OUTPUT_ROW_GROUP", 16)
    one = run(tmp_path, "one")
    many = run(tmp_path, "many", query_batch_size=3)
    assert one == many
    meta = pq.read_metadata(tmp_path / "one.parquet")
    sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
    assert sizes[:-1] == [16] * (len(sizes) - 1) and 0 < sizes[-1] <= 16
    assert negmine.read_metadata(tmp_path / "one.parquet")["stats"]["rows_written"] == sum(sizes)


class Crash(Exception):
    pass


def crash_after(monkeypatch: pytest.MonkeyPatch, batches: int) -> list[int]:
    """Make mine_batch raise once it has been called ``batches`` times; returns the first query position of each
    batch it computed."""
    real = REAL_MINE_BATCH
    calls: list[int] = []

    def counting(run: Any, positions: np.ndarray, *args: Any) -> Any:
        if len(calls) == batches:
            raise Crash()
        calls.append(int(positions[0]))
        return real(run, positions, *args)

    monkeypatch.setattr(ENGINES, "mine_batch", counting)
    return calls


@pytest.mark.parametrize("setting", ["defaults", "random, n-tuple"])
def test_a_crashed_run_resumes_and_writes_the_same_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         setting: str) -> None:
    options = {**SETTINGS[setting], "query_batch_size": 4}
    (tmp_path / "ref").mkdir()
    expected = run(tmp_path / "ref", "ref", **options)
    out, cand = tmp_path / "out.parquet", tmp_path / "cand.parquet"
    calls = crash_after(monkeypatch, 3)
    with pytest.raises(Crash):
        negmine.mine(*INPUTS, output=out, candidates_output=cand, cache_dir=tmp_path / "cache", **options)
    assert not out.exists() and not cand.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "ref"]  # no temporary file left
    stored = list((tmp_path / "cache" / "runs").glob("*/batch-*.npz"))
    assert len(stored) == 3

    calls = crash_after(monkeypatch, 100)
    result = negmine.mine(*INPUTS, output=out, candidates_output=cand, cache_dir=tmp_path / "cache", **options)
    assert (out.read_bytes(), cand.read_bytes()) == expected
    assert calls == [12, 16, 20, 24, 27]  # 30 queries in 8 batches: the 3 finished ones were not mined again
    assert any("resuming an interrupted run: 3 of 8 query batches" in w for w in result.warnings)
    assert not list((tmp_path / "cache" / "runs").glob("*/*"))  # a completed run forgets its batches


def test_no_resume_starts_over(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = crash_after(monkeypatch, 2)
    with pytest.raises(Crash):
        negmine.mine(*INPUTS, output=tmp_path / "o.parquet", cache_dir=tmp_path / "cache", query_batch_size=4)
    calls = crash_after(monkeypatch, 100)
    negmine.mine(*INPUTS, output=tmp_path / "o.parquet", cache_dir=tmp_path / "cache", query_batch_size=4,
                 resume=False)
    assert len(calls) == 8  # every batch again


def test_a_changed_setting_does_not_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    crash_after(monkeypatch, 2)
    with pytest.raises(Crash):
        negmine.mine(*INPUTS, output=tmp_path / "o.parquet", cache_dir=tmp_path / "cache", query_batch_size=4)
    calls = crash_after(monkeypatch, 100)
    result = negmine.mine(*INPUTS, output=tmp_path / "o.parquet", cache_dir=tmp_path / "cache", query_batch_size=4,
                          num_negatives=4)
    assert len(calls) == 8 and not any("resuming" in w for w in result.warnings)


def test_the_batch_size_and_resume_stay_out_of_the_provenance(tmp_path: Path) -> None:
    run(tmp_path, "a", query_batch_size=5, resume=False)
    config = negmine.read_metadata(tmp_path / "a.parquet")["config"]
    assert "query_batch_size" not in config and "resume" not in config


def test_the_corpus_is_memory_mapped_not_copied(tmp_path: Path) -> None:
    """A corpus read through the cache is an Arrow file mapped into memory: reading it allocates (almost)
    nothing, however large its texts."""
    texts = [f"document {i} " + "lorem ipsum dolor sit amet " * 40 for i in range(4000)]  # ~4.4 MB of text
    path = tmp_path / "corpus.parquet"
    pq.write_table(pa.table({"_id": [f"d{i}" for i in range(4000)], "text": texts}), path)
    read_corpus(path, cache_dir=tmp_path / "cache")  # converted once into the cache
    before = pa.total_allocated_bytes()
    corpus = read_corpus(path, cache_dir=tmp_path / "cache")
    allocated = pa.total_allocated_bytes() - before
    assert allocated < 200_000 < sum(map(len, texts))
    assert corpus.texts[3999] == texts[3999] and len(corpus) == 4000
    chunk = corpus.text_array.chunk(0)
    assert chunk.buffers()[2].address != 0 and not chunk.buffers()[2].is_mutable
    # without a cache it is read into memory
    before = pa.total_allocated_bytes()
    in_memory = read_corpus(path)
    assert pa.total_allocated_bytes() - before > sum(map(len, texts))
    assert in_memory.texts == corpus.texts
