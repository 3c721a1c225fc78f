"""Faults, by hand: many processes mining on one cache, kill -9 at random points of a cold run, readers of stdout
that stop early, and runs that fail or are killed part-way (what is left to resume).

    HF_HUB_OFFLINE=1 python benchmarks/faults.py parallel [--workers 4] [--runs 500] [--fake]
    HF_HUB_OFFLINE=1 python benchmarks/faults.py kill [--kills 5] [--seed 0]
    HF_HUB_OFFLINE=1 python benchmarks/faults.py pipe [--trials 30] [--seed 0]
    HF_HUB_OFFLINE=1 python benchmarks/faults.py stale [--runs 10]

``parallel``: every run mines a Cranfield slice (300 documents, 20 queries) with documents of its own (4 edited
texts, so the cache keeps gaining segments and merging them) or the slice everyone shares. Each variant is mined
once in a fresh cache by one process first; then ``--workers`` processes mine all variants at once on one shared
cache (each variant twice, by two different processes). Prints the failures (target: 0) and how many outputs
differ from the one-process output (target: 0). ``--fake`` embeds with the tests' fake encoder (no model: faster).

``kill``: an uninterrupted cold run of the whole of Cranfield (1,400 documents, 225 queries) gives the reference
output and time; then, ``--kills`` times, a cold run in a fresh cache is killed with SIGKILL at a random moment of
its encoding and run again to the end. Per kill it prints the texts encoded before the kill (from progress lines
every 0.5 s), the texts committed to the cache, the texts the rerun encoded, the texts encoded twice (encoded
before the kill but not committed: target at most one commit, cache.COMMIT_ROWS texts or COMMIT_SECONDS of
work), and whether the rerun's output is byte-identical to the reference (target: every time).

``pipe``: ``negmine mine -o -`` of the whole of Cranfield (a warm cache) into a reader that takes a random number of
lines (0 to all but one) and closes the pipe, with a random ``--query-batch-size`` (1, 8, 64 or 1,024), ``--trials``
times; then once into a reader of everything. Prints per trial the exit code, whether stderr held a traceback or a
summary, and the verdict: every stopped reader gives exit 141 and one error line, with no traceback and no summary
(target: every time), the full reader exit 0 with every row.

``stale``: ``--runs`` Cranfield mines (``--query-batch-size 16``) that fail on their own terms, alternately an empty
result refused (``--min-score 2``) and a reader of ``-o -`` that stops, each followed by the run that succeeds;
counts the run folders left in the cache after each failure and the reruns that said "resuming" (target: 0 and 0);
then a run killed (SIGKILL) after its first batches, whose rerun must resume, and ``negmine cache prune --part runs``
of a run killed and never rerun.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from common import DATASETS

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent / "tests"


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- parallel ----------------------------------------------------------------------------------------------------

def _mine_jobs(jobs_file: str, fake: bool) -> None:
    """A worker: mine every job of the file on its cache, print one JSON line of failures and mismatches."""
    import negmine

    encoder = None
    if fake:
        sys.path.insert(0, str(TESTS))
        from fakes import FakeEncoder

        encoder = FakeEncoder()
    jobs = json.loads(Path(jobs_file).read_text())
    failures, mismatches = [], 0
    for job in jobs:
        try:
            negmine.mine(job["corpus"], job["queries"], job["qrels"], output=job["out"], cache_dir=job["cache"],
                         encoder=encoder)
            if job.get("expected") and sha(Path(job["out"])) != job["expected"]:
                mismatches += 1
        except Exception as exc:  # noqa: BLE001 - counted and shown, not raised
            failures.append(f"{Path(job['corpus']).name}: {type(exc).__name__}: {exc}")
    print(json.dumps({"runs": len(jobs), "failures": failures, "mismatches": mismatches}))


def parallel(workers: int, runs: int, fake: bool) -> None:
    data = DATASETS / "cranfield"
    work = Path(tempfile.mkdtemp(prefix="negmine-faults-"))
    corpus = pq.read_table(data / "corpus.parquet")
    qrels = pq.read_table(data / "qrels" / "test.parquet").to_pylist()
    base = corpus.slice(0, 300)
    base_ids = set(base.column("_id").to_pylist())
    queries_all = pq.read_table(data / "queries.parquet")
    judged = [r for r in qrels if r["corpus-id"] in base_ids]
    qids = sorted({r["query-id"] for r in judged}, key=lambda q: int(q))[:20]
    pq.write_table(queries_all.filter(pa.compute.is_in(queries_all.column("_id"), pa.array(qids))),
                   work / "queries.parquet")
    pq.write_table(pa.Table.from_pylist([r for r in judged if r["query-id"] in qids]), work / "qrels.parquet")
    extra = corpus.slice(300, 4)
    n_variants = max(1, runs // 2)
    variants = []
    for v in range(n_variants):
        path = work / f"corpus-{v}.parquet"
        if v % 2:  # everyone's slice: reads while others write and merge
            table = base
        else:
            texts = pa.array([f"{t} (edit {v})" for t in extra.column("text").to_pylist()])
            table = pa.concat_tables([base, extra.set_column(extra.schema.get_field_index("text"), "text", texts)])
        pq.write_table(table, path)
        variants.append(path)
    common = {"queries": str(work / "queries.parquet"), "qrels": str(work / "qrels.parquet")}

    print(f"one process: {n_variants} variants, one after the other on its own cache ...", flush=True)
    t = time.perf_counter()
    expected = {}
    jobs = [{"corpus": str(p), **common, "cache": str(work / "alone"), "out": str(work / f"expected-{v}.parquet")}
            for v, p in enumerate(variants)]
    (work / "alone.json").write_text(json.dumps(jobs))
    subprocess.run([sys.executable, __file__, "_jobs", str(work / "alone.json")] + (["--fake"] if fake else []),
                   check=True, stdout=subprocess.DEVNULL)
    for v in range(n_variants):
        expected[v] = sha(work / f"expected-{v}.parquet")
    print(f"  {time.perf_counter() - t:.1f} s", flush=True)

    print(f"{workers} processes, {2 * n_variants} runs on one cache ...", flush=True)
    rng = random.Random(0)
    per_worker: list[list[dict]] = [[] for _ in range(workers)]
    for v in range(n_variants):
        for copy, w in enumerate(rng.sample(range(workers), 2)):
            per_worker[w].append({"corpus": str(variants[v]), **common, "cache": str(work / "shared"),
                                  "out": str(work / f"run-{v}-{copy}.parquet"), "expected": expected[v]})
    procs = []
    t = time.perf_counter()
    for w, jobs in enumerate(per_worker):
        rng.shuffle(jobs)
        (work / f"jobs-{w}.json").write_text(json.dumps(jobs))
        procs.append(subprocess.Popen([sys.executable, __file__, "_jobs", str(work / f"jobs-{w}.json")]
                                      + (["--fake"] if fake else []), stdout=subprocess.PIPE, text=True))
    total, failures, mismatches, crashed = 0, [], 0, 0
    for p in procs:
        out, _ = p.communicate()
        if p.returncode != 0:
            crashed += 1
            continue
        result = json.loads(out.strip().splitlines()[-1])
        total += result["runs"]
        failures += result["failures"]
        mismatches += result["mismatches"]
    segments = len(list((work / "shared" / "embeddings").glob("*/*.json")))
    print(f"  {time.perf_counter() - t:.1f} s; runs {total}, failed {len(failures)}, outputs different from one "
          f"process {mismatches}, worker processes crashed {crashed}; {segments} segments in the cache at the end")
    for f in failures[:10]:
        print("   ", f)
    verdict = "met" if not failures and not mismatches and not crashed and total >= 500 else "NOT met"
    print(f"target 0 failures of >= 500 runs, outputs identical: {verdict}")


# --- kill -9 -----------------------------------------------------------------------------------------------------

def _mine_one(out: str, cache: str) -> None:
    """One cold Cranfield mine with progress lines every 0.5 s on stderr."""
    import negmine
    from negmine.progress import LineProgress

    data = DATASETS / "cranfield"
    negmine.mine(data / "corpus.parquet", data / "queries.parquet", data / "qrels" / "test.parquet", output=out,
                 cache_dir=cache, progress=LineProgress(interval=0.5))


def _committed(cache: Path) -> int:
    total = 0
    for manifest in cache.glob("embeddings/*/*.json"):
        try:
            total += json.loads(manifest.read_text())["count"]
        except (OSError, ValueError, KeyError):
            pass
    return total


def kill(kills: int, seed: int) -> None:
    from negmine.storage import embeddings as cache_mod

    work = Path(tempfile.mkdtemp(prefix="negmine-kill-"))
    cmd = [sys.executable, __file__, "_one"]
    print("reference: an uninterrupted cold run ...", flush=True)
    t = time.perf_counter()
    subprocess.run(cmd + [str(work / "reference.parquet"), str(work / "cache-ref")], check=True,
                   stderr=subprocess.DEVNULL)
    total_time = time.perf_counter() - t
    reference = (work / "reference.parquet").read_bytes()
    total = _committed(work / "cache-ref")
    print(f"  {total_time:.1f} s, {total:,} texts encoded; a commit every {cache_mod.COMMIT_ROWS} texts once "
          f"{cache_mod.COMMIT_SECONDS:g} s have passed", flush=True)
    rng = random.Random(seed)
    print(f"{'kill':>4} {'at s':>6} {'encoded':>8} {'committed':>9} {'rerun encoded':>13} {'encoded twice':>13} "
          f"{'identical':>9}")
    worst, identical = 0, 0
    for k in range(kills):
        cache = work / f"cache-{k}"
        out = work / f"out-{k}.parquet"
        at = rng.uniform(0.1, 0.85) * total_time
        proc = subprocess.Popen(cmd + [str(out), str(cache)], stderr=subprocess.PIPE, text=True)
        time.sleep(at)
        proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate()
        encoded = sum(int(m[0]) for m in _last_counts(err))
        committed = _committed(cache)
        env = dict(os.environ)
        subprocess.run(cmd + [str(out), str(cache)], check=True, stderr=subprocess.DEVNULL, env=env)
        rerun = _committed(cache) - committed
        twice = max(0, encoded - committed)
        same = out.read_bytes() == reference
        worst = max(worst, twice)
        identical += same
        print(f"{k + 1:>4} {at:>6.1f} {encoded:>8,} {committed:>9,} {rerun:>13,} {twice:>13,} {str(same):>9}",
              flush=True)
    print(f"outputs identical to the uninterrupted run: {identical}/{kills} "
          f"({'met' if identical == kills else 'NOT met'}); most texts encoded twice after a kill: {worst} "
          f"(one commit is {cache_mod.COMMIT_ROWS} texts or more: "
          f"{'met' if worst <= cache_mod.COMMIT_ROWS else 'see the commit interval'})")


def _last_counts(stderr: str) -> list[tuple[str]]:
    """Per encoding stage (documents, queries), the last 'done/total' a progress line showed."""
    last: dict[str, str] = {}
    for line in stderr.splitlines():
        m = re.match(r"negmine: (encoding \w+) .*?: ([\d,]+)(?:/[\d,]+)?", line)
        if m:
            last[m.group(1)] = m.group(2).replace(",", "")
        m = re.match(r"negmine: (encoding \w+) .*?: done, ([\d,]+)", line)
        if m:
            last[m.group(1)] = m.group(2).replace(",", "")
    return [(v,) for v in last.values()]


# --- readers that stop, and what failed runs leave --------------------------------------------------------------

CRANFIELD = DATASETS / "cranfield"


def _cli(*args: str) -> list[str]:
    data = CRANFIELD
    return [sys.executable, "-m", "negmine.cli", "mine", "--corpus", str(data / "corpus.parquet"), "--queries",
            str(data / "queries.parquet"), "--qrels", str(data / "qrels" / "test.parquet"), *args]


def _into_reader(cmd: list[str], lines: int) -> tuple[int, str, int]:
    """Run ``cmd`` into a pipe whose reader takes ``lines`` lines and closes it: (exit code, stderr, lines read)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    got = sum(1 for _ in range(lines) if proc.stdout.readline())
    proc.stdout.close()
    err = proc.stderr.read().decode()
    return proc.wait(), err, got


