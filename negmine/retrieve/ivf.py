"""IVF indexes whose inverted lists live on disk: trained on a sample, filled block by block from a (memory-mapped)
corpus straight into faiss's own file format, and memory-mapped when read.

faiss's usual recipes hold the codes in RAM while an index is filled (``index.add``), or write shard indexes and
merge them into an ``.ivfdata`` file (``faiss.contrib.ondisk.merge_ondisk``) whose absolute path is stored in the
index and which prints to standard output. Here the lists are written where faiss's reader expects them, at the
end of one ``index.faiss``, in two passes over the corpus: one assigns every vector to its list (and so gives the
lists' sizes), the other encodes the vectors and writes each one at its place in its list. The file is the one
``faiss.write_index`` would write for the same index filled in RAM (a test checks the bytes), and
``faiss.read_index(path, faiss.IO_FLAG_MMAP)`` maps its lists instead of reading them. Building holds the training
sample, one block of vectors and the list assignments (8 bytes a vector) in RAM, never the corpus or its codes.
"""

from __future__ import annotations

import logging
import struct
from pathlib import Path
from typing import Any, Optional

import numpy as np

from negmine.progress import Progress
from negmine.storage.cache import reserve

logger = logging.getLogger("negmine")

#: Training vectors per inverted list (faiss warns below 39; more costs RAM and k-means time, little recall), and
#: at least TRAIN_MIN (a product quantizer's 256 centroids per sub-vector want about 10,000).
TRAIN_PER_LIST = 64

TRAIN_MIN = 1 << 16

#: Lists of the IVF index ``--faiss-index auto`` builds over a large corpus.
AUTO_NLIST = 4096

#: Rows assigned and written at a time.
BLOCK = 1 << 16


def _faiss() -> Any:
    import faiss

    return faiss


