"""Access control: roles, bcrypt password hashes, brute-force lockout, expiring sessions.

* Roles: ``viewer`` reads; ``analyst`` also triages and exports evidence packs; ``admin``
  also manages users and uploads registries (:func:`can`).
* Passwords are hashed with bcrypt (cost 12 by default; the cost is stored in the hash).
  bcrypt reads at most 72 bytes, so longer passwords are refused rather than truncated.
* Lockout, per account *as seen from one client* and per client: ``max_attempts`` failures
  for a name from one client lock that name **for that client** for ``lockout``; and
  ``client_max_attempts`` failures from one client, whatever the names, lock the client.  A
  name alone is never locked for everybody, so nobody can lock named staff out from
  elsewhere (the price: a guesser with many addresses gets ``max_attempts`` bcrypt checks per
  address and name, at bcrypt's cost of ~0.25 s each).  Names that do not exist lock the
  same way, with the same message, so that attempts reveal nothing about which accounts
  exist; an unknown name is checked against a dummy hash for the same reason.
* Atomic: the lock is checked and the attempt counted as a failure in one ``BEGIN
  IMMEDIATE`` transaction *before* the (slow) bcrypt check, and a success then clears the
  count.  Concurrent guesses are serialised there: of N simultaneous guesses at most
  ``max_attempts`` reach bcrypt, however many threads or processes send them.
* The client is the address Streamlit sees (``st.context.ip_address``) or, behind a reverse
  proxy, the header the proxy sets (``AMPLIMON_DASHBOARD_CLIENT_HEADER``).
* Sessions: a random token kept in the browser session; only its SHA-256 is stored.  A session
  ends after ``idle`` without activity or ``max_age`` after sign-in, when the user is disabled
  or deleted, or on sign-out.  The role is read from ``users`` on every check, so a role change
  applies at once.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import re
import secrets
import sqlite3
from dataclasses import dataclass

import bcrypt

from dashboard.state import StateStore
from monitor.core.errors import AmplimonError

__all__ = ["ROLES", "Auth", "AuthError", "LoginResult", "User", "can", "hash_password"]

ROLES = ("viewer", "analyst", "admin")
_PERMISSIONS = {
    "read": {"viewer", "analyst", "admin"},
    "triage": {"analyst", "admin"},
    "export": {"analyst", "admin"},
    "manage_users": {"admin"},
    "upload_registry": {"admin"},
}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
_MIN_PASSWORD = 8
_GENERIC_FAILURE = "Wrong user name or password."


def can(role: str | None, permission: str) -> bool:
    if permission not in _PERMISSIONS:
        raise ValueError(f"unknown permission {permission!r}")
    return role in _PERMISSIONS[permission]


class AuthError(AmplimonError, ValueError):
    """An invalid user name, role or password (one line, safe to show)."""


def check_username(name: str) -> str:
    if not _NAME.match(name or ""):
        raise AuthError(
            "user name: 1–64 letters, digits or . _ @ -, starting with a letter or digit"
        )
    return name


def check_role(role: str) -> str:
    if role not in ROLES:
        raise AuthError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    return role


def hash_password(password: str, rounds: int = 12) -> bytes:
    raw = password.encode("utf-8")
    if len(password) < _MIN_PASSWORD:
        raise AuthError(f"password: at least {_MIN_PASSWORD} characters")
    if len(raw) > 72:
        raise AuthError("password: at most 72 bytes (bcrypt's limit)")
    return bcrypt.hashpw(raw, bcrypt.gensalt(rounds=rounds))


@dataclass(frozen=True, slots=True)
class User:
    username: str
    role: str

    def can(self, permission: str) -> bool:
        return can(self.role, permission)


@dataclass(frozen=True, slots=True)
class LoginResult:
    user: User | None
    token: str | None
    message: str


class Auth:
    def __init__(
        self,
        state: StateStore,
        *,
        max_attempts: int = 5,
        client_max_attempts: int = 20,
        lockout: dt.timedelta = dt.timedelta(minutes=15),
        idle: dt.timedelta = dt.timedelta(minutes=30),
        max_age: dt.timedelta = dt.timedelta(hours=12),
        dummy_rounds: int = 12,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        self.state = state
        self.max_attempts = max_attempts
        self.client_max_attempts = max(client_max_attempts, max_attempts)
        self.lockout = lockout
        self.idle = idle
        self.max_age = max_age
        self.dummy_rounds = dummy_rounds  # match the real hashes' cost: equal timing
        self._dummy: bytes | None = None

    # -- users ---------------------------------------------------------------------------
    def add_user(
        self, username: str, role: str, password: str, *, created_by: str = "", rounds: int = 12
    ) -> User:
        check_username(username)
        check_role(role)
        pw_hash = hash_password(password, rounds)
        with self.state.connect(write=True) as con:
            if con.execute("SELECT 1 FROM users WHERE username = ?", (username,)).fetchone():
                raise AuthError(f"user {username!r} already exists")
            con.execute(
                "INSERT INTO users (username, role, pw_hash, created_at, created_by) "
                "VALUES (?, ?, ?, ?, ?)",
                (username, role, pw_hash, self.state.now(), created_by),
            )
        return User(username, role)

    def set_password(self, username: str, password: str, *, rounds: int = 12) -> None:
        pw_hash = hash_password(password, rounds)
        self._update(username, "UPDATE users SET pw_hash = ? WHERE username = ?", pw_hash)
        self.unlock(username)

    def set_role(self, username: str, role: str) -> None:
        self._update(username, "UPDATE users SET role = ? WHERE username = ?", check_role(role))

    def set_disabled(self, username: str, disabled: bool) -> None:
        self._update(username, "UPDATE users SET disabled = ? WHERE username = ?", int(disabled))
        if disabled:
            with self.state.connect(write=True) as con:
                con.execute("DELETE FROM sessions WHERE username = ?", (username,))

    def _update(self, username: str, sql: str, value: object) -> None:
        with self.state.connect(write=True) as con:
            if con.execute(sql, (value, username)).rowcount == 0:
                raise AuthError(f"no user {username!r}")

    def unlock(self, username: str) -> None:
        """Clear the failures of ``username`` from every client."""
        with self.state.connect(write=True) as con:
            con.execute(
                "DELETE FROM login_failures WHERE scope = 'account' AND account = ?", (username,)
            )

    def users(self) -> list[dict[str, object]]:
        with self.state.connect() as con:
            rows = con.execute(
                "SELECT u.username, u.role, u.disabled, u.created_at, u.created_by, "
                "coalesce(sum(f.failures), 0), max(f.locked_until) FROM users u "
                "LEFT JOIN login_failures f ON f.scope = 'account' AND f.account = u.username "
                "GROUP BY u.username, u.role, u.disabled, u.created_at, u.created_by "
                "ORDER BY u.username"
            ).fetchall()
        now = self.state.now()
        return [
            {
                "user": n,
                "role": r,
                "disabled": bool(d),
                "created": c[:16].replace("T", " "),
                "created by": b,
                "failed sign-ins": f,
                "locked": bool(lk and lk > now),
            }
            for n, r, d, c, b, f, lk in rows
        ]

    # -- sign-in -------------------------------------------------------------------------
    def login(self, username: str, password: str, *, client: str = "") -> LoginResult:
        """Check a sign-in from ``client`` (an address); see the module docstring."""
        username = (username or "").strip()[:256]
        client = (client or "unknown")[:128]
        now = self.state.clock()
        with self.state.connect(write=True) as con:  # check and count: one transaction
            until = self._locked_until(con, now, username, client)
            if until is not None:
                minutes = max(1, math.ceil((until - now).total_seconds() / 60))
                return LoginResult(
                    None,
                    None,
                    f"Too many failed sign-ins: locked, try again "
                    f"in {minutes} minute{'s' if minutes > 1 else ''}.",
                )
            locks = self._count(con, now, username, client)
            row = con.execute(
                "SELECT role, pw_hash, disabled FROM users WHERE username = ?", (username,)
            ).fetchone()
        ok = self._check(password, row[1] if row else None)
        if not ok or row is None or row[2]:
            if locks:
                return LoginResult(
                    None,
                    None,
                    f"Too many failed sign-ins: locked for "
                    f"{int(self.lockout.total_seconds() // 60)} "
                    "minutes.",
                )
            return LoginResult(None, None, _GENERIC_FAILURE)
        token = secrets.token_urlsafe(32)
        with self.state.connect(write=True) as con:
            con.execute(
                "DELETE FROM login_failures WHERE scope = 'account' AND account = ? AND client = ?",
                (username, client),
            )
            con.execute(
                "UPDATE login_failures SET failures = max(failures - 1, 0) "
                "WHERE scope = 'client' AND account = '' AND client = ? "
                "AND locked_until IS NULL",
                (client,),
            )  # this attempt was no guess
            con.execute(
                "INSERT INTO sessions (token_hash, username, created_at, last_seen) "
                "VALUES (?, ?, ?, ?)",
                (_digest(token), username, self.state.now(), self.state.now()),
            )
        return LoginResult(User(username, row[0]), token, "Signed in.")

    def _locked_until(
        self, con: sqlite3.Connection, now: dt.datetime, username: str, client: str
    ) -> dt.datetime | None:
        rows = con.execute(
            "SELECT locked_until FROM login_failures WHERE locked_until IS NOT NULL AND "
            "((scope = 'account' AND account = ? AND client = ?) OR "
            " (scope = 'client' AND account = '' AND client = ?))",
            (username, client, client),
        ).fetchall()
        until = [dt.datetime.fromisoformat(r[0]) for r in rows]
        return max((u for u in until if u > now), default=None)

    def _count(self, con: sqlite3.Connection, now: dt.datetime, username: str, client: str) -> bool:
        """Count one failure in both scopes (an expired lock starts again at 1); True if this
        attempt reaches a limit and so locks."""
        locks = False
        for scope, account, limit in (
            ("account", username, self.max_attempts),
            ("client", "", self.client_max_attempts),
        ):
            row = con.execute(
                "SELECT failures, locked_until FROM login_failures WHERE "
                "scope = ? AND account = ? AND client = ?",
                (scope, account, client),
            ).fetchone()
            expired = row is not None and row[1] is not None
            failures = 1 if row is None or expired else row[0] + 1
            locked = (now + self.lockout).isoformat() if failures >= limit else None
            locks = locks or locked is not None
            con.execute(
                "INSERT OR REPLACE INTO login_failures (scope, account, client, "
                "failures, last_failure, locked_until) VALUES (?, ?, ?, ?, ?, ?)",
                (scope, account, client, failures, now.isoformat(), locked),
            )
        return locks

    def _check(self, password: str, pw_hash: bytes | None) -> bool:
        raw = (password or "").encode("utf-8")[:72]
        if pw_hash is None:
            if self._dummy is None:
                salt = bcrypt.gensalt(rounds=self.dummy_rounds)
                self._dummy = bcrypt.hashpw(b"not-a-password", salt)
            bcrypt.checkpw(raw, self._dummy)
            return False
        return bcrypt.checkpw(raw, pw_hash)

    # -- sessions ------------------------------------------------------------------------
    def session(self, token: str | None, *, touch: bool = False) -> User | None:
        """The signed-in user for ``token``, or None if it expired; ``touch`` = activity."""
        if not token:
            return None
        digest = _digest(token)
        now = self.state.clock()
        with self.state.connect() as con:
            row = con.execute(
                "SELECT s.created_at, s.last_seen, u.username, u.role, u.disabled "
                "FROM sessions s JOIN users u ON u.username = s.username "
                "WHERE s.token_hash = ?",
                (digest,),
            ).fetchone()
        if row is None:
            return None
        created, last_seen = dt.datetime.fromisoformat(row[0]), dt.datetime.fromisoformat(row[1])
        if row[4] or now - last_seen > self.idle or now - created > self.max_age:
            self.logout(token)
            return None
        if touch and now - last_seen > dt.timedelta(seconds=30):
            with self.state.connect(write=True) as con:
                con.execute(
                    "UPDATE sessions SET last_seen = ? WHERE token_hash = ?",
                    (now.isoformat(), digest),
                )
        return User(row[2], row[3])

    def logout(self, token: str | None) -> None:
        if token:
            with self.state.connect(write=True) as con:
                con.execute("DELETE FROM sessions WHERE token_hash = ?", (_digest(token),))

    def purge_sessions(self) -> int:
        """Delete sessions idle past their timeout (housekeeping)."""
        cutoff = (self.state.clock() - self.idle).isoformat()
        with self.state.connect(write=True) as con:
            return con.execute("DELETE FROM sessions WHERE last_seen < ?", (cutoff,)).rowcount


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()
