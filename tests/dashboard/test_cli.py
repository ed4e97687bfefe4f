"""``amplimon users add|list`` and the argument checks of ``amplimon dashboard``."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from dashboard.auth import Auth
from dashboard.state import StateStore
from monitor.cli import main
from tests.dashboard import factories as F

pytestmark = pytest.mark.usefixtures("fast_bcrypt")


def test_users_add_from_stdin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "out.duckdb"
    monkeypatch.setattr("sys.stdin", io.StringIO("s3cret-password\n"))
    assert (
        main(["users", "add", "root", "--role", "admin", "--data", str(db), "--password-stdin"])
        == 0
    )
    state = tmp_path / "out.duckdb.dashboard.sqlite"
    assert "added admin 'root'" in capsys.readouterr().err
    result = Auth(StateStore(state)).login("root", "s3cret-password")
    assert result.user is not None and result.user.role == "admin"
    assert main(["users", "list", "--state", str(state)]) == 0
    assert capsys.readouterr().out == "root\tadmin\t\n"


def test_users_add_from_env_and_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "s.sqlite"
    monkeypatch.setenv("AMPLIMON_USER_PASSWORD", "from-the-env")
    assert main(["users", "add", "ana", "--role", "analyst", "--state", str(state)]) == 0
    capsys.readouterr()
    cases = [
        (
            ["users", "add", "ana", "--role", "analyst", "--state", str(state)],
            "amplimon: user 'ana' already exists\n",
        ),
        (
            ["users", "add", "bob", "--role", "boss", "--state", str(state)],
            "amplimon: role must be one of viewer, analyst, admin, got 'boss'\n",
        ),
        (
            ["users", "add", "bob", "--role", "viewer"],
            "amplimon: give --state PATH or --data PATH (the state file is "
            "<data>.dashboard.sqlite)\n",
        ),
    ]
    for argv, message in cases:
        assert main(argv) == 2
        assert capsys.readouterr().err == message
    monkeypatch.delenv("AMPLIMON_USER_PASSWORD")
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert main(["users", "add", "bob", "--role", "viewer", "--state", str(state)]) == 2
    assert "no password: use --password-stdin" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert (
        main(["users", "add", "bob", "--role", "viewer", "--state", str(state), "--password-stdin"])
        == 2
    )
    assert capsys.readouterr().err == "amplimon: password: at least 8 characters\n"


def test_dashboard_rejects_bad_arguments_before_serving(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["dashboard", "--data", str(tmp_path / "none.duckdb")]) == 2
    assert (
        capsys.readouterr().err == f"amplimon: {tmp_path / 'none.duckdb'}: no such database file\n"
    )
    db = F.write_db(tmp_path / "out.duckdb", [])
    bad = tmp_path / "bad.yaml"
    bad.write_text("windows: []\n")
    assert main(["dashboard", "--data", str(db), "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("amplimon: bad.yaml: windows:") and err.count("\n") == 1
