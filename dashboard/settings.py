"""The dashboard's settings: one frozen object, read from the environment in one place.

``amplimon dashboard`` passes its options to the Streamlit process through these variables,
so the app itself has no command line of its own:

======================================  =============================================
``AMPLIMON_DASHBOARD_DATA``             DuckDB file or Parquet snapshot dir (required)
``AMPLIMON_DASHBOARD_STATE``            state (SQLite); ``<data>.dashboard.sqlite``
``AMPLIMON_CONFIG``                     configuration YAML (windows, registry, …)
``AMPLIMON_DASHBOARD_REFRESH``          seconds between live refreshes (default 5)
``AMPLIMON_DASHBOARD_SESSION_MINUTES``  idle minutes before a session ends (default 30)
``AMPLIMON_DASHBOARD_CLIENT_HEADER``    behind a reverse proxy: the header holding the
                                        client's address (e.g. ``X-Forwarded-For``; its
                                        last entry, the one the proxy added, is used)
======================================  =============================================
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ENV", "DashboardSettings", "default_state_path"]

ENV = {
    "data": "AMPLIMON_DASHBOARD_DATA",
    "state": "AMPLIMON_DASHBOARD_STATE",
    "config": "AMPLIMON_CONFIG",
    "refresh": "AMPLIMON_DASHBOARD_REFRESH",
    "session_minutes": "AMPLIMON_DASHBOARD_SESSION_MINUTES",
    "client_header": "AMPLIMON_DASHBOARD_CLIENT_HEADER",
}


def default_state_path(data: str | Path) -> Path:
    """``out.duckdb`` → ``out.duckdb.dashboard.sqlite``, ``snap/`` → ``snap.dashboard.sqlite``.

    A sibling file, never inside the sink's directory and never the sink's own database.
    """
    data = Path(data)
    return data.with_name(data.name + ".dashboard.sqlite")


@dataclass(frozen=True, slots=True)
class DashboardSettings:
    data: Path
    state: Path
    config: Path | None = None
    refresh_seconds: float = 5.0
    session_minutes: float = 30.0
    session_max_hours: float = 12.0
    lockout_attempts: int = 5
    lockout_minutes: float = 15.0
    client_header: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> DashboardSettings:
        env = os.environ if env is None else env
        data = env.get(ENV["data"], "").strip()
        if not data:
            raise ValueError(f"{ENV['data']} is not set (start the app with `amplimon dashboard`)")
        state = env.get(ENV["state"], "").strip()
        config = env.get(ENV["config"], "").strip()
        return cls(
            data=Path(data),
            state=Path(state) if state else default_state_path(data),
            config=Path(config) if config else None,
            refresh_seconds=_positive(env, "refresh", 5.0),
            session_minutes=_positive(env, "session_minutes", 30.0),
            client_header=env.get(ENV["client_header"], "").strip(),
        )


def _positive(env: Mapping[str, str], key: str, default: float) -> float:
    raw = env.get(ENV[key], "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{ENV[key]}: expected a number, got {raw!r}") from None
    if value <= 0:
        raise ValueError(f"{ENV[key]}: expected > 0, got {raw!r}")
    return value
