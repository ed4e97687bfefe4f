"""Triage: transitions, notes, roles, conflicts; state survives the sink updating findings."""

from __future__ import annotations

from pathlib import Path

import pytest

from dashboard import triage
from dashboard.auth import User
from dashboard.data import open_source
from dashboard.state import Conflict, StateStore
from monitor.core.store import Store
from tests.dashboard import factories as F

ANALYST, VIEWER = User("ana", "analyst"), User("vic", "viewer")


@pytest.mark.parametrize(
    ("status", "actions"),
    [
        ("new", ["acknowledge", "escalate", "dismiss", "resolve"]),
        ("acknowledged", ["escalate", "dismiss", "resolve"]),
        ("escalated", ["dismiss", "resolve"]),
        ("dismissed", ["reopen"]),
        ("resolved", ["reopen"]),
    ],
)
def test_allowed_actions(status: str, actions: list[str]) -> None:
    assert [a.name for a in triage.allowed_actions(status)] == actions


def test_check_refuses() -> None:
    with pytest.raises(triage.TriageError, match="Only analysts and admins"):
        triage.check(VIEWER, "acknowledge", "new", "")
    with pytest.raises(triage.TriageError, match="Only analysts"):
        triage.check(None, "acknowledge", "new", "")
    with pytest.raises(triage.TriageError, match="note is required to dismiss"):
        triage.check(ANALYST, "dismiss", "new", "   ")
    with pytest.raises(triage.TriageError, match="Cannot acknowledge a finding that is resolved"):
        triage.check(ANALYST, "acknowledge", "resolved", "")
    with pytest.raises(triage.TriageError, match="Unknown action"):
        triage.check(ANALYST, "delete", "new", "")
    assert triage.check(ANALYST, "dismiss", "new", "organic surge").target == "dismissed"


def test_apply_appends_history_and_detects_conflicts(tmp_path: Path) -> None:
    state = StateStore(tmp_path / "s.sqlite")
    triage.apply(
        state, ANALYST, "f1", "acknowledge", status="new", base_status="new", note="looking"
    )
    triage.apply(state, ANALYST, "f1", "escalate", status="acknowledged", base_status="new")
    with pytest.raises(Conflict, match="changed to escalated by ana"):
        triage.apply(state, ANALYST, "f1", "acknowledge", status="new", base_status="new")
    history = state.history("f1")
    assert [(e.from_status, e.to_status, e.note) for e in history] == [
        ("new", "acknowledged", "looking"),
        ("acknowledged", "escalated", ""),
    ]
    assert state.latest_statuses()["f1"].to_status == "escalated"


def test_triage_survives_the_sink_updating_the_finding(tmp_path: Path) -> None:
    db = F.write_db(tmp_path / "out.duckdb", [F.finding(effect=1.6)])
    state = StateStore(tmp_path / "s.sqlite")
    fid = F.finding().finding_id
    triage.apply(state, ANALYST, fid, "acknowledge", status="new", base_status="new", note="seen")
    with Store(db) as store:  # the sink raises the estimate and the severity
        store.upsert_findings([F.finding(effect=2.4, severity="critical")])
    view = triage.with_triage(open_source(db).load().findings, state.latest_statuses())
    row = view.iloc[0]
    assert row["status_shown"] == "acknowledged" and row["triaged_by"] == "ana"
    assert row["effect"] == 2.4 and bool(row["updated_since_triage"])
    assert F.read_status(db, fid) == "new"  # no writer has applied the outbox yet


def test_status_shown_defaults_to_the_findings_own(tmp_path: Path) -> None:
    findings = open_source(F.write_db(tmp_path / "o.duckdb", F.default_findings())).load()
    view = triage.with_triage(findings.findings, {})
    assert set(view["status_shown"]) == {"new"} and not view["updated_since_triage"].any()
