"""``amplimon demo``: the whole product on a simulated election.

``--offline``: simulate an election, replay it, print the findings and the amplification
table — no broker.  Without it, the live demo (broker, worker, sink, dashboard, producer).

Without ``--out`` the demo works in a temporary folder that it removes when it ends (however
it ends, short of SIGKILL).  The dashboard listens on ``--port``, which must be free; without
it on ``AMPLIMON_DASHBOARD_PORT`` (8501) or, when that is taken, the next free port — the
one printed is the one serving.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from monitor.cli._findings import print_findings, wide_console
from monitor.cli._ports import free_port_from, port_free
from streams.settings import env_name, load_settings

__all__ = ["dashboard_port", "register", "run_offline"]


def run_offline(
    out: Path, scenario_name: str = "default", seed: int = 1, *, keep: bool = True
) -> Path:
    """Simulate, replay, print; returns the DuckDB path (``keep``: ``out`` stays after)."""
    from monitor.app.replay import replay
    from monitor.core.config import load_config
    from streams.simulator import scenario, write_simulation

    console = wide_console()
    console.print(f"[bold]1/3[/] simulating election scenario {scenario_name!r} → {out}")
    paths = write_simulation(out, scenario(scenario_name, seed=seed), fmt="jsonl.gz")
    console.print("[bold]2/3[/] replaying the streams through every detector")
    db = out / "amplimon.duckdb"
    db.unlink(missing_ok=True)
    result = replay(
        load_config(paths["config"]),
        db,
        [paths["exposure"]],
        [paths["ranking"]],
        config_text=Path(paths["config"]).read_text(encoding="utf-8"),
    )
    s = result.stats
    console.print(
        f"    {s.records:,} records: {sum(s.accepted.values()):,} accepted, "
        f"{sum(s.duplicates.values()):,} duplicates, {sum(s.late.values()):,} late, "
        f"{sum(s.rejected.values()):,} dead letters"
    )
    console.print("[bold]3/3[/] findings")
    print_findings(db, console)
    if keep:
        console.print(f"planted interventions and expected findings: {out / 'truth.json'}")
        console.print(f"explore: amplimon findings --db {db}")
    return db


def dashboard_port(requested: int | None) -> tuple[int, str | None]:
    """The port for the demo's dashboard and, if it is not the usual one, why.

    An explicit ``--port`` that is taken is an error (one line); otherwise the configured
    port (``AMPLIMON_DASHBOARD_PORT``, 8501) or, if another program holds it, the next free
    one."""
    if requested is not None:
        if not port_free(requested):
            raise typer.BadParameter(
                f"port {requested} is in use; choose another, or leave "
                "--port out to take a free one",
                param_hint="--port",
            )
        return requested, None
    preferred = load_settings().dashboard_port
    port = free_port_from(preferred)
    return port, (None if port == preferred else f"port {preferred} is in use")


def cmd_demo(
    offline: Annotated[
        bool, typer.Option("--offline", help="simulate + replay + print, no broker or dashboard")
    ] = False,
    out: Annotated[Path | None, typer.Option("--out", help="working directory")] = None,
    scenario_name: Annotated[str, typer.Option("--scenario")] = "default",
    seed: Annotated[int, typer.Option("--seed")] = 1,
    speed: Annotated[float, typer.Option("--speed", help="live: × real time", min=1)] = 1000,
    port: Annotated[
        int | None,
        typer.Option(
            "--port",
            min=1,
            max=65535,
            help=f"live: dashboard port (default: ${env_name('dashboard_port')} or 8501, or the "
            "next free port if that one is taken)",
        ),
    ] = None,
    duration: Annotated[
        float | None,
        typer.Option("--duration", help="live: stop after this many seconds (default: Ctrl-C)"),
    ] = None,
) -> None:
    """Run amplimon on a simulated election (live by default; --offline for replay only)."""
    chosen, why = (None, None) if offline else dashboard_port(port)
    work = out or Path(tempfile.mkdtemp(prefix="amplimon-demo-"))
    try:
        work.mkdir(parents=True, exist_ok=True)
        if offline:
            run_offline(work, scenario_name, seed, keep=out is not None)
            return
        import monitor.cli._live_demo as _live_demo  # the live pipeline is imported only when used

        assert chosen is not None
        _live_demo.run(
            work, scenario_name, seed, speed=speed, port=chosen, duration=duration, port_note=why
        )
    finally:
        if out is None:  # a temporary folder: streams, database, logs go with it
            shutil.rmtree(work, ignore_errors=True)
            typer.echo(f"removed the working folder {work} (--out DIR keeps one)", err=True)


def register(app: typer.Typer) -> None:
    app.command("demo")(cmd_demo)
