"""Tuning without re-mining, auditing, and sampling by difficulty, measured on one judged dataset (default:
Cranfield; all its judgments as the full qrels, one positive per query given to the miner):

    HF_HUB_OFFLINE=1 python benchmarks/tuning.py [--dataset cranfield] [--margins 0,0.02,0.05,0.1,0.2]

1. audit:   ``negmine evaluate`` on the output of ``negmine mine`` (the defaults, 5 negatives), against the FN rate
            ``benchmarks/false_negatives.py`` computes for the same settings (its own code path: the picks read
            from a candidates file, ``fn_metrics.fn_rate``). They must agree exactly.
2. sweep:   ``negmine sweep`` over the relative margins, against re-mining once per margin (``negmine mine`` with
            a warm cache: the embeddings are not computed again, but the model, the indexes, retrieval and
            scoring are). Both are timed as the commands a user runs (a process each); the sweep's counts must equal
            the re-mines'.
3. sampling: ``negmine refilter`` of the same candidates with --sampling-strategy top, random (two seeds: the noise
            floor) and simans (the reference code's a = 0.5, and sharper a): FN rate with its 95% interval, and
            depth (median rank of the picks in the full dense ranking; 1 = hardest).

Prints ratios and writes benchmarks/out/tuning-<dataset>.json. Run by hand; never a timed test.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import fn_metrics as M
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from common import DATASETS
from fn_data import prepare

HERE = Path(__file__).resolve().parent
N = 5


def negmine_cli(*args: Any, capture: bool = True) -> tuple[float, str]:
    """Run ``negmine`` as a user would (a new process); its wall time and stdout."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(HERE.parent)}
    t = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "negmine", *map(str, args)], env=env, text=True,
                          capture_output=capture)
    secs = time.perf_counter() - t
    if done.returncode != 0:
        raise SystemExit(f"negmine {' '.join(map(str, args))} failed:\n{done.stderr}")
    return secs, done.stdout


def picks_of(cand: Path) -> dict[str, list[str]]:
    """The selected candidates of a candidates file, per query (as false_negatives.py reads them)."""
    tab = pq.read_table(cand, columns=["query_id", "doc_id", "status"]).to_pydict()
    picks: dict[str, list[str]] = defaultdict(list)
    for q, d, s in zip(map(str, tab["query_id"]), map(str, tab["doc_id"]), tab["status"]):
        if s == "selected":
            picks[q].append(d)
    return dict(picks)


