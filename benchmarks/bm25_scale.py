"""BM25 at scale: negmine's on-disk engine against bm25s's own index()/retrieve(), side by side on synthetic corpora.

    python benchmarks/bm25_scale.py [--sizes 100k 300k 1M] [--bm25s-max 300k] [--k 100] [--method lucene]
    python benchmarks/bm25_scale.py --sizes 300k --tokenizers words ngrams:2 model [--script cjk]

Each corpus has documents of about 60 words (40-80) drawn from a Zipf distribution (exponent 1.0) over 100,000
made-up words, and one query of about 6 words (3-9, same distribution) per 100 documents; everything comes from
a fixed seed. A corpus is written once as an Arrow IPC file under /tmp/negmine-bm25-bench and read memory-mapped,
10,000 rows at a time, so the texts never sit in private memory (as negmine reads a Parquet corpus).

Each engine runs in a fresh subprocess per size, so its peaks are its own. Per size and engine it prints the build
time (tokenizing included), the search time per query on all cores (wall clock, and CPU time of all threads: on a
shared machine the CPU time drifts less), the peak private memory (RssAnon, sampled
every 50 ms; memory-mapped file pages do not count) during the build and during the search, and the index size on
disk. bm25s runs where it fits (``--bm25s-max``): its index() holds every token id in Python lists and builds the
whole score matrix in memory. It runs as negmine 0.1 used it (bm25s's Tokenizer over the whole list of texts,
``index``, then ``retrieve`` with ``n_threads`` = the CPUs); the two top-10 lists are compared on the first 200
queries. The generated data is deleted at the end unless ``--keep``.

``--tokenizers`` runs negmine once per ``--bm25-tokenizer`` (bm25s with ``words`` only). ``--script cjk`` writes the
same corpus in an unspaced script: each made-up word spelled as 2-3 characters of a pool of 3,000 CJK characters, the
words of a sentence joined without spaces, a "。" every 8 words (what ``ngrams`` is for; ``model`` reads it with
the embedded model's tokenizer, whose vocabulary holds a part of those characters).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

ROOT = Path("/tmp/negmine-bm25-bench")
VOCAB = 100_000
SEED = 12345


# --- data ----------------------------------------------------------------------------------------------------------


def _size(text: str) -> int:
    t = text.lower().replace("_", "")
    mult = {"k": 1_000, "m": 1_000_000}.get(t[-1], 1)
    return int(float(t[:-1] if t[-1] in "km" else t) * mult)


def _words(rng: np.random.Generator) -> np.ndarray:
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    out: dict[str, None] = {}
    while len(out) < VOCAB:
        for n in rng.integers(4, 11, size=VOCAB):
            out.setdefault("".join(rng.choice(letters, size=n)), None)
            if len(out) == VOCAB:
                break
    return np.array(list(out))


def _texts(rng: np.random.Generator, words: np.ndarray, cdf: np.ndarray, n: int, lo: int, hi: int) -> list[str]:
    lengths = rng.integers(lo, hi + 1, size=n)
    picks = words[np.searchsorted(cdf, rng.random(int(lengths.sum())), side="right")]
    ends = np.cumsum(lengths)
    return [" ".join(picks[e - n_ : e]) for e, n_ in zip(ends.tolist(), lengths.tolist())]


def _cjk(words: np.ndarray) -> Any:
    """A speller of texts in CJK characters: each made-up word as 2-3 characters of a pool of 3,000 (a seeded
    pick), the words of a sentence joined without spaces, a "。" every 8 words."""
    rng = np.random.default_rng(SEED + 1)
    pool = [chr(0x4E00 + 7 * i) for i in range(3000)]
    spelled = {w: "".join(pool[j] for j in rng.integers(0, len(pool), size=int(rng.integers(2, 4))))
               for w in words.tolist()}

    def spell(texts: list[str]) -> list[str]:
        out = []
        for text in texts:
            parts = [spelled[w] for w in text.split()]
            out.append("。".join("".join(parts[i : i + 8]) for i in range(0, len(parts), 8)) + "。")
        return out

    return spell


def generate(n_docs: int, script: str = "latin") -> Path:
    """``ROOT/<n>[.cjk].arrow`` (column ``text``) and its ``.queries.json``, generated once."""
    import pyarrow as pa

    path = ROOT / (f"{n_docs}.arrow" if script == "latin" else f"{n_docs}.{script}.arrow")
    if path.is_file() and path.with_suffix(".queries.json").is_file():
        return path
    ROOT.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)
    words = _words(rng)
    spell = _cjk(words) if script == "cjk" else (lambda texts: texts)
    p = 1.0 / np.arange(1, VOCAB + 1)
    cdf = np.cumsum(p / p.sum())
    cdf[-1] = 1.0
    schema = pa.schema([("text", pa.string())])
    tmp = path.with_suffix(".tmp")
    with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, schema) as writer:
        for start in range(0, n_docs, 50_000):
            batch = spell(_texts(rng, words, cdf, min(50_000, n_docs - start), 40, 80))
            writer.write_batch(pa.record_batch([pa.array(batch, pa.string())], schema=schema))
    os.replace(tmp, path)
    queries = spell(_texts(rng, words, cdf, max(1, n_docs // 100), 3, 9))
    path.with_suffix(".queries.json").write_text(json.dumps(queries))
    return path


class ArrowTexts(Sequence[str]):
    """The ``text`` column of an Arrow IPC file, memory-mapped; slices become lists."""

    def __init__(self, path: Path) -> None:
        import pyarrow as pa

        self.column = pa.ipc.open_file(pa.memory_map(str(path))).read_all().column("text")

    def __len__(self) -> int:
        return len(self.column)

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            start, stop, _ = i.indices(len(self))
            return self.column.slice(start, max(0, stop - start)).to_pylist()
        return self.column[i].as_py()

    def __iter__(self) -> Iterator[str]:
        for start in range(0, len(self), 10_000):
            yield from self[start : start + 10_000]


# --- measuring -------------------------------------------------------------------------------------------------------


class PeakMemory:
    """The highest RssAnon (private resident memory) of this process, sampled every 50 ms in a thread."""

    def __init__(self) -> None:
        self.peak = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @staticmethod
    def now() -> int:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) * 1024
        return 0

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                self.peak = max(self.peak, self.now())
            self._stop.wait(0.05)

    def reset(self) -> int:
        """The peak so far (including now); then start again from the current value."""
        with self._lock:
            peak = max(self.peak, self.now())
            self.peak = self.now()
        return peak

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def _dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def run_negmine(path: Path, k: int, method: str, tokenizer: str = "words") -> dict:
    from negmine.retrieve.bm25 import BM25Retriever

    mem = PeakMemory()
    texts = ArrowTexts(path)
    queries = json.loads(path.with_suffix(".queries.json").read_text())
    cache = ROOT / "cache"
    shutil.rmtree(cache, ignore_errors=True)
    base = mem.reset()
    t = time.perf_counter()
    r = BM25Retriever(method=method, tokenizer=tokenizer).index(texts, cache_dir=cache)
    build = time.perf_counter() - t
    build_peak = mem.reset()
    t, cpu = time.perf_counter(), time.process_time()
    hits = r.search(queries, k)
    search, search_cpu = time.perf_counter() - t, time.process_time() - cpu
    search_peak = mem.reset()
    t = time.perf_counter()
    r2 = BM25Retriever(method=method, tokenizer=tokenizer).index(texts, cache_dir=cache)
    load = time.perf_counter() - t
    del r2
    mem.stop()
    np.save(ROOT / "negmine-hits.npy", hits.indices[:200])
    np.save(ROOT / "negmine-scores.npy", hits.scores[:200])
    return {"build_s": build, "search_ms": 1000 * search / len(queries), "load_s": load,
            "search_cpu_ms": 1000 * search_cpu / len(queries),
            "build_peak": build_peak, "search_peak": search_peak, "base": base,
            "disk": _dir_size(cache / "bm25"), "threads": r.threads, "vocab": r._idx.meta["terms"],
            "postings": r._idx.meta["postings"]}


def run_bm25s(path: Path, k: int, method: str) -> dict:
    import bm25s

    from negmine.retrieve.bm25 import BM25Retriever, _cpus

    mem = PeakMemory()
    texts = ArrowTexts(path)
    queries = json.loads(path.with_suffix(".queries.json").read_text())
    base = mem.reset()
    tokenizer = BM25Retriever().tokenizer  # the same tokenizer negmine 0.1 built the index with
    t = time.perf_counter()
    tokens = tokenizer.tokenize(list(texts), return_as="string", show_progress=False, update_vocab=True)
    tokens = [[w for w in doc if w] for doc in tokens]
    model = bm25s.BM25(method=method)
    model.index(tokens, show_progress=False, create_empty_token=False)
    del tokens
    build = time.perf_counter() - t
    build_peak = mem.reset()
    folder = ROOT / "bm25s-index"
    model.save(str(folder), show_progress=False)
    t, cpu = time.perf_counter(), time.process_time()
    q_tokens = [[w for w in q if w] or [""] for q in
                tokenizer.tokenize(queries, return_as="string", show_progress=False, update_vocab=True)]
    known = [[w for w in q if w in model.vocab_dict] for q in q_tokens]
    have = [i for i, q in enumerate(known) if q]
    found, scores = model.retrieve([known[i] for i in have], k=min(k, len(texts)), show_progress=False,
                                   n_threads=_cpus(), return_as="tuple")
    search, search_cpu = time.perf_counter() - t, time.process_time() - cpu
    search_peak = mem.reset()
    mem.stop()
    out = np.full((len(queries), k), -1, dtype=np.int64)
    out[have, : found.shape[1]] = found
    out_scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
    out_scores[have, : found.shape[1]] = scores
    np.save(ROOT / "bm25s-hits.npy", out[:200])
    np.save(ROOT / "bm25s-scores.npy", out_scores[:200])
    size = _dir_size(folder)
    shutil.rmtree(folder, ignore_errors=True)
    return {"build_s": build, "search_ms": 1000 * search / len(queries),
            "search_cpu_ms": 1000 * search_cpu / len(queries), "build_peak": build_peak,
            "search_peak": search_peak, "base": base, "disk": size}


# --- driver ----------------------------------------------------------------------------------------------------------


def _child(engine: str, n: int, k: int, method: str, tokenizer: str = "words", script: str = "latin") -> dict:
    cmd = [sys.executable, __file__, "--child", engine, "--sizes", str(n), "--k", str(k), "--method", method,
           "--tokenizers", tokenizer, "--script", script]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["exit %d" % done.returncode])[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _same_top10() -> str:
    """On the first 200 queries: how many top-10 lists have the same scores (relative 1e-6) and the same documents
    (bm25s orders tied scores its own way, so a tie across the 10th place may swap documents)."""
    a, b = np.load(ROOT / "negmine-hits.npy"), np.load(ROOT / "bm25s-hits.npy")
    sa, sb = np.load(ROOT / "negmine-scores.npy"), np.load(ROOT / "bm25s-scores.npy")
    scores = docs = 0
    for x, y, u, v in zip(a, b, sa, sb):
        scores += int(np.allclose(u[:10], v[:10], rtol=1e-6, atol=0))
        docs += int(set(x[:10].tolist()) == set(y[:10].tolist()))
    return f"same top-10 scores {scores}/{len(a)}, documents {docs}/{len(a)}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="+", default=["100k", "300k", "1M"])
    ap.add_argument("--bm25s-max", default="300k", help="largest corpus bm25s is run on")
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--method", default="lucene")
    ap.add_argument("--keep", action="store_true", help="keep the generated corpora")
    ap.add_argument("--tokenizers", nargs="+", default=["words"], help="negmine's --bm25-tokenizer, one run each")
    ap.add_argument("--script", default="latin", choices=["latin", "cjk"])
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        n = _size(args.sizes[0])
        path = generate(n, args.script)
        res = run_negmine(path, args.k, args.method, args.tokenizers[0]) if args.child == "negmine" else \
            run_bm25s(path, args.k, args.method)
        print(json.dumps(res))
        return
    mib = 1 << 20
    rows = []
    try:
        for size in args.sizes:
            n = _size(size)
            t = time.perf_counter()
            generate(n, args.script)
            print(f"{n:,} documents ({args.script}), {max(1, n // 100):,} queries: generated in "
                  f"{time.perf_counter() - t:.0f} s", file=sys.stderr)
            for tokenizer in args.tokenizers:
                ours = _child("negmine", n, args.k, args.method, tokenizer, args.script)
                ours["tokenizer"] = tokenizer
                theirs = _child("bm25s", n, args.k, args.method, script=args.script) \
                    if n <= _size(args.bm25s_max) and tokenizer == "words" else None
                rows.append((n, ours, theirs, _same_top10() if theirs and "error" not in theirs else "-"))
                print(f"  negmine {json.dumps(ours)}\n  bm25s   {json.dumps(theirs)}", file=sys.stderr)
    finally:
        if not args.keep:
            shutil.rmtree(ROOT, ignore_errors=True)
    print(f"method={args.method} k={args.k} threads={rows[0][1].get('threads', '?') if rows else '?'}")
    print(f"{'docs':>10} {'engine':<8} {'build s':>8} {'search ms/q':>11} {'cpu ms/q':>8} {'build MiB':>9} "
          f"{'search MiB':>10} {'disk MiB':>9}  notes")
    for n, ours, theirs, same in rows:
        for name, r in (("negmine", ours), ("bm25s", theirs)):
            if r is None:
                continue
            if "error" in r:
                print(f"{n:>10,} {name:<8} failed: {r['error']}")
                continue
            note = (f"--bm25-tokenizer {r['tokenizer']}: vocab {r['vocab']:,}, postings {r['postings']:,}, load "
                    f"{r['load_s']:.1f} s" if name == "negmine" else same)
            print(f"{n:>10,} {name:<8} {r['build_s']:>8.1f} {r['search_ms']:>11.2f} {r['search_cpu_ms']:>8.2f} "
                  f"{r['build_peak'] / mib:>9.0f} {r['search_peak'] / mib:>10.0f} {r['disk'] / mib:>9.0f}  {note}")
        if theirs and "error" not in theirs and "error" not in ours:
            ratio = {key: theirs[key] / ours[key] for key in ("build_s", "search_ms", "search_cpu_ms", "build_peak",
                                                               "search_peak", "disk")}
            print(f"{'':>10} {'ratio':<8} {ratio['build_s']:>7.1f}x {ratio['search_ms']:>10.1f}x "
                  f"{ratio['search_cpu_ms']:>7.1f}x {ratio['build_peak']:>8.1f}x {ratio['search_peak']:>9.1f}x "
                  f"{ratio['disk']:>8.1f}x  (bm25s / negmine)")


if __name__ == "__main__":
    main()
