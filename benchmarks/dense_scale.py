"""Dense retrieval at MS MARCO scale on one machine: time and peak private memory of negmine's DenseRetriever over
given embeddings. Run by hand:

    python benchmarks/dense_scale.py [--sizes 100000,1000000,8841823] [--queries 50000] [--k 200]

For each corpus size, random unit vectors (384 dimensions, float32) are written block by block under
/tmp/negmine-dense-bench (13.5 GB at 8.8M documents), then one subprocess runs what a mining run does with
``--corpus-embeddings docs.npy --query-embeddings queries.npy``: read_embeddings (memory-mapped, norms checked),
DenseRetriever.prepare (the on-disk IVF build, for an approximate index), search in query batches (the first one
measures recall against exact search and picks nprobe), then a fresh retriever finding the built index again.
The parent samples the child's /proc/<pid>/status every 50 ms: peak RssAnon (private memory; memory-mapped file
pages do not count), VmHWM (peak resident, file pages included). ``--index`` is ``auto`` by default: exact search
up to 1M documents, an on-disk IVF4096,Flat index above.

``--data clustered`` (default) draws each vector around one of n/1000 random unit centres (cosine about 0.6 to its
centre), so that queries have true near neighbours as real embeddings do; ``--data uniform`` draws them uniformly
on the sphere, where an IVF index needs to probe most lists to find the (barely) nearest neighbours. ``--keep``
leaves the generated data; it is deleted at the end otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path("/tmp/negmine-dense-bench")
DIM = 384
BLOCK = 1 << 16


def unit_vectors(path: Path, n: int, seed: int, data: str, centres: np.ndarray) -> None:
    """``n`` unit vectors written to ``path`` block by block (never all in RAM)."""
    tmp = path.with_suffix(".part.npy")
    mm = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n, DIM))
    rng = np.random.default_rng(seed)
    for s in range(0, n, BLOCK):
        m = min(BLOCK, n - s)
        v = rng.standard_normal((m, DIM), dtype=np.float32)
        if data == "clustered":
            v *= 0.068  # |noise| about 1.33: cosine to the centre about 0.6
            v += centres[rng.integers(0, len(centres), m)]
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        mm[s : s + m] = v
    mm.flush()
    del mm
    os.replace(tmp, path)


def status(pid: int) -> dict[str, int]:
    out = {}
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                key, _, rest = line.partition(":")
                if key in ("RssAnon", "VmHWM", "RssFile"):
                    out[key] = int(rest.split()[0]) * 1024
    except OSError:
        pass
    return out


def run_child(args: list[str]) -> tuple[dict, dict[str, int]]:
    """Run this script's child mode; return its JSON result and the peaks of RssAnon / VmHWM / RssFile."""
    proc = subprocess.Popen([sys.executable, __file__, "--child", *args], stdout=subprocess.PIPE, text=True)
    peaks = {"RssAnon": 0, "VmHWM": 0, "RssFile": 0}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            for k, v in status(proc.pid).items():
                peaks[k] = max(peaks[k], v)
            time.sleep(0.05)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    stdout, _ = proc.communicate()
    done.set()
    t.join()
    if proc.returncode:
        raise SystemExit(f"child failed ({proc.returncode}): {' '.join(args)}")
    return json.loads(stdout.strip().splitlines()[-1]), peaks


