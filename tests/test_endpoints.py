"""Models behind endpoints (negmine.endpoints): a mine through an OpenAI-compatible embeddings endpoint gives the
negatives the same model gives locally; faults (429, 500s past the retries, timeouts, malformed answers, a model
swapped mid-run, a spent request budget) end in the documented behaviour with nothing lost and nothing sent twice.
The faults come from a scripted server; the real-server test is in test_endpoint_servers.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import pyarrow.parquet as pq
import pytest
from scripted_server import Scripted

import negmine
from negmine.endpoints.client import BudgetSpent, Endpoint, EndpointError
from negmine.errors import ConfigError

pytestmark = pytest.mark.real_model  # the endpoint is the encoder: no fake one patched in


@pytest.fixture
def server() -> Iterator[Scripted]:
    s = Scripted()
    yield s
    s.close()


def mine(tiny: dict[str, Path], out: Path, server: Scripted, **options: Any) -> Any:
    options.setdefault("batch_size", 16)
    return negmine.mine(tiny["corpus"], tiny["queries"], tiny["qrels"], output=out,
                        model=f"openai:fake-endpoint@{server.url}", endpoint_retries=2, **options)


def rows(path: Path) -> list[dict[str, Any]]:
    return pq.read_table(path).select(["query_id", "positive_id", "negative_id"]).to_pylist()


def test_a_mine_through_an_endpoint_writes_what_the_local_model_writes(server: Scripted, tiny: dict[str, Path],
                                                                       tmp_path: Path) -> None:
    from fakes import FakeEncoder

    result = mine(tiny, tmp_path / "remote.parquet", server)
    local = negmine.mine(tiny["corpus"], tiny["queries"], tiny["qrels"], output=tmp_path / "local.parquet",
                         encoder=FakeEncoder(), cache_dir=tmp_path / "other-cache")
    assert rows(tmp_path / "remote.parquet") == rows(tmp_path / "local.parquet")
    embedder = result.metadata["models"]["embedder"]
    assert embedder["type"] == "endpoint" and embedder["model"] == "fake-endpoint" and len(embedder["probe"]) == 16
    assert local.stats.negatives_written == result.stats.negatives_written
    sent = server.texts()
    assert len(sent) == len(set(sent))  # every text sent once
    asked = len(server.requests)
    again = mine(tiny, tmp_path / "again.parquet", server)  # everything from the cache: one probe request
    assert len(server.requests) == asked + 1 and again.stats.texts_encoded == 0


def test_429_and_garbage_are_tried_again(server: Scripted, tiny: dict[str, Path], tmp_path: Path) -> None:
    server.script = ["429", "ok", "429", "garbage", "500"]
    endpoint = Endpoint(server.url, "fake-endpoint", backoff=0.01)
    from negmine.endpoints.embeddings import EndpointEncoder

    encoder = EndpointEncoder(endpoint, batch_size=4)
    vectors = encoder.encode([f"text {i}" for i in range(10)], "document")
    assert vectors.shape == (10, 64) and endpoint.usage.retries == 4
    assert endpoint.usage.requests == 3 + 1 + 4  # the probe and 3 batches, and 4 of them again
    assert endpoint.usage.prompt_tokens == 11


def test_500s_past_the_retries_end_the_run_with_one_line(server: Scripted, cli: Any, tiny: dict[str, Path],
                                                         tmp_path: Path) -> None:
    server.script = ["ok"] + ["500"] * 20
    result = cli("mine", "--corpus", tiny["corpus"], "--queries", tiny["queries"], "--qrels", tiny["qrels"],
                 "--model", f"openai:fake-endpoint@{server.url}", "--endpoint-retries", 2, "-o", tmp_path / "o.parquet")
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.startswith("negmine: error")]
    assert len(lines) == 1 and "HTTP 500" in lines[0] and "after 3 tries" in lines[0], result.output
    assert "/v1/embeddings" in lines[0] and not (tmp_path / "o.parquet").exists()


def test_a_timeout_is_tried_again(server: Scripted) -> None:
    from negmine.endpoints.embeddings import EndpointEncoder

    server.script = ["ok", "timeout"]
    server.timeout_sleep = 1.0
    endpoint = Endpoint(server.url, "fake-endpoint", timeout=0.3, backoff=0.01)
    vectors = EndpointEncoder(endpoint).encode(["a cat", "a dog"], "query")
    assert vectors.shape == (2, 64) and endpoint.usage.retries == 1


def test_a_4xx_is_not_tried_again(server: Scripted) -> None:
    endpoint = Endpoint(server.url + "/nowhere", "fake-endpoint", backoff=0.01)
    server.script = []
    with pytest.raises(EndpointError, match=r"/nowhere/embeddings: HTTP 404"):
        endpoint.post("/embeddings", {"input": ["x"]})
    assert endpoint.usage.requests == 1


def test_a_model_swapped_mid_run_is_named_and_not_mixed(server: Scripted, tiny: dict[str, Path],
                                                        tmp_path: Path) -> None:
    server.script = ["ok", "ok", "ok", "swap"]
    with pytest.raises(EndpointError, match="now serves 'another-model', not 'fake-endpoint'"):
        mine(tiny, tmp_path / "o.parquet", server)
    assert not (tmp_path / "o.parquet").exists()
    result = mine(tiny, tmp_path / "o.parquet", server)  # the server now serves the other model: its own key
    assert result.metadata["models"]["embedder"]["model"] == "another-model"
    first_batches = {t for r in server.requests[1:3] for t in r["input"]}
    later = [t for r in server.requests[4:] for t in r.get("input", [])]
    assert first_batches <= set(later)  # embedded again under the new model's key, not taken from the old one


def test_a_spent_budget_stops_cleanly_and_a_rerun_sends_nothing_twice(server: Scripted, cli: Any,
                                                                      tiny: dict[str, Path], tmp_path: Path) -> None:
    base = ["mine", "--corpus", tiny["corpus"], "--queries", tiny["queries"], "--qrels", tiny["qrels"],
            "--model", f"openai:fake-endpoint@{server.url}", "--batch-size", 8, "-o", tmp_path / "o.parquet"]
    stopped = cli(*base, "--endpoint-max-requests", 5)
    assert stopped.exit_code == 3 and "request budget (5" in stopped.output and "run again to go on" in stopped.output
    assert len(server.requests) == 5 and not (tmp_path / "o.parquet").exists()
    done = cli(*base)
    assert done.exit_code == 0, done.output
    assert "(0 tried again)" in done.output  # the summary counts the requests
    texts = server.texts()
    assert len(texts) == len(set(texts))  # what the first run was answered was not asked again


def test_the_api_key_is_sent_and_never_written(server: Scripted, tiny: dict[str, Path], tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_KEY", "sk-secret-123")
    result = mine(tiny, tmp_path / "o.parquet", server, endpoint_api_key_env="MY_KEY")
    assert all(h.get("Authorization") == "Bearer sk-secret-123" for h in server.headers)
    assert "sk-secret" not in json.dumps(result.metadata) and b"sk-secret" not in (tmp_path / "o.parquet").read_bytes()


def test_endpoint_options_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="openai:MODEL@URL"):
        from negmine.endpoints.embeddings import parse_model

        parse_model("openai:no-url")
    with pytest.raises(ConfigError, match="http:// or https://"):
        Endpoint("localhost:8000", "m")
    with pytest.raises(ConfigError, match="--endpoint-concurrency must be at least 1"):
        negmine.MineConfig(endpoint_concurrency=0)
    with pytest.raises(ConfigError, match="is behind an endpoint"):
        negmine.MineConfig(model="openai:m@http://x/v1", bm25_tokenizer="model")


def test_budget_error_is_a_negmine_error() -> None:
    assert issubclass(BudgetSpent, EndpointError) and BudgetSpent.exit_code == 3


@pytest.mark.parametrize("shape", ["results", "tei"])
def test_a_rerank_endpoint_judges_and_its_scores_are_kept(server: Scripted, tiny: dict[str, Path], tmp_path: Path,
                                                          shape: str) -> None:
    from fakes import FakeEncoder

    server.tei = shape == "tei"
    options = {"reranker": f"rerank:fake-reranker@{server.url}", "relative_margin": 0.05, "output_scores": True,
               "output_format": "n-tuple", "num_negatives": 2}
    result = negmine.mine(tiny["corpus"], tiny["queries"], tiny["qrels"], output=tmp_path / "o.parquet",
                          encoder=FakeEncoder(), **options)
    judge = result.metadata["models"]["reranker"]
    assert judge["type"] == "rerank-endpoint" and judge["model"] == "fake-reranker" and "url" not in judge
    fake = FakeEncoder()
    for row in pq.read_table(tmp_path / "o.parquet").to_pylist()[:10]:  # the written scores are the server's
        q = fake.encode([row["anchor"]], "query")[0]
        docs = fake.encode([row["positive"], row["negative_1"], row["negative_2"]], "document")
        assert row["scores"] == pytest.approx((docs @ q).tolist(), abs=1e-6)
    pairs = server.reranked()
    assert pairs and len(pairs) == len(set(pairs))  # each pair scored once
    again = negmine.mine(tiny["corpus"], tiny["queries"], tiny["qrels"], output=tmp_path / "again.parquet",
                         encoder=FakeEncoder(), **options)
    assert len(server.reranked()) == len(pairs)  # every score from the store: nothing sent twice
    assert (tmp_path / "again.parquet").read_bytes() == (tmp_path / "o.parquet").read_bytes()
    assert again.stats.endpoint_usage["rerank-endpoint"]["requests"] == 1  # the probe


def test_an_index_built_through_an_endpoint_serves_a_mine(server: Scripted, cli: Any, tiny: dict[str, Path],
                                                          tmp_path: Path) -> None:
    model = f"openai:fake-endpoint@{server.url}"
    built = cli("index", "--corpus", tiny["corpus"], "--index-dir", tmp_path / "idx", "--model", model)
    assert built.exit_code == 0, built.output
    documents = len(server.texts())
    mined = cli("mine", "--corpus", tiny["corpus"], "--queries", tiny["queries"], "--qrels", tiny["qrels"],
                "--index-dir", tmp_path / "idx", "--model", model, "-o", tmp_path / "o.parquet")
    assert mined.exit_code == 0, mined.output
    assert documents == 120 and len(server.texts()) - documents == 30  # then only the queries are embedded


def test_the_timeout_option_reaches_the_endpoint(server: Scripted, tiny: dict[str, Path], tmp_path: Path) -> None:
    server.script = ["ok", "timeout"]
    server.timeout_sleep = 1.0
    result = mine(tiny, tmp_path / "o.parquet", server, endpoint_timeout=0.3, endpoint_concurrency=1)
    used = next(iter(result.stats.endpoint_usage.values()))
    assert used["retries"] == 1 and result.stats.negatives_written > 0
