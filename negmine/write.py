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
        negative_bands: Their difficulty bands (``--difficulty-bands``), or ``None``.
    """

    query: np.ndarray
    positive: np.ndarray
    positive_score: np.ndarray
    negatives: list[np.ndarray]
    negative_scores: list[np.ndarray]
    negative_positions: list[np.ndarray]
    negative_bands: Optional[list[np.ndarray]] = None

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Flat arrays (the negatives concatenated, with offsets), to store."""
        counts = np.array([len(n) for n in self.negatives], dtype=np.int64)

        def flat(parts: list[np.ndarray], dtype: Any) -> np.ndarray:
            return np.concatenate(parts).astype(dtype) if parts else np.empty(0, dtype)

        out = {"query": self.query, "positive": self.positive, "positive_score": self.positive_score,
               "offsets": np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
               "negatives": flat(self.negatives, np.int64), "negative_scores": flat(self.negative_scores, np.float32),
               "negative_positions": flat(self.negative_positions, np.int64)}
        if self.negative_bands is not None:
            out["negative_bands"] = flat(self.negative_bands, np.int8)
        return out

    @classmethod
    def from_arrays(cls, a: dict[str, np.ndarray]) -> "Selection":
        o = a["offsets"]
        cut = [(int(o[i]), int(o[i + 1])) for i in range(len(o) - 1)]
        bands = [a["negative_bands"][i:j] for i, j in cut] if "negative_bands" in a else None
        return cls(a["query"], a["positive"], a["positive_score"], [a["negatives"][i:j] for i, j in cut],
                   [a["negative_scores"][i:j] for i, j in cut], [a["negative_positions"][i:j] for i, j in cut],
                   bands)


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
    counts = np.array([len(n) for n in sel.negatives], dtype=np.int64)
    flat_neg = np.concatenate(sel.negatives).astype(np.int64) if sel.negatives else np.empty(0, np.int64)
    flat_score = (
        np.concatenate(sel.negative_scores).astype(np.float32) if sel.negative_scores else np.empty(0, np.float32)
    )
    cols: dict[str, pa.Array] = {}
    bands = sel.negative_bands

    if output_format == "triplet":
        q = np.repeat(sel.query, counts)
        p = np.repeat(sel.positive, counts)
        cols["anchor"] = q_text(q)
        cols["positive"] = d_text(p)
        cols["negative"] = d_text(flat_neg)
        cols["query_id"] = q_ids(q)
        cols["positive_id"] = d_ids(p)
        cols["negative_id"] = d_ids(flat_neg)
        if output_scores:
            cols["positive_score"] = pa.array(np.repeat(sel.positive_score, counts).astype(np.float32))
            cols["negative_score"] = pa.array(flat_score)
        if bands is not None:
            cols["difficulty_band"] = pa.array(np.concatenate(bands).astype(np.int8) if bands else
                                               np.empty(0, np.int8))
    elif output_format == "n-tuple":
        full = counts == num_negatives
        rows = np.flatnonzero(full)
        negs = np.stack([sel.negatives[r] for r in rows]) if rows.size else np.empty((0, num_negatives), np.int64)
        cols["anchor"] = q_text(sel.query[rows])
        cols["positive"] = d_text(sel.positive[rows])
        for j in range(num_negatives):
            cols[f"negative_{j + 1}"] = d_text(negs[:, j].astype(np.int64))
        cols["query_id"] = q_ids(sel.query[rows])
        cols["positive_id"] = d_ids(sel.positive[rows])
        offsets = np.arange(rows.size + 1) * num_negatives
        cols["negative_ids"] = _list_array(offsets, d_ids(negs.ravel().astype(np.int64)))
        if output_scores:
            scores = np.column_stack(
                [sel.positive_score[rows]] + [np.array([sel.negative_scores[r][j] for r in rows]) for j in
                                              range(num_negatives)]
            ) if rows.size else np.empty((0, num_negatives + 1))
            cols["scores"] = _list_array(np.arange(rows.size + 1) * (num_negatives + 1),
                                         pa.array(scores.ravel().astype(np.float32)))
        if bands is not None:
            values = np.concatenate([bands[r] for r in rows]).astype(np.int8) if rows.size else np.empty(0, np.int8)
            cols["difficulty_bands"] = _list_array(offsets, pa.array(values))
    elif output_format == "labeled-list":
        rows = np.flatnonzero(counts > 0)
        docs = [np.concatenate([[sel.positive[r]], sel.negatives[r]]).astype(np.int64) for r in rows]
        offsets = np.concatenate([[0], np.cumsum([len(d) for d in docs])]).astype(np.int64)
        flat_docs = np.concatenate(docs) if docs else np.empty(0, np.int64)
        labels = np.concatenate([[1] + [0] * (len(d) - 1) for d in docs]) if docs else np.empty(0)
        cols["anchor"] = q_text(sel.query[rows])
        cols["docs"] = _list_array(offsets, d_text(flat_docs))
        cols["labels"] = _list_array(offsets, pa.array(labels.astype(np.int8)))
        cols["query_id"] = q_ids(sel.query[rows])
        cols["doc_ids"] = _list_array(offsets, d_ids(flat_docs))
        if output_scores:
            flat = [np.concatenate([[sel.positive_score[r]], sel.negative_scores[r]]) for r in rows]
            values = np.concatenate(flat).astype(np.float32) if flat else np.empty(0, np.float32)
            cols["scores"] = _list_array(offsets, pa.array(values))
        if bands is not None:  # 0 for the positive
            parts = [np.concatenate([[0], bands[r]]) for r in rows]
            cols["difficulty_bands"] = _list_array(offsets, pa.array(
                np.concatenate(parts).astype(np.int8) if parts else np.empty(0, np.int8)))
    elif output_format in ("labeled-pair", "flagembedding"):
        return _grouped(by_query(sel), q_text, q_ids, d_text, d_ids, output_format, output_scores, prompt,
                        sel.negative_bands is not None)
    else:  # pragma: no cover - the config validates the format
        raise ValueError(output_format)
    return pa.table(cols)


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


