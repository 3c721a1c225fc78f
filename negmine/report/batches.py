"""In-batch false negatives of an output written in training batches (``--train-batch-size``), against fuller
judgments: with MultipleNegativesRankingLoss every document of the other rows of a batch is a negative of each
row, so a document judged relevant to the row's query there is a false negative the miner never wrote. Counted
for the file's batches and, as the baseline, for random batches of the same rows and size."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import numpy as np

from negmine.batching.compose import in_batch_false_negatives, random_batches
from negmine.errors import InputError
from negmine.inputs.data import string_keys

#: Random batchings the file's batches are compared with (their mean).
RANDOM_SEEDS = (0, 1, 2)


def row_documents(table: Any, path: Path) -> tuple[list[str], list[str], list[list[str]]]:
    """Each row's query id, positive id and other documents (negatives; a FlagEmbedding row's other positives)."""
    names = table.column_names

    def ids(name: str) -> list[Any]:
        if name not in names:
            raise InputError(f"{path}: no {name!r} column: the in-batch audit reads the output's ids (mine with "
                             "--columns all, the default)")
        column = table.column(name)
        if hasattr(column.type, "value_type"):
            return [[str(x) for x in row] for row in column.to_pylist()]
        return string_keys(column).to_pylist()

    if "neg" in names:  # flagembedding
        positives = ids("pos_ids")
        return ids("query_id"), [p[0] for p in positives], [n + p[1:] for n, p in zip(ids("neg_ids"), positives)]
    negatives = [[d] for d in ids("negative_id")] if "negative" in names else ids("negative_ids")
    return ids("query_id"), ids("positive_id"), negatives


def in_batch_audit(table: Any, path: Path, relevant: set[tuple[str, str]]) -> Optional[dict[str, Any]]:
    """The in-batch false negatives of an output's batches (``None`` without a ``batch`` column), per 1,000 rows,
    and those of random batches of the same rows and size."""
    if "batch" not in table.column_names:
        return None
    queries, positives, negatives = row_documents(table, path)
    by_query: dict[str, set[str]] = {}
    for q, d in relevant:
        by_query.setdefault(q, set()).add(d)
    batch = np.asarray(table.column("batch").to_numpy(zero_copy_only=False), dtype=np.int64)
    n = len(batch)
    size = int(np.bincount(batch).max()) if n else 0
    found = in_batch_false_negatives(queries, positives, negatives, batch.tolist(), by_query)
    shuffled = [in_batch_false_negatives(queries, positives, negatives, random_batches(n, size, seed).tolist(),
                                         by_query) for seed in RANDOM_SEEDS] if n else [0]
    per = 1000 / n if n else float("nan")
    return {"rows": n, "batch_size": size, "false_negatives": found, "per_1000_rows": round(found * per, 3),
            "random_per_1000_rows": round(float(np.mean(shuffled)) * per, 3)}


def in_batch_rows(record: dict[str, Any]) -> list[tuple[str, str]]:
    """Summary lines of ``in_batch_audit``."""
    return [("in-batch false negatives", f"{record['per_1000_rows']:,.1f} per 1,000 rows ({record['false_negatives']:,}"
             f" in {record['rows']:,} rows, batches of {record['batch_size']}); random batches: "
             f"{record['random_per_1000_rows']:,.1f}")]
