"""False negatives among mined negatives, on collections with many judged relevant documents per query.

    HF_HUB_OFFLINE=1 python benchmarks/false_negatives.py [--datasets cranfield msmarco-dl19-subset scifact]
        [-n 5] [--quick] [--cache-dir /work/fn-cache] [--out benchmarks/out] [--reranker PATH]
        [--judge-endpoint MODEL@URL [--confirm-endpoint MODEL@URL]]

Each query gets ONE judged document as its positive (the highest grade, then the smallest id); every other judged
relevant document mined as a negative is a false negative (FN). The bi-encoder (all-MiniLM-L6-v2) retrieves and
judges its own candidates; --judge-endpoint adds an arm where an LLM behind an endpoint judges each pick too
(``--llm-judge``: the figures measure that model; against a toy model they measure plumbing only); with
--reranker PATH (a sentence-transformers CrossEncoder, or a bi-encoder, on disk) that model judges instead:
negmine's runs get ``reranker=PATH`` (so ``--relative-margin auto`` is 0.05) and ST's ``mine_hard_negatives`` gets
it as its ``cross_encoder``. Per method it prints:

  FN       share of mined negatives that are false negatives
  served   share of queries that got all N negatives
  depth    MEDIAN rank of the negatives in the model's own full dense ranking (cosine over the whole corpus, 1 = best)
  lift     FN of the picks / FN of blind picks at the same ranks of the method's own candidate list (for a pick at
           rank r: the documents at ranks r-10..r+10 of that list, positive excluded). 1 = the filter knows nothing
           beyond rank. For the defaults, a 95% bootstrap interval over queries is printed with the verdict.
  blind@d  FN of a blind pick at the same depth: each negative replaced by a random document within +-10 of its
           rank in the full dense ranking (5 seeds). FN not below it = a hollow win a rank cut-off would give.
  top10 / 11-100 / >100   FN split by the positive's strength (its rank in the full dense ranking)
  t10/11+  FN of queries with a top-10 positive / FN of the other queries
  FN/ST, depth/ST   against sentence-transformers mine_hard_negatives(relative_margin=0.05)

and, per negmine setting, which targets it meets: lift <= 0.6; FN <= 0.5 x ST's; served >= 95%; depth <= 3 x ST's;
FN(top-10 positive) <= 1.5 x FN(others). It writes one FN-vs-depth frontier PNG per dataset (each method family over
a sweep of its knobs) and the figures as JSON, under --out.

Methods: ST mine_hard_negatives (relative_margin 0 .. 0.3, its default window, a cross_encoder stand-in that scores
with the same bi-encoder's cosine), plain dense top-k, negmine with its current defaults and sweeps of its knobs,
and the blind baselines (dense top-k from rank R; random among the dense top W). A negmine setting is an option
dict for ``negmine.mine``: add new rules or config fields by listing dicts in ``negmine_families`` (a dict naming
an option this negmine does not have is reported as skipped). SciFact (about 1.1 relevant per query) shows served
and depth only: its FN rate is not a measure of anything.
"""

from __future__ import annotations

import os

os.environ.setdefault("TQDM_DISABLE", "1")  # sentence-transformers' progress bars, even with verbose=False

import argparse
import json
import math
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import fn_metrics as M
import numpy as np
import pyarrow.parquet as pq
from fn_data import DEFAULT_CACHE, Prepared, pick_positives, prepare  # noqa: F401 - pick_positives re-exported

import negmine
from negmine.errors import ConfigError

OUT = Path(__file__).resolve().parent / "out"
#: Default split per dataset (SciFact: train, the split one mines for training).
SPLITS = {"scifact": "train"}
#: Datasets whose FN rate means something (several judged relevant per query).
FN_DATASETS = {"cranfield", "msmarco-dl19-subset"}
ST_MARGINS = (0.0, 0.05, 0.1, 0.15, 0.2, 0.3)
ST_REFERENCE = "ST rm=0.05"


