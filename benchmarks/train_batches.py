"""Batches that teach: random batches, sentence-transformers' no-duplicates sampler and negmine's composed batches
(negmine.batching), over the same mined rows.

    HF_HUB_OFFLINE=1 python benchmarks/train_batches.py fn [--datasets cranfield msmarco-dl19-subset]
        [--batch-size 32] [--seeds 12 13 14]
    HF_HUB_OFFLINE=1 python benchmarks/train_batches.py train [--methods random no-duplicates grouped]
        [--seeds 12 13 14] [--batch-size 32]

``fn``: each judged query of a collection gets ONE judged positive (fn_data.pick_positives) and 3 negatives mined
by negmine's defaults (n-tuple rows); the rows are batched four ways, and against every judgment of the collection
it counts the in-batch false negatives per 1,000 rows (a document of another row of the batch, its positive or a
mined negative, judged relevant to the row's query) and the batch hardness (the mean cosine between a row's anchor
and the other rows' positives in its batch, the in-batch negatives MNRL sees; bi-encoder all-MiniLM-L6-v2):

  random              the trainer's default: the rows shuffled by the seed, cut into batches of B
  no-duplicates       sentence-transformers' NoDuplicatesBatchSampler (no text twice in a batch), seeded
  grouped             negmine.batching.compose_batches: hard (near anchors together) and clean (no known positive
                      of another row, no repeated query or positive text, positive proximity 0.02 over in-batch
                      pairs: the other rows' positives and mined negatives)
  grouped-unclean     the same grouping without the clean rules (what grouping alone costs)
  grouped-labels      the same grouping with the clean rules that read labels only (known positives, repeated
                      query or positive text), without positive proximity (harder batches, fewer rows moved)

``train``: SciFact train (every judged pair; 3 negatives by negmine's defaults), all-MiniLM-L6-v2 fine-tuned with
MultipleNegativesRankingLoss, 1 epoch, batch 32, max length 128, learning rate 2e-5 (benchmarks/train.py's
recipe) with each batching as the trainer's batch sampler (grouped: negmine.batching.sampler.grouped_batch_sampler
over the composed batch ids; the batches' order shuffled per epoch); nDCG@10 on SciFact test. Target (issue 18):
grouped mean >= random mean + 0.005, and every grouped seed above every random seed.
"""

from __future__ import annotations

import os

os.environ.setdefault("TQDM_DISABLE", "1")

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from fn_data import DEFAULT_CACHE, pick_positives, prepare
from train import NUM_NEGATIVES, OUT, evaluate, load, load_model, train_one, verdict

import negmine
from negmine.batching.compose import compose_batches, in_batch_false_negatives, normalise, random_batches
from negmine.batching.sampler import grouped_batch_sampler
from negmine.inputs.data import Qrels

BATCHINGS = ("random", "no-duplicates", "grouped", "grouped-unclean", "grouped-labels")


def mined_rows(corpus: Any, queries: Any, qrels: Qrels, cache: Path) -> dict[str, Any]:
    """negmine's default rows (n-tuple, 3 negatives), with ids, as columns."""
    res = negmine.mine(corpus, queries, qrels, cache_dir=cache / "negmine", output_format="n-tuple",
                       num_negatives=NUM_NEGATIVES, device="cpu")
    cols = {c: res.table.column(c).to_pylist() for c in res.table.column_names}
    cols["texts"] = ["anchor", "positive"] + [f"negative_{j + 1}" for j in range(NUM_NEGATIVES)]
    return cols


def batch_ids(method: str, rows: dict[str, Any], q_vec: np.ndarray, p_vec: np.ndarray, known: dict[str, set[str]],
              size: int, seed: int, n_vec: Any = None) -> np.ndarray:
    """Each row's batch under a batching (the order within the epoch aside)."""
    n = len(rows["query_id"])
    if method == "random":
        return random_batches(n, size, seed)
    if method == "no-duplicates":
        import torch
        from datasets import Dataset
        from sentence_transformers.base.sampler import NoDuplicatesBatchSampler

        data = Dataset.from_dict({c: rows[c] for c in rows["texts"]})
        out = np.empty(n, dtype=np.int64)
        sampler = NoDuplicatesBatchSampler(data, batch_size=size, drop_last=False,
                                           generator=torch.Generator().manual_seed(seed), seed=seed)
        for b, members in enumerate(sampler):
            out[list(members)] = b
        return out
    c = compose_batches(q_vec, rows["query_id"], rows["positive_id"], rows["negative_ids"], known, size, seed=seed,
                        positive_keys=[normalise(t) for t in rows["positive"]], positive_vectors=p_vec,
                        negative_vectors=n_vec, clean=method in ("grouped", "grouped-labels"),
                        proximity=None if method == "grouped-labels" else 0.02)
    return c.batch_of_rows()


def hardness(batch: np.ndarray, q_vec: np.ndarray, p_vec: np.ndarray) -> float:
    """Mean cosine between a row's anchor and the other rows' positives in its batch."""
    sims = []
    for b in np.unique(batch):
        rows = np.flatnonzero(batch == b)
        if len(rows) < 2:
            continue
        m = q_vec[rows] @ p_vec[rows].T
        sims.append((m.sum() - np.trace(m)) / (len(rows) * (len(rows) - 1)))
    return float(np.mean(sims))