def auto_nlist(n: int) -> int:
    """The number of lists for ``n`` documents: AUTO_NLIST, fewer (a power of two) below 256 documents per list."""
    nlist = 1
    while nlist * 2 <= min(AUTO_NLIST, max(1, n // 256)):
        nlist *= 2
    return nlist


def training_rows(n: int, index: Any) -> np.ndarray:
    """The sorted rows of a seeded training sample: TRAIN_PER_LIST per list of an IVF index (at least TRAIN_MIN),
    else up to a million."""
    faiss = _faiss()
    ivf = faiss.try_extract_index_ivf(index)
    wanted = max(TRAIN_MIN, TRAIN_PER_LIST * int(ivf.nlist)) if ivf is not None else 1 << 20
    if n <= wanted:
        return np.arange(n, dtype=np.int64)
    return np.sort(np.random.default_rng(0).choice(n, size=wanted, replace=False)).astype(np.int64)


def _empty_lists_record(nlist: int, code_size: int) -> bytes:
    """How faiss writes the inverted lists of an empty in-RAM IVF index (``ilar``, sparse, no entries)."""
    return struct.pack("<4sQQ4sQ", b"ilar", nlist, code_size, b"sprs", 0)


def _header(index: Any, ntotal: int) -> Optional[bytes]:
    """The index file without its inverted lists, as faiss writes it for an index of ``ntotal`` vectors; ``None``
    when the lists are not the last thing in the file (a wrapped or refined index, say), which this writer cannot
    handle."""
    faiss = _faiss()
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is None or ivf.this != faiss.downcast_index(index).this or ivf.ntotal != 0:
        return None
    if not isinstance(faiss.downcast_InvertedLists(ivf.invlists), faiss.ArrayInvertedLists):
        return None
    raw = faiss.serialize_index(index).tobytes()
    tail = _empty_lists_record(int(ivf.nlist), int(ivf.code_size))
    if not raw.endswith(tail):
        return None
    ivf.ntotal = ntotal  # write_index_header stores it; the lists stay empty
    try:
        raw = faiss.serialize_index(index).tobytes()
    finally:
        ivf.ntotal = 0
    return raw[: -len(tail)] if raw.endswith(tail) else None


def can_write(index: Any) -> bool:
    """Whether ``write_lists`` can fill this (trained, empty) index on disk."""
    return _header(index, 0) is not None


def assign(index: Any, docs: np.ndarray, progress: Progress) -> np.ndarray:
    """The list of every row of ``docs`` (int64), in blocks."""
    faiss = _faiss()
    ivf = faiss.extract_index_ivf(index)
    lists = np.empty(docs.shape[0], dtype=np.int64)
    with progress.stage("dense: assigning documents to IVF lists", total=docs.shape[0]) as advance:
        for start in range(0, docs.shape[0], BLOCK):
            x = np.ascontiguousarray(docs[start : start + BLOCK], dtype=np.float32)
            lists[start : start + len(x)] = ivf.quantizer.assign(x, 1).ravel()
            advance(len(x))
    return lists


def write_lists(index: Any, docs: np.ndarray, path: Path, progress: Optional[Progress] = None) -> None:
    """Fill the trained, empty IVF ``index`` with the rows of ``docs`` (ids = row numbers) and write it to
    ``path`` as ``faiss.write_index`` would, streaming: the codes go to the file, never to RAM."""
    faiss = _faiss()
    progress = progress or Progress()
    ivf = faiss.extract_index_ivf(index)
    n, nlist, code_size = int(docs.shape[0]), int(ivf.nlist), int(ivf.code_size)
    header = _header(index, n)
    if header is None:
        raise ValueError("this index cannot be written on disk by negmine.retrieve.ivf")
    lists = assign(index, docs, progress)
    sizes = np.bincount(lists, minlength=nlist).astype(np.uint64)
    nonzero = np.flatnonzero(sizes)
    if nonzero.size > nlist // 2:  # faiss's choice between a full and a sparse table of list sizes
        table = b"full" + struct.pack("<Q", nlist) + sizes.astype("<u8").tobytes()
    else:
        pairs = np.stack([nonzero.astype(np.uint64), sizes[nonzero]], axis=1).ravel()
        table = b"sprs" + struct.pack("<Q", pairs.size) + pairs.astype("<u8").tobytes()
    lists_head = struct.pack("<4sQQ", b"ilar", nlist, code_size) + table
    start = len(header) + len(lists_head)
    entry = code_size + 8
    list_start = start + np.concatenate([[0], np.cumsum(sizes.astype(np.int64) * entry)[:-1]]).astype(np.int64)
    total = start + int(sizes.sum()) * entry
    with open(path, "wb") as fh:
        fh.write(header)
        fh.write(lists_head)
        fh.truncate(total)
    reserve(path, start)
    body = np.memmap(path, dtype=np.uint8, mode="r+", offset=start, shape=(total - start,))
    filled = np.zeros(nlist, dtype=np.int64)
    list_off = list_start - start
    codes_end = list_off + sizes.astype(np.int64) * code_size  # each list: its codes, then its ids
    with progress.stage("dense: writing the IVF index", total=n) as advance:
        for b0 in range(0, n, BLOCK):
            x = np.ascontiguousarray(docs[b0 : b0 + BLOCK], dtype=np.float32)
            a = lists[b0 : b0 + len(x)]
            codes = np.empty((len(x), code_size), dtype=np.uint8)
            ivf.encode_vectors(len(x), faiss.swig_ptr(x), faiss.swig_ptr(a), faiss.swig_ptr(codes))
            order = np.argsort(a, kind="stable")
            a_sorted = a[order]
            bounds = np.flatnonzero(np.diff(a_sorted)) + 1
            for rows in np.split(order, bounds):
                j = int(a[rows[0]])
                m, e = rows.size, int(filled[j])
                c0 = int(list_off[j]) + e * code_size
                body[c0 : c0 + m * code_size] = codes[rows].ravel()
                i0 = int(codes_end[j]) + e * 8
                body[i0 : i0 + m * 8] = (rows + b0).astype("<i8").view(np.uint8)
                filled[j] += m
            advance(len(x))
    body.flush()
    del body
    if not np.array_equal(filled, sizes.astype(np.int64)):
        raise RuntimeError("IVF lists were not filled as assigned")


def read_mapped(path: Path) -> Any:
    """An index written by ``faiss.write_index`` or ``write_lists``, with the inverted lists of an IVF index
    memory-mapped from the file (read-only) rather than read into RAM."""
    faiss = _faiss()
    index = faiss.read_index(str(path), faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None:
        mapped = isinstance(faiss.downcast_InvertedLists(ivf.invlists), faiss.OnDiskInvertedLists)
        logger.debug("dense: %s: inverted lists %s", path, "memory-mapped" if mapped else "read into RAM")
    return index


def is_mapped(index: Any) -> bool:
    """Whether an IVF index's inverted lists are memory-mapped (``False`` for any other index)."""
    faiss = _faiss()
    ivf = faiss.try_extract_index_ivf(index)
    return ivf is not None and isinstance(faiss.downcast_InvertedLists(ivf.invlists), faiss.OnDiskInvertedLists)
