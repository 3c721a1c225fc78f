"""Golden files: a matrix of runs whose every written file must keep its bytes (tests/golden/hashes.json).

What a refactor must not change (issue 22): retrievers bm25 / dense / hybrid / none at all; sampling top / random
/ SimANS; every layout; Parquet, JSON Lines and gzipped JSON Lines; ``score_all`` with candidates and
false-negatives files; a judge (a tiny cross-encoder, tests/golden/judge); refilter and sweep; a run resumed after a
crash; the Ray engine; the CLI with a dataset card. On two datasets: examples/tiny and a 300-document slice of
Cranfield (tests/golden/cranfield). Embeddings come from the tests' deterministic fake encoder.

Each file is compared by its SHA-256 when the libraries that write it (recorded in the provenance) are the
versions the hashes were recorded with; with other versions (a newer pyarrow writes other Parquet bytes for the
same table), by a digest of its content: the rows and their types, and the provenance without the library
versions. A changed hash is a changed output: if it is meant (a new default, a fix), record the hashes again in a
commit of its own that says why:

    NEGMINE_GOLDEN_UPDATE=1 python -m pytest tests/test_golden.py
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import ROOT

import negmine

HERE = Path(__file__).resolve().parent / "golden"
HASHES = HERE / "hashes.json"
UPDATE = bool(os.environ.get("NEGMINE_GOLDEN_UPDATE"))
#: Inputs by dataset, as paths relative to the repository (the provenance records them as given).
DATASETS = {"tiny": "examples/tiny", "cranfield": "tests/golden/cranfield"}

#: The rules off: BM25's own picks.
PLAIN = {"retriever": "bm25", "relative_margin": None, "max_positive_similarity": None, "positive_proximity": None,
         "lexical_overlap": None, "agreement": False, "cross_query": None}
#: (case, options of negmine.mine, output file name); every case mines each dataset, with a candidates file and a
#: false-negatives file.
MINES: list[tuple[str, dict[str, Any], str]] = [
    ("dense-defaults", {}, "out.parquet"),
    ("bm25-defaults", {"retriever": "bm25"}, "out.parquet"),
    ("hybrid-defaults", {"retriever": "hybrid", "query_batch_size": 7}, "out.parquet"),
    ("bm25-no-model", {"retriever": "bm25", "model": "none"}, "out.parquet"),
    ("bm25-plain", PLAIN, "out.jsonl"),
    ("random-ntuple", {"sampling_strategy": "random", "seed": 3, "output_format": "n-tuple", "num_negatives": 3},
     "out.jsonl"),
    ("simans-labeled-list", {"sampling_strategy": "simans", "simans_a": 20.0, "output_format": "labeled-list",
                             "output_scores": True}, "out.parquet"),
    ("flagembedding", {"output_format": "flagembedding", "output_scores": True, "prompt": "Represent: ",
                       "retriever": "hybrid"}, "out.jsonl.gz"),
    ("labeled-pair-promote-bands", {"output_format": "labeled-pair", "promote_false_negatives": True,
                                    "difficulty_bands": 4, "range_min": 2, "range_max": 60}, "out.parquet"),
    ("score-all-margins", {"score_all": True, "relative_margin": 0.05, "percentile_margin": 0.2,
                           "margin_reference": "mean", "output_scores": True}, "out.parquet"),
    ("training-columns", {"columns": "training", "num_negatives": 2, "max_score": 0.9, "min_score": 0.05},
     "out.parquet"),
]


def _libraries(meta: dict[str, Any]) -> dict[str, str]:
    return dict(meta.get("libraries") or {})


def _normal(meta: Any) -> Any:
    """A provenance without what depends on the installed libraries."""
    if isinstance(meta, dict):
        return {k: _normal(v) for k, v in meta.items() if k != "libraries"}
    return meta


def content_digest(path: Path) -> str:
    """A digest of what a file says, not of how a library version wrote it."""
    h = hashlib.sha256()
    name = path.name
    if name.endswith(".parquet"):
        f = pq.ParquetFile(path)
        table = f.read()
        meta = (f.metadata.metadata or {}).get(b"negmine")
        h.update(str(table.schema.remove_metadata()).encode())
        h.update(json.dumps(table.to_pylist(), sort_keys=True, default=repr).encode())
        h.update(json.dumps(_normal(json.loads(meta)) if meta else None, sort_keys=True).encode())
    elif name.endswith(".json"):
        h.update(json.dumps(_normal(json.loads(path.read_text())), sort_keys=True).encode())
    elif name.endswith(".gz"):
        h.update(gzip.decompress(path.read_bytes()))
    else:
        h.update(path.read_bytes())
    return h.hexdigest()


def digests(folder: Path) -> dict[str, dict[str, str]]:
    return {str(p.relative_to(folder)): {"sha256": hashlib.sha256(p.read_bytes()).hexdigest(),
                                         "content": content_digest(p)}
            for p in sorted(folder.rglob("*")) if p.is_file()}


#: A tiny cross-encoder (raw logits; helpers.build_tiny_cross_encoders' "logits" over examples/tiny), kept as files:
#: the provenance names the judge by its path.
JUDGE = "tests/golden/judge"


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, str]]]:
    """Every case run once: the folder of their files, and the library versions that wrote them."""
    import torch

    root = tmp_path_factory.mktemp("golden")
    cache = root.parent / "golden-cache"
    libraries: dict[str, str] = {}
    cwd = Path.cwd()
    threads = torch.get_num_threads()
    os.chdir(ROOT)  # relative input paths, as the provenance records them
    torch.set_num_threads(1)
    try:
        for data, folder in DATASETS.items():
            inputs = tuple(f"{folder}/{name}.parquet" for name in ("corpus", "queries", "qrels"))
            for case, options, name in MINES:
                _mine(root / data / case, inputs, name, cache, **options)
                libraries.update(_libraries(negmine.read_metadata(root / data / case / name)))
            if data == "tiny":
                _mine(root / data / "cross-encoder-judge", inputs, "out.parquet", cache, reranker=JUDGE,
                      output_scores=True, score_all=True)
            _stored_runs(root / data, inputs, cache)
            _resumed(root / data, inputs, cache)
        _cli_with_card(root / "tiny", cache)
        _ray(root / "tiny", cache)
    finally:
        os.chdir(cwd)
        torch.set_num_threads(threads)
    yield root, libraries


def _mine(out: Path, inputs: tuple[str, ...], name: str, cache: Path, **options: Any) -> None:
    """A mine into the folder ``out``, with a candidates and a false-negatives file."""
    from fakes import FakeEncoder

    out.mkdir(parents=True)
    negmine.mine(*inputs, output=out / name, candidates_output=out / "candidates.parquet",
                 false_negatives_output=out / "false-negatives.parquet", cache_dir=cache, encoder=FakeEncoder(),
                 **options)


def _stored_runs(root: Path, inputs: tuple[str, ...], cache: Path) -> None:
    """refilter and sweep of the score-all candidates, with other settings."""
    candidates = root / "score-all-margins" / "candidates.parquet"
    out = root / "refilter"
    out.mkdir()
    negmine.refilter(candidates, out / "out.parquet", relative_margin=0.02, num_negatives=3,
                     sampling_strategy="random", lexical_overlap=0.2, false_negatives_output=out / "fn.jsonl",
                     cache_dir=cache)
    result = negmine.sweep(candidates, {"relative_margin": [None, 0.05, 0.1], "positive_proximity": [0.0, 0.05]},
                           cache_dir=cache)
    rows = [{"settings": r.settings, "negatives": r.negatives, "served": r.queries_served, "dropped": r.dropped,
             "score": r.score, "rank": r.rank} for r in result.rows]
    (root / "sweep.json").write_text(json.dumps(rows, sort_keys=True, indent=1, default=repr))


def _resumed(root: Path, inputs: tuple[str, ...], cache: Path) -> None:
    """A run that crashes after two query batches, and its rerun (which resumes)."""
    import importlib

    from fakes import FakeEncoder

    module = importlib.import_module("negmine.run.engines")
    real = module.mine_batch
    calls: list[int] = []

    def crashing(*args: Any, **kwargs: Any) -> Any:
        if len(calls) == 2:
            raise RuntimeError("crash")
        calls.append(1)
        return real(*args, **kwargs)

    out = root / "resumed"
    out.mkdir()
    options: dict[str, Any] = {"query_batch_size": 8, "sampling_strategy": "random", "encoder": FakeEncoder(),
                               "cache_dir": cache, "candidates_output": out / "candidates.parquet"}
    module.mine_batch = crashing
    try:
        with pytest.raises(RuntimeError):
            negmine.mine(*inputs, output=out / "out.parquet", **options)
    finally:
        module.mine_batch = real
    result = negmine.mine(*inputs, output=out / "out.parquet", **options)
    assert any("resuming an interrupted run" in w for w in result.warnings)


def _cli_with_card(root: Path, cache: Path) -> None:
    from typer.testing import CliRunner

    from negmine.cli import app

    out = root / "cli"
    out.mkdir()
    tiny = DATASETS["tiny"]
    result = CliRunner().invoke(app, ["mine", "--corpus", f"{tiny}/corpus.parquet", "--queries",
                                      f"{tiny}/queries.parquet", "--qrels", f"{tiny}/qrels.parquet", "--cache-dir",
                                      str(cache), "--dataset-card", "--columns", "training", "-o",
                                      str(out / "train.parquet"), "-q"])
    assert result.exit_code == 0, result.stderr


def _ray(root: Path, cache: Path) -> None:
    pytest.importorskip("ray")
    import fakes
    import ray
    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(fakes)
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}})
    out = root / "ray"
    out.mkdir()
    tiny = DATASETS["tiny"]
    try:
        negmine.mine(f"{tiny}/corpus.parquet", f"{tiny}/queries.parquet", f"{tiny}/qrels.parquet",
                     output=out / "out.parquet", candidates_output=out / "candidates.parquet", cache_dir=cache,
                     encoder=fakes.FakeEncoder(), engine="ray", workers=2, query_batch_size=7, retriever="hybrid",
                     output_scores=True)
    finally:
        if started:
            ray.shutdown()


def test_every_written_file_keeps_its_bytes(written: tuple[Path, dict[str, str]]) -> None:
    folder, libraries = written
    found = digests(folder)
    if UPDATE:
        HASHES.write_text(json.dumps({"libraries": libraries, "files": found}, indent=1, sort_keys=True) + "\n")
        pytest.skip(f"recorded {len(found)} hashes in {HASHES}")
    recorded = json.loads(HASHES.read_text())
    assert sorted(found) == sorted(recorded["files"]), "the matrix wrote other files than were recorded"
    key = "sha256" if libraries == recorded["libraries"] else "content"
    changed = [name for name, d in found.items() if d[key] != recorded["files"][name][key]]
    assert not changed, f"{len(changed)} of {len(found)} files changed ({key}): {changed}"


def test_the_same_inputs_give_the_same_digests(written: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    """The content digest sees through how a file was written: a Parquet file rewritten (other row groups) keeps
    it, a changed value does not."""
    folder, _ = written
    original = folder / "tiny" / "dense-defaults" / "out.parquet"
    copy = tmp_path / "out.parquet"
    f = pq.ParquetFile(original)
    table = f.read().replace_schema_metadata({b"negmine": f.metadata.metadata[b"negmine"]})
    pq.write_table(table, copy, row_group_size=7, compression="snappy")
    assert content_digest(copy) == content_digest(original)
    assert hashlib.sha256(copy.read_bytes()).digest() != hashlib.sha256(original.read_bytes()).digest()
    changed = table.set_column(0, "anchor", pa.array(table.column("anchor").to_pylist()[::-1]))
    pq.write_table(changed, copy)
    assert content_digest(copy) != content_digest(original)
