"""What a rule is: its status name, the stage it runs in, its options, what it reads, and its mask."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional

from negmine.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np

#: The stages a rule runs in, in order: over every retrieved candidate with nothing but the inputs
#: (``CANDIDATES``), over the evidence gathered from the indexes and the inputs (``EVIDENCE``), over the candidates
#: lazy scoring reaches, with their scores and cosines (``SCORE``).
CANDIDATES, EVIDENCE, SCORE = "candidates", "evidence", "score"

#: What a rule's mask reads: the batch's values by name (``indices``, ``positives``, ``kept``, an evidence or a score
#: value) and the run's settings.
Values = Mapping[str, Any]
Mask = Callable[[Values, Any], "Optional[np.ndarray]"]


def flag(field: str) -> str:
    """The CLI flag of a config field: ``range_max`` -> ``--range-max``."""
    return "--" + field.replace("_", "-")


@dataclass(frozen=True)
class Option:
    """A setting a rule owns: its ``MineConfig`` field, default, kind and help.

    Kinds: ``optional number`` (a number, or ``None`` for off), ``bool``, ``number``; ``low`` and ``high`` bound a
    number, ``what`` says what it is in messages (``a cosine``).
    """

    name: str
    default: Any
    kind: str
    help: str
    low: float = -math.inf
    high: float = math.inf
    what: str = "a number"
    none_said: bool = True  # messages say "(or none)" for an optional number
    check_value: Optional[Callable[[Any], None]] = None  # a check of its own, instead of the bounds

    def check(self, value: Any) -> None:
        """Raise a ConfigError naming the flag unless ``value`` is one this option takes."""
        if self.check_value is not None:
            self.check_value(value)
            return
        if self.kind == "bool" or value is None:
            return
        if isinstance(value, float) and math.isnan(value):
            raise ConfigError(f"{flag(self.name)} must be a number or none, got nan")
        if not self.low <= value <= self.high:
            bounds = f">= {self.low:g}" if self.high == math.inf else f"between {self.low:g} and {self.high:g}"
            off = " (or none)" if self.kind == "optional number" and self.none_said else ""
            raise ConfigError(f"{flag(self.name)} is {self.what}: {bounds}{off}, got {value}")


@dataclass(frozen=True)
class Rule:
    """A rule that drops candidates.

    Attributes:
        name: Its status name (in the statistics, the candidates file and the false-negatives file).
        stage: ``CANDIDATES``, ``EVIDENCE`` or ``SCORE``.
        summary: What it drops and why: its row in the docs.
        knob: What to change when it drops too much (the summary's "why short").
        mask: ``mask(values, config)``: where it drops (a boolean array like the cells), ``None`` when it is off.
        options: The settings it owns.
        reads: The values its mask reads (beyond the candidates themselves).
        columns: The candidates file's columns it reads in a run of a stored candidates file (``negmine refilter``).
        false_negative: Whether what it drops is a likely false negative (an unlabelled positive): counted in the
            false-negatives file, promoted by ``--promote-false-negatives``.
        judge: Whether it reads the judge's scores (so that, when it is on, the judge scores candidates).
        bi_encoder: Whether it reads the retrieval bi-encoder's cosines (off with ``--model none``).
        bm25: Whether it reads BM25 scores (a BM25 index is built for it).
        on: When it runs, if not simply when its first option is set.
        gather: ``gather(context)``: the evidence values it reads, for a batch (``negmine.rules.evidence``).
        check_config: Checks across its options (their own checks are the options').
    """

    name: str
    stage: str
    summary: str
    knob: str
    mask: Mask
    options: tuple[Option, ...] = ()
    reads: tuple[str, ...] = ()
    columns: tuple[str, ...] = ()
    false_negative: bool = False
    judge: bool = False
    bi_encoder: bool = False
    bm25: bool = False
    on: Optional[Callable[[Any], bool]] = None
    gather: Optional[Callable[[Any], dict[str, Any]]] = None  # the evidence it reads, gathered for a batch
    check_config: Optional[Callable[[Any], None]] = None  # a check across its options

    def enabled(self, config: Any) -> bool:
        """Whether the rule runs with these settings (default: when its first option is set)."""
        if self.on is not None:
            return self.on(config)
        if not self.options:
            return True
        value = getattr(config, self.options[0].name)
        return value is not None and value is not False


def above(value: str, option: str, inclusive: bool = False) -> Mask:
    """The mask of a rule that drops a candidate whose ``value`` (gathered or scored for the batch) is above the
    setting ``option`` (or equal to it, ``inclusive``); off when the setting is none or the value was not gathered."""

    def mask(values: Values, config: Any) -> Optional["np.ndarray"]:
        found, threshold = values.get(value), getattr(config, option)
        if found is None or threshold is None:
            return None
        return found >= threshold if inclusive else found > threshold

    return mask


def reference_of(scores: "np.ndarray", how: str) -> float:
    """The positive score margins are taken from, among a query's positives: the lowest (``min``), ``mean`` or
    highest (``max``)."""
    import numpy as np

    if how == "min":
        return float(np.min(scores))
    if how == "max":
        return float(np.max(scores))
    return float(np.mean(scores))
