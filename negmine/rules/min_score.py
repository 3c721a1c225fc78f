"""``min_score``: a candidate the judge scores below ``--min-score`` is too easy to teach anything."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from negmine.rules.base import SCORE, Option, Rule, Values

if TYPE_CHECKING:
    import numpy as np


def mask(values: Values, config: Any) -> Optional["np.ndarray"]:
    if config.min_score is None:
        return None
    return values["score"] < config.min_score


RULE = Rule("min_score", SCORE, "a judge's score below `--min-score` (too easy)", "lower --min-score", mask,
            options=(Option("min_score", None, "optional number", "Drop candidates scoring below this; a number or "
                            "none."),), reads=("score",), columns=("reranker_score",), judge=True)
