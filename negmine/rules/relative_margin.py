"""``relative_margin``: a candidate the judge scores above positive - |positive| x ``--relative-margin`` (sign-safe:
right for logits too) is too close to the positive. ``auto``: 0.05 with a judge other than the retrieval bi-encoder
(NV-Retriever's TopK-PercPos at 95%), none when the retrieval bi-encoder judges its own candidates: then it is a
per-query rank cut-off that knows nothing a deeper window would not (docs/mining.md)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Optional

from negmine.errors import ConfigError
from negmine.rules.base import SCORE, Option, Rule, Values, flag

if TYPE_CHECKING:
    import numpy as np

#: ``auto`` with a judge other than the retrieval bi-encoder (a cross-encoder, or another bi-encoder).
AUTO_MARGIN_OTHER_JUDGE = 0.05


def resolve(value: Any, judge_kind: Optional[str], reranker: Any) -> Optional[float]:
    """The margin in force when ``judge_kind`` (``self``, ``bi-encoder``, ``cross-encoder``) scores: ``auto`` is
    AUTO_MARGIN_OTHER_JUDGE for a judge other than the retrieval bi-encoder, none for ``self`` (``judge_kind``
    ``None``: decided by whether a ``reranker`` is given)."""
    if value == "auto":
        other = judge_kind not in (None, "self") or (judge_kind is None and bool(reranker))
        return AUTO_MARGIN_OTHER_JUDGE if other else None
    return None if value is None else float(value)


def _check(value: Any) -> None:
    if isinstance(value, str) and value != "auto":
        raise ConfigError(f"{flag('relative_margin')} takes a number, auto or none; got {value!r}")
    if isinstance(value, float) and math.isnan(value):
        raise ConfigError(f"{flag('relative_margin')} must be a number or none, got nan")
    if value not in (None, "auto") and float(value) < 0:
        raise ConfigError(f"{flag('relative_margin')} must be >= 0 (or none), got {float(value)}")


def mask(values: Values, config: Any) -> Optional["np.ndarray"]:
    """``config.relative_margin`` resolved (a number or ``None``: the run resolves ``auto`` by its judge)."""
    margin = config.relative_margin
    if margin is None or margin == "auto":
        return None
    import numpy as np

    reference = values["reference"]
    return values["score"] > reference - np.abs(reference) * margin


RULE = Rule(
    "relative_margin", SCORE, "a judge's score above positive - \\|positive\\| x `--relative-margin` (auto: 0.05 with "
    "a `--reranker`, none when the retrieval bi-encoder judges itself)", "lower --relative-margin (or none)", mask,
    options=(Option("relative_margin", "auto", "margin", "Drop candidates scoring above positive - |positive| x R "
                    "(sign-safe); a number, none, or auto: 0.05 with --reranker, none when the retrieval bi-encoder "
                    "judges itself.", check_value=_check),),
    reads=("score", "reference"), columns=("reranker_score",), false_negative=True, judge=True,
    on=lambda config: resolve(config.relative_margin, None, config.reranker) is not None)
