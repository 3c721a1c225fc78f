"""How the library reports progress without printing: it calls a ``Progress``; the CLI passes a Rich one on a
terminal and a ``LineProgress`` elsewhere (CI logs, ``2> log``)."""

from __future__ import annotations

import logging
import sys
import threading
import time
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


def duration(seconds: float) -> str:
    """``37 s``, ``4 min 05 s``, ``2 h 03 min``."""
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


class LineProgress(Progress):
    """Plain progress lines, for logs: while a stage runs, one line at most every ``interval`` seconds (stage,
    done/total, rate, time left), and a closing line for each stage that printed one. Quick stages print nothing.

    Args:
        write: Where a line goes (default: standard error).
        interval: Seconds between two lines of a stage.
        prefix: Put before every line.
    """

    def __init__(self, write: Optional[Callable[[str], None]] = None, interval: float = 10.0,
                 prefix: str = "negmine: ") -> None:
        self.write = write or (lambda line: print(line, file=sys.stderr, flush=True))
        self.interval = interval
        self.prefix = prefix

    def _line(self, description: str, done: int, total: Optional[int], elapsed: float, final: bool) -> str:
        head = f"{self.prefix}{description}: "
        if final:
            count = f"{done:,}" + (f"/{total:,}" if total else "") + " " if done else ""
            return f"{head}done, {count}in {duration(elapsed)}"
        if not total:
            return f"{head}{done:,} so far, {duration(elapsed)}" if done else f"{head}running for {duration(elapsed)}"
        rate = done / elapsed if elapsed > 0 else 0.0
        left = f", about {duration((total - done) / rate)} left" if rate > 0 and done < total else ""
        return f"{head}{done:,}/{total:,} ({100 * done / total:.0f}%), {rate:,.1f}/s{left}"

    @contextmanager
    def stage(self, description: str, total: Optional[int] = None) -> Iterator[Advance]:
        start = time.monotonic()
        done = [0]
        printed = [False]
        stop = threading.Event()

        def advance(n: int = 1) -> None:
            done[0] += n

        def tick() -> None:
            while not stop.wait(self.interval):
                self.write(self._line(description, done[0], total, time.monotonic() - start, False))
                printed[0] = True

        thread = threading.Thread(target=tick, name=f"negmine progress: {description}", daemon=True)
        thread.start()
        try:
            yield advance
        finally:
            stop.set()
            thread.join()
        if printed[0]:
            self.write(self._line(description, done[0], total, time.monotonic() - start, True))
