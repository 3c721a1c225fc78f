"""``percentile_gate``: the margin rule in percentiles of the run's own positive scores, whatever the judge's scale.
With F the share of the run's positives scoring at most a given score, drop a candidate when F(score) >
clip(F(reference) - margin, floor, cap); without a margin, when F(score) > cap."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional, Union

from negmine.errors import ConfigError
from negmine.rules.base import SCORE, Option, Rule, Values, flag

if TYPE_CHECKING:
    import numpy as np

SHARE = "a share of the run's positives"


def percentile_gate_mask(scores: "np.ndarray", reference: Union[float, "np.ndarray"], calibration: "np.ndarray",
                         margin: Optional[float], floor: float = 0.0, cap: float = 1.0) -> "np.ndarray":
    """The cap keeps a strong positive from opening the gate (nothing scoring above the cap-quantile of all positives
    passes); the floor keeps a weak positive from starving its query (anything below the floor-quantile passes this
    rule). Only the order of the scores matters: the same for cosines, logits or probabilities.

    Args:
        scores: Judge scores of candidates.
        reference: The positive score (per candidate, or one for all).
        calibration: The judge scores of every positive of the run, sorted.
        margin: Percentile points below the positive's own percentile (0.1 = ten points), or ``None``.
        floor: Lowest percentile threshold (0..1).
        cap: Highest percentile threshold (0..1).
    """
    import numpy as np

    n = max(len(calibration), 1)
    u = np.searchsorted(calibration, scores, side="right") / n
    if margin is None:
        return u > cap
    u_ref = np.searchsorted(calibration, reference, side="right") / n
    return u > np.clip(u_ref - margin, floor, cap)


def enabled(config: Any) -> bool:
    return config.percentile_margin is not None or config.percentile_cap < 1.0


def mask(values: Values, config: Any) -> Optional["np.ndarray"]:
    if not enabled(config) or values.get("calibration") is None:
        return None
    return percentile_gate_mask(values["score"], values["reference"], values["calibration"], config.percentile_margin,
                                config.percentile_floor, config.percentile_cap)


def _check(config: Any) -> None:
    if config.percentile_floor > config.percentile_cap:
        raise ConfigError(f"{flag('percentile_floor')} ({config.percentile_floor}) is above "
                          f"{flag('percentile_cap')} ({config.percentile_cap})")


RULE = Rule(
    "percentile_gate", SCORE, "a judge's score above the positive's percentile of the run's positive scores minus "
    "`--percentile-margin` (between `--percentile-floor` and `--percentile-cap`)",
    "raise --percentile-margin or --percentile-cap", mask,
    options=(
        Option("percentile_margin", None, "optional number", "Margin in percentiles of the run's own positive scores "
               "(0.1: drop candidates above the positive's percentile minus 10 points); a number or none.", 0, 1,
               SHARE, none_said=False),
        Option("percentile_floor", 0.0, "number", "The percentile margin never drops candidates below this "
               "percentile of all positives' scores (0..1).", 0, 1, SHARE),
        Option("percentile_cap", 1.0, "number", "Drop candidates scoring above this percentile of all positives' "
               "scores, whatever their own positive scored (0..1; 1: off).", 0, 1, SHARE),
    ),
    reads=("score", "reference", "calibration"), columns=("reranker_score",), false_negative=True, judge=True,
    on=enabled, check_config=_check)
