"""Time and memory of mining at scale, on synthetic corpora, by hand:

    HF_HUB_OFFLINE=1 python benchmarks/scale.py [--sizes 100k 1M 8.8M] [--queries 50000] [--runs bm25 dense hybrid]
        [--work /tmp/negmine-scale] [--no-kill] [--keep]

Per size it generates (once, kept under --work) a corpus of documents of ~60 words drawn from a Zipf vocabulary of
100,000 made-up words, random unit vectors for them (384 dims, float32, written block by block), and a fixed set
of queries (6 words of one document each, that document their one positive; their vectors: the positive's plus
noise). Then it mines, each run in a process of its own, and prints wall time, time per stage, and peak private
memory (RssAnon of /proc/<pid>/status sampled every 50 ms: memory-mapped file pages do not count, the OS can drop
them; VmHWM, which counts them, beside it):

- ``bm25``: --retriever bm25, the rules that need a model off (lexical overlap on: it reads BM25);
- ``dense``: --retriever dense with --corpus-embeddings / --query-embeddings (faiss exact up to 1M documents, an
  on-disk IVF index above: --faiss-index auto), the BM25-based rules off;
- ``hybrid``: both retrievers fused, the default rules, given embeddings.

Targets: peak private memory <= 1.0 GiB at 1M documents for each run, <= 6 GiB at 8.8M, growth <= 0.5 GiB per
extra million documents. Unless --no-kill, the 1M bm25 run is then killed with SIGKILL at a random moment after at
least one query batch finished, run again, and checked: it must say it resumed, and its output must be
byte-identical to the uninterrupted run's.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np

SIZES = {"10k": 10_000, "100k": 100_000, "300k": 300_000, "1M": 1_000_000, "3M": 3_000_000, "8.8M": 8_841_823}
DIM = 384
WORDS = 100_000
BLOCK = 200_000
GiB = 1 << 30


# --- data --------------------------------------------------------------------------------------------------------

def vocabulary(rng: np.random.Generator) -> np.ndarray:
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    lengths = rng.integers(4, 10, WORDS)
    words = {"".join(rng.choice(letters, n)) for n in lengths}
    while len(words) < WORDS:
        words.add("".join(rng.choice(letters, 8)))
    return np.array(sorted(words)[:WORDS], dtype=object)


def generate(folder: Path, n_docs: int, n_queries: int, seed: int = 0) -> None:
    """Write corpus.parquet, queries.parquet, qrels.parquet, corpus.npy and queries.npy into ``folder``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if (folder / "done").exists():
        return
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    vocab = vocabulary(rng)
    positives = np.sort(rng.choice(n_docs, size=n_queries, replace=False))
    query_words: dict[int, str] = {}
    writer: Optional[pq.ParquetWriter] = None
    vectors = np.lib.format.open_memmap(folder / "corpus.npy", mode="w+", dtype=np.float32, shape=(n_docs, DIM))
    t = time.perf_counter()
    for start in range(0, n_docs, BLOCK):
        n = min(BLOCK, n_docs - start)
        lengths = rng.integers(40, 80, n)
        ranks = np.minimum(rng.zipf(1.15, int(lengths.sum())), WORDS) - 1
        words = vocab[ranks]
        bounds = np.concatenate([[0], np.cumsum(lengths)])
        texts = [" ".join(words[bounds[i] : bounds[i + 1]]) for i in range(n)]
        for d in positives[(positives >= start) & (positives < start + n)]:
            own = words[bounds[d - start] : bounds[d - start + 1]]
            query_words[int(d)] = " ".join(rng.choice(own, 6, replace=False))
        table = pa.table({"_id": [f"d{start + i}" for i in range(n)], "text": texts})
        writer = writer or pq.ParquetWriter(folder / "corpus.parquet", table.schema, compression="zstd")
        writer.write_table(table)
        block = rng.standard_normal((n, DIM)).astype(np.float32)
        vectors[start : start + n] = block / np.linalg.norm(block, axis=1, keepdims=True)
        print(f"  generated {start + n:,} / {n_docs:,} documents ({time.perf_counter() - t:.0f} s)", flush=True)
    assert writer is not None
    writer.close()
    qids = [f"q{i}" for i in range(n_queries)]
    pq.write_table(pa.table({"_id": qids, "text": [query_words[int(d)] for d in positives]}),
                   folder / "queries.parquet")
    pq.write_table(pa.table({"query-id": qids, "corpus-id": [f"d{d}" for d in positives], "score": [1] * n_queries}),
                   folder / "qrels.parquet")
    noisy = np.asarray(vectors[positives]) + 0.8 * rng.standard_normal((n_queries, DIM)).astype(np.float32) / DIM ** .5
    np.save(folder / "queries.npy", (noisy / np.linalg.norm(noisy, axis=1, keepdims=True)).astype(np.float32))
    vectors.flush()
    del vectors
    (folder / "done").write_text("ok")


