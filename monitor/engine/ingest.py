"""Stage one of the engine: one unit of the stream → closed event-time ticks.

A *unit* is the whole stream (replay, one worker) or the events of one user partition (a
Kafka partition pair, a replay worker's share).  :class:`Ingest` takes validated events in
arrival order and hands out *closed ticks* — every accepted, deduplicated, pseudonymised
event with ``start ≤ ts < end`` — in increasing order.  It keeps no detector state: what it
holds is the events of open ticks, the keys seen in the window and its event-time frontier.

Semantics (contract §1; issue "the live path under attack"):

* **Duplicates over the whole window.**  A record whose (platform, topic, event_id) was
  accepted before is a duplicate when its content (every contract field) is the same, and a
  *conflicting duplicate* when it differs.  Keys of open ticks are held with their events;
  keys of closed ticks in a :class:`KeyLog` (16-byte digest → 8-byte content digest, sorted
  numpy runs: 24 bytes per event, kept for ``key_retention_ms`` of event time, by default
  the longest baseline + window of the configuration).  A re-send hours later is therefore
  a duplicate, not a second exposure and not a "late" record.
* **Conflicting duplicates are never resolved by arrival order** while the first copy's
  tick is open: every copy becomes a dead letter (``conflicting duplicate …``) and none is
  counted.  A differing copy that arrives after the first copy's tick closed cannot uncount
  it: it is dead-lettered and counted in ``stats.conflicting`` (and reported by
  ``log_integrity``).  Replay of an archive (:mod:`streams.staging`) sees every copy first
  and counts none.
* **A frontier one record cannot move.**  The unit's event-time frontier ``F`` (the newest
  corroborated event time) advances with every record no more than ``guard_ms`` ahead of it.
  A record further ahead is accepted into its tick but *held*: it moves ``F`` only once
  ``corroborate`` held records fall within ``guard_ms`` of one another (the stream really
  moved on, e.g. after a quiet night).  A lone far-ahead timestamp therefore never closes
  the ticks of on-time records; ``stats.held`` counts held records and
  ``stats.uncorroborated`` those still alone when the stream ends.
* **Lateness.**  Ticks with ``end ≤ F − lateness`` (or an external watermark) are closed; an
  event for a closed tick is ``late`` (a dead letter), unless it is a duplicate.
* **Privacy.**  Users are pseudonymised before anything is buffered.

Memory: events of open ticks (rate × (lateness + tick)), their keys, 24 bytes per event of
the key retention, and a few held timestamps.
"""

from __future__ import annotations

import bisect
import hashlib
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any, Final

import msgspec
import numpy as np

from monitor.core.contract import Event, Exposure, Ranking
from monitor.core.privacy import Pseudonymiser

__all__ = ["ClosedTick", "Frontier", "Ingest", "IngestState", "KeyLog", "StreamStats"]

_ORDER = attrgetter("ts", "platform", "event_id")
_ENCODE = msgspec.json.Encoder().encode
_NEVER: Final = -(2**62)
_CONFLICTED: Final = 0  # content digest of a key whose copies disagreed


def _topics() -> dict[str, int]:
    return {"exposure": 0, "ranking": 0}


def _inc(counts: dict[str, int], topic: str, n: int = 1) -> None:
    """Add to a per-topic counter (``panel`` appears only once panel records do)."""
    counts[topic] = counts.get(topic, 0) + n


@dataclass
class StreamStats:
    """Counters per topic; ``accepted`` = distinct events that reached a tick."""

    accepted: dict[str, int] = field(default_factory=_topics)
    duplicates: dict[str, int] = field(default_factory=_topics)
    late: dict[str, int] = field(default_factory=_topics)
    rejected: dict[str, int] = field(default_factory=_topics)
    # every copy of an event_id whose copies differ in content (none of them is counted while
    # the first copy's tick is open)
    conflicting: dict[str, int] = field(default_factory=_topics)
    held: int = 0  # records far ahead of the frontier, held until corroborated
    uncorroborated: int = 0  # held records never corroborated (at the end of the stream)
    out_of_order: int = 0
    platforms: dict[str, int] = field(default_factory=dict)  # accepted events per platform
    ticks: int = 0
    first_ts: int | None = None
    last_ts: int | None = None

    @property
    def records(self) -> int:
        return sum(
            sum(d.values())
            for d in (self.accepted, self.duplicates, self.late, self.rejected, self.conflicting)
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "late": self.late,
            "rejected": self.rejected,
            "conflicting": self.conflicting,
            "held": self.held,
            "uncorroborated": self.uncorroborated,
            "out_of_order": self.out_of_order,
            "platforms": self.platforms,
            "ticks": self.ticks,
            "first_ts": self.first_ts,
            "last_ts": self.last_ts,
        }

    def add(self, other: StreamStats) -> None:
        """Fold ``other`` (another unit's counters) into these."""
        for name in ("accepted", "duplicates", "late", "rejected", "conflicting"):
            mine, theirs = getattr(self, name), getattr(other, name)
            for k, v in theirs.items():
                mine[k] = mine.get(k, 0) + v
        for k, v in other.platforms.items():
            self.platforms[k] = self.platforms.get(k, 0) + v
        self.held += other.held
        self.uncorroborated += other.uncorroborated
        self.out_of_order += other.out_of_order


