"""What ``replay``, ``research replay`` share: the archive options and the run summary."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from monitor.app.replay import Existing, replay
from monitor.core.config import ConfigError, load_config
from monitor.core.privacy import load_pseudonymiser
from streams.settings import env_name, load_settings

__all__ = ["ArrivalOrder", "Mode", "Replace", "WorkDir", "Workers", "existing_mode", "run_archive"]

Workers = Annotated[
    int | None,
    typer.Option(
        "--workers",
        "-j",
        min=1,
        metavar="N",
        help="processes decoding the archive (default: the machine's cores)",
    ),
]
ArrivalOrder = Annotated[
    bool,
    typer.Option(
        "--arrival-order",
        help="read each file in its own line order through the live watermark: what the live "
        "pipeline would have done (records later than the lateness allowance become 'late' "
        "dead letters). Default: order carries no meaning; the archive is sorted by event "
        "time first",
    ),
]
Mode = Annotated[
    bool, typer.Option("--append", help="add this run to a database that already holds results")
]
Replace = Annotated[
    bool,
    typer.Option(
        "--replace", help="start a new database in place of one that already holds results"
    ),
]
WorkDir = Annotated[
    Path | None,
    typer.Option(
        "--work-dir",
        metavar="DIR",
        envvar=env_name("work_dir"),
        show_envvar=True,
        help="where the sorted archive is staged and DuckDB spills (default: the system's "
        "temporary directory; needs about the archive's size free)",
    ),
]


def existing_mode(append: bool, replace: bool) -> Existing:
    if append and replace:
        raise typer.BadParameter("--append and --replace exclude each other")
    return "append" if append else "replace" if replace else "refuse"


def run_archive(
    config: Path,
    db: Path,
    exposure: list[Path] | None,
    ranking: list[Path] | None,
    *,
    history: bool,
    **options: Any,
) -> None:
    """Load the configuration, replay, and print the one-line summary to stderr."""
    if not exposure and not ranking:
        raise typer.BadParameter("give at least one --exposure or --ranking file")
    cfg = load_config(config)
    try:
        result = replay(
            cfg,
            db,
            exposure or [],
            ranking or [],
            history=history,
            config_text=config.read_text(encoding="utf-8"),
            pseudonymiser=load_pseudonymiser(load_settings()),
            **options,
        )
    except ConfigError as err:  # detector parameters are checked when detectors are built
        raise ConfigError(f"{config.name}: {err}") from None
    s = result.stats
    kept = f", {result.written['history']:,} history rows" if "history" in result.written else ""
    conflicting = sum(s.conflicting.values())
    typer.echo(
        f"replayed {s.records:,} records: accepted {sum(s.accepted.values()):,}, "
        f"duplicates {sum(s.duplicates.values()):,}, "
        + (f"conflicting duplicates {conflicting:,}, " if conflicting else "")
        + f"late {sum(s.late.values()):,}, rejected {sum(s.rejected.values()):,}; "
        f"{result.findings} findings{kept} in {db}",
        err=True,
    )