def pipe(trials: int, seed: int) -> None:
    cache = Path(tempfile.mkdtemp(prefix="negmine-pipe-")) / "cache"
    warm = subprocess.run(_cli("-o", "-", "--cache-dir", str(cache), "-q"), capture_output=True, check=True)
    rows = len(warm.stdout.splitlines())
    print(f"Cranfield, warm cache: {rows:,} rows on stdout ({len(warm.stdout):,} bytes)")
    rng = random.Random(seed)
    good = 0
    print(f"{'trial':>5} {'batch':>6} {'lines read':>10} {'exit':>5} {'traceback':>9} {'summary':>7} {'one error':>9}")
    for t in range(trials):
        batch = rng.choice([1, 8, 64, 1024])
        lines = rng.randrange(0, rows)
        code, err, got = _into_reader(_cli("-o", "-", "--cache-dir", str(cache), "--query-batch-size", str(batch)),
                                      lines)
        errors = [line for line in err.splitlines() if line.startswith("negmine: error:")]
        traceback = "Traceback" in err
        summary = "negatives written" in err
        ok = code == 141 and not traceback and not summary and len(errors) == 1 and "broken pipe" in errors[0]
        good += ok
        print(f"{t + 1:>5} {batch:>6} {got:>10,} {code:>5} {str(traceback):>9} {str(summary):>7} "
              f"{str(len(errors) == 1):>9}", flush=True)
    full = subprocess.run(_cli("-o", "-", "--cache-dir", str(cache), "-q"), capture_output=True)
    full_ok = full.returncode == 0 and len(full.stdout.splitlines()) == rows
    print(f"readers that stopped: {good}/{trials} ended with exit 141, one error line, no traceback, no summary "
          f"({'met' if good == trials else 'NOT met'}); a reader of everything: exit {full.returncode}, "
          f"{len(full.stdout.splitlines()):,} rows ({'met' if full_ok else 'NOT met'})")


