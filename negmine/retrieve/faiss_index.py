"""faiss indexes from a factory string (``IVF4096,Flat``, ``HNSW32``): built once into the cache (an IVF index's
lists written on disk, memory-mapped), searched with a setting (``nprobe``, ``efSearch``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import numpy as np

from negmine.errors import ConfigError
from negmine.progress import Progress
from negmine.retrieve import ivf
from negmine.retrieve import ivf as ivf_mod
from negmine.retrieve.base import Hits
from negmine.retrieve.exact import DOC_BLOCK, QUERY_BATCH, _faiss, _pair_scores, _sorted_hits, exact_search


class FaissIndex:
    """A saved faiss index, loaded once (IVF lists memory-mapped), and how to search it.

    An IVF index on the CPU is probed through ``search_preassigned`` with the lists chosen by ``exact_search`` over
    its centroids, so which lists a query probes does not depend on its batch either. Indexes that store lossy
    codes (PQ, SQ) fetch ``2k`` candidates whose scores are then recomputed from the corpus vectors.
    """

    def __init__(self, path: Path, use_gpu: bool = False) -> None:
        faiss = _faiss()

        self.path = path
        self.gpu = use_gpu
        self.index = ivf_mod.read_mapped(path)
        self.on_disk = ivf_mod.is_mapped(self.index)
        self.ntotal = int(self.index.ntotal)
        ivf = faiss.try_extract_index_ivf(self.index)
        base = faiss.downcast_index(ivf if ivf is not None else self.index)
        self.param: Optional[str] = "nprobe" if ivf is not None else "efSearch" if isinstance(base, faiss.IndexHNSW) \
            else None
        self.nlist = int(ivf.nlist) if ivf is not None else 0
        self.value: Optional[int] = int(ivf.nprobe) if ivf is not None else \
            int(base.hnsw.efSearch) if self.param == "efSearch" else None
        storage = faiss.downcast_index(base.storage) if isinstance(base, faiss.IndexHNSW) else base
        self.lossy = not isinstance(storage, (faiss.IndexIVFFlat, faiss.IndexFlat))
        self.ivf: Any = None
        self.centroids: Optional[np.ndarray] = None
        if ivf is not None and not use_gpu and ivf.this == faiss.downcast_index(self.index).this:
            self.ivf = ivf
            self.centroids = ivf.quantizer.reconstruct_n(0, self.nlist)
        if use_gpu:
            self.index = faiss.index_cpu_to_all_gpus(self.index)

    def set(self, value: int) -> None:
        """Set the search parameter (``nprobe`` or ``efSearch``)."""
        faiss = _faiss()
        self.value = value
        if self.param is not None:
            space = faiss.GpuParameterSpace() if self.gpu else faiss.ParameterSpace()
            space.set_index_parameter(self.index, self.param, value)

    def search(self, queries: np.ndarray, k: int, docs: Optional[np.ndarray] = None,
               progress: Optional[Progress] = None) -> Hits:
        progress = progress or Progress()
        k = min(k, self.ntotal)
        hits = Hits.empty(queries.shape[0], k)
        if k <= 0:
            return hits
        fetch = min(self.ntotal, 2 * k) if self.lossy and docs is not None else k
        with progress.stage("dense: searching (faiss index)", total=queries.shape[0]) as advance:
            for qs in range(0, queries.shape[0], QUERY_BATCH):
                xq = np.ascontiguousarray(queries[qs : qs + QUERY_BATCH], dtype=np.float32)
                if self.ivf is not None and self.value is not None:
                    nprobe = min(self.value, self.nlist)
                    coarse = exact_search(self.centroids, xq, nprobe)  # type: ignore[arg-type]
                    self.ivf.nprobe = nprobe
                    d, i = self.ivf.search_preassigned(xq, fetch, coarse.indices, coarse.scores)
                else:
                    d, i = self.index.search(xq, fetch)
                i = np.asarray(i, dtype=np.int64)
                d = np.where(i >= 0, np.asarray(d, dtype=np.float32), -np.inf).astype(np.float32)
                if self.lossy and docs is not None:
                    rows, cols = np.nonzero(i >= 0)
                    d[rows, cols] = _pair_scores(xq, rows, docs, i[rows, cols])
                d, i = _sorted_hits(d, i, k)
                hits.scores[qs : qs + len(xq)] = d
                hits.indices[qs : qs + len(xq)] = i
                advance(len(xq))
        return hits


def factory_search(index_path: Path, queries: np.ndarray, k: int, use_gpu: bool = False,
                   progress: Optional[Progress] = None) -> Hits:
    """Top-k from a saved faiss index (approximate for IVF / HNSW / PQ) with the settings saved in it."""
    return FaissIndex(Path(index_path), use_gpu).search(queries, k, progress=progress)


def build_factory_index(docs: np.ndarray, factory: str, folder: Path, progress: Optional[Progress] = None) -> None:
    """Train and fill an index, saved as ``folder/index.faiss``.

    Training takes a seeded sample (``negmine.retrieve.ivf.TRAIN_PER_LIST`` vectors per IVF list). A plain IVF index
    (``IVF4096,Flat``, ``IVF4096,PQ32``, ``IVF1024,SQ8``) is filled on disk, block by block, and read back
    memory-mapped; any other (HNSW, or a wrapped IVF such as ``OPQ32,IVF4096,PQ32``) is filled in RAM.
    """
    faiss = _faiss()

    progress = progress or Progress()
    try:
        index = faiss.index_factory(int(docs.shape[1]), factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as exc:
        raise ConfigError(f"--faiss-index {factory!r}: faiss cannot build it ({str(exc).splitlines()[0]})") from exc
    sub = faiss.try_extract_index_ivf(index)
    if sub is not None:
        sub = faiss.downcast_index(sub)
    if isinstance(sub, faiss.IndexIVFPQ):
        sub.do_polysemous_training = False  # only for polysemous (Hamming) search, which negmine does not use
    if not index.is_trained:
        rows = ivf.training_rows(docs.shape[0], index)
        with progress.stage(f"dense: training {factory} on {len(rows):,} vectors"):
            try:
                index.train(np.ascontiguousarray(docs[rows], dtype=np.float32))
            except RuntimeError as exc:
                raise ConfigError(f"--faiss-index {factory!r}: training failed on {len(rows)} vectors "
                                  f"({str(exc).splitlines()[0]}); use fewer lists or exact search") from exc
    if sub is not None:
        sub.nprobe = min(32, sub.nlist)
    if ivf.can_write(index):
        ivf.write_lists(index, docs, folder / "index.faiss", progress)
        return
    with progress.stage(f"dense: adding to {factory}", total=docs.shape[0]) as advance:
        for ds in range(0, docs.shape[0], DOC_BLOCK):
            block = np.ascontiguousarray(docs[ds : ds + DOC_BLOCK], dtype=np.float32)
            index.add(block)
            advance(len(block))
    faiss.write_index(index, str(folder / "index.faiss"))