def candidate_columns(
    query_rows: np.ndarray, hits: Any, reasons: np.ndarray, picks: Sequence[Sequence[np.ndarray]],
    scores: Optional[np.ndarray], reference: Optional[np.ndarray],
    positives: Optional[Sequence[Sequence[int]]] = None, positive_scores: Optional[Sequence[np.ndarray]] = None,
    extras: Optional[dict[str, tuple[np.ndarray, Sequence[np.ndarray]]]] = None,
) -> dict[str, np.ndarray]:
    """Every candidate of a batch, as compact columns (query and corpus rows, ranks, scores, a status code), each
    query's candidates followed (with ``positives``) by one row per known positive of it (status QREL, rank -1)
    with its scores.

    ``status`` is a reason code of ``negmine.filters``, SELECTED (written as a negative) or QREL. ``scores`` are
    the judge's (``(n, k)``, NaN where not scored; ``positive_scores`` per query), ``reference`` the positive
    score each query's margins were taken from; ``extras`` more values by name, each as (``(n, k)`` per candidate,
    per query per positive).
    """
    q, cols = np.nonzero(hits.indices >= 0)
    status = reasons[q, cols].astype(np.int8)
    selected = np.zeros(hits.indices.shape, dtype=bool)
    for row, per_pos in enumerate(picks):
        for chosen in per_pos:
            selected[row, chosen] = True
    status[selected[q, cols]] = SELECTED
    rows = np.asarray(query_rows, dtype=np.int64)
    pos = positives if positives is not None else [[] for _ in range(len(rows))]
    pq = np.repeat(np.arange(len(rows)), [len(p) for p in pos]).astype(np.int64)
    pd_ = np.fromiter((d for p in pos for d in p), dtype=np.int64, count=int(pq.size))

    def both(per_cell: np.ndarray, per_positive: Optional[Sequence[np.ndarray]], dtype: Any, fill: Any) -> np.ndarray:
        tail = np.concatenate([np.asarray(v) for v in per_positive]) if per_positive is not None and len(pq) \
            else np.full(len(pq), fill)
        return np.concatenate([per_cell, tail.astype(dtype)]).astype(dtype)

    out = {"query": np.concatenate([rows[q], rows[pq]]), "doc": np.concatenate([hits.indices[q, cols], pd_]),
           "rank": np.concatenate([cols, np.full(len(pq), -1)]).astype(np.int32),
           "retrieval_score": np.concatenate([hits.scores[q, cols], np.full(len(pq), np.nan)]).astype(np.float32),
           "status": np.concatenate([status, np.full(len(pq), QREL)]).astype(np.int8)}
    for name, ranks in getattr(hits, "source_ranks", {}).items():
        out[f"{name}_rank"] = np.concatenate([ranks[q, cols], np.full(len(pq), -1)]).astype(np.int32)
    if scores is not None:
        out["reranker_score"] = both(scores[q, cols], positive_scores, np.float32, np.nan)
        ref = reference[q] if reference is not None else np.full(len(q), np.nan)
        ref_pos = reference[pq] if reference is not None else np.full(len(pq), np.nan)
        out["positive_score"] = np.concatenate([ref, ref_pos]).astype(np.float32)
    for name, (per_cell, per_positive) in (extras or {}).items():
        out[name] = both(per_cell[q, cols], per_positive, np.float32, np.nan)
    order = np.argsort(np.concatenate([q, pq]), kind="stable")  # each query's candidates, then its positives
    return {k: v[order] for k, v in out.items()}


