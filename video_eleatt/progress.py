"""Progress output that follows the terminal.

On a terminal it is a live tqdm bar. When the stream is a file or a pipe (a cluster job's log,
CI) a live bar would write thousands of carriage-return updates, so instead one plain line is
written every ``interval_s`` seconds or every ``every`` items, whichever comes first, plus a
last line when the work ends:

    extract ucf101: 120/13320 videos (0.9 %), 4.1 videos/s, 53 min left

Both have the same small interface (``update``, ``set_postfix_str``, ``close``, a context
manager), so callers never ask which one they hold.
"""

from __future__ import annotations

import sys
import time
from typing import IO, Any

__all__ = ["LineProgress", "is_terminal", "progress_bar"]


def is_terminal(stream: IO[str]) -> bool:
    """Whether ``stream`` is an interactive terminal (False for files, pipes, closed streams)."""
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed or replaced streams
        return False


def progress_bar(
    total: int | None,
    desc: str,
    unit: str = "item",
    enabled: bool = True,
    stream: IO[str] | None = None,
    interval_s: float = 10.0,
    every: int | None = None,
) -> Any:
    """A tqdm bar on a terminal, a :class:`LineProgress` elsewhere, a silent one if disabled.

    Args:
        total: the number of items, or None when unknown.
        desc: what is being done ("extract ucf101").
        unit: the item's name, singular ("video").
        enabled: False gives a bar that writes nothing (the same interface).
        stream: where to write; standard error by default.
        interval_s: the longest gap between two lines in a log file.
        every: also write a line every this many items (default: every 10 % of ``total``).
    """
    stream = stream if stream is not None else sys.stderr
    if enabled and is_terminal(stream):
        from tqdm import tqdm  # tqdm imports only when a terminal needs it

        return tqdm(total=total, desc=desc, unit=unit, file=stream, leave=True)
    return LineProgress(total, desc, unit, stream, interval_s, every, enabled=enabled)


class LineProgress:
    """Plain progress lines for log files: every ``interval_s`` seconds or ``every`` items."""

    def __init__(
        self,
        total: int | None,
        desc: str,
        unit: str = "item",
        stream: IO[str] | None = None,
        interval_s: float = 10.0,
        every: int | None = None,
        enabled: bool = True,
        clock: Any = time.monotonic,
    ) -> None:
        self.total = total
        self.desc = desc
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        self.interval_s = interval_s
        if every is None:
            every = max(1, (total or 0) // 10) if total else 0
        self.every = every
        self.enabled = enabled
        self.n = 0
        self.postfix = ""
        self._clock = clock
        self._start = clock()
        self._last_time = self._start
        self._last_n = 0
        self._closed = False

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def set_postfix_str(self, text: str, refresh: bool = True) -> None:
        self.postfix = text

    def set_description(self, desc: str, refresh: bool = True) -> None:
        self.desc = desc

    def refresh(self) -> None:
        pass

    def update(self, count: int = 1) -> None:
        self.n += count
        now = self._clock()
        due_by_time = now - self._last_time >= self.interval_s
        due_by_count = self.every and self.n - self._last_n >= self.every
        if due_by_time or due_by_count:
            self._write(now)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.n != self._last_n or self.n == 0:
            self._write(self._clock())

    def line(self, now: float) -> str:
        """The progress line as it would be written at time ``now``."""
        elapsed = max(now - self._start, 1e-9)
        rate = self.n / elapsed
        units = self.unit if self.n == 1 else _plural(self.unit)
        if self.total:
            text = f"{self.desc}: {self.n}/{self.total} {units} ({100 * self.n / self.total:.1f} %)"
        else:
            text = f"{self.desc}: {self.n} {units}"
        text += f", {_rate(rate)} {_plural(self.unit)}/s" if self.n else ""
        if self.total and self.n and self.n < self.total:
            text += f", {_duration((self.total - self.n) / rate)} left"
        elif self.total and self.n >= self.total:
            text += f", done in {_duration(elapsed)}"
        return text + (f" [{self.postfix}]" if self.postfix else "")

    def _write(self, now: float) -> None:
        self._last_time = now
        self._last_n = self.n
        if not self.enabled:
            return
        try:
            print(self.line(now), file=self.stream, flush=True)
        except (OSError, ValueError):  # a closed log must not fail the work it reports on
            self.enabled = False


def _rate(rate: float) -> str:
    """3 significant digits without an exponent: 0.791, 12.7, 386, 38600."""
    return f"{rate:.3g}" if rate < 1000 else f"{rate:.0f}"


def _plural(unit: str) -> str:
    return unit + ("es" if unit.endswith(("s", "sh", "ch", "x")) else "s")


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
