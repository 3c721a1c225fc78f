"""Do mined negatives train a better retriever where relevance is dense? Held-out-queries fine-tuning on a collection
with many judged relevant documents per query (Cranfield, the MS MARCO DL19 subset, or any BEIR folder).

    HF_HUB_OFFLINE=1 python benchmarks/train_heldout.py [--data DIR] [--splits 3] [--seeds 12 13]
        [--methods zero-shot inbatch st-0.05 ...] [--negmine-options '{"label": {options}, ...}'] [--steps 24]
        [--quick]

Protocol. The judged queries are split in two halves by a seeded permutation (split k: numpy default_rng(1000 + k)).
The training half gets ONE judged positive per query (the highest grade, then the smallest id:
fn_data.pick_positives), as users' data usually has; each method mines its negatives for those queries over the
whole corpus with the zero-shot model. Each (method, seed) then fine-tunes a fresh all-MiniLM-L6-v2 with
train.train_one: MultipleNegativesRankingLoss, batch 16, learning rate 5e-5 (linear decay, 10% warmup),
max_seq_length 128, the no-duplicates batch sampler, and the SAME number of optimizer steps (--steps, default 24:
384 rows, about 3.4 epochs of Cranfield's 112 training queries) for every method, so that a method serving fewer
queries does not simply train less (it sees its rows more often). It is evaluated on the held-out half with every
judgment, by exact cosine retrieval over the whole corpus: nDCG@10 (graded gains) and Recall@100 (share of the
query's judged relevant documents in the top 100).

Methods (--methods; every mined method writes NUM_NEGATIVES = 3 negatives per row, as n-tuple rows: anchor,
positive, negative_1..3, so every method trains on the same row shape; a query short of 3 gets no row):
  zero-shot               no training
  inbatch                 (anchor, positive) rows: in-batch negatives only
  st-0.05, st-0           sentence-transformers mine_hard_negatives(relative_margin=0.05 / 0, sampling "top",
                          its default window)
  topk                    the 3 best-ranked non-positive documents by the zero-shot model's cosine: negmine with
                          every rule off (dense, relative margin none, lexical_overlap / positive_proximity /
                          cross_query / max_positive_similarity none, no agreement); only exact copies of the
                          positive's text and repeated texts are skipped
  negmine                 negmine.mine defaults
  negmine-no-lexical, negmine-no-proximity, negmine-no-agreement, negmine-no-cross-query, negmine-no-near-duplicate
                          the defaults with one evidence rule switched off
  --negmine-options '{"label": {...}}' adds a negmine variant per label (negmine.mine options; num_negatives may
  change the row shape).

Per method it prints the FN rate of its training negatives (share of written negatives that are judged relevant to
their query, pooled over splits), the share of training queries served (mean over splits), nDCG@10 and Recall@100
(means over splits x seeds), and the paired differences against ST (relative margin 0.05), against in-batch only and
against negmine's defaults (the ablation's reference) with a 95% paired bootstrap interval over held-out queries:
one unit per (split, held-out query), each method's score averaged over the seeds, 10,000 draws of the units with
replacement, percentiles 2.5-97.5; "wins" counts the (split, seed) runs where the method's mean beats the
reference's. Verdicts: negmine defaults >= ST + 0.01 nDCG@10 with the interval's lower bound above 0; negmine
defaults not below in-batch only, read as: the mean difference is >= 0 (the interval is printed beside it).

Training is deterministic on CPU: every (rows, seed, recipe, held-out queries) result is kept under
--cache-dir/heldout-runs and reused, so identical training rows (a rule that never fires) train once, and a later
run with more variants only trains the new ones. --data takes a BEIR folder (corpus.jsonl, queries.jsonl,
qrels/SPLIT.tsv) or a folder of the shared Parquet files (corpus.parquet, queries.parquet, qrels/SPLIT.parquet).
"""

from __future__ import annotations

import os

os.environ.setdefault("TQDM_DISABLE", "1")  # sentence-transformers' progress bars, even with verbose=False