@dataclass(frozen=True, slots=True)
class ClosedTick:
    """Every accepted event of one tick, in canonical order ``(ts, platform, event_id)``.

    ``panel``: exposure records observed on panellists' devices (contract v1.1 §5), never
    mixed with the platform's own exposures.
    """

    index: int
    exposures: list[Exposure]
    rankings: list[Ranking]
    panel: list[Exposure] = field(default_factory=list)


def key_digest(platform: str, topic: str, event_id: str) -> tuple[int, int]:
    """128-bit digest of an idempotency key as two unsigned 64-bit halves."""
    d = hashlib.blake2b(
        "\x1f".join((platform, topic, event_id)).encode("utf-8", "replace"), digest_size=16
    ).digest()
    return int.from_bytes(d[:8], "little"), int.from_bytes(d[8:], "little")


def content_digest(event: Event) -> int:
    """32-bit CRC of an event's contract fields (canonical encoding), never 0: tells a
    re-sent copy from a conflicting one (a differing copy taken for an identical one has
    probability 2⁻³²)."""
    return zlib.crc32(_ENCODE(event)) or 1


class KeyLog:
    """Keys of closed ticks: 128-bit key digest → 64-bit content digest, exact.

    Sorted numpy runs, merged like a log-structured merge tree (a new run per closed tick;
    two runs of similar size are merged), so a lookup is a binary search in O(log n) runs and
    memory is 24 bytes per key.  ``forget(before)`` drops runs whose newest tick is older.
    The collision probability of 128-bit digests over 10¹² keys is below 10⁻¹⁴.
    """

    _DTYPE: Final = np.dtype([("hi", "<u8"), ("lo", "<u8"), ("content", "<u8")])

    def __init__(self) -> None:
        self.runs: list[tuple[np.ndarray, int]] = []  # (sorted array, newest tick index)

    def __len__(self) -> int:
        return sum(len(r) for r, _ in self.runs)

    def add(self, keys: list[tuple[int, int, int]], tick: int) -> None:
        if not keys:
            return
        run = np.array(keys, dtype=self._DTYPE)
        run.sort(order=("hi", "lo"))
        self.runs.append((run, tick))
        while len(self.runs) > 1 and len(self.runs[-2][0]) <= 2 * len(self.runs[-1][0]):
            (a, ta), (b, tb) = self.runs[-2], self.runs[-1]
            merged = np.concatenate([a, b])
            merged.sort(order=("hi", "lo"), kind="stable")
            self.runs[-2:] = [(merged, max(ta, tb))]

    def lookup(self, his: np.ndarray, los: np.ndarray) -> np.ndarray:
        """Content digests of many keys at once (0 where a key is absent)."""
        out = np.zeros(len(his), dtype="<u8")
        todo = np.ones(len(his), dtype=bool)
        for run, _ in reversed(self.runs):
            if not todo.any():
                break
            h = run["hi"]
            i = np.searchsorted(h, his)
            i = np.minimum(i, len(run) - 1)
            hit = todo & (h[i] == his) & (run["lo"][i] == los)
            out[hit] = run["content"][i[hit]]
            todo &= ~hit
            # a 64-bit half shared by two keys in a run (probability ~n²/2⁶⁵): scalar check
            for j in np.flatnonzero(todo & (h[i] == his)).tolist():
                found = self.get(int(his[j]), int(los[j]))
                if found is not None:
                    out[j], todo[j] = found, False
        return out

    def get(self, hi: int, lo: int) -> int | None:
        """The content digest stored for a key, or None."""
        for run, _ in reversed(self.runs):
            his = run["hi"]
            i = int(np.searchsorted(his, hi))
            while i < len(run) and int(his[i]) == hi:
                if int(run["lo"][i]) == lo:
                    return int(run["content"][i])
                i += 1
        return None

    def forget(self, before_tick: int) -> None:
        self.runs = [(r, t) for r, t in self.runs if t >= before_tick]

    def to_bytes(self) -> list[tuple[bytes, int]]:
        return [(r.tobytes(), t) for r, t in self.runs]

    @classmethod
    def from_bytes(cls, runs: list[tuple[bytes, int]]) -> KeyLog:
        log = cls()
        log.runs = [(np.frombuffer(b, dtype=cls._DTYPE).copy(), t) for b, t in runs]
        return log


