"""How far half precision moves what negmine computes: the embedded all-MiniLM-L6-v2 encoding a collection in fp32
and in bf16 (or fp16) on this machine, side by side.

    HF_HUB_OFFLINE=1 python benchmarks/precision.py [--dataset cranfield] [--precision bf16] [--device cpu]

Prints, for the query-document cosines of every query against every document: the largest and the mean absolute
difference, and the 99th percentile; the overlap of each query's top 10 and top 100 documents; the share of the
(query, positive, negative) rows a default `negmine.mine` writes that both precisions write; the encoding time of
each (measure it on a quiet machine). A second bf16 run is compared byte for byte with the first
(determinism per precision).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from common import DATASETS, load

import negmine
from negmine.retrieve.encoders import SentenceTransformerEncoder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="cranfield")
    ap.add_argument("--precision", default="bf16", choices=["bf16", "fp16"])
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    corpus, queries, qrels, data = load(args.dataset, "test")
    docs, qs = list(corpus.texts), list(queries.texts)
    vectors, seconds = {}, {}
    for precision in ("fp32", args.precision):
        encoder = SentenceTransformerEncoder(device=args.device, precision=precision)
        encoder.load()
        t = time.perf_counter()
        vectors[precision] = (encoder.encode(qs, "query"), encoder.encode(docs, "document"))
        seconds[precision] = time.perf_counter() - t
    again = SentenceTransformerEncoder(device=args.device, precision=args.precision).encode(docs[:200], "document")
    deterministic = bool(np.array_equal(again, vectors[args.precision][1][:200]))

    full = {p: q @ d.T for p, (q, d) in vectors.items()}
    diff = np.abs(full["fp32"] - full[args.precision])
    overlap = {}
    for k in (10, 100):
        top = {p: np.argsort(-s, axis=1, kind="stable")[:, :k] for p, s in full.items()}
        overlap[k] = float(np.mean([len(set(a) & set(b)) / k for a, b in zip(top["fp32"], top[args.precision])]))

    picks = {}
    with tempfile.TemporaryDirectory(prefix="negmine-precision-") as tmp:
        for precision in ("fp32", args.precision):
            table = negmine.mine(data / "corpus.parquet", data / "queries.parquet", data / "qrels" / "test.parquet",
                                 cache_dir=Path(tmp) / "cache", precision=precision, device=args.device).table
            picks[precision] = list(zip(table.column("query_id").to_pylist(), table.column("positive_id").to_pylist(),
                                        table.column("negative_id").to_pylist()))
    same = len(set(picks["fp32"]) & set(picks[args.precision])) / max(len(set(picks["fp32"])), 1)

    print(f"{args.dataset}: {len(qs)} queries x {len(docs)} documents, all-MiniLM-L6-v2 on {args.device}, "
          f"fp32 vs {args.precision}")
    print(f"| measure | {args.precision} vs fp32 |")
    print("| --- | ---: |")
    print(f"| largest query-document cosine difference | {diff.max():.4f} |")
    print(f"| mean / 99th percentile difference | {diff.mean():.4f} / {np.quantile(diff, 0.99):.4f} |")
    print(f"| top-10 / top-100 documents in common | {overlap[10]:.1%} / {overlap[100]:.1%} |")
    print(f"| (query, positive, negative) rows written by both (default mine) | {same:.1%} of "
          f"{len(picks['fp32']):,} |")
    print(f"| encoding time, fp32 / {args.precision} | {seconds['fp32']:.1f} s / {seconds[args.precision]:.1f} s "
          f"({seconds[args.precision] / seconds['fp32']:.2f}x) |")
    print(f"| the same bytes when run again | {'yes' if deterministic else 'NO'} |")


if __name__ == "__main__":
    assert DATASETS.is_dir(), DATASETS
    main()
