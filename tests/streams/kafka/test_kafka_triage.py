"""Live triage reaches the store of record: the dashboard appends a change to its outbox (its
own SQLite file), the running sink — the only DuckDB writer — applies it, and the next
snapshot the dashboard reads carries the new ``findings.status``."""

from __future__ import annotations

import datetime as dt
import threading
import time
from pathlib import Path

import duckdb
import pytest

from dashboard import triage
from dashboard.auth import User
from dashboard.settings import default_state_path
from dashboard.state import StateStore
from monitor.core.records import Finding
from streams.kafka.output import encode_row
from streams.kafka.producer import make_producer
from streams.kafka.sink import SinkOptions, run_sink
from streams.kafka.topics import create_topics
from streams.snapshot import read_snapshot

pytestmark = pytest.mark.broker
T = dt.datetime(2026, 5, 4, tzinfo=dt.UTC)


def finding(effect: float) -> Finding:
    return Finding.new(
        detector="holdout_shift",
        kind="amplification",
        platform="chirp",
        region="DE",
        window_id="de-2026",
        subject_kind="actor",
        subject="acc-1",
        effect=effect,
        ci_low=1.0,
        ci_high=2.0,
        p_value=0.001,
        n_exposures=10,
        severity="high",
        event_time=T,
        evidence={},
    )


def snapshot_status(snap: Path) -> str | None:
    con = read_snapshot(snap)
    try:
        row = con.execute("SELECT status FROM findings").fetchone()
    finally:
        con.close()
    return row[0] if row else None


def wait_for(predicate, what: str, timeout: float = 60) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_the_sink_applies_the_dashboards_triage(
    make_settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AMPLIMON_DASHBOARD_STATE", raising=False)
    settings = make_settings(partitions=1)
    create_topics(settings)
    db, snap = tmp_path / "live.duckdb", tmp_path / "live.duckdb.snapshot"
    state = StateStore(default_state_path(snap))  # `amplimon dashboard --data <snapshot>`
    stop = threading.Event()
    sink = threading.Thread(
        target=run_sink,
        args=(settings, db),
        kwargs=dict(snapshot_dir=snap, stop=stop, options=SinkOptions(snapshot_interval_s=0.2)),
    )
    sink.start()
    producer = make_producer(settings)
    try:
        key, value = encode_row(finding(1.5))
        producer.send(settings.topic_findings, key=key, value=value)
        producer.flush()
        wait_for(
            lambda: (snap / "findings.parquet").exists() and snapshot_status(snap) == "new",
            "the finding in the snapshot",
        )
        fid = finding(1.5).finding_id
        triage.apply(
            state,
            User("ana", "analyst"),
            fid,
            "escalate",
            status="new",
            base_status="new",
            note='=HYPERLINK("x") sent to legal',
        )
        wait_for(lambda: snapshot_status(snap) == "escalated", "the triage in the snapshot")
        # the sink updates the finding's numbers: the status in the store stays
        key, value = encode_row(finding(2.5))
        producer.send(settings.topic_findings, key=key, value=value)
        producer.flush()
        time.sleep(1.5)
        assert snapshot_status(snap) == "escalated"
    finally:
        producer.close()
        stop.set()
        sink.join(60)
    con = duckdb.connect(str(db), read_only=True)
    try:
        assert con.execute("SELECT status, effect FROM findings").fetchall() == [("escalated", 2.5)]
        assert con.execute("SELECT who, from_status, to_status, note FROM triage").fetchall() == [
            ("ana", "new", "escalated", '=HYPERLINK("x") sent to legal')
        ]
    finally:
        con.close()
