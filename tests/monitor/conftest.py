"""Fixtures shared by the monitor tests."""

from __future__ import annotations

from typing import Any

import pytest

from tests.monitor.stream_support import demo_stream


@pytest.fixture(scope="session")
def stream() -> dict[str, Any]:
    """The demo election as one arrival-ordered stream (tests/monitor/stream_support.py)."""
    return demo_stream()
