"""``amplimon findings``: print the findings of a store as a table."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from detectors.evidence import Decoded, Series, decode
from monitor.cli._files import existing_duckdb
from monitor.core.store import Store
from streams.settings import env_name

__all__ = ["print_findings", "register", "wide_console"]

_QUERY = """
    SELECT severity, kind, detector, platform, region, window_id, subject_kind, subject,
           effect, ci_low, ci_high, p_value, n_exposures, event_time, evidence
    FROM findings
    ORDER BY CASE severity WHEN 'critical' THEN 0 WHEN 'high' THEN 1 WHEN 'medium' THEN 2
             ELSE 3 END, event_time
    LIMIT ?"""


def print_findings(
    db: Path | str, console: Console | None = None, limit: int = 200, evidence: bool = False
) -> int:
    """Print the findings table (severity, then event time) and how many of how many it
    shows; returns the number of rows shown.  ``evidence``: add a column with each
    finding's decoded evidence (schema version and time-series points, or legacy /
    unreadable)."""
    console = console or wide_console()
    with Store(db, read_only=True) as store:
        rows = store.query(_QUERY, [limit])
        total = store.count("findings")
    if not total:
        console.print(f"no findings in {db}")
        return 0
    table = Table(title=f"amplimon findings — {db}", show_lines=False)
    cols = [
        "severity",
        "kind",
        "detector",
        "subject",
        "where",
        "effect (95% CI)",
        "p",
        "n",
        "crossed at",
        *(["evidence"] if evidence else []),
    ]
    for col in cols:  # on a narrow terminal values wrap; none is cut off
        table.add_column(col, overflow="fold")
    for sev, kind, det, platform, region, window, sk, subject, eff, lo, hi, p, n, t, ev in rows:
        effect = (
            "—"
            if eff is None
            else (f"{eff:.2f}" + ("" if lo is None or hi is None else f" ({lo:.2f}–{hi:.2f})"))
        )
        cells = [
            sev,
            kind,
            det,
            f"{sk} {subject}",
            f"{platform} {region} {window}",
            effect,
            _p(p),
            "—" if n is None else f"{n:,}",
            t.strftime("%Y-%m-%d %H:%M") if t else "—",
        ]
        if evidence:
            cells.append(_evidence(decode(ev, detector=det, finding_kind=kind, subject=subject)))
        table.add_row(*cells)
    console.print(table)
    if len(rows) < total:
        console.print(
            f"{len(rows)} of {total} findings, most severe first (--limit {total} to see all)"
        )
    else:
        console.print(f"{total} finding{'s' if total != 1 else ''}, most severe first")
    return len(rows)


def wide_console() -> Console:
    """A console for tables: the terminal's width, or 180 columns when not a terminal (a
    log or a pipe: wide enough that no identifier in a findings table is folded)."""
    console = Console()
    return console if console.is_terminal else Console(width=180)


def _evidence(d: Decoded) -> str:
    """ "v1, series 41" — the evidence's schema version and its time series' points;
    "legacy" (written before the schema) or "unreadable" (details on the finding page)."""
    if d.evidence is None:
        return "unreadable"
    if d.legacy:
        return "legacy"
    series = getattr(d.evidence, "series", None)
    points = f", series {len(series.points)}" if isinstance(series, Series) else ""
    return f"v{d.evidence.version}{points}"


def _p(p: float | None) -> str:
    return "—" if p is None else "<1e-12" if p < 1e-12 else f"{p:.2g}"


def cmd_findings(
    db: Annotated[
        Path, typer.Option("--db", help="DuckDB file", envvar=env_name("db"), show_envvar=True)
    ],
    limit: Annotated[int, typer.Option("--limit", help="at most this many rows", min=1)] = 200,
    evidence: Annotated[
        bool,
        typer.Option(
            "--evidence",
            help="add each finding's evidence: schema version and time-series "
            "points (legacy: written before the schema)",
        ),
    ] = False,
) -> None:
    """Print the findings, most severe first."""
    print_findings(existing_duckdb(db), limit=limit, evidence=evidence)


def register(app: typer.Typer) -> None:
    app.command("findings")(cmd_findings)
