"""Stage one (monitor.engine.ingest): duplicates over the whole window, conflicting copies, a frontier
one record cannot move, and a state that round-trips without pickle."""

from __future__ import annotations

import os
import random
import subprocess
import sys

import msgspec
import numpy as np
import pytest

from monitor.core.contract import decode_obj
from monitor.core.privacy import Pseudonymiser
from monitor.engine.ingest import Frontier, Ingest, IngestState, KeyLog, key_digest
from monitor.engine.run import Engine
from streams.memory import ListOutput
from tests.factories import HOUR, MIN, T0, config, exposure, now_far

KEY = Pseudonymiser(b"k" * 32)


def unit(**kw) -> tuple[Ingest, list[tuple]]:
    dead: list[tuple] = []
    u = Ingest(
        tick_ms=15 * MIN,
        lateness_ms=10 * MIN,
        pseudonymiser=KEY,
        dead=lambda *a: dead.append(a),
        future_limit_ms=2**62,
        **kw,
    )
    return u, dead


def push(u: Ingest, **fields) -> None:
    u.push("exposure", decode_obj("exposure", exposure(**fields)), source="t")


def steady(u: Ingest, start: int, minutes: int, prefix: str = "s") -> list:
    """One on-time record a minute (distinct users), closing ticks as it goes."""
    closed = []
    for m in range(minutes):
        push(u, event_id=f"{prefix}{m}", ts=start + m * MIN, user=f"u{m % 17}")
        closed += u.advance()
    return closed


def test_a_re_send_hours_later_is_a_duplicate_not_a_second_exposure() -> None:
    u, dead = unit()
    push(u, event_id="x", ts=T0, user="a")
    closed = steady(u, T0 + MIN, 4 * 60)  # four hours of stream: x's tick is long closed
    push(u, event_id="x", ts=T0, user="a")  # the very same record, re-sent
    assert u.stats.duplicates["exposure"] == 1
    assert u.stats.late["exposure"] == 0 and not dead
    closed += u.flush()
    ids = [e.event_id for t in closed for e in t.exposures]
    assert ids.count("x") == 1


def test_conflicting_copies_in_an_open_tick_count_none_whatever_came_first() -> None:
    for order in ([0, 1, 2], [2, 1, 0], [1, 0, 2]):
        u, dead = unit()
        copies = [
            dict(event_id="x", ts=T0, user="a", position=1),
            dict(event_id="x", ts=T0, user="a", position=4),
            dict(event_id="x", ts=T0, user="a", position=1),
        ]
        for i in order:
            push(u, **copies[i])
        closed = u.flush()
        assert [e.event_id for t in closed for e in t.exposures] == []
        assert u.stats.conflicting["exposure"] == 3 and u.stats.accepted["exposure"] == 0
        assert len(dead) == 3
        assert all("conflicting duplicate" in d[3] and d[1] == "conflicting" for d in dead)


def test_a_conflicting_copy_after_the_tick_closed_is_a_dead_letter() -> None:
    u, dead = unit()
    push(u, event_id="x", ts=T0, user="a")
    steady(u, T0 + MIN, 120)
    push(u, event_id="x", ts=T0 + 90 * MIN, user="a")  # same id, another time: a new copy
    closed = u.flush()
    assert u.stats.conflicting["exposure"] == 1
    assert "differs from one already counted" in dead[-1][3]
    assert [e.event_id for t in closed for e in t.exposures].count("x") == 0


def test_a_far_ahead_record_is_held_and_does_not_make_on_time_records_late() -> None:
    u, dead = unit()
    steady(u, T0, 30)
    push(u, event_id="bogus", ts=T0 + 20 * HOUR, user="z")  # within the wall-clock allowance
    steady(u, T0 + 30 * MIN, 60, prefix="later")
    assert u.stats.late["exposure"] == 0 and not dead
    assert u.stats.held == 1 + 3  # the bogus record, and the first three that set the frontier
    closed = u.flush()
    assert u.stats.uncorroborated == 1
    ids = [e.event_id for t in closed for e in t.exposures]
    assert "bogus" in ids  # accepted in its own tick, it just did not move time


