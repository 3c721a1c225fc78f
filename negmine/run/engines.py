"""Where the work of a run happens: here, one query batch after the other (``local``, the default), or on a Ray
cluster (``ray``): corpus encoding by an actor pool that writes into the shared embedding cache, and query batches
mined by actors that each load the indexes (memory-mapped from the shared cache) and the models once.

An engine only decides where batches run; the driver writes their results in query order, so both engines write
the same bytes. Ray is imported only by the ``ray`` engine.
"""

from __future__ import annotations

import logging
import os
import pickle
import socket
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

import numpy as np

from negmine.errors import ConfigError, NegmineError, StorageError
from negmine.inputs.read import load_inputs, read_corpus
from negmine.progress import Progress
from negmine.retrieve.dense import DenseRetriever
from negmine.run.batch import BatchResult, mine_batch
from negmine.run.plan import plan
from negmine.storage.cache import read_only
from negmine.storage.embeddings import EmbeddingCache

logger = logging.getLogger("negmine")

#: Texts per encoding task on the cluster.
ENCODE_CHUNK = 8192

RAY_INSTALL = 'pip install "negmine[ray]"'


@dataclass
class Job:
    """What a worker needs to rebuild a run's plan on its own: the run's settings and its inputs as given (paths,
    or in-memory objects), the cache every node reads, and what the driver computed once for everyone."""

    config: Any
    corpus: Any
    queries: Any
    qrels: Any
    pairs: Any
    cache: Path
    encoder: Any
    corpus_embeddings: Any
    query_embeddings: Any
    audit: bool
    calibration: Optional[np.ndarray] = None
    dense_search: Optional[dict[str, Any]] = None  # an approximate index's setting, chosen by the driver
    marker: Optional[str] = None  # a file the driver wrote in the cache: a worker that cannot see it is refused
    beir: Optional[dict[str, str]] = None  # the BEIR folder and split the input files came from, if any


def make_engine(config: Any) -> "LocalEngine | RayEngine":
    """The engine the config names."""
    if config.engine == "ray":
        return RayEngine(config.ray_address, config.workers, config.gpus_per_worker)
    return LocalEngine()


class LocalEngine:
    """Everything in this process, one batch after the other."""

    name = "local"

    def encode_corpus(self, job: Job, texts: Sequence[str], encoder: Any, progress: Any) -> None:
        """Nothing ahead of time: the dense index encodes what the cache lacks, here."""

    def results(self, job: Job, run: Any, batches: list[tuple[int, np.ndarray]], progress: Any) -> Iterator[Any]:
        """The results of ``batches`` ((index, query positions) pairs), in order."""

        for _, positions in batches:
            yield mine_batch(run, positions, job.audit, progress)

    def close(self) -> None:
        pass


