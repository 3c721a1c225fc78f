"""``positive``: a candidate that is a known positive of its query (in the qrels) is never a negative."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional, Sequence

from negmine.rules.base import CANDIDATES, Rule, Values

if TYPE_CHECKING:
    import numpy as np


def positive_mask(indices: "np.ndarray", positives: Sequence[Sequence[int]]) -> "np.ndarray":
    """True where a candidate is a known positive of its query."""
    import numpy as np

    mask = np.zeros(indices.shape, dtype=bool)
    for q, pos in enumerate(positives):
        if pos:
            mask[q] = np.isin(indices[q], np.asarray(pos, dtype=indices.dtype))
    return mask


def mask(values: Values, config: Any) -> Optional["np.ndarray"]:
    return (values["indices"] >= 0) & positive_mask(values["indices"], values["positives"])


RULE = Rule("positive", CANDIDATES, "a known positive of the query (its qrels)",
            "the corpus holds little besides the positives: add documents", mask)
