"""Exact inner-product search: corpus blocks through faiss (on every core), with the candidates it keeps
scored again canonically (``inner_products``: a fixed order of additions), so that a query's hits and scores do not
depend on the other queries of its batch, nor on the block boundaries."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from negmine.progress import Progress
from negmine.retrieve.base import Hits

#: Corpus rows searched per exact-search block, and queries per batch: memory stays bounded.
DOC_BLOCK = 1 << 17

QUERY_BATCH = 4096

#: Candidates fetched from faiss beyond k per corpus block (they absorb faiss's rounding; see ``_search_block``).
FETCH_MARGIN = 16

SCORE_PAIRS = 1 << 14


def _faiss() -> Any:
    import faiss

    return faiss


def gpu_count() -> int:
    """GPUs faiss can use (0 with faiss-cpu)."""
    faiss = _faiss()
    return int(faiss.get_num_gpus()) if hasattr(faiss, "get_num_gpus") else 0


def _tree_sum(p: np.ndarray) -> np.ndarray:
    """Sums over the last axis in a fixed pairwise order, with element-wise additions (``p`` is overwritten)."""
    w = p.shape[-1]
    while w > 1:
        h = w // 2
        np.add(p[..., :h], p[..., w - h : w], out=p[..., :h])
        w -= h
    return p[..., 0].copy() if w else np.zeros(p.shape[:-1], dtype=p.dtype)


def inner_products(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Inner products of matching rows of ``x`` and ``y`` (broadcast), as float32.

    The bits of a pair's score depend on the two vectors only, not on what else is computed with them, the batch
    size, the BLAS library or the CPU: float32 products summed in a fixed pairwise order by element-wise IEEE
    operations (nothing fused, nothing reordered). Exact search, the probing of IVF lists and ``pair_scores`` all
    score this way, so a document has one score for a query wherever it shows up.
    """
    return _tree_sum(np.multiply(np.asarray(x, dtype=np.float32), np.asarray(y, dtype=np.float32)))


def _pair_scores(xq: np.ndarray, qrows: np.ndarray, xb: np.ndarray, drows: np.ndarray) -> np.ndarray:
    """``inner_products(xq[qrows], xb[drows])``, a bounded number of pairs at a time."""
    out = np.empty(len(qrows), dtype=np.float32)
    for s in range(0, len(qrows), SCORE_PAIRS):
        p = np.asarray(xb[drows[s : s + SCORE_PAIRS]], dtype=np.float32)  # a gathered copy: multiplied in place
        np.multiply(p, xq[qrows[s : s + SCORE_PAIRS]], out=p)
        out[s : s + len(p)] = _tree_sum(p)
    return out


def _sorted_hits(d: np.ndarray, i: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's ``k`` best, best score first, ties to the lower index, empty slots (index -1) last."""
    order = np.lexsort((np.where(i < 0, np.iinfo(np.int64).max, i), -d), axis=1)[:, :k]
    return np.take_along_axis(d, order, 1), np.take_along_axis(i, order, 1)


def _merge_topk(
    d1: np.ndarray, i1: np.ndarray, d2: np.ndarray, i2: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    return _sorted_hits(np.concatenate([d1, d2], axis=1), np.concatenate([i1, i2], axis=1), k)


def _slack(xq: np.ndarray, xb: np.ndarray, gpu: bool) -> np.ndarray:
    """Per query, a bound on how far faiss's float32 inner product with any row of ``xb`` can be from the
    canonical one (4x the textbook bound d * 2^-24 * |q| * |x|; 16x more on a GPU)."""
    qn = np.sqrt(np.einsum("ij,ij->i", xq, xq, dtype=np.float64))
    xn = float(np.sqrt(np.einsum("ij,ij->i", xb, xb).max(initial=0.0)))
    bound = 4.0 * xq.shape[1] * 2.0**-24 * qn * xn * (16 if gpu else 1)
    return (bound + 1e-30).astype(np.float32)


def _search_block(xq: np.ndarray, xb: np.ndarray, offset: int, best_d: np.ndarray, best_i: np.ndarray, k: int,
                  gpu_res: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """Merge one corpus block (rows ``offset`` ...) into each query's best ``k`` (canonical scores, ties to the
    lower index).

    faiss fetches ``k + FETCH_MARGIN`` candidates per query; those that can beat the query's current k-th score
    are scored canonically. The block's other rows score at most the last fetched faiss score plus the rounding
    slack; where that could still reach the new k-th score (near-ties, duplicates), every row of the block within
    the slack of it is scored canonically, so the result is the exact canonical top-k whatever faiss computed.
    """
    faiss = _faiss()
    nb = len(xb)
    fetch = min(nb, k + FETCH_MARGIN)
    if gpu_res is not None:
        d, i = faiss.knn_gpu(gpu_res, xq, xb, fetch, metric=faiss.METRIC_INNER_PRODUCT)
    else:
        d, i = faiss.knn(xq, xb, fetch, metric=faiss.METRIC_INNER_PRODUCT)
    d, i = np.asarray(d, dtype=np.float32), np.asarray(i, dtype=np.int64)
    slack = _slack(xq, xb, gpu_res is not None)
    want = (i >= 0) & (d >= (best_d[:, k - 1] - slack)[:, None])
    rows, cols = np.nonzero(want)
    cand_d = np.full(d.shape, -np.inf, dtype=np.float32)
    cand_d[rows, cols] = _pair_scores(xq, rows, xb, i[rows, cols])
    new_d, new_i = _merge_topk(best_d, best_i, cand_d, np.where(want, i + offset, -1), k)
    if fetch < nb:
        for q in np.flatnonzero(d[:, -1] + slack >= new_d[:, k - 1]):
            approx = np.asarray(xb @ xq[q], dtype=np.float32)
            near = np.flatnonzero(approx >= new_d[q, k - 1] - slack[q])
            s = _pair_scores(xq, np.full(near.size, q), xb, near)
            row_d, row_i = _merge_topk(best_d[q : q + 1], best_i[q : q + 1], s[None], (near + offset)[None], k)
            new_d[q], new_i[q] = row_d[0], row_i[0]
    return new_d, new_i


def exact_search(docs: np.ndarray, queries: np.ndarray, k: int, use_gpu: bool = False,
                 progress: Optional[Progress] = None) -> Hits:
    """Exact top-k by inner product over corpus blocks (``docs`` may be a memory map) and query batches.

    A query's hits (indices and scores, to the bit) do not depend on the other queries searched with it, on the
    batch size or on the GPU: scores are ``inner_products``, ties go to the lower index.
    """
    faiss = _faiss()
    progress = progress or Progress()
    n, nq = docs.shape[0], queries.shape[0]
    k = min(k, n)
    hits = Hits.empty(nq, k)
    if k <= 0 or nq == 0:
        return hits
    res = faiss.StandardGpuResources() if use_gpu else None
    with progress.stage("dense: searching", total=nq) as advance:
        for qs in range(0, nq, QUERY_BATCH):
            xq = np.ascontiguousarray(queries[qs : qs + QUERY_BATCH], dtype=np.float32)
            best_d = np.full((len(xq), k), -np.inf, dtype=np.float32)
            best_i = np.full((len(xq), k), -1, dtype=np.int64)
            for ds in range(0, n, DOC_BLOCK):
                xb = np.ascontiguousarray(docs[ds : ds + DOC_BLOCK], dtype=np.float32)
                best_d, best_i = _search_block(xq, xb, ds, best_d, best_i, k, res)
            hits.scores[qs : qs + len(xq)] = best_d
            hits.indices[qs : qs + len(xq)] = best_i
            advance(len(xq))
    return hits
