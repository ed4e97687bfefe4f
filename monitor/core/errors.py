"""The root of amplimon's errors: a problem the user can fix, explained in one line.

Every exception amplimon raises on purpose derives from :class:`AmplimonError` (and, where
callers expect it, from the built-in type it refines: ``ConfigError`` is also a
``ValueError``).  Its message is a complete one-line explanation naming the problem; the CLI
prints it as ``amplimon: <message>`` and exits with status 2 unless a command maps it to a
status of its own (``verify``: 1 = tampered).  Anything else that escapes is a bug and keeps
its traceback.

This module imports nothing of amplimon: every layer may raise these.
"""

from __future__ import annotations

__all__ = ["AmplimonError"]


class AmplimonError(Exception):
    """A problem the user can fix; ``str(err)`` is its one-line explanation."""
