"""Streamlit glue shared by the pages: settings, the shared data source and state store,
the active configuration, the signed-in user, and small rendering helpers.

Resources are cached per process (``st.cache_resource``), so every browser session shares
one :class:`~dashboard.data.DataSource` — one read of the data per change, whatever the
number of analysts watching.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd
import streamlit as st

import dashboard.triage as triage
from dashboard.auth import Auth, User
from dashboard.data import DataSource, DuckDBFileSource, Snapshot, open_source
from dashboard.settings import DashboardSettings
from dashboard.state import StateStore
from dashboard.text import md
from monitor.core.config import Config, ConfigError, load_config, parse_config
from monitor.core.signing import SigningKey, signing_key_from
from streams.settings import load_settings

__all__ = [
    "ActiveConfig",
    "active_config",
    "auth",
    "client_address",
    "data_note",
    "deliver_triage",
    "findings_view",
    "recheck_session",
    "settings",
    "severity_badge",
    "signed_in",
    "signing_key",
    "snapshot",
    "source",
    "state",
    "status_badge",
]

FINDING_PAGE = "routes/finding.py"
_SEVERITY = {"critical": "red", "high": "orange", "medium": "blue", "low": "gray"}
_STATUS = {
    "new": "violet",
    "acknowledged": "blue",
    "escalated": "red",
    "dismissed": "gray",
    "resolved": "green",
}


def settings() -> DashboardSettings:
    return DashboardSettings.from_env()


@st.cache_resource(show_spinner=False)
def _source(path: str) -> DataSource:
    return open_source(path)


@st.cache_resource(show_spinner=False)
def _signing_key(fingerprint_of_settings: str) -> SigningKey:
    return signing_key_from(load_settings())


def signing_key() -> SigningKey:
    """The deployment's evidence-signing key (:mod:`monitor.core.signing`); raises
    :class:`~monitor.core.signing.SigningKeyError` with a one-line message."""
    s = load_settings()
    return _signing_key(repr((s.signing_key_file, s.data_dir, s.signer, s.signing_key is not None)))


@st.cache_resource(show_spinner=False)
def _state(path: str) -> StateStore:
    return StateStore(path)


@st.cache_resource(show_spinner=False)
def _auth(
    path: str, idle_minutes: float, max_hours: float, attempts: int, lockout_minutes: float
) -> Auth:
    return Auth(
        _state(path),
        max_attempts=attempts,
        lockout=dt.timedelta(minutes=lockout_minutes),
        idle=dt.timedelta(minutes=idle_minutes),
        max_age=dt.timedelta(hours=max_hours),
    )


def state() -> StateStore:
    return _state(str(settings().state))


def auth() -> Auth:
    s = settings()
    return _auth(
        str(s.state), s.session_minutes, s.session_max_hours, s.lockout_attempts, s.lockout_minutes
    )


def source() -> DataSource:
    return _source(str(settings().data))


def snapshot() -> Snapshot:
    return source().load()


def findings_view(snap: Snapshot) -> pd.DataFrame:
    """Findings with the status shown (latest triage entry, else the finding's own).  Triage
    not yet in the store of record is delivered again (at most every 10 s)."""
    view = triage.with_triage(snap.findings, state().latest_statuses())
    pending = view["triaged_by"].notna() & (view["status"] != view["status_shown"])
    if pending.any() and time.monotonic() - _last_delivery[0] > 10:
        deliver_triage()
    return view


_last_delivery = [0.0]


def deliver_triage() -> bool:
    """Put the triage log into the store of record where the dashboard may: a DuckDB file
    with no writer.  Under a live sink (snapshot directory, or a file the sink holds) the
    sink applies it; True when it is applied here."""
    _last_delivery[0] = time.monotonic()
    src = source()
    if not isinstance(src, DuckDBFileSource):
        return False
    try:
        return src.apply_triage(settings().state)
    except (duckdb.Error, sqlite3.Error, OSError) as err:
        st.warning(
            f"Triage is recorded here but not yet in the store of record: {md(err)}; it is retried."
        )
        return False


@dataclass(frozen=True, slots=True)
class ActiveConfig:
    config: Config | None
    text: str
    origin: str
    error: str = ""


@st.cache_resource(show_spinner=False, max_entries=8)
def _config_file(path: str, mtime_ns: int) -> ActiveConfig:
    try:
        cfg = load_config(path)
    except ConfigError as err:
        return ActiveConfig(None, "", path, str(err))
    return ActiveConfig(cfg, Path(path).read_text(encoding="utf-8"), path)


@st.cache_resource(show_spinner=False, max_entries=8)
def _config_upload(seq: int, filename: str, who: str, at: str, text: str) -> ActiveConfig:
    import yaml

    origin = f"{filename} uploaded by {who} at {at[:16].replace('T', ' ')} UTC"
    try:
        cfg = parse_config(yaml.safe_load(text), source=filename)
    except (ConfigError, yaml.YAMLError) as err:
        return ActiveConfig(None, "", origin, str(err).splitlines()[0])
    return ActiveConfig(cfg, text, origin)


def active_config() -> ActiveConfig:
    """The latest registry an admin uploaded, else the ``--config`` file, else none."""
    upload = state().latest_registry()
    if upload is not None:
        return _config_upload(
            upload["seq"], upload["filename"], upload["who"], upload["at"], upload["text"]
        )
    path = settings().config
    if path is None:
        return ActiveConfig(None, "", "")
    try:
        mtime = path.stat().st_mtime_ns
    except OSError as err:
        return ActiveConfig(None, "", str(path), f"{path}: cannot read ({err.strerror})")
    return _config_file(str(path), mtime)


def client_address() -> str:
    """Who is signing in, for the lockout: the proxy's header if configured, else the
    address Streamlit sees."""
    header = settings().client_header
    if header:
        value = st.context.headers.get(header) or ""
        if value.strip():
            return value.split(",")[-1].strip()[:128]
    ip = st.context.ip_address
    return ip[:128] if isinstance(ip, str) and ip else "unknown"


def signed_in(*, touch: bool = False) -> User | None:
    """The user of this browser session, or None (never signed in, expired, disabled)."""
    token = st.session_state.get("token")
    user = auth().session(token, touch=touch)
    if user is None and token:
        st.session_state.pop("token", None)
        st.session_state["expired"] = True
    return user


def recheck_session() -> None:
    """In an auto-refreshing fragment: if the session expired meanwhile, rerun the whole app
    (which shows the sign-in form).  Refreshes are not activity: they don't extend it."""
    if signed_in() is None:
        st.rerun(scope="app")


def severity_badge(severity: str | None) -> str:
    sev = str(severity or "unknown")
    return f":{_SEVERITY.get(sev, 'gray')}-badge[{md(sev.upper())}]"


def status_badge(status: str | None) -> str:
    s = str(status or "new")
    return f":{_STATUS.get(s, 'gray')}-badge[{md(s)}]"


def data_note(snap: Snapshot) -> None:
    """One calm line about the data's freshness (never a lock error)."""
    if snap.note:
        (st.warning if snap.stale else st.info)(md(snap.note), icon=":material/hourglass_top:")
    elif snap.read_at is not None:
        st.caption(
            f"Data read {snap.read_at.strftime('%H:%M:%S')} UTC from "
            f"{md(snap.origin or settings().data.name)}"
        )
