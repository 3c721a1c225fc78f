"""The summary a person reads: the counts as (label, value) rows, and why queries came up short (or why a run
wrote nothing) with the option to turn."""

from __future__ import annotations

from typing import Any

from negmine.report.stats import MineStats
from negmine.rules import registry
from negmine.rules.registry import REASONS


def summary_rows(stats: MineStats, num_negatives: int, cache_counts: bool = True) -> list[tuple[str, str]]:
    """(label, value) lines for a human summary of a run. ``cache_counts=False`` leaves out the texts encoded and
    read from the cache (a file's provenance does not record them: they depend on the cache, not the inputs); a run
    that looked up no text (no model, or every batch resumed) shows none either."""
    queries = f"{stats.queries:,} ({stats.queries_mined:,} with positives"
    queries += f", {stats.queries_empty_text:,} skipped: empty text)" if stats.queries_empty_text else ")"
    rows = [
        ("queries", queries),
        ("documents", f"{stats.documents:,}"),
        ("positives", f"{stats.positives:,}"),
        *([("texts encoded / from cache", f"{stats.texts_encoded:,} / {stats.texts_cached:,}")]
          if cache_counts and stats.texts_encoded + stats.texts_cached else []),
        ("candidates seen", f"{stats.candidates_seen:,}"),
    ]
    if stats.pairs_scored or stats.positive_pairs_scored:
        rows.append(("reranker pairs scored", f"{stats.pairs_scored:,} candidates of {stats.candidates_seen:,} "
                     f"retrieved (+ {stats.positive_pairs_scored:,} positives); {stats.not_scored:,} not needed"))
    for rule, n in sorted(stats.dropped.items(), key=lambda item: _rule_order(item[0])):
        if n:
            rows.append((f"dropped: {rule.replace('_', ' ')}", f"{n:,}"))
    if stats.scores:
        for role in ("positive", "negative"):
            q = stats.scores[role]
            if q["count"]:
                rows.append((f"{role} scores", f"p5 {q['p5']:.3f}  median {q['p50']:.3f}  p95 {q['p95']:.3f}"))
    if stats.promoted_positives:
        rows.append(("promoted to positives", f"{stats.promoted_positives:,} likely false negatives (written as "
                                              "extra positive rows)"))
    if stats.dense_search:
        d = stats.dense_search
        setting = "".join(f", {name} {d[name]}" for name in ("nprobe", "efSearch") if d.get(name) is not None)
        rows.append(("dense search", f"{d['index']}{' on disk' if d.get('on_disk') else ''}{setting}: recall@"
                                     f"{d['k']} {d['recall_at_k']:.3f} against exact search on {d['sample']:,} "
                                     "sampled queries"))
    rows.append(("negatives written", f"{stats.negatives_written:,} in {stats.rows_written:,} rows"))
    if stats.train_batches:
        rows.extend(batch_rows(stats.train_batches))
    if stats.llm_judge:
        c = stats.llm_judge
        confirm = (f"; {c.get('confirm_judged', 0):,} asked again, {c.get('not_confirmed', 0):,} not confirmed"
                   if "confirm_judged" in c else "")
        rows.append(("LLM judge", f"{c.get('judged', 0):,} picks judged, {c.get('flagged', 0):,} flagged as false "
                                  f"negatives ({c.get('unparsed', 0):,} answers read as neither){confirm}"))
    for name, used in stats.endpoint_usage.items():
        tokens = f", {used['total_tokens']:,} tokens" if used.get("total_tokens") else ""
        rows.append((f"endpoint {name}", f"{used['requests']:,} requests ({used['retries']:,} tried again){tokens}"))
    short = (f"{stats.short_queries:,} queries ({stats.short_pairs:,} query-positive pairs) got fewer than "
             f"{num_negatives}")
    if stats.short_examples:
        short += f", e.g. {', '.join(stats.short_examples)}"
    rows.append(("short", short))
    why = starvation(stats)
    if why:
        rows.append(("why short", why))
    if stats.blind_rules:
        rows.append(("rules that could not see", blind_detail(stats.blind_rules)))
    return rows


def _rule_order(rule: str) -> int:
    """Where a rule comes in the order the rules run (the summary lists them so, whatever the counts' order)."""

    return REASONS.index(rule) if rule in REASONS else len(REASONS)


