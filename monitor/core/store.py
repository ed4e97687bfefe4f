"""DuckDB store of record (contract §3): schema, idempotent batched writes, reads.

Writes go through Arrow tables (never row-by-row ``executemany``) and are upserts, so that
re-running a replay or re-delivering Kafka messages converges to the same rows:

* ``findings`` — keyed by ``finding_id``; an update refreshes the numbers and evidence but keeps
  ``detected_at``, the first ``event_time`` and the triage ``status``;
* ``amplification`` — keyed by (platform, region, window_id, period, subject_kind, subject);
* ``deadletter`` — keyed by ``dl_id`` (source + location + reason).

DuckDB allows one read-write process per file: one :class:`Store` per process that writes.

**Schema.**  Opened for writing, a database is brought to the current schema version first,
in one transaction (:mod:`monitor.core.schema`: a version table and one migration per change);
opened read-only, one it cannot read — older than its readers need, or newer than this
release — is refused with a one-line :class:`StoreError`.

**Faults.**  Every write is one transaction (or, inside :meth:`Store.transaction`, part of
one): a write that fails — disk full, file size limit, read-only file or directory — rolls
it back whole and raises :class:`StoreError` with a one-line message, which the CLI prints as
``amplimon: <problem>`` with exit status 2.  DuckDB logs a transaction to its write-ahead log
at commit and truncates a partly written entry, so the file stays readable: reopened, it
holds every transaction committed before the fault and nothing of the failed one.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import duckdb
import msgspec
import pyarrow as pa

from monitor.core.errors import AmplimonError
from monitor.core.records import DeadLetter, Detectability, Finding, Measurement
from monitor.core.schema import HISTORY_SCHEMA, SCHEMA, SchemaError, check_readable, migrate

__all__ = [
    "HISTORY_COLUMNS",
    "HISTORY_SCHEMA",
    "SCHEMA",
    "Store",
    "StoreError",
    "StoreLocked",
    "connect",
    "error_line",
    "insert_run",
]


class StoreError(AmplimonError, RuntimeError):
    """The database cannot be opened or written (one-line message)."""


class StoreLocked(StoreError):
    """Another process holds the database file (DuckDB admits one writer process)."""

    def __init__(self, path: str, pid: int | None) -> None:
        self.path, self.pid = path, pid
        holder = f" (PID {pid})" if pid is not None else ""
        super().__init__(f"{path} is in use by another process{holder}; stop it first")


HISTORY_COLUMNS = (
    "run_id",
    "tick_end",
    "record",
    "platform",
    "region",
    "window_id",
    "period",
    "subject_kind",
    "subject",
    "detector",
    "kind",
    "finding_id",
    "ratio",
    "reach_ratio",
    "effect",
    "ci_low",
    "ci_high",
    "p_value",
    "severity",
    "n_exposures",
    "n_ranked",
    "n_holdout",
    "users_ranked",
    "users_holdout",
)

_FINDING_COLS = [f for f in Finding.__struct_fields__]
_MEASUREMENT_COLS = [f for f in Measurement.__struct_fields__]
_DETECTABILITY_COLS = [f for f in Detectability.__struct_fields__]


def _enc_hook(obj: Any) -> Any:
    """JSON for numpy scalars and anything else a detector may put in evidence."""
    item = getattr(obj, "item", None)
    return item() if callable(item) else str(obj)


_JSON = msgspec.json.Encoder(enc_hook=_enc_hook, order="sorted")


def _table(
    rows: Sequence[msgspec.Struct], cols: list[str], json_cols: tuple[str, ...] = ()
) -> pa.Table:
    data: dict[str, list[Any]] = {c: [] for c in cols}
    for row in rows:
        for c in cols:
            value = getattr(row, c)
            data[c].append(_JSON.encode(value).decode() if c in json_cols else value)
    return pa.table(data)


def error_line(err: BaseException) -> str:
    """The first line of a DuckDB or OS error."""
    if isinstance(err, OSError) and err.strerror:
        return f"{err.strerror}: {err.filename}" if err.filename else err.strerror
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def connect(path: str, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open a DuckDB file; :class:`StoreLocked` if another process holds it, else a one-line
    :class:`StoreError`."""
    try:
        return duckdb.connect(path, read_only=read_only)
    except duckdb.Error as err:
        message = str(err)
        if "lock" in message.lower():
            pid = re.search(r"\(PID (\d+)\)", message)
            raise StoreLocked(path, int(pid.group(1)) if pid else None) from None
        raise StoreError(f"{path}: cannot open database ({error_line(err)})") from None