import argparse
import hashlib
import json
import math
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
from common import DATASETS
from fn_data import pick_positives
from train import (
    MAX_SEQ_LENGTH,
    NUM_NEGATIVES,
    OUT,
    load_model,
    load_model_for_mining,
    ndcg10,
    rows_inbatch,
    rows_negmine,
    rows_st,
    search,
    train_one,
)

import negmine
from negmine.inputs.data import Corpus, Qrels, Queries

CACHE = Path(os.environ.get("NEGMINE_FN_CACHE", "/work/fn-cache"))
#: The recipe every method trains with (--steps, --batch-size, --lr override it).
RECIPE = {"steps": 24, "batch_size": 16, "learning_rate": 5e-5, "max_seq_length": MAX_SEQ_LENGTH, "loss": "MNRL",
          "warmup": 0.1, "sampler": "no_duplicates"}
#: negmine with every rule off: the plain top-k of the zero-shot model's cosine.
RULES_OFF = {"retriever": "dense", "relative_margin": None, "max_positive_similarity": None,
             "positive_proximity": None, "lexical_overlap": None, "agreement": False, "cross_query": None}
NEGMINE_METHODS: dict[str, dict[str, Any]] = {
    "topk": RULES_OFF,
    "negmine": {},
    "negmine-no-lexical": {"lexical_overlap": None},
    "negmine-no-proximity": {"positive_proximity": None},
    "negmine-no-agreement": {"agreement": False},
    "negmine-no-cross-query": {"cross_query": None},
    "negmine-no-near-duplicate": {"max_positive_similarity": None},
}
ST_METHODS = {"st-0.05": 0.05, "st-0": 0.0}
METHODS = ["zero-shot", "inbatch", *ST_METHODS, *NEGMINE_METHODS]
QUICK_METHODS = ["zero-shot", "inbatch", "st-0.05", "topk", "negmine"]
REFERENCES = ("st-0.05", "inbatch", "negmine")  # the last one reads the ablation: each variant against the defaults
DRAWS = 10_000


# --------------------------------------------------------------------------------------------------------------
# data

@dataclass
class Collection:
    name: str
    corpus: Corpus
    queries: Queries
    positive: dict[str, str]  # query -> its one training positive
    relevant: dict[str, dict[str, float]]  # query -> {judged relevant document: grade}
    qids: list[str]  # judged queries (with a positive in the corpus), in query-file order

    def digest(self) -> str:
        h = hashlib.blake2b(digest_size=8)
        for t in (*self.corpus.keys, *self.corpus.texts, *self.qids):
            h.update(str(t).encode("utf-8", "surrogatepass") + b"\0")
        h.update(json.dumps(self.relevant, sort_keys=True).encode())
        return h.hexdigest()


def load_collection(folder: Path, split: str) -> Collection:
    """A BEIR folder (corpus.jsonl, queries.jsonl, qrels/SPLIT.tsv) or the shared Parquet layout."""
    if (folder / "corpus.parquet").is_file():
        files = {"corpus": folder / "corpus.parquet", "queries": folder / "queries.parquet",
                 "qrels": folder / "qrels" / f"{split}.parquet"}
    else:
        from negmine.inputs.beir import beir_files

        files = beir_files(folder, split)
    corpus = negmine.read_corpus(files["corpus"])
    queries = negmine.read_queries(files["queries"])
    qrels = negmine.read_qrels(files["qrels"])
    positive, _ = pick_positives(qrels)
    relevant: dict[str, dict[str, float]] = {}
    for q, d, s in zip(qrels.query_ids, qrels.doc_ids, qrels.scores):
        if s > 0 and str(d) in corpus.index:
            relevant.setdefault(str(q), {})[str(d)] = float(s)
    qids = [q for q in queries.keys if q in positive and positive[q] in corpus.index]
    return Collection(folder.name, corpus, queries, positive, relevant, qids)


