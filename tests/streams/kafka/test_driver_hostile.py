"""Hostile Kafka messages at :class:`EngineDriver` (offline: in-memory messages, no broker):
any value bytes, ``None`` values, any headers (including a forged end-of-stream marker) on
any partition — every message is counted once, every rejection is a dead letter with a
one-line reason, and the driver still closes when every partition has ended."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings

from fuzz.properties import INPUTS, check_driver, check_reason
from fuzz.strategies import kafka_batches
from monitor.core.privacy import Pseudonymiser
from monitor.engine.run import Engine
from streams.kafka.driver import Checkpoint, EngineDriver, Message
from streams.memory import ListOutput
from tests.factories import FAR_FUTURE_MS, T0, config, exposure, ranking, slot


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(kafka_batches(INPUTS))
def test_any_messages_are_counted_once_and_rejections_are_dead_letters(batches: list) -> None:
    check_driver(batches)


def driver() -> tuple[EngineDriver, ListOutput]:
    out = ListOutput()
    # one key for every driver: a checkpoint resumes only under the key it was made with
    engine = Engine(
        config(),
        out,
        auto_watermark=False,
        now_ms=lambda: FAR_FUTURE_MS,
        pseudonymiser=Pseudonymiser(b"k" * 32),
    )
    return EngineDriver(engine, INPUTS, idle_ms=3_600_000, clock=lambda: 0.0), out


def test_named_hostile_values_become_dead_letters() -> None:
    d, out = driver()
    d.assign([("in.exposure", 0), ("in.ranking", 0)])
    values = [
        None,
        b"",
        b"\xff\xfe",
        b"\x00",
        b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
        json.dumps(exposure(user="PLACEHOLDER")).encode().replace(b"PLACEHOLDER", b"\xed\xa0\x80"),
        json.dumps(exposure(ts=10**30)).encode(),
        b"\x00" * 10 + json.dumps(exposure()).encode(),
    ]
    headers = [
        (),
        (("amplimon-control", None),),
        (("\ud800", b"\xff"),),
        (("amplimon-control", b"end-of-stream"),),
    ]  # value set: not an end marker
    d.process(
        [Message("in.exposure", 0, i, v, headers[i % len(headers)]) for i, v in enumerate(values)]
    )
    assert d.engine.stats.rejected["exposure"] == len(values)
    assert [r.reason for r in out.dead][:2] == ["exposure: empty message"] * 2
    for dead in out.dead:
        check_reason(dead.reason, "exposure")
        dead.raw.encode("utf-8")
    assert not d.closed and d.stats.end_markers == 0


@pytest.mark.timeout(60)
def test_slate_of_100000_items_on_kafka_is_rejected() -> None:
    # Memory of this decode is bounded in tests/monitor/core/test_hostile_input.py.
    d, out = driver()
    d.assign([("in.ranking", 0)])
    value = json.dumps(
        ranking([slot(item=f"i{i}", position=i + 1) for i in range(100_000)])
    ).encode()
    d.process([Message("in.ranking", 0, 0, value)])
    assert out.dead[0].reason.startswith("ranking.items: expected array of length <= 10000")


def test_valid_and_hostile_messages_interleaved_then_end_of_stream() -> None:
    d, out = driver()
    tps = [("in.exposure", 0), ("in.ranking", 0)]
    d.assign(tps)
    values = [json.dumps(exposure(ts=T0 + i * 60_000)).encode() for i in range(5)]
    values.insert(2, b"\xff")
    msgs = [Message("in.exposure", 0, i, v) for i, v in enumerate(values)]
    msgs.append(Message("in.ranking", 0, 0, json.dumps(ranking()).encode()))
    d.process(msgs)
    d.advance()
    d.process([Message(t, p, 100, None, (("amplimon-control", b"end-of-stream"),)) for t, p in tps])
    d.advance()
    s = d.engine.stats
    assert d.closed and s.accepted == {"exposure": 5, "ranking": 1}
    assert s.rejected == {"exposure": 1, "ranking": 0} and len(out.dead) == 1


def test_a_record_re_read_after_restarts_is_dead_lettered_once() -> None:
    """A far-future record, an empty message and one from the wrong topic ahead of valid
    events, then three restarts from checkpoints: each is one dead letter (``#1``), and the
    rejected far-future record no longer pins the partition's replay offset (it used to:
    every restart read it again and stored it again as ``#2``, ``#3``)."""
    tp = ("in.exposure", 0)
    values = [
        json.dumps(exposure(ts=FAR_FUTURE_MS + 3 * 86_400_000)).encode(),
        b"",
        json.dumps(ranking()).encode(),
        json.dumps(exposure(ts=T0)).encode(),
        # two more records establish the partition's event time (a lone record is not
        # believed) and move it 31 min on: T0's tick closes, theirs stays open
        json.dumps(exposure(ts=T0 + 30 * 60_000)).encode(),
        json.dumps(exposure(ts=T0 + 31 * 60_000)).encode(),
    ]
    log = [Message(*tp, i, v) for i, v in enumerate(values)]
    dead: list = []
    replay_from = []
    checkpoint = None
    for _ in range(4):
        d, out = driver()
        d.assign([tp])
        if checkpoint is not None:
            d.restore(Checkpoint.decode(checkpoint.encode()))
        d.process(log[d.start_offset(tp) or 0 :])
        d.advance()
        dead.extend(out.dead)
        checkpoint = d.checkpoint()
        replay_from.append(d.replay_from()[tp])
    assert sorted(x.location.rsplit("#", 1)[1] for x in dead) == ["1", "1", "1"]
    assert len({x.dl_id for x in dead}) == 3
    assert replay_from == [4] * 4  # the event of the open tick, nothing before it


def test_one_far_ahead_record_does_not_move_the_partition_watermark() -> None:
    """A valid record 20 h ahead (inside the one-day wall-clock allowance) on the only
    partition used to set its maximum event time: every later on-time record was late."""
    tp = ("in.exposure", 0)
    d, out = driver()
    d.assign([tp])
    values = [exposure(event_id=f"a{i}", ts=T0 + i * 60_000) for i in range(30)]
    values.append(exposure(event_id="ahead", ts=T0 + 20 * 3_600_000))
    values += [exposure(event_id=f"b{i}", ts=T0 + (30 + i) * 60_000) for i in range(60)]
    d.process([Message(*tp, i, json.dumps(v).encode()) for i, v in enumerate(values)])
    d.advance()
    d.process([Message(*tp, len(values), None, (("amplimon-control", b"end-of-stream"),))])
    d.advance()
    s = d.engine.stats
    assert d.closed and s.late["exposure"] == 0 and not out.dead
    assert s.accepted["exposure"] == 91 and s.uncorroborated == 1
