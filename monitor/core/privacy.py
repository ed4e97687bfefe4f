"""Pseudonymisation of user keys at ingest, and scrubbing of raw text that may hold them.

Every driver (replay, the Kafka worker, the archive, the self-audit) hands user keys to the
:class:`Pseudonymiser` before anything is kept::

    pseudonym(user) = "u_" ‖ hex( HMAC-SHA256(key, UTF-8(user)) )[0:32]

128 bits of a keyed hash: the same user maps to the same pseudonym under one key (distinct-user
counts, reach and clustering are unchanged — HMAC is injective in practice: a collision among
10⁹ users has probability ≈ 10¹⁸ / 2¹²⁹ ≈ 1.5·10⁻²¹), and without the key nobody can go back
from a pseudonym to a user or test a guess.  The key is read from ``AMPLIMON_PSEUDONYM_KEY``,
or the file ``AMPLIMON_PSEUDONYM_KEY_FILE``, or ``<data_dir>/pseudonym.key`` (created with mode
0600 on first use); it is never written to the database, checkpoints, archives or logs — only
its *key id* ``hex(HMAC-SHA256(key, "amplimon key id"))[0:8]`` is, so that a worker refuses
state pseudonymised under another key.

Raw text of rejected records (the dead-letter ``raw`` column and the rejection reason) is
scrubbed the same way: every ``"user"`` member is replaced by its pseudonym.
"""

from __future__ import annotations

import hmac
import logging
import os
import re
import secrets
import stat
from pathlib import Path
from typing import Any, Final

import msgspec

from monitor.core.errors import AmplimonError

__all__ = ["KEY_FILE_NAME", "PseudonymKeyError", "Pseudonymiser", "load_key", "load_pseudonymiser"]

log = logging.getLogger("amplimon.privacy")

KEY_FILE_NAME: Final = "pseudonym.key"
_MIN_KEY_BYTES: Final = 32
_ID_LABEL: Final = b"amplimon key id"
_USER_KEY: Final = "user"
_CACHE_MAX: Final = 200_000
# "user": "…" (closed or cut off by truncation) or "user": <any other token>
_USER_MEMBER = re.compile(r'("user"\s*:\s*)("(?:[^"\\]|\\.)*"?|[^\s,}\]]+)', re.S)
_REASON = re.compile(r"^(?P<field>(?:exposure|ranking)\.user): (?P<rest>.*?)(?:, got .*)?$", re.S)


class PseudonymKeyError(AmplimonError, ValueError):
    """The pseudonymisation key cannot be read or is too short (one-line message)."""


