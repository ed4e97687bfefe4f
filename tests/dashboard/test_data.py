"""dashboard.data: one reader over DuckDB files and snapshot directories, never blocked."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dashboard.data import DuckDBFileSource, SnapshotDirSource, open_source
from monitor.core.records import DeadLetter
from tests.dashboard import factories as F


def test_duckdb_file_is_read_and_closed(tmp_path: Path) -> None:
    db = F.write_db(
        tmp_path / "out.duckdb",
        F.default_findings(),
        F.default_measurements(),
        [DeadLetter(source="x.jsonl", raw="{", reason="invalid JSON", location="1")],
    )
    source = open_source(db)
    assert isinstance(source, DuckDBFileSource)
    snap = source.load()
    assert len(snap.findings) == 4 and len(snap.amplification) == 8
    assert snap.deadletter_total == 1 and not snap.stale and snap.note == ""
    assert str(snap.findings["event_time"].dtype).endswith("UTC]")
    # the file is not held: a writer can open it right away
    F.write_db(db, [F.finding("acc-9")])
    assert len(source.load().findings) == 5


def test_unchanged_files_are_not_read_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = F.write_db(tmp_path / "out.duckdb", F.default_findings())
    source = open_source(db)
    first = source.load()
    calls = []
    monkeypatch.setattr(source, "_read", lambda: calls.append(1) or {})
    assert source.load() is first and calls == []


def test_snapshot_directory(tmp_path: Path) -> None:
    snap_dir = F.write_snapshot(
        tmp_path / "snap", F.default_findings()[:2], F.default_measurements()
    )
    source = open_source(snap_dir)
    assert isinstance(source, SnapshotDirSource)
    assert len(source.load().findings) == 2
    F.write_snapshot(snap_dir, F.default_findings())  # atomic replace by the sink
    snap = source.load()
    assert len(snap.findings) == 4 and snap.findings["evidence"].map(type).eq(str).all()
    assert snap.origin == "snap"


def test_missing_source_waits_without_error(tmp_path: Path) -> None:
    snap = open_source(tmp_path / "not-yet").load()
    assert snap.findings.empty and "Waiting for data" in snap.note
    assert list(snap.findings.columns)[:3] == ["finding_id", "detector", "kind"]
    assert isinstance(open_source(tmp_path / "later.duckdb"), DuckDBFileSource)


def test_old_snapshot_without_extension_columns_is_conformed(tmp_path: Path) -> None:
    (tmp_path / "snap").mkdir()
    f = F.finding()
    pq.write_table(
        pa.table(
            {
                "finding_id": [f.finding_id],
                "detector": [f.detector],
                "kind": [f.kind],
                "platform": ["chirp"],
                "region": ["DE"],
                "window_id": ["de-2026"],
                "subject_kind": ["actor"],
                "subject": ["acc-1"],
                "severity": ["high"],
                "status": ["new"],
            }
        ),
        tmp_path / "snap" / "findings.parquet",
    )
    snap = open_source(tmp_path / "snap").load()
    assert len(snap.findings) == 1 and "updated_at" in snap.findings
    assert snap.amplification.empty


HOLDER = textwrap.dedent("""
    import sys, duckdb
    con = duckdb.connect(sys.argv[1])
    con.execute("CREATE TABLE IF NOT EXISTS t (a INT)")
    print("ready", flush=True)
    sys.stdin.readline()
""")


def test_locked_database_keeps_last_good_data(tmp_path: Path) -> None:
    db = F.write_db(tmp_path / "out.duckdb", F.default_findings())
    source = open_source(db)
    source.retries = (0.01,)
    assert len(source.load().findings) == 4
    writer = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(db)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "ready"
        snap = source.load()  # the writer changed the file and holds it: must not raise
        assert snap.stale and len(snap.findings) == 4
        assert snap.note.startswith("Showing data read at") and "lock" not in snap.note.lower()
        fresh = open_source(db)
        fresh.retries = ()
        first = fresh.load()
        assert first.findings.empty and first.note.startswith("Waiting for data")
    finally:
        assert writer.stdin is not None
        writer.stdin.write("\n")
        writer.stdin.close()
        writer.wait(timeout=20)
    assert not source.load().stale


def test_a_held_database_falls_back_to_the_sinks_snapshot(tmp_path: Path) -> None:
    db = F.write_db(tmp_path / "out.duckdb", F.default_findings()[:1])
    F.write_snapshot(tmp_path / "out.duckdb.snapshot", F.default_findings())
    writer = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(db)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "ready"
        snap = open_source(db).load()
        assert not snap.stale and len(snap.findings) == 4
        assert snap.origin == "out.duckdb.snapshot (live snapshot)"
    finally:
        assert writer.stdin is not None
        writer.stdin.write("\n")
        writer.stdin.close()
        writer.wait(timeout=20)
    snap = open_source(db).load()
    assert len(snap.findings) == 1 and snap.origin == "out.duckdb"