@dataclass(slots=True)
class _Open:
    """One open tick: its events by key (so a conflicting copy can take its twin out)."""

    events: dict[tuple[str, str, str], tuple[Event, str, str]] = field(default_factory=dict)
    conflicted: set[tuple[str, str, str]] = field(default_factory=set)


class Frontier:
    """The newest *corroborated* event time of a stream (module docstring).

    ``observe(ts)`` moves the frontier to ``ts`` when ``ts ≤ frontier + guard``; a time
    further ahead is *held* and moves it only once ``corroborate`` held times lie within
    ``guard`` of one another (then to the newest of them).  At the start there is nothing
    to compare with, so the first ``corroborate`` records establish it.
    """

    def __init__(self, guard_ms: int, corroborate: int = 3) -> None:
        self.guard_ms = guard_ms
        self.corroborate = corroborate
        self.value: int | None = None
        self.ahead: list[int] = []  # held times, sorted

    def observe(self, ts: int) -> tuple[int, int]:
        """``(1 if ts was held else 0, 1 if ts is behind the frontier else 0)``."""
        f = self.value
        if f is not None and ts <= f + self.guard_ms:
            if ts > f:
                self.value = ts
                return 0, 0
            return 0, int(ts < f)
        bisect.insort(self.ahead, ts)
        self._corroborate()
        return 1, 0

    def _corroborate(self) -> None:
        k, ahead, guard = self.corroborate, self.ahead, self.guard_ms
        for i in range(len(ahead) - k + 1):
            if ahead[i + k - 1] - ahead[i] <= guard:
                end = bisect.bisect_right(ahead, ahead[i] + guard)
                self.value = max(
                    self.value if self.value is not None else ahead[end - 1], ahead[end - 1]
                )
                del ahead[:end]
                while ahead and ahead[0] <= self.value + guard:
                    self.value = max(self.value, ahead.pop(0))
                return

    def release(self) -> int:
        """End of stream: forget the held times; returns how many were never corroborated."""
        n = len(self.ahead)
        self.ahead = []
        return n


class _OpenEvent(msgspec.Struct, array_like=True):
    topic: str
    event: bytes  # canonical JSON (users already pseudonymised)
    source: str
    location: str


class IngestState(msgspec.Struct, kw_only=True):
    """What a unit needs to resume (msgpack; no code, no pickle)."""

    frontier: int | None
    ahead: list[int]
    closed_idx: int
    future_limit_ms: int
    keys: list[tuple[bytes, int]]
    open: dict[int, list[_OpenEvent]] = {}
    conflicted: dict[int, list[tuple[str, str, str]]] = {}


_DECODE_EVENT: Final[dict[str, msgspec.json.Decoder[Any]]] = {
    "exposure": msgspec.json.Decoder(Exposure),
    "ranking": msgspec.json.Decoder(Ranking),
    "panel": msgspec.json.Decoder(Exposure),
}

DeadLetterFn = Callable[[str, str, str, str, str, str], None]
# (topic, counter, raw text, reason, source, location)


