"""Two stages in memory: the stream split by user into units, each closing its own ticks,
partials merged by monitor.merge — the same results as one engine over the whole stream,
whatever the interleaving of the units' messages, with redelivered and idle units."""

from __future__ import annotations

import random
import zlib
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest

from monitor.analysis import Analysis
from monitor.config import parse_config
from monitor.contract import Rejected, decode_obj
from monitor.engine import Engine
from monitor.ingest import Ingest, StreamStats
from monitor.merge import Merger
from monitor.partials import (
    TickPartial,
    UnitCounts,
    UnitProgress,
    decode,
    encode,
    split_by_platform,
)
from monitor.privacy import Pseudonymiser
from streams.files import merge_by_time
from streams.memory import ListOutput, records_from_dicts
from streams.simulator import scenario, simulate
from tests.factories import FAR_FUTURE_MS

KEY = Pseudonymiser(b"k" * 32)


@pytest.fixture(scope="module")
def stream() -> dict[str, Any]:
    """The demo election (duplicates, malformed and late-within-allowance records) as
    ``(topic, record)`` in arrival order, both topics interleaved by event time."""
    sim = simulate(scenario("demo", seed=2, scale=0.25))
    lists = {"exposure": sim.exposures, "ranking": sim.rankings}
    merged = merge_by_time([records_from_dicts(t, lists[t], source=t) for t in lists])
    records = [(r.topic, lists[r.topic][int(r.location.rsplit(":", 1)[1]) - 1])
               for r in merged]
    return {"config": parse_config(sim.config), "records": records}


def unit_of(record: dict, units: int) -> int:
    return zlib.crc32(str(record.get("user", "")).encode()) % units


def single(config: Any, records: list[tuple[str, dict]]) -> tuple[ListOutput, StreamStats]:
    out = ListOutput()
    eng = Engine(config, out, now_ms=lambda: FAR_FUTURE_MS, pseudonymiser=KEY)
    for topic, rec in records:
        result = decode_obj(topic, dict(rec))
        if isinstance(result, Rejected):
            eng.reject(result, source="sim")
        else:
            eng.push(topic, result, source="sim")
    return out, eng.close()


def unit_messages(config: Any, records: list[tuple[str, dict]], unit: int, units: int,
                  dead: ListOutput) -> Iterator[bytes]:
    """Stage one of one unit: its records in arrival order → encoded messages."""
    stats = StreamStats()
    ing = Ingest(tick_ms=config.detection.tick_ms, lateness_ms=config.detection.lateness_ms,
                 pseudonymiser=KEY, future_limit_ms=FAR_FUTURE_MS + 86_400_000,
                 dead=lambda *a: None, stats=stats)

    def progress(finished: bool = False) -> bytes:
        c = UnitCounts(**{k: dict(getattr(stats, k)) for k in
                          ("accepted", "duplicates", "late", "rejected", "conflicting")})
        return encode(UnitProgress(unit=unit, units=units, closed_until=ing.closed_idx,
                                   finished=finished, counts=c))

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


def two_stages(config: Any, records: list[tuple[str, dict]], units: int, seed: int,
               redeliver: float = 0.0) -> tuple[ListOutput, Merger]:
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


def summary(out: ListOutput) -> dict[str, Any]:
    latest = out.latest_findings
    return {
        "findings": {fid: (f.kind, f.subject, round(f.effect or 0, 9), f.p_value,
                           f.n_exposures, f.event_time) for fid, f in latest.items()},
        "measurements": {k: (m.ratio, m.n_ranked, m.n_holdout, m.users_ranked,
                             m.users_holdout) for k, m in out.latest_measurements.items()},
        "detectability": sorted(((d.detector, d.platform, d.window_id, d.subject),
                                 (d.mde_up, d.mde_down, d.flagged))
                                for d in out.detectability_rows),
    }


@pytest.mark.parametrize(("units", "seed", "redeliver"), [(1, 0, 0.0), (3, 1, 0.0),
                                                          (4, 2, 0.3)])
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
