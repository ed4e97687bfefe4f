"""``amplimon replay``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from monitor.config import ConfigError, load_config
from monitor.privacy import load_pseudonymiser
from monitor.replay import replay
from monitor.settings import env_name, load_settings

__all__ = ["register"]


def cmd_replay(
    config: Annotated[Path, typer.Option("--config", "-c", help="configuration YAML",
                                         envvar=env_name("config"), show_envvar=True)],
    db: Annotated[Path, typer.Option("--db", help="DuckDB file to write",
                                     envvar=env_name("db"), show_envvar=True)],
    exposure: Annotated[list[Path] | None, typer.Option(
        "--exposure", help="exposure files (.jsonl, .jsonl.gz, .parquet); repeat or list")] = None,
    ranking: Annotated[list[Path] | None, typer.Option(
        "--ranking", help="ranking files (.jsonl, .jsonl.gz, .parquet); repeat or list")] = None,
    detector: Annotated[list[str] | None, typer.Option(
        "--detector", "-d", help="run only these detectors (default: all enabled)")] = None,
    progress: Annotated[bool | None, typer.Option(
        "--progress/--no-progress", help="progress bar (default: on a terminal)")] = None,
    history: Annotated[bool, typer.Option(
        "--history", help="keep every tick's statistics per subject (table history)")] = False,
) -> None:
    """Replay archived streams through every detector and write the DuckDB tables."""
    if not exposure and not ranking:
        raise typer.BadParameter("give at least one --exposure or --ranking file")
    cfg = load_config(config)
    from monitor.history import history_replay

    run = history_replay if history else replay
    try:
        result = run(cfg, db, exposure or [], ranking or [], detectors=detector,
                        show_progress=progress, config_text=config.read_text(encoding="utf-8"),
                     pseudonymiser=load_pseudonymiser(load_settings()))
    except ConfigError as err:  # detector parameters are checked when detectors are built
        raise ConfigError(f"{config.name}: {err}") from None
    s = result.stats
    typer.echo(f"replayed {s.records:,} records: accepted {sum(s.accepted.values()):,}, "
               f"duplicates {sum(s.duplicates.values()):,}, late {sum(s.late.values()):,}, "
               f"rejected {sum(s.rejected.values()):,}; {result.findings} findings in {db}",
               err=True)


def register(app: typer.Typer) -> None:
    app.command("replay")(cmd_replay)
