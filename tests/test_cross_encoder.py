"""The CrossEncoder scorer path, with a tiny BERT cross-encoder the tests build and save themselves (no download).

Two copies of the model: ``sigmoid`` (what a plain sequence-classification checkpoint gets: predict applies a
sigmoid, scores in (0, 1)) and ``logits`` (saved by sentence-transformers with an identity activation, so the
scores are raw, mostly negative, logits: the case the sign-safe relative margin exists for).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from helpers import TINY, assert_cli_error, build_tiny_cross_encoders, read_table

import negmine
from negmine.output.provenance import read_metadata

Cli = Callable[..., Any]


@pytest.fixture(scope="module")
def offline() -> Iterator[None]:
    """HF_HUB_OFFLINE=1 for the module. conftest sets it per test, but module-scoped fixtures run before that, and
    huggingface_hub reads the variable once, at import: whoever imports it first decides. (In a full run,
    tests/test_cli.py's module-scoped default_runs fixture imports sentence_transformers before it sets the
    variable, so the constant is False from then on.) Hence the constant is set too.

    Also run torch on one thread: for a model this small, thread hand-offs cost far more than the arithmetic
    (seconds per run on small CPUs)."""
    import huggingface_hub.constants
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("TRANSFORMERS_OFFLINE", "1")
        mp.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
        yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to open a network connection fails the test."""
    import socket

    def refuse(self: socket.socket, address: Any) -> None:
        raise AssertionError(f"network access attempted: {address!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", lambda address, *a, **k: refuse(None, address))  # type: ignore


@pytest.fixture(scope="module")
def tiny_texts() -> dict[str, Any]:
    corpus = pq.read_table(TINY / "corpus.parquet").to_pylist()
    queries = pq.read_table(TINY / "queries.parquet").to_pylist()
    positives: dict[str, list[str]] = {}
    for r in pq.read_table(TINY / "qrels.parquet").to_pylist():
        if r["score"] > 0:
            positives.setdefault(r["query-id"], []).append(r["corpus-id"])
    return {"doc": {d["_id"]: f"{d['title']} {d['text']}".strip() for d in corpus},
            "query": {q["_id"]: q["text"] for q in queries}, "positives": positives}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory, offline: None, tiny_texts: dict[str, Any]) -> dict[str, Path]:
    return build_tiny_cross_encoders(tmp_path_factory.mktemp("cross-encoders"),
                                     [*tiny_texts["doc"].values(), *tiny_texts["query"].values()],
                                     list(zip(tiny_texts["query"].values(), list(tiny_texts["doc"].values())[::4])))


def predict(path: Path, pairs: list[tuple[str, str]], **kw: Any) -> np.ndarray:
    from sentence_transformers import CrossEncoder

    return np.asarray(CrossEncoder(str(path), **kw).predict(pairs, show_progress_bar=False), dtype=np.float64)


def test_nothing_goes_online(models: dict[str, Path]) -> None:
    import socket

    import huggingface_hub.constants

    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert huggingface_hub.constants.HF_HUB_OFFLINE is True
    with pytest.raises(AssertionError, match="network access attempted"):
        socket.create_connection(("huggingface.co", 443))
    scores = predict(models["logits"], [("coffee grind", "grind the coffee beans")])
    assert scores.shape == (1,)


def test_the_two_models_differ_only_by_the_activation(models: dict[str, Path]) -> None:
    pairs = [("coffee grind", "grind the coffee beans"), ("moon phases", "the moon orbits earth")]
    logits = predict(models["logits"], pairs)
    np.testing.assert_allclose(predict(models["sigmoid"], pairs), 1 / (1 + np.exp(-logits)), atol=1e-5)


def _min_positive_scores(path: Path, texts: dict[str, Any], **kw: Any) -> dict[str, float]:
    pairs, owners = [], []
    for q, docs in texts["positives"].items():
        for d in docs:
            pairs.append((texts["query"][q], texts["doc"][d]))
            owners.append(q)
    scores = predict(path, pairs, **kw)
    out: dict[str, float] = {}
    for q, s in zip(owners, scores):
        out[q] = min(out.get(q, np.inf), float(s))
    return out


