"""Stage one with the Kafka driver, offline: each unit (a partition pair) driven by
EngineDriver through a UnitEngine, its partials merged — equal to one engine; a unit killed
and restored from its sealed checkpoint changes nothing; a forged checkpoint is refused."""

from __future__ import annotations

import random
import zlib
from typing import Any

import msgspec
import pytest

from monitor.core.privacy import Pseudonymiser
from monitor.core.sealed import SealError
from monitor.engine.analysis import Analysis
from monitor.engine.merge import Merger
from monitor.engine.partials import decode, encode
from monitor.engine.unit import UnitEngine
from streams.kafka.driver import Checkpoint, EngineDriver, Message
from streams.memory import ListOutput
from tests.factories import FAR_FUTURE_MS
from tests.monitor.stream_support import KEY, single, summary

INPUTS = {"in.exposure": "exposure", "in.ranking": "ranking"}
EOS = (("amplimon-control", b"end-of-stream"),)


def partition_logs(records: list[tuple[str, dict]], parts: int) -> dict[tuple[str, int], list]:
    """The records as Kafka would hold them: keyed by user, one log per partition."""
    logs: dict[tuple[str, int], list] = {
        (f"in.{t}", p): [] for t in INPUTS.values() for p in range(parts)
    }
    for topic, rec in records:
        p = zlib.crc32(str(rec.get("user", "")).encode()) % parts
        log = logs[(f"in.{topic}", p)]
        log.append(Message(f"in.{topic}", p, len(log), msgspec.json.encode(rec)))
    for (t, p), log in logs.items():
        log.append(Message(t, p, len(log), None, EOS))
    return logs


class Unit:
    def __init__(self, config: Any, unit: int, units: int, dead: ListOutput) -> None:
        self.engine = UnitEngine(
            config, dead, unit=unit, units=units, pseudonymiser=KEY, now_ms=lambda: FAR_FUTURE_MS
        )
        self.driver = EngineDriver(self.engine, INPUTS, idle_ms=10**9, clock=lambda: 0.0)
        self.tps = [("in.exposure", unit), ("in.ranking", unit)]
        self.driver.assign(self.tps)

    def step(self, logs: dict, batch: int) -> list[bytes]:
        """Read up to ``batch`` more messages of each partition; the messages it sends."""
        d = self.driver
        for tp in self.tps:
            start = d._position.get(tp, d.start_offset(tp) or 0)
            d.process(logs[tp][start : start + batch])
        d.advance()
        self.engine.report(idle=d.idle)
        return [encode(m) for m in self.engine.drain()]

    def done(self, logs: dict) -> bool:
        return self.driver.closed


def run_two_stage(
    config: Any, records: list, units: int, seed: int, kill: int | None = None
) -> tuple[ListOutput, Merger]:
    out = ListOutput()
    logs = partition_logs(records, units)
    workers = [Unit(config, u, units, out) for u in range(units)]
    merger = Merger(lambda _p: Analysis(config, out))
    rng = random.Random(seed)
    steps = 0
    checkpoint: bytes | None = None
    while not all(w.done(logs) for w in workers):
        w = rng.choice([w for w in workers if not w.done(logs)])
        for msg in w.step(logs, rng.randrange(50, 400)):
            merger.add(decode(msg))
        steps += 1
        if kill is not None and w.engine.unit == kill:
            if steps % 7 == 0:
                checkpoint = w.driver.checkpoint().encode()
            elif steps % 11 == 0 and checkpoint is not None:
                # the worker holding unit `kill` dies: a new one resumes from the checkpoint
                fresh = Unit(config, kill, units, out)
                fresh.driver.restore(Checkpoint.decode(checkpoint))
                workers[kill] = fresh
    assert merger.finished
    merger.close()
    return out, merger


@pytest.mark.parametrize(("units", "kill"), [(2, None), (3, 1)])
def test_units_through_the_driver_equal_one_engine(stream, units: int, kill: int | None) -> None:
    one, stats = single(stream["config"], stream["records"])
    two, merger = run_two_stage(stream["config"], stream["records"], units, seed=units, kill=kill)
    assert summary(two) == summary(one)
    assert merger.counts().accepted == stats.accepted


