"""Errors a user can fix.  The CLI prints them as one line and exits with status 2."""

from __future__ import annotations

from monitor.config import ConfigError
from monitor.privacy import PseudonymKeyError
from monitor.store import StoreError
from streams.files import SourceError

__all__ = ["UserError"]

# Every exception type whose message is a complete one-line explanation for the user.
UserError: tuple[type[Exception], ...] = (ConfigError, SourceError, StoreError,
                                              PseudonymKeyError)
