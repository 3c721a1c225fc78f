"""Auditing an output against richer judgments: ``evaluate`` counts the written negatives that a fuller set of
qrels (a dev set judged more deeply, say) marks relevant, the false negatives, with a 95% confidence interval; and,
from the candidates file, how often each rule's drops were in fact relevant (its precision), and the false-negative
rate by score band and by the positive's strength.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from negmine.errors import InputError
from negmine.inputs.data import string_keys
from negmine.inputs.read import read_qrels
from negmine.output.files import read_output
from negmine.output.provenance import read_metadata
from negmine.report.batches import in_batch_audit, in_batch_rows
from negmine.rules.registry import REASONS

#: The z of a two-sided 95% interval.
Z95 = 1.959963984540054


def wilson(hits: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a proportion ``hits / n`` (``(nan, nan)`` when ``n`` is 0): unlike the normal
    approximation it stays inside [0, 1] and is honest for small counts and rates near 0."""
    if n == 0:
        return math.nan, math.nan
    p = hits / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass
class Rate:
    """A share of judged-relevant items with its 95% Wilson interval.

    Attributes:
        label: What was counted (a rule, a band).
        n: Items.
        relevant: Of them, judged relevant.
        rate: ``relevant / n``.
        low: The interval's lower end.
        high: Its upper end.
        detail: Extra figures (a band's score range, say).
    """

    label: str
    n: int
    relevant: int
    rate: float
    low: float
    high: float
    detail: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, label: str, flags: np.ndarray, **detail: Any) -> "Rate":
        n, hits = int(len(flags)), int(np.sum(flags))
        low, high = wilson(hits, n)
        return cls(label, n, hits, hits / n if n else math.nan, low, high, detail)


@dataclass
class Evaluation:
    """An output audited against fuller judgments.

    Attributes:
        output: The audited output file.
        qrels: The judgments it was audited against.
        false_negatives: The written negatives judged relevant (the false-negative rate, pooled over every
            written negative), with its interval.
        queries_mined: Queries mined (from the output's provenance).
        queries_served: Share of them whose every pair got all its negatives.
        by_rule: Per status of the candidates file (a rule, ``selected``, ``kept``...), the share of its
            candidates judged relevant: a rule's precision.
        by_score: The false-negative rate per band of the negatives' scores (best-scored band last).
        by_positive: The false-negative rate by the strength of the negative's positive (weak, middle, strong).
        scorer: Whose scores the bands use.
        notes: What could not be computed, and why.
        in_batch: For an output in training batches (``--train-batch-size``): the documents of other rows of a
            row's batch judged relevant to its query (in-batch false negatives), per 1,000 rows, against random
            batches of the same rows (``negmine.report.batches``).
    """

    output: str
    qrels: str
    false_negatives: Rate
    queries_mined: int
    queries_served: float
    by_rule: list[Rate] = field(default_factory=list)
    by_score: list[Rate] = field(default_factory=list)
    by_positive: list[Rate] = field(default_factory=list)
    scorer: Optional[str] = None
    notes: list[str] = field(default_factory=list)
    in_batch: Optional[dict[str, Any]] = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def evaluate(
    output: Any, qrels: Any, *, candidates: Any = None, qrels_query_column: Optional[str] = None,
    qrels_doc_column: Optional[str] = None, qrels_score_column: Optional[str] = None, bands: int = 5,
) -> Evaluation:
    """Audit a negmine output against fuller judgments.

    Args:
        output: An output of ``negmine mine`` or ``refilter``, Parquet or JSON Lines, in any layout (with its id
            columns: ``--columns all``).
        qrels: Relevance judgments (Parquet, columns detected as for mining); rows with a score > 0 are relevant.
        candidates: The run's candidates file (``--candidates-output``): for each rule's precision, and for the
            judge's scores of negatives and positives when the output has none.
        qrels_query_column, qrels_doc_column, qrels_score_column: The qrels' columns, when not the usual names.
        bands: How many score bands.

    Raises:
        InputError: An output without id columns, or files that cannot be read.
    """

    output = Path(output)
    try:
        meta = read_metadata(output)
    except InputError:  # a table another tool wrote, with the same id columns, is audited all the same
        if not output.is_file():
            raise
        meta = {}
    if "candidates" in meta:
        raise InputError(f"{output}: a candidates file (written by --candidates-output), not an output; give the "
                         f"output as the argument and this file with --candidates {output}")
    judged = read_qrels(qrels, qrels_query_column, qrels_doc_column, qrels_score_column)
    relevant = _relevant_keys(judged)
    neg = _negatives(output, (meta.get("config") or {}).get("output_format"))
    flags = _is_relevant(neg["query"], neg["doc"], relevant)
    stats = meta.get("stats") or {}
    mined = int(stats.get("queries_mined", 0))
    served = 1 - stats.get("short_queries", 0) / mined if mined else math.nan
    result = Evaluation(str(output), str(qrels), Rate.of("written negatives", flags), mined, served)
    result.in_batch = in_batch_audit(read_output(output), output, relevant)
    if not meta:
        result.notes.append("no negmine provenance in the output: queries served unknown")

    cand = _read_candidates(Path(candidates)) if candidates is not None else None
    if cand is not None:
        cflags = _is_relevant(cand["query"], cand["doc"], relevant)
        is_row = cand["status"] != "qrel"
        for status in sorted(set(cand["status"][is_row].tolist()), key=_status_order):
            if status == "positive":
                continue
            at = is_row & (cand["status"] == status)
            result.by_rule.append(Rate.of(status, cflags[at]))
    else:
        result.notes.append("no candidates file (--candidates): no per-rule precision")

    neg_scores, pos_scores, scorer = _scores(neg, cand, meta)
    result.scorer = scorer
    if neg_scores is None:
        result.notes.append("no scores for the negatives: pass the run's candidates file (--candidates), or mine "
                            "with --output-scores, for the bands by score and by the positive's strength")
        return result
    result.by_score = _bands(neg_scores, flags, bands, "score")
    if pos_scores is not None and not np.all(np.isnan(pos_scores)):
        result.by_positive = _bands(pos_scores, flags, 3, "positive score", ("weak", "middle", "strong"))
    else:
        result.notes.append("no scores for the positives: no bands by the positive's strength")
    return result


