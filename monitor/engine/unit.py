"""Stage one for one unit of a scaled-out stream: ingest, and partials instead of detectors.

:class:`UnitEngine` has the face of :class:`monitor.engine.run.Engine` that a driver uses
(``push``, ``reject``, ``advance_to``, ``close``, ``snapshot``/``restore``, the watermark
properties), so the Kafka driver (:class:`streams.kafka.driver.EngineDriver`) drives a unit
exactly as it drives a whole engine.  What the unit closes does not go to detectors: each
closed tick leaves as :class:`monitor.engine.partials.TickPartial` messages (one per platform), and
after every step a :class:`monitor.engine.partials.UnitProgress` says how far the unit has closed.
Stage two (:mod:`monitor.engine.merge`) merges the units.

**State** is the unit's ingest state (frontier, keys of the window, counters; the events of
open ticks are left out — the driver reads them again from Kafka), msgpack, sealed with an
HMAC under a key derived from the deployment's secret (:mod:`monitor.core.sealed`): a checkpoint
on a topic that a platform could write is data, and is refused unless it is exactly what a
unit of this deployment wrote, for this unit, under this configuration.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import msgspec

from monitor.core.config import Config
from monitor.core.contract import Event, Rejected
from monitor.core.privacy import Pseudonymiser
from monitor.core.records import DeadLetter, utc_now
from monitor.core.sealed import Sealer
from monitor.engine.analysis import Output
from monitor.engine.ingest import ClosedTick, Ingest, IngestState, StreamStats
from monitor.engine.partials import Message, UnitCounts, UnitProgress, split_by_platform
from monitor.engine.run import DAY_MS, key_retention_ms

__all__ = ["UnitEngine", "UnitState"]

_STATE_VERSION = 1


class UnitState(msgspec.Struct, kw_only=True):
    """A unit's checkpointed state (see the module docstring)."""

    version: int
    fingerprint: str
    unit: int
    ingest: IngestState
    counts: UnitCounts
    platforms: dict[str, int]
    out_of_order: int = 0