class Ingest:
    """One unit of the stream: dedup, frontier, lateness, ticks (module docstring).

    ``dead(topic, counter, raw, reason, source, location)`` receives every record that does
    not reach a tick; ``counter`` is the :class:`StreamStats` field it was counted in.
    """

    def __init__(
        self,
        *,
        tick_ms: int,
        lateness_ms: int,
        pseudonymiser: Pseudonymiser,
        dead: DeadLetterFn,
        future_limit_ms: int,
        guard_ms: int = 3_600_000,
        corroborate: int = 3,
        key_retention_ms: int = 7 * 86_400_000,
        stats: StreamStats | None = None,
    ) -> None:
        if corroborate < 1:
            raise ValueError(f"corroborate must be >= 1, got {corroborate}")
        self.tick_ms = tick_ms
        self.lateness_ms = lateness_ms
        self.pseudonymiser = pseudonymiser
        self.dead = dead
        self.future_limit_ms = future_limit_ms
        self.guard_ms = max(guard_ms, lateness_ms + tick_ms)
        self.corroborate = corroborate
        self.key_retention_ticks = max(1, key_retention_ms // tick_ms)
        self.stats = stats if stats is not None else StreamStats()
        self.open: dict[int, _Open] = {}
        self.open_keys: dict[tuple[str, str, str], int] = {}  # key → its open tick
        self.keys = KeyLog()
        self.front = Frontier(self.guard_ms, corroborate)
        self.closed_idx = _NEVER  # ticks with index < this are closed

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
        ts: int = event.ts  # type: ignore[assignment]
        if ts > self.future_limit_ms:
            self._dead(
                topic,
                "rejected",
                event,
                raw,
                f"{topic}.ts: more than a day after the current wall-clock time",
                source,
                location,
            )
            return
        key = (event.platform, topic, event.event_id)
        idx = ts // self.tick_ms
        event.user = self.pseudonymiser(event.user)
        where = self.open_keys.get(key)
        if where is not None:
            self._again_open(topic, key, where, event, raw, source, location)
            return
        if idx < self.closed_idx:
            # its tick is closed: a re-send of a counted event, or late
            stored = self.keys.get(*key_digest(*key))
            if stored is None:
                self._dead(
                    topic,
                    "late",
                    event,
                    raw,
                    f"{topic}.ts: arrived after its tick closed (later than the "
                    f"lateness allowance of {self.lateness_ms // 60_000} min)",
                    source,
                    location,
                )
            else:
                self._seen_closed(topic, event, stored, raw, source, location)
            return
        bucket = self.open.get(idx)
        if bucket is None:
            bucket = self.open[idx] = _Open()
        bucket.events[key] = (event, source, location)
        self.open_keys[key] = idx
        _inc(self.stats.accepted, topic)
        platforms = self.stats.platforms
        platforms[event.platform] = platforms.get(event.platform, 0) + 1
        self._observe_time(ts)

    def _seen_closed(
        self,
        topic: str,
        event: Event,
        stored: int,
        raw: bytes | str | None,
        source: str,
        location: str,
    ) -> None:
        """A copy of a key already settled in a closed tick (``stored``: its content)."""
        if stored == content_digest(event):
            _inc(self.stats.duplicates, topic)
        elif stored == _CONFLICTED:
            self._dead(
                topic, "conflicting", event, raw, _conflict_reason(topic, event), source, location
            )
        else:
            self._dead(
                topic,
                "conflicting",
                event,
                raw,
                f"{topic}.event_id: conflicting duplicate: this copy of "
                f"{event.event_id!r} differs from one already counted in a closed tick",
                source,
                location,
            )

    def _again_open(
        self,
        topic: str,
        key: tuple[str, str, str],
        idx: int,
        event: Event,
        raw: bytes | str | None,
        source: str,
        location: str,
    ) -> None:
        """A second copy of a key whose tick is still open."""
        bucket = self.open[idx]
        if key in bucket.conflicted:
            self._dead(
                topic, "conflicting", event, raw, _conflict_reason(topic, event), source, location
            )
            return
        first, first_source, first_location = bucket.events[key]
        if first == event:  # msgspec structs compare field by field
            _inc(self.stats.duplicates, topic)
            return
        # the first copy leaves its tick: neither is counted, whichever came first
        del bucket.events[key]
        bucket.conflicted.add(key)
        _inc(self.stats.accepted, topic, -1)
        self.stats.platforms[first.platform] -= 1
        self._dead(
            topic,
            "conflicting",
            first,
            None,
            _conflict_reason(topic, first),
            first_source,
            first_location,
        )
        self._dead(
            topic, "conflicting", event, raw, _conflict_reason(topic, event), source, location
        )

    def _dead(
        self,
        topic: str,
        counter: str,
        event: Event,
        raw: bytes | str | None,
        reason: str,
        source: str,
        location: str,
    ) -> None:
        text = raw if raw is not None else _ENCODE(event)
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        _inc(getattr(self.stats, counter), topic)
        self.dead(topic, counter, text, reason, source, location)

    # -- time -----------------------------------------------------------------------------
    def _observe_time(self, ts: int) -> None:
        held, behind = self.front.observe(ts)
        self.stats.held += held
        self.stats.out_of_order += behind

    @property
    def frontier(self) -> int | None:
        return self.front.value

    @property
    def watermark(self) -> int | None:
        """``F − lateness``: ticks ending at or before it close."""
        return None if self.frontier is None else self.frontier - self.lateness_ms

    def advance(self) -> list[ClosedTick]:
        """Close the ticks the frontier has passed."""
        wm = self.watermark
        return [] if wm is None else self.advance_to(wm)

    def advance_to(self, watermark_ms: int) -> list[ClosedTick]:
        """Close every tick with ``end ≤ watermark_ms`` (an external watermark)."""
        new_closed = watermark_ms // self.tick_ms
        if new_closed <= self.closed_idx:
            return []
        out = [self._close(i) for i in sorted(i for i in self.open if i < new_closed)]
        self.closed_idx = new_closed
        self.keys.forget(new_closed - self.key_retention_ticks)
        return out

    def flush(self) -> list[ClosedTick]:
        """End of the stream: close every open tick (held records included)."""
        self.stats.uncorroborated += self.front.release()
        out = [self._close(i) for i in sorted(self.open)]
        if out:
            self.closed_idx = max(self.closed_idx, out[-1].index + 1)
        return out

    def _close(self, idx: int) -> ClosedTick:
        """Settle one tick: its keys against the key log (re-sends of events counted in an
        earlier tick leave it), then its events in canonical order."""
        bucket = self.open.pop(idx)
        keys = list(bucket.events)
        digests = [key_digest(*k) for k in keys]
        his = np.fromiter((d[0] for d in digests), dtype="<u8", count=len(digests))
        los = np.fromiter((d[1] for d in digests), dtype="<u8", count=len(digests))
        stored = self.keys.lookup(his, los) if self.keys.runs else np.zeros(0, "<u8")
        lists: dict[str, list[Any]] = {"exposure": [], "ranking": [], "panel": []}
        log: list[tuple[int, int, int]] = []
        for j, key in enumerate(keys):
            event, source, location = bucket.events[key]
            del self.open_keys[key]
            if len(stored) and stored[j]:
                topic = key[1]
                _inc(self.stats.accepted, topic, -1)
                self.stats.platforms[event.platform] -= 1
                self._seen_closed(topic, event, int(stored[j]), None, source, location)
                continue
            lists[key[1]].append(event)
            log.append((*digests[j], content_digest(event)))
        for key in bucket.conflicted:
            self.open_keys.pop(key, None)
            log.append((*key_digest(*key), _CONFLICTED))
        self.keys.add(log, idx)
        for events in lists.values():
            events.sort(key=_ORDER)
        return ClosedTick(idx, lists["exposure"], lists["ranking"], lists["panel"])

    # -- state --------------------------------------------------------------------------
    def state(self, *, pending: bool = True) -> IngestState:
        """The unit's state; with ``pending=False`` without the open ticks (a driver that
        can read their events again from its source)."""
        st = IngestState(
            frontier=self.front.value,
            ahead=list(self.front.ahead),
            closed_idx=self.closed_idx,
            future_limit_ms=self.future_limit_ms,
            keys=self.keys.to_bytes(),
        )
        if pending:
            st.open = {
                idx: [
                    _OpenEvent(k[1], _ENCODE(ev), src, loc)
                    for k, (ev, src, loc) in b.events.items()
                ]
                for idx, b in self.open.items()
            }
            st.conflicted = {
                idx: sorted(b.conflicted) for idx, b in self.open.items() if b.conflicted
            }
        return st

    def load_state(self, st: IngestState) -> None:
        self.front.value, self.front.ahead = st.frontier, list(st.ahead)
        self.closed_idx, self.future_limit_ms = st.closed_idx, st.future_limit_ms
        self.keys = KeyLog.from_bytes(st.keys)
        self.open, self.open_keys = {}, {}
        for idx in sorted(set(st.open) | set(st.conflicted)):
            bucket = self.open[idx] = _Open()
            for oe in st.open.get(idx, []):
                event = _DECODE_EVENT[oe.topic].decode(oe.event)
                key = (event.platform, oe.topic, event.event_id)
                bucket.events[key] = (event, oe.source, oe.location)
                self.open_keys[key] = idx
            for key in st.conflicted.get(idx, []):
                bucket.conflicted.add(tuple(key))  # type: ignore[arg-type]
                self.open_keys[tuple(key)] = idx  # type: ignore[index]

    @property
    def closed_until_ms(self) -> int:
        return max(self.closed_idx * self.tick_ms, _NEVER)

    @property
    def pending_events(self) -> int:
        return sum(len(b.events) for b in self.open.values())


def _conflict_reason(topic: str, event: Event) -> str:
    return (
        f"{topic}.event_id: conflicting duplicate: copies of {event.event_id!r} differ; "
        "none is counted"
    )
