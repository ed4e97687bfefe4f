"""Retention: delete what is older than a cut-off from the store and the raw-event archive.

:func:`purge` enforces a retention period (``amplimon purge --before DATE``).  Each table has
one rule; the cut is compared with the row's own timestamp, and a row whose timestamp is
NULL is kept (its age is unknown):

================  ==============================  ============================================
table             deleted when                    why
================  ==============================  ============================================
``deadletter``    ``received_at`` < cut           the raw text of rejected records is
                                                  personal data (wall clock of receipt)
``amplification`` ``computed_at`` < cut           aggregates, recomputed every tick while a
                                                  window runs: a row last computed before the
                                                  cut describes a finished period
``detectability`` ``computed_at`` < cut           as ``amplification``
``history``       ``tick_end`` < cut              per-tick aggregates of research replays
                                                  (event time); only if the table exists
``findings``      ``event_time`` < cut, only      enforcement records (aggregates with their
                  with ``findings=True``          evidence): kept unless asked
``runs``          never                           the audit trail; the purge adds its own row
================  ==============================  ============================================

The raw-event archive (:mod:`streams.kafka.archive`, ``DIR/platform=P/topic=T/date=D/
part-*.parquet``, partitioned by the event's UTC day) is purged by event time: partitions of
days before the cut's UTC day are deleted whole; in the cut's own day (a cut after 00:00 UTC)
each file is rewritten keeping the rows with ``ts`` >= cut (temporary file, then
``os.replace``); directories left empty are removed.  Nothing outside that layout is touched
(other files, symbolic links, temporary files of a running archiver).

The table deletions, the archive changes and the ``runs`` row happen inside one DuckDB
transaction: if anything fails the database is unchanged and no purge is recorded (archive
files already removed stay removed; purging again finishes the job — every step is
idempotent).  The archive is read and checked before anything changes.  A dry run opens the
database read-only and only counts.

A purge erases, not just hides: DuckDB's DELETE leaves deleted values in the file's free
blocks, so the database is then copied into a fresh file that replaces it (:func:`_compact`;
it needs free disk space for one copy).  An existing snapshot directory of the store
(:mod:`streams.snapshot`) is republished so that readers no longer see purged rows.

DuckDB admits one process per database file: while the sink runs, the purge fails with a
one-line :class:`RetentionError` naming the holder.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.compute as pc
import pyarrow.parquet as pq

from monitor.core.records import utc_now
from monitor.core.store import Store, StoreError, StoreLocked, connect, error_line, insert_run
from streams.snapshot import default_snapshot_dir, publish_snapshot

__all__ = [
    "RULES",
    "ArchiveCount",
    "PurgeReport",
    "RetentionError",
    "Rule",
    "TableCount",
    "parse_cut",
    "purge",
]


class RetentionError(StoreError):
    """The purge cannot run: database in use or unwritable, archive unreadable (one line)."""


@dataclass(frozen=True)
class Rule:
    """Rows of ``table`` whose ``column`` is before the cut are deleted."""

    table: str
    column: str
    opt_in: bool = False  # purged only when asked (findings)


RULES: tuple[Rule, ...] = (
    Rule("deadletter", "received_at"),
    Rule("amplification", "computed_at"),
    Rule("detectability", "computed_at"),
    Rule("history", "tick_end"),
    Rule("findings", "event_time", opt_in=True),
)


@dataclass(frozen=True)
class TableCount:
    table: str
    rule: str  # e.g. "received_at < cut", or why the table is kept
    deleted: int  # rows deleted (dry run: that would be)
    kept: int  # rows left


@dataclass(frozen=True)
class ArchiveCount:
    root: Path
    partitions_deleted: int  # date partitions whose every file goes
    files_deleted: int
    files_rewritten: int  # files of the cut's day, rewritten without the older rows
    rows_deleted: int


@dataclass(frozen=True)
class PurgeReport:
    db: str
    before: dt.datetime
    dry_run: bool
    tables: tuple[TableCount, ...]
    archive: ArchiveCount | None
    run_id: str | None  # the ``runs`` row recording the purge (None: dry run)
    snapshot: Path | None  # snapshot directory republished, if any

    def deleted(self, table: str) -> int:
        return next((t.deleted for t in self.tables if t.table == table), 0)

    def kept(self, table: str) -> int:
        return next((t.kept for t in self.tables if t.table == table), 0)


# -- the cut ---------------------------------------------------------------------------------
def parse_cut(text: str) -> dt.datetime:
    """``YYYY-MM-DD`` (00:00 UTC that day) or an RFC 3339 date-time with offset → UTC.

    Raises ``ValueError`` with a one-line message.
    """
    value = text.strip()
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        try:
            return dt.datetime.combine(dt.date.fromisoformat(value), dt.time(), dt.UTC)
        except ValueError as err:
            raise ValueError(f"{text!r} is not a valid date ({err})") from None
    if not re.fullmatch(
        r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?"
        r"([Zz]|[+-]\d{2}:\d{2})?",
        value,
    ):
        raise ValueError(
            f"{text!r} is not an ISO date (2026-05-01) or an RFC 3339 date-time "
            "(2026-05-01T12:00:00Z)"
        )
    try:
        parsed = dt.datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError as err:
        raise ValueError(f"{text!r} is not a valid date-time ({err})") from None
    if parsed.tzinfo is None:
        raise ValueError(f"{text!r} has no UTC offset; add Z or +HH:MM")
    return parsed.astimezone(dt.UTC)


# -- the archive -----------------------------------------------------------------------------
@dataclass(frozen=True)
class _FileStep:
    path: Path
    rows: int
    drop: int  # rows with ts < cut; == rows: delete the file


def _subdirs(parent: Path, key: str) -> list[Path]:
    return sorted(p for p in parent.glob(f"{key}=*") if p.is_dir() and not p.is_symlink())


def _partitions(root: Path) -> list[tuple[Path, dt.date]]:
    found = []
    for platform in _subdirs(root, "platform"):
        for topic in _subdirs(platform, "topic"):
            for folder in _subdirs(topic, "date"):
                day = folder.name[len("date=") :]
                if re.fullmatch(r"\d{4}-\d{2}-\d{2}", day):
                    with contextlib.suppress(ValueError):
                        found.append((folder, dt.date.fromisoformat(day)))
    return found


def _plan_archive(root: Path, cut: dt.datetime) -> tuple[list[_FileStep], int]:
    """The archive files with rows before the cut, and the date partitions they empty."""
    cut_day = cut.date()
    steps, emptied = [], 0
    for folder, day in _partitions(root):
        if day > cut_day or (day == cut_day and cut.time() == dt.time()):
            continue
        here = [
            _inspect(p, cut, whole=day < cut_day)
            for p in sorted(folder.glob("part-*.parquet"))
            if p.is_file() and not p.is_symlink()
        ]
        steps += [s for s in here if s.drop]
        emptied += bool(here) and all(s.drop == s.rows for s in here)
    return steps, emptied


def _inspect(path: Path, cut: dt.datetime, *, whole: bool) -> _FileStep:
    """Rows of ``path`` before the cut: all of them in a day before the cut's (the archive
    partitions by the event's UTC day), else counted from ``ts``."""
    try:
        if whole:
            rows = pq.ParquetFile(path).metadata.num_rows
            return _FileStep(path, rows, rows)
        ts = pq.ParquetFile(path).read(columns=["ts"]).column("ts")
    except (OSError, KeyError, ValueError) as err:  # pyarrow's errors subclass these
        raise RetentionError(f"{path}: not a readable archive file ({error_line(err)})") from None
    return _FileStep(path, len(ts), int(pc.sum(pc.less(ts, _ceil_ms(cut))).as_py() or 0))


