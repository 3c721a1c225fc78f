"""Mine once, filter many: a candidates file (``mine --candidates-output``) read back as the sources of a run.

``StoredSources`` stands in for the retriever, the evidence gatherers and the judge of ``negmine.mine``: the
candidates of each query come from the file in their ranks, and every score a rule or the sampler asks for is
looked up in it. ``negmine refilter`` and ``negmine sweep`` run the same batches as ``mine`` over it, so with the
values in the file (``mine --score-all --candidates-output`` keeps them all) they write what ``mine`` would have
written with their options, without a model, a retrieval or a score computed again.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq

from negmine.errors import ConfigError, InputError
from negmine.inputs.data import Positives
from negmine.inputs.read import Inputs
from negmine.judges.base import VALUE_NAMES, LookupScorer, MissingScore, Scorers, lookup_scorers
from negmine.judges.llm import load_llm_judge
from negmine.output.candidates import CANDIDATE_VALUES, CHECK_ORDER, EVIDENCE_FILL
from negmine.output.provenance import read_metadata
from negmine.progress import Progress
from negmine.report.stats import MineStats
from negmine.retrieve.base import Hits
from negmine.retrieve.build import endpoint
from negmine.rules import registry
from negmine.run.plan import Plan, depth_of, percentile_gate_on, read_inputs, uses_bi_encoder
from negmine.settings.config import MineConfig, flag
from negmine.storage.cache import prepare_cache_dir, resolve_cache_dir
from negmine.storage.files import PathLike, fingerprint
from negmine.version import __version__

#: The options ``refilter`` and ``sweep`` take: the rules, the sampling and the output's layout. Everything else
#: (inputs, retriever, models) is what the candidates were mined with.
REFILTER_OPTIONS = (
    "absolute_margin", "relative_margin", "max_score", "min_score", "margin_reference", "max_positive_similarity",
    "positive_proximity", "lexical_overlap", "agreement", "cross_query", "percentile_margin", "percentile_floor",
    "percentile_cap",
    "score_all", "range_min", "range_max", "num_negatives", "sampling_strategy", "simans_a", "simans_b", "seed",
    "difficulty_bands", "promote_false_negatives", "llm_judge", "llm_confirm", "llm_judge_prompt", "output_format",
    "output_scores", "prompt", "columns", "allow_empty", "query_batch_size",
)

REMINE = "mine with --score-all --candidates-output to keep every value"


def read_record(path: Path) -> dict[str, Any]:
    """The provenance of a candidates file, checked to be one (it records what the file holds)."""
    meta = read_metadata(path)
    if "candidates" not in meta:
        raise InputError(f"{path}: not a candidates file of negmine {__version__} (written by negmine mine "
                         "--candidates-output); an output file, or one written by an older negmine, cannot be "
                         "re-filtered")
    return meta


def config_of(meta: Mapping[str, Any], options: Mapping[str, Any], path: Path) -> MineConfig:
    """The settings the candidates were mined with, with ``options`` (filter, sampling and output options only)
    in their place."""
    fixed = sorted(set(options) - set(REFILTER_OPTIONS))
    if fixed:
        raise ConfigError(f"{', '.join(flag(f) for f in fixed)}: fixed by the mining run that wrote {path} (only the "
                          "rules, the sampling and the output's layout can change here); mine again to change it")
    names = {f.name for f in dataclasses.fields(MineConfig)}
    mined = {k: v for k, v in (meta.get("config") or {}).items() if k in names and k != "train_batch_size"}
    return MineConfig(**mined).replace(**options)


def input_paths(meta: Mapping[str, Any], given: Mapping[str, Any], path: Path) -> dict[str, str]:
    """The inputs the candidates were mined from (their paths in the provenance, or ``given`` ones instead), each
    checked to hold the same bytes (its fingerprint)."""
    recorded = meta.get("inputs") or {}
    out: dict[str, str] = {}
    for role, item in recorded.items():
        where = given.get(role) or item.get("path")
        if where is None:
            continue
        p = Path(where)
        option = flag(role)
        if not p.is_file():
            raise InputError(f"{p}: the {role} file the candidates in {path} were mined from is not there; give its "
                             f"new path with {option}")
        if fingerprint(p) != item.get("fingerprint"):
            raise InputError(f"{p}: changed since the candidates in {path} were mined (its fingerprint differs); "
                             "mine again")
        out[role] = str(where)
    for role in ("corpus", "queries", "qrels", "pairs"):
        if given.get(role) is not None and role not in recorded:
            raise ConfigError(f"{flag(role)}: the candidates in {path} were not mined with a {role} file")
    if "corpus" not in out and "pairs" not in out:
        raise ConfigError(f"{path}: its inputs were given in memory when mined; pass them again (corpus=..., "
                          "queries=..., qrels=... or pairs=...)")
    return out


class StoredSources:
    """A candidates file as the sources of a run: each query's candidates in rank order, the evidence and the
    scores kept for them and for its positives.

    Args:
        path: The candidates file.
        meta: Its provenance (``read_record``).
        queries: The run's queries (the file's query ids are matched to their rows).
        corpus: The run's corpus (document ids, likewise).
    """

    def __init__(self, path: Path, meta: Mapping[str, Any], queries: Any, corpus: Any) -> None:
        self.path, self.meta = path, meta
        record = meta["candidates"]
        self.depth = int(record["depth"])
        self.judge_record = record.get("judge")
        self.judge_kind = record.get("judge_kind") if self.judge_record is not None else None
        self.name = record.get("judge_name") or "bi-encoder"
        table = pq.read_table(path)
        qrow = queries.rows_of(table.column("query_id"))
        doc = corpus.rows_of(table.column("doc_id"))
        for rows, column, where in ((qrow, "query_id", queries), (doc, "doc_id", corpus)):
            if (rows < 0).any():
                i = int(np.flatnonzero(rows < 0)[0])
                raise InputError(f"{path}: row {i}: {column} {table.column(column)[i].as_py()!r} is not in "
                                 f"{where.source}: the candidates were mined from other inputs")
        rank = np.asarray(pc.fill_null(table.column("rank"), -1).to_numpy(), dtype=np.int64)
        is_qrel = np.asarray(pc.equal(table.column("status"), "qrel").to_numpy(zero_copy_only=False), dtype=bool)
        self.columns = [c for c in ("retrieval_score", "reranker_score", *CANDIDATE_VALUES) if c in table.column_names]
        values = {c: np.asarray(pc.fill_null(table.column(c), math.nan).to_numpy(zero_copy_only=False),
                                dtype=np.float32) for c in self.columns}
        cand = np.flatnonzero(~is_qrel)
        cand = cand[np.lexsort((rank[cand], qrow[cand]))]
        self.c_query, self.c_rank, self.c_doc = qrow[cand], rank[cand], doc[cand]
        self.c_values = {c: v[cand] for c, v in values.items()}
        self._stride = int(self.c_rank.max()) + 1 if self.c_rank.size else 1
        self._key = self.c_query * self._stride + self.c_rank  # sorted: candidates by query row, then rank
        pos = np.flatnonzero(is_qrel)
        pos = pos[np.argsort(qrow[pos], kind="stable")]
        self.p_query, self.p_doc = qrow[pos], doc[pos]
        self.p_values = {c: v[pos] for c, v in values.items()}

    # -- checks, once per setting --------------------------------------------------------------------------------

    def check(self, config: MineConfig, depth: int) -> None:
        """Refuse, before any work, a setting the file cannot serve: a deeper window than was retrieved (for hybrid,
        any other depth: its fused ranking depends on the depth), or a rule whose values are not in the file."""
        mined_max = (self.meta.get("config") or {}).get("range_max")
        if depth > self.depth:
            raise ConfigError(f"{flag('range_max')} {config.range_max}: the candidates in {self.path} were retrieved "
                              f"{self.depth} deep ({flag('range_max')} {mined_max} when mined); refilter can narrow "
                              "the window, not deepen it: mine again with a larger --range-max")
        if config.retriever == "hybrid" and depth != self.depth:
            raise ConfigError(f"{flag('range_max')} {config.range_max}: a hybrid retriever's fused ranking depends "
                              f"on how deep each retriever is searched; refilter it with {flag('range_max')} "
                              f"{mined_max}, as mined, or mine again")
        needs: dict[str, str] = {}  # column -> what needs it
        for rule in registry.RULES:
            if rule.enabled(config):
                for column in rule.columns:
                    needs.setdefault(column, "the score rules" if rule.judge else flag(rule.options[0].name))
        if config.sampling_strategy == "simans":
            needs.setdefault("reranker_score", "--sampling-strategy simans")
        for column in sorted(needs, key=CHECK_ORDER.index):
            if column not in self.columns:
                raise ConfigError(f"{self.path}: {needs[column]} needs {VALUE_NAMES.get(column, column)} of each "
                                  f"candidate, which this candidates file does not hold; {REMINE}")

    def calibration(self, mined: np.ndarray) -> np.ndarray:
        """The judge's scores of every positive of the mined queries, sorted (the percentile gate's calibration)."""
        if "reranker_score" not in self.columns:
            raise ConfigError(f"{self.path}: the percentile gate needs the judge's scores of the positives; {REMINE}")
        scores = self.p_values["reranker_score"][np.isin(self.p_query, mined)]
        if np.isnan(scores).any():
            raise ConfigError(f"{self.path}: the percentile gate needs the judge's score of every positive, and some "
                              f"are missing; {REMINE}")
        return np.sort(scores.astype(np.float64))

    def missing(self, exc: MissingScore, queries: Any, corpus: Any) -> ConfigError:
        """The error for a value the file lacks, naming the query and the document."""
        return ConfigError(f"{self.path}: {exc.what} of query {str(queries.ids[exc.row])!r}, document "
                           f"{str(corpus.ids[exc.doc])!r} is not in this candidates file (lazy scoring never reached "
                           f"it when mined); {REMINE}")

    # -- per batch -------------------------------------------------------------------------------------------------

    def _cells(self, rows: np.ndarray, depth: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For each row's stored candidates up to ``depth``: (cell row, cell column, index into the arrays)."""
        lo = np.searchsorted(self.c_query, rows, side="left")
        hi = np.searchsorted(self.c_query, rows, side="right")
        at = np.concatenate([np.arange(a, b) for a, b in zip(lo, hi)]).astype(np.int64) if len(rows) else \
            np.empty(0, np.int64)
        cell_row = np.repeat(np.arange(len(rows)), hi - lo)
        keep = self.c_rank[at] < depth
        return cell_row[keep], self.c_rank[at][keep], at[keep]

    def _grid(self, column: str, rows: np.ndarray, depth: int, fill: float = math.nan) -> np.ndarray:
        out = np.full((len(rows), depth), fill, dtype=np.float32)
        if column in self.c_values:
            r, c, at = self._cells(rows, depth)
            out[r, c] = self.c_values[column][at]
        return out

    def _positive_values(self, column: str, rows: np.ndarray, pos_lists: Sequence[Sequence[int]]) -> list[np.ndarray]:
        out = []
        for q, pos in zip(rows, pos_lists):
            vals = np.full(len(pos), np.nan, dtype=np.float32)
            if column in self.p_values:
                lo, hi = np.searchsorted(self.p_query, [q, q + 1])
                found = dict(zip(self.p_doc[lo:hi].tolist(), self.p_values[column][lo:hi].tolist()))
                vals[:] = [found.get(int(d), math.nan) for d in pos]
            out.append(vals)
        return out

    def values_at(self, column: str, rows: np.ndarray, ranks: np.ndarray) -> np.ndarray:
        """The stored ``column`` of the candidates at (query row, rank) pairs (NaN where there is none)."""
        out = np.full(len(rows), np.nan, dtype=np.float32)
        if column not in self.c_values or not len(rows):
            return out
        key = np.asarray(rows, dtype=np.int64) * self._stride + np.asarray(ranks, dtype=np.int64)
        at = np.minimum(np.searchsorted(self._key, key), len(self._key) - 1)
        found = self._key[at] == key
        out[found] = self.c_values[column][at[found]]
        return out

    def search(self, plan: Any, rows: np.ndarray, texts: Sequence[str], progress: Any) -> Hits:
        hits = Hits.empty(len(rows), plan.depth)
        r, c, at = self._cells(rows, plan.depth)
        hits.indices[r, c] = self.c_doc[at]
        hits.scores[r, c] = self.c_values["retrieval_score"][at]
        return hits

    def evidence(self, plan: Any, indices: np.ndarray, positions: np.ndarray, positives: list[list[int]],
                 texts: Sequence[str]) -> dict[str, Any]:
        rows = plan.mined[positions]
        depth = indices.shape[1]
        found: dict[str, Any] = {column: self._grid(column, rows, depth, fill)
                                 for column, fill in EVIDENCE_FILL.items() if column in self.columns}
        if "bm25_score" in found:
            found["bm25_positive"] = self._positive_values("bm25_score", rows, positives)
        return found

    def scorers(self, plan: Any, rows: np.ndarray, texts: Sequence[str], positives: list[list[int]]) -> Scorers:
        depth = plan.depth
        indices = self.search(plan, rows, texts, None).indices
        return lookup_scorers(
            indices, positives, self.name, self._grid("reranker_score", rows, depth),
            self._positive_values("reranker_score", rows, positives), self._grid("cosine", rows, depth),
            self._positive_values("cosine", rows, positives), self._grid("positive_similarity", rows, depth), rows,
            self._grid("positive_proximity", rows, depth))

    def pair_scores(self, plan: Any, rows: np.ndarray, texts: Sequence[str], docs: list[list[int]]
                    ) -> list[np.ndarray]:
        """The retriever's pair scores kept in the file (``--score-all``), for ``--output-scores`` without a
        judge."""
        if "pair_score" not in self.columns:
            raise ConfigError(f"{self.path}: --output-scores without a score rule writes the retriever's pair scores, "
                              f"which this candidates file does not hold; {REMINE}")
        positives = [plan.positives.of(int(q)).tolist() for q in rows]
        indices = self.search(plan, rows, texts, None).indices
        lookup = LookupScorer("retriever", VALUE_NAMES["pair_score"], indices,
                              self._grid("pair_score", rows, plan.depth), positives,
                              self._positive_values("pair_score", rows, positives), rows)
        return [lookup.score(np.full(len(d), i, dtype=np.int64), np.asarray(d, dtype=np.int64))
                for i, d in enumerate(docs)]

    def judge_name(self, plan: Any) -> str:
        return self.name

    def embedder_identity(self, plan: Any) -> Optional[dict[str, Any]]:
        return (self.meta.get("models") or {}).get("embedder") if uses_bi_encoder(plan.rules) else None

    def judge_identity(self, plan: Any, always: bool = False) -> Optional[dict[str, Any]]:
        if not registry.need_scores(plan.rules) and not always:
            return None
        return self.judge_record

    def bm25_tokenizer(self, plan: Any) -> Optional[str]:
        """The tokenizer the mining run read BM25 with, as its provenance says (``words`` unless it says other)."""
        return (self.meta.get("resolved") or {}).get("bm25_tokenizer", "words")

    def texts_counted(self) -> Optional[tuple[int, int]]:
        return None  # nothing is encoded

    def endpoints(self) -> list[tuple[str, Any]]:
        return []  # no model is asked (an LLM judge is the plan's)