def _status_order(status: str) -> tuple[int, int, str]:
    """Written and kept first, then the rules in the order they run, then anything else."""

    first = ["selected", "kept", "not_scored"]
    if status in first:
        return (0, first.index(status), status)
    return (1, REASONS.index(status), status) if status in REASONS else (2, 0, status)


def _relevant_keys(qrels: Any) -> set[tuple[str, str]]:

    q = string_keys(qrels.query_id_array).to_pylist()
    d = string_keys(qrels.doc_id_array).to_pylist()
    return {(a, b) for a, b, s in zip(q, d, qrels.score_array.tolist()) if s > 0}


def _is_relevant(queries: Any, docs: Any, relevant: set[tuple[str, str]]) -> np.ndarray:
    return np.fromiter(((q, d) in relevant for q, d in zip(queries, docs)), dtype=bool, count=len(queries))


def _column(table: Any, name: str, path: Path) -> Any:
    if name not in table.column_names:
        raise InputError(f"{path}: no {name!r} column: evaluate reads the output's ids (mine with --columns all, "
                         "the default)")
    return table.column(name)


def _negatives(path: Path, fmt: Optional[str]) -> dict[str, np.ndarray]:
    """Every written negative of an output: its query, document and positive ids, and the scores written with it
    (NaN where the output has none)."""
    import pyarrow.compute as pc


    table = read_output(path)  # Parquet or JSON Lines
    names = table.column_names
    if fmt is None:
        tuple_like = "negative_ids" in names or "negative_1" in names
        fmt = "triplet" if {"negative_id", "negative"} & set(names) else "n-tuple" if tuple_like else \
            "flagembedding" if "neg" in names else "labeled-pair" if "label" in names else "labeled-list"

    def strings(col: Any) -> np.ndarray:
        return np.array(string_keys(col).to_pylist(), dtype=object)

    def floats(col: Any) -> np.ndarray:
        return np.asarray(pc.fill_null(col, math.nan).to_numpy(zero_copy_only=False), dtype=np.float64)

    if fmt == "triplet":
        q, d = strings(_column(table, "query_id", path)), strings(_column(table, "negative_id", path))
        p = strings(_column(table, "positive_id", path))
        ns = floats(table.column("negative_score")) if "negative_score" in names else np.full(len(q), np.nan)
        ps = floats(table.column("positive_score")) if "positive_score" in names else np.full(len(q), np.nan)
        return {"query": q, "doc": d, "positive": p, "negative_score": ns, "positive_score": ps}
    if fmt == "n-tuple":
        ids = _column(table, "negative_ids", path).combine_chunks()
        counts = np.diff(np.asarray(ids.offsets))
        q = np.repeat(strings(_column(table, "query_id", path)), counts)
        p = np.repeat(strings(_column(table, "positive_id", path)), counts)
        d = strings(ids.values)
        ns, ps = np.full(len(d), np.nan), np.full(len(d), np.nan)
        if "scores" in names:  # [positive, negatives...] per row
            scores = table.column("scores").combine_chunks()
            values = floats(scores.values).reshape(-1, counts[0] + 1) if len(counts) else np.empty((0, 1))
            ns, ps = values[:, 1:].ravel(), np.repeat(values[:, 0], counts)
        return {"query": q, "doc": d, "positive": p, "negative_score": ns, "positive_score": ps}
    if fmt in ("labeled-pair", "flagembedding"):
        return _grouped_negatives(table, fmt, path, strings, floats)
    docs = _column(table, "doc_ids", path).combine_chunks()
    labels = np.asarray(_column(table, "labels", path).combine_chunks().values)
    counts = np.diff(np.asarray(docs.offsets))
    row = np.repeat(np.arange(len(counts)), counts)
    is_neg = labels == 0
    all_docs = strings(docs.values)
    q_rows = strings(_column(table, "query_id", path))
    first = np.asarray(docs.offsets)[:-1]
    positive = all_docs[first] if len(first) else np.empty(0, dtype=object)
    ns, ps = np.full(len(all_docs), np.nan), np.full(len(all_docs), np.nan)
    if "scores" in names:
        flat = floats(table.column("scores").combine_chunks().values)
        ns, ps = flat, flat[first][row] if len(first) else flat
    return {"query": q_rows[row][is_neg], "doc": all_docs[is_neg], "positive": positive[row][is_neg],
            "negative_score": ns[is_neg], "positive_score": ps[is_neg] if len(ps) else ps}


