"""``amplimon simulate``: write a simulated election (streams, config, ground truth)."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated

import typer

__all__ = ["register", "replay_command"]


def cmd_simulate(
    out: Annotated[Path, typer.Option("--out", "-o", help="directory to write")],
    scenario_name: Annotated[str, typer.Option("--scenario", help="scenario name")] = "default",
    seed: Annotated[int, typer.Option("--seed", help="random seed")] = 1,
    scale: Annotated[float, typer.Option("--scale", help="multiply the number of users")] = 1.0,
    fmt: Annotated[str, typer.Option("--format", help="jsonl.gz, jsonl or parquet")] = "jsonl.gz",
) -> None:
    """Simulate a platform during election windows, with planted interventions."""
    from streams.simulator import FORMATS, SCENARIOS, scenario, write_simulation

    if scenario_name not in SCENARIOS:
        raise typer.BadParameter(
            f"unknown scenario {scenario_name!r}; known: {', '.join(SCENARIOS)}",
            param_hint="--scenario",
        )
    if fmt not in FORMATS:
        raise typer.BadParameter(
            f"unknown format {fmt!r}; known: {', '.join(FORMATS)}", param_hint="--format"
        )
    try:
        params = scenario(scenario_name, seed=seed, scale=scale)
    except ValueError as err:
        raise typer.BadParameter(str(err)) from None
    paths = write_simulation(out, params, fmt=fmt)
    for p in paths.values():
        typer.echo(str(p))
    typer.echo("next, replay it through every detector:\n  " + replay_command(paths, out), err=True)


def replay_command(paths: dict[str, Path], out: Path) -> str:
    """The ``amplimon replay`` command line for a written simulation (shell-quoted)."""
    return shlex.join(
        [
            "amplimon",
            "replay",
            "--config",
            str(paths["config"]),
            "--db",
            str(out / "amplimon.duckdb"),
            "--exposure",
            str(paths["exposure"]),
            "--ranking",
            str(paths["ranking"]),
        ]
    )


def register(app: typer.Typer) -> None:
    app.command("simulate")(cmd_simulate)
