"""What stage one sends stage two: per-tick partials and each unit's progress (msgpack).

The scaled-out pipeline splits the stream by user into *units* (a Kafka partition pair, a
replay worker's share).  Each unit closes its own ticks (:class:`monitor.engine.ingest.Ingest`) and
sends, per tick and platform, a :class:`TickPartial`, and after every step a
:class:`UnitProgress`: every tick before ``closed_until`` is closed in that unit, so a tick
is complete once every unit's ``closed_until`` has passed it (:mod:`monitor.engine.merge`).

**Payload.**  A partial carries what the detectors need of the unit's share of the tick.
Today that is the tick's events themselves (pseudonymised): merging is concatenation, exact
by construction, and the merged tick equals the tick a single engine would have closed.  The
payload is the seam where per-detector additive aggregates replace raw events (issue "replay
at any order and any size", item 4): the message types, their keys and the merge protocol
stay as they are.

Every message is a tagged msgspec struct, encoded as msgpack — data, never code: a record
written to the partials topic by anyone cannot execute anything when decoded.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from monitor.core.contract import Exposure, Ranking
from monitor.engine.ingest import ClosedTick

__all__ = ["Message", "TickPartial", "UnitProgress", "decode", "encode", "split_by_platform"]


class TickPartial(msgspec.Struct, tag="tick", kw_only=True):
    """One unit's share of one tick on one platform."""

    platform: str
    unit: int
    index: int  # tick index (start = index × tick_ms)
    exposures: list[Exposure] = []
    rankings: list[Ranking] = []
    panel: list[Exposure] = []  # panel observations (contract v1.1 §5)


class UnitCounts(msgspec.Struct, kw_only=True):
    """A unit's ingest counters so far (per topic), for the run's statistics."""

    accepted: dict[str, int] = {}
    duplicates: dict[str, int] = {}
    late: dict[str, int] = {}
    rejected: dict[str, int] = {}
    conflicting: dict[str, int] = {}
    held: int = 0
    uncorroborated: int = 0


class UnitProgress(msgspec.Struct, tag="progress", kw_only=True):
    """Every tick with ``index < closed_until`` is closed in ``unit`` (of ``units``).

    ``finished``: the unit's input has ended (every tick of it is closed).  ``idle``: the
    unit has had no input for a while and is not behind; stage two stops waiting for it (a
    partial it sends later for a tick already merged is late there).
    """

    unit: int
    units: int
    closed_until: int
    finished: bool = False
    idle: bool = False
    counts: UnitCounts | None = None


Message = TickPartial | UnitProgress
_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(Message)


def encode(message: Message) -> bytes:
    return _ENCODER.encode(message)


def decode(data: bytes) -> Message:
    """Raises ``msgspec.DecodeError``/``ValidationError`` on anything that is not one."""
    return _DECODER.decode(data)


def split_by_platform(unit: int, tick: ClosedTick) -> Iterable[TickPartial]:
    """The unit's closed tick as one partial per platform (events keep their order)."""
    parts: dict[str, TickPartial] = {}
    for e in tick.exposures:
        part = parts.get(e.platform)
        if part is None:
            part = parts[e.platform] = TickPartial(platform=e.platform, unit=unit, index=tick.index)
        part.exposures.append(e)
    for r in tick.rankings:
        part = parts.get(r.platform)
        if part is None:
            part = parts[r.platform] = TickPartial(platform=r.platform, unit=unit, index=tick.index)
        part.rankings.append(r)
    for e in tick.panel:
        part = parts.get(e.platform)
        if part is None:
            part = parts[e.platform] = TickPartial(platform=e.platform, unit=unit, index=tick.index)
        part.panel.append(e)
    return [parts[p] for p in sorted(parts)]