def split_queries(qids: list[str], k: int) -> tuple[list[str], list[str]]:
    """Split ``k``: (training half, held-out half), a seeded permutation of the judged queries."""
    perm = np.random.default_rng(1000 + k).permutation(len(qids))
    half = len(qids) // 2
    return sorted((qids[i] for i in perm[:half]), key=qids.index), sorted((qids[i] for i in perm[half:]),
                                                                         key=qids.index)


def subset_queries(queries: Queries, keep: list[str]) -> Queries:
    rows = [queries.index[q] for q in keep]
    return Queries([queries.keys[i] for i in rows], [queries.texts[i] for i in rows], queries.source)


# --------------------------------------------------------------------------------------------------------------
# training rows

@dataclass
class Rows:
    method: str
    split: int
    data: Any  # a datasets.Dataset: anchor, positive[, negative_1..N]
    fn: int = 0  # written negatives judged relevant to their query
    negatives: int = 0  # written negatives
    served: float = math.nan  # share of training queries with a row
    seconds: float = 0.0

    @property
    def digest(self) -> str:
        h = hashlib.blake2b(digest_size=12)
        for c in self.data.column_names:
            h.update(c.encode() + b"\1")
            for t in self.data[c]:
                h.update(t.encode("utf-8", "surrogatepass") + b"\0")
        return h.hexdigest()


def mine_rows(method: str, col: Collection, train_q: list[str], options: dict[str, Any], cache: Path,
              st_model: Any) -> Rows:
    """The training rows of ``method`` for the training queries ``train_q`` (one positive each)."""
    queries = subset_queries(col.queries, train_q)
    qrels = Qrels(train_q, [col.positive[q] for q in train_q], [1.0] * len(train_q), "one positive")
    t = time.perf_counter()
    if method == "inbatch":
        data = rows_inbatch(col.corpus, queries, qrels)
    elif method in ST_METHODS:
        data = rows_st(col.corpus, queries, qrels, st_model, cache, relative_margin=ST_METHODS[method])
    else:
        data = rows_negmine(col.corpus, queries, qrels, {"device": "cpu", **options}, cache)
    secs = time.perf_counter() - t
    text = col.corpus.texts
    qid_of = {queries.texts[i]: q for i, q in enumerate(queries.keys)}
    rel_texts = {q: {text[col.corpus.index[d]] for d in col.relevant[q]} for q in train_q}
    pos_text = {q: text[col.corpus.index[col.positive[q]]] for q in train_q}
    negs = [c for c in data.column_names if c.startswith("negative")]
    fn = n = 0
    for row in data:
        q = qid_of[row["anchor"]]
        for c in negs:
            n += 1
            fn += row[c] in rel_texts[q] and row[c] != pos_text[q]
    served = len({qid_of[a] for a in data["anchor"]}) / len(train_q)
    return Rows(method, 0, data, fn, n, served, secs)


# --------------------------------------------------------------------------------------------------------------
# training and evaluation

def score_model(model: Any, col: Collection, held: list[str]) -> dict[str, dict[str, float]]:
    """Per held-out query: nDCG@10 and Recall@100 over the whole corpus, every judgment."""
    top = search(model, col.corpus, [col.queries.texts[col.queries.index[q]] for q in held], 100)
    out = {}
    for q, docs in zip(held, top):
        rel = col.relevant[q]
        out[q] = {"ndcg10": ndcg10(docs, rel), "recall100": sum(d in rel for d in docs) / len(rel)}
    return out


def run_key(col_digest: str, rows: Rows, seed: int, recipe: dict[str, Any], held: list[str]) -> str:
    h = hashlib.blake2b(digest_size=12)
    h.update(json.dumps([col_digest, rows.digest, seed, recipe, held], sort_keys=True).encode())
    return h.hexdigest()


