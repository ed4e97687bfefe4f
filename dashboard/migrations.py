"""Schema migrations of the dashboard's SQLite state file: a version table, one migration per
change, applied in order when a :class:`~dashboard.state.StateStore` opens the file.

``schema_migrations(version, name, applied_at)`` holds one row per migration applied.  A file
without that table was written before migrations existed: its tables are exactly those of
migration 1 (the schema of the first release, commit 6120842), which is written with
``CREATE … IF NOT EXISTS`` and so adopts such a file as version 1 without touching its rows.

Each migration runs in its own ``BEGIN IMMEDIATE`` transaction that first re-reads the version:
two processes opening an old file at once (the Streamlit server and ``amplimon users add``)
apply each migration exactly once, and a failed migration leaves the file at the previous
version, whole.  A file whose version is newer than this code knows is refused with one line
(an older amplimon must not write a schema it does not understand).

To change the schema: append a migration (never edit one that has shipped), and add the
schema it replaces to ``tests/dashboard/state_schemas.py`` so the test opens a file of it.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass

from monitor.core.errors import AmplimonError

__all__ = ["MIGRATIONS", "Migration", "MigrationError", "current_version", "migrate"]


class MigrationError(AmplimonError, RuntimeError):
    """The state file cannot be brought to this version (one-line message)."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    apply: Callable[[sqlite3.Connection], None]


def _script(sql: str) -> Callable[[sqlite3.Connection], None]:
    def run(con: sqlite3.Connection) -> None:
        for statement in sql.split(";"):
            if statement.strip():
                con.execute(statement)

    return run


_V1_INITIAL = """
CREATE TABLE IF NOT EXISTS users (
    username   TEXT PRIMARY KEY,
    role       TEXT NOT NULL CHECK (role IN ('viewer', 'analyst', 'admin')),
    pw_hash    BLOB NOT NULL,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL DEFAULT '',
    disabled   INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS login_attempts (
    username      TEXT PRIMARY KEY,
    failures      INTEGER NOT NULL,
    last_failure  TEXT NOT NULL,
    locked_until  TEXT
);
CREATE TABLE IF NOT EXISTS sessions (
    token_hash TEXT PRIMARY KEY,
    username   TEXT NOT NULL,
    created_at TEXT NOT NULL,
    last_seen  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_log (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    finding_id  TEXT NOT NULL,
    who         TEXT NOT NULL,
    at          TEXT NOT NULL,
    action      TEXT NOT NULL,
    from_status TEXT NOT NULL,
    to_status   TEXT NOT NULL,
    note        TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS audit_log_finding ON audit_log (finding_id, seq);
CREATE TABLE IF NOT EXISTS exports (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    finding_id      TEXT NOT NULL,
    who             TEXT NOT NULL,
    at              TEXT NOT NULL,
    manifest_sha256 TEXT NOT NULL,
    bytes           INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS registry_uploads (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    who      TEXT NOT NULL,
    at       TEXT NOT NULL,
    filename TEXT NOT NULL,
    sha256   TEXT NOT NULL,
    text     TEXT NOT NULL
)
"""

# Lockout per (account, client) and per client instead of per name: a name alone let anyone
# lock named staff out from anywhere.  Old per-name counts are dropped (they expire within
# the lockout period anyway, and they cannot be attributed to a client).
_V2_LOCKOUT_SCOPES = """
DROP TABLE IF EXISTS login_attempts;
CREATE TABLE login_failures (
    scope        TEXT NOT NULL CHECK (scope IN ('account', 'client')),
    account      TEXT NOT NULL,   -- '' for the client scope
    client       TEXT NOT NULL,
    failures     INTEGER NOT NULL,
    last_failure TEXT NOT NULL,
    locked_until TEXT,
    PRIMARY KEY (scope, account, client)
)
"""

# Triage reaches the store of record (findings.status and the triage table in DuckDB), keyed
# by (state id, audit seq): a random id per state file, so that two files never collide there.
_V3_STATE_ID = """
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
INSERT INTO meta (key, value) VALUES ('state_id', lower(hex(randomblob(8))))
"""

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "initial schema (first release)", _script(_V1_INITIAL)),
    Migration(2, "lockout per account+client and per client", _script(_V2_LOCKOUT_SCOPES)),
    Migration(3, "state id (triage in the store of record)", _script(_V3_STATE_ID)),
)

_VERSION_TABLE = """CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at TEXT NOT NULL
)"""


def current_version(con: sqlite3.Connection) -> int:
    """The highest migration applied (0 for a new or pre-migration file)."""
    has = con.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
    ).fetchone()
    if not has:
        return 0
    row = con.execute("SELECT max(version) FROM schema_migrations").fetchone()
    return int(row[0] or 0)


def migrate(con: sqlite3.Connection, migrations: tuple[Migration, ...] = MIGRATIONS) -> int:
    """Bring the file up to the last migration; returns the version it is at.

    ``con`` must be in autocommit mode (``isolation_level=None``)."""
    latest = migrations[-1].version
    for m in migrations:
        con.execute("BEGIN IMMEDIATE")
        try:
            con.execute(_VERSION_TABLE)
            version = current_version(con)
            if version > latest:
                raise MigrationError(
                    f"written by a newer amplimon (schema version {version}; "
                    f"this one knows up to {latest})"
                )
            if version < m.version:
                m.apply(con)
                con.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    (m.version, m.name, dt.datetime.now(dt.UTC).isoformat()),
                )
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")
    return current_version(con)
