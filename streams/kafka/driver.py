"""Kafka partitions → one :class:`monitor.engine.run.Engine`: watermarks, end, checkpoints.

Framework-free (no client library): a runtime (the aiokafka worker, tests) hands it batches of
:class:`Message` and stores the :class:`Checkpoint` it returns.

**Watermark.**  Each input partition ``p`` (of both topics) tracks ``max_p`` = its
corroborated event-time frontier (:class:`monitor.engine.ingest.Frontier`: the newest event time,
except that one record far ahead of the rest is held until others corroborate it).  The
engine's watermark is ``min_p max_p − lateness``, so a
partition that is read later than another (consumer lag, a slow broker) never makes its own
events late: results equal ``amplimon replay`` whenever each partition is itself in order
within the lateness allowance.  A partition that has delivered nothing for
``idle_ms`` (wall clock) and is not lagging stops holding the watermark back; a partition
that has shown the end-of-stream marker is finished.  When every partition is finished the
engine is closed (final ticks, detectors' ``finish``, detectability) — the live equivalent of
the end of replay's files.

**Checkpoint.**  Engine state *without* the events of still-open ticks
(:meth:`Engine.snapshot` with ``pending=False``), plus per partition: ``position`` (next offset
to read) and ``replay_from`` (the smallest offset of an event that is still in an open tick).
A restarted worker restores the state and reads again from ``replay_from``; a message below
the checkpoint's ``position`` was seen before, so it is pushed again only if its tick is still
open, and skipped otherwise (its tick already counted it; its dead letter is already out).
The engine's output after a restart is therefore the same as if it had never stopped, and
outputs emitted again are identical rows that the sink's upserts absorb.

**Dead letters are named by content, not offset.**  The ``location`` of a dead letter — and so
its ``dl_id``, which makes the sink's insert idempotent — is ``<topic>:<h>#<n>``: ``h`` hashes
the topic, reason and SHA-256 of the whole (scrubbed) text, ``n`` counts the dead letters with
that hash so far.
A Kafka offset would be a poor name: a platform re-producing a stream into a broker that lost
its data (or into new topics) puts unkeyed malformed records on other partitions and every
record after them at other offsets, and the same dead letter would be stored twice.  The
content and its occurrence number are the same in every copy of the stream, and identical
records are told apart by ``n``.  The counts are part of the checkpoint; the oldest of more
than 100 000 distinct payloads are forgotten (a payload repeated after that is stored once).

**A record is dead-lettered once, however often it is read.**  A message re-read after a
restart (below the checkpoint's ``position``) had its dead letter sent before that
checkpoint was saved, so nothing it causes now is sent again: a rejection is skipped, and
dead letters the engine emits while it is pushed again are muted — a re-emitted one would
count its content again and be stored a second time as ``#2``.  And only a record the engine
keeps (not rejected, late or a duplicate) holds ``replay_from`` back: a far-future record
that was rejected used to pin it for good, so that every restart read the partition again
from there and dead-lettered that record again (``#1``, ``#2``, ``#3``…).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import msgspec

from monitor.core.contract import Event, Rejected, decode
from monitor.core.records import DeadLetter, Detectability, Finding, Measurement
from monitor.engine.analysis import Output
from monitor.engine.ingest import Frontier, Ingest, StreamStats

__all__ = ["Checkpoint", "DrivenEngine", "EngineDriver", "Message", "TP", "is_end_of_stream"]

TP = tuple[str, int]  # (topic, partition)
_CONTROL = "amplimon-control"
_EOS = b"end-of-stream"


@dataclass(slots=True)
class Message:
    """One Kafka record as the driver needs it (independent of the client library)."""

    topic: str
    partition: int
    offset: int
    value: bytes | None
    headers: Sequence[tuple[str, bytes]] = ()


class DrivenEngine(Protocol):
    """What the driver needs of an engine: a whole :class:`monitor.engine.run.Engine`, or one
    unit of a scaled-out stream (:class:`monitor.engine.unit.UnitEngine`)."""

    auto_watermark: bool
    output: Output
    stats: StreamStats
    tick_ms: int
    lateness_ms: int
    ingest_unit: Ingest

    def push(
        self,
        topic: str,
        event: Event,
        *,
        source: str,
        location: str = "",
        raw: bytes | str | None = None,
    ) -> None: ...
    def reject(self, rejected: Rejected, *, source: str, location: str = "") -> None: ...
    def advance_to(self, watermark_ms: int) -> None: ...
    def close(self) -> StreamStats: ...
    def snapshot(self, *, pending: bool = ...) -> bytes: ...
    def restore(self, data: bytes) -> None: ...
    @property
    def closed_until_ms(self) -> int: ...
    @property
    def future_limit_ms(self) -> int: ...


def _dropped(s: StreamStats, topic: str) -> int:
    """Records of ``topic`` the engine did not keep so far."""
    return s.duplicates[topic] + s.late[topic] + s.rejected[topic] + s.conflicting[topic]


def is_end_of_stream(m: Message) -> bool:
    return not m.value and any(k == _CONTROL and v == _EOS for k, v in m.headers)


def _tp_key(tp: TP) -> str:
    return f"{tp[0]}/{tp[1]}"


def _key_tp(key: str) -> TP:
    topic, _, partition = key.rpartition("/")
    return topic, int(partition)


class Checkpoint(msgspec.Struct, kw_only=True):
    """What a restarted worker needs; ``encode``/``decode`` to bytes (msgpack)."""

    engine: bytes
    position: dict[str, int]
    replay_from: dict[str, int]
    part_max: dict[str, int]
    finished: list[str] = []
    closed: bool = False
    saved_at_ms: int = 0
    dead_letters: dict[str, int] = {}  # content hash → dead letters named so far

    def encode(self) -> bytes:
        return msgspec.msgpack.encode(self)

    @classmethod
    def decode(cls, data: bytes) -> Checkpoint:
        return msgspec.msgpack.decode(data, type=cls)


class DeadLetterNames:
    """Engine :class:`~monitor.engine.run.Output` wrapper: sets each dead letter's ``location``
    to ``<topic>:<hash>#<n>`` (see the module docstring); everything else passes through."""

    limit = 100_000

    def __init__(self, inner: Output) -> None:
        self.inner = inner
        self.counts: dict[str, int] = {}
        self.muted = False  # while a re-read message is pushed again: sent before already

    def deadletters(self, rows: list[DeadLetter]) -> None:
        if self.muted:
            return
        for row in rows:
            digest = hashlib.sha256(
                "\x1f".join((row.source, row.reason, row.raw_sha256 or "")).encode(
                    "utf-8", "replace"
                )
            ).hexdigest()[:20]
            n = self.counts.pop(digest, 0) + 1
            self.counts[digest] = n  # re-inserted: the dict's order is least recently seen
            if len(self.counts) > self.limit:
                del self.counts[next(iter(self.counts))]
            row.location = f"{row.source}:{digest}#{n}"
        self.inner.deadletters(rows)

    def findings(self, rows: list[Finding]) -> None:
        self.inner.findings(rows)

    def measurements(self, rows: list[Measurement]) -> None:
        self.inner.measurements(rows)

    def detectability(self, rows: list[Detectability]) -> None:
        self.inner.detectability(rows)