def child(docs: Path, queries: Path, cache: Path, index: str, k: int, batch: int, check: int) -> None:
    """One mining run's dense part, timed; prints one JSON line."""
    from negmine.inputs.vectors import read_embeddings
    from negmine.retrieve.dense import DenseRetriever
    from negmine.retrieve.exact import exact_search

    result: dict = {}
    t = time.perf_counter()
    n = int(np.load(docs, mmap_mode="r").shape[0])
    vectors = read_embeddings(docs, range(n), "corpus", cache)
    nq = int(np.load(queries, mmap_mode="r").shape[0])
    qvecs = read_embeddings(queries, range(nq), "query", cache)
    result["read_s"] = time.perf_counter() - t
    result["in_place"] = isinstance(vectors, np.memmap) and Path(vectors.filename) == docs.resolve()
    r = DenseRetriever(None, cache, index, device="cpu").index([], vectors=vectors)
    t = time.perf_counter()
    r.prepare()
    result["build_s"] = time.perf_counter() - t
    hits = []
    t = time.perf_counter()
    for s in range(0, nq, batch):  # as the pipeline does: one search per query batch
        r.given_query_vectors = np.asarray(qvecs[s : s + batch])
        hits.append(r.search([""] * len(r.given_query_vectors), k).indices)
    result["search_s"] = time.perf_counter() - t
    result["report"] = r.search_report
    t = time.perf_counter()
    DenseRetriever(None, cache, index, device="cpu").index([], vectors=vectors).prepare()
    result["reopen_s"] = time.perf_counter() - t
    if check and r.factory() is not None:  # recall on more queries than the run's sample
        rows = np.random.default_rng(1).choice(nq, size=min(check, nq), replace=False)
        truth = exact_search(vectors, np.asarray(qvecs[np.sort(rows)]), k).indices
        found = np.concatenate(hits)[np.sort(rows)]
        result["recall_check"] = float(np.mean([len(np.intersect1d(f, g)) / len(g) for f, g in zip(found, truth)]))
        result["recall_check_queries"] = int(len(rows))
    print(json.dumps(result))


def gib(x: int) -> str:
    return f"{x / 2**30:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="100000,1000000,8841823")
    ap.add_argument("--queries", type=int, default=50_000)
    ap.add_argument("--k", type=int, default=200, help="the retrieval depth (range_max 200 by default)")
    ap.add_argument("--batch", type=int, default=8192, help="queries per search call")
    ap.add_argument("--index", default="auto")
    ap.add_argument("--data", choices=("clustered", "uniform"), default="clustered")
    ap.add_argument("--check", type=int, default=0, help="also measure ANN recall on this many queries")
    ap.add_argument("--keep", action="store_true", help="keep the generated data")
    ap.add_argument("--child", nargs=7, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        docs, queries, cache, index, k, batch, check = a.child
        child(Path(docs), Path(queries), Path(cache), index, int(k), int(batch), int(check))
        return
    ROOT.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # clean up when killed
    rows = []
    try:
        for n in [int(x) for x in a.sizes.split(",")]:
            centres = np.random.default_rng(n).standard_normal((max(1, n // 1000), DIM), dtype=np.float32)
            centres /= np.linalg.norm(centres, axis=1, keepdims=True)
            docs, queries = ROOT / f"docs-{n}-{a.data}.npy", ROOT / f"queries-{n}-{a.queries}-{a.data}.npy"
            t = time.perf_counter()
            if not docs.exists():
                unit_vectors(docs, n, 1, a.data, centres)
            if not queries.exists():
                unit_vectors(queries, a.queries, 2, a.data, centres)
            gen = time.perf_counter() - t
            cache = ROOT / f"cache-{n}"
            shutil.rmtree(cache, ignore_errors=True)
            res, peaks = run_child([str(docs), str(queries), str(cache), a.index, str(a.k), str(a.batch),
                                    str(a.check)])
            rep = res["report"] or {}
            row = {"documents": n, "index": rep.get("index"), "nprobe": rep.get("nprobe"),
                   "recall@k": rep.get("recall_at_k"), "tune_s": rep.get("seconds"), "build_s": res["build_s"],
                   "search_s": res["search_s"], "read_s": res["read_s"], "reopen_s": res["reopen_s"],
                   "rss_anon_gib": gib(peaks["RssAnon"]), "vm_hwm_gib": gib(peaks["VmHWM"]),
                   "recall_check": res.get("recall_check"), "in_place": res["in_place"], "generate_s": gen,
                   "tried": rep.get("tried")}
            rows.append(row)
            print(json.dumps(row), flush=True)
            shutil.rmtree(cache, ignore_errors=True)
    finally:
        if not a.keep:
            shutil.rmtree(ROOT, ignore_errors=True)
    print(f"\n{a.queries:,} queries, k={a.k}, {a.data} data, {DIM} dims, {os.cpu_count()} CPUs\n")
    print("| documents | index | nprobe | recall@k (100 sampled) | build s | search s | peak RssAnon GiB | "
          "peak VmHWM GiB |")
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['documents']:,} | {r['index']} | {r['nprobe'] or ''} | {r['recall@k']} | {r['build_s']:.0f} | "
              f"{r['search_s']:.0f} | {r['rss_anon_gib']} | {r['vm_hwm_gib']} |")


if __name__ == "__main__":
    main()
