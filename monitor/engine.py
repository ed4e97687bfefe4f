"""The event-time engine: dedup, lateness, reorder, ticks — shared by replay and the worker.

Every driver pushes records (raw JSON or already-parsed objects) into one :class:`Engine`;
the engine alone decides what counts and when detectors run, so replay, the Faust worker and
the self-audit produce the same findings from the same events.

Semantics (contract §1):

* **Decode**: schema validation (:mod:`monitor.contract`); a bad record becomes a dead letter.
* **Duplicates**: a record whose (platform, topic, event_id) was already accepted is counted
  in ``stats.duplicates`` and otherwise ignored.
* **Watermark** ``W = max event time seen − lateness``.  Event time is cut into ticks
  ``[k·tick, (k+1)·tick)`` (default 15 min).  A tick is *closed* — its events handed to the
  detectors, then the detectors evaluated — once ``W`` passes its end.  An event for a closed
  tick is *late*: it becomes a dead letter (reason ``late``), never a silent drop.  Hence any
  arrival order in which each event is at most ``lateness`` behind the newest one gives the
  same ticks with the same contents, and the same results.
* **External watermark** (``auto_watermark=False``): a driver reading several partitions
  passes ``min over partitions of (max ts) − lateness`` to :meth:`Engine.advance_to`, so a
  partition that is read later than another never makes its events late.
* **Privacy**: the ``user`` of every accepted event is replaced by its keyed pseudonym
  (:mod:`monitor.privacy`) before it is buffered, and dead-letter text and reasons are
  scrubbed of user keys: nothing downstream of the engine ever holds a raw user key.
* **Future**: an event more than ``max_future_ms`` ahead of the wall clock is rejected (a bogus
  far-future timestamp would otherwise close every tick).

Memory: pending events of open ticks (≈ rate × (lateness + tick)), dedup keys of recent ticks,
and the detectors' state — not the length of the stream.
"""

from __future__ import annotations

import copy
import hashlib
import heapq
import io
import pickle  # noqa: S403  # engine checkpoints the worker wrote itself, see snapshot()
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any, Protocol

import msgspec

from detectors import Detector, ExposureLedger, Tick, build
from monitor.config import Config, ConfigWarning, unseen_platforms
from monitor.contract import Event, Exposure, Ranking, Rejected, decode, decode_obj
from monitor.privacy import Pseudonymiser
from monitor.records import DeadLetter, Detectability, Finding, Measurement, utc_now

__all__ = ["Engine", "Output", "StreamStats"]

DAY_MS = 86_400_000
_ORDER = attrgetter("ts", "platform", "event_id")


class Output(Protocol):
    """Where the engine's results go (DuckDB store, Kafka topics, memory)."""

    def findings(self, rows: list[Finding]) -> None: ...
    def measurements(self, rows: list[Measurement]) -> None: ...
    def deadletters(self, rows: list[DeadLetter]) -> None: ...
    def detectability(self, rows: list[Detectability]) -> None: ...


@dataclass
class StreamStats:
    """Counters per topic; ``accepted`` = distinct events that reached a tick."""

    accepted: dict[str, int] = field(default_factory=lambda: {"exposure": 0, "ranking": 0})
    duplicates: dict[str, int] = field(default_factory=lambda: {"exposure": 0, "ranking": 0})
    late: dict[str, int] = field(default_factory=lambda: {"exposure": 0, "ranking": 0})
    rejected: dict[str, int] = field(default_factory=lambda: {"exposure": 0, "ranking": 0})
    # every copy of an event_id whose copies differ in content (none of them is counted)
    conflicting: dict[str, int] = field(default_factory=lambda: {"exposure": 0, "ranking": 0})
    out_of_order: int = 0
    ticks: int = 0
    first_ts: int | None = None
    last_ts: int | None = None
    platforms: dict[str, int] = field(default_factory=dict)  # accepted events per platform

    @property
    def records(self) -> int:
        return sum(sum(d.values()) for d in (self.accepted, self.duplicates, self.late,
                                              self.rejected, self.conflicting))

    def as_dict(self) -> dict[str, Any]:
        return {"accepted": self.accepted, "duplicates": self.duplicates, "late": self.late,
                "rejected": self.rejected, "conflicting": self.conflicting,
                "out_of_order": self.out_of_order, "platforms": self.platforms,
                "ticks": self.ticks, "first_ts": self.first_ts, "last_ts": self.last_ts}