def output_picks(out: Path) -> dict[str, list[str]]:
    tab = pq.read_table(out, columns=["query_id", "negative_id"]).to_pydict()
    picks: dict[str, list[str]] = defaultdict(list)
    for q, d in zip(map(str, tab["query_id"]), map(str, tab["negative_id"])):
        picks[q].append(d)
    return dict(picks)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="cranfield")
    ap.add_argument("--split", default="test")
    ap.add_argument("--margins", default="0,0.02,0.05,0.1,0.2")
    ap.add_argument("--out", type=Path, default=HERE / "out")
    args = ap.parse_args()
    margins = [float(m) for m in args.margins.split(",")]

    data = prepare(args.dataset, args.split)
    work = args.out / f"tuning-{args.dataset}"
    work.mkdir(parents=True, exist_ok=True)
    corpus, queries = DATASETS / args.dataset / "corpus.parquet", DATASETS / args.dataset / "queries.parquet"
    full = DATASETS / args.dataset / "qrels" / f"{args.split}.parquet"
    one = work / "qrels-one-positive.parquet"
    pq.write_table(pa.table({"query-id": data.qids, "corpus-id": [data.positive[q] for q in data.qids],
                             "score": [1] * len(data.qids)}), one)
    cache = work / "cache"
    common = ["--corpus", corpus, "--queries", queries, "--qrels", one, "-n", N, "--device", "cpu", "-q"]
    report: dict[str, Any] = {"dataset": args.dataset, "queries": len(data.qids), "documents": len(data.corpus)}
    print(f"{args.dataset}: {len(data.qids)} queries with one given positive, {len(data.corpus):,} documents, "
          f"{sum(len(v) for v in data.relevant.values()):,} judged relevant pairs", flush=True)

    # --- 1. audit -------------------------------------------------------------------------------------------------
    out, cand = work / "defaults.parquet", work / "defaults-candidates.parquet"
    import shutil

    shutil.rmtree(cache, ignore_errors=True)
    cold, _ = negmine_cli("mine", *common, "-o", out, "--score-all", "--candidates-output", cand,
                          "--cache-dir", cache)
    _, text = negmine_cli("evaluate", out, "--qrels", full, "--candidates", cand, "--json")
    ev = json.loads(text)
    bench_fn = M.fn_rate(picks_of(cand), data.relevant, data.positive)
    same_picks = picks_of(cand) == output_picks(out)
    fn = ev["false_negatives"]
    print("\n1. audit: negmine evaluate vs false_negatives.py's FN rate (defaults, -n 5)")
    print(f"   negmine evaluate   FN {fn['rate']:.4%} ({fn['relevant']} of {fn['n']}; 95% CI {fn['low']:.2%}-"
          f"{fn['high']:.2%})")
    print(f"   fn_metrics.fn_rate FN {bench_fn:.4%}   difference {abs(fn['rate'] - bench_fn):.2e}  "
          f"{'(equal)' if abs(fn['rate'] - bench_fn) < 1e-12 else '(DIFFERENT)'}; picks of output == candidates "
          f"file: {same_picks}")
    print("   precision of each rule (share of its drops judged relevant):")
    for r in ev["by_rule"]:
        print(f"     {r['label']:22} {r['rate']:7.2%}  ({r['relevant']:,} of {r['n']:,})")
    report["audit"] = {"evaluate": fn, "fn_metrics": bench_fn, "by_rule": ev["by_rule"], "cold_mine_s": cold}

    # --- 2. sweep vs re-mine ---------------------------------------------------------------------------------------
    listing = ",".join(f"{m:g}" for m in margins)
    png = work / "sweep.png"
    sweep_s, text = negmine_cli("sweep", cand, "--relative-margin", listing, "--png", png, "--json",
                                "--cache-dir", cache)
    rows = json.loads(text)["rows"]
    remine: list[float] = []
    agree = True
    for m, row in zip(margins, rows):
        o = work / f"remine-{m:g}.parquet"
        secs, _ = negmine_cli("mine", *common, "-o", o, "--score-all", "--relative-margin", f"{m:g}",
                              "--cache-dir", cache)
        remine.append(secs)
        written = pq.read_metadata(o).num_rows
        agree &= written == row["negatives"]
    print(f"\n2. sweep over {len(margins)} relative margins ({listing}) vs a re-mine per margin (warm cache)")
    print(f"   negmine sweep: {sweep_s:.2f} s (one process: reading {json.loads(text)['seconds']['read']:.2f} s, "
          f"settings {json.loads(text)['seconds']['settings']:.2f} s, the PNG)")
    print(f"   re-mining:     {sum(remine):.1f} s ({', '.join(f'{s:.1f}' for s in remine)}); cold first mine "
          f"{cold:.1f} s")
    print(f"   ratio: re-mining takes {sum(remine) / sweep_s:.1f}x the sweep; the sweep's counts equal the re-mines': "
          f"{agree}; target (sweep < 5 s): {'met' if sweep_s < 5 else 'NOT met'}")
    for m, row in zip(margins, rows):
        print(f"     rm {m:<5g} negatives {row['negatives']:5,}  served {row['queries_served']:.1%}  "
              f"score p50 {row['score']['p50']:.3f}  rank p50 {row['rank']['p50']:g}")
    report["sweep"] = {"sweep_s": sweep_s, "remine_s": remine, "cold_mine_s": cold, "counts_agree": agree,
                       "rows": rows}

    # --- 3. top vs random vs simans --------------------------------------------------------------------------------
    row_of = {q: i for i, q in enumerate(data.qids)}
    col_of = data.corpus.index

    def rank(q: str, d: str) -> int:
        return int(data.rank[row_of[q], col_of[d]])

    strategies = [("top", []), ("random seed 1", ["--sampling-strategy", "random", "--seed", "1"]),
                  ("random seed 2", ["--sampling-strategy", "random", "--seed", "2"]),
                  ("simans a=0.5 (default)", ["--sampling-strategy", "simans", "--seed", "1"]),
                  ("simans a=0.5 seed 2", ["--sampling-strategy", "simans", "--seed", "2"]),
                  ("simans a=20", ["--sampling-strategy", "simans", "--simans-a", "20", "--seed", "1"]),
                  ("simans a=100", ["--sampling-strategy", "simans", "--simans-a", "100", "--seed", "1"]),
                  ("simans a=100 b=-0.1", ["--sampling-strategy", "simans", "--simans-a", "100", "--simans-b",
                                           "-0.1", "--seed", "1"])]
    print("\n3. sampling: top vs random vs SimANS over the same candidates (refilter), -n 5")
    print(f"   {'strategy':24} {'FN':>7} {'95% CI':>15} {'depth':>6} {'served':>7}  FN / top  depth / top")
    results = {}
    for label, extra in strategies:
        o = work / f"sample-{label.replace(' ', '_').replace('=', '').replace('(', '').replace(')', '')}.parquet"
        negmine_cli("refilter", cand, "-o", o, *extra, "--cache-dir", cache)
        _, text = negmine_cli("evaluate", o, "--qrels", full, "--json")
        e = json.loads(text)
        picks = output_picks(o)
        d = M.depth(picks, rank)
        results[label] = {"fn": e["false_negatives"], "depth": d, "served": e["queries_served"]}
    top = results["top"]
    for label, r in results.items():
        f = r["fn"]
        ratio = f["rate"] / top["fn"]["rate"] if top["fn"]["rate"] else float("nan")
        print(f"   {label:24} {f['rate']:7.2%} {f['low']:6.2%}-{f['high']:6.2%} {r['depth']:6g} {r['served']:7.1%}"
              f"  {ratio:8.2f}  {r['depth'] / top['depth']:10.2f}")
    report["sampling"] = results
    path = args.out / f"tuning-{args.dataset}.json"
    path.write_text(json.dumps(report, indent=2, default=float))
    print(f"\nwrote {path} and {png}")


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    main()
