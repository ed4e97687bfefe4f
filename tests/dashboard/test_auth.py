"""dashboard.auth: bcrypt hashes, roles, lockout, expiring sessions."""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
from pathlib import Path

import pytest

from dashboard.auth import Auth, AuthError, can
from dashboard.state import StateStore


class Clock:
    def __init__(self) -> None:
        self.now = dt.datetime(2026, 5, 4, 12, 0, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += dt.timedelta(**kw)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def auth(tmp_path: Path, clock: Clock) -> Auth:
    a = Auth(
        StateStore(tmp_path / "state.sqlite", clock=clock),
        max_attempts=3,
        lockout=dt.timedelta(minutes=15),
        idle=dt.timedelta(minutes=30),
        max_age=dt.timedelta(hours=12),
        dummy_rounds=4,
    )
    a.add_user("ana", "analyst", "correct horse", rounds=4)
    return a


def test_roles() -> None:
    assert can("viewer", "read") and not can("viewer", "triage")
    assert can("analyst", "triage") and can("analyst", "export")
    assert not can("analyst", "manage_users") and can("admin", "upload_registry")
    assert not can(None, "read")
    with pytest.raises(ValueError):
        can("admin", "fly")


def test_password_is_stored_as_bcrypt_hash(auth: Auth) -> None:
    with sqlite3.connect(auth.state.path) as con:
        (pw_hash,) = con.execute("SELECT pw_hash FROM users WHERE username = 'ana'").fetchone()
    assert pw_hash.startswith(b"$2b$04$") and b"correct horse" not in pw_hash


@pytest.mark.parametrize(
    ("name", "role", "password", "message"),
    [
        ("ana", "viewer", "long enough", "already exists"),
        ("bad name", "viewer", "long enough", "user name"),
        ("bob", "root", "long enough", "role must be one of"),
        ("bob", "viewer", "short", "at least 8"),
        ("bob", "viewer", "é" * 40, "at most 72 bytes"),
    ],
)
def test_add_user_rejects(auth: Auth, name: str, role: str, password: str, message: str) -> None:
    with pytest.raises(AuthError, match=message):
        auth.add_user(name, role, password, rounds=4)


def test_login_and_session(auth: Auth, clock: Clock) -> None:
    result = auth.login("ana", "correct horse")
    assert result.user is not None and result.user.role == "analyst" and result.token
    assert auth.session(result.token) == result.user
    assert auth.login("ana", "wrong").user is None
    assert auth.login("ana", "wrong").message == "Wrong user name or password."


def test_injection_in_name_is_just_a_wrong_name(auth: Auth) -> None:
    assert auth.login("ana' OR '1'='1", "correct horse").user is None
    assert auth.login("ana'; DROP TABLE users; --", "x").user is None
    assert [u["user"] for u in auth.users()] == ["ana"]


def test_lockout_after_failures_then_expiry(auth: Auth, clock: Clock) -> None:
    assert auth.login("ana", "nope").message == "Wrong user name or password."
    assert auth.login("ana", "nope").message == "Wrong user name or password."
    assert "locked for 15 minutes" in auth.login("ana", "nope").message
    locked = auth.login("ana", "correct horse")  # even the right password is refused
    assert locked.user is None and "try again in 15 minutes" in locked.message
    assert next(u for u in auth.users() if u["user"] == "ana")["locked"]
    clock.advance(minutes=16)
    assert auth.login("ana", "correct horse").user is not None


def test_unknown_names_lock_the_same_way(auth: Auth) -> None:
    messages = [auth.login("ghost", "x").message for _ in range(3)]
    assert messages[0] == "Wrong user name or password." and "locked" in messages[2]


def test_admin_unlock(auth: Auth) -> None:
    for _ in range(3):
        auth.login("ana", "nope")
    auth.unlock("ana")
    assert auth.login("ana", "correct horse").user is not None


def test_success_resets_the_failure_count(auth: Auth) -> None:
    auth.login("ana", "nope")
    auth.login("ana", "nope")
    assert auth.login("ana", "correct horse").user is not None
    auth.login("ana", "nope")
    assert auth.login("ana", "nope").message == "Wrong user name or password."


def test_session_idle_expiry_and_activity(auth: Auth, clock: Clock) -> None:
    token = auth.login("ana", "correct horse").token
    clock.advance(minutes=20)
    assert auth.session(token, touch=True) is not None
    clock.advance(minutes=20)  # 40 min after sign-in, 20 after activity
    assert auth.session(token) is not None
    clock.advance(minutes=31)
    assert auth.session(token) is None
    assert auth.session(token) is None  # deleted


def test_session_max_age(auth: Auth, clock: Clock) -> None:
    token = auth.login("ana", "correct horse").token
    for _ in range(25):
        clock.advance(minutes=29)
        auth.session(token, touch=True)
    assert auth.session(token) is None


def test_role_change_disable_and_logout_apply_at_once(auth: Auth) -> None:
    token = auth.login("ana", "correct horse").token
    auth.set_role("ana", "viewer")
    user = auth.session(token)
    assert user is not None and user.role == "viewer" and not user.can("triage")
    auth.set_disabled("ana", True)
    assert auth.session(token) is None
    assert auth.login("ana", "correct horse").user is None
    auth.set_disabled("ana", False)
    token = auth.login("ana", "correct horse").token
    auth.logout(token)
    assert auth.session(token) is None
    assert auth.session(None) is None and auth.session("forged") is None


def test_set_password_and_unknown_user(auth: Auth) -> None:
    auth.set_password("ana", "new password 1", rounds=4)
    assert auth.login("ana", "correct horse").user is None
    assert auth.login("ana", "new password 1").user is not None
    with pytest.raises(AuthError, match="no user"):
        auth.set_role("nobody", "admin")


def test_purge_sessions(auth: Auth, clock: Clock) -> None:
    auth.login("ana", "correct horse")
    clock.advance(hours=1)
    assert auth.purge_sessions() == 1


def test_lockout_is_per_client_so_nobody_locks_staff_out_from_elsewhere(auth: Auth) -> None:
    for _ in range(3):
        auth.login("ana", "nope", client="203.0.113.9")  # an attacker's address
    assert "try again in" in auth.login("ana", "correct horse", client="203.0.113.9").message
    assert auth.login("ana", "correct horse", client="10.1.1.7").user is not None  # ana


def test_a_client_guessing_many_names_is_locked(tmp_path: Path, clock: Clock) -> None:
    a = Auth(
        StateStore(tmp_path / "s.sqlite", clock=clock),
        max_attempts=3,
        client_max_attempts=5,
        dummy_rounds=4,
    )
    a.add_user("ana", "analyst", "correct horse", rounds=4)
    messages = [
        a.login(name, "guess", client="198.51.100.1").message
        for name in ("bob", "carl", "dora", "eve", "fay")
    ]
    assert messages[:4] == ["Wrong user name or password."] * 4
    assert "locked for 15 minutes" in messages[4]
    assert "try again in" in a.login("ana", "correct horse", client="198.51.100.1").message
    assert a.login("ana", "correct horse", client="198.51.100.2").user is not None
    clock.advance(minutes=16)
    assert a.login("ana", "correct horse", client="198.51.100.1").user is not None


def test_concurrent_guesses_are_counted_before_any_is_checked(auth: Auth) -> None:
    """60 simultaneous guesses (threads, then processes): at most max_attempts reach bcrypt;
    the others are refused as locked without a check (before: all 60 were checked)."""
    from concurrent.futures import ThreadPoolExecutor

    checked = 0
    real = auth._check
    lock = threading.Lock()

    def counting(password: str, pw_hash: bytes | None) -> bool:
        nonlocal checked
        with lock:
            checked += 1
        return real(password, pw_hash)

    auth._check = counting  # type: ignore[method-assign]
    with ThreadPoolExecutor(16) as pool:
        messages = list(
            pool.map(lambda _: auth.login("ana", "wrong", client="203.0.113.9").message, range(60))
        )
    assert checked == 3
    assert sum("try again in" in m for m in messages) == 57


GUESSER = """
import sys, threading
from dashboard.auth import Auth
from dashboard.state import StateStore
auth = Auth(StateStore(sys.argv[1]), max_attempts=3, dummy_rounds=4)
out, start = [], threading.Barrier(6)
def guess():
    start.wait()
    out.append(auth.login("ana", "wrong guess", client="203.0.113.9").message)
threads = [threading.Thread(target=guess) for _ in range(6)]
for t in threads: t.start()
for t in threads: t.join()
print("\\n".join(out))
"""


def test_concurrent_guesses_from_processes(tmp_path: Path) -> None:
    """10 processes × 6 threads guess at once against one state file."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    path = tmp_path / "s.sqlite"
    Auth(StateStore(path)).add_user("ana", "analyst", "correct horse", rounds=4)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", GUESSER, str(path)],
            cwd=root,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(10)
    ]
    messages = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        messages += out.splitlines()
    assert len(messages) == 60
    checked = [m for m in messages if "try again in" not in m]  # the refusals skip bcrypt
    assert len(checked) == 3
    assert sorted(checked) == [
        "Too many failed sign-ins: locked for 15 minutes.",
        "Wrong user name or password.",
        "Wrong user name or password.",
    ]