#: What to change when a rule drops too much (the rules say it: ``Rule.knob``), or when no candidate was found.
KNOBS = {**registry.KNOBS,
         "no_candidates": "use --retriever dense or hybrid (BM25 finds only documents sharing a word)"}

#: The share of the candidates a BM25 rule has no token to compare from which it is said not to see.
BLIND_SHARE = 0.9


def blind_rules(stats: MineStats, config: Any) -> dict[str, float]:
    """The BM25 rules that could not see in a run, each with the share of the candidates it looked at that shared
    no BM25 token with their positive (``BLIND_SHARE`` or more)."""
    if not stats.bm25_seen or stats.bm25_blind / stats.bm25_seen < BLIND_SHARE:
        return {}
    return {rule: round(stats.bm25_blind / stats.bm25_seen, 4) for rule in registry.bm25_rules(config)}


def blind_detail(blind: dict[str, float]) -> str:
    """What a person reads of rules that could not see, and the option that would wake them."""
    share = next(iter(blind.values()))
    names = ", ".join(r.replace("_", " ") for r in sorted(blind, key=_rule_order))
    return (f"{names} ({share:.0%} of the candidates share no BM25 token with their positive); --bm25-tokenizer "
            "ngrams:2 (scripts without spaces) or model would let them see")


#: Below this share of queries served, the summary says why the others starved.
SERVED_ENOUGH = 0.95


def why_empty(stats: MineStats) -> str:
    """The message of a run that would write nothing: the rule that dropped most, and the knob to turn."""
    if stats.candidates_seen == stats.dropped.get("positive", 0):
        return ("no negatives written: no query retrieved a candidate besides its positives (BM25 needs words "
                "shared with the query: check the texts, or use --retriever dense or hybrid); --allow-empty writes "
                "an empty file anyway")
    rule, count = max(((r, n) for r, n in stats.dropped.items() if r != "positive"), key=lambda kv: kv[1])
    return (f"no negatives written: every candidate was dropped, most by the {rule.replace('_', ' ')} rule "
            f"({count:,} of {stats.candidates_seen:,}); {KNOBS.get(rule, 'loosen that rule')}, or pass "
            "--allow-empty to write an empty file anyway")


def starvation(stats: MineStats) -> str:
    """Why queries starved, when fewer than SERVED_ENOUGH of them got all their negatives: the rule that dropped
    most for most of them and the knob to turn, and how many have a weak positive; '' otherwise."""
    if not stats.queries_mined or not stats.short_by_rule:
        return ""
    if 1 - stats.short_queries / stats.queries_mined >= SERVED_ENOUGH:
        return ""
    rule, n = max(stats.short_by_rule.items(), key=lambda kv: kv[1])
    served = 1 - stats.short_queries / stats.queries_mined
    text = (f"{served:.0%} of queries served; for {n:,} of the {stats.short_queries:,} short ones the "
            f"{rule.replace('_', ' ')} rule dropped most candidates: {KNOBS.get(rule, 'loosen it')}")
    if stats.short_weak_positive:
        text += (f". {stats.short_weak_positive / stats.short_queries:.0%} of them have a weak positive (it ranks "
                 "below most of their candidates): their positive may be mislabelled, or the query ambiguous")
    return text


def batch_rows(record: dict[str, Any]) -> list[tuple[str, str]]:
    """Summary lines of a composition of training batches (``--train-batch-size``)."""
    short = record["short_batches"]
    rows = [("training batches", f"{record['batches']:,} of {record['batch_size']} rows"
             + (f" ({short:,} shorter, last)" if short else ""))]
    moved = ", ".join(f"{why.replace('_', ' ')} {n:,}" for why, n in record["moved_by"].items())
    rows.append(("rows moved to a later batch", f"{record['rows_moved']:,}" + (f" ({moved})" if moved else "")
                 + (f"; {record['rows_relaxed']:,} placed where the fewest were near" if record["rows_relaxed"]
                    else "")))
    sim = record.get("similarity") or {}
    rows.append(("in-batch similarity", f"{sim['composed']:.3f} (random batches: {sim['random']:.3f})" if sim
                 else "not grouped (no bi-encoder)"))
    return rows
