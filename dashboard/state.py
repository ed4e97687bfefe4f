"""The dashboard's own state, in its own SQLite file — never in the sink's database.

Tables: ``users``, ``login_failures``, ``sessions`` (see :mod:`dashboard.auth`),
``audit_log`` (one row per triage change: finding_id, who, at, action, from → to, note),
``exports`` (evidence packs handed out, with the SHA-256 of their manifest),
``registry_uploads`` (configurations uploaded by admins), ``meta`` (the file's ``state_id``)
and ``schema_migrations`` (:mod:`dashboard.migrations`, applied on open).

The file holds bcrypt hashes and session digests: it is created with mode 0600 (its ``-wal``
and ``-shm`` companions get the same mode from SQLite), and an existing file readable by
others is narrowed to 0600 when opened.

SQLite rather than DuckDB because several processes use the file at once: the Streamlit
server and ``amplimon users add``.  WAL mode lets readers and one writer coexist; every
operation opens a connection, runs one transaction and closes it.  Every statement is
parameterised.
"""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dashboard.migrations import MigrationError, migrate
from monitor.core.errors import AmplimonError

__all__ = ["AuditEntry", "Conflict", "StateError", "StateStore", "utc_now"]


def _private_file(path: Path) -> None:
    """Create ``path`` empty with mode 0600 if absent; narrow an existing one to 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            try:
                if stat.S_IMODE(p.stat().st_mode) & 0o077:
                    os.chmod(p, 0o600)
            except FileNotFoundError:
                pass
    else:
        os.close(fd)


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class StateError(AmplimonError, RuntimeError):
    """The state file cannot be opened (one-line message)."""


class Conflict(RuntimeError):
    """The finding's status changed since the user looked at it (another analyst acted)."""


@dataclass(frozen=True, slots=True)
class AuditEntry:
    seq: int
    finding_id: str
    who: str
    at: dt.datetime
    action: str
    from_status: str
    to_status: str
    note: str