def trained_scores(col: Collection, col_digest: str, rows: Rows, seed: int, recipe: dict[str, Any],
                   held: list[str], cache: Path) -> tuple[dict[str, dict[str, float]], float, bool]:
    """(per-query scores, seconds, reused?) of one fine-tuning run, from the run cache when it was done before."""
    path = cache / "heldout-runs" / f"{run_key(col_digest, rows, seed, recipe, held)}.json"
    if path.exists():
        got = json.loads(path.read_text())
        return got["scores"], got["seconds"], True
    t = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="negmine-heldout-") as tmp:
        model = train_one(rows.data, seed, Path(tmp), batch_size=recipe["batch_size"],
                          learning_rate=recipe["learning_rate"], max_steps=recipe["steps"])
    scores = score_model(model, col, held)
    secs = time.perf_counter() - t
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"method": rows.method, "seed": seed, "recipe": recipe, "seconds": secs,
                                "scores": scores}))
    return scores, secs, False


# --------------------------------------------------------------------------------------------------------------
# statistics

@dataclass
class Outcome:
    """One method's figures: per (split, seed) the per-query scores; per split its rows' FN counts."""

    method: str
    scores: dict[tuple[int, int], dict[str, dict[str, float]]] = field(default_factory=dict)
    fn: int = 0
    negatives: int = 0
    served: list[float] = field(default_factory=list)
    same_rows_as: dict[int, str] = field(default_factory=dict)

    def units(self, metric: str) -> dict[tuple[int, str], float]:
        """(split, query) -> the metric averaged over the seeds."""
        acc: dict[tuple[int, str], list[float]] = {}
        for (split, _), per_q in self.scores.items():
            for q, s in per_q.items():
                acc.setdefault((split, q), []).append(s[metric])
        return {u: float(np.mean(v)) for u, v in acc.items()}

    def run_means(self, metric: str) -> dict[tuple[int, int], float]:
        return {k: float(np.mean([s[metric] for s in v.values()])) for k, v in self.scores.items()}

    def mean(self, metric: str) -> float:
        return float(np.mean(list(self.run_means(metric).values()))) if self.scores else math.nan

    @property
    def fn_rate(self) -> float:
        return self.fn / self.negatives if self.negatives else math.nan


def paired(a: Outcome, b: Outcome, metric: str, draws: int = DRAWS, seed: int = 0) -> dict[str, float]:
    """Mean of a - b over (split, held-out query) units (each averaged over seeds), its 95% bootstrap interval,
    and the (split, seed) runs where a's mean beats b's (b without seeds: its one run of the split)."""
    ua, ub = a.units(metric), b.units(metric)
    units = sorted(set(ua) & set(ub))
    if not units:
        return {"diff": math.nan, "lo": math.nan, "hi": math.nan, "wins": 0, "runs": 0}
    d = np.array([ua[u] - ub[u] for u in units])
    idx = np.random.default_rng(seed).integers(0, len(d), size=(draws, len(d)))
    lo, hi = np.percentile(d[idx].mean(axis=1), [2.5, 97.5])
    ra, rb = a.run_means(metric), b.run_means(metric)
    wins = runs = 0
    for (split, s), v in ra.items():
        ref = rb.get((split, s), next((x for (sp, _), x in rb.items() if sp == split), None))
        if ref is not None:
            runs += 1
            wins += v > ref
    return {"diff": float(d.mean()), "lo": float(lo), "hi": float(hi), "wins": wins, "runs": runs,
            "units": len(units)}


def _ci(p: Optional[dict[str, float]]) -> str:
    if not p or math.isnan(p["diff"]):
        return f"{'-':>31}"
    return f"{p['diff']:+.4f} [{p['lo']:+.4f}, {p['hi']:+.4f}] {p['wins']:>2}/{p['runs']:<2}"


