"""``amplimon replay``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from monitor.cli._archive import (
    ArrivalOrder,
    Mode,
    Replace,
    WorkDir,
    Workers,
    existing_mode,
    run_archive,
)
from streams.settings import env_name

__all__ = ["register"]


def cmd_replay(
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
    progress: Annotated[
        bool | None,
        typer.Option(
            "--progress/--no-progress",
            help="progress: a bar on a terminal, else a line on stderr every 5 s (default: on)",
        ),
    ] = None,
    history: Annotated[
        bool,
        typer.Option("--history", help="keep every tick's statistics per subject (table history)"),
    ] = False,
    workers: Workers = None,
    arrival_order: ArrivalOrder = False,
    append: Mode = False,
    replace: Replace = False,
    work_dir: WorkDir = None,
) -> None:
    """Replay archived streams through every detector and write the DuckDB tables.

    The order of records within and across files carries no meaning: the archive is
    deduplicated and sorted by event time before the detectors see it (--arrival-order for
    the live pipeline's view instead).
    """
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
    )


def register(app: typer.Typer) -> None:
    app.command("replay")(cmd_replay)
