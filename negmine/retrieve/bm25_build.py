"""Building a BM25 index in two passes over the texts, in chunks of bounded memory: the documents' term counts,
then each term's postings (document, weight) in term order, as memory-mapped arrays."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from negmine.progress import Progress
from negmine.retrieve.bm25_search import DELTA, SCORE_BLOCK, _score_block, _Scoring
from negmine.retrieve.bm25_tokens import Analyzer, Vocabulary, _TermIds

#: Version of the on-disk layout; part of the cache key, so an index of another layout is rebuilt, never misread.
INDEX_FORMAT = 2

#: Documents tokenised and scored at a time while building.
BUILD_CHUNK = 16384

#: Texts tokenised together (one Python pass) within a chunk.
TOKENIZE_BATCH = 2048


def _triples(ids: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A chunk's (term, document within the chunk, term frequency) for each distinct (document, term), sorted by
    term then document (int32 each). Peak memory: 16 bytes per token."""
    n = max(int(lengths.size), 1)
    key = ids.astype(np.int64)
    key *= n
    key += np.repeat(np.arange(lengths.size, dtype=np.int64), lengths)
    key.sort()
    change = np.ones(key.size, dtype=bool)
    np.not_equal(key[1:], key[:-1], out=change[1:])
    first = np.flatnonzero(change)
    del change
    tf = np.diff(np.append(first, key.size)).astype(np.int32)
    key = key[first]
    del first
    return (key // n).astype(np.int32), (key % n).astype(np.int32), tf


@dataclass
class _Params:
    k1: float
    b: float
    method: str


def build_index(texts: Sequence[str], folder: Path, params: _Params, analyzer: Analyzer,
                progress: Optional[Progress] = None, chunk: Optional[int] = None) -> None:
    """Write the BM25 index of ``texts`` into ``folder`` (see the module's docstring), in memory bounded by
    ``chunk`` documents (default ``BUILD_CHUNK``) and the vocabulary. ``texts`` is read only by ``len`` and
    slices."""
    progress = progress or Progress()
    chunk = chunk or BUILD_CHUNK
    folder = Path(folder)
    work = folder / "build.tmp"
    work.mkdir(parents=True, exist_ok=True)
    starts = list(range(0, len(texts), chunk))
    with progress.stage("BM25: tokenizing corpus", total=len(texts)) as advance:
        tokens, df, total_length = _first_pass(texts, starts, chunk, work, analyzer, advance)
    Vocabulary.write(folder, tokens)
    del tokens
    with progress.stage("BM25: indexing", total=len(texts)) as advance:
        meta = _second_pass(len(texts), starts, df, total_length, work, folder, params, advance)
    shutil.rmtree(work, ignore_errors=True)
    (folder / "meta.json").write_text(json.dumps(meta, sort_keys=True), encoding="utf-8")


def _first_pass(texts: Sequence[str], starts: list[int], chunk: int, work: Path, analyzer: Analyzer,
                advance: Callable[[int], None]) -> tuple[list[str], np.ndarray, int]:
    """Tokenise chunk by chunk; write each chunk's (term, document, tf) triples and lengths to ``work``.
    Returns (the vocabulary in term-id order, the document frequencies, the total length)."""
    n_docs = len(texts)
    terms = _TermIds(analyzer)
    df = np.zeros(0, dtype=np.int64)
    total_length = 0
    for c, start in enumerate(starts):
        stop = min(start + chunk, n_docs)
        parts = []
        for s in range(start, stop, TOKENIZE_BATCH):
            parts.append(terms.encode(texts[s : min(s + TOKENIZE_BATCH, stop)]))
            advance(parts[-1][1].size)
        ids = np.concatenate([p[0] for p in parts])
        lengths = np.concatenate([p[1] for p in parts])
        del parts
        t, d, tf = _triples(ids, lengths)
        del ids
        counts = np.bincount(t, minlength=len(terms.tokens))
        counts[: df.size] += df
        df = counts
        total_length += int(lengths.sum())
        for name, arr in (("terms", t), ("docs", d), ("tf", tf), ("lengths", lengths)):
            np.save(work / f"{c}.{name}.npy", arr)
    return terms.tokens, df, total_length


def _second_pass(n_docs: int, starts: list[int], df: np.ndarray, total_length: int, work: Path, folder: Path,
                 params: _Params, advance: Callable[[int], None]) -> dict:
    """idf and non-occurrence with bm25s's functions; then each chunk's triples scored and written to their place
    in ``data.npy`` / ``indices.npy`` (memory maps). Returns the index's meta data."""
    from bm25s.scoring import (
        _build_idf_array,
        _build_nonoccurrence_array,
        _select_idf_scorer,
        _select_tfc_scorer,
    )

    method, n_terms = params.method, int(df.size)
    idf_fn, tfc_fn = _select_idf_scorer(method), _select_tfc_scorer(method)
    # bm25s's functions loop in Python over a {term: df} dict: call them once per distinct df instead
    distinct, inverse = np.unique(df, return_inverse=True)
    by_df = {i: int(v) for i, v in enumerate(distinct.tolist())}
    inverse = inverse.ravel()
    # bm25s: np.array(lengths).mean(), a float64 (exact: the integer sum is below 2**53)
    avg_length = np.float64(total_length) / n_docs if n_docs else np.float64(0)
    idf = _build_idf_array(by_df, n_docs, idf_fn, dtype="float32")[inverse]
    nonoccurrence = None
    if method in ("bm25l", "bm25+"):
        nonoccurrence = _build_nonoccurrence_array(
            by_df, n_docs, idf_fn, tfc_fn, l_d=avg_length, l_avg=avg_length, k1=params.k1, b=params.b, delta=DELTA,
            dtype="float32")[inverse]
        np.save(folder / "nonoccurrence.npy", nonoccurrence)
    del inverse
    indptr = np.zeros(n_terms + 1, dtype=np.int64)
    np.cumsum(df, out=indptr[1:])
    nnz = int(indptr[-1])
    np.save(folder / "indptr.npy", indptr)
    data = np.lib.format.open_memmap(folder / "data.npy", mode="w+", dtype=np.float32, shape=(nnz,))
    indices = np.lib.format.open_memmap(folder / "indices.npy", mode="w+", dtype=np.int32, shape=(nnz,))
    heads = indptr[:-1].copy()
    del indptr
    termmax = np.zeros(n_terms, dtype=np.float32)
    scoring = _Scoring(idf, nonoccurrence, tfc_fn, avg_length, params.k1, params.b)
    min_score = 0.0
    for c, start in enumerate(starts):
        t, d, tf, lengths = (np.load(work / f"{c}.{name}.npy") for name in ("terms", "docs", "tf", "lengths"))
        for s in range(0, t.size, SCORE_BLOCK):  # a term's run may span two blocks: heads carry it on
            low = _score_block(t[s : s + SCORE_BLOCK], d[s : s + SCORE_BLOCK], tf[s : s + SCORE_BLOCK], lengths,
                               start, scoring, heads, data, indices, termmax)
            min_score = min(min_score, low)
        for name in ("terms", "docs", "tf", "lengths"):
            (work / f"{c}.{name}.npy").unlink()
        advance(lengths.size)
    data.flush()
    indices.flush()
    np.save(folder / "termmax.npy", termmax)
    return {"format": INDEX_FORMAT, "documents": n_docs, "terms": n_terms, "postings": nnz,
            "average_length": float(avg_length), "method": method, "k1": params.k1, "b": params.b, "delta": DELTA,
            "min_score": min_score}
