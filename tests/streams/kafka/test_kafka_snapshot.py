"""Readers never touch the sink's DuckDB file: atomic Parquet snapshots, read while written."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from monitor.core.records import DeadLetter, Finding, Measurement
from monitor.core.store import Store
from streams.kafka.output import encode_row
from streams.kafka.producer import make_producer
from streams.kafka.sink import SinkOptions, run_sink
from streams.kafka.topics import create_topics
from streams.snapshot import SnapshotPublisher, publish_snapshot, read_snapshot

WRITE_SECONDS = 15.0  # ~60 snapshot swaps at 0.25 s: enough to catch a torn read
MIN_READS = 100  # the reader goes on (writes too) until it has read this often
T = dt.datetime(2026, 5, 4, tzinfo=dt.UTC)


def finding(i: int, version: int) -> Finding:
    return Finding.new(
        detector="amplification",
        kind="amplification",
        platform="chirp",
        region="DE",
        window_id="de-2026",
        subject_kind="actor",
        subject=f"acc-{i}",
        effect=1.0 + version / 100,
        ci_low=1.0,
        ci_high=2.0,
        p_value=0.001,
        n_exposures=version,
        severity="high",
        event_time=T + dt.timedelta(minutes=i),
        evidence={"v": version},
    )


def measurement(i: int, version: int) -> Measurement:
    return Measurement(
        platform="chirp",
        region="DE",
        window_id="de-2026",
        period="window",
        subject_kind="actor",
        subject=f"acc-{i}",
        ratio=1.0 + version / 100,
        ci_low=1.0,
        ci_high=2.0,
        reach_ratio=1.1,
        n_ranked=version,
        n_holdout=version,
        users_ranked=10,
        users_holdout=10,
    )


def test_publish_and_read_snapshot(tmp_path: Path):
    with Store(tmp_path / "s.duckdb") as store:
        store.upsert_findings([finding(i, 1) for i in range(5)])
        store.upsert_measurements([measurement(i, 1) for i in range(3)])
        counts = publish_snapshot(store, tmp_path / "snap")
    assert counts["findings"] == 5 and counts["amplification"] == 3
    assert counts["deadletter"] == 0
    con = read_snapshot(tmp_path / "snap")
    assert con.execute("SELECT count(*) FROM findings").fetchone()[0] == 5
    rule = con.execute("SELECT evidence->>'v' FROM findings LIMIT 1").fetchone()[0]
    assert rule == "1"
    con.close()
    manifest = json.loads((tmp_path / "snap" / "manifest.json").read_text())
    assert manifest["tables"]["findings"] == 5
    assert not list((tmp_path / "snap").glob(".*tmp"))


def test_read_snapshot_before_the_first_publish_has_empty_tables(tmp_path: Path):
    con = read_snapshot(tmp_path / "nothing-yet")
    assert con.execute("SELECT count(*) FROM findings").fetchone()[0] == 0
    assert con.execute("SELECT count(*) FROM amplification").fetchone()[0] == 0
    con.close()


def test_publisher_is_rate_limited(tmp_path: Path):
    with Store(tmp_path / "s.duckdb") as store:
        pub = SnapshotPublisher(store, tmp_path / "snap", min_interval=60)
        assert pub.maybe_publish()
        pub.mark(["findings"])
        assert not pub.maybe_publish()
        assert pub.maybe_publish(force=True)


READER = textwrap.dedent("""
    import json, sys, time
    from streams.snapshot import read_snapshot, read_table_file
    directory, seconds, min_reads = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
    reads = errors = 0
    last = 0
    problems = []
    start = time.monotonic()
    # at least `seconds` and `min_reads` reads (a loaded machine reads slower), at most 8x
    while (time.monotonic() - start < seconds or reads < min_reads) and (
            time.monotonic() - start < 8 * seconds):
        try:
            con = read_snapshot(directory)
            n = con.execute("SELECT count(*) FROM findings").fetchone()[0]
            con.execute("SELECT f.subject, a.ratio FROM findings f "
                        "LEFT JOIN amplification a USING (subject)").fetchall()
            con.close()
            for name in ("findings", "amplification", "deadletter"):
                read_table_file(f"{directory}/{name}.parquet")
            if n < last:
                problems.append(f"findings went back from {last} to {n}")
            last = n
            reads += 1
        except Exception as err:
            errors += 1
            problems.append(repr(err))
        time.sleep(0.02)
    print(json.dumps({"reads": reads, "errors": errors, "last": last,
                      "problems": problems[:5]}))
""")


@pytest.mark.broker
def test_reader_process_sees_no_errors_during_sustained_writes(make_settings, tmp_path: Path):
    settings = make_settings(partitions=2)
    create_topics(settings)
    db, snap = tmp_path / "live.duckdb", tmp_path / "snap"
    stop = threading.Event()
    result: dict = {}
    sink = threading.Thread(
        target=lambda: result.update(
            stats=run_sink(
                settings,
                db,
                snapshot_dir=snap,
                stop=stop,
                options=SinkOptions(session_timeout_ms=6000, batch=500, snapshot_interval_s=0.25),
            )
        )
    )
    sink.start()
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(snap), str(WRITE_SECONDS), str(MIN_READS)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    producer = make_producer(settings)

    def send(topic: str, row) -> None:
        key, value = encode_row(row)
        producer.send(topic, key=key, value=value)

    n_findings = 0
    try:
        version = 0
        while reader.poll() is None:  # writing for as long as the reader reads
            version += 1
            for i in range(n_findings, n_findings + 5):  # new findings …
                send(settings.topic_findings, finding(i, 1))
            n_findings += 5
            for i in range(0, n_findings, 7):  # … and updates of older ones
                send(settings.topic_findings, finding(i, version))
            for i in range(50):
                send(settings.topic_measurements, measurement(i, version))
            dead = DeadLetter(source="t", raw="x", reason=f"r{version}", location=f"t/0@{version}")
            send(settings.topic_deadletter, dead)
            producer.flush()
            time.sleep(0.1)
        out, err = reader.communicate(timeout=60)
    finally:
        producer.close()
        reader.kill()
        time.sleep(3)  # let the sink take the last batch
        stop.set()
        sink.join(60)
    report = json.loads(out.strip().splitlines()[-1])
    assert report["errors"] == 0, report["problems"]
    assert report["reads"] >= MIN_READS
    assert report["last"] > 0
    with Store(db) as store:
        assert store.count("findings") == n_findings
    assert result["stats"].messages > 0
