"""The event-time engine: one unit of ingest (:mod:`monitor.engine.ingest`) driving the detectors.

Every driver pushes records (raw JSON or already-parsed objects) into one :class:`Engine`;
the engine alone decides what counts and when detectors run, so replay, the live worker and
the self-audit produce the same findings from the same events.

Semantics (contract §1; the details are in :mod:`monitor.engine.ingest`):

* **Decode**: schema validation (:mod:`monitor.core.contract`); a bad record becomes a dead letter.
* **Duplicates over the whole window**: a repeated (platform, topic, event_id) with the same
  content is counted once (``stats.duplicates``), however late the copy; copies that differ
  are *conflicting duplicates* — dead letters, none counted while the first copy's tick is
  open.
* **Ticks and lateness**: event time is cut into ticks ``[k·tick, (k+1)·tick)`` (default 15
  min); a tick is *closed* — its events handed to the detectors, then the detectors evaluated
  — once the watermark ``F − lateness`` passes its end, ``F`` being the newest *corroborated*
  event time (one far-ahead record is held, not believed).  An event for a closed tick is
  *late*: a dead letter (reason ``late``), never a silent drop.  Hence any arrival order in
  which each event is at most ``lateness`` behind the newest one gives the same ticks with
  the same contents, and the same results.
* **External watermark** (``auto_watermark=False``): a driver reading several partitions
  passes ``min over partitions of (max ts) − lateness`` to :meth:`Engine.advance_to`, so a
  partition that is read later than another never makes its events late.
* **Privacy**: the ``user`` of every accepted event is replaced by its keyed pseudonym
  (:mod:`monitor.core.privacy`) before it is buffered, and dead-letter text and reasons are
  scrubbed of user keys: nothing downstream of the engine ever holds a raw user key.
* **Future**: an event more than ``max_future_ms`` ahead of the wall clock is rejected.

Memory: pending events of open ticks (≈ rate × (lateness + tick)), 24 bytes per event of the
key retention, and the detectors' state — not the length of the stream.
"""

from __future__ import annotations

import copy
import hashlib
import io
import pickle  # noqa: S403  # engine checkpoints the worker wrote itself, see snapshot()
import warnings
from collections.abc import Callable
from typing import Any

from detectors import Detector, ExposureLedger, Tick
from monitor.core.config import Config, ConfigWarning, unseen_platforms
from monitor.core.contract import Event, Exposure, Ranking, Rejected, decode, decode_obj
from monitor.core.privacy import Pseudonymiser
from monitor.core.records import DeadLetter, utc_now
from monitor.engine.analysis import Analysis, Output
from monitor.engine.ingest import ClosedTick, Ingest, StreamStats

__all__ = ["Engine", "Output", "StreamStats"]

DAY_MS = 86_400_000


def key_retention_ms(config: Config) -> int:
    """How long keys are remembered for dedup: the longest baseline + window of the
    configuration, plus the lateness allowance (at least a day)."""
    spans = [w.window_period.end_ms - w.baseline_period.start_ms for w in config.windows]
    return max([DAY_MS, *spans]) + config.detection.lateness_ms


