"""The overhead of mining on Ray, by hand: the same SciFact mine with --engine local and --engine ray on a two-node
Ray cluster started on this machine (ray.cluster_utils.Cluster), side by side in one run.

    HF_HUB_OFFLINE=1 python benchmarks/ray_engine.py [--data scifact] [--split train] [--repeats 2] [--workers 2]
        [--warm-cache DIR] [--no-cold] [--options JSON]

(Not named ray.py: the script's folder comes first on sys.path, and a ray.py there would hide the ray package.)

The embedding cache is warmed first (one local run), so both engines mine from the same state: the times compare
query batches (retrieval, rules, scoring, sampling) and Ray's scheduling, not corpus encoding; a cold encode on the
cluster is timed separately. It prints each run's time, the ratio ray / local (target <= 1.3), and whether the
outputs are byte-identical (they must be). On a machine with a GPU it also prints the encoding throughput (texts/s)
of a local run and of one GPU actor.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from common import DATASETS

import negmine


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="scifact", help="a dataset of ../shared/datasets, or a folder laid out alike")
    ap.add_argument("--split", default="train")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--query-batch-size", type=int, default=128)
    ap.add_argument("--warm-cache", type=Path, default=None,
                    help="a negmine cache that already holds the embeddings (copied, not changed): a quicker warm-up")
    ap.add_argument("--options", default="{}", help='negmine.mine options as JSON, e.g. \'{"retriever": "bm25"}\'')
    ap.add_argument("--no-cold", action="store_true", help="skip the cold encoding on the cluster")
    args = ap.parse_args()
    import ray
    from ray.cluster_utils import Cluster

    data = Path(args.data) if Path(args.data).is_dir() else DATASETS / args.data
    options = json.loads(args.options)
    inputs = (data / "corpus.parquet", data / "queries.parquet", data / "qrels" / f"{args.split}.parquet")
    work = Path(tempfile.mkdtemp(prefix="negmine-ray-bench-"))
    cache = work / "cache"
    if args.warm_cache is not None:
        shutil.copytree(args.warm_cache, cache)
    print(f"{args.data} ({args.split}): warming the embedding cache with a local run ...", flush=True)
    t = time.perf_counter()
    negmine.mine(*inputs, output=work / "warm.parquet", cache_dir=cache, **options)
    print(f"  {time.perf_counter() - t:.1f} s", flush=True)

    t = time.perf_counter()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "include_dashboard": False})
    cluster.add_node(num_cpus=2)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"HF_HUB_OFFLINE": "1"}})
    print(f"two-node cluster started in {time.perf_counter() - t:.1f} s", flush=True)
    times: dict[str, list[float]] = {"local": [], "ray": []}
    outputs: dict[str, bytes] = {}
    try:
        for r in range(args.repeats):
            for engine in ("local", "ray"):
                out = work / f"{engine}-{r}.parquet"
                extra = {"workers": args.workers} if engine == "ray" else {}
                t = time.perf_counter()
                negmine.mine(*inputs, output=out, cache_dir=cache, engine=engine, resume=False,
                             query_batch_size=args.query_batch_size, **extra, **options)
                times[engine].append(time.perf_counter() - t)
                outputs[engine] = out.read_bytes()
                print(f"  {engine}: {times[engine][-1]:.1f} s", flush=True)
        local, on_ray = statistics.median(times["local"]), statistics.median(times["ray"])
        print(f"\nlocal {local:.1f} s, ray {on_ray:.1f} s (medians of {args.repeats}): ray / local = "
              f"{on_ray / local:.2f} (target <= 1.3: {'met' if on_ray / local <= 1.3 else 'NOT met'}); outputs "
              f"identical: {outputs['local'] == outputs['ray']}")
        if args.no_cold:
            return
        cold = work / "cold"
        t = time.perf_counter()
        negmine.build_index(inputs[0], cold, engine="ray", workers=args.workers)
        n = len(negmine.read_corpus(inputs[0]))
        print(f"cold encoding of {n:,} documents on the cluster ({args.workers} CPU actors): "
              f"{time.perf_counter() - t:.1f} s ({n / (time.perf_counter() - t):.1f} texts/s)")
        if float(ray.cluster_resources().get("GPU", 0)) >= 1:
            for engine in ("local", "ray"):
                folder = work / f"gpu-{engine}"
                t = time.perf_counter()
                negmine.build_index(inputs[0], folder, engine=engine, workers=1, gpus_per_worker=1)
                print(f"GPU encoding, {engine}: {n / (time.perf_counter() - t):.0f} texts/s")
        else:
            print("no GPU on this cluster: the GPU encoding throughput is not measured")
    finally:
        ray.shutdown()
        cluster.shutdown()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
