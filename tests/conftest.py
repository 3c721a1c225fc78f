"""Shared fixtures: small Parquet inputs written into tmp_path, the example dataset, and a CLI runner.

Inputs go to ``tmp_path/"in"`` and outputs to ``tmp_path/"out"``, so a test can check that the output folder
holds nothing but what negmine was meant to write (no temporary files, no output after an error).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import TINY
from typer.testing import CliRunner

from negmine.cli import app


def write_parquet(path: Path, data: dict[str, Any], schema: pa.Schema | None = None) -> Path:
    """Write ``data`` (column name -> list of values) as a Parquet file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.table(data, schema=schema) if schema is not None else pa.table(data)
    pq.write_table(table, path)
    return path


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep any index/embedding cache negmine writes out of the user's home (and out of the output folders)."""
    cache = tmp_path_factory.mktemp("negmine-cache")
    monkeypatch.setenv("NEGMINE_CACHE_DIR", str(cache))
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache / "xdg"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "real_model: uses the real embedded model instead of the fake encoder")


@pytest.fixture(autouse=True)
def _fake_encoder(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test embeds with the deterministic FakeEncoder unless marked ``real_model``."""
    if request.node.get_closest_marker("real_model"):
        return
    from fakes import FakeEncoder

    def make(config: Any, model: str | None = None) -> FakeEncoder:
        if model is not None:  # a bi-encoder judge (--reranker)
            return FakeEncoder(name=model)
        return FakeEncoder(name=config.model or "fake", query_prompt=config.query_prompt or "",
                           corpus_prompt=config.corpus_prompt or "")

    import importlib

    monkeypatch.setattr(importlib.import_module("negmine.retrieve.build"), "make_encoder", make)


@pytest.fixture
def factory_builds(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The faiss factory strings negmine builds an index for during the test (builds still happen)."""
    import negmine.retrieve.dense as dense

    builds: list[str] = []
    real = dense.build_factory_index

    def counting(docs: Any, factory: str, folder: Path, **kwargs: Any) -> None:
        builds.append(factory)
        real(docs, factory, folder, **kwargs)

    monkeypatch.setattr(dense, "build_factory_index", counting)
    return builds


@pytest.fixture
def in_dir(tmp_path: Path) -> Path:
    d = tmp_path / "in"
    d.mkdir()
    return d


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    d = tmp_path / "out"
    d.mkdir()
    return d


@pytest.fixture
def make_parquet(in_dir: Path) -> Callable[..., Path]:
    """``make_parquet("corpus.parquet", {"_id": [...], "text": [...]}, schema=None)`` -> path under tmp_path/in."""

    def make(name: str, data: dict[str, Any], schema: pa.Schema | None = None) -> Path:
        return write_parquet(in_dir / name, data, schema)

    return make


@pytest.fixture
def tiny() -> dict[str, Path]:
    """The example dataset shipped in examples/tiny (BEIR layout)."""
    paths = {name: TINY / f"{name}.parquet" for name in ("corpus", "queries", "qrels", "pairs")}
    for p in paths.values():
        assert p.is_file(), p
    return paths


@pytest.fixture
def tiny_tables(tiny: dict[str, Path]) -> dict[str, pa.Table]:
    return {name: pq.read_table(p) for name, p in tiny.items()}


# A small hand-made dataset (BEIR names) whose retrieval is easy to reason about.
SMALL_CORPUS = {
    "_id": ["d1", "d2", "d3", "d4", "d5", "d6", "d7", "d8", "d9", "d10", "d11", "d12"],
    "title": ["Cats", "Cats", "Cats", "Cats", "Dogs", "Dogs", "Dogs", "Dogs", "Fish", "Fish", "Garden", "Birds"],
    "text": [
        "cats purr when they are happy and warm",
        "a cat purrs and sleeps most of the day near a sunny window",
        "kittens chase string and play with cat toys",
        "an old cat needs a soft bed",
        "a dog needs a long walk in the park every day",
        "how long a puppy should walk depends on its age",
        "dogs bark at the mail carrier every morning",
        "a tired dog sleeps after a walk",
        "goldfish live in a bowl of fresh water",
        "sharks swim in the deep ocean water",
        "water the garden plants in the evening",
        "parrots can learn to repeat words",
    ],
}
SMALL_QUERIES = {"_id": ["q1", "q2", "q3"], "text": ["why do cats purr", "how long to walk a dog", "fish water"]}
SMALL_QRELS = {
    "query-id": ["q1", "q1", "q2", "q2", "q3"],
    "corpus-id": ["d1", "d2", "d5", "d6", "d9"],
    "score": [2, 1, 1, 0, 1],
}


@pytest.fixture
def small(make_parquet: Callable[..., Path]) -> dict[str, Path]:
    """12 documents, 3 queries; q1 has two positives (d1, d2), q2 one (d5) plus a judged negative (d6, score 0)."""
    return {
        "corpus": make_parquet("corpus.parquet", SMALL_CORPUS),
        "queries": make_parquet("queries.parquet", SMALL_QUERIES),
        "qrels": make_parquet("qrels.parquet", SMALL_QRELS),
    }


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def cli(runner: CliRunner) -> Callable[..., Any]:
    """``cli("mine", "--corpus", path, ...)``: invoke the app with stringified arguments."""

    def invoke(*args: Any) -> Any:
        return runner.invoke(app, [str(a) for a in args])

    return invoke
