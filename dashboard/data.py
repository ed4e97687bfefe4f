"""Read what the monitor publishes, without ever getting in the writer's way.

One interface, :class:`DataSource`, over the two things ``--data`` may name:

* a **DuckDB file** (a replay's output, or a store a writer opens and closes per batch):
  opened *read-only* for the few milliseconds one refresh takes, then closed, so the file is
  never held between refreshes.  DuckDB lets no other process open a file that a writer has
  open — not even read-only — so a refresh that finds it locked keeps the last good snapshot
  and says how old it is; it never raises and never shows the lock error;
* a **snapshot directory** of atomic Parquet files (``findings.parquet``,
  ``amplification.parquet``, ``deadletter.parquet``, ``detectability.parquet``,
  ``runs.parquet``, ``manifest.json``) that the live sink replaces with ``os.replace``
  (:mod:`streams.snapshot`): read into an in-memory DuckDB, so the sink's database is never
  opened at all.  A DuckDB file whose writer holds it falls back to the snapshot directory
  the sink publishes beside it, ``<db>.snapshot/``.

A source re-reads only when the files changed (size and mtime), so many browser sessions
share one read per change.  All SQL here is constant text; no user input reaches it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import threading
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from monitor.core.store import SCHEMA, Store, StoreError
from monitor.core.triagelog import sync
from streams.snapshot import default_snapshot_dir, read_snapshot

__all__ = [
    "TABLES",
    "DataSource",
    "DuckDBFileSource",
    "Snapshot",
    "SnapshotDirSource",
    "empty_frame",
    "open_source",
]

TABLES = ("findings", "amplification", "deadletter", "detectability", "runs")
_TIME_COLUMNS = (
    "event_time",
    "detected_at",
    "updated_at",
    "computed_at",
    "received_at",
    "started_at",
    "finished_at",
)
_RECENT_DEADLETTERS = 200
_QUERIES = {
    "findings": "SELECT * FROM findings",
    "amplification": "SELECT * FROM amplification",
    "detectability": "SELECT * FROM detectability",
    "runs": "SELECT * FROM runs ORDER BY finished_at DESC LIMIT 20",
    "deadletter": f"SELECT * FROM deadletter ORDER BY received_at DESC "  # noqa: S608
    f"LIMIT {_RECENT_DEADLETTERS}",
    "deadletter_counts": "SELECT source, reason, count(*) AS n, max(received_at) AS last_seen "
    "FROM deadletter GROUP BY source, reason ORDER BY n DESC, reason",
}
_EMPTY: dict[str, pd.DataFrame] = {}
_EMPTY_LOCK = threading.Lock()


def empty_frame(table: str) -> pd.DataFrame:
    """An empty frame with the store's columns and types (contract §3 plus extensions)."""
    with _EMPTY_LOCK:
        if not _EMPTY:
            con = duckdb.connect()
            try:
                con.execute(SCHEMA)
                for name in TABLES:
                    _EMPTY[name] = _normalise(con.execute(f"SELECT * FROM {name}").df())  # noqa: S608
                _EMPTY["deadletter_counts"] = pd.DataFrame(
                    {
                        "source": pd.Series(dtype=object),
                        "reason": pd.Series(dtype=object),
                        "n": pd.Series(dtype="int64"),
                        "last_seen": pd.Series(dtype="datetime64[us, UTC]"),
                    }
                )
            finally:
                con.close()
    return _EMPTY[table].copy()


