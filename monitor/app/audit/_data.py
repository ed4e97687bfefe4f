"""What the audit report shows, read from a finished run's DuckDB store and configuration.

Everything the report prints comes from here (and nothing else), so the report's numbers
are the store's numbers: :class:`AuditData` holds the rows as read, the HTML only formats.
"""

from __future__ import annotations

import datetime as dt
import inspect
import json
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from detectors import REGISTRY
from detectors.evidence import decode_finding
from detectors.registry import alpha_shares
from monitor.core.config import Config
from monitor.core.records import SEVERITIES
from monitor.core.store import Store

__all__ = ["AuditData", "DetectorMethod", "load_audit"]

SEVERITY_RANK = {s: i for i, s in enumerate(reversed(SEVERITIES))}  # critical → 0

_FINDING_COLS = (
    "finding_id",
    "detector",
    "kind",
    "platform",
    "region",
    "window_id",
    "surface",
    "subject_kind",
    "subject",
    "effect",
    "ci_low",
    "ci_high",
    "p_value",
    "n_exposures",
    "severity",
    "event_time",
    "detected_at",
    "evidence",
    "status",
)
_AMP_COLS = (
    "platform",
    "region",
    "window_id",
    "period",
    "subject_kind",
    "subject",
    "ratio",
    "ci_low",
    "ci_high",
    "reach_ratio",
    "n_ranked",
    "n_holdout",
    "users_ranked",
    "users_holdout",
    "reach_ranked",
    "reach_holdout",
)
_DET_COLS = (
    "detector",
    "platform",
    "region",
    "window_id",
    "subject_kind",
    "subject",
    "mde_up",
    "mde_down",
    "n_exposures",
    "flagged",
)
_HIST_COLS = (
    "tick_end",
    "record",
    "platform",
    "window_id",
    "period",
    "subject_kind",
    "subject",
    "finding_id",
    "ratio",
    "ci_low",
    "ci_high",
    "effect",
    "p_value",
)


@dataclass(frozen=True)
class DetectorMethod:
    """A registered detector as the methods section describes it."""

    name: str
    display_name: str
    kinds: tuple[str, ...]
    budget_weight: float
    alpha_share: float
    description: str
    doc: str
    ran: bool


@dataclass
class AuditData:
    """The rows behind one report (see module docstring)."""

    config: Config
    db: str
    findings: list[dict[str, Any]]
    amplification: list[dict[str, Any]]
    detectability: list[dict[str, Any]]
    deadletters: list[dict[str, Any]]
    run: dict[str, Any]
    methods: list[DetectorMethod]
    history: dict[tuple[str, str, str, str], list[dict[str, Any]]] = field(default_factory=dict)
    finding_history: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    generated_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))

    # -- views ---------------------------------------------------------------------------------
    @property
    def stats(self) -> dict[str, Any]:
        return dict(self.run.get("info", {}).get("stats") or {})

    def severity_counts(self) -> dict[str, int]:
        counts = Counter(f["severity"] for f in self.findings)
        return {s: counts.get(s, 0) for s in reversed(SEVERITIES)}

    def kind_counts(self) -> dict[str, int]:
        return dict(Counter(f["kind"] for f in self.findings).most_common())

    def cells(self) -> list[tuple[str, str, str]]:
        """(platform, window_id, region) with amplification rows, in config window order."""
        order = {w.id: i for i, w in enumerate(self.config.windows)}
        keys = {(r["platform"], r["window_id"], r["region"]) for r in self.amplification}
        return sorted(keys, key=lambda k: (order.get(k[1], 99), k[0], k[2]))

    def amplification_of(
        self, platform: str, window_id: str
    ) -> dict[tuple[str, str], dict[str, dict[str, Any]]]:
        """(subject_kind, subject) → period → row, in registry order (actors, then groups)."""
        out: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
        for r in self.amplification:
            if r["platform"] == platform and r["window_id"] == window_id:
                out.setdefault((r["subject_kind"], r["subject"]), {})[r["period"]] = r
        order = {a.actor: i for i, a in enumerate(self.config.actors)}
        groups = {g: i for i, g in enumerate(self.config.groups)}
        return dict(
            sorted(
                out.items(),
                key=lambda kv: (
                    kv[0][0] != "actor",
                    order.get(kv[0][1], groups.get(kv[0][1], 999)),
                    kv[0][1],
                ),
            )
        )

    def flagged_subjects(self) -> set[tuple[str, str, str, str]]:
        """(platform, window_id, subject_kind, subject) with at least one finding."""
        return {
            (f["platform"], f["window_id"], f["subject_kind"], f["subject"]) for f in self.findings
        }

    def deadletter_reasons(self) -> list[tuple[str, int, str]]:
        """(field named by the reason, count, an example reason), most frequent first."""
        by_field: Counter[str] = Counter()
        example: dict[str, str] = {}
        for d in self.deadletters:
            reason = d["reason"] or ""
            key = reason.split(":", 1)[0] if ":" in reason else reason
            by_field[key] += 1
            example.setdefault(key, reason)
        return [(k, n, example[k]) for k, n in by_field.most_common()]

    def arm_balance(self) -> list[dict[str, Any]]:
        """Active users per arm per platform, window and period, with the declared share."""
        seen: dict[tuple[str, str, str], dict[str, Any]] = {}
        for r in self.amplification:
            key = (r["platform"], r["window_id"], r["period"])
            if key not in seen:
                total = (r["users_ranked"] or 0) + (r["users_holdout"] or 0)
                entry = self.config.platforms.get(r["platform"])
                seen[key] = {
                    "platform": r["platform"],
                    "window_id": r["window_id"],
                    "region": r["region"],
                    "period": r["period"],
                    "users_ranked": r["users_ranked"],
                    "users_holdout": r["users_holdout"],
                    "holdout_share": (r["users_holdout"] / total) if total else None,
                    "declared": entry.holdout_share if entry else None,
                }
        order = {w.id: i for i, w in enumerate(self.config.windows)}
        return sorted(
            seen.values(),
            key=lambda x: (order.get(x["window_id"], 99), x["platform"], x["period"] != "baseline"),
        )

    def actor_mde(self) -> list[dict[str, Any]]:
        """Minimum detectable effects of each registered actor that was not flagged."""
        flagged = self.flagged_subjects()
        rows: dict[tuple[str, str, str], dict[str, Any]] = {}
        for d in self.detectability:
            if d["subject_kind"] != "actor":
                continue
            key = (d["platform"], d["window_id"], d["subject"])
            if (d["platform"], d["window_id"], "actor", d["subject"]) in flagged:
                continue
            row = rows.setdefault(
                key,
                {
                    "platform": d["platform"],
                    "window_id": d["window_id"],
                    "region": d["region"],
                    "actor": d["subject"],
                    "by_detector": {},
                },
            )
            row["by_detector"][d["detector"]] = d
        order = {a.actor: i for i, a in enumerate(self.config.actors)}
        worder = {w.id: i for i, w in enumerate(self.config.windows)}
        return sorted(
            rows.values(),
            key=lambda r: (
                worder.get(r["window_id"], 99),
                r["platform"],
                order.get(r["actor"], 999),
            ),
        )


