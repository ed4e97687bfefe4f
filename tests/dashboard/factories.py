"""Factories for dashboard tests: findings, measurements, configs, data files, users."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import duckdb

from dashboard.auth import Auth
from dashboard.state import StateStore
from monitor.core.records import DeadLetter, Finding, Measurement
from monitor.core.store import Store
from streams.snapshot import publish_snapshot
from tests.evidence_support import real_evidence

T0 = dt.datetime(2026, 5, 4, 12, 0, tzinfo=dt.UTC)
PASSWORDS = {"admin": "admin-pass-1", "analyst": "analyst-pass-1", "viewer": "viewer-pass-1"}

CONFIG_YAML = """\
windows:
  - id: de-2026
    jurisdiction: DE
    name: Bundestag election
    start: 2026-05-04T00:00:00Z
    end: 2026-05-07T00:00:00Z
    baseline: {start: 2026-05-01T00:00:00Z, end: 2026-05-04T00:00:00Z}
  - id: at-2026
    jurisdiction: AT
    name: Nationalrat election
    start: 2026-05-05T00:00:00Z
    end: 2026-05-08T00:00:00Z
actors:
  - {actor: acc-1, name: Jane Doe, kind: candidate, group: party-a, regions: [DE]}
  - {actor: acc-2, name: John Roe, kind: candidate, group: party-b, regions: [DE]}
  - {actor: acc-3, name: Daily News, kind: media, regions: [AT]}
  - {actor: acc-4, name: Party A, kind: party, group: party-a, regions: [DE]}
disclosures:
  - {platform: chirp, intervention: civic-info-1, label: promoted, actors: [acc-3],
     regions: [AT], start: 2026-05-05T00:00:00Z, end: 2026-05-08T00:00:00Z,
     description: "Civic information boost"}
"""


def finding(
    subject: str = "acc-1",
    *,
    detector: str = "holdout_shift",
    kind: str = "amplification",
    platform: str = "chirp",
    region: str = "DE",
    window_id: str = "de-2026",
    subject_kind: str = "actor",
    effect: float | None = 1.9,
    ci: tuple[float, float] | None = (1.5, 2.4),
    p_value: float | None = 0.001,
    severity: str = "high",
    event_time: dt.datetime = T0,
    detected_at: dt.datetime | None = None,
    evidence: dict[str, Any] | None = None,
    n: int = 1200,
) -> Finding:
    return Finding.new(
        detector=detector,
        kind=kind,
        platform=platform,
        region=region,
        window_id=window_id,
        subject_kind=subject_kind,
        subject=subject,
        effect=effect,
        ci_low=ci[0] if ci else None,
        ci_high=ci[1] if ci else None,
        p_value=p_value,
        n_exposures=n,
        severity=severity,
        event_time=event_time,
        detected_at=detected_at or event_time + dt.timedelta(minutes=5),
        evidence=evidence if evidence is not None else default_evidence(detector, kind),
    )


def series_evidence() -> dict[str, Any]:
    """A real holdout_shift amplification finding's evidence (tests/evidence_support.py)."""
    return real_evidence("holdout_shift", "amplification")


def default_evidence(detector: str, kind: str) -> dict[str, Any]:
    """The evidence of a real finding of ``detector`` (of ``kind`` when the real run has
    one); ``{}`` for a detector the run does not raise."""
    for want in (kind, None):
        try:
            return real_evidence(detector, want)
        except LookupError:
            continue
    return {}


def measurements(
    subject: str = "acc-1",
    *,
    window_id: str = "de-2026",
    region: str = "DE",
    subject_kind: str = "actor",
    platform: str = "chirp",
    ratio: float = 1.9,
) -> list[Measurement]:
    return [
        Measurement(
            platform=platform,
            region=region,
            window_id=window_id,
            period=period,
            subject_kind=subject_kind,
            subject=subject,
            ratio=r,
            ci_low=r * 0.8,
            ci_high=r * 1.25,
            reach_ratio=r * 0.9,
            n_ranked=900,
            n_holdout=120,
            users_ranked=1000,
            users_holdout=250,
        )
        for period, r in (("baseline", 1.05), ("window", ratio))
    ]


def default_findings() -> list[Finding]:
    return [
        finding("acc-1", severity="high"),
        finding(
            "acc-2",
            kind="suppression",
            effect=0.55,
            ci=(0.4, 0.7),
            severity="critical",
            event_time=T0 + dt.timedelta(hours=3),
        ),
        finding(
            "acc-3",
            detector="missing_label",
            kind="missing_label",
            region="AT",
            window_id="at-2026",
            effect=None,
            ci=None,
            severity="medium",
            event_time=T0 + dt.timedelta(days=1),
        ),
        finding(
            "party-a",
            subject_kind="group",
            detector="holdout_shift",
            effect=1.3,
            ci=(1.1, 1.5),
            severity="low",
            event_time=T0 + dt.timedelta(hours=1),
        ),
    ]


def default_measurements() -> list[Measurement]:
    return [
        *measurements("acc-1"),
        *measurements("acc-2", ratio=0.55),
        *measurements("party-a", subject_kind="group", ratio=1.3),
        *measurements("acc-3", window_id="at-2026", region="AT", ratio=1.5),
    ]


def write_db(
    path: Path,
    findings: list[Finding],
    rows: list[Measurement] | None = None,
    dead: list[DeadLetter] | None = None,
) -> Path:
    with Store(path) as store:
        store.upsert_findings(findings)
        store.upsert_measurements(rows or [])
        store.add_deadletters(dead or [])
    return path


def write_snapshot(
    directory: Path,
    findings: list[Finding],
    rows: list[Measurement] | None = None,
    dead: list[DeadLetter] | None = None,
) -> Path:
    """Atomic Parquet snapshots, published as the live sink publishes them."""
    with Store() as store:
        store.upsert_findings(findings)
        store.upsert_measurements(rows or [])
        store.add_deadletters(dead or [])
        publish_snapshot(store, directory)
    return directory


def users(state_path: Path, rounds: int = 4) -> Auth:
    auth = Auth(StateStore(state_path))
    for role, pw in PASSWORDS.items():
        auth.add_user(role, role, pw, rounds=rounds, created_by="test")
    return auth


def read_status(db: Path, finding_id: str) -> str:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(
            "SELECT status FROM findings WHERE finding_id = ?", [finding_id]
        ).fetchone()[0]
    finally:
        con.close()