class StoredRun:
    """A candidates file and the inputs it was mined from, read once, ready to plan runs with other settings
    (``refilter`` plans one, ``sweep`` many)."""

    def __init__(self, path: Path, meta: dict[str, Any], files: dict[str, Any], inputs: Inputs, positives: Positives,
                 mined: np.ndarray, stats: MineStats, cache: Optional[Path], warnings: list[str]) -> None:
        self.path, self.meta, self.files = path, meta, files
        self.inputs, self.positives, self.mined, self.stats = inputs, positives, mined, stats
        self.cache, self.warnings = cache, warnings
        self.sources = StoredSources(path, meta, inputs.queries, inputs.corpus)
        self.doc_digests: Optional[np.ndarray] = None

    def config(self, options: dict[str, Any]) -> MineConfig:
        """The mined settings with ``options`` (filter, sampling and output options) in their place."""
        return config_of(self.meta, options, self.path)

    def plan(self, config: MineConfig) -> tuple[Plan, MineStats]:
        """A run of these candidates with ``config`` (checked against what the file holds), and its statistics so
        far."""
        kind = self.sources.judge_kind or "self"
        rules = config.for_judge(self.sources.judge_kind)
        depth = depth_of(config, self.positives, self.mined, len(self.inputs.corpus))
        self.sources.check(rules, depth)
        if self.doc_digests is None:
            self.doc_digests = np.zeros(len(self.inputs.corpus), dtype=np.uint64)
        llm = load_llm_judge(config.llm_judge, config.llm_confirm, config.llm_judge_prompt,
                             lambda model, url: endpoint(config, model, url), self.cache)  # verdicts: cached
        run = Plan(config, rules, self.inputs, self.positives, self.mined, depth, self.sources,
                   self.cache or Path("."), kind, doc_digests=self.doc_digests, llm=llm)  # digests: shared
        if percentile_gate_on(rules):
            run.calibration = self.sources.calibration(self.mined)
        return run, copy.deepcopy(self.stats)


