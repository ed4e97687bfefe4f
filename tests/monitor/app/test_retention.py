"""Retention: ``purge`` deletes exactly what is older than the cut, per table and in the archive."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import monitor.app.retention as retention
from monitor.app.retention import RetentionError, parse_cut, purge
from monitor.cli import main
from monitor.core.records import DeadLetter, Detectability, Finding, Measurement
from monitor.core.store import Store
from streams.kafka.archive import SCHEMAS
from streams.snapshot import publish_snapshot, read_table_file
from tests.factories import exposure, ranking

CUT = dt.datetime(2026, 5, 4, 12, tzinfo=dt.UTC)
H = dt.timedelta(hours=1)
MS = dt.timedelta(milliseconds=1)

# rows per table: (before the cut, at or after it)
BEFORE_AFTER = {
    "deadletter": (3, 2),
    "amplification": (2, 1),
    "detectability": (1, 2),
    "history": (2, 1),
    "findings": (2, 1),
}


# -- factories -------------------------------------------------------------------------------
def deadletter(i: int, at: dt.datetime) -> DeadLetter:
    return DeadLetter(
        source="exposure.jsonl",
        raw=f'{{"user": "alice-{i}"',
        reason="truncated",
        location=f"exposure.jsonl:{i}",
        received_at=at,
    )


def measurement(i: int, at: dt.datetime) -> Measurement:
    return Measurement(
        platform="chirp",
        region="DE",
        window_id="w",
        period="window",
        subject_kind="actor",
        subject=f"acc-{i}",
        ratio=1.2,
        ci_low=1.0,
        ci_high=1.4,
        reach_ratio=1.1,
        n_ranked=10,
        n_holdout=5,
        users_ranked=8,
        users_holdout=4,
        computed_at=at,
    )


def detectability(i: int, at: dt.datetime) -> Detectability:
    return Detectability(
        detector="holdout_shift",
        platform="chirp",
        region="DE",
        window_id="w",
        subject_kind="actor",
        subject=f"acc-{i}",
        mde_up=1.5,
        mde_down=0.6,
        n_exposures=100,
        flagged=False,
        computed_at=at,
    )


def finding(i: int, at: dt.datetime) -> Finding:
    return Finding.new(
        detector="holdout_shift",
        kind="amplification",
        platform="chirp",
        region="DE",
        window_id="w",
        subject_kind="actor",
        subject=f"acc-{i}",
        effect=1.6,
        ci_low=1.2,
        ci_high=2.0,
        p_value=0.001,
        n_exposures=100,
        severity="high",
        event_time=at,
        detected_at=at,
        evidence={"n": i},
    )


def times(before: int, after: int) -> list[dt.datetime]:
    """``before`` instants before the cut (the last 1 ms before it), ``after`` from it on."""
    return ([CUT - MS] + [CUT - (k + 1) * H for k in range(before - 1)])[:before] + [
        CUT + k * H for k in range(after)
    ]


def make_store(path: Path) -> Path:
    """A store with rows before and after :data:`CUT` in every table (:data:`BEFORE_AFTER`)."""
    build = {
        "deadletter": deadletter,
        "amplification": measurement,
        "detectability": detectability,
        "findings": finding,
    }
    with Store(path) as store:
        rows = {
            t: [f(i, at) for i, at in enumerate(times(*BEFORE_AFTER[t]))] for t, f in build.items()
        }
        store.add_deadletters(rows["deadletter"])
        store.upsert_measurements(rows["amplification"])
        store.upsert_detectability(rows["detectability"])
        store.upsert_findings(rows["findings"])
        store.reset_history()
        for i, at in enumerate(times(*BEFORE_AFTER["history"])):
            store.con.execute(
                "INSERT INTO history (run_id, tick_end, record, platform, region, "
                "window_id, subject_kind, subject) VALUES ('r', ?, 'measurement', "
                "'chirp', 'DE', 'w', 'actor', ?)",
                [at, f"acc-{i}"],
            )
        store.record_run("replay-1", "replay", CUT - 48 * H, {"stats": {}})
    return path


def counts(db: Path) -> dict[str, int]:
    with Store(db, read_only=True) as store:
        return {
            t: store.query(f"SELECT count(*) FROM {t}")[0][0]  # noqa: S608
            for t in (*BEFORE_AFTER, "runs")
        }


def write_part(folder: Path, name: str, topic: str, at: list[dt.datetime]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    make = exposure if topic == "exposure" else ranking
    rows = [make(ts=int(t.timestamp() * 1000)) | {"event_time": t} for t in at]
    pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMAS[topic]), folder / name)
    return folder / name


def partition(root: Path, day: str, topic: str = "exposure") -> Path:
    return root / "platform=chirp" / f"topic={topic}" / f"date={day}"


def make_archive(root: Path) -> Path:
    """Partitions before, on (mid-day cut) and after the cut's day, plus foreign files."""
    d = dt.datetime(2026, 5, 2, 9, tzinfo=dt.UTC)
    write_part(partition(root, "2026-05-02"), "part-1.parquet", "exposure", [d, d + H, d + 2 * H])
    write_part(partition(root, "2026-05-03"), "part-1.parquet", "exposure", [d + 24 * H] * 2)
    write_part(partition(root, "2026-05-03"), "part-2.parquet", "exposure", [d + 25 * H])
    (partition(root, "2026-05-03") / ".part-3.parquet.tmp").write_bytes(b"archiver at work")
    write_part(
        partition(root, "2026-05-04"),
        "part-a.parquet",
        "exposure",
        [CUT - 6 * H, CUT - MS, CUT, CUT + H],
    )  # rewritten: keeps 2
    write_part(partition(root, "2026-05-04"), "part-b.parquet", "exposure", [CUT - 4 * H] * 2)
    write_part(partition(root, "2026-05-04"), "part-c.parquet", "exposure", [CUT + 2 * H])
    write_part(partition(root, "2026-05-05"), "part-1.parquet", "exposure", [CUT + 24 * H])
    write_part(partition(root, "2026-05-01", "ranking"), "part-1.parquet", "ranking", [d - 24 * H])
    (root / "notes.txt").write_text("not archive data")
    write_part(root / "elsewhere" / "date=2026-05-01", "part-1.parquet", "exposure", [d])
    return root


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    return make_archive(tmp_path / "archive")


def digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def ts_of(path: Path) -> list[int]:
    return pq.ParquetFile(path).read(columns=["ts"]).column("ts").to_pylist()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return make_store(tmp_path / "amplimon.duckdb")


# -- the store -------------------------------------------------------------------------------
def test_purge_deletes_rows_before_the_cut_and_keeps_findings(db: Path) -> None:
    report = purge(db, CUT)
    for table, (before, after) in BEFORE_AFTER.items():
        expected = (0, before + after) if table == "findings" else (before, after)
        assert (report.deleted(table), report.kept(table)) == expected, table
    assert report.kept("runs") == 2 and report.deleted("runs") == 0  # the replay and this purge
    left = counts(db)
    assert {t: left[t] for t in BEFORE_AFTER} == {
        "deadletter": 2,
        "amplification": 1,
        "detectability": 2,
        "history": 1,
        "findings": 3,
    }
    with Store(db, read_only=True) as store:
        assert store.query("SELECT min(received_at) FROM deadletter")[0][0] == CUT
        ((run_id, info),) = store.query("SELECT run_id, info FROM runs WHERE command = 'purge'")
    assert run_id == report.run_id
    recorded = json.loads(info)
    assert recorded["before"] == CUT.isoformat() and recorded["findings"] is False
    assert recorded["deleted"] == {
        "deadletter": 3,
        "amplification": 2,
        "detectability": 1,
        "history": 2,
        "findings": 0,
    }


def test_the_deleted_raw_text_leaves_the_file(db: Path) -> None:
    assert b"alice-0" in db.read_bytes()  # the newest dead letter before the cut
    purge(db, CUT)
    assert b"alice-0" not in db.read_bytes() and b"alice-4" in db.read_bytes()
    with Store(db) as store:  # the rewritten file keeps the schema: upserts still converge
        store.upsert_findings([finding(0, CUT - H)])
        assert store.count("findings") == 3