#: The status code of a candidate written as a negative (beside the reason codes of negmine.filters).
SELECTED = -2
#: The status of a candidates-file row that is a known positive of its query, with its scores (not a candidate).
QREL = -3
#: Value columns a candidates file may hold beside the judge's ``reranker_score``, in this order.
CANDIDATE_VALUES = ("cosine", "positive_similarity", "positive_proximity", "bm25_score", "twin_similarity",
                    "lexical_overlap", "pair_score")


def status_names(codes: np.ndarray) -> list[str]:
    """The candidates file's status names of status codes (reason codes, SELECTED, QREL)."""
    from negmine.filters import REASONS

    names = np.array([*REASONS, "selected", "qrel"], dtype=object)
    codes = np.asarray(codes, dtype=np.int64)
    at = np.where(codes == SELECTED, len(REASONS), np.where(codes == QREL, len(REASONS) + 1, codes))
    return names[at].tolist()


def build_candidates_table(columns: dict[str, np.ndarray], queries: Queries, corpus: Corpus) -> pa.Table:
    """The candidates file's rows for ``candidate_columns``: ranks, scores, and each candidate's fate.

    ``status`` is ``selected`` (written as a negative), ``kept`` (passed every rule, not needed), ``not_scored``
    (lazy scoring stopped before it), the name of the rule that dropped it, or ``qrel`` for a row that is a known
    positive of the query (empty rank), with its scores: what margins and calibrations are computed from.
    """
    table = {
        "query_id": take_rows(queries.id_array, columns["query"]),
        "doc_id": take_rows(corpus.id_array, columns["doc"]),
        "rank": pa.array(columns["rank"], mask=columns["rank"] < 0),
        "retrieval_score": pa.array(columns["retrieval_score"], mask=np.isnan(columns["retrieval_score"])),
    }
    for name in ("bm25", "dense"):
        if f"{name}_rank" in columns:
            r = columns[f"{name}_rank"]
            table[f"{name}_rank"] = pa.array(r, mask=r < 0)
    for col in ("reranker_score", "positive_score", *CANDIDATE_VALUES):
        if col in columns:
            v = columns[col]
            table[col] = pa.array(v, mask=np.isnan(v))
    table["status"] = pa.array(status_names(columns["status"]), type=pa.string())
    return pa.table(table)


#: Column names of the false-negatives file: the qrels columns negmine reads by default, then the evidence.
FN_QUERY, FN_DOC, FN_SCORE = "query-id", "corpus-id", "score"


def build_false_negatives_table(columns: Optional[dict[str, np.ndarray]], queries: Queries, corpus: Corpus
                                ) -> pa.Table:
    """Rows of the false-negatives file: each candidate dropped as a likely false negative, in qrels form
    (``query-id``, ``corpus-id``, ``score`` = 1: append them to the qrels to make them positives), with the rule
    that dropped it, its rank in the candidate list and the judge's score (empty where not scored).
    ``columns`` ``None``: the empty table."""
    from negmine.filters import REASONS

    if columns is None:
        columns = {"query": np.empty(0, np.int64), "doc": np.empty(0, np.int64), "rank": np.empty(0, np.int32),
                   "status": np.empty(0, np.int8), "judge_score": np.empty(0, np.float32)}
    names = np.array(REASONS, dtype=object)
    judge = columns["judge_score"]
    return pa.table({
        FN_QUERY: take_rows(queries.id_array, columns["query"]),
        FN_DOC: take_rows(corpus.id_array, columns["doc"]),
        FN_SCORE: pa.array(np.ones(len(columns["query"]), dtype=np.float32)),
        "rule": pa.array(names[columns["status"].astype(np.int64)].tolist(), type=pa.string()),
        "rank": pa.array(columns["rank"].astype(np.int32)),
        "judge_score": pa.array(judge, mask=np.isnan(judge)),
    })