def open_stored(candidates: PathLike, *, corpus: Any = None, queries: Any = None, qrels: Any = None,
                pairs: Any = None, cache_dir: Optional[PathLike] = None, progress: Optional[Progress] = None,
                warnings: Optional[list[str]] = None) -> StoredRun:
    """Read a candidates file and the inputs it was mined from (those of its provenance, or the ones given)."""
    progress = progress or Progress()
    warnings = [] if warnings is None else warnings
    path = Path(candidates)
    if not path.is_file():
        raise InputError(f"{path}: no such candidates file")
    meta = read_record(path)
    config = config_of(meta, {}, path)
    given = {"corpus": corpus, "queries": queries, "qrels": qrels, "pairs": pairs}
    files = input_paths(meta, {k: v for k, v in given.items() if isinstance(v, (str, Path))}, path) \
        if not any(v is not None and not isinstance(v, (str, Path)) for v in given.values()) else {}
    sources = {k: v if v is not None and not isinstance(v, (str, Path)) else files.get(k) for k, v in given.items()}
    cache = prepare_cache_dir(resolve_cache_dir(cache_dir, None), "--cache-dir")
    inputs, positives, mined, stats = read_inputs(config, sources["corpus"], sources["queries"], sources["qrels"],
                                                  sources["pairs"], cache, progress, warnings)
    for role in ("corpus_embeddings", "query_embeddings"):
        if role in files:
            inputs.files[role] = files[role]
    return StoredRun(path, meta, files, inputs, positives, mined, stats, cache, warnings)
