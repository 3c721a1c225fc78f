"""``duplicate_text``: a candidate whose text is a positive's (up to case, punctuation and spacing) is the positive
again; ``duplicate_candidate``: a query's negatives never repeat a text, nor that of a candidate skipped as too
good (``--range-min``)."""

from __future__ import annotations

import re
import unicodedata
from typing import TYPE_CHECKING, Any, Hashable, Mapping, Optional, Sequence

from negmine.rules.base import CANDIDATES, Rule, Values
from negmine.rules.known import positive_mask

if TYPE_CHECKING:
    import numpy as np

_PUNCT = re.compile(r"[\W_]+", re.UNICODE)


def normalize_text(text: str) -> str:
    """Text compared for duplicates: Unicode NFKC, lower case, punctuation and runs of spaces folded to one space."""
    return _PUNCT.sub(" ", unicodedata.normalize("NFKC", text).lower()).strip()


def duplicate_text_mask(
    indices: "np.ndarray", positives: Sequence[Sequence[int]], normalized: Mapping[int, Hashable]
) -> "np.ndarray":
    """True where a candidate's normalised text equals the normalised text of one of its query's positives."""
    import numpy as np

    mask = np.zeros(indices.shape, dtype=bool)
    for q, pos in enumerate(positives):
        texts = {normalized[p] for p in pos}
        for r, d in enumerate(indices[q]):
            if d >= 0 and normalized[d] in texts:
                mask[q, r] = True
    return mask


def repeated_text_mask(indices: "np.ndarray", eligible: "np.ndarray", normalized: Mapping[int, Hashable]
                       ) -> "np.ndarray":
    """True where an ``eligible`` candidate's normalised text equals that of a better-ranked eligible candidate of
    the same query."""
    import numpy as np

    mask = np.zeros(indices.shape, dtype=bool)
    for q in range(indices.shape[0]):
        seen: set[Hashable] = set()
        for r in np.flatnonzero(eligible[q]):
            text = normalized[int(indices[q, r])]
            if text in seen:
                mask[q, r] = True
            seen.add(text)
    return mask


def _text(values: Values, config: Any) -> Optional["np.ndarray"]:
    if values.get("normalized") is None:
        return None
    return duplicate_text_mask(values["indices"], values["positives"], values["normalized"])


def _candidate(values: Values, config: Any) -> Optional["np.ndarray"]:
    if values.get("normalized") is None:
        return None
    indices = values["indices"]
    eligible = (indices >= 0) & ~positive_mask(indices, values["positives"])  # the window's skipped ones too
    return repeated_text_mask(indices, eligible, values["normalized"])


TEXT = Rule("duplicate_text", CANDIDATES, "the same normalised text as a positive of the query",
            "nothing: those candidates copy a positive", _text, reads=("normalized",), false_negative=True)
CANDIDATE = Rule("duplicate_candidate", CANDIDATES, "the same normalised text as a better-ranked candidate of the "
                 "query", "nothing: those candidates copy each other", _candidate, reads=("normalized",))
