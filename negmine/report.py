"""Run statistics: what was read, retrieved, dropped and written. Stored in the output's provenance and shown
by the CLI's summary."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass
class MineStats:
    """Counts of a mining run. Deterministic: no timings (those are in ``MineResult.seconds``)."""

    queries: int = 0
    queries_mined: int = 0
    queries_without_positives: int = 0
    positives: int = 0
    documents: int = 0
    qrels_rows: int = 0
    qrels_nonpositive: int = 0
    qrels_unknown_query: int = 0
    qrels_unknown_doc: int = 0
    texts_encoded: int = 0
    texts_cached: int = 0
    candidates_seen: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    negatives_written: int = 0
    rows_written: int = 0
    short_pairs: int = 0
    short_queries: int = 0
    short_examples: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def summary_rows(stats: MineStats, num_negatives: int) -> list[tuple[str, str]]:
    """(label, value) lines for a human summary of a run."""
    rows = [
        ("queries", f"{stats.queries:,} ({stats.queries_mined:,} with positives)"),
        ("documents", f"{stats.documents:,}"),
        ("positives", f"{stats.positives:,}"),
        ("texts encoded / from cache", f"{stats.texts_encoded:,} / {stats.texts_cached:,}"),
        ("candidates seen", f"{stats.candidates_seen:,}"),
    ]
    for rule, n in stats.dropped.items():
        rows.append((f"dropped: {rule.replace('_', ' ')}", f"{n:,}"))
    rows.append(("negatives written", f"{stats.negatives_written:,} in {stats.rows_written:,} rows"))
    short = f"{stats.short_queries:,} queries ({stats.short_pairs:,} query-positive pairs) got fewer than {num_negatives}"
    if stats.short_examples:
        short += f", e.g. {', '.join(stats.short_examples)}"
    rows.append(("short", short))
    return rows
