"""The candidates' cosines to their query's positives (what the near-duplicate and positive-proximity rules read):
negmine's ``PositiveCosines`` against the per-pair loop it replaced (one matrix-vector product per candidate) and
against one vectorised cosine per pair (the floor: ``einsum`` over the gathered rows, a positive per pair), on
random unit vectors, in one process.

    python benchmarks/positive_cosines.py [--pairs 200000] [--dim 384] [--positives 1,3] [--repeats 3]

Prints microseconds per pair of each, the ratios, the largest difference of negmine's values from float64
cosines (and the loop's, for scale), and whether negmine's values are the same bits when the pairs are asked for
in one call or in many (the batch does not change a value).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from negmine.judges.vectors import PositiveCosines


class _Vectors:
    """The ``Vectors`` interface over in-memory matrices."""

    def __init__(self, queries: np.ndarray, docs: np.ndarray) -> None:
        self._q, self._d = queries, docs

    def queries(self, rows: np.ndarray) -> np.ndarray:
        return self._q[rows]

    def ensure(self, idx: np.ndarray) -> None:
        pass

    def docs(self, idx: np.ndarray) -> np.ndarray:
        return self._d[idx]


def _unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _loop(vectors: _Vectors, positives: list[list[int]], rows: np.ndarray, docs: np.ndarray) -> np.ndarray:
    """The per-pair loop negmine used before: each candidate's matrix-vector product with its positives."""
    pos = {q: vectors.docs(np.asarray(positives[q])) for q in set(rows.tolist())}
    dv = vectors.docs(docs)
    return np.array([float(np.max(pos[q] @ v)) for q, v in zip(rows.tolist(), dv)], dtype=np.float32)


def _floor(vectors: _Vectors, positives: list[list[int]], rows: np.ndarray, docs: np.ndarray) -> np.ndarray:
    """One vectorised cosine per pair (the first positive only): the least any way of doing it costs."""
    first = np.array([p[0] for p in positives])
    return np.einsum("ij,ij->i", vectors.docs(first[rows]), vectors.docs(docs))


def _timed(fn: Any, repeats: int) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeats):
        started = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - started)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=200_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--positives", default="1,3", help="the fewest and the most positives of a query")
    ap.add_argument("--queries", type=int, default=2_000)
    ap.add_argument("--docs", type=int, default=50_000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    low, high = (int(x) for x in args.positives.split(","))
    vectors = _Vectors(_unit(rng, args.queries, args.dim), _unit(rng, args.docs, args.dim))
    positives = [rng.choice(args.docs, int(rng.integers(low, high + 1)), replace=False).tolist()
                 for _ in range(args.queries)]
    rows = np.sort(rng.integers(0, args.queries, args.pairs))
    docs = rng.integers(0, args.docs, args.pairs)

    def negmine_values() -> np.ndarray:
        return PositiveCosines(vectors, positives).similarity.score(rows, docs)

    t_neg, ours = _timed(negmine_values, args.repeats)
    t_loop, loop = _timed(lambda: _loop(vectors, positives, rows, docs), args.repeats)
    t_floor, _ = _timed(lambda: _floor(vectors, positives, rows, docs), args.repeats)
    exact = np.array([max(float(np.dot(vectors.docs(np.array([p]))[0].astype(np.float64),
                                       vectors.docs(np.array([d]))[0].astype(np.float64))) for p in positives[q])
                      for q, d in zip(rows[:5000].tolist(), docs[:5000].tolist())])
    cosines = PositiveCosines(vectors, positives)
    pieces = np.concatenate([cosines.similarity.score(rows[s : s + 997], docs[s : s + 997])
                             for s in range(0, min(args.pairs, 20_000), 997)])
    per = 1e6 / args.pairs
    print(f"{args.pairs:,} pairs, dim {args.dim}, {low}-{high} positives per query")
    print(f"negmine PositiveCosines      {t_neg * per:7.3f} us/pair")
    print(f"per-pair loop (before)       {t_loop * per:7.3f} us/pair   negmine / loop  = {t_neg / t_loop:.3f}")
    print(f"one einsum cosine (floor)    {t_floor * per:7.3f} us/pair   negmine / floor = {t_neg / t_floor:.2f}")
    print(f"max |negmine - float64|      {np.max(np.abs(ours[:5000] - exact)):.2e}   "
          f"(loop: {np.max(np.abs(loop[:5000] - exact)):.2e})")
    print(f"same bits in one call and in calls of 997 pairs: {np.array_equal(pieces, ours[: len(pieces)])}")


if __name__ == "__main__":
    main()