class RayEngine:
    """A Ray cluster: ``address`` ``auto`` joins the cluster ``RAY_ADDRESS`` names, else starts one on this machine;
    ``workers`` actors (default: one per node, or per ``gpus_per_worker`` GPUs), ``gpus_per_worker`` GPUs each
    (default: 1 when the cluster has GPUs, else 0)."""

    name = "ray"

    def __init__(self, address: str = "auto", workers: Optional[int] = None,
                 gpus_per_worker: Optional[float] = None) -> None:
        try:
            import ray
            import ray.data  # noqa: F401
        except ImportError as exc:
            raise ConfigError(f"--engine ray needs Ray, which is not installed: {RAY_INSTALL}") from exc
        self.ray = ray
        self.started = False
        for name in ("ray", "ray.data"):  # negmine reports progress itself
            logging.getLogger(name).setLevel(logging.WARNING)
        if not ray.is_initialized():
            os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "error")
            target = os.environ.get("RAY_ADDRESS") if address == "auto" else address
            try:
                ray.init(address=target or None, ignore_reinit_error=True, logging_level=logging.WARNING,
                         log_to_driver=False, configure_logging=False, include_dashboard=False)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise ConfigError(f"--ray-address {target or 'local'}: cannot reach a Ray cluster "
                                  f"({str(exc).splitlines()[0]})") from exc
            self.started = True
        resources = ray.cluster_resources()
        nodes = max(1, sum(1 for n in ray.nodes() if n.get("Alive")))
        self.gpus = float(resources.get("GPU", 0))
        self.gpus_per_worker = gpus_per_worker if gpus_per_worker is not None else (1.0 if self.gpus else 0.0)
        if self.gpus_per_worker > self.gpus:
            raise ConfigError(f"--gpus-per-worker {self.gpus_per_worker:g}: the cluster has {self.gpus:g} GPUs")
        self.workers = workers or (int(self.gpus // self.gpus_per_worker) if self.gpus_per_worker else nodes)
        ctx = ray.data.DataContext.get_current()
        ctx.execution_options.preserve_order = True
        ctx.enable_progress_bars = False

    def _pool(self, size: int) -> Any:
        return self.ray.data.ActorPoolStrategy(size=max(1, size))

    def encode_corpus(self, job: Job, texts: Sequence[str], encoder: Any, progress: Any) -> None:
        """Encode the corpus texts the shared cache lacks on the cluster: each actor commits its vectors to the
        embedding cache, content-addressed, exactly as a local run would (the same bytes: equal-length batches)."""

        if encoder is None:
            return
        missing = EmbeddingCache(job.cache, encoder.identity("document")).missing(texts)
        if missing.size == 0:
            return
        chunks = [{"rows": missing[i : i + ENCODE_CHUNK]} for i in range(0, missing.size, ENCODE_CHUNK)]
        items = self.ray.data.from_items(chunks, override_num_blocks=len(chunks))
        ds = items.map_batches(_EncodeWorker, batch_size=1, compute=self._pool(min(self.workers, len(chunks))),
                            num_gpus=self.gpus_per_worker, fn_constructor_kwargs={"job": job, "encoder": encoder})
        with progress.stage(f"encoding documents on Ray ({self.workers} workers)", total=int(missing.size)) as advance:
            for row in _rows(self.ray, ds):
                advance(int(row["count"]))

    def results(self, job: Job, run: Any, batches: list[tuple[int, np.ndarray]], progress: Any) -> Iterator[Any]:
        """The results of ``batches``, mined by the actor pool, in order."""

        if not batches:
            return
        items = [{"index": i, "positions": positions} for i, positions in batches]
        source = self.ray.data.from_items(items, override_num_blocks=len(items))
        ds = source.map_batches(_BatchWorker, batch_size=1, compute=self._pool(min(self.workers, len(items))),
                            num_gpus=self.gpus_per_worker, fn_constructor_kwargs={"job": job})
        expected = [i for i, _ in batches]
        for k, row in enumerate(_rows(self.ray, ds)):
            if int(row["index"]) != expected[k]:  # pragma: no cover - preserve_order is set
                raise RuntimeError(f"Ray returned batch {row['index']} where {expected[k]} was due")
            arrays, meta = pickle.loads(row["payload"])
            yield BatchResult.from_store(arrays, meta)

    def close(self) -> None:
        if self.started:
            self.ray.shutdown()


def _rows(ray: Any, ds: Any) -> Iterator[dict[str, Any]]:
    """A dataset's rows; a worker's NegmineError comes out as itself."""
    try:
        yield from ds.iter_rows()
    except ray.exceptions.RayError as exc:
        cause = _negmine_cause(exc)
        if cause is not None:
            raise cause from None
        raise


def _negmine_cause(exc: BaseException) -> Optional[NegmineError]:
    seen = 0
    current: Optional[BaseException] = exc
    while current is not None and seen < 20:
        if isinstance(current, NegmineError):
            return current
        inner = getattr(current, "cause", None) or current.__cause__ or current.__context__
        current, seen = inner, seen + 1
    text = str(exc)
    for kind in (StorageError, ConfigError):
        marker = f"{kind.__name__}: "
        if marker in text:
            return kind(text.split(marker, 1)[1].strip().splitlines()[0])
    return None


#: The start of the names of the files ``write_marker`` writes.
MARKER = ".cluster-check-"


def write_marker(cache: Path) -> str:
    """A file in the cache that every worker must see (the cache must be shared by the nodes): a new one, or in a
    cache opened read-only, one it holds (``remove_marker`` removes only a file it wrote)."""

    if read_only(cache):
        held = next((p for p in sorted(Path(cache).rglob("manifest.json"))), None)
        if held is None:
            raise StorageError(f"{cache}: cannot be written (read-only) and holds no index; build the indexes ahead "
                               "with negmine index into a writable folder")
        return str(held.relative_to(cache))
    name = f"{MARKER}{uuid.uuid4().hex[:12]}"
    (cache / name).write_text(socket.gethostname())
    return name


def remove_marker(cache: Path, marker: Optional[str]) -> None:
    """Remove a file ``write_marker`` wrote (not one it only pointed to)."""
    if marker is not None and marker.startswith(MARKER):
        (Path(cache) / marker).unlink(missing_ok=True)


def use_assigned_cpus() -> None:
    """Run torch on as many threads as CPUs Ray gave this actor: more threads than cores only wait on each
    other."""
    try:
        import ray
        import torch
    except ImportError:  # pragma: no cover
        return
    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU")
    if cpus:
        torch.set_num_threads(max(1, int(cpus)))


def check_visible(job: Job) -> None:
    """Refuse a worker that does not see the driver's cache folder (not on shared storage)."""
    if job.marker is not None and not (Path(job.cache) / job.marker).exists():
        raise StorageError(f"{job.cache}: the cache folder is not visible from Ray node {socket.gethostname()}; "
                           "--cache-dir (or --index-dir) must be on storage every node reads and writes (a shared "
                           "file system)")


class _EncodeWorker:
    """A Ray actor encoding corpus rows into the shared embedding cache (the model loaded once)."""

    def __init__(self, job: Job, encoder: Any) -> None:
        check_visible(job)
        use_assigned_cpus()
        c = job.config
        if job.pairs is not None:
            self.corpus = load_inputs(c, job.corpus, job.queries, job.qrels, job.pairs, job.cache).corpus
        elif isinstance(job.corpus, (str, Path)):
            self.corpus = read_corpus(job.corpus, c.corpus_id_column, c.corpus_text_column, c.corpus_title_column,
                                      job.cache)
        else:
            self.corpus = job.corpus
        self.dense = DenseRetriever(encoder, job.cache)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        counts = []
        for rows in batch["rows"]:
            texts = self.corpus.texts.take(np.asarray(rows, dtype=np.int64))
            self.dense.embed(texts, "document")
            counts.append(len(texts))
        return {"count": np.array(counts, dtype=np.int64)}


class _BatchWorker:
    """A Ray actor mining query batches: it plans the run once (inputs and indexes memory-mapped from the shared
    cache, the models loaded), then mines each batch it is given."""

    def __init__(self, job: Job) -> None:
        check_visible(job)
        use_assigned_cpus()
        self.job = job
        self.run, _ = plan(job.config, job.corpus, job.queries, job.qrels, job.pairs, job.cache, job.encoder,
                           job.corpus_embeddings, job.query_embeddings, False, Progress(), [], prepass=False)
        self.run.calibration = job.calibration
        if job.dense_search and self.run.sources.dense is not None:
            self.run.sources.dense.use_setting(job.dense_search)
            self.run.dense_search = dict(job.dense_search)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        indices, payloads = [], []
        for index, positions in zip(batch["index"], batch["positions"]):
            result = mine_batch(self.run, np.asarray(positions, dtype=np.int64), self.job.audit, Progress())
            indices.append(int(index))
            payloads.append(pickle.dumps(result.to_store(), protocol=pickle.HIGHEST_PROTOCOL))
        return {"index": np.array(indices, dtype=np.int64), "payload": np.array(payloads, dtype=object)}
