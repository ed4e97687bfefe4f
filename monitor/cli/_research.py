"""``amplimon research replay``, ``amplimon diff`` and ``amplimon export`` — for researchers."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from monitor.cli._archive import (
    ArrivalOrder,
    Mode,
    Replace,
    WorkDir,
    Workers,
    existing_mode,
    run_archive,
)
from monitor.cli._files import existing_duckdb
from streams.settings import env_name

__all__ = ["register"]

research = typer.Typer(
    name="research", no_args_is_help=True, help="Research replay: keep what was known when."
)


@research.command("replay")
def cmd_research_replay(
    config: Annotated[
        Path,
        typer.Option(
            "--config", "-c", help="configuration YAML", envvar=env_name("config"), show_envvar=True
        ),
    ],
    db: Annotated[
        Path,
        typer.Option("--db", help="DuckDB file to write", envvar=env_name("db"), show_envvar=True),
    ],
    exposure: Annotated[
        list[Path] | None,
        typer.Option(
            "--exposure", help="exposure files (.jsonl, .jsonl.gz, .parquet); repeat or list"
        ),
    ] = None,
    ranking: Annotated[
        list[Path] | None,
        typer.Option(
            "--ranking", help="ranking files (.jsonl, .jsonl.gz, .parquet); repeat or list"
        ),
    ] = None,
    panel: Annotated[
        list[Path] | None,
        typer.Option(
            "--panel",
            help="panel observations: exposure-format records seen on panellists' "
            "devices (contract v1.1 §5); repeat or list",
        ),
    ] = None,
    detector: Annotated[
        list[str] | None,
        typer.Option("--detector", "-d", help="run only these detectors (default: all enabled)"),
    ] = None,
    history: Annotated[
        bool,
        typer.Option(
            "--history/--no-history",
            help="keep every tick's statistics per subject (table history)",
        ),
    ] = True,
    progress: Annotated[
        bool | None,
        typer.Option(
            "--progress/--no-progress",
            help="progress: a bar on a terminal, else a line on stderr every 5 s (default: on)",
        ),
    ] = None,
    workers: Workers = None,
    arrival_order: ArrivalOrder = False,
    append: Mode = False,
    replace: Replace = False,
    work_dir: WorkDir = None,
) -> None:
    """`amplimon replay` that also keeps every tick's statistics (table `history`)."""
    run_archive(
        config,
        db,
        exposure,
        ranking,
        history=history,
        panel=panel or [],
        detectors=detector,
        show_progress=progress,
        workers=workers,
        arrival_order=arrival_order,
        existing=existing_mode(append, replace),
        work_dir=work_dir,
        command="research replay",
    )


def _fmt(v: object) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.3g}"
    if isinstance(v, dt.datetime):
        return v.astimezone(dt.UTC).strftime("%m-%d %H:%M")
    return str(v)


def cmd_diff(
    a: Annotated[Path, typer.Argument(help="DuckDB of run A (the reference)")],
    b: Annotated[Path, typer.Argument(help="DuckDB of run B")],
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
    effect_tol: Annotated[
        float, typer.Option("--effect-tol", help="relative change of effect reported (0.01 = 1 %)")
    ] = 0.01,
    time_tol: Annotated[
        float, typer.Option("--time-tol", help="minutes of first-crossing shift reported")
    ] = 0.0,
    all_rows: Annotated[bool, typer.Option("--all", help="list unchanged findings too")] = False,
) -> None:
    """Compare two runs' findings: new, gone, changed effect or timing."""
    from monitor.app.research import diff_runs

    if effect_tol < 0 or time_tol < 0:
        raise typer.BadParameter("tolerances must be >= 0")
    result = diff_runs(
        existing_duckdb(a),
        existing_duckdb(b),
        effect_tolerance=effect_tol,
        time_tolerance=dt.timedelta(minutes=time_tol),
    )
    if as_json:
        typer.echo(json.dumps(result.as_json(), indent=1))
        return
    s = result.summary
    if s["new"] == s["gone"] == s["changed"] == 0 and not all_rows:
        same = f"the same {s['unchanged']} findings" if s["unchanged"] else "no findings"
        typer.echo(
            f"no differences: A and B have {same} (within --effect-tol {effect_tol:g}, "
            f"--time-tol {time_tol:g} min)"
        )
        return
    console = Console()
    if not console.is_terminal:
        console = Console(width=170)
    table = Table(title=f"amplimon diff — A {a}  B {b}")
    for col in (
        "status",
        "detector",
        "kind",
        "subject",
        "where",
        "effect A → B",
        "crossed A → B",
        "severity A → B",
    ):
        table.add_column(col)
    for e in result.entries:
        if e.status == "unchanged" and not all_rows:
            continue
        r = e.row
        pa, pb = e.a or {}, e.b or {}
        table.add_row(
            e.status,
            r["detector"],
            r["kind"],
            f"{r['subject_kind']} {r['subject']}",
            f"{r['platform']} {r['region']} {r['window_id']}",
            f"{_fmt(pa.get('effect'))} → {_fmt(pb.get('effect'))}",
            f"{_fmt(pa.get('event_time'))} → {_fmt(pb.get('event_time'))}",
            f"{_fmt(pa.get('severity'))} → {_fmt(pb.get('severity'))}",
        )
    console.print(table)
    console.print(
        f"{s['new']} new, {s['gone']} gone, {s['changed']} changed, {s['unchanged']} unchanged"
    )


def cmd_export(
    db: Annotated[
        Path, typer.Option("--db", help="DuckDB file", envvar=env_name("db"), show_envvar=True)
    ],
    parquet: Annotated[Path, typer.Option("--parquet", help="directory for <table>.parquet")],
) -> None:
    """Write every table of a store as Parquet files (for notebooks)."""
    from monitor.app.research import export_parquet

    written = export_parquet(existing_duckdb(db), parquet)
    for table, n in written.items():
        typer.echo(f"{parquet / (table + '.parquet')}\t{n} rows")


def register(app: typer.Typer) -> None:
    app.add_typer(research)
    app.command("diff")(cmd_diff)
    app.command("export")(cmd_export)
