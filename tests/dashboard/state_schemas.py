"""Every schema the dashboard's state file has had, as written by that release, so that the
migration test opens a file of each.  Append the schema a new migration replaces."""

from __future__ import annotations

# dashboard/state.py SCHEMA at commit 6120842 (first release; no version table)
V0_UNVERSIONED = """
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
);
"""
