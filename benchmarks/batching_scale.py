"""Composing training batches at scale: time and peak memory of negmine.batching.compose_batches on synthetic rows,
against the floor of a random permutation cut into batches (what the trainer does by default).

    python benchmarks/batching_scale.py [--rows 100k 1M] [--dim 384] [--batch-size 32] [--negatives]
        [--query-noise 1.0] [--positive-noise 0.5]

Rows: one per query (query ids q0.., one known positive each, 3 mined negatives drawn from 10x as many documents),
anchors and positives as float32 vectors of ``--dim`` dimensions around 1,000 topic centres (a positive near its
query's centre; ``--query-noise`` and ``--positive-noise`` set how far each lies from it), so that the k-means has
clusters to find and the clean rules have conflicts to resolve: with the defaults a topic's positives are nearer
each other than to their queries, so positive proximity keeps a topic's rows apart (clean, not hard); with
``--query-noise 0.5 --positive-noise 1.0`` they are not, and a topic's rows share batches. Each size
runs in a fresh process; peak private memory is its RssAnon high-water mark sampled every 50 ms, the vectors'
own size printed beside it. ``--negatives`` gives the negatives' vectors too (3 more vectors per row). ``sim``: the
mean cosine of an anchor with the other rows' positives in its batch (how hard the batches are), beside ``random``:
the same for random batches of the same rows.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import numpy as np
from bm25_scale import PeakMemory, _size


def child(n: int, dim: int, size: int, with_negatives: bool, query_noise: float = 1.0,
          positive_noise: float = 0.5) -> dict:
    from negmine.batching.compose import compose_batches, in_batch_similarity, random_batches

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(1000, dim)).astype(np.float32)
    topic = rng.integers(0, 1000, size=n)
    anchors = centres[topic] + rng.normal(scale=query_noise, size=(n, dim)).astype(np.float32)
    positives = centres[topic] + rng.normal(scale=positive_noise, size=(n, dim)).astype(np.float32)
    queries = [f"q{i}" for i in range(n)]
    pos_ids = [f"d{i}" for i in range(n)]
    neg = rng.integers(0, 10 * n, size=(n, 3))
    negatives = [[f"d{j}" for j in row] for row in neg.tolist()]
    known = {q: {p} for q, p in zip(queries, pos_ids)}
    neg_vectors = (centres[topic][:, None, :] + rng.normal(size=(n, 3, dim)).astype(np.float32)
                   if with_negatives else None)
    vectors_bytes = anchors.nbytes + positives.nbytes + (neg_vectors.nbytes if neg_vectors is not None else 0)
    base = PeakMemory.now()
    memory = PeakMemory()
    t = time.perf_counter()
    np.argsort(rng.permutation(n)) // size  # the floor: random batches
    floor = time.perf_counter() - t
    t = time.perf_counter()
    c = compose_batches(anchors, queries, pos_ids, negatives, known, size, seed=1, positive_vectors=positives,
                        negative_vectors=neg_vectors)
    secs = time.perf_counter() - t
    peak = memory.reset()
    memory.stop()
    hardness = in_batch_similarity(anchors, positives, c.batch_of_rows())
    floor_hardness = in_batch_similarity(anchors, positives, random_batches(n, size, 1))
    return {"rows": n, "seconds": secs, "floor_seconds": floor, "peak_mib": (peak - base) / 2**20,
            "base_mib": base / 2**20, "vectors_mib": vectors_bytes / 2**20, "batches": c.batches, "short": c.short,
            "moved": c.moved, "relaxed": c.relaxed, "conflicts": dict(c.conflicts), "similarity": hardness,
            "random_similarity": floor_hardness}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", nargs="+", default=["100k", "1M"])
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--negatives", action="store_true")
    ap.add_argument("--query-noise", type=float, default=1.0)
    ap.add_argument("--positive-noise", type=float, default=0.5)
    ap.add_argument("--child", type=int, default=None)
    a = ap.parse_args()
    if a.child is not None:
        print(json.dumps(child(a.child, a.dim, a.batch_size, a.negatives, a.query_noise, a.positive_noise)))
        return
    print(f"{'rows':>10} {'compose s':>10} {'random s':>9} {'peak MiB':>9} {'vectors MiB':>12} {'batches':>9} "
          f"{'short':>6} {'moved':>8} {'relaxed':>8} {'sim':>6} {'random':>6}")
    for n in map(_size, a.rows):
        cmd = [sys.executable, __file__, "--child", str(n), "--dim", str(a.dim), "--batch-size", str(a.batch_size),
               "--query-noise", str(a.query_noise), "--positive-noise", str(a.positive_noise)]
        done = subprocess.run(cmd + (["--negatives"] if a.negatives else []), capture_output=True, text=True)
        if done.returncode:
            why = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode
            print(f"{n:>10,} failed: {why}")
            continue
        r = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"{n:>10,} {r['seconds']:>10.1f} {r['floor_seconds']:>9.2f} {r['peak_mib']:>9.0f} "
              f"{r['vectors_mib']:>12.0f} {r['batches']:>9,} {r['short']:>6} {r['moved']:>8,} {r['relaxed']:>8,} "
              f"{r['similarity']:>6.3f} {r['random_similarity']:>6.3f}  "
              f"{r['conflicts']}")


if __name__ == "__main__":
    main()