class StateStore:
    """Dashboard-owned state; ``clock`` is injectable so tests can move time."""

    def __init__(self, path: str | Path, *, clock: Callable[[], dt.datetime] = utc_now) -> None:
        self.path = Path(path)
        self.clock = clock
        try:
            _private_file(self.path)
            con = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        except (OSError, sqlite3.Error) as err:
            raise StateError(f"{self.path}: cannot open the dashboard state ({err})") from None
        try:
            con.execute("PRAGMA busy_timeout = 10000")
            con.execute("PRAGMA journal_mode = WAL")
            self.version = migrate(con)
            self.state_id = str(
                con.execute("SELECT value FROM meta WHERE key = 'state_id'").fetchone()[0]
            )
        except (sqlite3.Error, MigrationError) as err:
            raise StateError(f"{self.path}: cannot open the dashboard state ({err})") from None
        finally:
            con.close()

    @contextmanager
    def connect(self, *, write: bool = False) -> Iterator[sqlite3.Connection]:
        """One transaction; ``write=True`` takes the write lock up front (no upgrade races)."""
        con = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        try:
            con.execute("PRAGMA busy_timeout = 10000")
            con.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")
        finally:
            con.close()

    def now(self) -> str:
        return self.clock().astimezone(dt.UTC).isoformat()

    # -- triage ---------------------------------------------------------------------------
    def append_audit(
        self,
        finding_id: str,
        who: str,
        action: str,
        from_status: str,
        to_status: str,
        note: str,
        *,
        base_status: str,
    ) -> AuditEntry:
        """Append a triage change if the status is still ``from_status``.

        The current status is the latest entry's ``to_status``, else ``base_status`` (the
        finding's own status in the monitor's table).  Raises :class:`Conflict` otherwise.
        """
        with self.connect(write=True) as con:
            row = con.execute(
                "SELECT to_status, who, at FROM audit_log WHERE finding_id = ? "
                "ORDER BY seq DESC LIMIT 1",
                (finding_id,),
            ).fetchone()
            current = row[0] if row else base_status
            if current != from_status:
                by = f" by {row[1]} at {row[2][:16].replace('T', ' ')} UTC" if row else ""
                raise Conflict(f"the status changed to {current}{by}; reload and try again")
            at = self.now()
            cur = con.execute(
                "INSERT INTO audit_log (finding_id, who, at, action, from_status, to_status, "
                "note) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (finding_id, who, at, action, from_status, to_status, note),
            )
            seq = cur.lastrowid
        assert seq is not None
        return AuditEntry(
            seq,
            finding_id,
            who,
            dt.datetime.fromisoformat(at),
            action,
            from_status,
            to_status,
            note,
        )

    def history(self, finding_id: str) -> list[AuditEntry]:
        with self.connect() as con:
            rows = con.execute(
                "SELECT seq, finding_id, who, at, action, from_status, to_status, note "
                "FROM audit_log WHERE finding_id = ? ORDER BY seq",
                (finding_id,),
            ).fetchall()
        return [_entry(r) for r in rows]

    def latest_statuses(self) -> dict[str, AuditEntry]:
        """Finding id → its latest triage entry (for every finding ever triaged)."""
        with self.connect() as con:
            rows = con.execute(
                "SELECT a.seq, a.finding_id, a.who, a.at, a.action, a.from_status, "
                "a.to_status, a.note FROM audit_log a JOIN ("
                " SELECT finding_id, max(seq) AS seq FROM audit_log GROUP BY finding_id) m "
                "ON a.seq = m.seq"
            ).fetchall()
        return {r[1]: _entry(r) for r in rows}

    # -- exports and registries -------------------------------------------------------------
    def record_export(self, finding_id: str, who: str, manifest_sha256: str, size: int) -> None:
        with self.connect(write=True) as con:
            con.execute(
                "INSERT INTO exports (finding_id, who, at, manifest_sha256, bytes) "
                "VALUES (?, ?, ?, ?, ?)",
                (finding_id, who, self.now(), manifest_sha256, size),
            )

    def exports(self, finding_id: str) -> list[dict[str, Any]]:
        with self.connect() as con:
            rows = con.execute(
                "SELECT at, who, manifest_sha256, bytes FROM exports "
                "WHERE finding_id = ? ORDER BY seq",
                (finding_id,),
            ).fetchall()
        return [{"at": a, "who": w, "manifest_sha256": s, "bytes": b} for a, w, s, b in rows]

    def add_registry(self, who: str, filename: str, sha256: str, text: str) -> int:
        with self.connect(write=True) as con:
            cur = con.execute(
                "INSERT INTO registry_uploads (who, at, filename, sha256, text) "
                "VALUES (?, ?, ?, ?, ?)",
                (who, self.now(), filename, sha256, text),
            )
            seq = cur.lastrowid
        assert seq is not None
        return seq

    def latest_registry(self) -> dict[str, Any] | None:
        with self.connect() as con:
            row = con.execute(
                "SELECT seq, who, at, filename, sha256, text FROM registry_uploads "
                "ORDER BY seq DESC LIMIT 1"
            ).fetchone()
        if row is None:
            return None
        return dict(zip(("seq", "who", "at", "filename", "sha256", "text"), row, strict=True))

    def registry_history(self) -> list[dict[str, Any]]:
        with self.connect() as con:
            rows = con.execute(
                "SELECT seq, who, at, filename, sha256 FROM registry_uploads ORDER BY seq DESC"
            ).fetchall()
        return [dict(zip(("seq", "who", "at", "filename", "sha256"), r, strict=True)) for r in rows]


def _entry(row: tuple[Any, ...]) -> AuditEntry:
    seq, fid, who, at, action, from_status, to_status, note = row
    return AuditEntry(
        seq, fid, who, dt.datetime.fromisoformat(at), action, from_status, to_status, note
    )