class UnitEngine:
    """Ingest of unit ``unit`` of ``units``; closed ticks become partials in :attr:`outbox`."""

    auto_watermark = False

    def __init__(
        self,
        config: Config,
        output: Output,
        *,
        unit: int,
        units: int,
        pseudonymiser: Pseudonymiser,
        max_future_ms: int = DAY_MS,
        now_ms: Callable[[], int] | None = None,
    ) -> None:
        self.config = config
        self.output = output  # dead letters only
        self.unit, self.units = unit, units
        self.pseudonymiser = pseudonymiser
        self.tick_ms = config.detection.tick_ms
        self.lateness_ms = config.detection.lateness_ms
        now = now_ms or (lambda: int(utc_now().timestamp() * 1000))
        self.stats = StreamStats()
        self.ingest_unit = Ingest(
            tick_ms=self.tick_ms,
            lateness_ms=self.lateness_ms,
            pseudonymiser=pseudonymiser,
            dead=self._dead,
            future_limit_ms=now() + max_future_ms,
            stats=self.stats,
            key_retention_ms=key_retention_ms(config),
        )
        self.outbox: list[Message] = []
        self.finished = False
        self._sealer = Sealer(pseudonymiser.derive_key("unit-state"))
        self._reported: tuple[int, bool, bool] | None = None

    # -- input ----------------------------------------------------------------------------
    def push(
        self,
        topic: str,
        event: Event,
        *,
        source: str,
        location: str = "",
        raw: bytes | str | None = None,
    ) -> None:
        self.ingest_unit.push(topic, event, source=source, location=location, raw=raw)

    def reject(self, rejected: Rejected, *, source: str, location: str = "") -> None:
        counts = self.stats.rejected
        counts[rejected.topic] = counts.get(rejected.topic, 0) + 1
        self._dead(rejected.topic, "rejected", rejected.raw, rejected.reason, source, location)

    def _dead(
        self, topic: str, counter: str, raw: str, reason: str, source: str, location: str
    ) -> None:
        scrub = self.pseudonymiser
        self.output.deadletters(
            [
                DeadLetter(
                    source=source,
                    raw=scrub.scrub(raw),
                    reason=scrub.scrub_reason(reason),
                    location=location,
                )
            ]
        )

    # -- time -----------------------------------------------------------------------------
    def advance_to(self, watermark_ms: int) -> None:
        self._emit(self.ingest_unit.advance_to(watermark_ms))

    def close(self) -> StreamStats:
        """The unit's input ended: close every tick and say so."""
        self._emit(self.ingest_unit.flush())
        self.finished = True
        self.report()
        return self.stats

    def _emit(self, ticks: list[ClosedTick]) -> None:
        s = self.stats
        for tick in ticks:
            self.outbox.extend(split_by_platform(self.unit, tick))
            s.ticks += 1
            start = tick.index * self.tick_ms
            s.first_ts = start if s.first_ts is None else s.first_ts
            s.last_ts = start + self.tick_ms

    def report(self, *, idle: bool = False) -> None:
        """Queue a progress message if anything changed since the last one."""
        now = (self.ingest_unit.closed_idx, self.finished, idle and not self.finished)
        if now == self._reported:
            return
        self._reported = now
        self.outbox.append(
            UnitProgress(
                unit=self.unit,
                units=self.units,
                closed_until=now[0],
                finished=now[1],
                idle=now[2],
                counts=self.counts(),
            )
        )

    def counts(self) -> UnitCounts:
        s = self.stats
        return UnitCounts(
            accepted=dict(s.accepted),
            duplicates=dict(s.duplicates),
            late=dict(s.late),
            rejected=dict(s.rejected),
            conflicting=dict(s.conflicting),
            held=s.held,
            uncorroborated=s.uncorroborated,
        )

    def drain(self) -> list[Message]:
        out, self.outbox = self.outbox, []
        return out

    def flush_measurements(self) -> None:
        """Nothing to flush: a unit has no detectors."""

    # -- state ----------------------------------------------------------------------------
    def _fingerprint(self) -> str:
        text = (
            self.config.model_dump_json()
            + f"|unit {self.unit} of {self.units}|"
            + self.pseudonymiser.key_id
        )
        return hashlib.sha256(text.encode()).hexdigest()

    def snapshot(self, *, pending: bool = False) -> bytes:
        """The unit's sealed state; open ticks are left out unless ``pending``."""
        unit = self.ingest_unit
        counts = self.counts()
        platforms = dict(self.stats.platforms)
        if not pending:
            for bucket in unit.open.values():
                for (_p, topic, _e), (event, _s, _l) in bucket.events.items():
                    counts.accepted[topic] = counts.accepted.get(topic, 0) - 1
                    platforms[event.platform] -= 1
        state = UnitState(
            version=_STATE_VERSION,
            fingerprint=self._fingerprint(),
            unit=self.unit,
            ingest=unit.state(pending=pending),
            counts=counts,
            platforms=platforms,
            out_of_order=self.stats.out_of_order,
        )
        return self._sealer.seal(msgspec.msgpack.encode(state))

    def restore(self, data: bytes) -> None:
        """Resume from :meth:`snapshot` bytes (sealed by this deployment, same unit and
        configuration), or ``ValueError`` naming why not."""
        state = msgspec.msgpack.decode(self._sealer.open(data), type=UnitState)
        if state.version != _STATE_VERSION:
            raise ValueError(f"unit state version {state.version}, expected {_STATE_VERSION}")
        if state.fingerprint != self._fingerprint():
            raise ValueError(
                f"unit {self.unit} state was saved with another configuration, "
                "unit count or pseudonymisation key"
            )
        c, s = state.counts, self.stats
        s.accepted, s.duplicates, s.late = dict(c.accepted), dict(c.duplicates), dict(c.late)
        s.rejected, s.conflicting = dict(c.rejected), dict(c.conflicting)
        s.held, s.uncorroborated = c.held, c.uncorroborated
        s.platforms, s.out_of_order = dict(state.platforms), state.out_of_order
        self.ingest_unit.load_state(state.ingest)
        self._reported = None

    # -- what a driver reads ----------------------------------------------------------------
    @property
    def closed_until_ms(self) -> int:
        return self.ingest_unit.closed_until_ms

    @property
    def future_limit_ms(self) -> int:
        return self.ingest_unit.future_limit_ms

    @property
    def watermark(self) -> int | None:
        return self.ingest_unit.watermark

    def describe(self) -> dict[str, Any]:
        return {
            "unit": self.unit,
            "closed_until_ms": self.closed_until_ms,
            "pending_events": self.ingest_unit.pending_events,
            "finished": self.finished,
        }