def report(outcomes: dict[str, Outcome]) -> dict[str, Any]:
    """Print the tables and the verdicts; return them as plain data."""
    refs = {r: outcomes[r] for r in REFERENCES if r in outcomes}
    table: dict[str, Any] = {}
    for metric, title in (("ndcg10", "nDCG@10"), ("recall100", "Recall@100")):
        print(f"\n  {title}: paired difference, 95% bootstrap interval over (split, held-out query), "
              f"wins = (split, seed) runs ahead")
        print(f"  {'method':28} {'FN':>6} {'served':>6} {'nDCG@10':>8} {'R@100':>7}  "
              f"{'vs ST rm=0.05':^33} {'vs in-batch only':^33} {'vs negmine defaults':^33}")
        for m, o in outcomes.items():
            ps = {r: (paired(o, refs[r], metric) if r in refs and r != m else None) for r in REFERENCES}
            fn = "     -" if math.isnan(o.fn_rate) else f"{o.fn_rate:6.1%}"
            served = "     -" if not o.served else f"{np.mean(o.served):6.1%}"
            same = ("  (rows = " + ", ".join(sorted(set(o.same_rows_as.values()))) + ")") if o.same_rows_as else ""
            print(f"  {m[:28]:28} {fn} {served} {o.mean('ndcg10'):8.4f} {o.mean('recall100'):7.4f}  "
                  f"{_ci(ps['st-0.05'])} {_ci(ps['inbatch'])} {_ci(ps['negmine'])}{same}")
            row = table.setdefault(m, {"fn": o.fn_rate, "served": float(np.mean(o.served)) if o.served else None,
                                       "ndcg10": o.mean("ndcg10"), "recall100": o.mean("recall100"),
                                       "runs": {f"{k[0]}/{k[1]}": v for k, v in o.run_means("ndcg10").items()},
                                       "same_rows_as": {str(k): v for k, v in o.same_rows_as.items()}})
            row[f"vs_{metric}"] = ps
    verdicts = {}
    n, st, ib = outcomes.get("negmine"), outcomes.get("st-0.05"), outcomes.get("inbatch")
    if n and st:
        p = paired(n, st, "ndcg10")
        ok = p["diff"] >= 0.01 and p["lo"] > 0
        verdicts["defaults >= ST + 0.01"] = {"met": ok, **p}
        print(f"\n  target: negmine defaults >= ST (rm 0.05) + 0.01 nDCG@10 with the interval above 0: "
              f"{'MET' if ok else 'NOT met'} (difference {p['diff']:+.4f}, 95% interval "
              f"[{p['lo']:+.4f}, {p['hi']:+.4f}])")
    if n and ib:
        p = paired(n, ib, "ndcg10")
        ok = p["diff"] >= 0
        verdicts["defaults not below in-batch"] = {"met": ok, **p}
        print(f"  target: negmine defaults not below in-batch only (mean difference >= 0): "
              f"{'MET' if ok else 'NOT met'} (difference {p['diff']:+.4f}, 95% interval "
              f"[{p['lo']:+.4f}, {p['hi']:+.4f}]{'; the interval lies below 0' if p['hi'] < 0 else ''})")
    return {"table": table, "verdicts": verdicts}


