"""Stage two of the engine: closed ticks → the shared exposure ledger → the detectors.

:class:`Analysis` holds every piece of *statistical* state — the ledger and the detectors —
and nothing of ingest (no raw events beyond the tick it is given, no dedup keys, no
watermark).  The one-process :class:`monitor.engine.run.Engine` feeds it the ticks its
:class:`monitor.engine.ingest.Ingest` closes; the scaled-out pipeline feeds it ticks merged from
many ingest units (:mod:`monitor.engine.merge`).  The same code, several drivers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

from detectors import Detector, ExposureLedger, Tick, build
from monitor.core.config import Config
from monitor.core.records import DeadLetter, Detectability, Finding, Measurement
from monitor.engine.ingest import ClosedTick

__all__ = ["Analysis", "Output"]


class Output(Protocol):
    """Where results go (DuckDB store, Kafka topics, memory)."""

    def findings(self, rows: list[Finding]) -> None: ...
    def measurements(self, rows: list[Measurement]) -> None: ...
    def deadletters(self, rows: list[DeadLetter]) -> None: ...
    def detectability(self, rows: list[Detectability]) -> None: ...


class Analysis:
    """The ledger and the detectors of one logical stream, driven tick by tick.

    ``on_tick(tick, analysis)`` is called after each tick's detectors ran (research history,
    metrics).  Ticks must come in increasing order.
    """

    def __init__(
        self,
        config: Config,
        output: Output,
        *,
        detectors: list[str] | None = None,
        on_tick: Callable[[Tick, Analysis], None] | None = None,
    ) -> None:
        self.config = config
        self.output = output
        self.tick_ms = config.detection.tick_ms
        self.on_tick = on_tick
        self.ledger = ExposureLedger(config)
        self.detectors: list[Detector] = build(config, self.ledger, detectors)
        self.ticks = 0
        self.first_ts: int | None = None
        self.last_ts: int | None = None
        self._last_index: int | None = None
        self._aliases = config.aliases  # declared alias → registered actor (contract §5)

    def run(self, closed: ClosedTick) -> list[Finding]:
        """One tick: the ledger, then every detector observes and evaluates it."""
        idx = closed.index
        if self._last_index is not None and idx <= self._last_index:
            raise ValueError(f"tick {idx} after tick {self._last_index}: ticks must increase")
        self._last_index = idx
        if self._aliases:
            _resolve_aliases(closed, self._aliases)
        tick = Tick(
            idx * self.tick_ms,
            (idx + 1) * self.tick_ms,
            closed.exposures,
            closed.rankings,
            closed.panel,
        )
        self.ledger.observe(closed.exposures)
        findings: list[Finding] = []
        for det in self.detectors:
            det.observe(tick)
            findings.extend(det.evaluate(tick))
        if findings:
            self.output.findings(findings)
        self.ticks += 1
        self.first_ts = tick.start_ms if self.first_ts is None else self.first_ts
        self.last_ts = tick.end_ms
        if self.on_tick is not None:
            self.on_tick(tick, self)
        return findings

    def flush_measurements(self) -> None:
        rows = [m for det in self.detectors for m in det.measurements()]
        if rows:
            self.output.measurements(rows)

    def finish(self, ingest: Mapping[str, Mapping[str, int]] | None = None) -> None:
        """End of the stream: detectors' final updates, measurements, detectability.

        ``ingest``: the stream's ingest counters per topic, for the detectors that report
        on the logs (:meth:`detectors.base.Detector.note_ingest`)."""
        if ingest is not None:
            for det in self.detectors:
                det.note_ingest(ingest)
        end = self.last_ts or 0
        findings = [f for det in self.detectors for f in det.finish(end)]
        if findings:
            self.output.findings(findings)
        self.flush_measurements()
        rows = [r for det in self.detectors for r in det.detectability()]
        if rows:
            self.output.detectability(rows)


def _resolve_aliases(tick: ClosedTick, aliases: Mapping[str, str]) -> None:
    """Exposures and ranking items logged under a declared alias count for its actor
    (contract v1.1 §5); the platform's own spelling stays in the dead-letter and archive
    records, not in the statistics."""
    for e in tick.exposures:
        actor = aliases.get(e.actor)
        if actor is not None:
            e.actor = actor
    for e in tick.panel:
        actor = aliases.get(e.actor)
        if actor is not None:
            e.actor = actor
    for r in tick.rankings:
        for it in r.items:
            actor = aliases.get(it.actor)
            if actor is not None:
                it.actor = actor
