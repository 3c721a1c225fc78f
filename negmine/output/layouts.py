"""Lay the mined negatives out as a training table, in the column names its trainer expects: sentence-transformers'
(``triplet``, ``n-tuple``, ``labeled-pair``, ``labeled-list``) or FlagEmbedding's (``flagembedding``).

The text columns come first (``anchor``, ``positive``, ``negative`` ...), then ids and scores; ``select_columns``
with ``training`` keeps only what a trainer consumes, so the file trains as it is. ``triplet``, ``n-tuple`` and
``labeled-list`` have a row (or rows) per query-positive pair; ``labeled-pair`` and ``flagembedding`` gather a
query's positives and the union of their negatives.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any, Callable, Optional, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from negmine.inputs.data import Corpus, Queries, take_rows
from negmine.sampling.selection import Selection


def _list_array(offsets: np.ndarray, values: pa.Array) -> pa.Array:
    return pa.ListArray.from_arrays(pa.array(offsets, type=pa.int32()), values)


#: Rows of one input column as a plain array (``partial(take_rows, column)``).
Take = Callable[[Any], pa.Array]


@dataclass
class QueryGroup:
    """A query's positives and the union of its pairs' negatives (first seen first), with their scores."""

    query: int
    positives: np.ndarray
    positive_scores: np.ndarray
    negatives: np.ndarray
    negative_scores: np.ndarray
    negative_bands: Optional[np.ndarray] = None


def by_query(sel: Selection) -> list[QueryGroup]:
    """The pairs of a selection gathered per query (in order): its positives, and the negatives of all its pairs,
    each once, in the order first seen (with ``top`` sampling every pair of a query has the same list). Queries
    without any negative are left out."""
    groups: list[QueryGroup] = []
    n = len(sel.query)
    i = 0
    while i < n:
        j = i + 1
        while j < n and sel.query[j] == sel.query[i]:
            j += 1
        seen: dict[int, tuple[float, int]] = {}  # negative -> (score, band) where first seen
        for k in range(i, j):
            bands = sel.negative_bands[k].tolist() if sel.negative_bands is not None else [0] * len(sel.negatives[k])
            for d, score, band in zip(sel.negatives[k].tolist(), np.asarray(sel.negative_scores[k]).tolist(), bands):
                seen.setdefault(int(d), (score, band))
        if seen:
            values = list(seen.values())
            groups.append(QueryGroup(int(sel.query[i]), np.asarray(sel.positive[i:j], dtype=np.int64),
                                     np.asarray(sel.positive_score[i:j], dtype=np.float32),
                                     np.fromiter(seen.keys(), dtype=np.int64, count=len(seen)),
                                     np.array([v[0] for v in values], dtype=np.float32),
                                     np.array([v[1] for v in values], dtype=np.int8)
                                     if sel.negative_bands is not None else None))
        i = j
    return groups


def written(sel: Selection, output_format: str, num_negatives: int) -> tuple[int, int]:
    """(rows, negatives) the layout writes for a selection: what ``build_table`` lays out, counted without
    building it."""
    counts = np.array([len(n) for n in sel.negatives], dtype=np.int64)
    if output_format == "triplet":
        return int(counts.sum()), int(counts.sum())
    if output_format == "n-tuple":
        full = int((counts == num_negatives).sum())
        return full, full * num_negatives
    if output_format == "labeled-list":
        return int((counts > 0).sum()), int(counts.sum())
    groups = by_query(sel)
    negatives = sum(len(g.negatives) for g in groups)
    if output_format == "flagembedding":
        return len(groups), negatives
    return negatives + sum(len(g.positives) for g in groups), negatives  # labeled-pair


def row_documents(sel: Selection, output_format: str, num_negatives: int
                  ) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """What each row ``build_table`` lays out holds, for composing batches (``BATCHED_LAYOUTS``): its query index,
    its positive's corpus index, and its other documents (its negatives; for ``flagembedding`` also the query's
    other positives, which its trainer may sample), aligned with the table's rows."""
    if output_format == "triplet":
        counts = _counts(sel)
        flat = np.concatenate(sel.negatives).astype(np.int64) if sel.negatives else np.empty(0, np.int64)
        return np.repeat(sel.query, counts), np.repeat(sel.positive, counts), [flat[i:i + 1] for i in
                                                                                 range(len(flat))]
    if output_format == "n-tuple":
        rows = np.flatnonzero(_counts(sel) == num_negatives)
        return (np.asarray(sel.query[rows], np.int64), np.asarray(sel.positive[rows], np.int64),
                [np.asarray(sel.negatives[r], np.int64) for r in rows])
    if output_format != "flagembedding":
        raise ValueError(f"{output_format} rows are not composed into batches")
    groups = by_query(sel)
    return (np.array([g.query for g in groups], np.int64), np.array([g.positives[0] for g in groups], np.int64),
            [np.concatenate([g.negatives, g.positives[1:]]).astype(np.int64) for g in groups])