# --------------------------------------------------------------------------------------------------------------

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DATASETS / "cranfield",
                    help="a BEIR folder or a shared Parquet dataset folder (default: cranfield)")
    ap.add_argument("--split", default="test", help="the qrels split (default: test)")
    ap.add_argument("--splits", type=int, default=3, help="query splits (split k: default_rng(1000 + k))")
    ap.add_argument("--seeds", nargs="+", type=int, default=[12, 13])
    ap.add_argument("--methods", nargs="+", default=None, choices=METHODS,
                    help="default: all (with --negmine-options: zero-shot, inbatch, st-0.05 and the variants)")
    ap.add_argument("--negmine-options", type=json.loads, default={},
                    help='negmine variants as JSON: {"label": {negmine.mine options}, ...}')
    ap.add_argument("--steps", type=int, default=RECIPE["steps"])
    ap.add_argument("--batch-size", type=int, default=RECIPE["batch_size"])
    ap.add_argument("--lr", type=float, default=RECIPE["learning_rate"])
    ap.add_argument("--quick", action="store_true",
                    help="1 split, 1 seed, 4 steps, zero-shot / inbatch / st-0.05 / topk / negmine: end to end")
    ap.add_argument("--cache-dir", type=Path, default=CACHE)
    ap.add_argument("--out", type=Path, default=None, help="default: benchmarks/out/train_heldout-NAME.json")
    args = ap.parse_args()
    t_start = time.perf_counter()

    variants = {f"negmine:{k}": v for k, v in args.negmine_options.items()}
    methods = args.methods or (["zero-shot", "inbatch", "st-0.05"] if variants else list(METHODS))
    splits, seeds, steps = range(args.splits), args.seeds, args.steps
    if args.quick:
        methods = args.methods or QUICK_METHODS
        splits, seeds, steps = range(1), seeds[:1], 4
    methods = methods + list(variants)
    recipe = {**RECIPE, "steps": steps, "batch_size": args.batch_size, "learning_rate": args.lr}
    options = {**NEGMINE_METHODS, **variants}

    col = load_collection(args.data, args.split)
    digest = col.digest()
    per_q = np.mean([len(col.relevant[q]) for q in col.qids])
    print(f"{col.name}: {len(col.corpus):,} documents, {len(col.qids)} judged queries, {per_q:.1f} judged relevant "
          f"per query; {len(splits)} splits x seeds {list(seeds)}; recipe {recipe}; {NUM_NEGATIVES} negatives per "
          f"row; methods {methods}", flush=True)

    outcomes = {m: Outcome(m) for m in methods}
    st_model = load_model_for_mining() if any(m in ST_METHODS for m in methods) else None
    times: dict[str, float] = {}
    for k in splits:
        train_q, held = split_queries(col.qids, k)
        print(f"\nsplit {k}: {len(train_q)} training queries, {len(held)} held-out queries", flush=True)
        if "zero-shot" in methods:
            t = time.perf_counter()
            zs = outcomes["zero-shot"].scores[(k, -1)] = score_model(load_model(), col, held)
            times[f"split {k} zero-shot"] = time.perf_counter() - t
            print(f"  zero-shot: nDCG@10 {np.mean([s['ndcg10'] for s in zs.values()]):.4f}, Recall@100 "
                  f"{np.mean([s['recall100'] for s in zs.values()]):.4f}", flush=True)
        by_digest: dict[str, str] = {}
        for m in methods:
            if m == "zero-shot":
                continue
            rows = mine_rows(m, col, train_q, options.get(m, {}), args.cache_dir, st_model)
            o = outcomes[m]
            o.fn += rows.fn
            o.negatives += rows.negatives
            o.served.append(rows.served)
            if rows.digest in by_digest:
                o.same_rows_as[k] = by_digest[rows.digest]
            by_digest.setdefault(rows.digest, m)
            fn = f"FN {rows.fn / rows.negatives:5.1%} " if rows.negatives else ""
            print(f"  {m}: {len(rows.data)} rows, {fn}served {rows.served:.1%} (mined in {rows.seconds:.1f} s)"
                  + (f"; same rows as {o.same_rows_as[k]}" if k in o.same_rows_as else ""), flush=True)
            for seed in seeds:
                scores, secs, reused = trained_scores(col, digest, rows, seed, recipe, held, args.cache_dir)
                o.scores[(k, seed)] = scores
                times[f"split {k} {m} seed {seed}"] = secs
                nd = np.mean([s["ndcg10"] for s in scores.values()])
                rc = np.mean([s["recall100"] for s in scores.values()])
                print(f"    seed {seed}: nDCG@10 {nd:.4f}, Recall@100 {rc:.4f} "
                      f"({'reused' if reused else 'trained'}, {secs:.0f} s)", flush=True)

    print(f"\n{col.name}: {len(splits)} splits x {len(seeds)} seeds, {recipe['steps']} steps of batch "
          f"{recipe['batch_size']}, lr {recipe['learning_rate']}")
    result = report(outcomes)
    total = time.perf_counter() - t_start
    print(f"  wall time {total:.0f} s")
    out = args.out or OUT / f"train_heldout-{col.name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"data": str(args.data), "splits": len(splits), "seeds": list(seeds), "recipe": recipe,
                               "num_negatives": NUM_NEGATIVES, "options": {m: options.get(m) for m in methods},
                               **result, "seconds": times, "wall_seconds": total}, indent=1, default=str))
    print(f"  figures: {out}")


if __name__ == "__main__":
    main()
