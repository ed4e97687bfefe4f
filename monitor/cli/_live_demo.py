"""The live demo behind ``amplimon demo`` (and ``make demo``).

One command: the embedded broker, the topics, the worker and the sink (``LiveStack``), the
dashboard, and the simulated platform feeding the topics at accelerated speed (an election
window in a few minutes).  It prints the dashboard URL and a demo login, and stops
everything — children first, then the broker — on Ctrl-C, SIGTERM or after ``duration``.
"""

from __future__ import annotations

import datetime as dt
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import FrameType

import typer

from monitor.cli._ports import wait_until_serving
from monitor.core.records import utc_now

__all__ = ["DEMO_PASSWORD", "DEMO_USER", "run", "simulate_recent"]

DEMO_USER, DEMO_PASSWORD = "commission", "demo-password"
_DASHBOARD_START_S = 90.0  # Streamlit's start on a busy two-core machine takes ~5-15 s


def simulate_recent(
    work: Path, scenario_name: str, seed: int, now: dt.datetime | None = None
) -> dict[str, Path]:
    """Write the scenario's streams, configuration and truth under ``work / "stream"``, its
    timeline shifted to end five minutes before ``now`` (default: the wall clock) — the
    engine refuses future events.  The shift keeps the clock's microseconds, so the
    configuration's times have sub-millisecond digits (read as their millisecond rounding)."""
    from streams.simulator import scenario, simulate, write_simulation

    probe = scenario(scenario_name, seed=seed)
    span = simulate(probe)
    last = max(_ts_ms(r["ts"]) for r in span.rankings)
    start = probe.start if isinstance(probe.start, dt.datetime) else None
    if start is None:
        raise RuntimeError("scenario has no absolute start")
    now = utc_now() if now is None else now
    shift = now - dt.timedelta(minutes=5) - dt.datetime.fromtimestamp(last / 1000, dt.UTC)
    params = scenario(scenario_name, seed=seed, start=start + shift)
    return write_simulation(work / "stream", params, fmt="jsonl.gz")


def _ts_ms(ts: object) -> int:
    if isinstance(ts, int):
        return ts
    return int(dt.datetime.fromisoformat(str(ts).replace("Z", "+00:00")).timestamp() * 1000)


def _add_user(state: Path) -> None:
    subprocess.run(  # noqa: S603
        [
            sys.executable,
            "-m",
            "monitor",
            "users",
            "add",
            DEMO_USER,
            "--role",
            "admin",
            "--state",
            str(state),
            "--password-stdin",
        ],
        input=DEMO_PASSWORD + "\n",
        text=True,
        check=True,
        capture_output=True,
    )


class _Stopped(Exception):
    """Raised inside the producer's send callback to end production early."""


def run(
    work: Path,
    scenario_name: str = "demo",
    seed: int = 1,
    *,
    speed: float = 1000.0,
    port: int = 8501,
    duration: float | None = None,
    port_note: str | None = None,
) -> None:
    """Run the live demo in ``work`` until interrupted (or ``duration`` seconds).

    The dashboard's URL and login are printed once it answers on ``port``; if it exits
    instead (or does not answer within a minute and a half), the demo stops everything and
    fails with one line quoting the dashboard's log (``typer.Exit(2)``)."""
    from monitor.cli._findings import print_findings, wide_console
    from streams.kafka.producer import produce
    from streams.kafka.stack import LiveStack, Service

    console = wide_console()
    scenario_name = "demo" if scenario_name == "default" else scenario_name
    console.print(f"[bold]amplimon demo[/] — working directory {work}")
    console.print("simulating a platform during two election windows …")
    paths = simulate_recent(work, scenario_name, seed)
    db = work / "amplimon.duckdb"
    stop = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    # Explicit handlers for both: a demo started from a non-interactive shell's background
    # job inherits SIGINT ignored, and Python then never raises KeyboardInterrupt.
    old = {sig: signal.signal(sig, _stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    stack = LiveStack(paths["config"], db, work)
    dashboard: Service | None = None
    producer: threading.Thread | None = None
    try:
        console.print("starting the embedded broker, topics, worker and sink …")
        stack.start()
        state = work / "dashboard.sqlite"
        _add_user(state)
        dashboard = Service(
            "dashboard",
            [
                "dashboard",
                "--data",
                str(stack.snapshot_dir),
                "--config",
                str(paths["config"]),
                "--state",
                str(state),
                "--port",
                str(port),
            ],
            work / "dashboard.log",
            stack.env(),
        ).start()
        url = f"http://127.0.0.1:{port}"
        if not wait_until_serving(
            f"{url}/_stcore/health",
            lambda: dashboard.running and not stop.is_set(),
            _DASHBOARD_START_S,
        ):
            if stop.is_set():
                return
            lines = [line for line in dashboard.log_text().splitlines() if line.strip()]
            detail = lines[-1].strip() if lines else "no output"
            typer.echo(
                f"amplimon: the dashboard did not start on port {port} ({detail}); "
                f"log: {work / 'dashboard.log'}",
                err=True,
            )
            raise typer.Exit(2)
        note = f" ({port_note})" if port_note else ""
        console.print(
            f"[bold green]dashboard:[/] {url}{note}  (login {DEMO_USER} / {DEMO_PASSWORD})"
        )
        console.print(
            f"producing the simulated streams at {speed:g}× real time; Ctrl-C stops everything"
        )

        def _abort_when_stopping(rec: object, t: float) -> None:
            if stop.is_set():
                raise _Stopped

        def _produce() -> None:
            try:
                produce(
                    stack.settings,
                    [(paths["exposure"], "exposure"), (paths["ranking"], "ranking")],
                    speed=speed,
                    end_of_stream=True,
                    on_send=_abort_when_stopping,
                )
            except _Stopped:
                pass

        producer = threading.Thread(target=_produce, name="producer", daemon=True)
        producer.start()
        deadline = None if duration is None else time.monotonic() + duration
        announced = False
        while not stop.is_set():
            if deadline is not None and time.monotonic() >= deadline:
                break
            if not producer.is_alive() and not announced:
                console.print("all events produced; the dashboard stays up until Ctrl-C")
                announced = True
            stop.wait(1.0)
    except KeyboardInterrupt:
        pass
    finally:
        console.print("stopping …")
        stop.set()
        if producer is not None:
            producer.join(timeout=30)  # it closes its Kafka client before the broker goes
        if dashboard is not None:
            dashboard.stop(grace=5)
        stack.stop()
        for sig, handler in old.items():
            signal.signal(sig, handler)
    if db.exists():
        print_findings(db, console)
