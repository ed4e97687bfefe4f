"""``amplimon purge``: enforce a retention period on the store and the raw-event archive."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from monitor.app.retention import PurgeReport, parse_cut, purge
from monitor.cli._files import existing_duckdb
from monitor.cli._findings import wide_console
from streams.settings import env_name, load_settings

__all__ = ["print_report", "register"]


def _cut(value: str) -> str:
    try:
        parse_cut(value)
    except ValueError as err:
        raise typer.BadParameter(str(err)) from None
    return value


def cmd_purge(
    before: Annotated[
        str,
        typer.Option(
            "--before",
            metavar="DATE",
            callback=_cut,
            help="delete what is older than this: an ISO date (00:00 UTC) or an RFC 3339 "
            "date-time with offset, e.g. 2026-06-01 or 2026-06-01T12:00:00+02:00",
        ),
    ],
    db: Annotated[
        Path | None,
        typer.Option(
            "--db",
            help="DuckDB file (default: amplimon.duckdb)",
            envvar=env_name("db"),
            show_envvar=True,
        ),
    ] = None,
    archive: Annotated[
        Path | None,
        typer.Option(
            "--archive",
            help="also purge this raw-event archive (amplimon archive --out DIR)",
            file_okay=False,
        ),
    ] = None,
    findings: Annotated[
        bool,
        typer.Option(
            "--findings/--keep-findings",
            help="also delete findings whose event_time is before DATE",
        ),
    ] = False,
    snapshot_dir: Annotated[
        Path | None,
        typer.Option(
            "--snapshot-dir",
            help="the sink's snapshot directory, republished if it exists (default: <db>.snapshot)",
            envvar=env_name("snapshot_dir"),
            show_envvar=True,
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="count what would be deleted; change nothing")
    ] = False,
) -> None:
    """Delete stored data older than DATE: one transaction, recorded in runs.

    The database file is then rewritten so that deleted values leave the disk
    (needs space for one copy). Stop the sink and amplimon archive first:
    DuckDB admits one process per database file.

    \b
    deadletter     received_at < DATE   (raw text of rejected records)
    amplification  computed_at < DATE
    detectability  computed_at < DATE
    history        tick_end < DATE
    findings       event_time < DATE, only with --findings (enforcement records)
    runs           kept (audit trail; the purge adds its own row)
    --archive      date partitions before DATE's UTC day deleted; that day's files
                   rewritten keeping ts >= DATE
    """
    path = existing_duckdb(db or Path(load_settings().db))
    report = purge(
        path,
        parse_cut(before),
        archive=archive,
        findings=findings,
        dry_run=dry_run,
        snapshot=snapshot_dir,
    )
    print_report(report)


def print_report(report: PurgeReport) -> None:
    """The report as a table: rows (files) deleted and kept per table (archive)."""
    verb = "would delete" if report.dry_run else "deleted"
    archive = "" if report.archive is None else f" and {report.archive.root}"
    table = Table(
        title=f"amplimon purge — {report.db}{archive}, before "
        f"{report.before.isoformat()}" + (" (dry run)" if report.dry_run else "")
    )
    for col in ("table", "rule", verb, "kept"):
        table.add_column(col, justify="right" if col in (verb, "kept") else "left")
    for t in report.tables:
        table.add_row(t.table, t.rule, f"{t.deleted:,}", f"{t.kept:,}")
    if (a := report.archive) is not None:
        table.add_row("archive rows", "ts < cut", f"{a.rows_deleted:,}", "")
        table.add_row(
            "archive files",
            "all rows < cut",
            f"{a.files_deleted:,}",
            f"{a.files_rewritten:,} rewritten",
        )
        table.add_row("archive partitions", "all files deleted", f"{a.partitions_deleted:,}", "")
    console = wide_console()
    console.print(table)
    if report.run_id:
        console.print(f"recorded as run {report.run_id} in the runs table")
    if report.snapshot:
        console.print(f"snapshot republished: {report.snapshot}")


def register(app: typer.Typer) -> None:
    app.command("purge")(cmd_purge)