def test_findings_are_purged_by_event_time_only_when_asked(db: Path) -> None:
    report = purge(db, CUT, findings=True)
    assert (report.deleted("findings"), report.kept("findings")) == BEFORE_AFTER["findings"]
    with Store(db, read_only=True) as store:
        assert store.query("SELECT min(event_time) FROM findings")[0][0] == CUT


def test_dry_run_counts_and_changes_nothing(db: Path, archive: Path) -> None:
    before_db, before_files = counts(db), digest(archive)
    dry = purge(db, CUT, archive=archive, findings=True, dry_run=True)
    assert counts(db) == before_db and digest(archive) == before_files
    assert dry.dry_run and dry.run_id is None
    real = purge(db, CUT, archive=archive, findings=True)
    assert [(t.table, t.deleted) for t in dry.tables] == [(t.table, t.deleted) for t in real.tables]
    assert (dry.archive, dry.archive is not None) == (real.archive, True)


def test_purging_twice_deletes_nothing_the_second_time(db: Path, archive: Path) -> None:
    purge(db, CUT, archive=archive, findings=True)
    after_first = digest(archive)
    again = purge(db, CUT, archive=archive, findings=True)
    assert all(t.deleted == 0 for t in again.tables)
    assert again.archive is not None
    assert (
        again.archive.files_deleted,
        again.archive.files_rewritten,
        again.archive.rows_deleted,
        again.archive.partitions_deleted,
    ) == (0, 0, 0, 0)
    assert digest(archive) == after_first
    assert counts(db)["runs"] == 3  # the replay and two purges, both on record


def test_a_failure_inside_the_transaction_changes_nothing(
    db: Path, archive: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(*args: Any) -> None:
        raise OSError("disk full")

    before = counts(db)
    monkeypatch.setattr(retention, "_apply_archive", fail)
    with pytest.raises(RetentionError, match=r"partly purged, database unchanged \(disk full"):
        purge(db, CUT, archive=archive)
    assert counts(db) == before


# -- the archive -----------------------------------------------------------------------------
def test_archive_drops_old_partitions_and_rewrites_the_cut_day(db: Path, archive: Path) -> None:
    untouched = {
        k: v
        for k, v in digest(archive).items()
        if "2026-05-05" in k
        or "part-c" in k
        or "elsewhere" in k
        or k == "notes.txt"
        or k.endswith(".tmp")
    }
    report = purge(db, CUT, archive=archive)
    a = report.archive
    assert a is not None
    assert (a.partitions_deleted, a.files_deleted, a.files_rewritten, a.rows_deleted) == (
        3,
        5,
        1,
        3 + 3 + 2 + 2 + 1,
    )
    left = digest(archive)
    assert set(left) == set(untouched) | {
        "platform=chirp/topic=exposure/date=2026-05-04/part-a.parquet"
    }
    assert all(left[k] == v for k, v in untouched.items())
    cut_ms = int(CUT.timestamp() * 1000)
    assert ts_of(partition(archive, "2026-05-04") / "part-a.parquet") == [
        cut_ms,
        cut_ms + 3_600_000,
    ]
    assert pq.read_schema(partition(archive, "2026-05-04") / "part-a.parquet").equals(
        SCHEMAS["exposure"]
    )
    assert not partition(archive, "2026-05-02").exists()  # emptied partitions are removed
    assert not (archive / "platform=chirp" / "topic=ranking").exists()
    assert partition(archive, "2026-05-03").exists()  # still holds the archiver's temp file


def test_a_cut_at_midnight_leaves_that_day_whole(db: Path, archive: Path) -> None:
    day = partition(archive, "2026-05-04")
    files = {p.name: p.read_bytes() for p in day.iterdir()}
    report = purge(db, parse_cut("2026-05-04"), archive=archive)
    assert report.archive is not None and report.archive.files_rewritten == 0
    assert {p.name: p.read_bytes() for p in day.iterdir()} == files
    assert not partition(archive, "2026-05-03").joinpath("part-1.parquet").exists()


def test_an_unreadable_archive_file_stops_the_purge_before_any_change(
    db: Path, archive: Path
) -> None:
    (partition(archive, "2026-05-04") / "part-z.parquet").write_bytes(b"not parquet")
    before = counts(db), digest(archive)
    with pytest.raises(RetentionError, match="part-z.parquet: not a readable archive file"):
        purge(db, CUT, archive=archive)
    assert (counts(db), digest(archive)) == before


def test_an_existing_snapshot_is_republished_without_the_purged_rows(db: Path) -> None:
    snap = db.with_name("amplimon.duckdb.snapshot")
    with Store(db) as store:
        publish_snapshot(store, snap)
    report = purge(db, CUT)
    assert report.snapshot == snap
    table = read_table_file(snap / "deadletter.parquet")
    assert table is not None and table.num_rows == 2


# -- the cut ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-05-04", dt.datetime(2026, 5, 4, tzinfo=dt.UTC)),
        ("2026-05-04T12:00:00Z", CUT),
        ("2026-05-04T14:00:00+02:00", CUT),
        ("2026-05-04 12:00:00.000z", CUT),
    ],
)
def test_parse_cut(text: str, expected: dt.datetime) -> None:
    assert parse_cut(text) == expected and parse_cut(text).tzinfo == dt.UTC


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("2026-05-04T12:00:00", "no UTC offset"),
        ("2026-02-30", "not a valid date"),
        ("yesterday", "not an ISO date"),
        ("2026-05-04T25:00:00Z", "not a valid date-time"),
    ],
)
def test_parse_cut_rejects(text: str, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        parse_cut(text)


# -- the command -----------------------------------------------------------------------------
def one_line_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str], needle: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("amplimon: ") and "\n" not in err and "Traceback" not in err, err
    assert needle in err, err


