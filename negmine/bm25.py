"""BM25 retrieval at corpus scale: bm25s's tokenizer rules and scoring functions, an index built in bounded memory,
stored as memory-mapped ``.npy`` files and searched on all cores.

The index is a term-major sparse matrix of precomputed BM25 term scores (CSC over documents x terms, as bm25s
stores it): for term ``t``, ``indices[indptr[t]:indptr[t + 1]]`` are the documents containing it (ascending) and
``data[...]`` their score for it. A query's score of a document is the float32 sum, in query-token order, of the
document's scores for the query's tokens (plus, for BM25L and BM25+, the query's non-occurrence constant): the sum
bm25s computes, so scores equal bm25s's in-memory index bit for bit.

Building takes two passes over the texts in chunks of ``BUILD_CHUNK`` documents:

1. tokenise each chunk into term ids (the vocabulary grows as new stems appear), reduce it to term-major
   (term, document, term frequency) triples written to temporary ``.npy`` files, and add up the document
   frequencies and lengths;
2. compute idf (and the non-occurrence array) with bm25s's own functions, then score each chunk's triples and
   write them to their place in ``data`` / ``indices``, which are memory maps of the final files.

Memory stays proportional to a chunk and to the vocabulary, never to the corpus. See docs/scale.md.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import chain, repeat
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence

import numpy as np

from negmine.errors import ConfigError
from negmine.progress import Progress
from negmine.retrieve import Hits, topk
from negmine.storage.cache import cached_dir, text_hashes

#: Version of the on-disk layout; part of the cache key, so an index of another layout is rebuilt, never misread.
INDEX_FORMAT = 2
#: Documents tokenised and scored at a time while building.
BUILD_CHUNK = 16384
#: (term, document) pairs scored at a time while building.
SCORE_BLOCK = 1 << 19
#: Texts tokenised together (one Python pass) within a chunk.
TOKENIZE_BATCH = 2048
#: Queries tokenised at a time before they are scored on the threads.
QUERY_CHUNK = 1024
#: Queries one thread scores per task.
QUERY_TASK = 16
#: Surface words whose stem (or term id) is remembered; the cache is emptied when it grows past this.
WORD_CACHE = 1 << 18
#: Search skips documents that cannot reach a query's top k (``_Index._top_pruned``) for queries of at most this
#: many tokens whose postings add up to at least ``PRUNE_MIN_POSTINGS``.
PRUNE_MAX_TERMS = 256
PRUNE_MIN_POSTINGS = 32768
#: ... and whose candidates (the rarest terms' documents, then the essential terms') are at most this many, which
#: bounds the memory of a search thread.
PRUNE_MAX_CANDIDATES = 1 << 20
#: How many documents per wanted one (k) are scored exactly to find the pruning threshold.
PRUNE_SEED = 4
#: Documents ranked at a time when a query's candidates are found by scanning the corpus-sized mask.
SCAN_BLOCK = 1 << 19
#: Relative margin of the pruning bounds (float32 sums of PRUNE_MAX_TERMS values err by less than 2e-5).
PRUNE_MARGIN = 1e-4
#: BM25L / BM25+ delta (bm25s's default).
DELTA = 0.5
#: Texts hashed at a time for the cache key.
HASH_BLOCK = 65536


def make_tokenizer(stemmer: str = "english", stopwords: str = "en"):  # type: ignore[no-untyped-def]
    """A bm25s tokenizer: lower-cased words of 2+ characters, stopwords removed, Snowball-stemmed."""
    from bm25s.tokenization import Tokenizer

    stem = None
    if stemmer != "none":
        import Stemmer

        try:
            stem = Stemmer.Stemmer(stemmer)
        except KeyError as exc:
            langs = ", ".join(sorted(Stemmer.algorithms()))
            raise ConfigError(f"--bm25-stemmer: unknown language {stemmer!r}; use one of: none, {langs}") from exc
    try:
        return Tokenizer(stopwords=[] if stopwords == "none" else stopwords, stemmer=stem)
    except ValueError as exc:
        raise ConfigError(
            f"--bm25-stopwords: unknown stopword list {stopwords!r}; use en, de, fr, es, ... or none"
        ) from exc


class Analyzer:
    """The rules of a bm25s ``Tokenizer`` (lower-case, its splitter, its stopwords, its stemmer), applied with
    bounded memory: the tokenizer remembers every word it has seen (three dicts), this remembers at most
    ``WORD_CACHE`` words. It yields the tokens bm25s's ``tokenize(..., return_as="string")`` yields, without its
    empty token."""

    def __init__(self, tokenizer: Any) -> None:
        self.lower: bool = tokenizer.lower
        self.split: Callable[[str], list[str]] = tokenizer.splitter
        self.stopwords = frozenset(tokenizer.stopwords or ())
        self.stemmer: Optional[Callable[[str], str]] = tokenizer.stemmer
        self._stems: dict[str, str] = {}

    def words(self, text: str) -> list[str]:
        """The words of ``text`` before stopwords and stemming."""
        return self.split(text.lower() if self.lower else text)

    def stem(self, word: str) -> str:
        """The token of one word: its stem, or ``""`` for a stopword."""
        if word in self.stopwords:
            return ""
        return self.stemmer(word) if self.stemmer is not None else word

    def tokens(self, text: str) -> list[str]:
        """The tokens of one text, in order."""
        cache = self._stems
        out = []
        for w in self.words(text):
            s = cache.get(w)
            if s is None:
                if len(cache) >= WORD_CACHE:
                    cache.clear()
                s = cache[w] = self.stem(w)
            if s:
                out.append(s)
        return out


class _TermIds:
    """Texts to term ids while a corpus is indexed: the vocabulary grows in order of first appearance."""

    def __init__(self, analyzer: Analyzer) -> None:
        self.analyzer = analyzer
        self.ids: dict[str, int] = {}  # token -> term id
        self.tokens: list[str] = []  # term id -> token
        self._words: dict[str, int] = {}  # surface word -> term id, -1 for none (bounded cache)

    def _learn(self, word: str) -> int:
        token = self.analyzer.stem(word)
        if not token:
            tid = -1
        else:
            tid = self.ids.setdefault(token, len(self.tokens))
            if tid == len(self.tokens):
                self.tokens.append(token)
        self._words[word] = tid
        return tid

    def encode(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(term ids of all texts, concatenated, int32; each text's token count, int64)."""
        if len(self._words) > WORD_CACHE:
            self._words.clear()
        words = [self.analyzer.words(t) for t in texts]
        flat = list(chain.from_iterable(words))
        ids = np.fromiter(map(self._words.get, flat, repeat(-2)), dtype=np.int64, count=len(flat))
        for j in np.flatnonzero(ids == -2).tolist():
            w = flat[j]
            known = self._words.get(w)
            ids[j] = known if known is not None else self._learn(w)
        keep = ids >= 0
        doc = np.repeat(np.arange(len(words)), [len(w) for w in words])
        lengths = np.bincount(doc[keep], minlength=len(words)).astype(np.int64)
        return ids[keep].astype(np.int32), lengths


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