class Pseudonymiser:
    """Keyed hash of user keys; the key never leaves the object (not even via pickle)."""

    __slots__ = ("_cache", "_key", "key_id", "source")

    def __init__(self, key: bytes, source: str = "") -> None:
        if len(key) < _MIN_KEY_BYTES:
            raise PseudonymKeyError(
                f"pseudonymisation key too short: {len(key)} bytes, need at least {_MIN_KEY_BYTES}"
            )
        self._key = bytes(key)
        self.key_id = hmac.digest(self._key, _ID_LABEL, "sha256")[:4].hex()
        self.source = source  # where the key came from (for the worker's start-up line)
        # Users come back again and again: a bounded memo makes the hash ~20× cheaper than
        # the 2.7 µs HMAC (the raw keys it holds live only in this process's memory).
        self._cache: dict[str, str] = {}

    @classmethod
    def ephemeral(cls) -> Pseudonymiser:
        """A random key for this process only (tests, one-off library use)."""
        return cls(secrets.token_bytes(_MIN_KEY_BYTES), "ephemeral")

    def __call__(self, user: str) -> str:
        pseudonym = self._cache.get(user)
        if pseudonym is None:
            if len(self._cache) >= _CACHE_MAX:
                self._cache.clear()
            digest = hmac.digest(self._key, user.encode("utf-8", "surrogatepass"), "sha256")
            pseudonym = self._cache[user] = "u_" + digest[:16].hex()
        return pseudonym

    def __repr__(self) -> str:
        return f"Pseudonymiser(key_id={self.key_id})"

    def derive_key(self, label: str) -> bytes:
        """A key for another purpose (sealing state, :mod:`monitor.core.sealed`), derived from this
        one: ``HMAC-SHA256(key, "amplimon derive|" + label)``.  The deployment keeps one
        secret; a derived key reveals nothing of it or of the pseudonyms."""
        return hmac.digest(self._key, b"amplimon derive|" + label.encode(), "sha256")

    def __reduce__(self) -> Any:
        raise TypeError("a Pseudonymiser holds a secret key and is never serialised")

    # -- raw text ---------------------------------------------------------------------------
    def scrub(self, text: str) -> str:
        """``text`` with the value of every ``"user"`` member replaced by its pseudonym.

        A JSON object is re-encoded (compact) with every ``user`` member at any depth
        replaced; anything else (truncated, not JSON) is scrubbed by pattern, so that a
        key cut off by truncation is replaced too.
        """
        if '"user"' not in text:
            return text
        try:
            obj = msgspec.json.decode(text)
        except (msgspec.DecodeError, RecursionError):
            return _USER_MEMBER.sub(self._replace_member, text)
        try:
            return msgspec.json.encode(self._walk(obj)).decode()
        except RecursionError:
            return _USER_MEMBER.sub(self._replace_member, text)

    def scrub_reason(self, reason: str) -> str:
        """A rejection reason about the ``user`` field keeps its words, loses the value."""
        m = _REASON.match(reason)
        return f"{m.group('field')}: {m.group('rest')}" if m else reason

    def _walk(self, obj: Any) -> Any:
        if isinstance(obj, dict):
            return {
                k: (self._token(v) if k == _USER_KEY else self._walk(v)) for k, v in obj.items()
            }
        if isinstance(obj, list):
            return [self._walk(v) for v in obj]
        return obj

    def _token(self, value: Any) -> str:
        return self(value if isinstance(value, str) else msgspec.json.encode(value).decode())

    def _replace_member(self, m: re.Match[str]) -> str:
        token = m.group(2)
        if token.startswith('"'):
            try:
                value: Any = msgspec.json.decode(token)
            except msgspec.DecodeError:
                value = token.strip('"')
        else:
            value = token
        return f'{m.group(1)}"{self._token(value)}"'


def load_key(
    key: str | None, key_file: str | Path | None, data_dir: str | Path
) -> tuple[bytes, str]:
    """The key and where it came from: ``key`` text, else ``key_file``'s contents, else
    ``<data_dir>/pseudonym.key`` (created with 32 random bytes, hex, mode 0600, when it does
    not exist)."""
    if key:
        return _checked(key.strip().encode(), "AMPLIMON_PSEUDONYM_KEY"), "AMPLIMON_PSEUDONYM_KEY"
    if key_file:
        path = Path(key_file)
        if not path.is_file():
            raise PseudonymKeyError(f"pseudonymisation key file {path} does not exist")
        return _read(path), str(path)
    path = Path(data_dir) / KEY_FILE_NAME
    if not path.exists() and _create(path):
        return _read(path), f"{path} (created now: back it up)"
    return _read(path), str(path)


def load_pseudonymiser(settings: Any) -> Pseudonymiser:
    """:func:`load_key` from a :class:`streams.settings.Settings`."""
    secret = settings.pseudonym_key
    text = secret.get_secret_value() if secret is not None else None
    return Pseudonymiser(*load_key(text, settings.pseudonym_key_file, settings.data_dir))


def _read(path: Path) -> bytes:
    try:
        mode = path.stat().st_mode
        data = path.read_bytes().strip()
    except OSError as err:
        raise PseudonymKeyError(
            f"cannot read pseudonymisation key file {path}: {err.strerror or err}"
        ) from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning(
            "pseudonymisation key file %s is readable by other users (mode %o); chmod 600 it",
            path,
            stat.S_IMODE(mode),
        )
    return _checked(data, str(path))


def _checked(data: bytes, where: str) -> bytes:
    if len(data) < _MIN_KEY_BYTES:
        raise PseudonymKeyError(
            f"pseudonymisation key in {where} is too short: {len(data)} bytes, "
            f"need at least {_MIN_KEY_BYTES} (e.g. `openssl rand -hex 32`)"
        )
    return data


def _create(path: Path) -> bool:
    """Write a fresh key to a private temp file, then hard-link it into place: the link
    fails if another process got there first (then theirs is used), and nobody ever reads
    a half-written key."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(_MIN_KEY_BYTES) + "\n")
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
    except OSError as err:
        raise PseudonymKeyError(
            f"cannot create pseudonymisation key file {path}: {err.strerror or err}"
        ) from None
    finally:
        tmp.unlink(missing_ok=True)
    log.info("created a new pseudonymisation key in %s", path)
    return True
