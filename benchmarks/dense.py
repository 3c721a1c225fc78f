"""Dense mining cost against the model's own encoding cost and sentence-transformers' mine_hard_negatives,
plus candidate recall of bm25 / dense / hybrid. Run by hand:

    HF_HUB_OFFLINE=1 python benchmarks/dense.py [--data scifact] [--split train] [--batch-size 64]

Side by side in one run, on the same texts with the same model (all-MiniLM-L6-v2, max_seq_length 256):
  1. plain model.encode of the corpus and the judged queries (the floor)
  2. sentence-transformers mine_hard_negatives (5 negatives, top sampling, range_max 100)
  3. negmine --retriever dense, cold (empty cache)
  4. negmine, warm (same corpus, same cache)
  5. negmine after editing 1% of the documents
Then recall@100 of the judged positives among the candidates of each retriever.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from common import DATASETS, load, timed

import negmine
from negmine.inputs.data import match_positives
from negmine.retrieve.build import make_retriever
from negmine.retrieve.encoders import default_model_path
from negmine.settings.config import MineConfig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="scifact")
    ap.add_argument("--split", default="train")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--skip-st", action="store_true", help="skip mine_hard_negatives")
    args = ap.parse_args()

    corpus, queries, qrels, data = load(args.data, args.split)
    positives = match_positives(qrels, queries, corpus)
    mined = [i for i, p in enumerate(positives.by_query) if p]
    qtexts = [queries.texts[i] for i in mined]
    print(f"{data.name}: {len(corpus):,} documents, {len(mined):,} judged queries ({args.split}), "
          f"batch size {args.batch_size}")
    work = Path(tempfile.mkdtemp(prefix="negmine-bench-"))
    qrels_path = DATASETS / args.data / "qrels" / f"{args.split}.parquet"
    times: dict[str, float] = {}

    from sentence_transformers import SentenceTransformer

    from negmine.retrieve.encoders import pick_device

    model = SentenceTransformer(str(default_model_path()), device=pick_device(args.device))
    with timed("1 plain model.encode", times):
        model.encode(corpus.texts, batch_size=args.batch_size, normalize_embeddings=True, show_progress_bar=False)
        model.encode(qtexts, batch_size=args.batch_size, normalize_embeddings=True, show_progress_bar=False)

    if not args.skip_st:
        from datasets import Dataset
        from sentence_transformers.util import mine_hard_negatives

        anchors, pos_texts = [], []
        for i in mined:
            for d in positives.by_query[i]:
                anchors.append(queries.texts[i])
                pos_texts.append(corpus.texts[d])
        pairs = Dataset.from_dict({"anchor": anchors, "positive": pos_texts})
        with timed("2 mine_hard_negatives", times):
            mine_hard_negatives(pairs, model, corpus=corpus.texts, num_negatives=5, range_max=100,
                                sampling_strategy="top", batch_size=args.batch_size, use_faiss=True, verbose=False)

    cache = work / "cache"
    common = dict(retriever="dense", num_negatives=5, batch_size=args.batch_size, device=args.device,
                  cache_dir=cache)
    with timed("3 negmine cold", times):
        cold = negmine.mine(data / "corpus.parquet", data / "queries.parquet", qrels_path, **common)
    with timed("4 negmine warm", times):
        warm = negmine.mine(data / "corpus.parquet", data / "queries.parquet", qrels_path, **common)

    # edit 1% of the documents (every 100th gets a sentence appended) and mine again with the same cache
    table = pq.read_table(data / "corpus.parquet")
    texts = table.column("text").to_pylist()
    for i in range(0, len(texts), 100):
        texts[i] = texts[i] + " This abstract was revised."
    edited = work / "corpus-edited.parquet"
    pq.write_table(table.set_column(table.schema.get_field_index("text"), "text", pa.array(texts)), edited)
    with timed("5 negmine after 1% edit", times):
        edit = negmine.mine(edited, data / "queries.parquet", qrels_path, **common)

    print("\ntexts encoded / from cache:")
    for label, r in (("cold", cold), ("warm", warm), ("1% edit", edit)):
        print(f"  {label:8} {r.stats.texts_encoded:>6,} / {r.stats.texts_cached:,}")
    print("\nratios:")
    plain = times["1 plain model.encode"]
    print(f"  negmine cold / plain encode          {times['3 negmine cold'] / plain:.2f}x  (target <= 1.15)")
    if "2 mine_hard_negatives" in times:
        print(f"  negmine cold / mine_hard_negatives   {times['3 negmine cold'] / times['2 mine_hard_negatives']:.2f}x"
              "  (target <= 1.0)")
    print(f"  negmine warm / cold                  {times['4 negmine warm'] / times['3 negmine cold']:.3f}"
          "  (target < 0.10)")
    print(f"  negmine 1% edit / cold               {times['5 negmine after 1% edit'] / times['3 negmine cold']:.3f}"
          "  (target < 0.10)")

    print("\nrecall@100 of judged positives among the candidates:")
    for name in ("bm25", "dense", "hybrid"):
        config = MineConfig(retriever=name, batch_size=args.batch_size, device=args.device)
        retriever = make_retriever(config, corpus, negmine.Progress(), cache)
        hits = retriever.search(qtexts, 100)
        found = total = 0
        for row, q in enumerate(mined):
            top = set(hits.indices[row, :100][hits.indices[row, :100] >= 0].tolist())
            pos = positives.by_query[q]
            found += sum(1 for d in pos if d in top)
            total += len(pos)
        print(f"  {name:7} {found / total:.4f}  ({found}/{total})")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
