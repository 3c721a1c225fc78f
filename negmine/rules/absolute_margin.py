"""``absolute_margin``: a candidate the judge scores above the positive's score minus ``--absolute-margin`` is too
close to the positive to be a negative."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from negmine.rules.base import SCORE, Option, Rule, Values

if TYPE_CHECKING:
    import numpy as np


def mask(values: Values, config: Any) -> Optional["np.ndarray"]:
    if config.absolute_margin is None:
        return None
    return values["score"] > values["reference"] - config.absolute_margin


RULE = Rule("absolute_margin", SCORE, "a judge's score above positive - `--absolute-margin`",
            "lower --absolute-margin (or none)", mask,
            options=(Option("absolute_margin", None, "optional number", "Drop candidates scoring above positive - M; a "
                            "number or none."),), reads=("score", "reference"),
            columns=("reranker_score",), false_negative=True, judge=True)
