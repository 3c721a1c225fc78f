"""The rules in the order they run, and what the stages do with them: status codes, applying a stage's rules to a
batch (each candidate gets the code of the first rule that drops it, or KEPT), and the counts.

Adding a rule: a module of its own (``RULE = Rule(...)``: its name, stage, options, what it reads, its mask, and for
an evidence rule the ``gather`` of what it reads), its place in ``RULES`` below, and its option's field in
``negmine.settings.config.MineConfig`` (whose default the rule gives). docs/architecture.md says it in full.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator, Optional, Sequence

from negmine.rules import (
    absolute_margin,
    agreement,
    cross_query,
    duplicates,
    known,
    lexical_overlap,
    max_score,
    min_score,
    near_duplicate,
    percentile_gate,
    positive_proximity,
    relative_margin,
    window,
)
from negmine.rules.base import CANDIDATES, EVIDENCE, SCORE, Option, Rule, Values

if TYPE_CHECKING:
    import numpy as np

    from negmine.rules.evidence import Context

#: Every rule, in the order they run (within a stage, the first rule that drops a candidate names it).
RULES: tuple[Rule, ...] = (
    known.RULE, window.RULE, duplicates.TEXT, duplicates.CANDIDATE,  # candidates: no model
    cross_query.RULE, lexical_overlap.RULE,  # evidence
    near_duplicate.RULE, positive_proximity.RULE, agreement.RULE, max_score.RULE, min_score.RULE,  # score
    absolute_margin.RULE, relative_margin.RULE, percentile_gate.RULE,
)
#: Status names, indexed by code: a candidate no rule dropped, an empty slot, the rules, one lazy scoring never
#: reached, and one an LLM judge found relevant (``negmine.judges.llm``: a stage after sampling, not a rule; last,
#: so that the rules' codes stay what they were). As the statistics and the candidates file name them.
REASONS: tuple[str, ...] = ("kept", "no_candidate", *(r.name for r in RULES), "not_scored", "llm_judge")
CODES = {name: code for code, name in enumerate(REASONS)}
KEPT, NO_CANDIDATE, NOT_SCORED = CODES["kept"], CODES["no_candidate"], CODES["not_scored"]
LLM_JUDGE = CODES["llm_judge"]
POSITIVE = CODES[known.RULE.name]
#: Codes of the rules (counted in the statistics), of the score rules (applied as lazy scoring reaches a
#: candidate), and of the rules that drop likely false negatives (unlabelled positives).
DROP_RULES = tuple(CODES[r.name] for r in RULES)
SCORE_RULES = tuple(CODES[r.name] for r in RULES if r.stage == SCORE)
FALSE_NEGATIVE_RULES = (*(CODES[r.name] for r in RULES if r.false_negative), LLM_JUDGE)
RULE_OF = {r.name: r for r in RULES}
#: Every option a rule owns, by its config field.
OPTIONS: dict[str, Option] = {o.name: o for r in RULES for o in r.options}
#: What to change when a rule drops too much.
KNOBS = {r.name: r.knob for r in RULES}


def of_stage(stage: str) -> Iterator[tuple[int, Rule]]:
    """(code, rule) of the rules of a stage, in order."""
    for rule in RULES:
        if rule.stage == stage:
            yield CODES[rule.name], rule


def apply(stage: str, reasons: "np.ndarray", values: Values, config: Any) -> "np.ndarray":
    """``reasons`` with the rules of ``stage`` applied to the cells still KEPT, in order (the first rule that drops
    a cell names it); a new array. Each mask reads ``values`` and, as ``kept``, the cells still kept before it."""
    out = reasons.copy()
    kept = out == KEPT
    for code, rule in of_stage(stage):
        hit = rule.mask({**values, "kept": kept}, config)
        if hit is None:
            continue
        hit = kept & hit
        out[hit] = code
        kept &= ~hit
    return out


def candidate_rules(indices: "np.ndarray", positives: Sequence[Sequence[int]], config: Any,
                    normalized: Any = None) -> "np.ndarray":
    """The code of every candidate under the rules that need no model: an empty slot, then the candidate rules (a
    known positive, the rank window, duplicate texts when ``normalized`` texts are given)."""
    import numpy as np

    reasons = np.full(indices.shape, KEPT, dtype=np.int8)
    reasons[indices < 0] = NO_CANDIDATE
    return apply(CANDIDATES, reasons, {"indices": indices, "positives": positives, "normalized": normalized}, config)


def evidence_rules(reasons: "np.ndarray", evidence: Values, config: Any) -> "np.ndarray":
    """``reasons`` with the evidence rules applied to the candidates still KEPT."""
    return apply(EVIDENCE, reasons, evidence, config)


def score_rules(values: Values, config: Any) -> "np.ndarray":
    """The code of each scored cell (``values``: its score values, each an array over the cells): the first score
    rule that drops it, or KEPT."""
    import numpy as np

    cells = np.full(len(values["score"]), KEPT, dtype=np.int8)
    return apply(SCORE, cells, values, config)


def gather(context: "Context", config: Any, everything: bool = False) -> dict[str, Any]:
    """The evidence the enabled rules read for a batch (every rule's, ``everything``: for a complete candidates
    file)."""
    found: dict[str, Any] = {}
    for rule in RULES:
        if rule.gather is not None and (everything or rule.enabled(config)):
            found.update(rule.gather(context))
    return found


#: The evidence that is 0 where BM25 has no token to compare, best first: a candidate that shares none with the
#: positive (lexical overlap), or with the query (agreement's BM25 score).
BM25_EVIDENCE = ("lexical_overlap", "bm25_score")


def blind_counts(reasons: "np.ndarray", evidence: Values, config: Any) -> tuple[int, int]:
    """The candidates the BM25 rules look at (those the candidate rules kept) and how many of them share no BM25
    token with their positive (or, without the lexical-overlap evidence, their query). Where nearly all of a
    run's do, BM25 reads nothing in common between neighbours (a tokenizer that splits no word of the corpus's
    script, say): the rules that read it cannot see."""
    for value in BM25_EVIDENCE:
        found = evidence.get(value)
        if found is not None:
            kept = reasons == KEPT
            return int(kept.sum()), int((kept & (found == 0)).sum())
    return 0, 0


def bm25_rules(config: Any) -> list[str]:
    """The enabled rules that read BM25."""
    return [r.name for r in RULES if r.bm25 and r.enabled(config)]


def need_scores(config: Any) -> bool:
    """Whether the judge must score candidates: a rule on the judge's scores is on."""
    return any(rule.judge and rule.enabled(config) for rule in RULES)