def _doc_of(factory: Any) -> str:
    """The statistics of a detector: its module's docstring, or its package's when the
    detector is a package of checks that exports it (``detectors.integrity``)."""
    module = inspect.getmodule(factory)
    if module is not None:
        package = sys.modules.get(module.__name__.rpartition(".")[0])
        if package is not None and getattr(factory, "__name__", None) in getattr(
            package, "__all__", ()
        ):
            module = package
    doc = (module.__doc__ if module is not None else None) or inspect.getdoc(factory) or ""
    return inspect.cleandoc(doc)


def _methods(config: Config, ran: list[str]) -> list[DetectorMethod]:
    names = [n for n in REGISTRY if n in ran] or list(REGISTRY)
    shares = alpha_shares(config.detection.alpha, names)
    return [
        DetectorMethod(
            name=s.name,
            display_name=s.display_name,
            kinds=s.kinds,
            budget_weight=s.budget_weight,
            alpha_share=shares.get(s.name, 0.0),
            description=s.description,
            doc=_doc_of(s.factory),
            ran=s.name in names,
        )
        for s in REGISTRY.values()
    ]


def _rows(store: Store, cols: tuple[str, ...], sql: str) -> list[dict[str, Any]]:
    return [dict(zip(cols, r, strict=True)) for r in store.query(sql)]


def load_audit(db: str | Path, config: Config) -> AuditData:
    """Read a finished run (findings, amplification, detectability, dead letters, the last
    ``runs`` row and, when present, ``history``) for the report."""
    with Store(db, read_only=True) as store:
        tables = set(store.tables())
        findings = _rows(
            store,
            _FINDING_COLS,
            f"""
            SELECT {", ".join(_FINDING_COLS)} FROM findings
            ORDER BY CASE severity WHEN 'critical' THEN 0 WHEN 'high' THEN 1
                     WHEN 'medium' THEN 2 ELSE 3 END, event_time, finding_id""",
        )
        for f in findings:
            # the stored JSON object ({} if unreadable: decode_finding reports why)
            f["evidence"] = decode_finding(f).raw
        amplification = _rows(
            store,
            _AMP_COLS,
            f"""
            SELECT {", ".join(_AMP_COLS)} FROM amplification
            ORDER BY platform, window_id, subject_kind, subject, period""",
        )
        detectability = _rows(
            store,
            _DET_COLS,
            f"""
            SELECT {", ".join(_DET_COLS)} FROM detectability
            ORDER BY detector, platform, window_id, subject_kind, subject""",
        )
        deadletters = _rows(
            store,
            ("source", "reason", "location"),
            "SELECT source, reason, location FROM deadletter ORDER BY dl_id",
        )
        runs = store.query(
            "SELECT run_id, command, started_at, finished_at, info FROM runs "
            "ORDER BY finished_at DESC LIMIT 1"
        )
        run: dict[str, Any] = {}
        if runs:
            rid, command, started, finished, info = runs[0]
            run = {
                "run_id": rid,
                "command": command,
                "started_at": started,
                "finished_at": finished,
                "info": json.loads(info) if info else {},
            }
        history: dict[tuple[str, str, str, str], list[dict[str, Any]]] = {}
        finding_history: dict[str, list[dict[str, Any]]] = {}
        if "history" in tables:
            flagged = {
                (f["platform"], f["window_id"], f["subject_kind"], f["subject"]) for f in findings
            }
            for h in _rows(
                store,
                _HIST_COLS,
                f"""
                    SELECT {", ".join(_HIST_COLS)} FROM history
                    ORDER BY tick_end""",
            ):
                if h["record"] == "finding":
                    finding_history.setdefault(h["finding_id"], []).append(h)
                elif (h["platform"], h["window_id"], h["subject_kind"], h["subject"]) in flagged:
                    history.setdefault(
                        (h["platform"], h["window_id"], h["subject_kind"], h["subject"]), []
                    ).append(h)
    ran = [d["name"] for d in run.get("info", {}).get("detectors", [])]
    return AuditData(
        config=config,
        db=str(db),
        findings=findings,
        amplification=amplification,
        detectability=detectability,
        deadletters=deadletters,
        run=run,
        methods=_methods(config, ran),
        history=history,
        finding_history=finding_history,
    )