def build_table(
    sel: Selection, queries: Queries, corpus: Corpus, output_format: str, num_negatives: int,
    output_scores: bool = False, prompt: Optional[str] = None,
) -> pa.Table:
    """The output table for ``output_format`` (``triplet``, ``n-tuple``, ``labeled-pair``, ``labeled-list`` or
    ``flagembedding``).

    ``n-tuple`` rows need exactly ``num_negatives`` negatives: a pair with fewer is left out (and counted short).
    With ``sel.negative_bands``, a ``difficulty_band`` column (``difficulty_bands`` lists for ``n-tuple`` and
    ``labeled-list``, 0 for the positive) gives each negative's band (``labeled-pair``: ``difficulty_band``, 0 for
    a positive; ``flagembedding``: ``neg_difficulty_bands``, aligned with ``neg``).
    ``labeled-list`` leaves out pairs without negatives, ``labeled-pair`` and ``flagembedding`` queries without
    any. ``prompt`` is written in every ``flagembedding`` row (its ``prompt`` column) when given.
    """
    q_text: Take = partial(take_rows, queries.text_array)
    q_ids: Take = partial(take_rows, queries.id_array)
    d_text: Take = partial(take_rows, corpus.text_array)
    d_ids: Take = partial(take_rows, corpus.id_array)
    if output_format in ("labeled-pair", "flagembedding"):
        return _grouped(by_query(sel), q_text, q_ids, d_text, d_ids, output_format, output_scores, prompt,
                        sel.negative_bands is not None)
    layout = _ROW_LAYOUTS.get(output_format)
    if layout is None:  # pragma: no cover - the config validates the format
        raise ValueError(output_format)
    return pa.table(layout(sel, _Takes(q_text, q_ids, d_text, d_ids), num_negatives, output_scores))


@dataclass(frozen=True)
class _Takes:
    """The rows of the queries' and the corpus's texts and ids, by index."""

    q_text: Take
    q_ids: Take
    d_text: Take
    d_ids: Take


def _counts(sel: Selection) -> np.ndarray:
    return np.array([len(n) for n in sel.negatives], dtype=np.int64)


def _triplet(sel: Selection, t: _Takes, num_negatives: int, output_scores: bool) -> dict[str, pa.Array]:
    """A row per (query, positive, negative)."""
    counts = _counts(sel)
    flat_neg = np.concatenate(sel.negatives).astype(np.int64) if sel.negatives else np.empty(0, np.int64)
    q = np.repeat(sel.query, counts)
    p = np.repeat(sel.positive, counts)
    cols = {"anchor": t.q_text(q), "positive": t.d_text(p), "negative": t.d_text(flat_neg), "query_id": t.q_ids(q),
            "positive_id": t.d_ids(p), "negative_id": t.d_ids(flat_neg)}
    if output_scores:
        cols["positive_score"] = pa.array(np.repeat(sel.positive_score, counts).astype(np.float32))
        cols["negative_score"] = pa.array(
            np.concatenate(sel.negative_scores).astype(np.float32) if sel.negative_scores else
            np.empty(0, np.float32))
    bands = sel.negative_bands
    if bands is not None:
        cols["difficulty_band"] = pa.array(np.concatenate(bands).astype(np.int8) if bands else np.empty(0, np.int8))
    return cols


