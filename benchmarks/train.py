"""Do mined negatives train a better retriever? Fine-tune the embedded all-MiniLM-L6-v2 on SciFact train and score
nDCG@10 on SciFact test.

    HF_HUB_OFFLINE=1 python benchmarks/train.py [--methods negmine st inbatch] [--seeds 12 13 14]
        [--negmine-options '{"relative_margin": 0.15}'] [--limit-queries 40 --limit-docs 500]

Methods (the same training recipe for all; only the training rows differ):
  negmine   negmine.mine(..., output_format="n-tuple", num_negatives=3, **--negmine-options) on SciFact train
  st        sentence-transformers mine_hard_negatives(relative_margin=0.05, num_negatives=3, output_format="n-tuple")
  inbatch   (anchor, positive) pairs only: in-batch negatives
Negatives are mined once, with the zero-shot model; each (method, seed) then trains a fresh copy of the model:
MultipleNegativesRankingLoss, 1 epoch, batch 32, max_seq_length 128, learning rate 2e-5, warmup 10%, the
no-duplicates batch sampler (a query with two positives must not meet itself in a batch), seeded with --seeds.
Training columns are anchor, positive, negative_1..3 (anchor, positive for inbatch): no id columns.

Evaluation: exact cosine retrieval of every SciFact test query over the whole corpus with the fine-tuned model
(max_seq_length 128), nDCG@10 against the test qrels (linear gains, log2 discount). It prints per method the
nDCG@10 of each seed, the mean and the range, the zero-shot model's, and whether the target holds: negmine mean >=
ST mean + 0.005 and every negmine seed above every ST seed.

--limit-queries / --limit-docs run a slice (the first N judged train and test queries, a corpus of their judged
documents filled up to the limit with the first others) to check the script end to end in minutes.
"""

from __future__ import annotations

import os

os.environ.setdefault("TQDM_DISABLE", "1")  # sentence-transformers' progress bars, even with verbose=False

import argparse
import json
import math
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
from common import load

import negmine
from negmine.inputs.data import Corpus, Qrels, Queries

OUT = Path(__file__).resolve().parent / "out"
CACHE = Path(os.environ.get("NEGMINE_FN_CACHE", "/work/fn-cache"))
NUM_NEGATIVES = 3
MAX_SEQ_LENGTH = 128


# --------------------------------------------------------------------------------------------------------------
# data

def judged(qrels: Qrels) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = defaultdict(dict)
    for q, d, s in zip(qrels.query_ids, qrels.doc_ids, qrels.scores):
        if s > 0:
            out[str(q)][str(d)] = float(s)
    return dict(out)


def slice_data(corpus: Corpus, queries: Queries, train: Qrels, test: Qrels, limit_queries: Optional[int],
               limit_docs: Optional[int]) -> tuple[Corpus, Queries, Qrels, Qrels]:
    """The first ``limit_queries`` judged train and test queries, and a corpus of their judged documents filled up
    to ``limit_docs`` with the first other documents (everything when no limit is given)."""
    if limit_queries is None and limit_docs is None:
        return corpus, queries, train, test
    tr, te = judged(train), judged(test)
    order = [str(q) for q in queries.ids]
    keep_tr = [q for q in order if q in tr][:limit_queries]
    keep_te = [q for q in order if q in te][:limit_queries]
    docs = {d for q in keep_tr for d in tr[q]} | {d for q in keep_te for d in te[q]}
    docs = {d for d in docs if d in corpus.index}
    for i in corpus.ids:
        if limit_docs is not None and len(docs) >= limit_docs:
            break
        docs.add(str(i))
    rows = [i for i, k in enumerate(corpus.keys) if k in docs]
    c = Corpus([corpus.ids[i] for i in rows], [corpus.texts[i] for i in rows], corpus.source)
    qset = set(keep_tr) | set(keep_te)
    qrows = [i for i, k in enumerate(queries.keys) if k in qset]
    q = Queries([queries.ids[i] for i in qrows], [queries.texts[i] for i in qrows], queries.source)

    def sub(qr: Qrels, keep: Sequence[str]) -> Qrels:
        ks = set(keep)
        rows = [i for i, (a, b) in enumerate(zip(qr.query_ids, qr.doc_ids)) if str(a) in ks and str(b) in docs]
        return Qrels([qr.query_ids[i] for i in rows], [qr.doc_ids[i] for i in rows], [qr.scores[i] for i in rows],
                     qr.source)

    return c, q, sub(train, keep_tr), sub(test, keep_te)


