"""Ed25519 signatures for evidence packs: the deployment's signing key, its public key, trust.

One signing key per deployment (a commission's installation).  Every evidence pack carries a
signature over its ``manifest.json``; the manifest lists the SHA-256 of every other file, so
the signature covers the whole pack.  Ed25519 (RFC 8032) via the ``cryptography`` package:
deterministic signatures, 32-byte public keys, no parameters to get wrong.

**The key** is read from, in order:

1. ``AMPLIMON_SIGNING_KEY`` — the private key as PEM text (PKCS #8), e.g. from a secret store;
2. the file ``AMPLIMON_SIGNING_KEY_FILE`` (PEM; must exist);
3. ``<AMPLIMON_DATA_DIR>/signing.key`` — created on first use (mode 0600, written to a private
   temporary file and hard-linked into place so that two processes never both create one,
   as :mod:`monitor.core.privacy` does for the pseudonymisation key).

It never goes into a pack, a log or a database.  ``openssl genpkey -algorithm ed25519`` makes a
compatible key.  ``AMPLIMON_SIGNER`` names the deployment in each signature ("Electoral
Commission of X"); the name is informative, the key is what is checked.

**Fingerprint** of a public key: ``SHA256:`` followed by the unpadded base64 of SHA-256 of the
32 raw key bytes (the OpenSSH style), e.g. ``SHA256:3q2+7w…``.  A commission publishes it
(with ``amplimon keys export``) so an officer can compare it with what ``amplimon verify``
prints.

**Trust.**  A valid signature only says *which key* signed.  :func:`trusted_keys` gathers the
keys a verifier trusts without being told: the public keys in ``AMPLIMON_TRUSTED_KEYS`` (a PEM
file holding one or more keys, or a directory of ``*.pem`` / ``*.pub`` files) and the public
half of this deployment's own signing key *if it already exists* (never created by a
verifier).  A pack signed by any other key — e.g. a forger who rewrote the pack and signed
it with a key of their own — is not trusted.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import secrets
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from monitor.core.errors import AmplimonError

__all__ = [
    "ALGORITHM",
    "KEY_FILE_NAME",
    "PublicKey",
    "SigningKey",
    "SigningKeyError",
    "existing_signing_key",
    "fingerprint",
    "load_public_keys",
    "load_signing_key",
    "signing_key_from",
    "trusted_keys",
]

log = logging.getLogger("amplimon.signing")

ALGORITHM: Final = "Ed25519"
KEY_FILE_NAME: Final = "signing.key"
_DEFAULT_SIGNER: Final = "amplimon deployment"
_MAX_KEY_FILE: Final = 64 * 1024


class SigningKeyError(AmplimonError, ValueError):
    """A key cannot be read, created or parsed (one-line message)."""


def fingerprint(raw: bytes) -> str:
    """``SHA256:<unpadded base64 of SHA-256(raw public key)>``."""
    digest = hashlib.sha256(raw).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


@dataclass(frozen=True, slots=True)
class PublicKey:
    """An Ed25519 public key (32 raw bytes) and where it came from."""

    raw: bytes
    source: str = ""

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.raw)

    def pem(self) -> str:
        key = Ed25519PublicKey.from_public_bytes(self.raw)
        return key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()

    def verify(self, signature: bytes, data: bytes) -> bool:
        """True if ``signature`` is this key's Ed25519 signature of ``data``."""
        try:
            Ed25519PublicKey.from_public_bytes(self.raw).verify(signature, data)
        except (InvalidSignature, ValueError):
            return False
        return True

    @classmethod
    def from_base64(cls, text: str, source: str = "") -> PublicKey:
        try:
            raw = base64.b64decode(text, validate=True)
        except (ValueError, TypeError):
            raise SigningKeyError("public key: not base64") from None
        if len(raw) != 32:
            raise SigningKeyError(f"public key: {len(raw)} bytes, an Ed25519 key has 32")
        return cls(raw, source)


class SigningKey:
    """The deployment's private key; it never leaves the object (not even via pickle)."""

    __slots__ = ("_key", "public", "signer", "source")

    def __init__(self, key: Ed25519PrivateKey, *, signer: str = "", source: str = "") -> None:
        self._key = key
        raw = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.public = PublicKey(raw, source)
        self.signer = " ".join((signer or _DEFAULT_SIGNER).split())[:200]
        self.source = source

    @classmethod
    def generate(cls, signer: str = "") -> SigningKey:
        """A fresh key held in memory only (tests)."""
        return cls(Ed25519PrivateKey.generate(), signer=signer, source="ephemeral")

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data)

    def __repr__(self) -> str:
        return f"SigningKey({self.public.fingerprint}, signer={self.signer!r})"

    def __reduce__(self) -> Any:
        raise TypeError("a SigningKey holds a private key and is never serialised")