def vectors(prep: Any, rows: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The rows' anchors, positives and mined negatives in the bi-encoder's space (fn_data's cached embeddings)."""
    qpos = {q: i for i, q in enumerate(prep.qids)}
    missing = [q for q in rows["query_id"] if q not in qpos]
    if missing:
        raise SystemExit(f"no embedding for query {missing[0]}")
    q_vec = prep.q_emb[[qpos[q] for q in rows["query_id"]]]
    p_vec = prep.d_emb[[prep.corpus.index[d] for d in rows["positive_id"]]]
    n_vec = np.zeros((len(q_vec), NUM_NEGATIVES, q_vec.shape[1]), dtype=np.float32)
    for i, ids in enumerate(rows["negative_ids"]):
        for k, d in enumerate(ids):
            n_vec[i, k] = prep.d_emb[prep.corpus.index[d]]
    return q_vec, p_vec, n_vec


def run_fn(args: argparse.Namespace) -> dict[str, Any]:
    report: dict[str, Any] = {}
    for name in args.datasets:
        prep = prepare(name, "test", args.cache_dir)
        rows = mined_rows(prep.corpus, prep.queries, prep.one_positive_qrels, args.cache_dir)
        q_vec, p_vec, n_vec = vectors(prep, rows)
        known = {q: {prep.positive[q]} for q in prep.qids}
        n = len(rows["query_id"])
        print(f"\n{name}: {n} rows (one positive per query, {NUM_NEGATIVES} negatives), batch {args.batch_size}, "
              f"seeds {args.seeds}")
        print(f"  {'batching':16} {'in-batch FN / 1,000 rows':>26} {'hardness':>9} {'short batches':>14} "
              f"{'seconds':>8}")
        report[name] = {}
        for method in BATCHINGS:
            fns, hards, shorts, secs = [], [], [], []
            for seed in args.seeds:
                t = time.perf_counter()
                batch = batch_ids(method, rows, q_vec, p_vec, known, args.batch_size, seed, n_vec)
                secs.append(time.perf_counter() - t)
                fns.append(1000 * in_batch_false_negatives(rows["query_id"], rows["positive_id"],
                                                           rows["negative_ids"], batch, prep.relevant) / n)
                hards.append(hardness(batch, q_vec, p_vec))
                shorts.append(int((np.bincount(batch) < args.batch_size).sum()))
            report[name][method] = {"fn_per_1000": fns, "hardness": hards, "short": shorts, "seconds": secs}
            print(f"  {method:16} {np.mean(fns):17.1f} ({min(fns):.0f}-{max(fns):.0f}) {np.mean(hards):9.3f} "
                  f"{np.mean(shorts):14.1f} {np.mean(secs):8.2f}")
        r = report[name]
        print(f"  grouped / random: in-batch FN {np.mean(r['grouped']['fn_per_1000']) / np.mean(r['random']['fn_per_1000']):.2f}x, "  # noqa: E501
              f"hardness {np.mean(r['grouped']['hardness']) - np.mean(r['random']['hardness']):+.3f}")
    return report


def run_train(args: argparse.Namespace) -> dict[str, Any]:
    corpus, queries, train, _ = load("scifact", "train")
    _, _, test, _ = load("scifact", "test")
    prep = prepare("scifact", "train", args.cache_dir)
    rows = mined_rows(corpus, queries, train, args.cache_dir)
    q_vec, p_vec, n_vec = vectors(prep, rows)
    _, known = pick_positives(train)
    from datasets import Dataset
    from sentence_transformers.base.sampler import BatchSamplers

    data = Dataset.from_dict({c: rows[c] for c in rows["texts"]})
    print(f"SciFact train: {len(data)} rows; methods {args.methods}; seeds {args.seeds}", flush=True)
    results: dict[str, list[float]] = {}
    for method in args.methods:
        results[method] = []
        for seed in args.seeds:
            if method == "random":
                sampler: Any = BatchSamplers.BATCH_SAMPLER
            elif method == "no-duplicates":
                sampler = BatchSamplers.NO_DUPLICATES
            else:
                sampler = grouped_batch_sampler(batch_ids(method, rows, q_vec, p_vec, known, args.batch_size, seed,
                                                          n_vec))
            t = time.perf_counter()
            with tempfile.TemporaryDirectory(prefix="negmine-train-") as tmp:
                model = train_one(data, seed, Path(tmp), batch_size=args.batch_size, batch_sampler=sampler)
            score = evaluate(model, corpus, queries, test)
            results[method].append(score)
            print(f"  {method} seed {seed}: nDCG@10 {score:.4f} ({time.perf_counter() - t:.0f} s)", flush=True)
    zero = evaluate(load_model(), corpus, queries, test)
    print(f"\n  zero-shot nDCG@10 {zero:.4f}")
    for m, v in results.items():
        print(f"  {m:16} {' '.join(f'{x:.4f}' for x in v)}  mean {np.mean(v):.4f}")
    line = verdict(results, "grouped", "random", ("grouped", "random"))
    if line:
        print("  " + line)
    return {"zero_shot": zero, "results": results}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("part", choices=["fn", "train"])
    ap.add_argument("--datasets", nargs="+", default=["cranfield", "msmarco-dl19-subset"])
    ap.add_argument("--methods", nargs="+", default=["grouped", "random", "no-duplicates"], choices=BATCHINGS)
    ap.add_argument("--seeds", nargs="+", type=int, default=[12, 13, 14])
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE)
    args = ap.parse_args()
    t = time.perf_counter()
    report = run_fn(args) if args.part == "fn" else run_train(args)
    print(f"  wall time {time.perf_counter() - t:.0f} s")
    out = OUT / f"train_batches-{args.part}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, **report}, indent=1))
    print(f"  figures: {out}")


if __name__ == "__main__":
    main()
