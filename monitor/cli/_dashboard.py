"""``amplimon dashboard`` and ``amplimon users add|list``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from dashboard.settings import ENV, default_state_path
from monitor.core.config import load_config
from streams.settings import env_name

__all__ = ["register"]

_PASSWORD_ENV = "AMPLIMON_USER_PASSWORD"  # noqa: S105 - the name of the variable


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"amplimon: {' '.join(message.split())}", err=True)
    return typer.Exit(code)


def _state_path(data: Path | None, state: Path | None) -> Path:
    if state is not None:
        return state
    if data is not None:
        return default_state_path(data)
    raise _fail("give --state PATH or --data PATH (the state file is <data>.dashboard.sqlite)")


def cmd_dashboard(
    data: Annotated[
        Path,
        typer.Option(
            "--data",
            help="DuckDB file, or the live sink's Parquet snapshot directory",
            envvar=ENV["data"],
            show_envvar=True,
        ),
    ],
    port: Annotated[
        int,
        typer.Option(
            "--port",
            help="HTTP port",
            min=1,
            max=65535,
            envvar=env_name("dashboard_port"),
            show_envvar=True,
        ),
    ] = 8501,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="configuration YAML: windows, actor registry, disclosures",
            envvar=env_name("config"),
            show_envvar=True,
        ),
    ] = None,
    state: Annotated[
        Path | None,
        typer.Option(
            "--state",
            help="dashboard state (users, sessions, audit log); default <data>.dashboard.sqlite",
            envvar=ENV["state"],
            show_envvar=True,
        ),
    ] = None,
    host: Annotated[str, typer.Option("--host", help="address to listen on")] = "127.0.0.1",
    refresh: Annotated[
        float,
        typer.Option(
            "--refresh",
            help="seconds between live refreshes",
            min=0.5,
            envvar=ENV["refresh"],
            show_envvar=True,
        ),
    ] = 5.0,
) -> None:
    """Serve the analysts' dashboard (Streamlit) over a DuckDB file or a snapshot directory."""
    if not data.exists() and data.suffix.lower() in {".duckdb", ".db"}:
        raise _fail(f"{data}: no such database file")
    if data.exists() and not data.is_dir() and not os.access(data, os.R_OK):
        raise _fail(f"{data}: cannot read")
    if config is not None:
        load_config(config)  # one-line ConfigError → exit 2 before the server starts
    state_path = _state_path(data, state)
    from dashboard.auth import Auth
    from dashboard.state import StateError, StateStore

    try:
        users = Auth(StateStore(state_path)).users()
    except (StateError, OSError) as err:
        raise _fail(str(err)) from None
    if not any(u["role"] == "admin" for u in users):
        typer.echo(
            f"amplimon: no admin yet — create one with: amplimon users add NAME "
            f"--role admin --state {state_path}",
            err=True,
        )
    env = dict(os.environ)
    env.update(
        {
            ENV["data"]: str(data.resolve()),
            ENV["state"]: str(state_path.resolve()),
            ENV["refresh"]: str(refresh),
        }
    )
    if config is not None:
        env[ENV["config"]] = str(config.resolve())
    else:
        env.pop(ENV["config"], None)
    import dashboard

    app = Path(dashboard.__file__).resolve().parent / "app.py"
    cmd = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(app),
        "--server.port",
        str(port),
        "--server.address",
        host,
        "--server.headless",
        "true",
        "--server.fileWatcherType",
        "none",
        "--server.runOnSave",
        "false",
        "--server.maxUploadSize",
        "5",
        "--browser.gatherUsageStats",
        "false",
        "--client.toolbarMode",
        "minimal",
        "--theme.primaryColor",
        "#1F5FA8",
        # tables' built-in CSV export would write platform text raw (formulas); the
        # dashboard offers its own, neutralised downloads (dashboard/csvsafe.py)
        "--client.disableDataExport",
        "true",
    ]
    typer.echo(
        f"amplimon dashboard on http://{host}:{port} (data {data}, state {state_path})", err=True
    )
    sys.stderr.flush()
    if os.name == "posix":  # become the server: signals (Ctrl-C, SIGTERM) reach it directly
        os.execve(sys.executable, cmd, env)  # noqa: S606 - fixed argv, no shell
    try:
        code = subprocess.call(cmd, env=env)  # noqa: S603 - fixed argv, no shell
    except KeyboardInterrupt:
        code = 0
    raise typer.Exit(code)


def _password(password_stdin: bool) -> str:
    if password_stdin:
        line = sys.stdin.readline()
        return line.rstrip("\r\n")
    if os.environ.get(_PASSWORD_ENV):
        return os.environ[_PASSWORD_ENV]
    if not sys.stdin.isatty():
        raise _fail(f"no password: use --password-stdin or set {_PASSWORD_ENV}")
    return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))


def cmd_users_add(
    name: Annotated[str, typer.Argument(help="user name")],
    role: Annotated[str, typer.Option("--role", "-r", help="viewer, analyst or admin")],
    data: Annotated[
        Path | None,
        typer.Option(
            "--data", help="the dashboard's --data path", envvar=ENV["data"], show_envvar=True
        ),
    ] = None,
    state: Annotated[
        Path | None,
        typer.Option("--state", help="dashboard state file", envvar=ENV["state"], show_envvar=True),
    ] = None,
    password_stdin: Annotated[
        bool,
        typer.Option(
            "--password-stdin",
            help=f"read the password from stdin (else ${_PASSWORD_ENV}, else a prompt)",
        ),
    ] = False,
) -> None:
    """Create a dashboard user (bcrypt-hashed password)."""
    from dashboard.auth import Auth, AuthError, check_role, check_username
    from dashboard.state import StateError, StateStore

    try:
        check_username(name)
        check_role(role)
    except AuthError as err:
        raise _fail(str(err)) from None
    path = _state_path(data, state)
    password = _password(password_stdin)
    try:
        Auth(StateStore(path)).add_user(name, role, password, created_by="cli")
    except (AuthError, StateError) as err:
        raise _fail(str(err)) from None
    typer.echo(f"added {role} {name!r} to {path}", err=True)


def cmd_users_list(
    data: Annotated[Path | None, typer.Option("--data", envvar=ENV["data"])] = None,
    state: Annotated[Path | None, typer.Option("--state", envvar=ENV["state"])] = None,
) -> None:
    """List dashboard users with their roles and lockout state."""
    from dashboard.auth import Auth
    from dashboard.state import StateError, StateStore

    path = _state_path(data, state)
    try:
        users = Auth(StateStore(path)).users()
    except StateError as err:
        raise _fail(str(err)) from None
    for u in users:
        flags = ", ".join(
            f for f, on in (("disabled", u["disabled"]), ("locked", u["locked"])) if on
        )
        typer.echo(f"{u['user']}\t{u['role']}\t{flags}")


def register(app: typer.Typer) -> None:
    app.command("dashboard")(cmd_dashboard)
    users = typer.Typer(name="users", help="Dashboard users.", no_args_is_help=True)
    users.command("add")(cmd_users_add)
    users.command("list")(cmd_users_list)
    app.add_typer(users)