def score_rules_on(config: Any) -> bool:
    """Whether a score rule is on (lazy scoring then walks the candidates)."""
    return any(rule.stage == SCORE and rule.enabled(config) for rule in RULES)


def reads_bm25(config: Any, everything: bool = False) -> bool:
    """Whether a rule that is on reads BM25 scores (an index is needed beside the retriever's)."""
    return any(rule.bm25 and (everything or rule.enabled(config)) for rule in RULES)


def reads_bi_encoder(config: Any) -> bool:
    """Whether a rule that is on reads the retrieval bi-encoder's cosines."""
    return any(rule.bi_encoder and rule.enabled(config) for rule in RULES)


def count_reasons(reasons: "np.ndarray") -> dict[str, int]:
    """How many candidates each rule dropped (every rule listed, zeros included)."""
    import numpy as np

    counts = np.bincount(reasons.ravel().astype(np.int64), minlength=len(REASONS))
    out = {REASONS[code]: int(counts[code]) for code in DROP_RULES}
    if counts[LLM_JUDGE]:  # listed only when the LLM judge ran and flagged (outputs without it keep their bytes)
        out["llm_judge"] = int(counts[LLM_JUDGE])
    return out


def dominant_drop(reasons: "np.ndarray") -> "np.ndarray":
    """Per row, the code of the rule that dropped most of its candidates (known positives aside; ties go to the
    earlier rule), -1 where no rule dropped any."""
    import numpy as np

    codes = np.array([c for c in DROP_RULES if c != POSITIVE])
    counts = np.stack([(reasons == c).sum(axis=1) for c in codes], axis=1)
    return np.where(counts.max(axis=1) > 0, codes[counts.argmax(axis=1)], -1)


def weak_positive(indices: "np.ndarray", positives: Sequence[Sequence[int]]) -> "np.ndarray":
    """Per row, whether even its best positive ranks below most of the row's candidates (or was not retrieved at
    all): the query's own wording matches other documents better than its positive."""
    import numpy as np

    out = np.zeros(indices.shape[0], dtype=bool)
    for q, (row, pos) in enumerate(zip(indices, positives)):
        n = int((row >= 0).sum())
        where = np.flatnonzero(np.isin(row, np.asarray(pos, dtype=row.dtype)))
        out[q] = where.size == 0 or where[0] >= n / 2
    return out


def option(name: str) -> Optional[Option]:
    """The rule option of a config field, if a rule owns it."""
    return OPTIONS.get(name)