@pytest.mark.parametrize("kind", ["sigmoid", "logits"])
def test_mine_with_a_cross_encoder(models: dict[str, Path], tiny: dict[str, Path], tiny_texts: dict[str, Any],
                                   tmp_path: Path, kind: str) -> None:
    path = models[kind]
    result = negmine.mine(tiny["corpus"], tiny["queries"], tiny["qrels"], retriever="bm25", reranker=str(path),
                          output_scores=True, num_negatives=3, output=tmp_path / "o.parquet",
                          candidates_output=tmp_path / "c.parquet")
    rows = result.table.to_pylist()
    assert rows
    # the scores in the output are the cross-encoder's own
    sample = rows[:: max(1, len(rows) // 8)]
    neg = predict(path, [(r["anchor"], r["negative"]) for r in sample])
    pos = predict(path, [(r["anchor"], r["positive"]) for r in sample])
    np.testing.assert_allclose([r["negative_score"] for r in sample], neg, atol=1e-4)
    np.testing.assert_allclose([r["positive_score"] for r in sample], pos, atol=1e-4)
    if kind == "logits":
        assert min(r["positive_score"] for r in rows) < 0  # the margins really run on negative scores
    else:
        assert all(0 < r["negative_score"] < 1 for r in rows)
    # every kept negative passes the default relative margin (0.05) to its query's lowest positive score
    min_pos = _min_positive_scores(path, tiny_texts)
    for r in rows:
        ref = min_pos[r["query_id"]]
        assert r["negative_score"] <= ref - abs(ref) * 0.05 + 1e-4, r
    # the candidates file agrees: every scored candidate's fate is the relative margin rule's verdict
    candidates = read_table(tmp_path / "c.parquet").to_pylist()
    scored = [c for c in candidates if c["reranker_score"] is not None]
    assert any(c["status"] == "relative_margin" for c in scored)
    for c in scored:
        ref = c["positive_score"]
        assert ref == pytest.approx(min_pos[c["query_id"]], abs=1e-4)
        dropped = c["reranker_score"] > ref - abs(ref) * 0.05
        if c["status"] == "relative_margin":
            assert dropped, c
        elif c["status"] in ("selected", "kept"):
            assert not dropped, c
    # provenance names the cross-encoder
    reranker = result.metadata["models"]["reranker"]
    assert reranker["type"] == "cross-encoder"
    assert reranker["model"] == str(path)
    assert re.fullmatch(r"[0-9a-f]{64}", reranker["weights"])
    assert result.stats.scores["scorer"] == "cross-encoder"
    assert result.stats.positive_pairs_scored == 40
    assert 0 < result.stats.pairs_scored < result.stats.candidates_seen


def test_cli_with_a_cross_encoder(cli: Cli, models: dict[str, Path], tiny: dict[str, Path],
                                  tiny_texts: dict[str, Any], out_dir: Path) -> None:
    path = models["logits"]
    out = out_dir / "o.parquet"
    result = cli("mine", "--corpus", tiny["corpus"], "--queries", tiny["queries"], "--qrels", tiny["qrels"],
                 "--output", out, "--retriever", "bm25", "--reranker", path, "--reranker-batch-size", "8",
                 "--reranker-max-length", "64", "--output-scores", "-n", "2", "--relative-margin", "0.1")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == str(out)
    rows = read_table(out).to_pylist()
    assert rows
    sample = rows[:: max(1, len(rows) // 8)]
    want = predict(path, [(r["anchor"], r["negative"]) for r in sample], max_length=64)
    np.testing.assert_allclose([r["negative_score"] for r in sample], want, atol=1e-4)
    min_pos = _min_positive_scores(path, tiny_texts, max_length=64)
    for r in rows:
        ref = min_pos[r["query_id"]]
        assert r["negative_score"] <= ref - abs(ref) * 0.1 + 1e-4, r
    meta = read_metadata(out)
    reranker = meta["models"]["reranker"]
    assert reranker["type"] == "cross-encoder"
    assert reranker["model"] == str(path)
    assert reranker["max_length"] == 64
    assert (meta["config"]["reranker"], meta["config"]["reranker_batch_size"],
            meta["config"]["reranker_max_length"]) == (str(path), 8, 64)
    # the bi-encoder still serves the near-duplicate rule
    assert meta["models"]["embedder"] is not None


def test_reranker_max_length_truncates(models: dict[str, Path], tiny: dict[str, Path]) -> None:
    """--reranker-max-length reaches the cross-encoder: 16 tokens cut every pair, and the scores change."""
    result = negmine.mine(tiny["corpus"], tiny["queries"], tiny["qrels"], retriever="bm25",
                          reranker=str(models["logits"]), reranker_max_length=16, output_scores=True,
                          num_negatives=1, relative_margin=None, min_score=-1e9, max_positive_similarity=None,
                          positive_proximity=None)
    rows = result.table.to_pylist()[:6]
    pairs = [(r["anchor"], r["negative"]) for r in rows]
    got = [r["negative_score"] for r in rows]
    np.testing.assert_allclose(got, predict(models["logits"], pairs, max_length=16), atol=1e-4)
    assert not np.allclose(got, predict(models["logits"], pairs), atol=1e-3)
    assert result.metadata["models"]["reranker"]["max_length"] == 16


def test_missing_reranker_path_exits_2(cli: Cli, tiny: dict[str, Path], out_dir: Path, tmp_path: Path,
                                       offline: None) -> None:
    out = out_dir / "o.parquet"
    missing = tmp_path / "no-such-model"
    result = cli("mine", "--corpus", tiny["corpus"], "--queries", tiny["queries"], "--qrels", tiny["qrels"],
                 "--output", out, "--retriever", "bm25", "--reranker", missing)
    assert_cli_error(result, 2, ["--reranker", str(missing)], out)


def test_a_folder_that_is_not_a_model_exits_2(cli: Cli, tiny: dict[str, Path], out_dir: Path, tmp_path: Path,
                                              offline: None) -> None:
    out = out_dir / "o.parquet"
    folder = tmp_path / "empty-model"
    folder.mkdir()
    result = cli("mine", "--corpus", tiny["corpus"], "--queries", tiny["queries"], "--qrels", tiny["qrels"],
                 "--output", out, "--retriever", "bm25", "--reranker", folder)
    assert_cli_error(result, 2, ["--reranker", str(folder)], out)


def test_reranker_batch_size_must_be_positive(cli: Cli, tiny: dict[str, Path], out_dir: Path) -> None:
    out = out_dir / "o.parquet"
    result = cli("mine", "--corpus", tiny["corpus"], "--queries", tiny["queries"], "--qrels", tiny["qrels"],
                 "--output", out, "--reranker-batch-size", "0")
    assert_cli_error(result, 2, ["--reranker-batch-size"], out)


def test_no_reranker_without_score_rules(models: dict[str, Path], tiny: dict[str, Path]) -> None:
    """With the score rules off the cross-encoder is never loaded: no reranker in the provenance, no pairs scored."""
    result = negmine.mine(tiny["corpus"], tiny["queries"], tiny["qrels"], retriever="bm25",
                          reranker=str(models["logits"]), relative_margin=None, max_positive_similarity=None,
                          positive_proximity=None)
    assert result.metadata["models"]["reranker"] is None
    assert result.stats.pairs_scored == result.stats.positive_pairs_scored == 0
