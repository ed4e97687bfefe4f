"""Two stages in memory: the stream split by user into units, each closing its own ticks,
partials merged by monitor.engine.merge — the same results as one engine over the whole stream,
whatever the interleaving of the units' messages, with redelivered and idle units."""

from __future__ import annotations

import random
import zlib
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest

from monitor.core.contract import Rejected, decode_obj
from monitor.engine.analysis import Analysis
from monitor.engine.ingest import Ingest, StreamStats
from monitor.engine.merge import Merger
from monitor.engine.partials import (
    TickPartial,
    UnitCounts,
    UnitProgress,
    decode,
    encode,
    split_by_platform,
)
from streams.memory import ListOutput
from tests.factories import FAR_FUTURE_MS
from tests.monitor.stream_support import KEY, single, summary


def unit_of(record: dict, units: int) -> int:
    return zlib.crc32(str(record.get("user", "")).encode()) % units


def unit_messages(
    config: Any, records: list[tuple[str, dict]], unit: int, units: int, dead: ListOutput
) -> Iterator[bytes]:
    """Stage one of one unit: its records in arrival order → encoded messages."""
    stats = StreamStats()
    ing = Ingest(
        tick_ms=config.detection.tick_ms,
        lateness_ms=config.detection.lateness_ms,
        pseudonymiser=KEY,
        future_limit_ms=FAR_FUTURE_MS + 86_400_000,
        dead=lambda *a: None,
        stats=stats,
    )

    def progress(finished: bool = False) -> bytes:
        c = UnitCounts(
            **{
                k: dict(getattr(stats, k))
                for k in ("accepted", "duplicates", "late", "rejected", "conflicting")
            }
        )
        return encode(
            UnitProgress(
                unit=unit, units=units, closed_until=ing.closed_idx, finished=finished, counts=c
            )
        )

    for topic, rec in records:
        if unit_of(rec, units) != unit:
            continue
        result = decode_obj(topic, dict(rec))
        if isinstance(result, Rejected):
            stats.rejected[topic] += 1
            continue
        ing.push(topic, result, source="sim")
        closed = ing.advance()
        for tick in closed:
            for part in split_by_platform(unit, tick):
                yield encode(part)
        if closed:
            yield progress()
    for tick in ing.flush():
        for part in split_by_platform(unit, tick):
            yield encode(part)
    yield progress(finished=True)


def two_stages(
    config: Any, records: list[tuple[str, dict]], units: int, seed: int, redeliver: float = 0.0
) -> tuple[ListOutput, Merger]:
    out = ListOutput()
    queues = [list(unit_messages(config, records, u, units, out)) for u in range(units)]
    merger = Merger(lambda _platform: Analysis(config, out))
    rng = random.Random(seed)
    while any(queues):
        q = rng.choice([q for q in queues if q])
        msg = q.pop(0)
        merger.add(decode(msg))
        if redeliver and rng.random() < redeliver:
            merger.add(decode(msg))  # the same message again (a restarted worker)
    assert merger.finished
    merger.close()
    return out, merger


@pytest.mark.parametrize(("units", "seed", "redeliver"), [(1, 0, 0.0), (3, 1, 0.0), (4, 2, 0.3)])
def test_two_stages_equal_one_engine(stream, units: int, seed: int, redeliver: float) -> None:
    one, stats = single(stream["config"], stream["records"])
    two, merger = two_stages(stream["config"], stream["records"], units, seed, redeliver)
    assert summary(one)["findings"], "the election must raise findings to compare"
    assert summary(two) == summary(one)
    assert merger.counts().accepted == stats.accepted


def test_messages_are_data_only() -> None:
    with pytest.raises((msgspec.DecodeError, msgspec.ValidationError)):
        decode(b"\x80\x04\x95")  # a pickle header is not a message
    p = TickPartial(platform="chirp", unit=1, index=5)
    assert decode(encode(p)) == p


def test_idle_unit_stops_holding_and_its_late_partial_is_reported() -> None:
    late: list[TickPartial] = []
    ran: list[int] = []

    class Recorder:
        def run(self, closed: Any) -> None:
            ran.append(closed.index)

        def finish(self) -> None:
            return None

    m = Merger(lambda _p: Recorder(), late=late.append)  # type: ignore[arg-type, return-value]
    m.add(UnitProgress(unit=0, units=2, closed_until=0))
    m.add(TickPartial(platform="chirp", unit=0, index=3))
    m.add(UnitProgress(unit=0, units=2, closed_until=5))
    assert ran == []  # unit 1 never heard from
    m.add(UnitProgress(unit=1, units=2, closed_until=0, idle=True))
    assert ran == [3]
    m.add(TickPartial(platform="chirp", unit=1, index=2))  # unit 1 wakes up, too late
    assert [p.index for p in late] == [2]
    m.add(UnitProgress(unit=0, units=2, closed_until=9, finished=True))
    m.add(UnitProgress(unit=1, units=2, closed_until=9, finished=True))
    assert m.finished