class Engine:
    """Drive the detectors over one logical stream of exposure and ranking records."""

    def __init__(self, config: Config, output: Output, *, detectors: list[str] | None = None,
                 max_future_ms: int = DAY_MS, now_ms: Callable[[], int] | None = None,
                 dedup_retention_ms: int = 3_600_000, auto_watermark: bool = True,
                 on_tick: Callable[[Tick, Engine], None] | None = None,
                 pseudonymiser: Pseudonymiser | None = None) -> None:
        self.config = config
        # A driver that keeps state across processes (worker, archive) passes the persistent
        # key; otherwise a per-process key still keeps raw user keys out of every output.
        self.pseudonymiser = pseudonymiser or Pseudonymiser.ephemeral()
        self.output = output
        self.tick_ms = config.detection.tick_ms
        self.lateness_ms = config.detection.lateness_ms
        self.max_future_ms = max_future_ms
        self.dedup_retention_ms = dedup_retention_ms
        self.auto_watermark = auto_watermark
        self.on_tick = on_tick  # called after each closed tick (research history, metrics)
        self._now_ms = now_ms or (lambda: int(utc_now().timestamp() * 1000))
        self.ledger = ExposureLedger(config)
        self.detectors: list[Detector] = build(config, self.ledger, detectors)
        self.stats = StreamStats()
        self._pending: dict[int, tuple[list[Exposure], list[Ranking]]] = {}
        self._heap: list[int] = []
        self._max_ts: int | None = None
        self._closed_idx = -(2**62)  # ticks with index < this are closed
        self._seen: dict[tuple[str, str, str], int] = {}
        self._seen_by_tick: dict[int, list[tuple[str, str, str]]] = {}
        self._future_limit = self._now_ms() + max_future_ms

    # -- input ----------------------------------------------------------------------------
    def ingest(self, topic: str, raw: bytes | str, *, source: str, location: str = "") -> None:
        """Decode one raw JSON record and push it (or dead-letter it)."""
        result = decode(topic, raw)
        if isinstance(result, Rejected):
            self.reject(result, source=source, location=location)
        else:
            self.push(topic, result, source=source, location=location, raw=raw)

    def ingest_obj(self, topic: str, obj: Any, *, source: str, location: str = "") -> None:
        """Validate and push an already-parsed record (Parquet row, simulator dict)."""
        result = decode_obj(topic, obj)
        if isinstance(result, Rejected):
            self.reject(result, source=source, location=location)
        else:
            self.push(topic, result, source=source, location=location)

    def reject(self, rejected: Rejected, *, source: str, location: str = "") -> None:
        self.dead_letter(rejected.topic, "rejected", rejected.raw, rejected.reason,
                         source=source, location=location)

    def push(self, topic: str, event: Event, *, source: str, location: str = "",
             raw: bytes | str | None = None) -> None:
        """Accept a validated event: dedup, lateness, then buffer it in its tick."""
        ts: int = event.ts  # type: ignore[assignment]
        key = (event.platform, topic, event.event_id)
        if key in self._seen:
            self.stats.duplicates[topic] += 1
            return
        idx = ts // self.tick_ms
        if idx < self._closed_idx or ts > self._future_limit:
            why = ("arrived after its tick closed (later than the lateness allowance of "
                   f"{self.lateness_ms // 60_000} min)" if idx < self._closed_idx else
                   "more than a day after the current wall-clock time")
            self._dead(topic, "late" if idx < self._closed_idx else "rejected", event, raw,
                       f"{topic}.ts: {why}", source, location)
            return
        event.user = self.pseudonymiser(event.user)
        self._seen[key] = idx
        self._seen_by_tick.setdefault(idx, []).append(key)
        bucket = self._pending.get(idx)
        if bucket is None:
            bucket = self._pending[idx] = ([], [])
            heapq.heappush(self._heap, idx)
        if topic == "exposure":
            bucket[0].append(event)  # type: ignore[arg-type]
        else:
            bucket[1].append(event)  # type: ignore[arg-type]
        self.stats.accepted[topic] += 1
        platforms = self.stats.platforms
        platforms[event.platform] = platforms.get(event.platform, 0) + 1
        if self._max_ts is None or ts > self._max_ts:
            self._max_ts = ts
            if self.auto_watermark:
                self._advance(ts - self.lateness_ms)
        elif ts < self._max_ts:
            self.stats.out_of_order += 1

    def _dead(self, topic: str, counter: str, event: Event, raw: bytes | str | None,
              reason: str, source: str, location: str) -> None:
        text = raw if raw is not None else msgspec.json.encode(event)
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        self.dead_letter(topic, counter, text, reason, source=source, location=location)

    # -- time -----------------------------------------------------------------------------
    def advance_to(self, watermark_ms: int) -> None:
        """Move the watermark forward explicitly (e.g. an idle live stream)."""
        self._advance(watermark_ms)

    def _advance(self, watermark: int) -> None:
        new_closed = watermark // self.tick_ms  # ticks with end <= watermark are closed
        if new_closed <= self._closed_idx:
            return
        while self._heap and self._heap[0] < new_closed:
            self._close_tick(heapq.heappop(self._heap))
        self._closed_idx = new_closed
        self._expire_seen(watermark - self.dedup_retention_ms)

    def _close_tick(self, idx: int) -> None:
        exposures, rankings = self._pending.pop(idx)
        # Canonical order within the tick: no detector can depend on arrival order.
        exposures.sort(key=_ORDER)
        rankings.sort(key=_ORDER)
        self._run_tick(idx, exposures, rankings)

    def feed_tick(self, idx: int, exposures: list[Exposure], rankings: list[Ranking]) -> None:
        """A whole tick of validated, deduplicated events in canonical order (``ts``,
        ``platform``, ``event_id``) — the staged replay (:mod:`streams.staging`), which has
        already sorted the archive, removed duplicates and rejected far-future events.

        Ticks must come in increasing order and after any tick the engine closed itself.
        """
        if idx < self._closed_idx:
            raise ValueError(f"tick {idx} is already closed (ticks must increase)")
        if self._heap:
            raise ValueError("feed_tick cannot be mixed with push on open ticks")
        pseudonym = self.pseudonymiser
        platforms = self.stats.platforms
        for e in exposures:
            e.user = pseudonym(e.user)
            platforms[e.platform] = platforms.get(e.platform, 0) + 1
        for r in rankings:
            r.user = pseudonym(r.user)
            platforms[r.platform] = platforms.get(r.platform, 0) + 1
        self.stats.accepted["exposure"] += len(exposures)
        self.stats.accepted["ranking"] += len(rankings)
        last = max(exposures[-1].ts if exposures else 0, rankings[-1].ts if rankings else 0)
        if self._max_ts is None or last > self._max_ts:  # type: ignore[operator]
            self._max_ts = last  # type: ignore[assignment]
        self._run_tick(idx, exposures, rankings)
        self._closed_idx = idx + 1

    def dead_letter(self, topic: str, counter: str, raw: str, reason: str, *, source: str,
                    location: str = "") -> None:
        """A record that never reaches a tick, counted in ``stats.<counter>[topic]``
        (``rejected``, ``late`` or ``conflicting``); text and reason are scrubbed of user
        keys like every dead letter."""
        getattr(self.stats, counter)[topic] += 1
        scrub = self.pseudonymiser
        self.output.deadletters([DeadLetter(source=source, raw=scrub.scrub(raw),
                                            reason=scrub.scrub_reason(reason),
                                            location=location)])

    def _run_tick(self, idx: int, exposures: list[Exposure], rankings: list[Ranking]) -> None:
        tick = Tick(idx * self.tick_ms, (idx + 1) * self.tick_ms, exposures, rankings)
        self.ledger.observe(exposures)
        findings: list[Finding] = []
        for det in self.detectors:
            det.observe(tick)
            findings.extend(det.evaluate(tick))
        if findings:
            self.output.findings(findings)
        s = self.stats
        s.ticks += 1
        s.first_ts = tick.start_ms if s.first_ts is None else s.first_ts
        s.last_ts = tick.end_ms
        if self.on_tick is not None:
            self.on_tick(tick, self)

    def _expire_seen(self, before_ms: int) -> None:
        limit = before_ms // self.tick_ms
        for idx in [i for i in self._seen_by_tick if i < min(limit, self._closed_idx)]:
            for key in self._seen_by_tick.pop(idx):
                self._seen.pop(key, None)

    def flush_measurements(self) -> None:
        rows = [m for det in self.detectors for m in det.measurements()]
        if rows:
            self.output.measurements(rows)

    def close(self) -> StreamStats:
        """End of stream: close every pending tick, finish detectors, flush measurements."""
        while self._heap:
            self._close_tick(heapq.heappop(self._heap))
        end = self.stats.last_ts or 0
        findings = [f for det in self.detectors for f in det.finish(end)]
        if findings:
            self.output.findings(findings)
        self.flush_measurements()
        rows = [r for det in self.detectors for r in det.detectability()]
        if rows:
            self.output.detectability(rows)
        for message in unseen_platforms(self.config, self.stats.platforms):
            warnings.warn(message, ConfigWarning, stacklevel=2)
        return self.stats

    # -- checkpoints (the Kafka worker) ------------------------------------------------------
    _STATE = ("ledger", "detectors", "stats", "_pending", "_heap", "_max_ts", "_closed_idx",
              "_seen", "_seen_by_tick", "_future_limit")

    def snapshot(self, *, pending: bool = True) -> bytes:
        """The engine's whole state (ledger, detectors, dedup keys, counters) as bytes.

        With ``pending=False`` the events of still-open ticks and their dedup keys are left
        out (and not counted as accepted): a driver that can re-read them from its source
        (Kafka offsets) keeps checkpoints small.  The configuration is not stored, only its
        fingerprint; :meth:`restore` needs an engine built from the same configuration and
        detector versions.
        """
        state = {name: getattr(self, name) for name in self._STATE}
        if not pending:
            stats = copy.copy(self.stats)
            stats.accepted = dict(stats.accepted)
            for exposures, rankings in self._pending.values():
                stats.accepted["exposure"] -= len(exposures)
                stats.accepted["ranking"] -= len(rankings)
            state.update(stats=stats, _pending={}, _heap=[],
                         _seen={k: i for k, i in self._seen.items() if i < self._closed_idx},
                         _seen_by_tick={i: keys for i, keys in self._seen_by_tick.items()
                                        if i < self._closed_idx})
        buf = io.BytesIO()
        _StatePickler(buf, self.config).dump((self._fingerprint(), state))
        return buf.getvalue()

    def restore(self, data: bytes) -> None:
        """Replace this engine's state by a :meth:`snapshot` (same configuration only)."""
        fingerprint, state = _StateUnpickler(io.BytesIO(data), self.config).load()
        if fingerprint != self._fingerprint():
            raise ValueError("engine state was saved with a different configuration, "
                             "detector versions or pseudonymisation key")
        for name in self._STATE:
            setattr(self, name, state[name])

    def _fingerprint(self) -> str:
        text = self.config.model_dump_json() + "|" + ",".join(
            f"{d.name}:{d.version}" for d in self.detectors) + "|" + self.pseudonymiser.key_id
        return hashlib.sha256(text.encode()).hexdigest()

    @property
    def closed_until_ms(self) -> int:
        """Events with ``ts`` below this fall in closed ticks (they would be late)."""
        return max(self._closed_idx * self.tick_ms, -(2**62))

    @property
    def future_limit_ms(self) -> int:
        """Events with ``ts`` above this are rejected as far-future."""
        return self._future_limit

    @property
    def watermark(self) -> int | None:
        return None if self._max_ts is None else self._max_ts - self.lateness_ms


class _StatePickler(pickle.Pickler):
    """Stores the configuration by reference: a checkpoint holds state, not settings."""

    def __init__(self, file: io.BytesIO, config: Config) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self._config = config

    def persistent_id(self, obj: Any) -> str | None:
        return "config" if obj is self._config else None


class _StateUnpickler(pickle.Unpickler):  # noqa: S301  # only reads the worker's own checkpoints
    def __init__(self, file: io.BytesIO, config: Config) -> None:
        super().__init__(file)
        self._config = config

    def persistent_load(self, pid: Any) -> Any:
        if pid != "config":
            raise pickle.UnpicklingError(f"unknown persistent id {pid!r}")
        return self._config
