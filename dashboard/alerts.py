"""The live alerts list as data: filters, order, counts, the windows timeline.

Pure functions over the ``findings`` frame (after :func:`dashboard.triage.with_triage`), so
the page is a thin rendering of what is tested here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, fields

import pandas as pd

from monitor.core.config import Config, covers
from monitor.core.records import SEVERITIES

__all__ = [
    "FILTER_LABELS",
    "SEVERITY_RANK",
    "Filters",
    "apply_filters",
    "filter_options",
    "new_since",
    "severity_counts",
    "sort_alerts",
    "timeline_rows",
]

SEVERITY_RANK = {s: i for i, s in enumerate(reversed(SEVERITIES))}  # critical 0 … low 3
FILTER_LABELS = {
    "window": "Election window",
    "jurisdiction": "Jurisdiction",
    "platform": "Platform",
    "detector": "Detector",
    "kind": "Kind",
    "severity": "Severity",
    "status": "Status",
}


@dataclass(frozen=True, slots=True)
class Filters:
    """Selected values per facet; an empty tuple means "all"."""

    window: tuple[str, ...] = ()
    jurisdiction: tuple[str, ...] = ()
    platform: tuple[str, ...] = ()
    detector: tuple[str, ...] = ()
    kind: tuple[str, ...] = ()
    severity: tuple[str, ...] = ()
    status: tuple[str, ...] = ()


_COLUMN = {
    "window": "window_id",
    "platform": "platform",
    "detector": "detector",
    "kind": "kind",
    "severity": "severity",
    "status": "status_shown",
}


def filter_options(findings: pd.DataFrame, config: Config | None = None) -> dict[str, list[str]]:
    """Values offered per facet: what the data holds, plus the configured windows; a
    jurisdiction facet lists every region and the countries that cover them."""
    out: dict[str, list[str]] = {}
    for facet, col in _COLUMN.items():
        values = set(findings[col].dropna().astype(str)) if len(findings) else set()
        out[facet] = sorted(values)
    if config is not None:
        out["window"] = sorted(set(out["window"]) | {w.id for w in config.windows})
    regions = set(findings["region"].dropna().astype(str)) if len(findings) else set()
    if config is not None:
        regions |= {w.jurisdiction for w in config.windows}
    out["jurisdiction"] = sorted(regions | {r.split("-")[0] for r in regions})
    out["severity"] = [s for s in reversed(SEVERITIES) if s in out["severity"]] or list(
        reversed(SEVERITIES)
    )
    out["status"] = ["new", "acknowledged", "escalated", "dismissed", "resolved"]
    return out


def apply_filters(findings: pd.DataFrame, filters: Filters) -> pd.DataFrame:
    mask = pd.Series(True, index=findings.index)
    for f in fields(Filters):
        chosen = getattr(filters, f.name)
        if not chosen:
            continue
        if f.name == "jurisdiction":
            mask &= findings["region"].map(
                lambda r, c=chosen: isinstance(r, str) and any(covers(j, r) for j in c)
            )
        else:
            mask &= findings[_COLUMN[f.name]].isin(chosen)
    return findings[mask]


def sort_alerts(findings: pd.DataFrame) -> pd.DataFrame:
    """Most severe first; within a severity the most recently detected first."""
    if findings.empty:
        return findings
    rank = findings["severity"].map(SEVERITY_RANK).fillna(len(SEVERITY_RANK))
    recency = findings["detected_at"].fillna(findings["event_time"])
    order = pd.DataFrame({"rank": rank, "recency": recency, "id": findings["finding_id"]})
    order = order.sort_values(
        ["rank", "recency", "id"], ascending=[True, False, True], na_position="last"
    )
    return findings.loc[order.index]


def severity_counts(findings: pd.DataFrame) -> dict[str, int]:
    counts = findings["severity"].value_counts() if len(findings) else pd.Series(dtype=int)
    return {s: int(counts.get(s, 0)) for s in reversed(SEVERITIES)}


def new_since(ids: Iterable[str], seen: set[str] | None) -> set[str]:
    """Ids that appeared since the previous refresh (none on the first look)."""
    ids = set(ids)
    return set() if seen is None else ids - seen


def timeline_rows(
    config: Config | None, findings: pd.DataFrame, amplification: pd.DataFrame
) -> list[dict[str, object]]:
    """One row per election window: its period and baseline.

    From the configuration when there is one; otherwise the windows named in the data, with
    the span of their findings' event times (``approximate=True``, no baseline).
    """
    if config is not None:
        return [
            {
                "window_id": w.id,
                "jurisdiction": w.jurisdiction,
                "name": w.name or w.id,
                "start": w.start,
                "end": w.end,
                "baseline_start": w.baseline_period.start,
                "baseline_end": w.baseline_period.end,
                "approximate": False,
            }
            for w in sorted(config.windows, key=lambda w: (w.start, w.id))
        ]
    rows: list[dict[str, object]] = []
    ids = set(findings["window_id"].dropna()) | set(amplification["window_id"].dropna())
    for wid in sorted(ids):
        times = findings.loc[findings["window_id"] == wid, "event_time"].dropna()
        regions = findings.loc[findings["window_id"] == wid, "region"].dropna()
        if regions.empty:
            regions = amplification.loc[amplification["window_id"] == wid, "region"].dropna()
        start: dt.datetime | None = times.min().to_pydatetime() if len(times) else None
        end: dt.datetime | None = times.max().to_pydatetime() if len(times) else None
        rows.append(
            {
                "window_id": wid,
                "jurisdiction": ", ".join(sorted(set(regions))),
                "name": wid,
                "start": start,
                "end": end,
                "baseline_start": None,
                "baseline_end": None,
                "approximate": True,
            }
        )
    return rows