def test_cli_purges_and_prints_the_report(
    db: Path, archive: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "purge",
        "--before",
        "2026-05-04T14:00:00+02:00",
        "--db",
        str(db),
        "--archive",
        str(archive),
    ]
    assert main([*argv, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "would delete" in out and "(dry run)" in out and "deadletter" in out
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "recorded as run purge-" in out and "kept (--findings to purge)" in out
    assert counts(db)["deadletter"] == 2


def test_cli_db_defaults_to_the_setting(
    db: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AMPLIMON_DB", str(db))
    assert main(["purge", "--before", "2026-05-04T12:00:00Z", "--findings"]) == 0
    assert counts(db)["findings"] == 1


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--before", "2026-05-04T12:00"], "no UTC offset"),
        (["--before", "soon"], "Invalid value for '--before'"),
        ([], "Missing option '--before'"),
    ],
)
def test_cli_bad_arguments(
    db: Path, capsys: pytest.CaptureFixture[str], args: list[str], needle: str
) -> None:
    one_line_exit_2(capsys, ["purge", "--db", str(db), *args], needle)
    assert counts(db)["deadletter"] == 5


def test_cli_missing_files(tmp_path: Path, db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    one_line_exit_2(
        capsys,
        ["purge", "--before", "2026-05-04", "--db", str(tmp_path / "none.duckdb")],
        "none.duckdb: no such database file",
    )
    one_line_exit_2(
        capsys,
        ["purge", "--before", "2026-05-04", "--db", str(db), "--archive", str(tmp_path / "none")],
        "none: no such archive directory",
    )


def test_cli_unwritable_db(
    db: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(retention.os, "access", lambda path, mode: mode != retention.os.W_OK)
    one_line_exit_2(
        capsys,
        ["purge", "--before", "2026-05-04", "--db", str(db)],
        "amplimon.duckdb: not writable (permission denied)",
    )


@pytest.fixture
def held(db: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the database open read-write, as the running sink does."""
    code = (
        "import duckdb, sys; con = duckdb.connect(sys.argv[1]); print('open', flush=True); "
        "sys.stdin.read()"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(db)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "open"
        yield proc
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=10)


def test_a_database_in_use_is_a_one_line_error(
    db: Path, held: subprocess.Popen[str], capsys: pytest.CaptureFixture[str]
) -> None:
    for extra in ([], ["--dry-run"]):
        one_line_exit_2(
            capsys,
            ["purge", "--before", "2026-05-04", "--db", str(db), *extra],
            f"{db} is in use by another process (PID {held.pid}, the sink?); "
            "stop it or purge later",
        )
