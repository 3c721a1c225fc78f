"""Searching a BM25 index: the scores of a query over its terms' postings, exact top-k (or top-k pruned by each
term's upper bound when the postings are long), and the scores of given documents."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Optional

import numpy as np

from negmine.retrieve.base import topk
from negmine.retrieve.bm25_tokens import Vocabulary, _load, _unique_sorted

#: (term, document) pairs scored at a time while building.
SCORE_BLOCK = 1 << 19

#: Search skips documents that cannot reach a query's top k (``PostingsIndex._top_pruned``) for queries of at most this
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


class PostingsIndex:
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
        theta = self._theta(ids, distinct, df, total, k, acc, mask)
        if theta is None:
            return None

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
        found = self._reaching(found, partial, theta, rest[:n_rest], distinct[by_bound[:n_rest]],
                               mult[by_bound[:n_rest]], c, k, acc)
        if found.size < k:  # cannot happen (k documents reach theta); were a bound wrong, rank them all
            return None

        # 4. exact scores of the survivors
        scores = self.pair_scores(ids, found, acc)
        idx, val = topk(scores, k)
        return found[idx], val

    def _theta(self, ids: np.ndarray, distinct: np.ndarray, df: np.ndarray, total: int, k: int, acc: np.ndarray,
               mask: np.ndarray) -> Optional[float]:
        """Step 1 of ``_top_pruned``: the k-th best exact score among the documents of the rarest terms that score
        best on those terms alone; ``None`` where those documents are too many to save work."""
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
        return float(np.partition(exact, n_best - k)[n_best - k])  # k documents score at least this

    def _reaching(self, found: np.ndarray, partial: np.ndarray, theta: float, rest: np.ndarray, terms: np.ndarray,
                  mult: np.ndarray, c: float, k: int, acc: np.ndarray) -> np.ndarray:
        """Step 3 of ``_top_pruned``: the candidates that can still reach theta, after adding the non-essential
        ``terms`` (smallest bound first; ``rest[i]``: the bounds of ``terms[: i + 1]``) from the largest bound down."""
        up = 1.0 + PRUNE_MARGIN
        for i in range(terms.size - 1, -1, -1):
            keep = ((partial * up + rest[i]) * up + c) * up >= theta
            found, partial = found[keep], partial[keep]
            if found.size == 0:
                break
            if found.size >= k:  # the k-th best lower bound of the final scores is a lower bound of the k-th
                low = np.partition(partial, found.size - k)[found.size - k]
                theta = max(theta, (low / up + c) / up)
            post, vals = self.postings(int(terms[i]))
            gain = np.zeros(found.size, dtype=np.float64)
            if found.size * 16 < post.size:  # few candidates: binary search them
                pos = np.minimum(np.searchsorted(post, found.astype(np.int32)), post.size - 1)
                hit = post[pos] == found
                gain[hit] = vals[pos[hit]]
            else:  # many: spread the postings over the accumulator and read the candidates' cells
                acc[post] = vals
                gain[:] = acc[found]
                acc[post] = 0
            partial += gain * mult[i]
        return found[((partial * up) + c) * up >= theta]