def _n_tuple(sel: Selection, t: _Takes, num_negatives: int, output_scores: bool) -> dict[str, pa.Array]:
    """A row per (query, positive) with exactly ``num_negatives`` negatives."""
    rows = np.flatnonzero(_counts(sel) == num_negatives)
    negs = np.stack([sel.negatives[r] for r in rows]) if rows.size else np.empty((0, num_negatives), np.int64)
    cols = {"anchor": t.q_text(sel.query[rows]), "positive": t.d_text(sel.positive[rows])}
    for j in range(num_negatives):
        cols[f"negative_{j + 1}"] = t.d_text(negs[:, j].astype(np.int64))
    cols["query_id"] = t.q_ids(sel.query[rows])
    cols["positive_id"] = t.d_ids(sel.positive[rows])
    offsets = np.arange(rows.size + 1) * num_negatives
    cols["negative_ids"] = _list_array(offsets, t.d_ids(negs.ravel().astype(np.int64)))
    if output_scores:
        scores = np.column_stack(
            [sel.positive_score[rows]] + [np.array([sel.negative_scores[r][j] for r in rows]) for j in
                                          range(num_negatives)]
        ) if rows.size else np.empty((0, num_negatives + 1))
        cols["scores"] = _list_array(np.arange(rows.size + 1) * (num_negatives + 1),
                                     pa.array(scores.ravel().astype(np.float32)))
    bands = sel.negative_bands
    if bands is not None:
        values = np.concatenate([bands[r] for r in rows]).astype(np.int8) if rows.size else np.empty(0, np.int8)
        cols["difficulty_bands"] = _list_array(offsets, pa.array(values))
    return cols


def _labeled_list(sel: Selection, t: _Takes, num_negatives: int, output_scores: bool) -> dict[str, pa.Array]:
    """A row per (query, positive) with negatives: the positive and its negatives as docs, labels 1 and 0."""
    rows = np.flatnonzero(_counts(sel) > 0)
    docs = [np.concatenate([[sel.positive[r]], sel.negatives[r]]).astype(np.int64) for r in rows]
    offsets = np.concatenate([[0], np.cumsum([len(d) for d in docs])]).astype(np.int64)
    flat_docs = np.concatenate(docs) if docs else np.empty(0, np.int64)
    labels = np.concatenate([[1] + [0] * (len(d) - 1) for d in docs]) if docs else np.empty(0)
    cols = {"anchor": t.q_text(sel.query[rows]), "docs": _list_array(offsets, t.d_text(flat_docs)),
            "labels": _list_array(offsets, pa.array(labels.astype(np.int8))), "query_id": t.q_ids(sel.query[rows]),
            "doc_ids": _list_array(offsets, t.d_ids(flat_docs))}
    if output_scores:
        flat = [np.concatenate([[sel.positive_score[r]], sel.negative_scores[r]]) for r in rows]
        values = np.concatenate(flat).astype(np.float32) if flat else np.empty(0, np.float32)
        cols["scores"] = _list_array(offsets, pa.array(values))
    bands = sel.negative_bands
    if bands is not None:  # 0 for the positive
        parts = [np.concatenate([[0], bands[r]]) for r in rows]
        cols["difficulty_bands"] = _list_array(offsets, pa.array(
            np.concatenate(parts).astype(np.int8) if parts else np.empty(0, np.int8)))
    return cols


#: The layouts of a row per pair (or per negative); labeled-pair and flagembedding group by query (``_grouped``).
_ROW_LAYOUTS: dict[str, Callable[[Selection, _Takes, int, bool], dict[str, pa.Array]]] = {
    "triplet": _triplet, "n-tuple": _n_tuple, "labeled-list": _labeled_list,
}