def _token_hashes(tokens: Sequence[str]) -> np.ndarray:
    return np.fromiter(
        (int.from_bytes(hashlib.blake2b(t.encode("utf-8"), digest_size=8).digest(), "little") for t in tokens),
        dtype=np.uint64, count=len(tokens))


def _load(path: Path) -> np.ndarray:
    """The array of a ``.npy`` file, memory-mapped (a plain ndarray view of the map: slicing a ``np.memmap``
    costs microseconds of Python per slice)."""
    return np.asarray(np.load(path, mmap_mode="r"))


def _unique_sorted(parts: list[np.ndarray]) -> np.ndarray:
    """The distinct values of ``parts``, ascending (by sorting: numpy's hash-based ``unique`` is slower here)."""
    a = np.concatenate(parts).astype(np.int64)
    a.sort()
    if a.size:
        a = a[np.concatenate([[True], a[1:] != a[:-1]])]
    return a


@dataclass
class Vocabulary:
    """Token -> term id, stored as files and memory-mapped (no dict in memory).

    Attributes:
        hashes: 64-bit BLAKE2b of each token, ascending.
        order: The term id of each entry of ``hashes``.
        offsets: ``blob[offsets[t]:offsets[t + 1]]`` is term ``t``'s token (UTF-8), to confirm a hash match.
        blob: The tokens, concatenated in term-id order.
    """

    hashes: np.ndarray
    order: np.ndarray
    offsets: np.ndarray
    blob: np.ndarray

    FILES = ("vocab.hashes.npy", "vocab.order.npy", "vocab.offsets.npy", "vocab.blob.npy")

    @staticmethod
    def write(folder: Path, tokens: Sequence[str]) -> None:
        encoded = [t.encode("utf-8") for t in tokens]
        hashes = _token_hashes(tokens)
        order = np.argsort(hashes, kind="stable")
        offsets = np.zeros(len(tokens) + 1, dtype=np.int64)
        np.cumsum([len(e) for e in encoded], out=offsets[1:])
        blob = np.frombuffer(b"".join(encoded), dtype=np.uint8)
        arrays: list[np.ndarray] = [hashes[order], order.astype(np.int32), offsets, blob]
        for name, arr in zip(Vocabulary.FILES, arrays):
            np.save(folder / name, arr)

    @classmethod
    def load(cls, folder: Path) -> "Vocabulary":
        return cls(*(_load(folder / name) for name in cls.FILES))

    def __len__(self) -> int:
        return int(self.order.size)

    def lookup(self, tokens: Sequence[str]) -> np.ndarray:
        """The term id of each token (-1 where it is not in the vocabulary)."""
        out = np.full(len(tokens), -1, dtype=np.int64)
        if not len(tokens) or not len(self):
            return out
        h = _token_hashes(tokens)
        pos = np.searchsorted(self.hashes, h)
        for j in np.flatnonzero(pos < self.hashes.size).tolist():
            p, want = int(pos[j]), tokens[j].encode("utf-8")
            while p < self.hashes.size and self.hashes[p] == h[j]:
                t = int(self.order[p])
                if self.blob[self.offsets[t] : self.offsets[t + 1]].tobytes() == want:
                    out[j] = t
                    break
                p += 1
        return out


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