def pairs_of(corpus: Corpus, queries: Queries, qrels: Qrels) -> tuple[list[str], list[str]]:
    anchors, positives = [], []
    for q, d, s in zip(qrels.query_ids, qrels.doc_ids, qrels.scores):
        if s > 0 and str(q) in queries.index and str(d) in corpus.index:
            anchors.append(queries.texts[queries.index[str(q)]])
            positives.append(corpus.texts[corpus.index[str(d)]])
    return anchors, positives


# --------------------------------------------------------------------------------------------------------------
# training rows per method

def rows_negmine(corpus: Corpus, queries: Queries, train: Qrels, options: dict[str, Any], cache: Path):  # type: ignore[no-untyped-def]
    from datasets import Dataset

    options = {"num_negatives": NUM_NEGATIVES, **options}
    res = negmine.mine(corpus, queries, train, cache_dir=cache / "negmine", output_format="n-tuple", **options)
    cols = ["anchor", "positive"] + [f"negative_{j + 1}" for j in range(options["num_negatives"])]
    return Dataset.from_dict({c: res.table.column(c).to_pylist() for c in cols})


def rows_st(corpus: Corpus, queries: Queries, train: Qrels, model: Any, cache: Path,  # type: ignore[no-untyped-def]
            relative_margin: Optional[float] = 0.05, num_negatives: int = NUM_NEGATIVES):
    from datasets import Dataset
    from sentence_transformers.util import mine_hard_negatives

    anchors, positives = pairs_of(corpus, queries, train)
    out = mine_hard_negatives(Dataset.from_dict({"anchor": anchors, "positive": positives}), model,
                              corpus=list(corpus.texts), relative_margin=relative_margin, num_negatives=num_negatives,
                              output_format="n-tuple", sampling_strategy="top", batch_size=64, verbose=False,
                              cache_folder=str(cache / "st"))
    return out.select_columns(["anchor", "positive"] + [f"negative_{j + 1}" for j in range(num_negatives)])


def rows_inbatch(corpus: Corpus, queries: Queries, train: Qrels):  # type: ignore[no-untyped-def]
    from datasets import Dataset

    anchors, positives = pairs_of(corpus, queries, train)
    return Dataset.from_dict({"anchor": anchors, "positive": positives})


# --------------------------------------------------------------------------------------------------------------
# model, training, evaluation

def load_model():  # type: ignore[no-untyped-def]
    from sentence_transformers import SentenceTransformer

    from negmine.retrieve.encoders import default_model_path

    model = SentenceTransformer(str(default_model_path()), device="cpu")
    model.max_seq_length = MAX_SEQ_LENGTH
    return model