def _grouped(groups: list[QueryGroup], q_text: Take, q_ids: Take, d_text: Take, d_ids: Take,
             output_format: str, output_scores: bool, prompt: Optional[str], bands: bool = False) -> pa.Table:
    """The layouts of a query's positives and negatives: ``labeled-pair`` (a row per text, labelled 1 or 0, in
    sentence-transformers' column names) or ``flagembedding`` (a row per query: ``query``, ``pos``, ``neg``)."""
    queries = np.array([g.query for g in groups], dtype=np.int64)
    cols: dict[str, pa.Array] = {}
    if output_format == "labeled-pair":
        docs = [np.concatenate([g.positives, g.negatives]) for g in groups]
        sizes = np.array([len(d) for d in docs], dtype=np.int64)
        rows = np.repeat(queries, sizes)
        flat = np.concatenate(docs) if docs else np.empty(0, np.int64)
        labels = np.concatenate([np.r_[np.ones(len(g.positives)), np.zeros(len(g.negatives))] for g in groups]) \
            if groups else np.empty(0)
        cols["anchor"] = q_text(rows)
        cols["positive"] = d_text(flat)  # sentence-transformers' name: the positive and the negatives
        cols["label"] = pa.array(labels.astype(np.int8))
        cols["query_id"] = q_ids(rows)
        cols["doc_id"] = d_ids(flat)
        if output_scores:
            scores = [np.concatenate([g.positive_scores, g.negative_scores]) for g in groups]
            cols["score"] = pa.array(np.concatenate(scores).astype(np.float32) if scores else np.empty(0, np.float32))
        if bands:  # 0 for a positive
            parts = [np.concatenate([np.zeros(len(g.positives)), _bands(g)]) for g in groups]
            cols["difficulty_band"] = pa.array(np.concatenate(parts).astype(np.int8) if parts else np.empty(0, np.int8))
        return pa.table(cols)
    pos_offsets = np.concatenate([[0], np.cumsum([len(g.positives) for g in groups])]).astype(np.int64)
    neg_offsets = np.concatenate([[0], np.cumsum([len(g.negatives) for g in groups])]).astype(np.int64)
    pos = np.concatenate([g.positives for g in groups]) if groups else np.empty(0, np.int64)
    neg = np.concatenate([g.negatives for g in groups]) if groups else np.empty(0, np.int64)
    cols["query"] = q_text(queries)
    cols["pos"] = _list_array(pos_offsets, d_text(pos))
    cols["neg"] = _list_array(neg_offsets, d_text(neg))
    if output_scores:
        for name, offsets, parts in (("pos_scores", pos_offsets, [g.positive_scores for g in groups]),
                                     ("neg_scores", neg_offsets, [g.negative_scores for g in groups])):
            values = np.concatenate(parts).astype(np.float32) if parts else np.empty(0, np.float32)
            cols[name] = _list_array(offsets, pa.array(values))
    if prompt is not None:
        cols["prompt"] = pa.array([prompt] * len(groups), type=pa.string())
    cols["query_id"] = q_ids(queries)
    cols["pos_ids"] = _list_array(pos_offsets, d_ids(pos))
    cols["neg_ids"] = _list_array(neg_offsets, d_ids(neg))
    if bands:
        values = np.concatenate([_bands(g) for g in groups]) if groups else np.empty(0, np.int8)
        cols["neg_difficulty_bands"] = _list_array(neg_offsets, pa.array(values.astype(np.int8)))
    return pa.table(cols)


def _bands(group: QueryGroup) -> np.ndarray:
    return group.negative_bands if group.negative_bands is not None else np.zeros(len(group.negatives), np.int8)


#: The columns FlagEmbedding's training data loader reads (scores for knowledge distillation, the prompt as the
#: query instruction).
FLAGEMBEDDING_TRAINING = ("query", "pos", "neg", "pos_scores", "neg_scores", "prompt")


def training_columns(output_format: str, column_names: Sequence[str]) -> list[str]:
    """The columns of an output table that a trainer consumes: the texts (and labels), in order; for
    ``flagembedding`` also the scores (FlagEmbedding distils from them) and the prompt."""
    if output_format == "labeled-list":
        return ["anchor", "docs", "labels"]
    if output_format == "labeled-pair":
        return ["anchor", "positive", "label"]
    if output_format == "flagembedding":
        return [c for c in FLAGEMBEDDING_TRAINING if c in column_names]
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
    if output_format == "labeled-pair":
        return int(pc.sum(pc.equal(table.column("label"), 0)).as_py() or 0)
    if output_format == "flagembedding":
        return int(pc.sum(pc.list_value_length(table.column("neg"))).as_py() or 0)
    labels = table.column("labels").combine_chunks()
    return int(len(labels.values)) - table.num_rows