# --- runs ------------------------------------------------------------------------------------------------------------

RUNS: dict[str, list[str]] = {
    "bm25": ["--retriever", "bm25", "--max-positive-similarity", "none", "--no-agreement", "--cross-query", "none"],
    "dense": ["--retriever", "dense", "--lexical-overlap", "none", "--no-agreement", "--faiss-index", "auto"],
    "hybrid": ["--retriever", "hybrid", "--faiss-index", "auto"],
}


def options(run: str) -> dict[str, Any]:
    """The run's flags as negmine.mine options."""
    out: dict[str, Any] = {}
    flags = RUNS[run]
    i = 0
    while i < len(flags):
        name = flags[i][2:].replace("-", "_")
        if name.startswith("no_"):
            out[name[3:]] = False
            i += 1
            continue
        value: Any = flags[i + 1]
        out[name] = None if value == "none" else value
        i += 2
    return out


def _driver(data: str, run: str, out: str, cache: str) -> None:
    """The mining process: one negmine.mine run, its seconds and warnings printed as JSON on the last line."""
    import negmine

    folder = Path(data)
    extra: dict[str, Any] = {}
    if run != "bm25":
        extra = {"corpus_embeddings": folder / "corpus.npy", "query_embeddings": folder / "queries.npy"}
    result = negmine.mine(folder / "corpus.parquet", folder / "queries.parquet", folder / "qrels.parquet",
                          output=out, cache_dir=cache, **extra, **options(run))
    print(json.dumps({"seconds": result.seconds, "warnings": result.warnings,
                      "negatives": result.stats.negatives_written}))


