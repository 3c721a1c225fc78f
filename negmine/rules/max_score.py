"""``max_score``: a candidate the judge scores above ``--max-score`` is too relevant to be a negative."""

from __future__ import annotations

from negmine.rules.base import SCORE, Option, Rule, above

mask = above("score", "max_score")

RULE = Rule("max_score", SCORE, "a judge's score above `--max-score`", "raise --max-score", mask,
            options=(Option("max_score", None, "optional number", "Drop candidates scoring above this; a number or "
                            "none."),), reads=("score",), columns=("reranker_score",),
            false_negative=True, judge=True)