@dataclass
class Method:
    """One run's outcome: its picks, the candidate list it sampled from, and its figures."""

    label: str
    family: str
    knob: str
    picks: dict[str, list[str]]
    cand: dict[str, list[str]]
    seconds: float
    figures: dict[str, float] = field(default_factory=dict)
    options: Optional[dict[str, Any]] = None


# --------------------------------------------------------------------------------------------------------------
# what is compared

def negmine_families(quick: bool) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """negmine settings to run, per frontier family: (knob label, options for negmine.mine).

    New rules or config fields: add a family (or entries) here, or pass them with --negmine-runs ({family: {knob:
    options}} or {label: options}, see ``with_extra``); nothing else changes.
    """
    off = {"relative_margin": None, "max_positive_similarity": None, "positive_proximity": None,
           "lexical_overlap": None, "agreement": False, "cross_query": None}
    rules_off = {"positive_proximity": None, "lexical_overlap": None, "agreement": False, "cross_query": None}
    fam: dict[str, list[tuple[str, dict[str, Any]]]] = {
        "plain top-k": [("dense", {"retriever": "dense", **off})],
        "negmine defaults": [("defaults", {})],
        # the defaults before the evidence rules: hybrid candidates, the bi-encoder's 15% relative margin
        "negmine previous defaults": [("hybrid rm=0.15", {"retriever": "hybrid", "relative_margin": 0.15,
                                                          **rules_off})],
        "blind: dense top-k from rank R": [(f"R={r}", {"retriever": "dense", "range_min": r, **off})
                                           for r in ((5, 20, 50) if quick else (5, 10, 20, 30, 50, 100, 150))],
        "random: dense top-W": [(f"W={w}", {"retriever": "dense", "range_max": w, "sampling_strategy": "random",
                                            **off}) for w in ((20, 100) if quick else (10, 20, 50, 100, 200))],
    }
    if quick:
        return fam
    fam.update({
        "negmine lexical overlap (+ agreement)": [(f"t={t}", {"lexical_overlap": t})
                                                  for t in (0.05, 0.1, 0.15, 0.2, 0.3)],
        "negmine lexical overlap alone": [(f"t={t}", {"lexical_overlap": t, "agreement": False,
                                                      "positive_proximity": None}) for t in (0.05, 0.1, 0.2)],
        "negmine agreement alone": [("agreement", {"lexical_overlap": None, "positive_proximity": None})],
        "negmine positive proximity": [(f"m={m}", {"positive_proximity": m}) for m in (None, 0.0, 0.02, 0.05, 0.1)],
        "negmine positive proximity alone": [("m=0.02", {"lexical_overlap": None, "agreement": False})],
        "negmine defaults + percentile gate": [
            ("m=0.1", {"percentile_margin": 0.1}), ("m=0.1 floor=0.3", {"percentile_margin": 0.1,
                                                                          "percentile_floor": 0.3}),
            ("cap=0.75", {"percentile_cap": 0.75}), ("cap=0.9", {"percentile_cap": 0.9})],
        "negmine defaults + relative margin": [(f"rm={rm}", {"relative_margin": rm}) for rm in (0.05, 0.15)],
        "negmine defaults, other candidates": [("hybrid", {"retriever": "hybrid"}), ("bm25", {"retriever": "bm25"})],
        "negmine defaults range_max": [(f"max={m}", {"range_max": m}) for m in (50, 100, 300)],
        "negmine defaults random": [("random", {"sampling_strategy": "random"}),
                                    ("random max=50", {"sampling_strategy": "random", "range_max": 50})],
        "negmine dense rm (rules off)": [(f"rm={rm}", {"retriever": "dense", "relative_margin": rm, **rules_off})
                                         for rm in (0.0, 0.05, 0.1, 0.15, 0.2, 0.3)],
        "negmine hybrid rm (rules off)": [(f"rm={rm}", {"retriever": "hybrid", "relative_margin": rm, **rules_off})
                                          for rm in (0.05, 0.15, 0.3)],
    })
    return fam