def provenance(config: Any, files: dict[str, str], stats: Any, embedder: Any = None,
               reranker: Optional[dict[str, Any]] = None, relative_margin: Optional[float] = None,
               beir: Optional[dict[str, str]] = None) -> dict[str, Any]:
    """What produced an output: negmine's and its libraries' versions, the config (what it produces, not how it
    was run: batch size and resumption are left out), the inputs' fingerprints (and the BEIR folder and split they
    came from, if so), the models, and the statistics."""
    from importlib.metadata import PackageNotFoundError, version

    from negmine.storage.files import fingerprint
    from negmine.version import __version__

    libs: dict[str, str] = {}
    for lib in ("bm25s", "pyarrow", "numpy", "faiss-cpu", "faiss-gpu", "sentence-transformers", "torch"):
        try:
            libs[lib] = version(lib)
        except PackageNotFoundError:  # an optional one (faiss-gpu, say) is not installed
            pass
    out = {
        "negmine_version": __version__,
        "libraries": libs,
        "config": config.to_dict(provenance=True),
        "resolved": {"relative_margin": relative_margin},
        "inputs": {role: {"path": path, "fingerprint": fingerprint(path)} for role, path in files.items()},
        "models": {"embedder": embedder, "reranker": reranker},
        # cache hits depend on what earlier runs left in the cache, not on the inputs: kept out of the file
        "stats": {k: v for k, v in stats.to_dict().items()
                  if k not in ("texts_encoded", "texts_cached") and not (k == "dense_search" and not v)},
    }
    if beir is not None:
        out["beir"] = dict(beir)
    return out


@dataclass
class BatchResult:
    """What one query batch produced, as compact arrays (corpus and query rows, not texts): kept for a resumed
    run, laid out as the rows of the output and of the candidates file, merged into the run's statistics.

    Attributes:
        selection: The picks, one entry per query-positive pair.
        stats: The batch's counts.
        positive_scores: The judge's scores of the batch's positives (empty when no judge scored).
        dropped_scores: The judge's scores of the candidates the score rules dropped.
        candidates: ``candidate_columns`` of the batch, when a candidates file is written.
        false_negatives: The candidates dropped as likely false negatives (query and corpus rows, rank, rule code,
            judge score), for ``--false-negatives-output``.
    """

    selection: Selection
    stats: Any
    positive_scores: np.ndarray
    dropped_scores: np.ndarray
    candidates: Optional[dict[str, np.ndarray]] = None
    false_negatives: Optional[dict[str, np.ndarray]] = None

    def to_store(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays = {f"sel.{k}": v for k, v in self.selection.to_arrays().items()}
        arrays["positive_scores"] = self.positive_scores
        arrays["dropped_scores"] = self.dropped_scores
        for k, v in (self.candidates or {}).items():
            arrays[f"cand.{k}"] = v
        for k, v in (self.false_negatives or {}).items():
            arrays[f"fn.{k}"] = v
        return arrays, {"stats": self.stats.to_dict(), "candidates": self.candidates is not None,
                        "false_negatives": self.false_negatives is not None}

    @classmethod
    def from_store(cls, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> "BatchResult":
        from negmine.report import MineStats

        sel = Selection.from_arrays({k[4:]: v for k, v in arrays.items() if k.startswith("sel.")})
        cand = {k[5:]: v for k, v in arrays.items() if k.startswith("cand.")} if meta["candidates"] else None
        fn = {k[3:]: v for k, v in arrays.items() if k.startswith("fn.")} if meta.get("false_negatives") else None
        return cls(sel, MineStats(**meta["stats"]), arrays["positive_scores"], arrays["dropped_scores"], cand, fn)