def train_one(rows: Any, seed: int, work: Path, epochs: float = 1, batch_size: int = 32,  # type: ignore[no-untyped-def]
              learning_rate: float = 2e-5, max_steps: int = -1, batch_sampler: Any = None):
    """A fresh copy of the zero-shot model fine-tuned on ``rows`` (MNRL; ``max_steps`` > 0 overrides ``epochs``:
    the trainer cycles over the rows, reshuffled each epoch, until it has taken that many optimizer steps;
    ``batch_sampler``: the trainer's, default its no-duplicates sampler)."""
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.base.sampler import BatchSamplers
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from transformers import set_seed

    set_seed(seed)
    model = load_model()
    sampler = BatchSamplers.NO_DUPLICATES if batch_sampler is None else batch_sampler
    args = SentenceTransformerTrainingArguments(
        output_dir=str(work), num_train_epochs=epochs, max_steps=max_steps, per_device_train_batch_size=batch_size,
        learning_rate=learning_rate, warmup_steps=0.1, seed=seed, data_seed=seed,
        batch_sampler=sampler, save_strategy="no", report_to="none", logging_strategy="no",
        disable_tqdm=True, use_cpu=True, dataloader_num_workers=0,
    )
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=rows,
                                         loss=MultipleNegativesRankingLoss(model))
    trainer.train()
    return model


def ndcg10(docs: Sequence[str], rel: dict[str, float]) -> float:
    """nDCG@10 of one query's ranking: gain = relevance grade, discount 1 / log2(rank + 1)."""
    dcg = sum(rel.get(d, 0.0) / math.log2(i + 2) for i, d in enumerate(docs[:10]))
    ideal = sorted(rel.values(), reverse=True)[:10]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def ndcg_at_10(ranked: dict[str, list[str]], qrels: dict[str, dict[str, float]]) -> float:
    """Mean nDCG@10 over the judged queries: gain = relevance grade, discount 1 / log2(rank + 1)."""
    scores = [ndcg10(ranked.get(q, []), rel) for q, rel in qrels.items()]
    return float(np.mean(scores)) if scores else math.nan


def test_judgments(corpus: Corpus, queries: Queries, test: Qrels) -> dict[str, dict[str, float]]:
    """query -> {document: grade} of the judged queries in ``queries`` (documents outside the corpus left out)."""
    rel = {q: r for q, r in judged(test).items() if q in queries.index}
    rel = {q: {d: s for d, s in r.items() if d in corpus.index} for q, r in rel.items()}
    return {q: r for q, r in rel.items() if r}


def search(model: Any, corpus: Corpus, qtexts: Sequence[str], k: int) -> list[list[str]]:
    """Exact cosine retrieval over the whole corpus: each query's top ``k`` document ids, best first."""
    dv = model.encode(list(corpus.texts), batch_size=64, normalize_embeddings=True, convert_to_numpy=True,
                      show_progress_bar=False)
    qv = model.encode(list(qtexts), batch_size=64, normalize_embeddings=True, convert_to_numpy=True,
                      show_progress_bar=False)
    sims = qv @ dv.T
    top = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    keys = corpus.keys
    return [[keys[j] for j in row] for row in top]


def evaluate(model: Any, corpus: Corpus, queries: Queries, test: Qrels) -> float:
    rel = test_judgments(corpus, queries, test)
    qids = list(rel)
    top = search(model, corpus, [queries.texts[queries.index[q]] for q in qids], 10)
    return ndcg_at_10(dict(zip(qids, top)), rel)


