"""Atomic Parquet snapshots of the store, so readers never open the writer's DuckDB file.

DuckDB lets one process open a database file read-write and then no other process may open
it at all, not even read-only.  The live sink therefore publishes, after its writes (at most
once per ``min_interval``), one Parquet file per table into a snapshot directory (by default
``<db>.snapshot/``)::

    findings.parquet  amplification.parquet  deadletter.parquet  detectability.parquet
    runs.parquet      manifest.json

Each file is written to a temporary name in the same directory and moved into place with
``os.replace`` — atomic on POSIX — so a reader opens either the previous or the new complete
file, never a torn one, and never waits for the writer.  ``manifest.json`` (row counts,
``published_at``) is replaced last.  :func:`read_snapshot` loads the files into an in-memory
DuckDB connection with the store's table names and schema.

A publish is all or nothing: every table is written to its temporary file first, and only
when all are complete are they moved into place.  A write that fails (disk full, no
permission) deletes the temporary files, leaves the previous snapshot as it was and raises
:class:`~monitor.core.store.StoreError` (one line).  Temporary files of a writer killed mid-way are
removed by the next :class:`SnapshotPublisher`.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterable
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from monitor.core.records import utc_now
from monitor.core.store import SCHEMA, Store, StoreError

__all__ = [
    "SNAPSHOT_TABLES",
    "SnapshotPublisher",
    "default_snapshot_dir",
    "publish_snapshot",
    "read_snapshot",
    "read_table_file",
    "remove_partial_files",
]

SNAPSHOT_TABLES = ("findings", "amplification", "deadletter", "detectability", "runs")


def default_snapshot_dir(db: str | Path) -> Path:
    return Path(f"{db}.snapshot")


def _arrow(con: duckdb.DuckDBPyConnection, table: str) -> pa.Table:
    return con.sql(f"SELECT * FROM {table}").to_arrow_table()  # noqa: S608  # fixed names


def publish_snapshot(
    store: Store, directory: str | Path, tables: Iterable[str] = SNAPSHOT_TABLES
) -> dict[str, int]:
    """Write ``tables`` of ``store`` atomically into ``directory``; returns row counts."""
    out = Path(directory)
    names = list(tables)
    for table in names:
        if table not in SNAPSHOT_TABLES:
            raise ValueError(f"unknown table {table!r}")
    counts: dict[str, int] = {}
    written: list[tuple[Path, Path]] = []  # (temporary, final)
    try:
        out.mkdir(parents=True, exist_ok=True)
        for table in names:
            data = _arrow(store.con, table)
            tmp = out / f".{table}.parquet.{os.getpid()}.tmp"
            written.append((tmp, out / f"{table}.parquet"))
            pq.write_table(data, tmp)
            counts[table] = data.num_rows
        manifest = {"published_at": utc_now().isoformat(), "tables": counts}
        tmp = out / f".manifest.json.{os.getpid()}.tmp"
        written.append((tmp, out / "manifest.json"))
        tmp.write_text(json.dumps(manifest), encoding="utf-8")
        for tmp, final in written:  # renames need no space: all happen once all are written
            os.replace(tmp, final)
    except OSError as err:
        why = err.strerror or " ".join(str(err).split()) or type(err).__name__
        raise StoreError(
            f"{out}: cannot publish the snapshot ({why}); the previous snapshot is unchanged"
        ) from None
    except duckdb.Error as err:
        raise StoreError(
            f"{store.path}: cannot read the tables to publish ({str(err).strip().splitlines()[0]})"
        ) from None
    finally:
        for tmp, _ in written:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
    return counts


def remove_partial_files(directory: str | Path) -> int:
    """Delete temporary files a killed publisher left behind; returns how many."""
    removed = 0
    for path in Path(directory).glob(".*.tmp"):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed += 1
    return removed


def read_table_file(path: str | Path) -> pa.Table | None:
    """One snapshot file, or None if not published yet.

    The file is opened **once** and read through that descriptor: a concurrent ``os.replace``
    then cannot mix two versions.  (``pq.read_table(path)`` may open the path more than
    once — footer, then row groups — and can read a torn file while the writer publishes.)
    """
    try:
        with open(path, "rb") as fh:
            return pq.read_table(pa.BufferReader(fh.read()))
    except FileNotFoundError:
        return None


def read_snapshot(directory: str | Path) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection holding the snapshot's tables (empty ones if absent).

    The files are read once, here: the connection is a consistent copy of each table that a
    later publish cannot change.  The caller closes it.
    """
    con = duckdb.connect()
    try:
        con.execute(SCHEMA)  # the store's tables, empty, for any file not published yet
        for table in SNAPSHOT_TABLES:
            data = read_table_file(Path(directory) / f"{table}.parquet")
            if data is None:
                continue
            con.register("_snapshot", data)
            con.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM _snapshot")  # noqa: S608
            con.unregister("_snapshot")
    except BaseException:
        con.close()
        raise
    return con


class SnapshotPublisher:
    """Rate-limited :func:`publish_snapshot` of the tables changed since the last one."""

    def __init__(self, store: Store, directory: str | Path, *, min_interval: float = 1.0) -> None:
        self.store = store
        self.directory = Path(directory)
        self.min_interval = min_interval
        self._dirty: set[str] = set(SNAPSHOT_TABLES)  # the first publish writes every table
        self._last = 0.0
        self.published = 0
        if self.directory.is_dir():  # one writer per snapshot directory, as per database
            remove_partial_files(self.directory)

    def mark(self, tables: Iterable[str]) -> None:
        self._dirty.update(tables)

    def maybe_publish(self, *, force: bool = False) -> bool:
        if not self._dirty or (not force and time.monotonic() - self._last < self.min_interval):
            return False
        publish_snapshot(self.store, self.directory, sorted(self._dirty))
        self._dirty.clear()
        self._last = time.monotonic()
        self.published += 1
        return True
