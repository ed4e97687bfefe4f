"""A file whose modification time says "this process is alive and looping" (healthchecks)."""

from __future__ import annotations

import time
from pathlib import Path

__all__ = ["Heartbeat", "is_fresh"]


class Heartbeat:
    """``beat()`` touches ``path`` at most once per ``every`` seconds; no-op without a path."""

    def __init__(self, path: str | Path | None, every: float = 1.0) -> None:
        self.path = Path(path) if path else None
        self.every = every
        self._last = 0.0
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def beat(self) -> None:
        now = time.monotonic()
        if self.path is None or now - self._last < self.every:
            return
        self.path.touch()
        self._last = now


def is_fresh(path: str | Path, max_age: float = 60.0) -> bool:
    """True if ``path`` was touched within ``max_age`` seconds (``python -m`` healthcheck)."""
    try:
        return time.time() - Path(path).stat().st_mtime <= max_age
    except FileNotFoundError:
        return False
