"""False negatives among mined negatives, on collections with many judged relevant documents per query.

    HF_HUB_OFFLINE=1 python benchmarks/false_negatives.py [--datasets cranfield msmarco-dl19-subset] [-n 5]

Each query gets ONE judged document as its positive (the highest grade, then the smallest id); every other judged
relevant document that is mined as a negative is a false negative. Side by side in one run, with the same model
(all-MiniLM-L6-v2) and the same number of negatives, it compares:
  - plain top-k: the k best dense candidates that are not the positive,
  - sentence-transformers mine_hard_negatives with relative_margin=0.05 and its default window, given a
    cross_encoder that scores with the same bi-encoder's cosine and counts the pairs it is asked for,
  - negmine with ST's settings (a check: it should reproduce ST's picks),
  - negmine with its defaults, ST with negmine's settings (for the pairs figure at equal settings),
  - a sweep of negmine settings (margin, window, retriever, sampling, near-duplicate limit, range_min),
and prints per method: the false-negative rate, the share of queries that got all their negatives, how hard the
negatives are (mean rank in the query's full dense ranking), and the reranker pairs scored (positives included).
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from common import load

import negmine
from negmine.data import Qrels
from negmine.dense import DenseRetriever
from negmine.mine import make_encoder


def pick_positives(qrels: Qrels) -> tuple[dict[str, str], dict[str, set[str]]]:
    """The one positive per query (highest grade, then smallest id) and every judged relevant doc."""
    relevant: dict[str, set[str]] = defaultdict(set)
    best: dict[str, tuple[float, str]] = {}

    def id_key(d: str) -> tuple[int, int | str]:
        return (0, int(d)) if d.isdigit() else (1, d)

    for q, d, s in zip(qrels.query_ids, qrels.doc_ids, qrels.scores):
        q, d = str(q), str(d)
        if s <= 0:
            continue
        relevant[q].add(d)
        if q not in best or (s, _neg(id_key(d))) > (best[q][0], _neg(id_key(best[q][1]))):
            best[q] = (s, d)
    return {q: d for q, (_, d) in best.items()}, relevant


def _neg(key: tuple[int, int | str]) -> tuple:
    """Invert an id key so that max() picks the smallest id."""
    kind, value = key
    return (-kind, -value) if isinstance(value, int) else (-kind, tuple(-ord(c) for c in value))


class CountingBiEncoderCE:
    """Looks like a CrossEncoder to mine_hard_negatives, scores with the bi-encoder's cosine, counts pairs."""

    def __init__(self, model) -> None:  # type: ignore[no-untyped-def]
        self.model = model
        self.pairs = 0
        self.memo: dict[str, torch.Tensor] = {}

    def _vectors(self, texts: list[str], batch_size: int) -> torch.Tensor:
        new = [t for t in dict.fromkeys(texts) if t not in self.memo]
        if new:
            vecs = self.model.encode(new, batch_size=batch_size, normalize_embeddings=True, convert_to_tensor=True,
                                     show_progress_bar=False)
            self.memo.update(zip(new, vecs))
        return torch.stack([self.memo[t] for t in texts])

    def predict(self, pairs, batch_size=32, convert_to_tensor=True, pool=None, **_):  # type: ignore[no-untyped-def]
        self.pairs += len(pairs)
        q = self._vectors([a for a, _ in pairs], batch_size)
        d = self._vectors([b for _, b in pairs], batch_size)
        return (q * d).sum(-1)


def evaluate(name: str, mined: dict[str, list[str]], relevant: dict[str, set[str]], n: int,
             dense_rank: dict[str, dict[str, int]], queries: list[str], pairs: int | None, secs: float) -> None:
    negs = [(q, d) for q in queries for d in mined.get(q, [])]
    fn = sum(1 for q, d in negs if d in relevant[q])
    served = sum(1 for q in queries if len(mined.get(q, [])) >= n)
    ranks = [dense_rank[q][d] for q, d in negs]
    print(f"  {name:44} {fn / max(len(negs), 1):>7.1%} {served / len(queries):>8.1%} "
          f"{np.mean(ranks) if ranks else float('nan'):>10.1f} {pairs if pairs is not None else '-':>9} "
          f"{secs:>7.1f}s", flush=True)


