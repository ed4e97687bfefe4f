"""EngineDriver without a broker: partitions read at different paces, restarts from
checkpoints at random places, end of stream — always replay's results."""

from __future__ import annotations

import random
import zlib

import pytest

from monitor.app.replay import drive
from monitor.core.privacy import Pseudonymiser
from monitor.core.records import Finding
from monitor.engine.run import Engine, StreamStats
from streams.files import merge_by_time, read_file
from streams.kafka.driver import Checkpoint, EngineDriver, Message
from streams.memory import ListOutput

INPUTS = {"in.exposure": "exposure", "in.ranking": "ranking"}
TOPIC_OF = {v: k for k, v in INPUTS.items()}
EOS = [("amplimon-control", b"end-of-stream")]


def partitioned(simulation, partitions: int = 3) -> dict[tuple[str, int], list[Message]]:
    """The producer's view: records in event-time order, keyed by user onto partitions."""
    logs: dict[tuple[str, int], list[Message]] = {
        (t, p): [] for t in INPUTS for p in range(partitions)
    }
    sources = [read_file(p, t) for p, t in simulation.files]
    for rec in merge_by_time(sources):
        user = getattr(rec.result, "user", None)
        p = zlib.crc32(user.encode()) % partitions if user else 0
        tp = (TOPIC_OF[rec.topic], p)
        logs[tp].append(Message(tp[0], p, len(logs[tp]), rec.raw))
    for tp, log in logs.items():
        log.append(Message(tp[0], tp[1], len(log), b"", EOS))
    return logs


def new_driver(simulation) -> tuple[EngineDriver, ListOutput]:
    out = ListOutput()
    # one key for every driver: a checkpoint resumes only under the key it was made with
    engine = Engine(
        simulation.config, out, auto_watermark=False, pseudonymiser=Pseudonymiser(b"k" * 32)
    )
    driver = EngineDriver(engine, INPUTS, idle_ms=3_600_000)
    return driver, out


def final_findings(updates: list[Finding]) -> dict[str, tuple]:
    """Latest version of each finding (first event_time), floats rounded: the order of
    events inside a tick depends on arrival, and so may the last bits of a float sum."""
    latest: dict[str, Finding] = {}
    first: dict[str, object] = {}
    for f in updates:
        latest[f.finding_id] = f
        first[f.finding_id] = min(first.get(f.finding_id, f.event_time), f.event_time)
    return {
        fid: (
            f.kind,
            f.subject,
            _r(f.effect),
            _r(f.ci_low),
            _r(f.ci_high),
            _r(f.p_value),
            f.n_exposures,
            f.severity,
            first[fid],
        )
        for fid, f in latest.items()
    }


def _r(x: float | None) -> float | None:
    return None if x is None else float(f"{x:.9g}")


@pytest.fixture(scope="module")
def replayed(simulation) -> tuple[dict[str, tuple], ListOutput, StreamStats]:
    """Replay's findings, outputs and counters (the reference)."""
    out = ListOutput()
    engine = Engine(simulation.config, out)
    stats = drive(engine, merge_by_time([read_file(p, t) for p, t in simulation.files]))
    return final_findings(out.finding_updates), out, stats


@pytest.fixture(scope="module")
def logs(simulation) -> dict[tuple[str, int], list[Message]]:
    return partitioned(simulation)


def counters(s: StreamStats) -> tuple:
    return s.accepted, s.duplicates, s.late, s.rejected


def run(
    driver: EngineDriver,
    logs,
    rng: random.Random,
    *,
    stop_after: int | None = None,
    start: dict | None = None,
) -> dict:
    """Deliver the partitions in random interleaving and batch sizes, as a consumer would."""
    pos = dict(start or {tp: 0 for tp in logs})
    driver.assign(logs)
    batches = 0
    while any(pos[tp] < len(log) for tp, log in logs.items()):
        if stop_after is not None and batches == stop_after:
            break
        batch = []
        for tp in rng.sample(sorted(logs), k=rng.randint(1, len(logs))):
            k = rng.choice((1, 50, 500, 3000))
            batch.extend(logs[tp][pos[tp] : pos[tp] + k])
            pos[tp] = min(len(logs[tp]), pos[tp] + k)
        driver.process(batch)
        driver.advance()
        driver.engine.flush_measurements()
        batches += 1
    return pos


