"""Triage: the actions an analyst takes on a finding, and the status the dashboard shows.

Every change is appended to the dashboard's ``audit_log``, which is also the outbox that
brings it into the store of record, ``findings.status`` in DuckDB, with one writer per
file (:mod:`monitor.core.triagelog`: the live sink applies it, or the dashboard itself for a
replay's file that no process writes).  The status shown is the latest entry's
``to_status``, else the finding's own status — so the page is right at once, before the
store has caught up, and a sink update of the finding (new numbers, new evidence) never
resets the triage.

=============  ===========================  ============  ================
action         from                         to            note
=============  ===========================  ============  ================
acknowledge    new                          acknowledged  optional
escalate       new, acknowledged            escalated     optional
dismiss        new, acknowledged, escalated dismissed     **required**
resolve        new, acknowledged, escalated resolved      optional
reopen         dismissed, resolved          acknowledged  **required**
=============  ===========================  ============  ================
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from dashboard.auth import User
from dashboard.state import AuditEntry, StateStore
from monitor.core.errors import AmplimonError

__all__ = [
    "ACTIONS",
    "OPEN_STATUSES",
    "Action",
    "TriageError",
    "allowed_actions",
    "apply",
    "check",
    "with_triage",
]

OPEN_STATUSES = ("new", "acknowledged", "escalated")
_ALL = ("new", "acknowledged", "escalated", "dismissed", "resolved")


@dataclass(frozen=True, slots=True)
class Action:
    name: str
    label: str
    sources: tuple[str, ...]
    target: str
    note_required: bool = False


ACTIONS: dict[str, Action] = {
    a.name: a
    for a in (
        Action("acknowledge", "Acknowledge", ("new",), "acknowledged"),
        Action("escalate", "Escalate", ("new", "acknowledged"), "escalated"),
        Action("dismiss", "Dismiss", OPEN_STATUSES, "dismissed", note_required=True),
        Action("resolve", "Resolve", OPEN_STATUSES, "resolved"),
        Action("reopen", "Reopen", ("dismissed", "resolved"), "acknowledged", note_required=True),
    )
}


class TriageError(AmplimonError, ValueError):
    """A refused triage action (one line, shown to the user)."""


def allowed_actions(status: str) -> list[Action]:
    return [a for a in ACTIONS.values() if status in a.sources]


def check(user: User | None, action: str, status: str, note: str) -> Action:
    """Validate a triage request; raises :class:`TriageError` with the reason."""
    if user is None or not user.can("triage"):
        raise TriageError("Only analysts and admins can triage findings.")
    if action not in ACTIONS:
        raise TriageError(f"Unknown action {action!r}.")
    act = ACTIONS[action]
    if status not in act.sources:
        raise TriageError(f"Cannot {action} a finding that is {status}.")
    if act.note_required and not note.strip():
        raise TriageError(f"A note is required to {action} a finding.")
    if len(note) > 4000:
        raise TriageError("The note is too long (at most 4,000 characters).")
    return act


def apply(
    state: StateStore,
    user: User | None,
    finding_id: str,
    action: str,
    *,
    status: str,
    base_status: str,
    note: str = "",
) -> AuditEntry:
    """Check and append one triage change.  ``status`` is the status the user saw;
    :class:`dashboard.state.Conflict` is raised if it changed meanwhile."""
    act = check(user, action, status, note)
    assert user is not None
    return state.append_audit(
        finding_id, user.username, action, status, act.target, note.strip(), base_status=base_status
    )


def with_triage(findings: pd.DataFrame, latest: dict[str, AuditEntry]) -> pd.DataFrame:
    """Add ``status_shown``, ``triaged_by``, ``triaged_at`` and ``updated_since_triage``."""
    df = findings.copy()
    base = df["status"].where(df["status"].isin(_ALL), "new").fillna("new")
    entries = [latest.get(fid) for fid in df["finding_id"]]
    df["status_shown"] = [e.to_status if e else s for e, s in zip(entries, base, strict=True)]
    df["triaged_by"] = [e.who if e else None for e in entries]
    df["triaged_at"] = pd.to_datetime([e.at if e else None for e in entries], utc=True)
    updated = df["updated_at"] if "updated_at" in df else pd.Series(pd.NaT, index=df.index)
    df["updated_since_triage"] = (
        df["triaged_at"].notna() & updated.notna() & (updated > df["triaged_at"])
    )
    return df