def run_dataset(name: str, n: int, cache: Path) -> None:
    corpus, queries, qrels, _ = load(name, "test")
    positive, relevant = pick_positives(qrels)
    qids = [q for q in (str(k) for k in queries.ids) if q in positive]
    one = Qrels(qids, [positive[q] for q in qids], [1.0] * len(qids), "one-positive")
    print(f"\n{name}: {len(corpus):,} documents, {len(qids)} queries, "
          f"{np.mean([len(relevant[q]) for q in qids]):.1f} judged relevant per query; {n} negatives")

    # full dense ranking per query, for hardness
    config = negmine.MineConfig()
    dense = DenseRetriever(make_encoder(config), cache)
    dvec = dense.embed(corpus.texts, "document")
    qvec = dense.embed([queries.texts[queries.index[q]] for q in qids], "query")
    sims = qvec @ dvec.T
    order = np.argsort(-sims, axis=1, kind="stable")
    dense_rank = {}
    for i, q in enumerate(qids):
        r = np.empty(len(corpus), dtype=np.int64)
        r[order[i]] = np.arange(1, len(corpus) + 1)
        dense_rank[q] = {str(corpus.ids[j]): int(r[j]) for j in range(len(corpus))}

    print(f"  {'method':44} {'FN rate':>7} {'served':>8} {'mean rank':>10} {'pairs':>9} {'time':>8}")

    def negmine_run(label: str, **opts) -> None:  # type: ignore[no-untyped-def]
        t = time.perf_counter()
        res = negmine.mine(corpus, queries, one, cache_dir=cache, num_negatives=n, **opts)
        mined: dict[str, list[str]] = defaultdict(list)
        for q, d in zip(res.table.column("query_id").to_pylist(), res.table.column("negative_id").to_pylist()):
            mined[str(q)].append(str(d))
        pairs = res.stats.pairs_scored + res.stats.positive_pairs_scored
        evaluate(label, mined, relevant, n, dense_rank, qids, pairs, time.perf_counter() - t)

    negmine_run("plain top-k (dense, no filters)", retriever="dense", relative_margin=None,
                max_positive_similarity=None)

    from datasets import Dataset
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.util import mine_hard_negatives

    from negmine.models import default_model_path

    model = SentenceTransformer(str(default_model_path()), device="cpu")
    text_to_id = {}
    for i, t in enumerate(corpus.texts):
        text_to_id.setdefault(t, str(corpus.ids[i]))
    qtext = {q: queries.texts[queries.index[q]] for q in qids}
    pairs_ds = Dataset.from_dict({"anchor": [qtext[q] for q in qids],
                                  "positive": [corpus.texts[corpus.index[positive[q]]] for q in qids]})
    qid_of = {v: k for k, v in qtext.items()}

    def st_run(label: str, ce: CountingBiEncoderCE | None, **opts) -> None:  # type: ignore[no-untyped-def]
        t = time.perf_counter()
        out = mine_hard_negatives(pairs_ds, model, corpus=list(corpus.texts), cross_encoder=ce, num_negatives=n,
                                  sampling_strategy="top", batch_size=64, verbose=False, **opts)
        mined = defaultdict(list)
        for row in out:
            mined[qid_of[row["anchor"]]].append(text_to_id[row["negative"]])
        evaluate(label, mined, relevant, n, dense_rank, qids, ce.pairs if ce else None, time.perf_counter() - t)

    ce = CountingBiEncoderCE(model)
    st_run("ST mine_hard_negatives rm=0.05 (its defaults)", ce, relative_margin=0.05)
    negmine_run("negmine, ST's settings (dense rm=0.05 w=51)", retriever="dense", relative_margin=0.05,
                range_max=ce_default_window(n), max_positive_similarity=None)
    negmine_run("negmine defaults", **{})
    ce = CountingBiEncoderCE(model)
    st_run("ST, negmine's settings (rm=0.15 w=200)", ce, relative_margin=0.15, range_max=200)
    for rm in (0.05, 0.1, 0.15, 0.2, 0.3):
        negmine_run(f"negmine hybrid top rm={rm}", relative_margin=rm)
    negmine_run("negmine hybrid top rm=0.15 w=100", relative_margin=0.15, range_max=100)
    negmine_run("negmine dense top rm=0.15", retriever="dense", relative_margin=0.15)
    negmine_run("negmine hybrid random rm=0.15", relative_margin=0.15, sampling_strategy="random")
    negmine_run("negmine hybrid top rm=0.15 max-pos-sim=0.9", relative_margin=0.15, max_positive_similarity=0.9)
    negmine_run("negmine hybrid top rm=0.15 range-min=3", relative_margin=0.15, range_min=3)


def ce_default_window(n: int) -> int:
    """mine_hard_negatives' range_max when a margin is set and range_max is not: 10 x N + the positives (1)."""
    return 10 * n + 1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="+", default=["cranfield", "msmarco-dl19-subset"])
    ap.add_argument("-n", "--num-negatives", type=int, default=5)
    ap.add_argument("--cache-dir", default=None, help="embedding cache (default: a fresh temporary folder)")
    args = ap.parse_args()
    import tempfile

    cache = Path(args.cache_dir) if args.cache_dir else Path(tempfile.mkdtemp(prefix="negmine-fn-"))
    torch.set_num_threads(max(1, torch.get_num_threads()))
    for name in args.datasets:
        run_dataset(name, args.num_negatives, cache)


if __name__ == "__main__":
    main()
