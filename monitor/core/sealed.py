"""Sealed state: bytes that carry their version and an HMAC, so state read back from a topic
or a file anyone else could write is either exactly what this deployment wrote, or refused.

``seal(payload) = b"AMS" + version + HMAC-SHA256(key, version ‖ payload) + payload``.  The key
is derived from the deployment's pseudonymisation key (the secret every stage shares,
:meth:`monitor.core.privacy.Pseudonymiser.derive_key`) under a label naming what is sealed, so a
checkpoint cannot be replayed as another kind of state.  Sealing authenticates; it does not
hide (checkpoints hold pseudonyms and counts, never raw user keys).  The payload itself is
msgpack — data, never code: there is no pickle anywhere a third party could write.
"""

from __future__ import annotations

import hmac
from typing import Final

from monitor.core.errors import AmplimonError

__all__ = ["SealError", "Sealer"]

_MAGIC: Final = b"AMS"
_VERSION: Final = 1
_TAG: Final = 32


class SealError(AmplimonError, ValueError):
    """Sealed bytes that are not ours: wrong magic, unknown version, or a bad HMAC."""


class Sealer:
    """Seals and opens state under one derived key."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 32:
            raise ValueError("sealing key must be at least 32 bytes")
        self._key = bytes(key)

    def __repr__(self) -> str:
        return "Sealer(<key>)"

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("a Sealer holds a secret key and is never serialised")

    def seal(self, payload: bytes) -> bytes:
        version = bytes([_VERSION])
        tag = hmac.digest(self._key, version + payload, "sha256")
        return _MAGIC + version + tag + payload

    def open(self, blob: bytes) -> bytes:
        """The payload, or :class:`SealError` naming what is wrong."""
        head = len(_MAGIC) + 1
        if len(blob) < head + _TAG or not blob.startswith(_MAGIC):
            raise SealError("not sealed amplimon state")
        version = blob[len(_MAGIC)]
        if version != _VERSION:
            raise SealError(
                f"sealed state of version {version}; this release reads version {_VERSION}"
            )
        tag, payload = blob[head : head + _TAG], blob[head + _TAG :]
        if not hmac.compare_digest(
            tag, hmac.digest(self._key, bytes([version]) + payload, "sha256")
        ):
            raise SealError(
                "sealed state fails its HMAC: written by someone else, altered, "
                "or sealed under another key"
            )
        return payload
