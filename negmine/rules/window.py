"""``rank_window``: only the candidates ranked ``--range-min`` to ``--range-max`` among the query's non-positive
candidates are eligible (the best-ranked ones skipped are likely false negatives; the deepest ones are too easy)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from negmine.rules.base import CANDIDATES, Rule, Values

if TYPE_CHECKING:
    import numpy as np


def rank_among(eligible: "np.ndarray") -> "np.ndarray":
    """For each cell, its 0-based rank among the ``eligible`` cells of its row (-1 where not eligible)."""
    import numpy as np

    ranks = np.cumsum(eligible, axis=1) - 1
    return np.where(eligible, ranks, -1)


def window_mask(ranks: "np.ndarray", range_min: int, range_max: int) -> "np.ndarray":
    """True where a ranked candidate falls outside ``range_min <= rank < range_max``."""
    return (ranks >= 0) & ((ranks < range_min) | (ranks >= range_max))


def mask(values: Values, config: Any) -> Optional["np.ndarray"]:
    """Ranks count the candidates the rules before (empty slots, known positives) kept."""
    return window_mask(rank_among(values["kept"]), config.range_min, config.range_max)


RULE = Rule("rank_window", CANDIDATES, "outside the rank window `--range-min` .. `--range-max` (ranks among the "
            "query's non-positive candidates)", "raise --range-max (or lower --range-min)", mask)
