"""The one error type of the live pipeline whose message is a complete one-line explanation."""

from __future__ import annotations

from monitor.core.errors import AmplimonError

__all__ = ["PipelineError"]


class PipelineError(AmplimonError, RuntimeError):
    """A live-pipeline failure the user can fix (broker, topics, state); the CLI prints it
    as one line and exits with status 2."""