@dataclass
class _Scoring:
    idf: np.ndarray
    nonoccurrence: Optional[np.ndarray]
    tfc: Callable[..., np.ndarray]
    avg_length: np.float64
    k1: float
    b: float


def _score_block(t: np.ndarray, d: np.ndarray, tf: np.ndarray, lengths: np.ndarray, start: int, scoring: _Scoring,
                 heads: np.ndarray, data: np.ndarray, indices: np.ndarray, termmax: np.ndarray) -> float:
    """Score (term, document, tf) triples sorted by term and write them after each term's ``heads`` position;
    keep each term's highest score in ``termmax``. Returns the lowest score."""
    if t.size == 0:
        return 0.0
    # as bm25s computes a document's scores: float32 tf, the integer length, the float64 average; then float32
    score = scoring.idf[t] * scoring.tfc(tf_array=tf.astype(np.float32), l_d=lengths[d], l_avg=scoring.avg_length,
                                         k1=scoring.k1, b=scoring.b, delta=DELTA)
    if scoring.nonoccurrence is not None:
        score -= scoring.nonoccurrence[t]
    score = score.astype(np.float32)
    first = np.flatnonzero(np.concatenate([[True], t[1:] != t[:-1]]))
    run = np.diff(np.append(first, t.size))
    pos = heads[t] + (np.arange(t.size) - np.repeat(first, run))
    data[pos] = score
    indices[pos] = d + start
    heads[t[first]] += run
    terms = t[first]  # distinct within the block
    termmax[terms] = np.maximum(termmax[terms], np.maximum.reduceat(score, first))
    return float(score.min())


