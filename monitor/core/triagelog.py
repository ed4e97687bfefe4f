"""Triage in the store of record: analysts' status changes reach ``findings.status`` in DuckDB,
with who, when and the note in the ``triage`` table — through one writer per file.

**The path.**  The dashboard never shares a DuckDB file with a writer.  It appends each change
to its own SQLite state file (``audit_log``: the *outbox*, one row per change, numbered by
``seq``; ``meta.state_id`` names the file), and whoever writes the DuckDB file applies the
outbox there:

* **live** — the sink (:mod:`streams.kafka.sink`), the only DuckDB writer, calls
  :meth:`TriageInbox.poll` in its loop (at most once a second): it reads the outbox
  *read-only*, applies the rows it has not applied yet in one DuckDB transaction, and the
  next Parquet snapshot carries the new status to the dashboard;
* **a replay's DuckDB file**, which has no writer — the dashboard applies the outbox itself
  right after the change (:func:`sync`), opening the file read-write for the few
  milliseconds it takes; if another process holds the file, the change stays in the outbox
  and is applied on the next attempt (or by that writer, if it is a sink).

**Exactly once.**  ``triage`` is keyed by ``(state_id, seq)``: a row is inserted at most
once, and the rows to apply are those with ``seq`` above the highest already applied for the
file — so a sink killed between its DuckDB commit and anything else re-reads nothing twice,
and nothing is lost (the outbox keeps every row).  After inserting, every finding's
``status`` is set to the ``to_status`` of its latest ``triage`` row, which also restores the
status of a finding that a ``--replace`` replay or a purge wrote again.

The ``triage`` table is schema migration 4 (:mod:`monitor.core.schema`); it is also created here if
absent (``CREATE TABLE IF NOT EXISTS``, the migration's own statement), so that a file opened
without :class:`~monitor.core.store.Store` cannot miss it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from monitor.core.schema import TRIAGE_SCHEMA
from monitor.core.store import StoreError

__all__ = [
    "TriageEntry",
    "TriageInbox",
    "apply_entries",
    "last_applied",
    "read_outbox",
    "state_candidates",
    "sync",
]

log = logging.getLogger("amplimon.triage")

_STATE_ENV = "AMPLIMON_DASHBOARD_STATE"


@dataclass(frozen=True, slots=True)
class TriageEntry:
    state_id: str
    seq: int
    finding_id: str
    who: str
    at: dt.datetime
    action: str
    from_status: str
    to_status: str
    note: str


def read_outbox(
    state: str | Path, after: int = 0, limit: int = 10_000
) -> tuple[str, list[TriageEntry]]:
    """(state id, the outbox rows with ``seq > after``), read from the dashboard's SQLite
    file opened read-only (never written, never created)."""
    uri = f"{Path(state).resolve().as_uri()}?mode=ro"
    con = sqlite3.connect(uri, uri=True, timeout=5)
    try:
        state_id = str(con.execute("SELECT value FROM meta WHERE key = 'state_id'").fetchone()[0])
        rows = con.execute(
            "SELECT seq, finding_id, who, at, action, from_status, to_status, note "
            "FROM audit_log WHERE seq > ? ORDER BY seq LIMIT ?",
            (after, limit),
        ).fetchall()
    finally:
        con.close()
    return state_id, [
        TriageEntry(
            state_id, int(r[0]), r[1], r[2], dt.datetime.fromisoformat(r[3]), r[4], r[5], r[6], r[7]
        )
        for r in rows
    ]


def last_applied(con: duckdb.DuckDBPyConnection, state_id: str) -> int:
    """The highest outbox ``seq`` of ``state_id`` already in ``triage`` (0 if none)."""
    con.execute(TRIAGE_SCHEMA)
    row = con.execute(
        "SELECT coalesce(max(seq), 0) FROM triage WHERE state_id = ?", [state_id]
    ).fetchone()
    return int(row[0]) if row else 0


def apply_entries(con: duckdb.DuckDBPyConnection, entries: Sequence[TriageEntry]) -> int:
    """Insert the rows not yet in ``triage`` and bring ``findings.status`` in line with each
    finding's latest change; inside the caller's transaction.  Returns rows inserted."""
    con.execute(TRIAGE_SCHEMA)
    now = dt.datetime.now(dt.UTC)
    inserted = 0
    for e in entries:
        before = con.execute(
            "SELECT count(*) FROM triage WHERE state_id = ? AND seq = ?", [e.state_id, e.seq]
        ).fetchone()
        if before and before[0]:
            continue
        con.execute(
            "INSERT INTO triage VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                e.state_id,
                e.seq,
                e.finding_id,
                e.who,
                e.at,
                e.action,
                e.from_status,
                e.to_status,
                e.note,
                now,
            ],
        )
        inserted += 1
    con.execute("""
        UPDATE findings SET status = latest.to_status
        FROM (SELECT finding_id, to_status FROM (
                SELECT finding_id, to_status, row_number() OVER (
                    PARTITION BY finding_id ORDER BY triaged_at DESC, seq DESC) AS rn FROM triage)
              WHERE rn = 1) AS latest
        WHERE findings.finding_id = latest.finding_id
          AND findings.status IS DISTINCT FROM latest.to_status""")
    return inserted


def sync(con: duckdb.DuckDBPyConnection, state: str | Path) -> int:
    """Apply what the outbox at ``state`` holds beyond what ``con``'s store has, in one
    transaction on ``con``; returns rows applied."""
    con.execute("BEGIN TRANSACTION")
    try:
        state_id = _state_id(state)
        _, entries = read_outbox(state, last_applied(con, state_id))
        n = apply_entries(con, entries)
        con.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(duckdb.Error):
            con.execute("ROLLBACK")
        raise
    return n


def _state_id(state: str | Path) -> str:
    return read_outbox(state, after=2**62, limit=1)[0]


def state_candidates(
    db: str | Path, snapshot_dir: str | Path | None = None, env: dict[str, str] | None = None
) -> list[Path]:
    """Where the dashboard's state file is: ``$AMPLIMON_DASHBOARD_STATE``, else the defaults
    of ``amplimon dashboard --data DB`` and ``--data SNAPSHOT_DIR``
    (``<data>.dashboard.sqlite``)."""
    env = dict(os.environ) if env is None else env
    if env.get(_STATE_ENV, "").strip():
        return [Path(env[_STATE_ENV].strip())]
    out = [Path(f"{db}.dashboard.sqlite")]
    if snapshot_dir is not None:
        out.append(Path(f"{Path(snapshot_dir)}.dashboard.sqlite"))
    return out


class TriageInbox:
    """The sink's side of the path: :meth:`poll` applies new outbox rows (rate-limited)."""

    def __init__(self, states: Iterable[str | Path], *, every_s: float = 1.0) -> None:
        self.states = [Path(s) for s in states]
        self.every_s = every_s
        self.applied = 0
        self._last = 0.0
        self._warned: set[str] = set()

    def poll(self, store: Any, *, force: bool = False) -> bool:
        """Apply pending triage to ``store`` (a :class:`monitor.core.store.Store`); True if
        ``findings`` may have changed.  Never raises for an unreadable outbox (logged once;
        retried next time): triage must not stop the sink."""
        now = time.monotonic()
        if not force and now - self._last < self.every_s:
            return False
        self._last = now
        changed = False
        for state in self.states:
            if not state.is_file():
                continue
            try:
                with store.transaction():
                    state_id = _state_id(state)
                    _, entries = read_outbox(state, last_applied(store.con, state_id))
                    n = apply_entries(store.con, entries) if entries else 0
            except (sqlite3.Error, OSError, TypeError, StoreError) as err:
                if str(state) not in self._warned:
                    self._warned.add(str(state))
                    log.warning(
                        "cannot read the dashboard's triage outbox %s (%s); retrying",
                        state,
                        " ".join(str(err).split()),
                    )
                continue
            self._warned.discard(str(state))
            if n:
                self.applied += n
                changed = True
                log.info("applied %d triage change(s) from %s to findings.status", n, state)
        return changed
