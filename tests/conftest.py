"""Every test runs with its own ``AMPLIMON_DATA_DIR`` so that nothing a command creates there
(the pseudonymisation key above all) lands in the working tree or leaks between tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.evidence_support import RealRun, real_run


@pytest.fixture(autouse=True)
def _own_data_dir(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    data = tmp_path_factory.mktemp("amplimon-data")
    monkeypatch.setenv("AMPLIMON_DATA_DIR", str(data))
    return data


@pytest.fixture(scope="session")
def real() -> RealRun:
    """Findings of the real engine on a small seeded simulated election
    (tests/evidence_support.py): the source of every test's evidence."""
    return real_run()


# Parallel runs (``make test`` uses pytest-xdist with ``--dist loadgroup``): the tests of a
# module run on one worker, so a module's fixtures are built once; the broker tests form one
# group, run first, because they are the longest chain and share session fixtures (one
# embedded broker, one loaded simulation) that must not be built on every worker.
_BROKER_DIR = Path(__file__).parent / "streams" / "kafka"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    def on_broker(item: pytest.Item) -> bool:
        return _BROKER_DIR in Path(item.path).parents

    for item in items:
        group = "broker" if on_broker(item) else item.nodeid.split("::", 1)[0]
        item.add_marker(pytest.mark.xdist_group(group))
    if config.pluginmanager.hasplugin("xdist") and getattr(config.option, "numprocesses", None):
        items.sort(key=lambda item: not on_broker(item))  # stable: order kept within each
