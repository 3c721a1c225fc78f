"""The candidates file (``--candidates-output``), in one place: every candidate of a batch with its ranks,
scores and fate as compact columns, their Parquet table, and the false-negatives file (``--false-negatives-output``)."""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence

import numpy as np
import pyarrow as pa

from negmine.inputs.data import Corpus, Queries, take_rows
from negmine.rules.registry import REASONS


def candidate_columns(
    query_rows: np.ndarray, hits: Any, reasons: np.ndarray, picks: Sequence[Sequence[np.ndarray]],
    scores: Optional[np.ndarray], reference: Optional[np.ndarray],
    positives: Optional[Sequence[Sequence[int]]] = None, positive_scores: Optional[Sequence[np.ndarray]] = None,
    extras: Optional[dict[str, tuple[np.ndarray, Sequence[np.ndarray]]]] = None,
) -> dict[str, np.ndarray]:
    """Every candidate of a batch, as compact columns (query and corpus rows, ranks, scores, a status code), each
    query's candidates followed (with ``positives``) by one row per known positive of it (status QREL, rank -1)
    with its scores.

    ``status`` is a reason code of ``negmine.rules.registry``, SELECTED (written as a negative) or QREL. ``scores`` are
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


#: The status code of a candidate written as a negative (beside the reason codes of negmine.rules.registry).
SELECTED = -2

#: The status of a candidates-file row that is a known positive of its query, with its scores (not a candidate).
QREL = -3

#: Value columns a candidates file may hold beside the judge's ``reranker_score``, in this order.
CANDIDATE_VALUES = ("cosine", "positive_similarity", "positive_proximity", "bm25_score", "twin_similarity",
                    "lexical_overlap", "pair_score")
#: The evidence columns, and their value where a query has no such candidate (what gathering the evidence gives).
EVIDENCE_FILL = {"twin_similarity": -math.inf, "lexical_overlap": 0.0, "bm25_score": -math.inf}
#: The order in which a stored run checks the columns its rules need (the first missing one is named).
CHECK_ORDER = ("twin_similarity", "lexical_overlap", "bm25_score", "reranker_score", "positive_similarity",
               "positive_proximity", "cosine")


def status_names(codes: np.ndarray) -> list[str]:
    """The candidates file's status names of status codes (reason codes, SELECTED, QREL)."""

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


def candidate_values(evidence: dict[str, Any], prescored: Any, scored: Any, config: Any,
                     positives: Sequence[Sequence[int]], pair_scores: Optional[tuple[np.ndarray, list[np.ndarray]]]
                     ) -> dict[str, tuple[np.ndarray, Sequence[np.ndarray]]]:
    """The values the candidates file keeps beside the judge's scores, as (per candidate, per positive) pairs: the
    evidence gathered, the cosines scored (ahead, or as lazy scoring reached them), and (``--score-all``) the
    retriever's own pair scores. ``config``: the settings the rules read."""
    def none_for_positives(values: np.ndarray) -> tuple[np.ndarray, Sequence[np.ndarray]]:
        return values, [np.full(len(p), np.nan, np.float32) for p in positives]

    out: dict[str, tuple[np.ndarray, Sequence[np.ndarray]]] = {}
    if evidence.get("bm25_score") is not None and evidence.get("bm25_positive") is not None:
        out["bm25_score"] = (evidence["bm25_score"], evidence["bm25_positive"])
    if evidence.get("twin_similarity") is not None:
        out["twin_similarity"] = none_for_positives(evidence["twin_similarity"])
    if evidence.get("lexical_overlap") is not None:
        out["lexical_overlap"] = none_for_positives(evidence["lexical_overlap"])
    if prescored is not None:
        if prescored.cosine is not None and prescored.positive_cosine is not None:
            out["cosine"] = (prescored.cosine, prescored.positive_cosine)
        if prescored.similarity is not None:
            out["positive_similarity"] = none_for_positives(prescored.similarity)
        if prescored.proximity is not None:
            out["positive_proximity"] = none_for_positives(prescored.proximity)
    elif scored is not None:
        if scored.cosines is not None and config.agreement and evidence.get("bm25_score") is not None:
            out["cosine"] = (scored.cosines, scored.positive_cosines)
        if scored.similarities is not None and config.max_positive_similarity is not None:
            out["positive_similarity"] = none_for_positives(scored.similarities)
        if scored.proximities is not None and config.positive_proximity is not None:
            out["positive_proximity"] = none_for_positives(scored.proximities)
    if pair_scores is not None:
        out["pair_score"] = pair_scores
    return out