class Peak:
    """Samples a process's RssAnon and VmHWM every 50 ms while it runs."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.rss_anon = 0
        self.hwm = 0
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def _sample(self) -> None:
        path = Path(f"/proc/{self.pid}/status")
        while True:
            try:
                status = path.read_text()
            except OSError:
                return
            for line in status.splitlines():
                if line.startswith("RssAnon:"):
                    self.rss_anon = max(self.rss_anon, int(line.split()[1]) * 1024)
                elif line.startswith("VmHWM:"):
                    self.hwm = max(self.hwm, int(line.split()[1]) * 1024)
            time.sleep(0.05)


def mine_once(data: Path, run: str, out: Path, cache: Path, kill_after_batches: Optional[int] = None,
              seed: int = 0) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "_run", str(data), run, str(out), str(cache)]
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    peak = Peak(proc.pid)
    if kill_after_batches is not None:
        runs = cache / "runs"
        while proc.poll() is None and len(list(runs.glob("*/batch-*.npz"))) < kill_after_batches:
            time.sleep(0.2)
        time.sleep(random.Random(seed).uniform(0, 5))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait()
        return {"killed": proc.returncode == -signal.SIGKILL,
                "batches_kept": len(list(runs.glob("*/batch-*.npz")))}
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"{run} on {data.name} failed ({proc.returncode}):\n{stderr[-3000:]}")
    report = json.loads(stdout.strip().splitlines()[-1])
    return {"wall": wall, "rss_anon": peak.rss_anon, "hwm": peak.hwm, **report}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="+", default=["100k", "1M"], choices=list(SIZES))
    ap.add_argument("--queries", type=int, default=50_000)
    ap.add_argument("--runs", nargs="+", default=list(RUNS), choices=list(RUNS))
    ap.add_argument("--work", type=Path, default=Path("/tmp/negmine-scale"))
    ap.add_argument("--no-kill", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the generated data and caches")
    args = ap.parse_args()
    rows = []
    for size in args.sizes:
        n = SIZES[size]
        data = args.work / f"data-{size}"
        print(f"{size}: generating {n:,} documents and {args.queries:,} queries in {data} ...", flush=True)
        generate(data, n, args.queries)
        for run in args.runs:
            out = args.work / f"out-{size}-{run}.parquet"
            print(f"{size} {run}: mining ...", flush=True)
            r = mine_once(data, run, out, args.work / f"cache-{size}")
            rows.append((size, run, r))
            stages = ", ".join(f"{k} {v:.0f} s" for k, v in r["seconds"].items() if k != "mine")
            print(f"  wall {r['wall']:.0f} s; peak private {r['rss_anon'] / GiB:.2f} GiB (VmHWM {r['hwm'] / GiB:.2f} "
                  f"GiB); {r['negatives']:,} negatives; {stages}", flush=True)
            for w in r["warnings"]:
                print(f"  warning: {w}")
        if size == "1M" and "bm25" in args.runs and not args.no_kill:
            print("1M bm25: kill -9 after at least one finished batch, then run again ...", flush=True)
            out = args.work / "out-1M-bm25-killed.parquet"
            cache = args.work / "cache-1M"
            killed = mine_once(data, "bm25", out, cache, kill_after_batches=1, seed=7)
            again = mine_once(data, "bm25", out, cache)
            resumed = [w for w in again["warnings"] if w.startswith("resuming")]
            same = out.read_bytes() == (args.work / "out-1M-bm25.parquet").read_bytes()
            print(f"  killed: {killed['killed']} with {killed['batches_kept']} batches kept; rerun: "
                  f"{resumed[0] if resumed else 'did NOT resume'}; output identical to the uninterrupted run: {same}")
    print("\n| documents | run | wall | peak private (RssAnon) | VmHWM |")
    print("| --- | --- | --- | --- | --- |")
    for size, run, r in rows:
        print(f"| {size} | {run} | {r['wall']:.0f} s | {r['rss_anon'] / GiB:.2f} GiB | {r['hwm'] / GiB:.2f} GiB |")
    by_run: dict[str, dict[str, float]] = {}
    for size, run, r in rows:
        by_run.setdefault(run, {})[size] = r["rss_anon"] / GiB
    for run, peaks in by_run.items():
        verdicts = []
        if "1M" in peaks:
            verdicts.append(f"1M <= 1.0 GiB: {'met' if peaks['1M'] <= 1.0 else 'NOT met'} ({peaks['1M']:.2f})")
        if "8.8M" in peaks:
            verdicts.append(f"8.8M <= 6 GiB: {'met' if peaks['8.8M'] <= 6.0 else 'NOT met'} ({peaks['8.8M']:.2f})")
        sizes = sorted(peaks, key=lambda s: SIZES[s])
        if len(sizes) > 1:
            a, b = sizes[0], sizes[-1]
            growth = (peaks[b] - peaks[a]) / ((SIZES[b] - SIZES[a]) / 1e6)
            verdicts.append(f"growth <= 0.5 GiB per million: {'met' if growth <= 0.5 else 'NOT met'} "
                            f"({growth:.2f})")
        print(f"{run}: " + "; ".join(verdicts))
    if not args.keep:
        shutil.rmtree(args.work, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_run":
        _driver(*sys.argv[2:6])
    else:
        main()
