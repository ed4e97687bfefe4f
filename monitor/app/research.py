"""Research tools over finished runs: compare two runs' findings, export a store for notebooks.

* :func:`diff_runs` — two DuckDB stores (e.g. the same streams replayed with two detector
  configurations) → each finding classified ``new`` (only in B), ``gone`` (only in A),
  ``changed`` (kind, severity, effect beyond a relative tolerance, p-value by more than a
  factor, or first-crossing event time) or ``unchanged``.  Findings are matched by their
  stable ``finding_id`` (same detector, platform, region, window, surface and subject).
* :func:`export_parquet` — every table of a store as ``DIR/<table>.parquet``.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monitor.core.store import Store, StoreError

__all__ = ["DiffEntry", "RunDiff", "diff_runs", "export_parquet"]

_COLUMNS = (
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
)
_SEVERITY_ORDER = {"critical": 0, "high": 1, "medium": 2, "low": 3}
_STATUS_ORDER = {"new": 0, "gone": 1, "changed": 2, "unchanged": 3}


@dataclass
class DiffEntry:
    """One finding's comparison; ``a``/``b`` are its rows (None where absent)."""

    status: str
    finding_id: str
    a: dict[str, Any] | None
    b: dict[str, Any] | None
    changes: dict[str, tuple[Any, Any]] = field(default_factory=dict)

    @property
    def row(self) -> dict[str, Any]:
        row = self.b if self.b is not None else self.a
        assert row is not None
        return row

    def as_json(self) -> dict[str, Any]:
        r = self.row
        return {
            "status": self.status,
            "finding_id": self.finding_id,
            "detector": r["detector"],
            "kind": r["kind"],
            "platform": r["platform"],
            "region": r["region"],
            "window_id": r["window_id"],
            "subject_kind": r["subject_kind"],
            "subject": r["subject"],
            "a": _jsonable(self.a),
            "b": _jsonable(self.b),
            "changes": {k: [_plain(x), _plain(y)] for k, (x, y) in self.changes.items()},
        }


@dataclass
class RunDiff:
    a: str
    b: str
    entries: list[DiffEntry]

    def count(self, status: str) -> int:
        return sum(e.status == status for e in self.entries)

    @property
    def summary(self) -> dict[str, int]:
        return {s: self.count(s) for s in _STATUS_ORDER}

    def as_json(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "summary": self.summary,
            "findings": [e.as_json() for e in self.entries],
        }


def _plain(v: Any) -> Any:
    if isinstance(v, dt.datetime):
        return v.astimezone(dt.UTC).isoformat()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _jsonable(row: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if row is None else {k: _plain(v) for k, v in row.items()}


def read_findings(db: str | Path) -> dict[str, dict[str, Any]]:
    """``finding_id`` → row (the contract columns) of a store, read-only."""
    path = Path(db)
    if not path.exists():
        raise StoreError(f"{db}: no such database")
    with Store(path, read_only=True) as store:
        if "findings" not in store.tables():
            raise StoreError(f"{db}: not an amplimon database (no findings table)")
        rows = store.query(f"SELECT {', '.join(_COLUMNS)} FROM findings")  # noqa: S608
    return {r[0]: dict(zip(_COLUMNS, r, strict=True)) for r in rows}


def _effect_changed(x: float | None, y: float | None, tol: float) -> bool:
    if x is None or y is None:
        return (x is None) != (y is None)
    return abs(math.log(y / x)) > math.log1p(tol) if x > 0 and y > 0 else x != y


def _p_changed(x: float | None, y: float | None, decades: float) -> bool:
    if x is None or y is None:
        return (x is None) != (y is None)
    lx, ly = math.log10(max(x, 1e-300)), math.log10(max(y, 1e-300))
    return abs(lx - ly) > decades


def diff_runs(
    a: str | Path,
    b: str | Path,
    *,
    effect_tolerance: float = 0.01,
    p_decades: float = 1.0,
    time_tolerance: dt.timedelta = dt.timedelta(0),
) -> RunDiff:
    """Compare the findings of two stores (module docstring).

    Args:
        a, b: DuckDB files of the two runs (A = reference).
        effect_tolerance: Relative change of ``effect`` reported as a change (0.01 = 1 %).
        p_decades: Change of ``log10 p_value`` reported as a change.
        time_tolerance: Shift of ``event_time`` (first crossing) reported as a change.
    """
    fa, fb = read_findings(a), read_findings(b)
    entries = []
    for fid in sorted(fa.keys() | fb.keys()):
        ra, rb = fa.get(fid), fb.get(fid)
        if ra is None:
            entries.append(DiffEntry("new", fid, None, rb))
            continue
        if rb is None:
            entries.append(DiffEntry("gone", fid, ra, None))
            continue
        changes: dict[str, tuple[Any, Any]] = {}
        for col in ("kind", "severity"):
            if ra[col] != rb[col]:
                changes[col] = (ra[col], rb[col])
        if _effect_changed(ra["effect"], rb["effect"], effect_tolerance):
            changes["effect"] = (ra["effect"], rb["effect"])
        if _p_changed(ra["p_value"], rb["p_value"], p_decades):
            changes["p_value"] = (ra["p_value"], rb["p_value"])
        ta, tb = ra["event_time"], rb["event_time"]
        if (ta is None) != (tb is None) or (
            ta is not None and tb is not None and abs(tb - ta) > time_tolerance
        ):
            changes["event_time"] = (ta, tb)
        entries.append(DiffEntry("changed" if changes else "unchanged", fid, ra, rb, changes))
    entries.sort(
        key=lambda e: (
            _STATUS_ORDER[e.status],
            _SEVERITY_ORDER.get(e.row["severity"], 9),
            e.row["detector"],
            e.row["window_id"],
            e.row["subject"],
        )
    )
    return RunDiff(str(a), str(b), entries)


def export_parquet(db: str | Path, out_dir: str | Path) -> dict[str, int]:
    """Write every table of ``db`` to ``out_dir/<table>.parquet``; returns rows per table.

    JSON columns (``evidence``, ``info``) are written as strings; timestamps keep UTC.
    """
    path = Path(db)
    if not path.exists():
        raise StoreError(f"{db}: no such database")
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise StoreError(f"{out}: cannot create directory ({err.strerror})") from None
    written: dict[str, int] = {}
    with Store(path, read_only=True) as store:
        for table in store.tables():
            cols = store.query(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = 'main' AND table_name = ? "
                "ORDER BY ordinal_position",
                [table],
            )
            select = ", ".join(
                f'"{c}"::VARCHAR AS "{c}"' if t == "JSON" else f'"{c}"' for c, t in cols
            )
            target = str(out / f"{table}.parquet").replace("'", "''")
            store.con.execute(
                f"COPY (SELECT {select} FROM \"{table}\") TO '{target}' "  # noqa: S608
                "(FORMAT PARQUET, COMPRESSION ZSTD)"
            )
            written[table] = int(store.query(f'SELECT count(*) FROM "{table}"')[0][0])  # noqa: S608
    return written