def _run_folders(cache: Path) -> int:
    return sum(1 for p in (cache / "runs").glob("*") if p.is_dir()) if (cache / "runs").is_dir() else 0


def stale(runs: int) -> None:
    cache = Path(tempfile.mkdtemp(prefix="negmine-stale-")) / "cache"
    out = cache.parent / "neg.parquet"
    base = ["--cache-dir", str(cache), "--query-batch-size", "16"]
    subprocess.run(_cli("-o", str(out), *base, "-q"), check=True, capture_output=True)  # warm
    left, resumed = 0, 0
    print(f"{'run':>3} {'failure':>13} {'exit':>5} {'run folders left':>16} {'rerun resumed':>13}")
    for r in range(runs):
        if r % 2 == 0:
            proc = subprocess.run(_cli("-o", str(out), *base, "--min-score", "2"), capture_output=True, text=True)
            code, how = proc.returncode, "empty result"
        else:
            code, _, _ = _into_reader(_cli("-o", "-", *base), 3)
            how = "closed pipe"
        folders = _run_folders(cache)
        again = subprocess.run(_cli("-o", str(out), *base, *(["--min-score", "2", "--allow-empty"] if r % 2 == 0
                                                                else [])), capture_output=True, text=True)
        said = "resuming" in again.stderr
        left += folders
        resumed += said
        print(f"{r + 1:>3} {how:>13} {code:>5} {folders:>16} {str(said):>13}", flush=True)
    print(f"after {runs} failed runs: {left} run folders left, {resumed} reruns resumed "
          f"({'met' if left == 0 and resumed == 0 else 'NOT met'})")

    env = {**os.environ, "NEGMINE_CACHE_DIR": str(cache)}
    slow = _cli("-o", str(out), "--query-batch-size", "4", "--reranker", str(_model()), "--score-all")
    proc = subprocess.Popen(slow, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 600
    while not list(cache.glob("runs/*/batch-*.npz")) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    time.sleep(1.0)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    kept = len(list(cache.glob("runs/*/batch-*.npz")))
    rerun = subprocess.run(slow, capture_output=True, text=True, env=env)
    resumes = "resuming an interrupted run" in rerun.stderr
    print(f"a run killed after {kept} batches: its rerun resumed: {resumes} ({'met' if resumes and kept else 'NOT met'}"
          f"), run folders left after it completed: {_run_folders(cache)}")
    abandoned_run = _cli("-o", str(out), "--query-batch-size", "1", "--seed", "7", "--sampling-strategy", "random",
                         "--reranker", str(_model()), "--score-all")
    proc = subprocess.Popen(abandoned_run, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL, env=env)
    while not list(cache.glob("runs/*/batch-*.npz")) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    abandoned = _run_folders(cache)
    pruned = subprocess.run([sys.executable, "-m", "negmine.cli", "cache", "prune", "--cache-dir", str(cache),
                             "--part", "runs", "-q"], capture_output=True, text=True)
    print(f"an abandoned run: {abandoned} run folder before `negmine cache prune --part runs`, {_run_folders(cache)} "
          f"after ({len(pruned.stdout.split())} removed)")


def _model() -> Path:
    """The embedded model's folder, as a bi-encoder judge (a second model: slower batches, killed part-way)."""
    from negmine.retrieve.encoders import default_model_path

    return default_model_path()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    p = sub.add_parser("parallel")
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--runs", type=int, default=500)
    p.add_argument("--fake", action="store_true", help="the tests' fake encoder instead of the model")
    k = sub.add_parser("kill")
    k.add_argument("--kills", type=int, default=5)
    k.add_argument("--seed", type=int, default=0)
    j = sub.add_parser("_jobs")
    j.add_argument("file")
    j.add_argument("--fake", action="store_true")
    o = sub.add_parser("_one")
    o.add_argument("out")
    o.add_argument("cache")
    pp = sub.add_parser("pipe")
    pp.add_argument("--trials", type=int, default=30)
    pp.add_argument("--seed", type=int, default=0)
    st = sub.add_parser("stale")
    st.add_argument("--runs", type=int, default=10)
    args = ap.parse_args()
    if args.what == "parallel":
        parallel(args.workers, args.runs, args.fake)
    elif args.what == "kill":
        kill(args.kills, args.seed)
    elif args.what == "pipe":
        pipe(args.trials, args.seed)
    elif args.what == "stale":
        stale(args.runs)
    elif args.what == "_jobs":
        _mine_jobs(args.file, args.fake)
    else:
        _mine_one(args.out, args.cache)


if __name__ == "__main__":
    main()
