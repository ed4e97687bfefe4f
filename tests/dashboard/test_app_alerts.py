"""AppTest: the live alerts page — order, counts, every filter, new alerts, refresh."""

from __future__ import annotations

import datetime as dt

import pytest

from dashboard import triage
from dashboard.auth import User
from dashboard.state import StateStore
from tests.dashboard import factories as F
from tests.dashboard.conftest import Dash, open_ids, unmd

ORDER = ["acc-2", "acc-1", "acc-3", "party-a"]  # critical, high, medium, low


def test_alerts_sorted_with_counts_and_timeline(dash: Dash) -> None:
    at = dash.app("viewer")
    assert not at.exception
    assert open_ids(at) == [dash.ids[s] for s in ORDER]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics == {
        "Critical": "1",
        "High": "1",
        "Medium": "1",
        "Low": "1",
        "Shown / all": "4 / 4",
    }
    assert at.image, "the windows timeline is drawn"
    first = unmd(at.markdown[0].value)
    assert first.startswith(":red-badge[CRITICAL] :violet-badge[new]")
    assert "Candidate John Roe — suppression 0.55×" in first
    assert any(
        unmd(c.value).startswith(
            "Candidate John Roe's exposure in the ranked feed relative to the holdout fell to 0.55×"
        )
        for c in at.caption
    )
    assert "JUST IN" not in " ".join(m.value for m in at.markdown)  # none on first look


@pytest.mark.parametrize(
    ("facet", "value", "subjects"),
    [
        ("window", ["at-2026"], ["acc-3"]),
        ("jurisdiction", ["DE"], ["acc-2", "acc-1", "party-a"]),
        ("platform", ["chirp"], ORDER),
        ("detector", ["missing_label"], ["acc-3"]),
        ("kind", ["amplification", "suppression"], ["acc-2", "acc-1", "party-a"]),
        ("severity", ["critical", "low"], ["acc-2", "party-a"]),
    ],
)
def test_each_filter(dash: Dash, facet: str, value: list[str], subjects: list[str]) -> None:
    at = dash.app("viewer")
    at.sidebar.multiselect(key=f"f_{facet}").set_value(value).run()
    assert open_ids(at) == [dash.ids[s] for s in subjects]
    assert at.metric[-1].value == f"{len(subjects)} / 4"
    at.sidebar.button(key="reset_filters").click().run()
    assert open_ids(at) == [dash.ids[s] for s in ORDER]


def test_status_filter_defaults_to_open_and_follows_triage(dash: Dash) -> None:
    triage.apply(
        StateStore(dash.state),
        User("analyst", "analyst"),
        dash.ids["acc-1"],
        "dismiss",
        status="new",
        base_status="new",
        note="organic",
    )
    at = dash.app("viewer")
    assert at.sidebar.multiselect(key="f_status").value == ["new", "acknowledged", "escalated"]
    assert dash.ids["acc-1"] not in open_ids(at)
    at.sidebar.multiselect(key="f_status").set_value(["dismissed"]).run()
    assert open_ids(at) == [dash.ids["acc-1"]]
    assert ":gray-badge[dismissed]" in at.markdown[0].value
    at.sidebar.multiselect(key="f_status").set_value(["resolved"]).run()
    assert open_ids(at) == [] and at.info[-1].value == "No alerts match the filters."


def test_a_new_finding_appears_marked_new(dash: Dash) -> None:
    at = dash.app("viewer")
    late = F.finding("acc-4", severity="critical", event_time=F.T0 + dt.timedelta(hours=9))
    F.write_db(dash.data, [late])  # the writer adds a finding between refreshes
    at.run()
    assert open_ids(at)[0] == late.finding_id  # newest critical first
    assert at.markdown[0].value.startswith(":primary-badge[JUST IN] :red-badge[CRITICAL]")
    assert [t.value for t in at.toast] == ["1 new alert"]
    assert at.metric[0].value == "2"
    at.run()
    assert not at.toast and at.markdown[0].value.startswith(":primary-badge[JUST IN]")
    at.query_params["id"] = late.finding_id  # looking at it clears the mark
    at.switch_page("routes/finding.py").run()
    at.switch_page("routes/alerts.py").run()
    assert at.markdown[0].value.startswith(":red-badge[CRITICAL]")


def test_updated_since_triage_is_flagged(dash: Dash) -> None:
    triage.apply(
        StateStore(dash.state),
        User("analyst", "analyst"),
        dash.ids["acc-1"],
        "acknowledge",
        status="new",
        base_status="new",
    )
    F.write_db(dash.data, [F.finding("acc-1", effect=2.6, severity="critical")])
    at = dash.app("viewer")
    row = next(m.value for m in at.markdown if "Jane Doe" in m.value)
    assert ":blue-badge[acknowledged]" in row and "updated since triage" in row


def test_show_more_and_table_view(dash: Dash) -> None:
    many = [
        F.finding(f"x-{i}", severity="low", event_time=F.T0 + dt.timedelta(minutes=i))
        for i in range(52)
    ]
    F.write_db(dash.data, many)
    at = dash.app("viewer")
    assert len(open_ids(at)) == 50 and at.metric[-1].value == "56 / 56"
    at.button(key="more_alerts").click().run()
    assert len(open_ids(at)) == 56
    table = at.dataframe[0].value
    assert len(table) == 56 and list(table.columns[:3]) == ["severity", "status", "subject"]


def test_open_goes_to_the_detail(dash: Dash) -> None:
    at = dash.app("viewer")
    link = at.page_link[open_ids(at).index(dash.ids["acc-3"])]
    assert link.value == "Open" and link.proto.query_string == f"id={dash.ids['acc-3']}"
    at = dash.open("viewer", "acc-3")
    assert [h.value for h in at.header] == ["Media Daily News — missing label on chirp in AT"]


def test_snapshot_directory_and_empty_data(dash: Dash, monkeypatch: pytest.MonkeyPatch) -> None:
    snap = F.write_snapshot(dash.data.parent / "snap", F.default_findings()[:2])
    monkeypatch.setenv("AMPLIMON_DASHBOARD_DATA", str(snap))
    at = dash.app("viewer")
    assert open_ids(at) == [dash.ids["acc-2"], dash.ids["acc-1"]]
    monkeypatch.setenv("AMPLIMON_DASHBOARD_DATA", str(dash.data.parent / "nothing-yet"))
    at.run()
    assert not at.exception and open_ids(at) == []
    assert any(i.value.startswith("Waiting for data") for i in at.info)
    assert at.info[-1].value == "No findings yet."


def test_invalid_config_is_reported_not_fatal(dash: Dash) -> None:
    dash.config.write_text("windows: []\n")
    at = dash.app("viewer")
    assert unmd(at.warning[0].value).startswith("Configuration not used: amplimon.yaml: windows:")
    assert open_ids(at)[0] == dash.ids["acc-2"]
    assert "Account acc-2" in unmd(at.markdown[0].value)  # no registry: ids, not names


def test_a_locked_database_shows_the_last_data_calmly(dash: Dash) -> None:
    import subprocess
    import sys

    from tests.dashboard.test_data import HOLDER

    at = dash.app("viewer")
    writer = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(dash.data)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "ready"
        at.run()
        assert not at.exception and not at.error
        assert open_ids(at) == [dash.ids[s] for s in ORDER]
        assert at.warning[0].value.startswith("Showing data read at")
        assert "lock" not in at.warning[0].value.lower()
    finally:
        assert writer.stdin is not None
        writer.stdin.write("\n")
        writer.stdin.close()
        writer.wait(timeout=20)