def test_the_frontier_follows_a_real_jump_once_corroborated() -> None:
    f = Frontier(guard_ms=HOUR, corroborate=3)
    for ts in (T0, T0 + 1, T0 + 2):
        f.observe(ts)
    assert f.value == T0 + 2
    f.observe(T0 + 5 * HOUR)  # alone: held
    assert f.value == T0 + 2
    f.observe(T0 + 5 * HOUR + MIN)
    f.observe(T0 + 5 * HOUR + 2 * MIN)  # three within an hour: the stream moved on
    assert f.value == T0 + 5 * HOUR + 2 * MIN and not f.ahead


def test_arrival_order_replay_holds_a_far_ahead_record_too(tmp_path) -> None:
    """One valid record 20 h ahead, early in a file: nothing becomes late (issue: it made
    837,706 of 1.15 M records late)."""
    out = ListOutput()
    eng = Engine(config(), out, now_ms=now_far)
    rng = random.Random(4)
    records = [
        exposure(event_id=f"e{i}", ts=T0 + i * 20_000 + rng.randrange(5_000), user=f"u{i % 50}")
        for i in range(600)
    ]
    records.insert(60, exposure(event_id="ahead", ts=T0 + 20 * HOUR))
    for r in records:
        eng.ingest("exposure", msgspec.json.encode(r), source="f")
    stats = eng.close()
    assert stats.late["exposure"] == 0
    assert stats.accepted["exposure"] == 601


def test_key_log_lookup_matches_a_dict_and_survives_serialisation() -> None:
    rng = np.random.default_rng(1)
    log, truth = KeyLog(), {}
    for tick in range(40):
        keys = []
        for _ in range(int(rng.integers(0, 50))):
            hi, lo = (int(x) for x in rng.integers(0, 2**63, 2))
            c = int(rng.integers(1, 2**32))
            keys.append((hi, lo, c))
            truth[(hi, lo)] = c
        log.add(keys, tick)
    assert len(log.runs) <= 8  # merged as it grows
    copy = KeyLog.from_bytes(
        msgspec.msgpack.decode(msgspec.msgpack.encode(log.to_bytes()), type=list[tuple[bytes, int]])
    )
    probes = list(truth)[:200] + [(1, 2), (3, 4)]
    his = np.array([p[0] for p in probes], dtype="<u8")
    los = np.array([p[1] for p in probes], dtype="<u8")
    want = [truth.get(p, 0) for p in probes]
    assert log.lookup(his, los).tolist() == want
    assert copy.lookup(his, los).tolist() == want
    assert [log.get(*p) or 0 for p in probes] == want
    log.forget(before_tick=39)
    assert len(log) < len(truth)


@pytest.mark.parametrize("pending", [True, False])
def test_unit_state_round_trips_as_msgpack(pending: bool) -> None:
    u, _ = unit()
    steady(u, T0, 50)
    push(u, event_id="x", ts=u.frontier, user="a", position=1)
    push(u, event_id="x", ts=u.frontier, user="a", position=2)  # conflicted, tick still open
    data = msgspec.msgpack.encode(u.state(pending=pending))
    v, _ = unit()
    v.load_state(msgspec.msgpack.decode(data, type=IngestState))
    assert v.frontier == u.frontier and v.closed_idx == u.closed_idx
    assert len(v.keys) == len(u.keys)
    if pending:
        assert v.pending_events == u.pending_events
        assert [t.exposures for t in v.flush()] == [t.exposures for t in u.flush()]
    else:
        assert v.pending_events == 0


def test_key_digest_is_stable_across_processes() -> None:
    """A restarted worker must find the keys of its previous life: no per-process salt."""
    code = "from monitor.engine.ingest import key_digest; print(*key_digest('chirp', 'exposure', 'e1'))"
    other = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "12345"},
    )
    assert tuple(map(int, other.stdout.split())) == key_digest("chirp", "exposure", "e1")
