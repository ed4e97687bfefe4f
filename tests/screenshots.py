"""Where browser tests save their screenshots.

``make test`` must leave the working tree unchanged, so by default screenshots go to a
temporary folder; ``make screenshots`` sets ``AMPLIMON_SCREENSHOT_DIR=docs/screenshots`` to
refresh the README's pictures on purpose.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def screenshot_dir() -> Path:
    chosen = os.environ.get("AMPLIMON_SCREENSHOT_DIR")
    path = Path(chosen) if chosen else Path(tempfile.gettempdir()) / "amplimon-screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path
