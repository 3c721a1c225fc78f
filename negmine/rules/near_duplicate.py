"""``near_duplicate``: a candidate whose bi-encoder cosine to one of its query's positives is above
``--max-positive-similarity`` is a near-copy of the positive."""

from __future__ import annotations

from negmine.rules.base import SCORE, Option, Rule, above

mask = above("positive_similarity", "max_positive_similarity")

RULE = Rule(
    "near_duplicate", SCORE, "a bi-encoder cosine to one of the query's positives above `--max-positive-similarity`",
    "raise --max-positive-similarity", mask,
    options=(Option("max_positive_similarity", 0.98, "optional number", "Drop candidates whose bi-encoder cosine to a "
                    "positive is above this (near-duplicates); a number or none.", -1, 1, "a cosine"),),
    reads=("positive_similarity",), columns=("positive_similarity",), false_negative=True, bi_encoder=True)