def with_extra(fam: dict[str, list[tuple[str, dict[str, Any]]]],
               extra: Optional[dict[str, Any]]) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """``fam`` plus the runs given on the command line: {family: {knob: options}} or {label: options}."""
    for name, value in (extra or {}).items():
        if value and all(isinstance(v, dict) for v in value.values()):
            fam.setdefault(f"negmine {name}", []).extend(value.items())
        else:
            fam.setdefault(f"negmine {name}", []).append((name, value))
    return fam


# --------------------------------------------------------------------------------------------------------------
# runners

def run_negmine(data: Prepared, label: str, family: str, knob: str, opts: dict[str, Any], n: int,
                work: Path) -> Optional[Method]:
    """negmine.mine with ``opts``; the picks and the candidate list come from its candidates file."""
    cand_path = work / "candidates.parquet"
    t = time.perf_counter()
    try:
        negmine.mine(data.corpus, data.queries, data.one_positive_qrels, cache_dir=data.cache / "negmine",
                     candidates_output=cand_path, score_all=True, num_negatives=n, device="cpu", **opts)
    except ConfigError as exc:
        print(f"  {label:44} skipped: {exc}", flush=True)
        return None
    secs = time.perf_counter() - t
    tab = pq.read_table(cand_path, columns=["query_id", "doc_id", "rank", "status"]).to_pydict()
    rows = sorted((q, r, d, status) for q, r, d, status in zip(map(str, tab["query_id"]), tab["rank"],
                                                             map(str, tab["doc_id"]), tab["status"])
                  if status != "qrel")  # the positives' own rows (no rank) are not candidates
    cand: dict[str, list[str]] = defaultdict(list)
    picks: dict[str, list[str]] = defaultdict(list)
    for q, _, d, status in rows:
        cand[q].append(d)
        if status == "selected":
            picks[q].append(d)
    return Method(label, family, knob, dict(picks), dict(cand), secs, options=opts)


class CachedBiEncoderCE:
    """Looks like a CrossEncoder to mine_hard_negatives; scores with the bi-encoder's cosine from the cached
    embeddings (encoding only texts it has not seen) and counts the pairs it is asked for."""

    def __init__(self, model: Any, vectors: dict[str, np.ndarray]) -> None:
        self.model = model
        self.vectors = vectors
        self.pairs = 0

    def _stack(self, texts: list[str], batch_size: int) -> np.ndarray:
        new = [t for t in dict.fromkeys(texts) if t not in self.vectors]
        if new:
            vecs = self.model.encode(new, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False)
            self.vectors.update(zip(new, vecs))
        return np.stack([self.vectors[t] for t in texts])

    def predict(self, pairs, batch_size=32, convert_to_tensor=True, pool=None, **_):  # type: ignore[no-untyped-def]
        import torch

        self.pairs += len(pairs)
        q = self._stack([a for a, _ in pairs], batch_size)
        d = self._stack([b for _, b in pairs], batch_size)
        return torch.from_numpy((q * d).sum(-1).astype(np.float32))


class STRunner:
    """sentence-transformers mine_hard_negatives on one dataset, with the bi-encoder as its cross_encoder (or the
    CrossEncoder at ``reranker``)."""

    def __init__(self, data: Prepared, reranker: Optional[str] = None) -> None:
        from datasets import Dataset
        from sentence_transformers import SentenceTransformer

        from negmine.retrieve.encoders import default_model_path

        self.data = data
        self.model = SentenceTransformer(str(default_model_path()), device="cpu")
        self.text_to_id: dict[str, str] = {}
        for i, t in enumerate(data.corpus.texts):
            self.text_to_id.setdefault(t, str(data.corpus.ids[i]))
        self.qid_of = {t: q for q, t in zip(data.qids, data.qtexts)}
        self.pairs = Dataset.from_dict({"anchor": data.qtexts,
                                        "positive": [data.corpus.texts[i] for i in data.pos_idx]})
        vectors = {t: v for t, v in zip(data.corpus.texts, data.d_emb)}
        vectors.update(zip(data.qtexts, data.q_emb))
        self.vectors = vectors
        self.reranker = reranker

    def run(self, label: str, knob: str, n: int, **opts: Any) -> Method:
        from sentence_transformers.util import mine_hard_negatives

        if self.reranker is not None:
            from sentence_transformers import CrossEncoder

            ce: Any = CrossEncoder(self.reranker, device="cpu")
        else:
            ce = CachedBiEncoderCE(self.model, self.vectors)
        t = time.perf_counter()
        out = mine_hard_negatives(self.pairs, self.model, corpus=list(self.data.corpus.texts), cross_encoder=ce,
                                  num_negatives=n, sampling_strategy="top", batch_size=64, verbose=False,
                                  cache_folder=str(self.data.cache / "st"), **opts)
        secs = time.perf_counter() - t
        picks: dict[str, list[str]] = defaultdict(list)
        for row in out:
            picks[self.qid_of[row["anchor"]]].append(self.text_to_id[row["negative"]])
        # its candidate list: the dense top range_max + 1 (the positive's slot), as it retrieves them
        window = opts.get("range_max") or (10 * n + 1 if any(opts.get(k) is not None for k in
                                                              ("relative_margin", "absolute_margin", "max_score"))
                                           else n + 1)
        cand = {q: [str(self.data.corpus.ids[j]) for j in self.data.order[i, : window + 1]]
                for i, q in enumerate(self.data.qids)}
        return Method(label, "ST mine_hard_negatives rm", knob, dict(picks), cand, secs, options=opts)


