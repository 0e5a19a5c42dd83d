"""Progress of long work: a bar on a terminal, and lines with rate and ETA in the log otherwise.

Snakemake sends a job's output to its log file, Slurm to its ``slurm-*.out``, ``tee`` to a pipe: none of them
is a terminal, so tqdm's bar (``disable=None``) stays silent there and minutes of work looked like a hang.
``Progress`` keeps the bar where stderr is a terminal and writes a ``logging`` line at most every
``interval`` seconds everywhere else (and a last line when the work ends), each with the count done, the
rate and the time left:
``Ward agglomeration of 8192 vectors: 4100/8191 merge (50%), 1.6e+03 merge/s, ETA 3 s``.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")

LOG_INTERVAL = 30.0
"""Seconds between two lines in a log (the first comes after one interval: short work stays quiet)."""

log = logging.getLogger("alps.progress")


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def _on_terminal() -> bool:
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


class Progress:
    """Counts units of work; shows a bar on a terminal, else logs the count, rate and ETA now and then.

    Use as a context manager (``with Progress(total, "tiles", "tile") as bar: ... bar.update()``) or wrap an
    iterable with ``track``.

    Arguments:
        total: units of work expected (None: unknown, no percentage or ETA).
        desc: what is counted, first word of every line.
        unit: the unit's name, for the rate.
        interval: seconds between log lines.
        logger: where the lines go (default ``alps.progress``).
        terminal: show a bar instead of log lines (default: whether stderr is a terminal).
    """

    def __init__(
        self,
        total: int | None,
        desc: str,
        unit: str = "it",
        *,
        interval: float = LOG_INTERVAL,
        logger: logging.Logger | None = None,
        terminal: bool | None = None,
    ) -> None:
        self.total = total
        self.desc = desc
        self.unit = unit
        self.interval = interval
        self.done = 0
        self._log = logger or log
        self._start = time.monotonic()
        self._last = self._start
        self._logged = False
        self._bar = None
        if _on_terminal() if terminal is None else terminal:
            self._bar = tqdm(total=total, desc=desc, unit=unit, mininterval=2.0)

    def line(self) -> str:
        """The current state as one line: count, share, rate, time left (or elapsed once done)."""
        elapsed = time.monotonic() - self._start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        count = f"{self.done}/{self.total}" if self.total is not None else str(self.done)
        parts = [f"{self.desc}: {count} {self.unit}"]
        if self.total:
            parts[0] += f" ({100 * self.done / self.total:.0f}%)"
        slow = 0 < rate < 1
        parts.append(f"{1 / rate:.3g} s/{self.unit}" if slow else f"{rate:.3g} {self.unit}/s")
        if self.total is not None and self.done >= self.total:
            parts.append(f"took {_duration(elapsed)}")
        elif self.total is not None and rate > 0:
            parts.append(f"ETA {_duration((self.total - self.done) / rate)}")
        else:
            parts.append(f"elapsed {_duration(elapsed)}")
        return ", ".join(parts)

    def update(self, n: int = 1) -> None:
        """Count ``n`` more units done."""
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
            return
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            self._logged = True
            self._log.info("%s", self.line())

    def close(self) -> None:
        """End the count: close the bar, or log the last line where earlier lines were logged."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self._logged:
            self._log.info("%s", self.line())
            self._logged = False

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()


def track(
    items: Iterable[T],
    desc: str,
    unit: str = "it",
    *,
    total: int | None = None,
    interval: float = LOG_INTERVAL,
    logger: logging.Logger | None = None,
) -> Iterator[T]:
    """Iterate ``items``, counting each one (``Progress``); ``total`` defaults to ``len(items)``."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with Progress(total, desc, unit, interval=interval, logger=logger) as progress:
        for item in items:
            yield item
            progress.update()
