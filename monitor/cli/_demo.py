"""``amplimon demo``: the whole product on a simulated election.

``--offline``: simulate an election, replay it, print the findings and the amplification
table — no broker.  Without it, the live demo (broker, worker, sink, dashboard, producer).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import typer

from monitor.cli._findings import print_findings, wide_console

__all__ = ["register", "run_offline"]


def run_offline(out: Path, scenario_name: str = "default", seed: int = 1) -> Path:
    """Simulate, replay, print; returns the DuckDB path."""
    from monitor.config import load_config
    from monitor.replay import replay
    from streams.simulator import scenario, write_simulation

    console = wide_console()
    console.print(f"[bold]1/3[/] simulating election scenario {scenario_name!r} → {out}")
    paths = write_simulation(out, scenario(scenario_name, seed=seed), fmt="jsonl.gz")
    console.print("[bold]2/3[/] replaying the streams through every detector")
    db = out / "amplimon.duckdb"
    db.unlink(missing_ok=True)
    result = replay(load_config(paths["config"]), db, [paths["exposure"]], [paths["ranking"]],
                    config_text=Path(paths["config"]).read_text(encoding="utf-8"))
    s = result.stats
    console.print(f"    {s.records:,} records: {sum(s.accepted.values()):,} accepted, "
                  f"{sum(s.duplicates.values()):,} duplicates, {sum(s.late.values()):,} late, "
                  f"{sum(s.rejected.values()):,} dead letters")
    console.print("[bold]3/3[/] findings")
    print_findings(db, console)
    console.print(f"planted interventions and expected findings: {out / 'truth.json'}")
    console.print(f"explore: amplimon findings --db {db}")
    return db


def cmd_demo(
    offline: Annotated[bool, typer.Option("--offline", help="simulate + replay + print, "
                                          "no broker or dashboard")] = False,
    out: Annotated[Path | None, typer.Option("--out", help="working directory")] = None,
    scenario_name: Annotated[str, typer.Option("--scenario")] = "default",
    seed: Annotated[int, typer.Option("--seed")] = 1,
    speed: Annotated[float, typer.Option("--speed", help="live: × real time", min=1)] = 1000,
    port: Annotated[int, typer.Option("--port", help="live: dashboard port")] = 8501,
    duration: Annotated[float | None, typer.Option(
        "--duration", help="live: stop after this many seconds (default: Ctrl-C)")] = None,
) -> None:
    """Run amplimon on a simulated election (live by default; --offline for replay only)."""
    work = out or Path(tempfile.mkdtemp(prefix="amplimon-demo-"))
    work.mkdir(parents=True, exist_ok=True)
    if offline:
        run_offline(work, scenario_name, seed)
        return
    from monitor.cli import _live_demo  # the live pipeline is imported only when used

    _live_demo.run(work, scenario_name, seed, speed=speed, port=port, duration=duration)


def register(app: typer.Typer) -> None:
    app.command("demo")(cmd_demo)