@dataclass
class DriverStats:
    messages: int = 0
    replayed: int = 0  # re-read after a restart and pushed again
    skipped: int = 0  # re-read after a restart, already counted
    end_markers: int = 0
    after_close: int = 0


@dataclass
class EngineDriver:
    """Feeds messages of the input topics to ``engine`` (built with ``auto_watermark=False``)."""

    engine: DrivenEngine
    inputs: dict[str, str]  # kafka topic → contract topic
    idle_ms: int = 30_000
    clock: Callable[[], float] = time.monotonic
    stats: DriverStats = field(default_factory=DriverStats)

    def __post_init__(self) -> None:
        if self.engine.auto_watermark:
            raise ValueError("EngineDriver needs an Engine with auto_watermark=False")
        self.dead_letters = DeadLetterNames(self.engine.output)
        self.engine.output = self.dead_letters
        self._assigned: set[TP] = set()
        self._assigned_at = self.clock()
        self._position: dict[TP, int] = {}
        self._seen_before: dict[TP, int] = {}  # checkpoint positions (restart)
        # per partition: its corroborated frontier (one far-ahead record cannot move it)
        self._fronts: dict[TP, Frontier] = {}
        self._last_msg: dict[TP, float] = {}
        self._finished: set[TP] = set()
        self._open_offsets: dict[TP, dict[int, int]] = {}  # tp → tick index → first offset
        self._closed_at_restore = -(2**62)
        self.closed = False
        self.idle = False  # every unfinished partition idle at the last advance()

    # -- partitions ---------------------------------------------------------------------
    def assign(self, partitions: Iterable[TP]) -> None:
        self._assigned = set(partitions)
        self._assigned_at = self.clock()

    def start_offset(self, tp: TP) -> int | None:
        """Where to read ``tp`` from (None: from the beginning of the topic)."""
        return self._position.get(tp)

    # -- input --------------------------------------------------------------------------
    def process(self, messages: Iterable[Message]) -> None:
        """Push a batch; call :meth:`advance` afterwards."""
        now = self.clock()
        engine = self.engine
        tick_ms = engine.tick_ms
        for m in messages:
            tp = (m.topic, m.partition)
            if m.offset < self._position.get(tp, 0):
                continue  # delivered twice in this session (after a rebalance)
            self._position[tp] = m.offset + 1
            self._last_msg[tp] = now
            self.stats.messages += 1
            if is_end_of_stream(m):
                self._finished.add(tp)
                self.stats.end_markers += 1
                continue
            topic = self.inputs[m.topic]
            location = f"{m.topic}/{m.partition}@{m.offset}"
            seen = m.offset < self._seen_before.get(tp, -1)
            raw = m.value or b""
            result = decode(topic, raw) if raw else Rejected(topic, "", f"{topic}: empty message")
            if isinstance(result, Rejected):
                if not seen:
                    engine.reject(result, source=m.topic, location=location)
                continue
            ts: int = result.ts  # type: ignore[assignment]  # epoch ms after decoding
            if seen:
                if ts < self._closed_at_restore or self.closed:
                    self.stats.skipped += 1
                    continue
                self.stats.replayed += 1
            if self.closed:
                self.stats.after_close += 1
                engine.reject(
                    Rejected(
                        topic,
                        raw.decode("utf-8", "replace"),
                        f"{topic}: arrived after the end-of-stream marker",
                    ),
                    source=m.topic,
                    location=location,
                )
                continue
            open_tick = ts >= engine.closed_until_ms
            if ts <= engine.future_limit_ms:
                self._front(tp).observe(ts)
            s = engine.stats
            dropped = _dropped(s, topic)
            if seen:  # a duplicate or rejection was counted (and sent) before the restart
                counted = (dict(s.duplicates), dict(s.late), dict(s.rejected), dict(s.conflicting))
                self.dead_letters.muted = True
                try:
                    engine.push(topic, result, source=m.topic, location=location, raw=raw)
                finally:
                    self.dead_letters.muted = False
                kept = _dropped(s, topic) == dropped
                s.duplicates, s.late, s.rejected, s.conflicting = counted
            else:
                engine.push(topic, result, source=m.topic, location=location, raw=raw)
                kept = _dropped(s, topic) == dropped
            if open_tick and kept:  # a restart must read it again
                self._open_offsets.setdefault(tp, {}).setdefault(ts // tick_ms, m.offset)

    def advance(self, lagging: Iterable[TP] = ()) -> None:
        """Move the watermark (and close the engine once every partition has ended)."""
        if self.closed or not self._assigned:
            return
        if self._finished >= self._assigned:
            self.engine.close()
            self.closed = True
            return
        now = self.clock()
        idle_s = self.idle_ms / 1000
        lag = set(lagging)
        holding = [
            tp
            for tp in self._assigned - self._finished
            if tp in lag or now - self._last_msg.get(tp, self._assigned_at) < idle_s
        ]
        self.idle = not holding
        if not holding:
            return  # everything idle: keep open ticks open until data (or the end) arrives
        fronts = [self._fronts[tp].value if tp in self._fronts else None for tp in holding]
        if any(f is None for f in fronts):
            return  # a partition has not established its event time yet
        self.engine.advance_to(min(f for f in fronts if f is not None) - self.engine.lateness_ms)

    def _front(self, tp: TP) -> Frontier:
        front = self._fronts.get(tp)
        if front is None:
            front = self._fronts[tp] = Frontier(self.engine.ingest_unit.guard_ms)
        return front

    # -- checkpoints --------------------------------------------------------------------
    def replay_from(self) -> dict[TP, int]:
        """Per partition: the offset from which a restart must read (and may commit)."""
        if self.closed:
            return dict(self._position)
        closed_idx = self.engine.closed_until_ms // self.engine.tick_ms
        out = {}
        for tp, pos in self._position.items():
            opened = self._open_offsets.get(tp, {})
            for idx in [i for i in opened if i < closed_idx]:
                del opened[idx]
            out[tp] = min(opened.values(), default=pos)
        return out

    def checkpoint(self) -> Checkpoint:
        start = self.replay_from()
        return Checkpoint(
            engine=self.engine.snapshot(pending=False),
            position={
                _tp_key(tp): max(o, self._seen_before.get(tp, 0))
                for tp, o in self._position.items()
            },
            replay_from={_tp_key(tp): o for tp, o in start.items()},
            part_max={
                _tp_key(tp): f.value for tp, f in self._fronts.items() if f.value is not None
            },
            finished=sorted(_tp_key(tp) for tp in self._finished),
            closed=self.closed,
            saved_at_ms=int(time.time() * 1000),
            dead_letters=dict(self.dead_letters.counts),
        )

    def restore(self, cp: Checkpoint) -> None:
        """Resume from ``cp``: read each partition again from its ``replay_from``.

        A partition with events to re-read starts without a maximum event time, as it did
        originally, so the watermark cannot pass those events before they are pushed again.
        """
        self.engine.restore(cp.engine)
        self._closed_at_restore = self.engine.closed_until_ms
        self._seen_before = {_key_tp(k): o for k, o in cp.position.items()}
        self._position = {_key_tp(k): o for k, o in cp.replay_from.items()}
        self._fronts = {}
        for k, t in cp.part_max.items():
            if cp.replay_from.get(k) == cp.position.get(k):
                self._front(_key_tp(k)).value = t
        self._finished = {_key_tp(k) for k in cp.finished}
        self._open_offsets = {}
        self.closed = cp.closed
        self.dead_letters.counts = dict(cp.dead_letters)
