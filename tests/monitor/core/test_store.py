"""DuckDB store: idempotent upserts, triage status and first detection kept on update."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from monitor.core.records import DeadLetter, Finding, Measurement
from monitor.core.store import Store, StoreError

T = dt.datetime(2026, 5, 4, 12, tzinfo=dt.UTC)


def finding(**kw) -> Finding:
    values = dict(
        detector="holdout_shift",
        kind="amplification",
        platform="chirp",
        region="DE",
        window_id="w",
        subject_kind="actor",
        subject="acc-1",
        effect=1.6,
        ci_low=1.2,
        ci_high=2.0,
        p_value=0.001,
        n_exposures=100,
        severity="high",
        event_time=T,
        evidence={"n": 1, "nested": {"a": [1, 2]}},
    )
    values.update(kw)
    return Finding.new(**values)


def test_finding_ids_are_stable() -> None:
    assert finding().finding_id == finding(effect=3.0).finding_id
    assert finding().finding_id != finding(subject="acc-2").finding_id
    assert finding().finding_id != finding(detector="rank_uplift").finding_id


def test_upsert_updates_numbers_keeps_status_and_first_times(tmp_path: Path) -> None:
    with Store(tmp_path / "s.duckdb") as store:
        first = finding(detected_at=T)
        store.upsert_findings([first])
        store.con.execute("UPDATE findings SET status = 'acknowledged'")
        later = finding(
            effect=2.5, event_time=T + dt.timedelta(hours=1), detected_at=T + dt.timedelta(hours=2)
        )
        store.upsert_findings([later])
        rows = store.query(
            "SELECT effect, status, event_time, detected_at, "
            "evidence->>'$.nested.a[1]' FROM findings"
        )
    assert len(rows) == 1
    effect, status, event_time, detected_at, nested = rows[0]
    assert (effect, status, nested) == (2.5, "acknowledged", "2")
    assert event_time == T and detected_at == T


def test_measurements_and_deadletters_idempotent(tmp_path: Path) -> None:
    m = Measurement(
        platform="chirp",
        region="DE",
        window_id="w",
        period="window",
        subject_kind="actor",
        subject="a",
        ratio=1.2,
        ci_low=1.0,
        ci_high=1.4,
        reach_ratio=1.1,
        n_ranked=10,
        n_holdout=5,
        users_ranked=8,
        users_holdout=4,
    )
    dl = DeadLetter(
        source="f.jsonl", raw="{", reason="exposure: truncated JSON", location="f.jsonl:3"
    )
    with Store(tmp_path / "s.duckdb") as store:
        for _ in range(2):
            store.upsert_measurements([m, m])
            store.add_deadletters([dl, dl])
        assert store.count("amplification") == 1
        assert store.count("deadletter") == 1


def test_unwritable_path_is_a_one_line_error(tmp_path: Path) -> None:
    target = tmp_path / "ro"
    target.mkdir()
    (target / "db.duckdb").write_text("not a database")
    with pytest.raises(StoreError) as err:
        Store(target / "db.duckdb")
    assert "cannot open database" in str(err.value) and "\n" not in str(err.value)
