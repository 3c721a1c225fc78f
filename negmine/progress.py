"""How the library reports progress without printing: it calls a ``Progress``; the CLI passes a Rich one."""

from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Callable, Iterator, Optional

logger = logging.getLogger("negmine")

Advance = Callable[[int], None]


class Progress:
    """Progress reporting that does nothing. Subclass it and override ``stage`` to show progress."""

    @contextmanager
    def stage(self, description: str, total: Optional[int] = None) -> Iterator[Advance]:
        """A unit of work of ``total`` steps; the caller calls the yielded function with each step's size."""
        yield _ignore


def _ignore(n: int = 1) -> None:
    return None