def verdict(results: dict[str, list[float]], ours: str = "negmine", theirs: str = "st",
            names: tuple[str, str] = ("negmine", "ST")) -> Optional[str]:
    """The seeds target: ``ours``' mean >= ``theirs``' + 0.005 and every seed of ours above every seed of theirs."""
    n, s = results.get(ours), results.get(theirs)
    if not n or not s:
        return None
    gain = float(np.mean(n) - np.mean(s))
    ok = gain >= 0.005 and min(n) > max(s)
    a, b = names
    return (f"target ({a} mean >= {b} mean + 0.005 and every {a} seed above every {b} seed): "
            f"{'MET' if ok else 'NOT met'} (mean gain {gain:+.4f}; {a} min {min(n):.4f} vs {b} max {max(s):.4f})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", nargs="+", default=["negmine", "st", "inbatch"],
                    choices=["negmine", "st", "inbatch"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[12, 13, 14])
    ap.add_argument("--negmine-options", default="{}", help="JSON dict of negmine.mine options (MineConfig fields)")
    ap.add_argument("--limit-queries", type=int, default=None)
    ap.add_argument("--limit-docs", type=int, default=None)
    ap.add_argument("--no-zero-shot", action="store_true")
    ap.add_argument("--cache-dir", type=Path, default=CACHE)
    ap.add_argument("--out", type=Path, default=OUT / "train.json")
    args = ap.parse_args()
    options = json.loads(args.negmine_options)
    t_start = time.perf_counter()

    corpus, queries, train, _ = load("scifact", "train")
    _, _, test, _ = load("scifact", "test")
    corpus, queries, train, test = slice_data(corpus, queries, train, test, args.limit_queries, args.limit_docs)
    n_pairs = len(pairs_of(corpus, queries, train)[0])
    print(f"SciFact: {len(corpus):,} documents, {len(judged(train))} train queries ({n_pairs} pairs), "
          f"{len(judged(test))} test queries; negmine options {options}", flush=True)

    times: dict[str, float] = {}
    rows: dict[str, Any] = {}
    for m in args.methods:
        t = time.perf_counter()
        if m == "negmine":
            rows[m] = rows_negmine(corpus, queries, train, options, args.cache_dir)
        elif m == "st":
            rows[m] = rows_st(corpus, queries, train, load_model_for_mining(), args.cache_dir)
        else:
            rows[m] = rows_inbatch(corpus, queries, train)
        times[f"mine {m}"] = time.perf_counter() - t
        print(f"  {m}: {len(rows[m])} training rows, columns {rows[m].column_names} "
              f"({times[f'mine {m}']:.1f} s)", flush=True)

    results: dict[str, list[float]] = {}
    if not args.no_zero_shot:
        t = time.perf_counter()
        results["zero-shot"] = [evaluate(load_model(), corpus, queries, test)]
        times["zero-shot eval"] = time.perf_counter() - t
        print(f"  zero-shot nDCG@10 {results['zero-shot'][0]:.4f} ({times['zero-shot eval']:.1f} s)", flush=True)
    for m in args.methods:
        results[m] = []
        for seed in args.seeds:
            t = time.perf_counter()
            with tempfile.TemporaryDirectory(prefix="negmine-train-") as tmp:
                model = train_one(rows[m], seed, Path(tmp))
            t_train = time.perf_counter() - t
            score = evaluate(model, corpus, queries, test)
            times[f"{m} seed {seed}"] = time.perf_counter() - t
            results[m].append(score)
            print(f"  {m} seed {seed}: nDCG@10 {score:.4f} (train {t_train:.1f} s, total "
                  f"{times[f'{m} seed {seed}']:.1f} s)", flush=True)

    print(f"\n  {'method':10} {'seeds':>14} {'nDCG@10 per seed':>28} {'mean':>7} {'range':>15}")
    for m, v in results.items():
        seeds = "-" if m == "zero-shot" else " ".join(map(str, args.seeds))
        print(f"  {m:10} {seeds:>14} {' '.join(f'{x:.4f}' for x in v):>28} {np.mean(v):7.4f} "
              f"{min(v):.4f}-{max(v):.4f}")
    line = verdict(results)
    if line:
        print("  " + line)
    total = time.perf_counter() - t_start
    print(f"  wall time {total:.1f} s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"options": options, "seeds": args.seeds, "results": results, "verdict": line,
                                    "limit_queries": args.limit_queries, "limit_docs": args.limit_docs,
                                    "seconds": times, "wall_seconds": total}, indent=1))


def load_model_for_mining():  # type: ignore[no-untyped-def]
    """The zero-shot model as mine_hard_negatives embeds with it (its own max_seq_length, as negmine's default)."""
    from sentence_transformers import SentenceTransformer

    from negmine.retrieve.encoders import default_model_path

    return SentenceTransformer(str(default_model_path()), device="cpu")


if __name__ == "__main__":
    main()
