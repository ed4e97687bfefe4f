"""AppTest: signing in and out, lockout, expiry, and what each role is offered."""

from __future__ import annotations

import sqlite3

import pytest

from tests.dashboard import factories as F
from tests.dashboard.conftest import Dash


def sign_in(at, name: str, password: str):  # noqa: ANN001, ANN201
    at.text_input(key="login_user").input(name)
    at.text_input(key="login_password").input(password)
    return at.button[0].click().run()


def test_signed_out_sees_only_the_sign_in_form(dash: Dash) -> None:
    at = dash.app()
    assert [t.value for t in at.title] == ["amplimon"]
    assert not at.metric and not at.sidebar.button
    at = sign_in(at, "viewer", "wrong password")
    assert [e.value for e in at.error] == ["Wrong user name or password."]
    at = sign_in(at, "viewer", F.PASSWORDS["viewer"])
    assert not at.exception and [t.value for t in at.title] == ["Live alerts"]
    assert "**viewer** · viewer" in [m.value for m in at.sidebar.markdown]


def test_lockout_in_the_form(dash: Dash) -> None:
    at = dash.app()
    for _ in range(4):
        at = sign_in(at, "analyst", "guess")
    at = sign_in(at, "analyst", "guess")
    assert "locked for 15 minutes" in at.error[0].value
    at = sign_in(at, "analyst", F.PASSWORDS["analyst"])
    assert "try again in" in at.error[0].value and not at.metric


def test_sign_out(dash: Dash) -> None:
    at = dash.app("analyst")
    token = at.session_state["token"]
    at.sidebar.button(key="sign_out").click().run()
    assert [t.value for t in at.title] == ["amplimon"]
    assert dash.auth.session(token) is None


def test_expired_session_returns_to_sign_in(dash: Dash) -> None:
    at = dash.app("analyst")
    with sqlite3.connect(dash.state) as con:
        con.execute("UPDATE sessions SET last_seen = '2000-01-01T00:00:00+00:00'")
    at.run()
    assert [t.value for t in at.title] == ["amplimon"]
    assert any("session expired" in i.value for i in at.info)


@pytest.mark.parametrize(
    ("role", "triage", "export", "upload", "users"),
    [
        ("viewer", False, False, False, False),
        ("analyst", True, True, False, False),
        ("admin", True, True, True, True),
    ],
)
def test_what_each_role_is_offered(
    dash: Dash, role: str, triage: bool, export: bool, upload: bool, users: bool
) -> None:
    at = dash.open(role, "acc-1")
    assert not at.exception
    assert any(str(b.key).startswith("triage-") for b in at.button) is triage
    assert any(b.key == "prepare_pack" for b in at.button) is export
    if not triage:
        assert any("triage needs the analyst or admin role" in c.value for c in at.caption)
    at.switch_page("routes/registries.py").run()
    assert bool(at.file_uploader) is upload
    if users:
        at.switch_page("routes/users.py").run()
        assert [t.value for t in at.title] == ["Users"]
    else:  # the page is not even registered for this role
        with pytest.raises(ValueError, match="Could not find a navigation page"):
            at.switch_page("routes/users.py")
