"""Every test runs with its own ``AMPLIMON_DATA_DIR`` so that nothing a command creates there
(the pseudonymisation key above all) lands in the working tree or leaks between tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.evidence_support import RealRun, real_run


@pytest.fixture(autouse=True)
def _own_data_dir(tmp_path_factory: pytest.TempPathFactory,
                  monkeypatch: pytest.MonkeyPatch) -> Path:
    data = tmp_path_factory.mktemp("amplimon-data")
    monkeypatch.setenv("AMPLIMON_DATA_DIR", str(data))
    return data


@pytest.fixture(scope="session")
def real() -> RealRun:
    """Findings of the real engine on a small seeded simulated election
    (tests/evidence_support.py): the source of every test's evidence."""
    return real_run()