@dataclasses.dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything the dashboard shows, as read at ``read_at`` (wall clock, UTC).

    ``stale`` is set when the latest refresh could not read the source (e.g. a writer held
    the DuckDB file); the frames are then those of the last successful read, and ``note``
    says why in words meant for an analyst.
    """

    findings: pd.DataFrame
    amplification: pd.DataFrame
    detectability: pd.DataFrame
    deadletter: pd.DataFrame
    deadletter_counts: pd.DataFrame
    runs: pd.DataFrame
    read_at: dt.datetime | None = None
    origin: str = ""
    stale: bool = False
    note: str = ""
    live: dict[str, Any] | None = None  # the live sink's snapshot manifest, when read from one

    @property
    def deadletter_total(self) -> int:
        return int(self.deadletter_counts["n"].sum()) if len(self.deadletter_counts) else 0

    @classmethod
    def empty(cls, note: str = "") -> Snapshot:
        return cls(**{name: empty_frame(name) for name in _QUERIES}, note=note)


class DataSource(ABC):
    """Thread-safe, change-driven reader; :meth:`load` never raises for a busy source."""

    retries: tuple[float, ...] = (0.05, 0.15)

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._last: Snapshot | None = None
        self._fingerprint: tuple[Any, ...] | None = None

    @abstractmethod
    def _files(self) -> list[Path]:
        """The files whose size and mtime say whether the data changed."""

    @abstractmethod
    def _read(self) -> tuple[dict[str, Any], str]:
        """One read of every table, and where it came from; raises ``duckdb.Error`` /
        ``OSError`` if the source is busy."""

    def load(self) -> Snapshot:
        with self._lock:
            fingerprint = self._stat()
            if self._last is not None and fingerprint == self._fingerprint:
                return self._last
            if not any(f is not None for _, f in fingerprint):
                return Snapshot.empty(note=f"Waiting for data at {self.path}.")
            error = ""
            for pause in (*self.retries, None):
                try:
                    frames, origin = self._read()
                    live = frames.pop("_live", None)
                except (duckdb.Error, OSError, ValueError) as err:
                    error = str(err)
                    if pause is not None:
                        time.sleep(pause)
                    continue
                self._last = Snapshot(
                    **frames, read_at=dt.datetime.now(dt.UTC), origin=origin, live=live
                )
                self._fingerprint = fingerprint
                return self._last
            return self._busy(error)

    def _busy(self, error: str) -> Snapshot:
        locked = "lock" in error.lower()
        why = "a writer has the database open" if locked else "the data could not be read"
        if self._last is None:
            hint = (
                " (for live data, start the dashboard on the sink's snapshot directory)"
                if locked
                else ""
            )
            return Snapshot.empty(note=f"Waiting for data: {why}; retrying{hint}.")
        assert self._last.read_at is not None
        when = self._last.read_at.strftime("%H:%M:%S UTC")
        return dataclasses.replace(
            self._last, stale=True, note=f"Showing data read at {when}: {why}; retrying."
        )

    def _stat(self) -> tuple[Any, ...]:
        out: list[tuple[str, tuple[int, int] | None]] = []
        for f in self._files():
            try:
                st = f.stat()
                out.append((f.name, (st.st_size, st.st_mtime_ns)))
            except OSError:
                out.append((f.name, None))
        return tuple(out)


class DuckDBFileSource(DataSource):
    """A DuckDB store file, opened read-only per refresh and closed at once.

    While a writer holds the file (the live sink keeps it open), the snapshot the sink
    publishes beside it (``<db>.snapshot/``) is read instead, if there is one.
    """

    def __init__(self, path: str | Path) -> None:
        super().__init__(path)
        self.snapshot_dir = default_snapshot_dir(self.path)

    def _files(self) -> list[Path]:
        return [
            self.path,
            self.path.with_name(self.path.name + ".wal"),
            self.snapshot_dir / "manifest.json",
        ]

    def _read(self) -> tuple[dict[str, Any], str]:
        try:
            con = duckdb.connect(str(self.path), read_only=True)
        except duckdb.IOException:
            if not (self.snapshot_dir / "manifest.json").exists():
                raise
            return _read_snapshot(self.snapshot_dir), f"{self.snapshot_dir.name} (live snapshot)"
        try:
            present = {
                r[0]
                for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()
            }
            return _query_all(con, present), self.path.name
        finally:
            con.close()

    def apply_triage(self, state: str | Path) -> bool:
        """Apply the dashboard's pending triage to this file's ``findings.status``
        (:mod:`monitor.core.triagelog`), holding the file read-write for the moment it takes.
        False if another process holds the file (the change stays pending: a sink writing
        the file applies it itself, otherwise the next attempt does)."""
        with self._lock:  # no read of ours is open meanwhile (one DuckDB mode per process)
            try:
                store = Store(self.path)  # migrates an older file, as any writer does
            except StoreError:
                return False
            try:
                sync(store.con, state)
            finally:
                store.close()
            self._fingerprint = None  # re-read now
        return True


class SnapshotDirSource(DataSource):
    """A directory of ``<table>.parquet`` files replaced atomically by the live sink
    (:mod:`streams.snapshot`); ``manifest.json`` is replaced last."""

    def _files(self) -> list[Path]:
        return [self.path / f"{t}.parquet" for t in TABLES] + [self.path / "manifest.json"]

    def _read(self) -> tuple[dict[str, Any], str]:
        return _read_snapshot(self.path), self.path.name


def _read_snapshot(directory: Path) -> dict[str, Any]:
    con = read_snapshot(directory)  # each file read once, through one descriptor
    try:
        frames: dict[str, Any] = _query_all(con, set(TABLES))
    finally:
        con.close()
    frames["_live"] = _manifest(directory)
    return frames


def _manifest(directory: Path) -> dict[str, Any] | None:
    """The sink's ``manifest.json`` (``published_at``, row counts), or None if unreadable."""
    try:
        with open(directory / "manifest.json", "rb") as fh:
            value = json.loads(fh.read(1 << 20))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _query_all(con: duckdb.DuckDBPyConnection, present: set[str]) -> dict[str, pd.DataFrame]:
    frames = {}
    for name, sql in _QUERIES.items():
        table = name.removesuffix("_counts")
        if table in present:
            frames[name] = _conform(_normalise(con.execute(sql).df()), empty_frame(name))
        else:
            frames[name] = empty_frame(name)
    return frames


def _normalise(df: pd.DataFrame) -> pd.DataFrame:
    for col in _TIME_COLUMNS:
        if col in df.columns:
            df[col] = pd.to_datetime(df[col], utc=True)
    for col in ("evidence", "info"):
        if col in df.columns:
            df[col] = df[col].map(lambda v: v if v is None or isinstance(v, str) else str(v))
    return df


def _conform(df: pd.DataFrame, like: pd.DataFrame) -> pd.DataFrame:
    """Add the store's columns a snapshot lacks (older writers), keep any extra ones."""
    for col in like.columns:
        if col in df.columns:
            continue
        empty = pd.Series([None] * len(df), index=df.index, dtype=object)
        kind = like[col].dtype.kind
        if kind == "M":
            df[col] = pd.to_datetime(empty, utc=True)
        elif kind in "iuf":
            df[col] = pd.to_numeric(empty).astype("float64")
        else:
            df[col] = empty
    return df


def open_source(path: str | Path) -> DataSource:
    """A directory (existing, or a path without a database suffix) is a snapshot directory;
    anything else is a DuckDB file."""
    path = Path(path)
    if path.is_dir() or (not path.exists() and path.suffix.lower() not in {".duckdb", ".db"}):
        return SnapshotDirSource(path)
    return DuckDBFileSource(path)