class _Index:
    """A built index, memory-mapped."""

    def __init__(self, folder: Path) -> None:
        self.meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        self.n_docs = int(self.meta["documents"])
        self.indptr = _load(folder / "indptr.npy")
        self.indices = _load(folder / "indices.npy")
        self.data = _load(folder / "data.npy")
        nonocc = folder / "nonoccurrence.npy"
        self.nonoccurrence = np.load(nonocc) if nonocc.is_file() else None
        self.termmax = np.load(folder / "termmax.npy")
        self.vocab = Vocabulary.load(folder)
        self.nonnegative = float(self.meta["min_score"]) >= 0
        self.prune = True

    def postings(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        s, e = int(self.indptr[t]), int(self.indptr[t + 1])
        return self.indices[s:e], self.data[s:e]

    def constant(self, ids: np.ndarray) -> Optional[np.float32]:
        """What BM25L / BM25+ add to every document's score (bm25s: the non-occurrence scores' float32 sum)."""
        if self.nonoccurrence is None or ids.size == 0:
            return None
        return self.nonoccurrence[ids].sum()

    def scores(self, ids: np.ndarray) -> np.ndarray:
        out = np.zeros(self.n_docs, dtype=np.float32)
        if ids.size == 0:
            return out
        for t in ids.tolist():
            docs, vals = self.postings(t)
            out[docs] += vals
        c = self.constant(ids)
        if c is not None:
            out += c
        return out

    def pair_scores(self, ids: np.ndarray, docs: np.ndarray, scratch: Optional[np.ndarray] = None) -> np.ndarray:
        """Scores of given documents: a binary search of each in each query term's postings; with ``scratch``
        (a zeroed float32 array of ``n_docs``, left zeroed), a term whose postings are fewer than 16 per document
        is spread over it and read instead."""
        wanted = np.asarray(docs, dtype=np.int64).astype(np.int32)  # same dtype as the postings: no copy of them
        out = np.zeros(wanted.size, dtype=np.float32)
        if ids.size == 0 or wanted.size == 0:
            return out
        for t in ids.tolist():  # in query order, repeats included: bm25s's float32 sum (x + 0 == x)
            post, vals = self.postings(t)
            if scratch is not None and post.size < 16 * wanted.size:
                scratch[post] = vals
                out += scratch[wanted]
                scratch[post] = 0
                continue
            pos = np.minimum(np.searchsorted(post, wanted), post.size - 1)
            hit = post[pos] == wanted
            out[hit] += vals[pos[hit]]
        c = self.constant(ids)
        if c is not None:
            out += c
        return out

    def top(self, ids: np.ndarray, k: int, acc: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The top ``k`` (indices, scores) among the documents sharing a term with the query, with the
        caller's zeroed float32 accumulator and boolean mask of ``n_docs`` (left zeroed)."""
        if ids.size == 0 or k <= 0:
            return np.empty(0, np.int64), np.empty(0, np.float32)
        if self.prune and self.nonnegative and ids.size <= PRUNE_MAX_TERMS:
            found = self._top_pruned(ids, k, acc, mask)
            if found is not None:
                return found
        return self._top_all(ids, k, acc, mask)

    def _union(self, postings: list[np.ndarray], mask: np.ndarray) -> np.ndarray:
        """The documents of several postings lists, ascending (int64)."""
        if len(postings) == 1:
            return np.asarray(postings[0], dtype=np.int64)
        if sum(p.size for p in postings) * 8 < self.n_docs:  # few: sorting them beats scanning a corpus-sized mask
            return _unique_sorted(postings)
        for p in postings:
            mask[p] = True
        found = np.flatnonzero(mask)
        mask[found] = False
        return found

    def _top_all(self, ids: np.ndarray, k: int, acc: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Every posting of every query term accumulated: O(postings + candidates), plus a scan of the
        corpus-sized mask when the postings are many (then the candidates are ranked ``SCAN_BLOCK`` documents at
        a time, so the temporary arrays stay small whatever the corpus)."""
        postings = {t: self.postings(t) for t in dict.fromkeys(ids.tolist())}
        for t in ids.tolist():  # in query order, repeats included: bm25s's float32 sum
            docs, vals = postings[t]
            acc[docs] += vals
        c = self.constant(ids)
        lists = [p[0] for p in postings.values()]
        blocks: Iterable[np.ndarray]
        if len(lists) == 1 or sum(p.size for p in lists) * 8 < self.n_docs:
            blocks = [self._union(lists, mask)]
        else:
            for p in lists:
                mask[p] = True
            blocks = (np.flatnonzero(mask[b : b + SCAN_BLOCK]) + b for b in range(0, self.n_docs, SCAN_BLOCK))
        best = np.empty(0, np.int64), np.empty(0, np.float32)
        for found in blocks:
            scores = acc[found]
            acc[found] = 0
            mask[found] = False
            if c is not None:
                scores += c
            # the best so far (lower documents, equal scores in document order) first: ties still go to the lower
            docs, scores = np.concatenate([best[0], found]), np.concatenate([best[1], scores])
            idx, val = topk(scores, k)
            best = docs[idx], val
        return best

    def _top_pruned(self, ids: np.ndarray, k: int, acc: np.ndarray,
                    mask: np.ndarray) -> Optional[tuple[np.ndarray, np.ndarray]]:
        """The same top ``k`` as ``_top_all``, without scoring the documents that cannot reach it (MaxScore, term
        at a time); ``None`` where that would not save work.

        1. theta, a lower bound of the final k-th score: the k-th best exact score among the documents of the
           rarest terms (the ``PRUNE_SEED`` x k of them that score best on those terms alone);
        2. the query's "non-essential" terms, those whose maximum scores add up to less than theta: a document
           with none but them cannot reach theta, so the candidates are the documents of the other terms;
        3. the non-essential terms are added to the candidates' partial scores, largest maximum first, and a
           candidate is dropped as soon as its partial score plus the maxima still to come is below theta;
        4. the survivors are scored exactly (``pair_scores``: bm25s's float32 sum in query order) and ranked.

        Scores are >= 0, so partial sums only grow; the bounds carry a relative margin ``PRUNE_MARGIN`` far above
        float32 rounding, so a document that ties the k-th score is never dropped.
        """
        distinct, mult = np.unique(ids, return_counts=True)
        df = (self.indptr[distinct + 1] - self.indptr[distinct]).astype(np.int64)
        total = int(df.sum())
        if distinct.size < 2 or total < max(PRUNE_MIN_POSTINGS, 8 * k):
            return None
        c = float(self.constant(ids) or 0.0)
        up = 1.0 + PRUNE_MARGIN

        # 1. theta
        rare = np.argsort(df, kind="stable")
        reach = np.cumsum(df[rare])
        j = int(np.searchsorted(reach, k))
        while True:
            if j >= rare.size or reach[j] * 2 > total or reach[j] > PRUNE_MAX_CANDIDATES:
                return None
            seed_terms = set(distinct[rare[: j + 1]].tolist())
            seed = self._union([self.postings(t)[0] for t in seed_terms], mask)
            if seed.size >= k:
                break
            j += 1
        for t in ids.tolist():
            if t in seed_terms:
                docs, vals = self.postings(t)
                acc[docs] += vals
        partial = acc[seed]
        acc[seed] = 0
        n_best = min(seed.size, PRUNE_SEED * k)
        best = np.sort(seed[np.argpartition(partial, seed.size - n_best)[seed.size - n_best :]])
        exact = self.pair_scores(ids, best, acc)
        theta = float(np.partition(exact, n_best - k)[n_best - k])  # k documents score at least this

        # 2. the essential terms' documents are the candidates; their partial scores
        bound = self.termmax[distinct].astype(np.float64) * mult
        by_bound = np.argsort(bound, kind="stable")
        rest = np.cumsum(bound[by_bound])  # rest[i]: the maxima of the i + 1 smallest-bound terms
        n_rest = int(np.count_nonzero((rest * up + c) * up < theta))
        if n_rest == 0:
            return None
        if int(df[by_bound[n_rest:]].sum()) > PRUNE_MAX_CANDIDATES:
            return None
        essential = set(distinct[by_bound[n_rest:]].tolist())
        for t in ids.tolist():
            if t in essential:
                docs, vals = self.postings(t)
                acc[docs] += vals
        found = self._union([self.postings(t)[0] for t in essential], mask)
        partial = acc[found].astype(np.float64)
        acc[found] = 0

        # 3. the non-essential terms, largest bound first, dropping what cannot reach theta
        for i in range(n_rest - 1, -1, -1):
            keep = ((partial * up + rest[i]) * up + c) * up >= theta
            found, partial = found[keep], partial[keep]
            if found.size == 0:
                break
            if found.size >= k:  # the k-th best lower bound of the final scores is a lower bound of the k-th
                low = np.partition(partial, found.size - k)[found.size - k]
                theta = max(theta, (low / up + c) / up)
            t = int(distinct[by_bound[i]])
            post, vals = self.postings(t)
            gain = np.zeros(found.size, dtype=np.float64)
            if found.size * 16 < post.size:  # few candidates: binary search them
                pos = np.minimum(np.searchsorted(post, found.astype(np.int32)), post.size - 1)
                hit = post[pos] == found
                gain[hit] = vals[pos[hit]]
            else:  # many: spread the postings over the accumulator and read the candidates' cells
                acc[post] = vals
                gain[:] = acc[found]
                acc[post] = 0
            partial += gain * mult[by_bound[i]]
        found = found[((partial * up) + c) * up >= theta]
        if found.size < k:  # cannot happen (k documents reach theta); were a bound wrong, rank them all
            return None

        # 4. exact scores of the survivors
        scores = self.pair_scores(ids, found, acc)
        idx, val = topk(scores, k)
        return found[idx], val


class BM25Retriever:
    """A BM25 index over a corpus (bm25s's tokenizer and scores), built in bounded memory, memory-mapped and
    searched exactly on all cores.

    A document that shares no term with a query is never a candidate for it.

    Args:
        k1: Term-frequency saturation.
        b: Length normalisation.
        method: BM25 variant, as bm25s names them (lucene, robertson, atire, bm25l, bm25+).
        stemmer: Snowball stemmer language, or ``"none"``.
        stopwords: Stopword list (bm25s's names), or ``"none"``.
        threads: Threads that score queries (default: the CPUs this process may use).
    """

    name = "bm25"

    def __init__(
        self, k1: float = 1.5, b: float = 0.75, method: str = "lucene", stemmer: str = "english",
        stopwords: str = "en", threads: Optional[int] = None,
    ) -> None:
        from bm25s.scoring import _select_idf_scorer

        try:
            _select_idf_scorer(method)
        except ValueError as exc:
            raise ConfigError(f"--bm25-method: unknown variant {method!r}; use lucene, robertson, atire, bm25l or "
                              "bm25+") from exc
        self.tokenizer = make_tokenizer(stemmer, stopwords)
        self.analyzer = Analyzer(self.tokenizer)
        self.params = _Params(k1, b, method)
        self.settings = {"k1": k1, "b": b, "method": method, "stemmer": stemmer, "stopwords": stopwords,
                         "bm25s": _version("bm25s"), "format": INDEX_FORMAT}
        self.threads = max(1, threads or _cpus())
        self.n_docs = 0
        self._index: Optional[_Index] = None
        self._build_into: Optional[Path] = None
        self._local = threading.local()

    def tokenize(self, texts: Sequence[str]) -> list[list[str]]:
        """Texts as lists of tokens (what the index sees)."""
        return [self.analyzer.tokens(t) for t in texts]

    def cache_key(self, texts: Sequence[str]) -> str:
        """What the index of ``texts`` with these settings is stored under."""
        h = hashlib.sha256(json.dumps(self.settings, sort_keys=True).encode("utf-8"))
        for start in range(0, len(texts), HASH_BLOCK):  # digest_of(settings, text_hashes(texts)), block by block
            h.update(text_hashes(texts[start : start + HASH_BLOCK]).tobytes())
        return h.hexdigest()[:32]

    def is_cached(self, texts: Sequence[str], cache_dir: Path) -> bool:
        """Whether ``cache_dir`` holds the index of ``texts`` with these settings."""
        return (Path(cache_dir) / "bm25" / self.cache_key(texts) / "manifest.json").is_file()

    def describe(self) -> str:
        """The settings, as a person reads them."""
        return describe_settings(self.settings)

    def index(self, texts: Sequence[str], progress: Optional[Progress] = None,
              cache_dir: Optional[Path] = None) -> "BM25Retriever":
        """Build the index over ``texts`` (read by ``len`` and slices only); with ``cache_dir``, reuse (or store)
        the one built for the same texts and settings. The index is memory-mapped from its files."""
        progress = progress or Progress()
        self.n_docs = len(texts)
        if cache_dir is None:
            tmp = Path(tempfile.mkdtemp(prefix="negmine-bm25-"))
            try:
                self._build_into = tmp
                self._build(texts, progress)
                self._open(tmp)
            finally:  # the memory maps keep the files' contents
                shutil.rmtree(tmp, ignore_errors=True)
            return self
        built_now = False

        def build(folder: Path) -> None:
            nonlocal built_now
            self._build_into = folder
            self._build(texts, progress)
            built_now = True

        folder = cached_dir(Path(cache_dir), "bm25", self.cache_key(texts), build, {"settings": self.settings},
                            what=f"BM25 index of this corpus with these settings ({self.describe()})")
        if built_now:
            self._open(folder)
        else:
            with progress.stage("BM25: loading cached index"):
                self._open(folder)
        return self

    def _build(self, texts: Sequence[str], progress: Progress) -> None:
        assert self._build_into is not None
        build_index(texts, self._build_into, self.params, self.analyzer, progress)

    def _open(self, folder: Path) -> None:
        self._index = _Index(folder)
        self.n_docs = self._index.n_docs

    @property
    def _idx(self) -> _Index:
        if self._index is None:
            raise RuntimeError("BM25Retriever: call index() first")
        return self._index

    def term_ids(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Each text's indexed term ids, in order (repeats kept, tokens outside the vocabulary dropped)."""
        return self._ids_of_tokens([self.analyzer.tokens(t) for t in texts])

    def _ids_of_tokens(self, token_lists: Sequence[Sequence[str]]) -> list[np.ndarray]:
        distinct = list(dict.fromkeys(chain.from_iterable(token_lists)))
        found = self._idx.vocab.lookup(distinct)
        of = dict(zip(distinct, found.tolist()))
        out = []
        for tokens in token_lists:
            ids = np.fromiter((of[t] for t in tokens), dtype=np.int64, count=len(tokens))
            out.append(ids[ids >= 0])
        return out

    def scores(self, query: str) -> np.ndarray:
        """BM25 scores of one query against every document (an ``n_docs``-long vector: for small corpora; use
        ``pair_scores`` for a few documents)."""
        return self._idx.scores(self.term_ids([query])[0])

    def pair_scores(self, queries: Sequence[str], docs: Sequence[Sequence[int]]) -> list[np.ndarray]:
        """BM25 scores of given documents (corpus indices) for each query."""
        return self.pair_scores_ids(self.term_ids(queries), docs)

    def pair_scores_ids(self, term_ids: Sequence[np.ndarray], docs: Sequence[Sequence[int]]) -> list[np.ndarray]:
        """``pair_scores`` for queries given as term ids (``term_ids``): per query, a binary search of each
        document in each term's postings, O(terms x documents x log(postings)); no corpus-sized vector."""
        return [self._idx.pair_scores(np.asarray(ids, dtype=np.int64), np.asarray(d, dtype=np.int64))
                for ids, d in zip(term_ids, docs)]

    def search(self, queries: Sequence[str], k: int, progress: Optional[Progress] = None) -> Hits:
        """The top ``k`` documents of each query that share at least one term with it (ties to the lower index)."""
        progress = progress or Progress()
        hits = Hits.empty(len(queries), k)
        with progress.stage("BM25: retrieving", total=len(queries)) as advance, self._pool() as pool:
            for start in range(0, len(queries), QUERY_CHUNK):
                chunk = list(queries[start : start + QUERY_CHUNK])
                self._search_ids(self.term_ids(chunk), k, hits, start, pool)
                advance(len(chunk))
        return hits

    def search_tokens(self, queries: Sequence[Sequence[str]], k: int) -> Hits:
        """``search`` for queries already tokenized (by ``tokenize``)."""
        hits = Hits.empty(len(queries), k)
        with self._pool() as pool:
            for start in range(0, len(queries), QUERY_CHUNK):
                chunk = queries[start : start + QUERY_CHUNK]
                self._search_ids(self._ids_of_tokens(chunk), k, hits, start, pool)
        return hits

    def search_ids(self, term_ids: Sequence[np.ndarray], k: int) -> Hits:
        """``search`` for queries given as term ids (``term_ids``)."""
        hits = Hits.empty(len(term_ids), k)
        with self._pool() as pool:
            self._search_ids([np.asarray(i, dtype=np.int64) for i in term_ids], k, hits, 0, pool)
        return hits

    def _pool(self) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(self.threads, thread_name_prefix="negmine-bm25")

    def _search_ids(self, ids: list[np.ndarray], k: int, hits: Hits, offset: int, pool: ThreadPoolExecutor) -> None:
        """Fill rows ``offset ..`` of ``hits``: tasks of ``QUERY_TASK`` queries on the threads, each query scored
        alone (its result does not depend on the other queries, nor on the batching)."""
        index = self._idx

        def run(first: int) -> None:
            local = self._local
            if getattr(local, "acc", None) is None or local.acc.size != index.n_docs:
                local.acc = np.zeros(index.n_docs, dtype=np.float32)
                local.mask = np.zeros(index.n_docs, dtype=bool)
            for row in range(first, min(first + QUERY_TASK, len(ids))):
                idx, val = index.top(ids[row], k, local.acc, local.mask)
                hits.indices[offset + row, : idx.size] = idx
                hits.scores[offset + row, : idx.size] = val

        for _ in pool.map(run, range(0, len(ids), QUERY_TASK)):
            pass


def describe_settings(settings: dict) -> str:
    return " ".join(f"{k}={settings[k]}" for k in ("method", "k1", "b", "stemmer", "stopwords") if k in settings)


def cached_settings(cache_dir: Path) -> list[str]:
    """The settings of every BM25 index stored in ``cache_dir``, described."""
    out = []
    for manifest in sorted((Path(cache_dir) / "bm25").glob("*/manifest.json")):
        try:
            out.append(describe_settings(json.loads(manifest.read_text(encoding="utf-8"))["settings"]))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return out


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)
