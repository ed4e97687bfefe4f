"""The history recorder: per-tick measurements and finding updates, without changing what the
engine writes."""

from __future__ import annotations

from typing import Any

import pytest

from monitor.app.replay import drive
from monitor.core.config import parse_config
from monitor.core.store import Store
from monitor.engine.history import HistoryRecorder
from monitor.engine.run import Engine
from streams.files import merge_by_time
from streams.memory import ListOutput, records_from_dicts
from streams.simulator import scenario, simulate
from streams.store_sink import StoreOutput

FAR = 4_000_000_000_000


@pytest.fixture(scope="module")
def sim() -> Any:
    return simulate(scenario("hidden_boost", seed=2, n_users=900, time_scale=0.3))


def records(sim: Any) -> Any:
    return merge_by_time(
        [records_from_dicts("exposure", sim.exposures), records_from_dicts("ranking", sim.rankings)]
    )


@pytest.fixture(scope="module")
def recorded(sim: Any) -> dict[str, Any]:
    config = parse_config(sim.config)
    store = Store(":memory:")
    sink = StoreOutput(store)
    recorder = HistoryRecorder(store, "run-1", flush_rows=5_000)  # several batches
    engine = Engine(config, recorder.wrap(sink), now_ms=lambda: FAR, on_tick=recorder.on_tick)
    drive(engine, records(sim))
    sink.flush()
    n = recorder.close(engine)
    plain = ListOutput()
    drive(Engine(config, plain, now_ms=lambda: FAR), records(sim))
    return {"store": store, "rows": n, "engine": engine, "plain": plain, "config": config}


def test_findings_and_measurements_unchanged_by_recording(recorded: dict[str, Any]) -> None:
    store, plain = recorded["store"], recorded["plain"]
    got = {
        r[0]: r[1:]
        for r in store.query(
            "SELECT finding_id, kind, effect, ci_low, ci_high, p_value, n_exposures, severity "
            "FROM findings"
        )
    }
    want = {
        f.finding_id: (f.kind, f.effect, f.ci_low, f.ci_high, f.p_value, f.n_exposures, f.severity)
        for f in plain.latest_findings.values()
    }
    assert got == want and got
    amp = {
        tuple(r[:6]): r[6:]
        for r in store.query(
            "SELECT platform, region, window_id, period, subject_kind, subject, ratio, n_ranked, "
            "n_holdout FROM amplification"
        )
    }
    assert amp == {
        k: (m.ratio, m.n_ranked, m.n_holdout) for k, m in plain.latest_measurements.items()
    }


def test_every_row_is_stamped_with_a_closed_tick(recorded: dict[str, Any]) -> None:
    store, engine = recorded["store"], recorded["engine"]
    tick_ms = recorded["config"].detection.tick_ms
    n, bad, runs = store.query(f"""
        SELECT count(*), count(*) FILTER (WHERE epoch_ms(tick_end) % {tick_ms} <> 0),
               count(DISTINCT run_id) FROM history""")[0]
    assert n == recorded["rows"] > 0 and bad == 0 and runs == 1
    ticks = store.query(
        "SELECT count(DISTINCT tick_end) FROM history WHERE record = 'measurement'"
    )[0][0]
    assert 0 < ticks <= engine.stats.ticks


def test_last_measurement_equals_the_amplification_table(recorded: dict[str, Any]) -> None:
    store = recorded["store"]
    last = store.query("""
        SELECT platform, region, window_id, period, subject_kind, subject, ratio, ci_low,
               ci_high, reach_ratio, n_ranked, n_holdout, users_ranked, users_holdout
        FROM history WHERE record = 'measurement'
        QUALIFY row_number() OVER (PARTITION BY platform, window_id, period, subject_kind,
                                   subject ORDER BY tick_end DESC) = 1""")
    table = store.query("""
        SELECT platform, region, window_id, period, subject_kind, subject, ratio, ci_low,
               ci_high, reach_ratio, n_ranked, n_holdout, users_ranked, users_holdout
        FROM amplification""")
    assert sorted(last, key=str) == sorted(table, key=str)


def test_finding_updates_from_first_crossing_to_the_final_numbers(recorded) -> None:
    store = recorded["store"]
    rows = store.query("""
        SELECT f.finding_id, f.event_time, f.effect, f.severity, min(h.tick_end),
               arg_max(h.effect, h.tick_end), arg_max(h.severity, h.tick_end), count(*)
        FROM findings f JOIN history h ON h.finding_id = f.finding_id
        GROUP BY f.finding_id, f.event_time, f.effect, f.severity""")
    assert len(rows) == store.count("findings") > 0
    for fid, crossed, effect, severity, first, last_effect, last_severity, n in rows:
        assert first >= crossed and n >= 1, fid
        assert last_effect == effect and last_severity == severity, fid


def test_a_new_recording_replaces_the_history() -> None:
    store = Store(":memory:")
    HistoryRecorder(store, "a")._add(tick_end=None, record="x")
    rec = HistoryRecorder(store, "b")
    assert store.query("SELECT count(*) FROM history")[0][0] == 0
    assert rec.rows == 0 and "history" in store.tables()
