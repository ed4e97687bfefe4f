"""monitor.core.triagelog: the dashboard's outbox applied to the store of record exactly once."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from dashboard import triage
from dashboard.auth import User
from dashboard.state import StateStore
from monitor.core.store import Store
from monitor.core.triagelog import TriageInbox, read_outbox, state_candidates, sync
from tests.dashboard import factories as F

ANA = User("ana", "analyst")


def status(store: Store, fid: str) -> str:
    return store.query("SELECT status FROM findings WHERE finding_id = ?", [fid])[0][0]


def test_inbox_applies_each_change_once_and_keeps_it(tmp_path: Path) -> None:
    state = StateStore(tmp_path / "s.sqlite")
    fid = F.finding().finding_id
    with Store(tmp_path / "o.duckdb") as store:
        store.upsert_findings(F.default_findings())
        inbox = TriageInbox([tmp_path / "s.sqlite", tmp_path / "absent.sqlite"])
        assert not inbox.poll(store, force=True)  # nothing to apply
        triage.apply(state, ANA, fid, "acknowledge", status="new", base_status="new", note="seen")
        triage.apply(state, ANA, fid, "escalate", status="acknowledged", base_status="new")
        assert inbox.poll(store, force=True) and inbox.applied == 2
        assert not inbox.poll(store, force=True) and inbox.applied == 2  # exactly once
        assert status(store, fid) == "escalated"
        rows = store.query(
            "SELECT state_id, seq, who, action, to_status, note FROM triage ORDER BY seq"
        )
        assert rows == [
            (state.state_id, 1, "ana", "acknowledge", "acknowledged", "seen"),
            (state.state_id, 2, "ana", "escalate", "escalated", ""),
        ]
        store.upsert_findings([F.finding(effect=3.0, severity="critical")])  # the sink again
        assert status(store, fid) == "escalated"
        # a finding written again (replay --replace, purge): the next poll restores it
        store.query("DELETE FROM findings WHERE finding_id = ?", [fid])
        store.upsert_findings([F.finding()])
        assert status(store, fid) == "new"
        triage.apply(
            state,
            ANA,
            F.finding("acc-2").finding_id,
            "acknowledge",
            status="new",
            base_status="new",
        )
        assert inbox.poll(store, force=True)
        assert status(store, fid) == "escalated"


def test_poll_is_rate_limited(tmp_path: Path) -> None:
    StateStore(tmp_path / "s.sqlite")
    with Store() as store:
        inbox = TriageInbox([tmp_path / "s.sqlite"], every_s=3600)
        inbox.poll(store)
        triage.apply(
            StateStore(tmp_path / "s.sqlite"),
            ANA,
            "f1",
            "acknowledge",
            status="new",
            base_status="new",
        )
        assert not inbox.poll(store)  # within the interval: not even read
        assert inbox.poll(store, force=True)


def test_an_unreadable_outbox_never_stops_the_sink(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bad = tmp_path / "s.sqlite"
    bad.write_bytes(b"not a database at all" * 100)
    with Store() as store, caplog.at_level(logging.WARNING, "amplimon.triage"):
        inbox = TriageInbox([bad])
        assert not inbox.poll(store, force=True)
        assert not inbox.poll(store, force=True)
    assert len([r for r in caplog.records if "triage outbox" in r.message]) == 1


def test_the_outbox_is_read_without_writing_it(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    state = StateStore(path)
    triage.apply(state, ANA, "f1", "acknowledge", status="new", base_status="new")
    path.chmod(0o400)
    try:
        state_id, entries = read_outbox(path)
    finally:
        path.chmod(0o600)
    assert state_id == state.state_id and [e.to_status for e in entries] == ["acknowledged"]
    with pytest.raises(Exception):  # noqa: B017 - sqlite3 or OS error: it is never created
        read_outbox(tmp_path / "none.sqlite")
    assert not (tmp_path / "none.sqlite").exists()


def test_sync_on_a_replay_file(tmp_path: Path) -> None:
    import duckdb

    db = F.write_db(tmp_path / "o.duckdb", F.default_findings())
    state = StateStore(tmp_path / "s.sqlite")
    fid = F.finding().finding_id
    triage.apply(state, ANA, fid, "dismiss", status="new", base_status="new", note="surge")
    con = duckdb.connect(str(db))
    try:
        assert sync(con, tmp_path / "s.sqlite") == 1
        assert sync(con, tmp_path / "s.sqlite") == 0
    finally:
        con.close()
    assert F.read_status(db, fid) == "dismissed"


def test_state_candidates() -> None:
    assert state_candidates("x.duckdb", "x.duckdb.snapshot", env={}) == [
        Path("x.duckdb.dashboard.sqlite"),
        Path("x.duckdb.snapshot.dashboard.sqlite"),
    ]
    assert state_candidates("x.duckdb", env={"AMPLIMON_DASHBOARD_STATE": "/s.sqlite"}) == [
        Path("/s.sqlite")
    ]
