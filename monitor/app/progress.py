"""Progress of long commands (replay, audit, research): a bar on a terminal, a log line
otherwise.

On a terminal, a rich progress bar with the total and an estimated time left.  Elsewhere (a
log file, CI, ``nohup``) one line on stderr every ``every`` seconds, e.g.::

    amplimon: replay: decoding 42% of 2.1 GB · 0:00:12 elapsed · about 0:00:17 left
    amplimon: replay: detecting 1,200,000 of 3,400,000 events (35%) · 95,000 events/s
        · 0:00:12 elapsed · about 0:00:23 left   (one line)

so a long self-audit shows that it is alive and when it will end.  ``Progress`` is the
protocol the commands use; :func:`progress_for` picks the implementation.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import IO, Any, Protocol

__all__ = ["LogProgress", "NoProgress", "Progress", "RichProgress", "progress_for"]


class Progress(Protocol):
    """One phase at a time: ``phase`` starts it, ``update`` sets the amount done."""

    def phase(self, name: str, total: float | None, unit: str) -> None: ...
    def update(self, done: float) -> None: ...
    def close(self) -> None: ...


def _clock(seconds: float) -> str:
    s = int(max(seconds, 0))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _amount(value: float, unit: str) -> str:
    if unit == "bytes":
        for size, name in ((1 << 30, "GB"), (1 << 20, "MB"), (1 << 10, "kB")):
            if value >= size:
                return f"{value / size:.1f} {name}"
        return f"{value:.0f} B"
    return f"{value:,.0f}"


class NoProgress:
    """Says nothing."""

    def phase(self, name: str, total: float | None, unit: str) -> None:
        return None

    def update(self, done: float) -> None:
        return None

    def close(self) -> None:
        return None


class LogProgress:
    """A line on ``stream`` at most every ``every`` seconds (and one when a phase ends)."""

    def __init__(
        self,
        command: str,
        *,
        every: float = 5.0,
        stream: IO[str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.command = command
        self.every = every
        self.stream = stream if stream is not None else sys.stderr
        self._clock = clock
        self._name: str | None = None
        self._total: float | None = None
        self._unit = ""
        self._start = 0.0
        self._last = 0.0
        self._done = 0.0

    def phase(self, name: str, total: float | None, unit: str) -> None:
        self._end_phase()
        self._name, self._total, self._unit = name, total, unit
        self._start = self._last = self._clock()
        self._done = 0.0

    def update(self, done: float) -> None:
        self._done = done
        now = self._clock()
        if now - self._last >= self.every:
            self._last = now
            self._emit(now)

    def close(self) -> None:
        self._end_phase()

    def _end_phase(self) -> None:
        if self._name is not None and self._clock() - self._start >= self.every:
            self._emit(self._clock(), final=True)
        self._name = None

    def _emit(self, now: float, *, final: bool = False) -> None:
        elapsed = now - self._start
        done, total, unit = self._done, self._total, self._unit
        parts = [f"amplimon: {self.command}: {self._name}"]
        if unit == "bytes" and total:
            parts[0] += f" {min(done / total, 1):.0%} of {_amount(total, unit)}"
        elif total:
            parts[0] += (
                f" {_amount(done, unit)} of {_amount(total, unit)} {unit} "
                f"({min(done / total, 1):.0%})"
            )
        else:
            parts[0] += f" {_amount(done, unit)} {unit}"
        if unit != "bytes" and elapsed > 0:
            parts.append(f"{done / elapsed:,.0f} {unit}/s")
        parts.append(f"{_clock(elapsed)} elapsed")
        if not final and total and done > 0:
            parts.append(f"about {_clock(elapsed * (total - done) / done)} left")
        print(" · ".join(parts), file=self.stream, flush=True)


class RichProgress:
    """A rich progress bar with the total and the time left (terminals)."""

    def __init__(self, command: str) -> None:
        from rich import progress as rp

        self._bar = rp.Progress(
            rp.TextColumn(f"[bold]{command}" + " {task.description}"),
            rp.BarColumn(),
            rp.TaskProgressColumn(),
            rp.MofNCompleteColumn(),
            rp.TimeElapsedColumn(),
            rp.TimeRemainingColumn(),
            transient=True,
        )
        self._task: Any = None
        self._bar.start()

    def phase(self, name: str, total: float | None, unit: str) -> None:
        if self._task is not None:
            self._bar.remove_task(self._task)
        self._task = self._bar.add_task(name, total=total)

    def update(self, done: float) -> None:
        if self._task is not None:
            self._bar.update(self._task, completed=done)

    def close(self) -> None:
        self._bar.stop()


def progress_for(command: str, show: bool | None) -> Progress:
    """``show`` True: a bar on a terminal, else log lines; None: the same (the default);
    False: nothing."""
    if show is False:
        return NoProgress()
    if sys.stderr.isatty():
        return RichProgress(command)
    return LogProgress(command)
