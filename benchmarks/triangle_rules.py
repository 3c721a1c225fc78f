"""Which triangle rule? Two ways to use the query-positive-candidate triangle, compared on the same candidates.

    HF_HUB_OFFLINE=1 python benchmarks/triangle_rules.py [--datasets cranfield msmarco-dl19-subset]

One ``negmine.mine(..., score_all=True, positive_proximity=None)`` per dataset (the other defaults) keeps every
candidate's bi-encoder cosine to the query (``cosine``) and to the positive (``positive_similarity``); each rule
below is then applied on top of the candidates those defaults kept, walking each query's list in rank order and
taking the first 5 that pass (what ``--sampling-strategy top`` does), with one positive per query:

  proximity m   drop when cos(candidate, positive) > cos(query, positive) + m   (negmine's --positive-proximity)
  trisampler m  drop when cos(candidate, positive) > cos(query, candidate) + m  (the TriSampler-style comparison)

and printed with ``false_negatives.py``'s columns and targets against ST ``mine_hard_negatives(relative_margin
=0.05)``. "none" is the defaults without either rule (what negmine wrote before ``--positive-proximity``). A rule
that only cuts the ranking deeper shows a lower FN rate but no lower lift.
"""

from __future__ import annotations

import os

os.environ.setdefault("TQDM_DISABLE", "1")

import argparse
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Optional

import false_negatives as FN
import pyarrow.parquet as pq
from fn_data import DEFAULT_CACHE, prepare

import negmine

RULES: list[tuple[str, Optional[str], float]] = (
    [("none", None, 0.0)]
    + [(f"proximity m={m}", "proximity", m) for m in (-0.02, 0.0, 0.02, 0.05, 0.1)]
    + [(f"trisampler m={m}", "trisampler", m) for m in (-0.05, 0.0, 0.05, 0.1)]
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="+", default=["cranfield", "msmarco-dl19-subset"])
    ap.add_argument("-n", "--num-negatives", type=int, default=5)
    ap.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE)
    args = ap.parse_args()
    n = args.num_negatives
    for name in args.datasets:
        data = prepare(name, FN.SPLITS.get(name, "test"), args.cache_dir)
        st = FN.STRunner(data).run(FN.ST_REFERENCE, "rm=0.05", n, relative_margin=0.05)
        st_fig = FN.evaluate(data, st, n)
        with tempfile.TemporaryDirectory(prefix="negmine-tri-") as tmp:
            path = Path(tmp) / "c.parquet"
            negmine.mine(data.corpus, data.queries, data.one_positive_qrels, cache_dir=data.cache / "negmine",
                         candidates_output=path, score_all=True, num_negatives=n, device="cpu",
                         positive_proximity=None)
            tab = pq.read_table(path, columns=["query_id", "doc_id", "rank", "cosine", "positive_similarity",
                                               "status"]).to_pandas()
        positives = tab[tab.status == "qrel"].set_index(tab[tab.status == "qrel"].query_id.astype(str))
        qp_cos = positives.cosine.to_dict()  # cos(query, positive): one positive per query here
        tab = tab[tab.status != "qrel"].copy()
        tab["query_id"], tab["doc_id"] = tab.query_id.astype(str), tab.doc_id.astype(str)
        tab = tab.sort_values(["query_id", "rank"])
        groups = [(q, g) for q, g in tab.groupby("query_id", sort=False)]
        print(f"\n{name}: {len(groups)} queries; the defaults' candidates, then each rule")
        print(FN.HEADER)
        FN.print_row(st, st_fig, True)
        for label, form, m in RULES:
            picks: dict[str, list[str]] = defaultdict(list)
            cand: dict[str, list[str]] = {}
            for q, g in groups:
                cand[q] = g.doc_id.tolist()
                ok = g.status.isin(["selected", "kept"]).to_numpy().copy()
                sim = g.positive_similarity.to_numpy()
                if form == "proximity":
                    ok &= ~(sim > qp_cos[q] + m)
                elif form == "trisampler":
                    ok &= ~(sim > g.cosine.to_numpy() + m)
                picks[q] = g.doc_id.to_numpy()[ok][:n].tolist()
            method = FN.Method(label, "triangle", label, dict(picks), cand, 0.0)
            FN.evaluate(data, method, n)
            FN.print_row(method, st_fig, True)


if __name__ == "__main__":
    main()
