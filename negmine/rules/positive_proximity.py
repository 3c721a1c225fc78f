"""``positive_proximity``: a candidate nearer one of its query's positives than the query itself is, cos(candidate,
p) > cos(query, p) + ``--positive-proximity`` (bi-encoder cosines), sits in the positive's own neighbourhood."""

from __future__ import annotations

from negmine.rules.base import SCORE, Option, Rule, above

mask = above("positive_proximity", "positive_proximity")

RULE = Rule(
    "positive_proximity", SCORE, "nearer a positive than the query is: cos(candidate, positive) > cos(query, "
    "positive) + `--positive-proximity`", "raise --positive-proximity (or none)", mask,
    options=(Option("positive_proximity", 0.02, "optional number", "Drop candidates nearer a positive than the query "
                    "is: cos(candidate, positive) above cos(query, positive) + this (bi-encoder cosines); a number or "
                    "none.", -2, 2, "a difference of two cosines"),),
    reads=("positive_proximity",), columns=("positive_proximity",), false_negative=True, bi_encoder=True)
