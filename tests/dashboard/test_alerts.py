"""dashboard.alerts: filters, order, counts, new alerts, the windows timeline."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from dashboard import alerts, triage
from dashboard.alerts import Filters
from dashboard.data import open_source
from monitor.core.config import load_config
from tests.dashboard import factories as F


@pytest.fixture
def view(tmp_path: Path) -> pd.DataFrame:
    findings = [
        *F.default_findings(),
        F.finding(
            "acc-1",
            platform="yap",
            region="DE-BY",
            severity="critical",
            detector="rank_uplift",
            event_time=F.T0 + dt.timedelta(hours=5),
        ),
    ]
    snap = open_source(F.write_db(tmp_path / "o.duckdb", findings)).load()
    return triage.with_triage(snap.findings, {})


@pytest.fixture
def config(tmp_path: Path):  # noqa: ANN201
    path = tmp_path / "amplimon.yaml"
    path.write_text(F.CONFIG_YAML)
    return load_config(path)


def test_options(view: pd.DataFrame, config) -> None:  # noqa: ANN001
    opts = alerts.filter_options(view, config)
    assert opts["window"] == ["at-2026", "de-2026"]
    assert opts["jurisdiction"] == ["AT", "DE", "DE-BY"]
    assert opts["platform"] == ["chirp", "yap"]
    assert opts["severity"] == ["critical", "high", "medium", "low"]
    assert opts["status"][0] == "new"


@pytest.mark.parametrize(
    ("filters", "subjects"),
    [
        (Filters(), {"acc-1", "acc-2", "acc-3", "party-a"}),
        (Filters(window=("at-2026",)), {"acc-3"}),
        (Filters(jurisdiction=("DE",)), {"acc-1", "acc-2", "party-a"}),  # DE covers DE-BY
        (Filters(jurisdiction=("DE-BY",)), {"acc-1"}),
        (Filters(platform=("yap",)), {"acc-1"}),
        (Filters(detector=("missing_label",)), {"acc-3"}),
        (Filters(kind=("suppression",)), {"acc-2"}),
        (Filters(severity=("critical",)), {"acc-1", "acc-2"}),
        (Filters(status=("dismissed",)), set()),
        (Filters(kind=("amplification",), severity=("low",)), {"party-a"}),
    ],
)
def test_filters(view: pd.DataFrame, filters: Filters, subjects: set[str]) -> None:
    assert set(alerts.apply_filters(view, filters)["subject"]) == subjects


def test_sorted_by_severity_then_recency(view: pd.DataFrame) -> None:
    ordered = alerts.sort_alerts(view)
    assert list(ordered["severity"]) == ["critical", "critical", "high", "medium", "low"]
    # both critical: the later detection first
    assert list(ordered["platform"][:2]) == ["yap", "chirp"]
    assert alerts.sort_alerts(view.iloc[:0]).empty


def test_counts_and_new(view: pd.DataFrame) -> None:
    assert alerts.severity_counts(view) == {"critical": 2, "high": 1, "medium": 1, "low": 1}
    assert alerts.severity_counts(view.iloc[:0]) == {
        "critical": 0,
        "high": 0,
        "medium": 0,
        "low": 0,
    }
    assert alerts.new_since(["a", "b"], None) == set()
    assert alerts.new_since(["a", "b", "c"], {"a", "b"}) == {"c"}


def test_timeline_from_config_and_from_data(view: pd.DataFrame, config) -> None:  # noqa: ANN001
    rows = alerts.timeline_rows(config, view, view.iloc[:0])
    assert [r["window_id"] for r in rows] == ["de-2026", "at-2026"]
    at = rows[1]  # no baseline given: same length right before the window
    assert at["baseline_end"] == at["start"] and not at["approximate"]
    amp = pd.DataFrame({"window_id": ["xx-1"], "region": ["XX"]})
    rows = alerts.timeline_rows(None, view, amp)
    assert {r["window_id"] for r in rows} == {"at-2026", "de-2026", "xx-1"}
    de = next(r for r in rows if r["window_id"] == "de-2026")
    assert de["approximate"] and de["start"] == F.T0 and de["baseline_start"] is None