# --------------------------------------------------------------------------------------------------------------
# evaluation and printing

def evaluate(data: Prepared, m: Method, n: int, blind: bool = True) -> dict[str, float]:
    row_of = {q: i for i, q in enumerate(data.qids)}
    col_of = data.corpus.index

    def rank(q: str, d: str) -> int:
        return int(data.rank[row_of[q], col_of[d]])

    pos_rank = {q: int(data.pos_rank[i]) for i, q in enumerate(data.qids)}
    f = M.summarize(m.picks, data.qids, n, data.relevant, data.positive, rank, pos_rank, m.cand)
    if blind:
        ids = [str(x) for x in data.corpus.ids]
        order = _LazyOrder(data, ids)
        f["blind_at_depth"] = M.blind_same_depth(m.picks, order, rank, data.relevant, data.positive)
    f["seconds"] = m.seconds
    m.figures = f
    return f


class _LazyOrder(dict):
    """q -> full dense ranking as document ids, built on first use."""

    def __init__(self, data: Prepared, ids: list[str]) -> None:
        super().__init__()
        self.data, self.ids = data, ids
        self.row = {q: i for i, q in enumerate(data.qids)}

    def __missing__(self, q: str) -> list[str]:
        v = [self.ids[j] for j in self.data.order[self.row[q]]]
        self[q] = v
        return v


def _pct(x: float) -> str:
    return "    -" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:5.1%}"


def _num(x: float, fmt: str = "5.2f") -> str:
    return "    -" if x is None or (isinstance(x, float) and (math.isnan(x) or math.isinf(x))) else format(x, fmt)


HEADER = (f"  {'method':46} {'FN':>6} {'served':>6} {'depth':>6} {'lift':>5} {'blind@d':>7} {'top10':>6} "
          f"{'11-100':>6} {'>100':>6} {'t10/11+':>7} {'FN/ST':>5} {'d/ST':>5}  targets")


def print_row(m: Method, st: Optional[dict[str, float]], fn_measurable: bool) -> None:
    f = m.figures
    fn = (lambda x: _pct(x)) if fn_measurable else (lambda x: "    -")
    fn_st = f["fn"] / st["fn"] if st and fn_measurable and st["fn"] > 0 else math.nan
    d_st = f["depth"] / st["depth"] if st else math.nan
    targets = ""
    if st and fn_measurable and m.family != "ST mine_hard_negatives rm":
        ok = M.check_targets(f, st)
        targets = " ".join(("+" if v else "-") + k for k, v in ok.items())
    print(f"  {m.label[:46]:46} {fn(f['fn']):>6} {_pct(f['served']):>6} {_num(f['depth'], '6.0f'):>6} "
          f"{_num(f.get('lift', math.nan)) if fn_measurable else '    -':>5} "
          f"{fn(f.get('blind_at_depth', math.nan)):>7} {fn(f['fn_top10']):>6} {fn(f['fn_11_100']):>6} "
          f"{fn(f['fn_gt100']):>6} {_num(f['strength_ratio']) if fn_measurable else '    -':>7} "
          f"{_num(fn_st):>5} {_num(d_st):>5}  {targets}", flush=True)


