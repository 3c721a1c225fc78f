"""BM25 indexing and retrieval: negmine against rank-bm25, side by side on the same tokens.

    python benchmarks/bm25.py [--data ../shared/datasets/scifact] [--split train] [--k 100]

Both get the same tokenized queries (negmine's tokenizer). rank-bm25 indexes the corpus tokenized beforehand (the
tokenization time is printed on its own); negmine's index time includes its own tokenizing of the corpus (its
build reads the texts). For corpora of millions of documents see bm25_scale.py. negmine is timed with the
Robertson variant (BM25Okapi's formula) and with its default, Lucene. Prints the times and negmine's speed-up, and
checks that both produce the same top-10 rankings with the Robertson variant (rank-bm25's BM25Okapi formula).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from rank_bm25 import BM25Okapi

import negmine
from negmine.retrieve.base import topk
from negmine.retrieve.bm25 import BM25Retriever


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared/datasets/scifact"))
    ap.add_argument("--split", default="train")
    ap.add_argument("--k", type=int, default=100)
    args = ap.parse_args()
    data = Path(args.data)
    corpus = negmine.read_corpus(data / "corpus.parquet")
    queries = negmine.read_queries(data / "queries.parquet")
    qrels = negmine.read_qrels(data / "qrels" / f"{args.split}.parquet")
    judged = sorted({str(q) for q in qrels.query_ids}, key=lambda x: queries.index.get(x, -1))
    qtexts = [queries.texts[queries.index[q]] for q in judged if q in queries.index]
    print(f"{data.name}: {len(corpus):,} documents, {len(qtexts):,} queries ({args.split}), k={args.k}")

    nm = BM25Retriever(method="robertson")
    t = time.perf_counter()
    doc_tokens = nm.tokenize(corpus.texts)
    query_tokens = nm.tokenize(qtexts)
    t_tok = time.perf_counter() - t

    def negmine_times(retriever: BM25Retriever) -> tuple[float, float, object]:
        t = time.perf_counter()
        retriever.index(corpus.texts)
        t_index = time.perf_counter() - t
        t = time.perf_counter()
        found = retriever.search_tokens(query_tokens, args.k)
        return t_index, time.perf_counter() - t, found

    t_nm_index, t_nm_search, hits = negmine_times(nm)
    t_lu_index, t_lu_search, _ = negmine_times(BM25Retriever(method="lucene"))

    t = time.perf_counter()
    ref = BM25Okapi(doc_tokens, k1=1.5, b=0.75)
    t_rb_index = time.perf_counter() - t
    t = time.perf_counter()
    ref_top = [topk(np.asarray(ref.get_scores(q), dtype=np.float32), args.k)[0] for q in query_tokens]
    t_rb_search = time.perf_counter() - t

    same = 0
    for i in range(len(qtexts)):
        ours = hits.indices[i, :10]  # type: ignore[attr-defined]
        ours = ours[ours >= 0]
        same += int(np.array_equal(ours, ref_top[i][: ours.size]))
    print(f"tokenization (shared, negmine's tokenizer): {t_tok:.3f} s")
    print(f"{'stage':<28} {'negmine':>9} {'rank-bm25':>10} {'speed-up':>9}")
    for label, ours, theirs in (
        ("index (robertson)", t_nm_index, t_rb_index),
        ("retrieve (robertson)", t_nm_search, t_rb_search),
        ("index (lucene, default)", t_lu_index, t_rb_index),
        ("retrieve (lucene, default)", t_lu_search, t_rb_search),
    ):
        print(f"{label:<28} {ours:>8.3f}s {theirs:>9.3f}s {theirs / ours:>8.1f}x")
    print(f"same top-10 ranking on {same}/{len(qtexts)} queries (Robertson variant = BM25Okapi)")
    # note: queries whose top-10 contains tied scores may order ties differently in rank-bm25's own sort;
    # here both sides break ties the same way (negmine.retrieve.base.topk).


if __name__ == "__main__":
    main()