class Engine:
    """Drive the detectors over one logical stream of exposure and ranking records."""

    def __init__(
        self,
        config: Config,
        output: Output,
        *,
        detectors: list[str] | None = None,
        max_future_ms: int = DAY_MS,
        now_ms: Callable[[], int] | None = None,
        key_retention: int | None = None,
        auto_watermark: bool = True,
        on_tick: Callable[[Tick, Analysis], None] | None = None,
        pseudonymiser: Pseudonymiser | None = None,
    ) -> None:
        self.config = config
        # A driver that keeps state across processes (worker, archive) passes the persistent
        # key; otherwise a per-process key still keeps raw user keys out of every output.
        self.pseudonymiser = pseudonymiser or Pseudonymiser.ephemeral()
        self.output = output
        self.tick_ms = config.detection.tick_ms
        self.lateness_ms = config.detection.lateness_ms
        self.max_future_ms = max_future_ms
        self.auto_watermark = auto_watermark
        self._now_ms = now_ms or (lambda: int(utc_now().timestamp() * 1000))
        self.analysis = Analysis(config, output, detectors=detectors, on_tick=on_tick)
        self.stats = StreamStats()
        self.ingest_unit = Ingest(
            tick_ms=self.tick_ms,
            lateness_ms=self.lateness_ms,
            pseudonymiser=self.pseudonymiser,
            dead=self._unit_dead,
            future_limit_ms=self._now_ms() + max_future_ms,
            stats=self.stats,
            key_retention_ms=key_retention or key_retention_ms(config),
        )

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
        self.dead_letter(
            rejected.topic,
            "rejected",
            rejected.raw,
            rejected.reason,
            source=source,
            location=location,
        )

    def push(
        self,
        topic: str,
        event: Event,
        *,
        source: str,
        location: str = "",
        raw: bytes | str | None = None,
    ) -> None:
        """Accept a validated event: dedup, lateness, then buffer it in its tick."""
        unit = self.ingest_unit
        unit.push(topic, event, source=source, location=location, raw=raw)
        if self.auto_watermark:
            for tick in unit.advance():
                self._run(tick)

    def _unit_dead(
        self, topic: str, counter: str, raw: str, reason: str, source: str, location: str
    ) -> None:
        # already counted by the unit in the shared stats
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

    def dead_letter(
        self, topic: str, counter: str, raw: str, reason: str, *, source: str, location: str = ""
    ) -> None:
        """A record that never reaches a tick, counted in ``stats.<counter>[topic]``
        (``rejected``, ``late`` or ``conflicting``); text and reason are scrubbed of user
        keys like every dead letter."""
        counts = getattr(self.stats, counter)
        counts[topic] = counts.get(topic, 0) + 1
        self._unit_dead(topic, counter, raw, reason, source, location)

    # -- time -----------------------------------------------------------------------------
    def advance_to(self, watermark_ms: int) -> None:
        """Move the watermark forward explicitly (several partitions, an idle stream)."""
        for tick in self.ingest_unit.advance_to(watermark_ms):
            self._run(tick)

    def feed_tick(
        self,
        idx: int,
        exposures: list[Exposure],
        rankings: list[Ranking],
        panel: list[Exposure] | None = None,
    ) -> None:
        """A whole tick of validated, deduplicated events in canonical order (``ts``,
        ``platform``, ``event_id``) — the staged replay (:mod:`streams.staging`), which has
        already sorted the archive, removed duplicates and rejected far-future events.

        Ticks must come in increasing order and after any tick the engine closed itself.
        """
        unit = self.ingest_unit
        if idx < unit.closed_idx:
            raise ValueError(f"tick {idx} is already closed (ticks must increase)")
        if unit.open:
            raise ValueError("feed_tick cannot be mixed with push on open ticks")
        pseudonym = self.pseudonymiser
        platforms = self.stats.platforms
        for e in exposures:
            e.user = pseudonym(e.user)
            platforms[e.platform] = platforms.get(e.platform, 0) + 1
        for r in rankings:
            r.user = pseudonym(r.user)
            platforms[r.platform] = platforms.get(r.platform, 0) + 1
        panel = panel or []
        for e in panel:
            e.user = pseudonym(e.user)
        accepted = self.stats.accepted
        for topic, events in (("exposure", exposures), ("ranking", rankings), ("panel", panel)):
            if events or topic in accepted:
                accepted[topic] = accepted.get(topic, 0) + len(events)
        self._run(ClosedTick(idx, exposures, rankings, panel))
        unit.closed_idx = idx + 1

    def _run(self, closed: ClosedTick) -> None:
        a = self.analysis
        a.run(closed)
        s = self.stats
        s.ticks, s.first_ts, s.last_ts = a.ticks, a.first_ts, a.last_ts

    def flush_measurements(self) -> None:
        self.analysis.flush_measurements()

    @property
    def ledger(self) -> ExposureLedger:
        return self.analysis.ledger

    @property
    def detectors(self) -> list[Detector]:
        return self.analysis.detectors

    @property
    def output(self) -> Output:
        return self._output

    @output.setter
    def output(self, value: Output) -> None:
        """A driver may wrap the output (dead-letter naming): both stages see the wrapper."""
        self._output = value
        if hasattr(self, "analysis"):
            self.analysis.output = value

    def close(self) -> StreamStats:
        """End of stream: close every pending tick, finish detectors, flush measurements."""
        for tick in self.ingest_unit.flush():
            self._run(tick)
        s = self.stats
        self.analysis.finish(
            {
                "accepted": s.accepted,
                "duplicates": s.duplicates,
                "late": s.late,
                "rejected": s.rejected,
                "conflicting": s.conflicting,
            }
        )
        for message in unseen_platforms(self.config, self.stats.platforms):
            warnings.warn(message, ConfigWarning, stacklevel=2)
        return self.stats

    # -- checkpoints (the Kafka worker) ------------------------------------------------------
    def snapshot(self, *, pending: bool = True) -> bytes:
        """The engine's whole state (ledger, detectors, dedup keys, counters) as bytes.

        With ``pending=False`` the events of still-open ticks and their keys are left out
        (and not counted as accepted): a driver that can re-read them from its source (Kafka
        offsets) keeps checkpoints small.  The configuration is not stored, only its
        fingerprint; :meth:`restore` needs an engine built from the same configuration and
        detector versions.
        """
        unit = self.ingest_unit
        stats = copy.deepcopy(self.stats)
        if not pending:
            for bucket in unit.open.values():
                for (_p, topic, _e), (event, _s, _l) in bucket.events.items():
                    stats.accepted[topic] = stats.accepted.get(topic, 0) - 1
                    stats.platforms[event.platform] -= 1
        state = {
            "ledger": self.ledger,
            "detectors": self.detectors,
            "stats": stats,
            "unit": unit.state(pending=pending),
        }
        buf = io.BytesIO()
        _StatePickler(buf, self.config).dump((self._fingerprint(), state))
        return buf.getvalue()

    def restore(self, data: bytes) -> None:
        """Replace this engine's state by a :meth:`snapshot` (same configuration only)."""
        fingerprint, state = _StateUnpickler(io.BytesIO(data), self.config).load()
        if fingerprint != self._fingerprint():
            raise ValueError(
                "engine state was saved with a different configuration, "
                "detector versions or pseudonymisation key"
            )
        self.analysis.ledger = state["ledger"]
        self.analysis.detectors = state["detectors"]
        self.stats = state["stats"]
        a = self.analysis
        a.ticks, a.first_ts, a.last_ts = self.stats.ticks, self.stats.first_ts, self.stats.last_ts
        self.ingest_unit.stats = self.stats
        self.ingest_unit.load_state(state["unit"])

    def _fingerprint(self) -> str:
        text = (
            self.config.model_dump_json()
            + "|"
            + ",".join(f"{d.name}:{d.version}" for d in self.detectors)
            + "|"
            + self.pseudonymiser.key_id
        )
        return hashlib.sha256(text.encode()).hexdigest()

    @property
    def closed_until_ms(self) -> int:
        """Events with ``ts`` below this fall in closed ticks (they would be late)."""
        return self.ingest_unit.closed_until_ms

    @property
    def future_limit_ms(self) -> int:
        """Events with ``ts`` above this are rejected as far-future."""
        return self.ingest_unit.future_limit_ms

    @property
    def watermark(self) -> int | None:
        return self.ingest_unit.watermark


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
