"""Against real servers: infinity-emb (its own environment, ``make servers``) serving the embedded all-MiniLM-L6-v2
over the OpenAI embeddings API: a mine through it writes the negatives the local model writes, with the same
scores (within 1e-5), and its identity is what the server serves; and ``transformers serve`` (OpenAI-compatible
chat) serving a tiny random causal model the test builds, as the LLM judge: the plumbing (its answers are noise,
read as verdicts or counted unparsed), and a rerun that sends nothing."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import pyarrow.parquet as pq
import pytest
from helpers import ROOT, tiny_causal_lm

import negmine
from negmine.retrieve.encoders import default_model_path

pytestmark = pytest.mark.real_model

INFINITY = Path(os.environ.get("NEGMINE_INFINITY_EMB", ROOT / ".venv-infinity" / "bin" / "infinity_emb"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_infinity(model: Path, name: str, log: Path) -> tuple[subprocess.Popen, str]:
    """An infinity server for ``model`` (served as ``name``), ready; its process and API base URL."""
    if not INFINITY.exists():
        pytest.fail(f"{INFINITY} is missing: 'make servers' installs infinity-emb (or set NEGMINE_INFINITY_EMB)")
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "DO_NOT_TRACK": "1",
           "INFINITY_ANONYMOUS_USAGE_STATS": "0"}
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(INFINITY), "v2", "--model-id", str(model), "--served-model-name", name,
                                 "--engine", "torch", "--device", "cpu", "--no-model-warmup", "--url-prefix", "/v1",
                                 "--host", "127.0.0.1", "--port", str(port)], stdout=out, stderr=subprocess.STDOUT,
                                env=env)
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                if r.status == 200:
                    return proc, f"http://127.0.0.1:{port}/v1"
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"infinity did not start: {log.read_text()[-2000:]}")
        time.sleep(0.3)


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def infinity(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    proc, url = start_infinity(default_model_path(), "all-MiniLM-L6-v2",
                               tmp_path_factory.mktemp("infinity") / "server.log")
    try:
        yield url
    finally:
        stop(proc)


def test_a_mine_through_infinity_matches_the_local_model(infinity: str, tiny: dict[str, Path],
                                                         tmp_path: Path) -> None:
    options = {"output_format": "n-tuple", "num_negatives": 3, "output_scores": True}
    remote = negmine.mine(tiny["corpus"], tiny["queries"], tiny["qrels"], output=tmp_path / "remote.parquet",
                          model=f"openai:all-MiniLM-L6-v2@{infinity}", endpoint_concurrency=2, **options)
    local = negmine.mine(tiny["corpus"], tiny["queries"], tiny["qrels"], output=tmp_path / "local.parquet",
                         **options)
    a, b = pq.read_table(tmp_path / "remote.parquet"), pq.read_table(tmp_path / "local.parquet")
    assert a.column("negative_ids").to_pylist() == b.column("negative_ids").to_pylist()
    assert a.column("positive_id").to_pylist() == b.column("positive_id").to_pylist()
    diff = max(abs(x - y) for ra, rb in zip(a.column("scores").to_pylist(), b.column("scores").to_pylist())
               for x, y in zip(ra, rb))
    assert diff < 1e-5, diff
    embedder = remote.metadata["models"]["embedder"]
    assert embedder["type"] == "endpoint" and embedder["model"] == "all-MiniLM-L6-v2" and embedder["dim"] == 384
    assert remote.stats.negatives_written == local.stats.negatives_written > 0


@pytest.fixture(scope="module")
def transformers_serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(URL, model) of a `transformers serve` process pinned to a tiny causal model built here."""
    model = str(tiny_causal_lm(tmp_path_factory.mktemp("tiny-llm")))
    port = free_port()
    log = tmp_path_factory.mktemp("serve") / "server.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(Path(sys.executable).with_name("transformers")), "serve", model, "--host",
                                 "127.0.0.1", "--port", str(port), "--device", "cpu", "--log-level", "warning"],
                                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"transformers serve did not start: {log.read_text()[-2000:]}")
            time.sleep(0.3)
        yield f"http://127.0.0.1:{port}/v1", model
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def test_an_llm_judge_through_transformers_serve(transformers_serve: tuple[str, str], tiny: dict[str, Path],
                                                  tmp_path: Path) -> None:
    from fakes import FakeEncoder

    url, model = transformers_serve
    options = {"llm_judge": f"{model}@{url}", "output_format": "n-tuple", "num_negatives": 2,
               "candidates_output": tmp_path / "c.parquet"}
    queries = pq.read_table(tiny["queries"]).slice(0, 8)
    pq.write_table(queries, tmp_path / "queries.parquet")
    first = negmine.mine(tiny["corpus"], tmp_path / "queries.parquet", tiny["qrels"], output=tmp_path / "a.parquet",
                         encoder=FakeEncoder(), **options)
    counts = first.stats.llm_judge
    assert counts["judged"] >= 16 and counts["flagged"] + counts["unparsed"] <= counts["judged"]
    used = first.stats.endpoint_usage[f"LLM {model}"]
    assert used["requests"] == counts["judged"] and used["completion_tokens"] > 0  # the server counts its tokens
    assert first.metadata["models"]["llm_judge"]["model"]["url"] == url
    again = negmine.mine(tiny["corpus"], tmp_path / "queries.parquet", tiny["qrels"], output=tmp_path / "b.parquet",
                         encoder=FakeEncoder(), **{**options, "candidates_output": tmp_path / "d.parquet"})
    assert again.stats.endpoint_usage == {}  # every verdict from the cache: nothing sent
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()


def test_a_rerank_judge_through_infinity_matches_the_local_cross_encoder(tiny: dict[str, Path],
                                                                        tmp_path: Path) -> None:
    """infinity serving a tiny cross-encoder the test builds: the same negatives as the local CrossEncoder judge
    (scores within 1e-4: the server batches and pads pairs its own way)."""
    from fakes import FakeEncoder
    from helpers import build_tiny_cross_encoders

    texts = pq.read_table(tiny["corpus"]).column("text").to_pylist()
    queries = pq.read_table(tiny["queries"]).column("text").to_pylist()
    (tmp_path / "models").mkdir()
    model = build_tiny_cross_encoders(tmp_path / "models", texts + queries, list(zip(queries, texts[::4])))["sigmoid"]
    proc, url = start_infinity(model, "tiny-reranker", tmp_path / "server.log")
    try:
        options = {"relative_margin": 0.05, "output_format": "n-tuple", "num_negatives": 3, "output_scores": True}
        remote = negmine.mine(tiny["corpus"], tiny["queries"], tiny["qrels"], output=tmp_path / "remote.parquet",
                              encoder=FakeEncoder(), reranker=f"rerank:tiny-reranker@{url}", **options)
        local = negmine.mine(tiny["corpus"], tiny["queries"], tiny["qrels"], output=tmp_path / "local.parquet",
                             encoder=FakeEncoder(), reranker=str(model), cache_dir=tmp_path / "other", **options)
    finally:
        stop(proc)
    a, b = pq.read_table(tmp_path / "remote.parquet"), pq.read_table(tmp_path / "local.parquet")
    assert a.column("negative_ids").to_pylist() == b.column("negative_ids").to_pylist()
    diff = max(abs(x - y) for ra, rb in zip(a.column("scores").to_pylist(), b.column("scores").to_pylist())
               for x, y in zip(ra, rb))
    assert diff < 1e-4, diff
    assert remote.stats.dropped.get("relative_margin", 0) == local.stats.dropped.get("relative_margin", 0) > 0
    assert remote.metadata["models"]["reranker"]["type"] == "rerank-endpoint"
