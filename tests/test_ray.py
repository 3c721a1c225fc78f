"""--engine ray on a real two-node Ray cluster on this machine (ray.cluster_utils.Cluster: each node its own set of
Ray processes): the output is byte-identical to the local engine's for bm25, dense and hybrid retrieval, with and
without a (tiny, test-built) cross-encoder, and when a worker process is killed mid-run."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import TINY, build_tiny_cross_encoders

import negmine

ray = pytest.importorskip("ray", reason="the [ray] extra is not installed")

INPUTS = (TINY / "corpus.parquet", TINY / "queries.parquet", TINY / "qrels.parquet")


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    import fakes
    import ray.cloudpickle
    from ray.cluster_utils import Cluster

    ray.cloudpickle.register_pickle_by_value(fakes)  # the workers cannot import the tests' modules
    os.environ["RAY_BACKEND_LOG_LEVEL"] = "error"
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "include_dashboard": False})
    c.add_node(num_cpus=2)
    c.wait_for_nodes()
    ray.init(address=c.address, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}})
    try:
        assert len([n for n in ray.nodes() if n["Alive"]]) == 2
        yield c
    finally:
        ray.shutdown()
        c.shutdown()


def both(tmp_path: Path, encoder: Any, **options: Any) -> tuple[tuple[bytes, bytes], tuple[bytes, bytes]]:
    """The same mine with the local engine and with Ray (separate caches), as (output, candidates) bytes."""
    out = {}
    for engine in ("local", "ray"):
        o, c = tmp_path / f"{engine}.parquet", tmp_path / f"{engine}-c.parquet"
        extra = {"workers": 2} if engine == "ray" else {}
        negmine.mine(*INPUTS, output=o, candidates_output=c, cache_dir=tmp_path / f"cache-{engine}",
                     encoder=encoder, engine=engine, query_batch_size=7, **options, **extra)
        out[engine] = (o.read_bytes(), c.read_bytes())
    return out["local"], out["ray"]


@pytest.mark.parametrize("retriever,extra", [("bm25", {}), ("dense", {}), ("hybrid", {}),
                                             ("hybrid", {"train_batch_size": 4, "output_format": "n-tuple"})])
def test_ray_writes_what_local_writes(cluster: Any, tmp_path: Path, retriever: str, extra: dict[str, Any]) -> None:
    from fakes import FakeEncoder

    local, on_ray = both(tmp_path, FakeEncoder(), retriever=retriever, output_scores=True, **extra)
    assert on_ray == local
    # the corpus was encoded on the cluster, into the cache a later local run reads
    if retriever != "bm25":
        assert list((tmp_path / "cache-ray" / "embeddings").glob("*/*.vecs.npy"))


def test_ray_with_a_cross_encoder(cluster: Any, tmp_path: Path) -> None:
    import torch
    from fakes import FakeEncoder

    texts = negmine.read_corpus(INPUTS[0]).texts
    queries = negmine.read_queries(INPUTS[1]).texts
    models = build_tiny_cross_encoders(tmp_path, [*texts, *queries], list(zip(queries, list(texts)[::4])))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a model this small: thread hand-offs cost far more than its arithmetic
    try:
        local, on_ray = both(tmp_path, FakeEncoder(), reranker=str(models["logits"]), output_scores=True)
    finally:
        torch.set_num_threads(threads)
    assert on_ray == local


def _worker_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if "_BatchWorker" in cmdline:
                pids.append(int(entry.name))
    return pids


def test_a_killed_worker_is_restarted_and_the_output_is_the_same(cluster: Any, tmp_path: Path) -> None:
    from fakes import FakeEncoder, SlowEncoder

    expected = tmp_path / "expected.parquet"
    negmine.mine(*INPUTS, output=expected, cache_dir=tmp_path / "cache-local", encoder=FakeEncoder(),
                 query_batch_size=2)
    killed: list[int] = []

    def kill_one() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            pids = _worker_pids()
            if pids:
                time.sleep(1.0)  # let it mine a batch or two
                os.kill(pids[0], signal.SIGKILL)
                killed.append(pids[0])
            time.sleep(0.1)

    killer = threading.Thread(target=kill_one, daemon=True)
    killer.start()
    out = tmp_path / "ray.parquet"
    negmine.mine(*INPUTS, output=out, cache_dir=tmp_path / "cache-ray", encoder=SlowEncoder(0.1),
                 query_batch_size=2, engine="ray", workers=2)
    killer.join()
    assert killed, "no worker was found to kill"
    assert out.read_bytes() == expected.read_bytes()


def test_without_ray_the_engine_is_a_usage_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import builtins

    real_import = builtins.__import__

    def no_ray(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "ray" or name.startswith("ray."):
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(negmine.ConfigError, match=r'--engine ray needs Ray, which is not installed: pip install '
                                                  r'"negmine\[ray\]"'):
        negmine.mine(*INPUTS, cache_dir=tmp_path / "c", engine="ray")


def test_the_local_engine_does_not_import_ray(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = ("import sys, negmine; negmine.mine(*%r, retriever='bm25', cache_dir=%r); "
            "print('ray' in sys.modules)") % (tuple(str(p) for p in INPUTS), str(tmp_path / "c"))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "False"