def _grouped_negatives(table: Any, fmt: str, path: Path, strings: Any, floats: Any) -> dict[str, np.ndarray]:
    """The negatives of the layouts that gather a query (``labeled-pair``, ``flagembedding``); a negative's
    positive is its query's first positive."""
    names = table.column_names
    if fmt == "flagembedding":
        neg = _column(table, "neg_ids", path).combine_chunks()
        pos = _column(table, "pos_ids", path).combine_chunks()
        counts = np.diff(np.asarray(neg.offsets))
        first = np.asarray(pos.offsets)[:-1]
        q = np.repeat(strings(_column(table, "query_id", path)), counts)
        p = np.repeat(strings(pos.values)[first], counts) if len(first) else np.empty(0, dtype=object)
        ns, ps = np.full(len(q), np.nan), np.full(len(q), np.nan)
        if "neg_scores" in names and "pos_scores" in names:
            ns = floats(table.column("neg_scores").combine_chunks().values)
            pos_scores = floats(table.column("pos_scores").combine_chunks().values)
            ps = np.repeat(pos_scores[first], counts) if len(first) else ps
        return {"query": q, "doc": strings(neg.values), "positive": p, "negative_score": ns, "positive_score": ps}
    q_all = strings(_column(table, "query_id", path))
    d_all = strings(_column(table, "doc_id", path))
    labels = np.asarray(_column(table, "label", path).to_numpy(zero_copy_only=False))
    scores = floats(table.column("score")) if "score" in names else np.full(len(q_all), np.nan)
    first_positive: dict[Any, int] = {}
    for row in np.flatnonzero(labels != 0):
        first_positive.setdefault(q_all[row], int(row))
    neg = np.flatnonzero(labels == 0)
    at = [first_positive.get(q, -1) for q in q_all[neg]]
    positive = np.array([d_all[a] if a >= 0 else None for a in at], dtype=object)
    ps = np.array([scores[a] if a >= 0 else np.nan for a in at], dtype=np.float64)
    return {"query": q_all[neg], "doc": d_all[neg], "positive": positive, "negative_score": scores[neg],
            "positive_score": ps}