def test_partitions_at_different_paces_give_replays_findings(simulation, replayed, logs):
    want, ref, ref_stats = replayed
    assert {k[0] for k in want.values()} >= {
        "amplification",
        "undisclosed_intervention",
        "missing_label",
    }
    driver, out = new_driver(simulation)
    run(driver, logs, random.Random(7))
    assert driver.closed
    assert final_findings(out.finding_updates) == want
    assert len(out.dead) == len(ref.dead)
    assert out.latest_measurements.keys() == ref.latest_measurements.keys()
    assert counters(driver.engine.stats) == counters(ref_stats)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_restart_from_checkpoint_loses_and_duplicates_nothing(simulation, replayed, logs, seed):
    """Kill after a random number of batches, restart from the last checkpoint (taken
    earlier still), re-read from ``replay_from``: the union of outputs equals replay's."""
    want, ref, ref_stats = replayed
    rng = random.Random(seed)
    driver, out1 = new_driver(simulation)
    run(driver, logs, rng, stop_after=rng.randint(3, 12))
    checkpoint = Checkpoint.decode(driver.checkpoint().encode())
    run(driver, logs, rng, stop_after=rng.randint(1, 4))  # work after it is lost in the crash

    restarted, out2 = new_driver(simulation)
    restarted.restore(checkpoint)
    start = {tp: restarted.start_offset(tp) or 0 for tp in logs}
    run(restarted, logs, rng, start=start)
    assert restarted.closed
    assert restarted.stats.replayed + restarted.stats.skipped > 0
    assert final_findings(out1.finding_updates + out2.finding_updates) == want
    dead = {d.dl_id for d in out1.dead + out2.dead}
    assert len(dead) == len({d.dl_id for d in ref.dead}) == len(ref.dead)
    measured = {**out1.latest_measurements, **out2.latest_measurements}
    assert {k: (m.n_ranked, m.n_holdout) for k, m in measured.items()} == {
        k: (m.n_ranked, m.n_holdout) for k, m in ref.latest_measurements.items()
    }
    assert counters(restarted.engine.stats) == counters(ref_stats)


def test_malformed_messages_become_dead_letters(simulation):
    driver, out = new_driver(simulation)
    driver.assign([("in.exposure", 0), ("in.ranking", 0)])
    bad = [b"\xff\xfe not utf-8", b"[1, 2, 3]", b"", b"{" * 10_000, b'{"event_id": 1}', b"null"]
    driver.process([Message("in.exposure", 0, i, v) for i, v in enumerate(bad)])
    driver.process([Message("in.ranking", 0, 0, b"", [("amplimon-control", b"other")])])
    assert len(out.dead) == len(bad) + 1
    assert all(d.location.startswith("in.") for d in out.dead)
    assert all(d.reason for d in out.dead)


def test_idle_partition_stops_holding_the_watermark(simulation):
    clock = [0.0]
    out = ListOutput()
    engine = Engine(simulation.config, out, auto_watermark=False)
    driver = EngineDriver(engine, INPUTS, idle_ms=5_000, clock=lambda: clock[0])
    logs = partitioned(simulation, partitions=1)
    driver.assign([("in.exposure", 0), ("in.ranking", 0), ("in.exposure", 1)])
    driver.process(logs[("in.exposure", 0)][:2000] + logs[("in.ranking", 0)][:500])
    driver.advance()
    assert engine.stats.ticks == 0  # partition 1 has not shown an event yet
    clock[0] = 6.0
    driver.process(logs[("in.exposure", 0)][2000:2001])
    driver.process(logs[("in.ranking", 0)][500:501])
    driver.advance()
    assert engine.stats.ticks > 0
