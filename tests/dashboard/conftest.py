"""Fixtures for the dashboard tests: a data file, a configuration, users, and AppTest."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from dashboard.auth import Auth
from monitor.core.records import DeadLetter
from tests.dashboard import factories as F

APP = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"


@dataclass
class Dash:
    data: Path
    config: Path
    state: Path
    auth: Auth
    ids: dict[str, str]  # subject → finding id

    def app(self, role: str | None = None) -> AppTest:
        """A fresh browser session, signed in as ``role`` (None: signed out), run once."""
        at = AppTest.from_file(APP, default_timeout=60)
        if role is not None:
            result = self.auth.login(role, F.PASSWORDS[role])
            assert result.token is not None, result.message
            at.session_state["token"] = result.token
        return at.run()

    def open(self, role: str, subject: str) -> AppTest:
        """Follow the alert's "Open" link (a page link: AppTest switches pages itself)."""
        at = self.app(role)
        assert self.ids[subject] in open_ids(at)
        at.query_params["id"] = self.ids[subject]
        return at.switch_page("routes/finding.py").run()


def serve(
    data: Path,
    config_yaml: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    ids: dict[str, str],
) -> Dash:
    """The dashboard's environment over the store ``data``: the configuration, a state file
    with the test users, the settings the app reads."""
    config = tmp_path / "amplimon.yaml"
    config.write_text(config_yaml)
    state = tmp_path / "dash.sqlite"
    auth = F.users(state)
    monkeypatch.setenv("AMPLIMON_DASHBOARD_DATA", str(data))
    monkeypatch.setenv("AMPLIMON_DASHBOARD_STATE", str(state))
    monkeypatch.setenv("AMPLIMON_CONFIG", str(config))
    monkeypatch.setenv("AMPLIMON_DASHBOARD_REFRESH", "60")
    return Dash(data, config, state, auth, ids)


@pytest.fixture
def dash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Dash:
    findings = F.default_findings()
    dead = [
        DeadLetter(
            source="exposure.jsonl",
            raw='{"event_id": 1',
            reason="invalid JSON",
            location=f"exposure.jsonl:{i}",
            received_at=F.T0 + dt.timedelta(minutes=i),
        )
        for i in range(3)
    ]
    data = F.write_db(tmp_path / "out.duckdb", findings, F.default_measurements(), dead)
    return serve(
        data, F.CONFIG_YAML, tmp_path, monkeypatch, {f.subject: f.finding_id for f in findings}
    )


@pytest.fixture
def fast_bcrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hash new passwords at the minimum cost (the cost is stored in each hash)."""
    import bcrypt

    real = bcrypt.gensalt
    monkeypatch.setattr(bcrypt, "gensalt", lambda rounds=12, prefix=b"2b": real(4, prefix))


def unmd(text: str) -> str:
    """Markdown source as a reader sees it: escaped punctuation without its backslash, and
    without the invisible word joiners that keep URLs from becoming links."""
    import re

    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", text).replace("\u2060", "")


def open_ids(at: AppTest) -> list[str]:
    """Finding ids of the alerts listed, in order (from their "Open" links)."""
    return [
        link.proto.query_string.removeprefix("id=")
        for link in at.page_link
        if link.proto.page == "finding"
    ]