_INSERT_RUN = "INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?::JSON)"


def _run_row(run_id: str, command: str, started_at: dt.datetime, info: dict[str, Any]) -> list[Any]:
    return [
        run_id,
        command,
        started_at,
        dt.datetime.now(dt.UTC),
        msgspec.json.encode(info).decode(),
    ]


def insert_run(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    command: str,
    started_at: dt.datetime,
    info: dict[str, Any],
) -> None:
    """One row of ``runs`` (finished now) on a connection inside the caller's transaction;
    a run id written again replaces its row.  :meth:`Store.record_run` is the same row."""
    con.execute(_INSERT_RUN, _run_row(run_id, command, started_at, info))


class Store:
    """A read-write connection to an amplimon DuckDB file (or ``:memory:``)."""

    def __init__(self, path: str | Path = ":memory:", *, read_only: bool = False) -> None:
        self.path = str(path)
        self._in_transaction = False
        try:
            if self.path != ":memory:" and not read_only:
                try:
                    Path(self.path).parent.mkdir(parents=True, exist_ok=True)
                except FileExistsError as err:  # a file where a directory should be
                    raise NotADirectoryError(20, "Not a directory", err.filename) from None
        except OSError as err:
            raise StoreError(f"{self.path}: cannot open database ({error_line(err)})") from None
        self.con = connect(self.path, read_only=read_only)
        self.migrated: list[int] = []  # schema versions applied by this open
        try:
            if read_only:
                check_readable(self.con, self.path)
            else:
                self.migrated = migrate(self.con, self.path)
        except (SchemaError, duckdb.Error) as err:
            self.con.close()
            message = (
                str(err)
                if isinstance(err, SchemaError)
                else (f"{self.path}: cannot open database ({error_line(err)})")
            )
            raise StoreError(message) from None

    def close(self) -> None:
        self.con.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Make the writes inside the block one transaction: all of them or none."""
        try:
            self.con.begin()
        except duckdb.Error as err:
            raise StoreError(f"{self.path}: cannot write ({error_line(err)})") from None
        self._in_transaction = True
        try:
            yield
            self.con.commit()
        except duckdb.Error as err:
            self._rollback()
            raise StoreError(
                f"{self.path}: write failed, nothing of it was stored ({error_line(err)})"
            ) from None
        except BaseException:
            self._rollback()
            raise
        finally:
            self._in_transaction = False

    def _rollback(self) -> None:
        with contextlib.suppress(duckdb.Error):  # a failed commit has rolled back already
            self.con.rollback()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writes ---------------------------------------------------------------------------
    def upsert_findings(self, findings: Iterable[Finding]) -> int:
        rows = _latest({f.finding_id: f for f in findings})
        if not rows:
            return 0
        batch = _table(rows, _FINDING_COLS, json_cols=("evidence",))
        now = dt.datetime.now(dt.UTC)
        self._run(
            """
            INSERT INTO findings
            SELECT finding_id, detector, kind, platform, region, window_id, surface,
                   subject_kind, subject, effect, ci_low, ci_high, p_value, n_exposures,
                   severity, event_time, detected_at, evidence::JSON, status, ? FROM batch
            ON CONFLICT (finding_id) DO UPDATE SET
                detector = excluded.detector, kind = excluded.kind, effect = excluded.effect,
                ci_low = excluded.ci_low, ci_high = excluded.ci_high,
                p_value = excluded.p_value, n_exposures = excluded.n_exposures,
                severity = excluded.severity, evidence = excluded.evidence,
                event_time = least(findings.event_time, excluded.event_time),
                updated_at = excluded.updated_at
        """,
            [now],
            batch=batch,
        )
        return len(rows)

    def upsert_measurements(self, rows: Iterable[Measurement]) -> int:
        latest = _latest({m.key: m for m in rows})
        if not latest:
            return 0
        batch = _table(latest, _MEASUREMENT_COLS)
        cols = ", ".join(_MEASUREMENT_COLS)
        self._run(
            f"INSERT OR REPLACE INTO amplification ({cols}) SELECT {cols} FROM batch",  # noqa: S608
            batch=batch,
        )
        return len(latest)

    def upsert_detectability(self, rows: Iterable[Detectability]) -> int:
        latest = _latest(
            {
                (d.detector, d.platform, d.region, d.window_id, d.subject_kind, d.subject): d
                for d in rows
            }
        )
        if not latest:
            return 0
        batch = _table(latest, _DETECTABILITY_COLS)
        cols = ", ".join(_DETECTABILITY_COLS)
        self._run(
            f"INSERT OR REPLACE INTO detectability ({cols}) SELECT {cols} FROM batch",  # noqa: S608
            batch=batch,
        )
        return len(latest)

    def add_deadletters(self, rows: Iterable[DeadLetter]) -> int:
        unique = _latest({d.dl_id: d for d in rows})
        if not unique:
            return 0
        batch = pa.table(
            {
                "dl_id": [d.dl_id for d in unique],
                "source": [d.source for d in unique],
                "raw": [d.raw for d in unique],
                "reason": [d.reason for d in unique],
                "received_at": [d.received_at for d in unique],
                "location": [d.location for d in unique],
                "raw_bytes": pa.array([d.raw_bytes for d in unique], pa.int64()),
                "raw_sha256": pa.array([d.raw_sha256 for d in unique], pa.string()),
            }
        )
        self._run(
            "INSERT OR IGNORE INTO deadletter SELECT dl_id, source, raw, reason, "
            "received_at, location, raw_bytes, raw_sha256 FROM batch",
            batch=batch,
        )
        return len(unique)

    def record_run(
        self, run_id: str, command: str, started_at: dt.datetime, info: dict[str, Any]
    ) -> None:
        self._run(_INSERT_RUN, _run_row(run_id, command, started_at, info))

    def reset_history(self) -> None:
        """Create the ``history`` table if needed and empty it (a run replaces the last)."""
        self._run(HISTORY_SCHEMA)
        self._run("DELETE FROM history")

    def add_history(self, batch: pa.Table) -> int:
        """Append rows (an Arrow table with :data:`HISTORY_COLUMNS`) to ``history``."""
        if batch.num_rows == 0:
            return 0
        self._run(HISTORY_SCHEMA)
        cols = ", ".join(HISTORY_COLUMNS)
        self._run(
            f"INSERT INTO history ({cols}) SELECT {cols} FROM batch",  # noqa: S608
            batch=batch,
        )
        return batch.num_rows

    def tables(self) -> list[str]:
        """Names of the tables in the database (main schema)."""
        rows = self.query(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = 'main' ORDER BY table_name"
        )
        return [r[0] for r in rows]

    def _run(
        self, sql: str, params: list[Any] | None = None, batch: pa.Table | None = None
    ) -> None:
        if not self._in_transaction:
            with self.transaction():
                self._run(sql, params, batch)
            return
        try:
            if batch is not None:
                self.con.register("batch", batch)
            try:
                self.con.execute(sql, params or [])
            finally:
                if batch is not None:
                    # after a failed statement DuckDB refuses even this ("Current transaction
                    # is aborted"): that must not hide the statement's own error
                    with contextlib.suppress(duckdb.Error):
                        self.con.unregister("batch")
        except duckdb.Error as err:
            raise StoreError(
                f"{self.path}: write failed, nothing of it was stored ({error_line(err)})"
            ) from None

    # -- reads ----------------------------------------------------------------------------
    def query(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        return self.con.execute(sql, params or []).fetchall()

    def count(self, table: str) -> int:
        if table not in {"findings", "amplification", "deadletter", "runs", "detectability"}:
            raise ValueError(f"unknown table {table!r}")
        return int(self.con.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # type: ignore[index]  # noqa: S608


def _latest(rows: dict[Any, Any]) -> list[Any]:
    return list(rows.values())