def _read_candidates(path: Path) -> dict[str, np.ndarray]:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq


    table = pq.read_table(path)
    if "status" not in table.column_names or "doc_id" not in table.column_names:
        raise InputError(f"{path}: not a candidates file (no status and doc_id columns): pass the file written by "
                         "negmine mine --candidates-output")
    out = {"query": np.array(string_keys(table.column("query_id")).to_pylist(), dtype=object),
           "doc": np.array(string_keys(table.column("doc_id")).to_pylist(), dtype=object),
           "status": np.array(table.column("status").to_pylist(), dtype=object)}
    for name in ("reranker_score", "retrieval_score"):
        if name in table.column_names:
            out[name] = np.asarray(pc.fill_null(table.column(name), math.nan).to_numpy(zero_copy_only=False),
                                   dtype=np.float64)
    return out


def _scores(neg: dict[str, np.ndarray], cand: Optional[dict[str, np.ndarray]], meta: dict[str, Any]
            ) -> tuple[Optional[np.ndarray], Optional[np.ndarray], Optional[str]]:
    """The negatives' and their positives' scores: the judge's from the candidates file when it has them, else
    those written in the output (the judge's, or the retriever's without a score rule)."""
    if cand is not None and "reranker_score" in cand:
        score = {(q, d): s for q, d, s in zip(cand["query"], cand["doc"], cand["reranker_score"])}
        ns = np.array([score.get((q, d), math.nan) for q, d in zip(neg["query"], neg["doc"])], dtype=np.float64)
        ps = np.array([score.get((q, p), math.nan) for q, p in zip(neg["query"], neg["positive"])], dtype=np.float64)
        if not np.all(np.isnan(ns)):
            judge = ((meta.get("models") or {}).get("reranker") or {}).get("type") or "bi-encoder"
            return ns, ps, f"judge ({judge})"
    if not np.all(np.isnan(neg["negative_score"])):
        judged = (meta.get("models") or {}).get("reranker") is not None
        return neg["negative_score"], neg["positive_score"], "judge" if judged else "retriever"
    return None, None, None


def _bands(values: np.ndarray, flags: np.ndarray, k: int, what: str, names: Sequence[str] = ()) -> list[Rate]:
    """``flags`` split into ``k`` bands of equal count by ``values`` (lowest first; NaN values left out)."""
    ok = ~np.isnan(values)
    values, flags = values[ok], flags[ok]
    if not values.size:
        return []
    edges = np.quantile(values, np.linspace(0, 1, k + 1))
    band = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, k - 1)
    out = []
    for b in range(k):
        at = band == b
        if not at.any():
            continue
        label = names[b] if b < len(names) else f"band {b + 1} of {k}"
        out.append(Rate.of(label, flags[at], low_score=float(values[at].min()), high_score=float(values[at].max()),
                           what=what))
    return out


def evaluation_rows(ev: Evaluation) -> list[tuple[str, str]]:
    """(label, value) lines of an evaluation, for the terminal and the HTML report."""
    def rate(r: Rate) -> str:
        if not r.n:
            return "-"
        return f"{r.rate:.1%} ({r.relevant:,} of {r.n:,}; 95% CI {r.low:.1%}-{r.high:.1%})"

    rows = [("false negatives", rate(ev.false_negatives)),
            ("queries served", f"{ev.queries_served:.1%} of {ev.queries_mined:,}" if ev.queries_mined else "-")]
    for r in ev.by_rule:
        rows.append((f"judged relevant: {r.label.replace('_', ' ')}", rate(r)))
    for r in ev.by_score:
        rows.append((f"FN by {ev.scorer} score {r.detail['low_score']:.3f}..{r.detail['high_score']:.3f}", rate(r)))
    for r in ev.by_positive:
        rows.append((f"FN with a {r.label} positive ({r.detail['low_score']:.3f}..{r.detail['high_score']:.3f})",
                     rate(r)))
    if ev.in_batch is not None:
        rows += in_batch_rows(ev.in_batch)
    for note in ev.notes:
        rows.append(("note", note))
    return rows
