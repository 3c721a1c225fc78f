"""Lay the mined negatives out as a training table, in the column names sentence-transformers training expects.

The text columns come first (``anchor``, ``positive``, ``negative`` ...), then ids and scores; ``select_columns``
with ``training`` keeps only what a trainer consumes, so the file trains as it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np
import pyarrow as pa

from negmine.data import Corpus, Queries


@dataclass
class Selection:
    """What was mined, as flat arrays with one entry per query-positive pair.

    Attributes:
        query: Query index of each pair.
        positive: Corpus index of each pair's positive.
        positive_score: Score of the positive (NaN where unknown).
        negatives: Corpus indices of each pair's negatives, best-ranked first.
        negative_scores: Their scores, aligned with ``negatives``.
        negative_positions: Their positions (ranks) in the query's candidate list.
    """

    query: np.ndarray
    positive: np.ndarray
    positive_score: np.ndarray
    negatives: list[np.ndarray]
    negative_scores: list[np.ndarray]
    negative_positions: list[np.ndarray]


def _list_array(offsets: np.ndarray, values: pa.Array) -> pa.Array:
    return pa.ListArray.from_arrays(pa.array(offsets, type=pa.int32()), values)


def build_table(
    sel: Selection, queries: Queries, corpus: Corpus, output_format: str, num_negatives: int,
    output_scores: bool = False,
) -> pa.Table:
    """The output table for ``output_format`` (``triplet``, ``n-tuple`` or ``labeled-list``).

    ``n-tuple`` rows need exactly ``num_negatives`` negatives: a pair with fewer is left out (and counted short).
    """
    q_text = pa.array(queries.texts, type=pa.string())
    q_ids = pa.array(queries.ids)
    d_text = pa.array(corpus.texts, type=pa.string())
    d_ids = pa.array(corpus.ids)
    counts = np.array([len(n) for n in sel.negatives], dtype=np.int64)
    flat_neg = np.concatenate(sel.negatives).astype(np.int64) if sel.negatives else np.empty(0, np.int64)
    flat_score = (
        np.concatenate(sel.negative_scores).astype(np.float32) if sel.negative_scores else np.empty(0, np.float32)
    )
    cols: dict[str, pa.Array] = {}

    if output_format == "triplet":
        q = np.repeat(sel.query, counts)
        p = np.repeat(sel.positive, counts)
        cols["anchor"] = q_text.take(q)
        cols["positive"] = d_text.take(p)
        cols["negative"] = d_text.take(flat_neg)
        cols["query_id"] = q_ids.take(q)
        cols["positive_id"] = d_ids.take(p)
        cols["negative_id"] = d_ids.take(flat_neg)
        if output_scores:
            cols["positive_score"] = pa.array(np.repeat(sel.positive_score, counts).astype(np.float32))
            cols["negative_score"] = pa.array(flat_score)
    elif output_format == "n-tuple":
        full = counts == num_negatives
        rows = np.flatnonzero(full)
        negs = np.stack([sel.negatives[r] for r in rows]) if rows.size else np.empty((0, num_negatives), np.int64)
        cols["anchor"] = q_text.take(sel.query[rows])
        cols["positive"] = d_text.take(sel.positive[rows])
        for j in range(num_negatives):
            cols[f"negative_{j + 1}"] = d_text.take(negs[:, j].astype(np.int64))
        cols["query_id"] = q_ids.take(sel.query[rows])
        cols["positive_id"] = d_ids.take(sel.positive[rows])
        offsets = np.arange(rows.size + 1) * num_negatives
        cols["negative_ids"] = _list_array(offsets, d_ids.take(negs.ravel().astype(np.int64)))
        if output_scores:
            scores = np.column_stack(
                [sel.positive_score[rows]] + [np.array([sel.negative_scores[r][j] for r in rows]) for j in
                                              range(num_negatives)]
            ) if rows.size else np.empty((0, num_negatives + 1))
            cols["scores"] = _list_array(np.arange(rows.size + 1) * (num_negatives + 1),
                                         pa.array(scores.ravel().astype(np.float32)))
    elif output_format == "labeled-list":
        rows = np.flatnonzero(counts > 0)
        docs = [np.concatenate([[sel.positive[r]], sel.negatives[r]]).astype(np.int64) for r in rows]
        offsets = np.concatenate([[0], np.cumsum([len(d) for d in docs])]).astype(np.int64)
        flat_docs = np.concatenate(docs) if docs else np.empty(0, np.int64)
        labels = np.concatenate([[1] + [0] * (len(d) - 1) for d in docs]) if docs else np.empty(0)
        cols["anchor"] = q_text.take(sel.query[rows])
        cols["docs"] = _list_array(offsets, d_text.take(flat_docs))
        cols["labels"] = _list_array(offsets, pa.array(labels.astype(np.int8)))
        cols["query_id"] = q_ids.take(sel.query[rows])
        cols["doc_ids"] = _list_array(offsets, d_ids.take(flat_docs))
        if output_scores:
            flat = [np.concatenate([[sel.positive_score[r]], sel.negative_scores[r]]) for r in rows]
            values = np.concatenate(flat).astype(np.float32) if flat else np.empty(0, np.float32)
            cols["scores"] = _list_array(offsets, pa.array(values))
    else:  # pragma: no cover - the config validates the format
        raise ValueError(output_format)
    return pa.table(cols)


def training_columns(output_format: str, column_names: Sequence[str]) -> list[str]:
    """The columns of an output table that a trainer consumes: the texts (and a labeled list's labels), in order."""
    if output_format == "labeled-list":
        return ["anchor", "docs", "labels"]
    texts = ["anchor", "positive", "negative"] if output_format == "triplet" else ["anchor", "positive"]
    return texts + [c for c in column_names if c.startswith("negative_") and c[9:].isdigit()]


def select_columns(table: pa.Table, output_format: str, columns: str) -> pa.Table:
    """``table`` with the columns of the ``columns`` set: ``all`` keeps it whole; ``training`` keeps only
    ``training_columns`` (no id or score columns), so that a sentence-transformers trainer takes it as it is."""
    if columns == "all":
        return table
    if columns != "training":  # pragma: no cover - the config validates it
        raise ValueError(columns)
    return table.select(training_columns(output_format, table.column_names))


def negatives_in(table: pa.Table, output_format: str) -> int:
    """How many negatives a built table holds."""
    if output_format == "triplet":
        return table.num_rows
    if output_format == "n-tuple":
        return table.num_rows * sum(1 for c in table.column_names if c.startswith("negative_") and c[9:].isdigit())
    labels = table.column("labels").combine_chunks()
    return int(len(labels.values)) - table.num_rows



def build_candidates_table(
    queries: Queries, corpus: Corpus, mined: Sequence[int], hits: Any, reasons: np.ndarray,
    picks: Sequence[Sequence[np.ndarray]], scores: Optional[np.ndarray], reference: Optional[np.ndarray],
) -> pa.Table:
    """Every candidate of every mined query: ranks, scores, and its fate.

    ``status`` is ``selected`` (written as a negative), ``kept`` (passed every rule, not needed), ``not_scored``
    (lazy scoring stopped before it), or the name of the rule that dropped it.
    """
    from negmine.filters import REASONS

    q_rows, cols = np.nonzero(hits.indices >= 0)
    status = np.array(REASONS, dtype=object)[reasons[q_rows, cols]]
    selected = np.zeros(hits.indices.shape, dtype=bool)
    for row, per_pos in enumerate(picks):
        for chosen in per_pos:
            selected[row, chosen] = True
    status[selected[q_rows, cols]] = "selected"
    mined_arr = np.asarray(mined, dtype=np.int64)
    docs = hits.indices[q_rows, cols]
    table = {
        "query_id": pa.array(queries.ids).take(mined_arr[q_rows]),
        "doc_id": pa.array(corpus.ids).take(docs),
        "rank": pa.array(cols.astype(np.int32)),
        "retrieval_score": pa.array(hits.scores[q_rows, cols].astype(np.float32)),
    }
    for name, ranks in getattr(hits, "source_ranks", {}).items():
        r = ranks[q_rows, cols]
        table[f"{name}_rank"] = pa.array(r, mask=r < 0)
    if scores is not None:
        s = scores[q_rows, cols]
        table["reranker_score"] = pa.array(s, mask=np.isnan(s))
        ref = reference[q_rows] if reference is not None else np.full(len(q_rows), np.nan, np.float32)
        table["positive_score"] = pa.array(ref.astype(np.float32), mask=np.isnan(ref))
    table["status"] = pa.array(status.tolist(), type=pa.string())
    return pa.table(table)
