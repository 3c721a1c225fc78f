"""Lay the mined negatives out as a training table, in the column names its trainer expects: sentence-transformers'
(``triplet``, ``n-tuple``, ``labeled-pair``, ``labeled-list``) or FlagEmbedding's (``flagembedding``).

The text columns come first (``anchor``, ``positive``, ``negative`` ...), then ids and scores; ``select_columns``
with ``training`` keeps only what a trainer consumes, so the file trains as it is. ``triplet``, ``n-tuple`` and
``labeled-list`` have a row (or rows) per query-positive pair; ``labeled-pair`` and ``flagembedding`` gather a
query's positives and the union of their negatives.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from negmine.sampling.selection import Selection


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
        from negmine.report.stats import MineStats

        sel = Selection.from_arrays({k[4:]: v for k, v in arrays.items() if k.startswith("sel.")})
        cand = {k[5:]: v for k, v in arrays.items() if k.startswith("cand.")} if meta["candidates"] else None
        fn = {k[3:]: v for k, v in arrays.items() if k.startswith("fn.")} if meta.get("false_negatives") else None
        return cls(sel, MineStats(**meta["stats"]), arrays["positive_scores"], arrays["dropped_scores"], cand, fn)