def test_a_forged_or_foreign_checkpoint_is_refused(stream) -> None:
    u = Unit(stream["config"], 0, 2, ListOutput())
    data = u.engine.snapshot()
    other = UnitEngine(
        stream["config"], ListOutput(), unit=0, units=2, pseudonymiser=Pseudonymiser(b"x" * 32)
    )
    with pytest.raises(SealError, match="HMAC"):
        other.restore(data)
    tampered = data[:-1] + bytes([data[-1] ^ 1])
    with pytest.raises(SealError):
        u.engine.restore(tampered)
    with pytest.raises(SealError, match="not sealed"):
        u.engine.restore(b"\x80\x04\x95pickle")
    wrong_unit = UnitEngine(stream["config"], ListOutput(), unit=1, units=2, pseudonymiser=KEY)
    with pytest.raises(ValueError, match="unit 1 state"):
        wrong_unit.restore(data)


def test_stage_two_rebuilt_from_its_input_gives_the_same_rows(stream) -> None:
    """Stage two (streams.kafka.merge.MergeState) is event-sourced: a process that takes a
    partition reads the partials topic from the beginning.  Killed mid-stream and rebuilt
    that way (twice), the rows it sends are those of one engine."""
    from streams.kafka._config import Topics
    from streams.kafka.merge import MergeState
    from streams.kafka.output import KafkaOutput, decode_row

    config, records = stream["config"], stream["records"]
    one, _ = single(config, records)
    units = 3
    logs = partition_logs(records, units)
    dead = ListOutput()
    workers = [Unit(config, u, units, dead) for u in range(units)]
    topics = Topics()
    partials: list[bytes] = []  # the partials topic (one partition)
    sent: list[tuple[str, bytes, bytes]] = []
    state = MergeState(config, KafkaOutput(topics))
    rng = random.Random(5)
    steps = 0
    while not all(w.driver.closed for w in workers):
        w = rng.choice([w for w in workers if not w.driver.closed])
        for msg in w.step(logs, rng.randrange(50, 400)):
            partials.append(msg)
            state.handle(0, msg)
            sent.extend(state.output.drain())
        steps += 1
        if steps in (15, 40):  # stage two dies; its successor reads the topic again
            state = MergeState(config, KafkaOutput(topics))
            for msg in partials:
                state.handle(0, msg)
            sent.extend(state.output.drain())
    assert state.merger(0).closed
    out = ListOutput()
    tables = {
        topics.findings: "findings",
        topics.measurements: "amplification",
        topics.detectability: "detectability",
        topics.deadletter: "deadletter",
    }
    sinks = {
        "findings": out.findings,
        "amplification": out.measurements,
        "detectability": out.detectability,
        "deadletter": out.deadletters,
    }
    for t, _key, value in sent:
        sinks[tables[t]]([decode_row(tables[t], value)])
    assert summary(out) == summary(one)


@pytest.mark.parametrize("epoch", ["broker-2", None])
def test_stage_two_drops_progress_meant_for_a_replaced_broker(stream, epoch) -> None:
    """A broker restarted empty on the same address: the old worker session's producer,
    closed during the outage, can still deliver its last progress ("units closed until tick
    k") to the new broker.  Stamped with the old broker's cluster id, stage two drops them
    (counted); without the stamp check they make it merge ticks early and turn the re-produced
    stream's partials into 'late' dead letters."""
    from monitor.engine.partials import UnitProgress
    from streams.kafka._config import EPOCH_HEADER, Topics
    from streams.kafka.merge import MergeState
    from streams.kafka.output import KafkaOutput

    config, records = stream["config"], stream["records"]
    units = 3
    stale = [
        encode(UnitProgress(unit=u, units=units, closed_until=10**6, idle=True))
        for u in range(units)
    ]
    old, new = ((EPOCH_HEADER, b"broker-1"),), ((EPOCH_HEADER, b"broker-2"),)
    state = MergeState(config, KafkaOutput(Topics()), epoch=epoch)
    for msg in stale:
        if not state.is_stale(old):
            state.handle(0, msg)
    logs = partition_logs(records, units)
    workers = [Unit(config, u, units, ListOutput()) for u in range(units)]
    late: list[bytes] = []
    while not all(w.driver.closed for w in workers) and not late:
        for w in workers:
            for msg in w.step(logs, 300):
                if not state.is_stale(new):
                    state.handle(0, msg)
        late += [r for t, _k, r in state.output.drain() if t == Topics().deadletter]
    if epoch is None:  # the failure mode the stamp prevents
        assert state.stale == 0 and late
    else:
        assert state.stale == units and not late and state.merger(0).closed