def frontier_png(data: Prepared, methods: list[Method], st: Optional[dict[str, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fams: dict[str, list[Method]] = defaultdict(list)
    for m in methods:
        fams[m.family].append(m)
    fig, ax = plt.subplots(figsize=(10, 6.5))
    if st:
        ax.axvspan(0.9, 3 * st["depth"], ymax=1, alpha=0.0)
        ax.fill_between([0.9, 3 * st["depth"]], 0, 0.5 * st["fn"], color="tab:green", alpha=0.12,
                        label="target: FN <= 0.5 x ST, depth <= 3 x ST")
    markers = "osD^v<>phX*"
    for i, (fam, ms) in enumerate(fams.items()):
        ms = sorted(ms, key=lambda m: m.figures["depth"])
        xs = [m.figures["depth"] for m in ms]
        ys = [m.figures["fn"] for m in ms]
        line = ax.plot(xs, ys, "-", marker=markers[i % len(markers)], label=fam, alpha=0.85,
                       color=plt.get_cmap("tab20")(i % 20))[0]
        for m, x, y in zip(ms, xs, ys):
            if m.figures["served"] < 0.95:  # hollow marker: under 95% of queries served
                ax.plot([x], [y], marker=markers[i % len(markers)], markersize=11, markerfacecolor="white",
                        markeredgecolor=line.get_color(), linestyle="none")
            ax.annotate(m.knob, (x, y), textcoords="offset points", xytext=(4, 3), fontsize=6.5,
                        color=line.get_color())
    ax.set_xscale("log")
    ax.set_xlabel("depth: median rank of the negatives in the model's full dense ranking (log)")
    ax.set_ylabel("false-negative rate")
    ax.set_title(f"{data.name}: FN rate vs depth (bi-encoder judge; hollow = < 95% of queries served)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


# --------------------------------------------------------------------------------------------------------------

def run_dataset(name: str, n: int, quick: bool, cache: Path, out: Path,
                extra: Optional[dict[str, Any]] = None, reranker: Optional[str] = None) -> list[Method]:
    split = SPLITS.get(name, "test")
    data = prepare(name, split, cache)
    fn_ok = name in FN_DATASETS
    buckets = {b: int(((data.pos_rank >= lo) & (data.pos_rank <= hi)).sum()) for b, lo, hi in M.STRENGTH_BINS}
    print(f"\n{name} ({split}): {len(data.corpus):,} documents, {len(data.qids)} queries, "
          f"{np.mean([len(data.relevant[q]) for q in data.qids]):.1f} judged relevant per query; {n} negatives; "
          f"positives in the model's top 10 / 11-100 / >100: {buckets['top10']} / {buckets['11-100']} / "
          f"{buckets['>100']} queries" + ("" if fn_ok else "  (FN not measurable here: served and depth only)"))
    print(f"  judge: {reranker or 'the bi-encoder itself'}")
    print(HEADER)
    methods: list[Method] = []
    st_runner = STRunner(data, reranker)
    st_fig: Optional[dict[str, float]] = None
    for rm in ((0.05,) if quick else sorted(ST_MARGINS, key=lambda x: x != 0.05)):  # the reference first
        m = st_runner.run(f"ST rm={rm}", f"rm={rm}", n, relative_margin=rm)
        evaluate(data, m, n)
        if rm == 0.05:
            st_fig = m.figures
        print_row(m, st_fig, fn_ok)
        methods.append(m)
    with tempfile.TemporaryDirectory(prefix="negmine-fn-") as tmp:
        for family, runs in with_extra(negmine_families(quick), extra).items():
            for knob, opts in runs:
                label = family if len(runs) == 1 else f"{family} {knob}"
                if reranker is not None and family.startswith("negmine"):  # not the blind and plain baselines
                    opts = {"reranker": reranker, **opts}
                m = run_negmine(data, label, family, knob, opts, n, Path(tmp))
                if m is None:
                    continue
                evaluate(data, m, n)
                print_row(m, st_fig, fn_ok)
                methods.append(m)
    if fn_ok and st_fig:
        _verdict(methods, st_fig)
    out.mkdir(parents=True, exist_ok=True)
    if fn_ok:
        frontier_png(data, methods, st_fig, out / f"frontier-{name}.png")
        print(f"  frontier: {out / f'frontier-{name}.png'}")
    (out / f"false_negatives-{name}.json").write_text(json.dumps(
        [{"label": m.label, "family": m.family, "knob": m.knob, "options": m.options, **m.figures} for m in methods],
        indent=1, default=str))
    return methods


def _verdict(methods: list[Method], st: dict[str, float]) -> None:
    defaults = next((m for m in methods if m.family == "negmine defaults"), None)
    if defaults is not None:
        ok = M.check_targets(defaults.figures, st)
        print("  negmine defaults vs targets: " + "; ".join(f"{k} {'met' if v else 'NOT met'}" for k, v in ok.items()))
        f = defaults.figures
        print(f"  negmine defaults lift {f['lift']:.4f}, 95% bootstrap interval over queries "
              f"{f['lift_lo']:.2f}-{f['lift_hi']:.2f}")
    cands = [m for m in methods if m.family.startswith("negmine")]
    full = [m.label for m in cands if all(M.check_targets(m.figures, st).values())]
    print("  negmine settings meeting every target: " + (", ".join(full) if full else "none"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="+", default=["cranfield", "msmarco-dl19-subset", "scifact"])
    ap.add_argument("-n", "--num-negatives", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="ST rm=0.05, top-k, negmine defaults and a few blind runs")
    ap.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE,
                    help="embeddings, BM25 and ST caches (default: $NEGMINE_FN_CACHE or /work/fn-cache)")
    ap.add_argument("--out", type=Path, default=OUT, help="frontier PNGs and JSON figures (default: benchmarks/out)")
    ap.add_argument("--reranker", default=None,
                    help="a judge on disk (CrossEncoder or bi-encoder) for negmine's runs and ST's cross_encoder")
    ap.add_argument("--negmine-runs", type=json.loads, default=None,
                    help='more negmine settings as JSON: {"family": {"knob": {options}}} or {"label": {options}}')
    ap.add_argument("--judge-endpoint", default=None,
                    help="MODEL@URL: a chat model behind an OpenAI-compatible endpoint; adds the LLM-judge arm "
                         "(negmine's defaults with --llm-judge MODEL@URL)")
    ap.add_argument("--confirm-endpoint", default=None,
                    help="MODEL@URL: the LLM judge's confirming model (--llm-confirm)")
    args = ap.parse_args()
    if args.judge_endpoint is not None:
        arm = {"llm_judge": args.judge_endpoint}
        if args.confirm_endpoint is not None:
            arm["llm_confirm"] = args.confirm_endpoint
        args.negmine_runs = {**(args.negmine_runs or {}), "defaults + LLM judge": arm}
    import torch

    torch.set_num_threads(max(1, torch.get_num_threads()))
    everything = {}
    out = args.out / f"judge-{Path(args.reranker).name}" if args.reranker else args.out  # apart from the bi-encoder's
    for name in args.datasets:
        everything[name] = run_dataset(name, args.num_negatives, args.quick, args.cache_dir, out, args.negmine_runs,
                                       args.reranker)
    fn_sets = [d for d in everything if d in FN_DATASETS]
    if len(fn_sets) > 1:
        print("\nnegmine settings meeting every target on " + " and ".join(fn_sets) + ":")
        ok_sets = []
        for d in fn_sets:
            st = next(m.figures for m in everything[d] if m.label == ST_REFERENCE)
            ok_sets.append({m.label for m in everything[d]
                            if m.family.startswith("negmine") and all(M.check_targets(m.figures, st).values())})
        both = set.intersection(*ok_sets)
        print("  " + (", ".join(sorted(both)) if both else "none"))


if __name__ == "__main__":
    main()