def _apply_archive(root: Path, steps: list[_FileStep], cut: dt.datetime) -> None:
    for step in steps:
        if step.drop == step.rows:
            step.path.unlink(missing_ok=True)
            continue
        table = pq.ParquetFile(step.path).read()
        kept = table.filter(
            pc.fill_null(pc.greater_equal(table.column("ts"), _ceil_ms(cut)), True)
        )  # as _inspect counts: null is not before
        tmp = step.path.with_name(f".{step.path.name}.purge-{os.getpid()}.tmp")
        try:
            pq.write_table(kept, tmp)
            os.replace(tmp, step.path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
    for folder in sorted({s.path.parent for s in steps}):
        for directory in (folder, folder.parent, folder.parent.parent):  # date, topic, platform
            if directory == root:
                break
            try:
                directory.rmdir()  # only if empty
            except OSError:
                break


def _ceil_ms(cut: dt.datetime) -> int:
    """The first epoch millisecond at or after ``cut`` (rows keep ``ts`` >= cut)."""
    micros = (cut - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1)
    return -(-micros // 1000)


# -- the database ----------------------------------------------------------------------------
def _connect(db: Path, *, read_only: bool) -> duckdb.DuckDBPyConnection:
    if not db.is_file():
        raise RetentionError(f"{db}: no such database file")
    if not read_only and not (os.access(db, os.W_OK) and os.access(db.parent, os.W_OK)):
        raise RetentionError(f"{db}: not writable (permission denied); purge as its owner")
    try:
        return connect(str(db), read_only=read_only)
    except StoreLocked as err:
        holder = f" (PID {err.pid}, the sink?)" if err.pid is not None else " (the sink?)"
        raise RetentionError(
            f"{db} is in use by another process{holder}; stop it or purge later"
        ) from None
    except StoreError as err:
        raise RetentionError(str(err)) from None


def _count(con: duckdb.DuckDBPyConnection, rule: Rule, cut: dt.datetime, purge: bool) -> TableCount:
    old, total = con.execute(
        f"SELECT count(*) FILTER (WHERE {rule.column} < ?), count(*) FROM {rule.table}",  # noqa: S608  # fixed names
        [cut],
    ).fetchone() or (0, 0)
    if not purge:
        return TableCount(rule.table, "kept (--findings to purge)", 0, total)
    return TableCount(rule.table, f"{rule.column} < cut", old, total - old)


# -- purge -----------------------------------------------------------------------------------
def purge(
    db_path: str | Path,
    before: dt.datetime,
    *,
    archive: str | Path | None = None,
    findings: bool = False,
    dry_run: bool = False,
    snapshot: str | Path | None = None,
) -> PurgeReport:
    """Delete what is older than ``before`` (timezone-aware) by the rules of the module
    docstring; ``archive``: also purge that raw-event archive directory; ``findings``: also
    delete findings whose ``event_time`` is before the cut; ``dry_run``: count, change
    nothing; ``snapshot``: the store's snapshot directory to republish if it exists
    (default ``<db>.snapshot``).  Raises :class:`RetentionError` (one line)."""
    if before.tzinfo is None:
        raise ValueError("before must be timezone-aware")
    cut = before.astimezone(dt.UTC)
    db = Path(db_path)
    root = Path(archive) if archive is not None else None
    if root is not None and not root.is_dir():
        raise RetentionError(f"{root}: no such archive directory")
    started = utc_now()
    con = _connect(db, read_only=dry_run)
    try:
        steps, emptied = _plan_archive(root, cut) if root is not None else ([], 0)
        arch = (
            None
            if root is None
            else ArchiveCount(
                root,
                emptied,
                sum(s.drop == s.rows for s in steps),
                sum(s.drop < s.rows for s in steps),
                sum(s.drop for s in steps),
            )
        )
        present = {
            r[0]
            for r in con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'"
            ).fetchall()
        }
        rules = [r for r in RULES if r.table in present]
        run_id = None if dry_run or "runs" not in present else (f"purge-{started:%Y%m%dT%H%M%S%fZ}")
        try:
            con.begin()
            counts = tuple(_count(con, r, cut, findings or not r.opt_in) for r in rules)
            if not dry_run:
                for rule, count in zip(rules, counts, strict=True):
                    if count.deleted:
                        con.execute(
                            f"DELETE FROM {rule.table} WHERE {rule.column} < ?",  # noqa: S608
                            [cut],
                        )
                if root is not None:
                    _apply_archive(root, steps, cut)
                if run_id is not None:
                    _record(con, run_id, started, cut, findings, counts, arch)
            con.commit()
        except (duckdb.Error, OSError) as err:
            with contextlib.suppress(duckdb.Error):
                con.rollback()
            where = (
                f"{root}: archive partly purged"
                if isinstance(err, OSError)
                else f"{db}: purge failed"
            )
            raise RetentionError(
                f"{where}, database unchanged ({error_line(err)}); purge again"
            ) from None
        counts += _runs(con, present)
        if not dry_run:
            _compact(con, db)
    finally:
        con.close()
    return PurgeReport(
        str(db), cut, dry_run, counts, arch, run_id, None if dry_run else _republish(db, snapshot)
    )


def _compact(con: duckdb.DuckDBPyConnection, db: Path) -> None:
    """Rewrite the database file with only the live rows, then move it into place.

    DuckDB's DELETE leaves the deleted values in the file's free blocks until they happen to
    be reused; copying the database into a fresh file makes the purge an erasure.  The copy
    is made while this connection still holds the lock, and replaces the file atomically.
    """
    target = db.resolve()  # a symbolic link stays one
    tmp = target.with_name(f".{target.name}.purge-{os.getpid()}.tmp")
    leftovers = (tmp, tmp.with_name(tmp.name + ".wal"))
    try:
        for path in leftovers:
            path.unlink(missing_ok=True)
        con.execute("CHECKPOINT")  # nothing left in the WAL of the file being replaced
        name = str(con.execute("SELECT current_database()").fetchone()[0])  # type: ignore[index]
        quoted = str(tmp).replace("'", "''")
        con.execute(f"ATTACH '{quoted}' AS purge_compacted")
        con.execute('COPY FROM DATABASE "{}" TO purge_compacted'.format(name.replace('"', '""')))
        con.execute("DETACH purge_compacted")
        shutil.copymode(target, tmp)
        os.replace(tmp, target)
    except (duckdb.Error, OSError) as err:
        raise RetentionError(
            f"{db}: rows deleted, but rewriting the file failed, so their "
            f"bytes may remain in it ({error_line(err)}); purge again"
        ) from None
    finally:
        for path in leftovers:
            with contextlib.suppress(OSError):
                path.unlink()


def _runs(con: duckdb.DuckDBPyConnection, present: set[str]) -> tuple[TableCount, ...]:
    if "runs" not in present:
        return ()
    total = con.execute("SELECT count(*) FROM runs").fetchone()
    return (TableCount("runs", "kept (audit trail)", 0, int(total[0]) if total else 0),)


def _record(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    started: dt.datetime,
    cut: dt.datetime,
    findings: bool,
    counts: tuple[TableCount, ...],
    arch: ArchiveCount | None,
) -> None:
    info: dict[str, Any] = {
        "before": cut.isoformat(),
        "findings": findings,
        "deleted": {c.table: c.deleted for c in counts},
        "archive": None
        if arch is None
        else {
            "root": str(arch.root),
            "partitions_deleted": arch.partitions_deleted,
            "files_deleted": arch.files_deleted,
            "files_rewritten": arch.files_rewritten,
            "rows_deleted": arch.rows_deleted,
        },
    }
    insert_run(con, run_id, "purge", started, info)


def _republish(db: Path, snapshot: str | Path | None) -> Path | None:
    """Rewrite the store's snapshot, if one was published, so purged rows leave it too."""
    directory = Path(snapshot) if snapshot is not None else default_snapshot_dir(db)
    if not (directory / "manifest.json").is_file():
        return None
    with Store(db) as store:
        publish_snapshot(store, directory)
    return directory
