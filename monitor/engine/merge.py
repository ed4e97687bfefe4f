"""Stage two: partials from every unit → complete ticks, in order → one analysis per platform.

A tick is *complete* when every unit has closed it: ``index < min over units of
closed_until`` (:class:`monitor.engine.partials.UnitProgress`).  Complete ticks are merged —
today by concatenating the units' events and putting them in canonical order, so the merged
tick is exactly the tick one engine reading the whole stream would have closed — and run
through the platform's :class:`monitor.engine.analysis.Analysis`, in increasing order.

The protocol tolerates what a distributed stage one does (tested in
``tests/monitor/engine/test_merge.py``):

* **Redelivery**: a partial is stored under (platform, tick, unit): a copy received again
  (a stage-one worker restarted and sent it twice) replaces the first, never adds to it; a
  copy arriving after its tick was merged is recognised (the merged tick remembers which
  units contributed) and ignored.
* **Any interleaving** of units' messages: nothing runs before every unit has been heard
  from, and then only ticks every unit has closed.
* **Idle units** (``idle=True``) stop holding ticks back; a partial one of them sends later
  for a tick that was already merged is *late*: its events go to ``late`` (dead letters),
  as a late record does in one engine.
* **Platforms are independent**: each has its own analysis (its own false-alarm budget,
  contract: per platform and window), so stage two can be partitioned by platform.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from operator import attrgetter

from monitor.engine.analysis import Analysis
from monitor.engine.ingest import ClosedTick
from monitor.engine.partials import Message, TickPartial, UnitCounts, UnitProgress

__all__ = ["Merger"]

_ORDER = attrgetter("ts", "platform", "event_id")
_ALL_DONE = 2**62


@dataclass
class Merger:
    """Stage two of the scaled-out engine (module docstring).

    ``analysis_for(platform)`` builds a platform's analysis on first use; ``late(partial)``
    receives partials that arrived after their tick was merged.
    """

    analysis_for: Callable[[str], Analysis]
    late: Callable[[TickPartial], None] = lambda _p: None
    units: int | None = None
    progress: dict[int, UnitProgress] = field(default_factory=dict)
    pending: dict[str, dict[int, dict[int, TickPartial]]] = field(default_factory=dict)
    analyses: dict[str, Analysis] = field(default_factory=dict)
    merged_until: int = -(2**62)  # every tick before this has run (all platforms)
    # units that contributed to each merged (platform, tick): a redelivered partial of a
    # merged tick is recognised, not mistaken for a late one
    merged_units: dict[tuple[str, int], frozenset[int]] = field(default_factory=dict)
    closed: bool = False

    def add(self, message: Message) -> int:
        """Take one message; run the ticks it completes.  Returns how many ran."""
        if isinstance(message, TickPartial):
            if message.index < self.merged_until:
                done = self.merged_units.get((message.platform, message.index), frozenset())
                if message.unit not in done:
                    self.late(message)
                return 0
            by_tick = self.pending.setdefault(message.platform, {})
            by_tick.setdefault(message.index, {})[message.unit] = message
        else:
            self._progress(message)
        return self.run_complete()

    def _progress(self, p: UnitProgress) -> None:
        if self.units is None:
            self.units = p.units
        elif p.units != self.units:
            raise ValueError(f"unit {p.unit} reports {p.units} units, expected {self.units}")
        old = self.progress.get(p.unit)
        if old is not None:
            # progress only moves forward (a restarted unit may repeat older news)
            p = UnitProgress(
                unit=p.unit,
                units=p.units,
                closed_until=max(old.closed_until, p.closed_until),
                finished=old.finished or p.finished,
                idle=p.idle and not (old.finished or p.finished),
                counts=p.counts or old.counts,
            )
        self.progress[p.unit] = p

    def frontier(self) -> int | None:
        """Ticks before this are closed in every unit (None: not every unit heard yet)."""
        if self.units is None or len(self.progress) < self.units:
            return None
        waiting = [p.closed_until for p in self.progress.values() if not (p.finished or p.idle)]
        if not waiting:
            if all(p.finished for p in self.progress.values()):
                return _ALL_DONE
            return None  # everything idle: wait for data (or the end) rather than guess
        return min(waiting)

    def run_complete(self) -> int:
        f = self.frontier()
        if f is None or f <= self.merged_until:
            return 0
        ran = 0
        for platform in sorted(self.pending):
            by_tick = self.pending[platform]
            for idx in sorted(i for i in by_tick if i < f):
                self._run(platform, idx, by_tick.pop(idx))
                ran += 1
        if f < _ALL_DONE:
            self.merged_until = f
        return ran

    def _run(self, platform: str, idx: int, parts: dict[int, TickPartial]) -> None:
        self.merged_units[(platform, idx)] = frozenset(parts)
        exposures = [e for u in sorted(parts) for e in parts[u].exposures]
        rankings = [r for u in sorted(parts) for r in parts[u].rankings]
        panel = [e for u in sorted(parts) for e in parts[u].panel]
        for events in (exposures, rankings, panel):
            events.sort(key=_ORDER)
        tick = ClosedTick(idx, exposures, rankings, panel)
        analysis = self.analyses.get(platform)
        if analysis is None:
            analysis = self.analyses[platform] = self.analysis_for(platform)
        analysis.run(tick)

    @property
    def finished(self) -> bool:
        return (
            self.units is not None
            and len(self.progress) == self.units
            and all(p.finished for p in self.progress.values())
        )

    def close(self) -> None:
        """Every unit has finished: run what is left, then finish every analysis."""
        if self.closed:
            return
        self.run_complete()
        c = self.counts()
        ingest = {
            "accepted": c.accepted,
            "duplicates": c.duplicates,
            "late": c.late,
            "rejected": c.rejected,
            "conflicting": c.conflicting,
        }
        for platform in sorted(self.analyses):
            self.analyses[platform].finish(ingest)
        self.closed = True

    def counts(self) -> UnitCounts:
        """The units' ingest counters, summed."""
        total = UnitCounts()
        for p in self.progress.values():
            c = p.counts
            if c is None:
                continue
            for name in ("accepted", "duplicates", "late", "rejected", "conflicting"):
                mine, theirs = getattr(total, name), getattr(c, name)
                for k, v in theirs.items():
                    mine[k] = mine.get(k, 0) + v
            total.held += c.held
            total.uncorroborated += c.uncorroborated
        return total