def _parse_private(data: bytes, where: str) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise SigningKeyError(
            f"signing key in {where}: not an unencrypted PEM private key "
            "(make one with `openssl genpkey -algorithm ed25519`)"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"signing key in {where}: not an Ed25519 key")
    return key


def _read(path: Path) -> bytes:
    try:
        mode = path.stat().st_mode
        if path.stat().st_size > _MAX_KEY_FILE:
            raise SigningKeyError(f"signing key file {path}: too large for a key")
        data = path.read_bytes()
    except OSError as err:
        raise SigningKeyError(
            f"cannot read signing key file {path}: {err.strerror or err}"
        ) from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning(
            "signing key file %s is readable by other users (mode %o); chmod 600 it",
            path,
            stat.S_IMODE(mode),
        )
    return data


def _create(path: Path) -> bool:
    """Write a fresh key to a private temp file (0600), then hard-link it into place: the
    link fails if another process got there first (theirs is used then), and nobody ever
    reads a half-written key."""
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
    except OSError as err:
        raise SigningKeyError(
            f"cannot create signing key file {path}: {err.strerror or err}"
        ) from None
    finally:
        tmp.unlink(missing_ok=True)
    log.info("created a new signing key in %s", path)
    return True


def load_signing_key(
    key: str | None,
    key_file: str | Path | None,
    data_dir: str | Path,
    *,
    signer: str = "",
    create: bool = True,
) -> SigningKey:
    """The deployment's key: ``key`` (PEM text), else ``key_file``, else
    ``<data_dir>/signing.key`` (created when absent and ``create``)."""
    if key:
        return SigningKey(
            _parse_private(key.strip().encode(), "AMPLIMON_SIGNING_KEY"),
            signer=signer,
            source="AMPLIMON_SIGNING_KEY",
        )
    if key_file:
        path = Path(key_file)
        if not path.is_file():
            raise SigningKeyError(f"signing key file {path} does not exist")
        return SigningKey(_parse_private(_read(path), str(path)), signer=signer, source=str(path))
    path = Path(data_dir) / KEY_FILE_NAME
    if not path.exists():
        if not create:
            raise SigningKeyError(f"no signing key: {path} does not exist")
        _create(path)
    return SigningKey(_parse_private(_read(path), str(path)), signer=signer, source=str(path))


def _secret(settings: Any, name: str) -> str | None:
    value = getattr(settings, name, None)
    if value is None:
        return None
    getter = getattr(value, "get_secret_value", None)
    return str(getter() if callable(getter) else value)


def signing_key_from(settings: Any, *, create: bool = True) -> SigningKey:
    """:func:`load_signing_key` from a :class:`streams.settings.Settings`."""
    return load_signing_key(
        _secret(settings, "signing_key"),
        settings.signing_key_file,
        settings.data_dir,
        signer=settings.signer or "",
        create=create,
    )


def existing_signing_key(settings: Any) -> SigningKey | None:
    """This deployment's key if one is configured or exists already; never creates one."""
    try:
        return signing_key_from(settings, create=False)
    except SigningKeyError:
        return None


def _public_from_pem(data: bytes, where: str) -> list[PublicKey]:
    blocks = [b for b in data.split(b"-----END PUBLIC KEY-----") if b"-----BEGIN" in b]
    keys = []
    for block in blocks:
        pem = block[block.index(b"-----BEGIN") :] + b"-----END PUBLIC KEY-----\n"
        try:
            key = serialization.load_pem_public_key(pem)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            raise SigningKeyError(f"{where}: not a PEM public key") from None
        if not isinstance(key, Ed25519PublicKey):
            raise SigningKeyError(f"{where}: not an Ed25519 public key")
        keys.append(
            PublicKey(
                key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw), where
            )
        )
    if not keys:
        raise SigningKeyError(f"{where}: no PEM public key in it")
    return keys


def load_public_keys(path: str | Path) -> list[PublicKey]:
    """Every public key in a PEM file, or in the ``*.pem`` / ``*.pub`` files of a directory."""
    p = Path(path)
    files: Iterable[Path]
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.suffix in (".pem", ".pub") and f.is_file())
    elif p.is_file():
        files = [p]
    else:
        raise SigningKeyError(f"{p}: no such key file or directory")
    keys: list[PublicKey] = []
    for f in files:
        try:
            if f.stat().st_size > _MAX_KEY_FILE:
                raise SigningKeyError(f"{f}: too large for a key file")
            data = f.read_bytes()
        except OSError as err:
            raise SigningKeyError(f"cannot read {f}: {err.strerror or err}") from None
        keys.extend(_public_from_pem(data, str(f)))
    return keys


def trusted_keys(settings: Any) -> list[PublicKey]:
    """Keys a verifier trusts without being told (see module docstring)."""
    keys: list[PublicKey] = []
    if getattr(settings, "trusted_keys", None):
        keys.extend(load_public_keys(settings.trusted_keys))
    own = existing_signing_key(settings)
    if own is not None:
        keys.append(own.public)
    return keys
