"""AppTest: the finding detail page — words, numbers, charts, triage, evidence pack."""

from __future__ import annotations

import msgspec
import pytest
from streamlit.testing.v1 import AppTest

from dashboard import pack, triage
from dashboard.auth import User
from dashboard.state import StateStore
from monitor.core.signing import existing_signing_key
from streams.settings import load_settings
from tests.dashboard import factories as F
from tests.dashboard.conftest import Dash, serve, unmd


def record(at, action: str, note: str = ""):  # noqa: ANN001, ANN201
    at.text_area[0].input(note)
    return at.button(key=f"triage-{action}").click().run()


def actions(at) -> list[str]:  # noqa: ANN001
    return [str(b.label) for b in at.button if str(b.key or "").startswith("triage-")]


def test_detail_shows_sentence_numbers_charts(dash: Dash) -> None:
    at = dash.open("viewer", "acc-1")
    assert not at.exception
    assert [unmd(h.value) for h in at.header] == [
        "Candidate Jane Doe — amplification 1.90× on chirp in DE"
    ]
    assert unmd(at.info[0].value).startswith(
        "Candidate Jane Doe's exposure in the ranked feed "
        "relative to the holdout rose to 1.90× (95 % CI "
        "1.50–2.40) of its baseline level"
    )
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Effect"] == "1.90×" and metrics["p-value"] == "0.001"
    assert metrics["Crossed (UTC)"] == "4 May 12:00"
    # the real holdout_shift series (arms and the test, onset and crossing), the effect CI:
    # per-period bars and the statistic are in the series
    assert len(at.image) == 2
    assert any("the crossing that raised the finding" in unmd(c.value) for c in at.caption)
    disclosures = at.dataframe[0].value
    real = [d["intervention"] for d in F.series_evidence()["disclosures_checked"]]
    assert list(disclosures["intervention"]) == real
    assert at.json[0].value and "series" in at.json[0].value


def test_detail_of_a_logged_fact_and_the_selector(dash: Dash) -> None:
    at = dash.open("viewer", "acc-3")
    assert len(at.image) == 3  # per-period bars (no series), statistic summary, CI
    at.selectbox[0].set_value(dash.ids["party-a"]).run()
    assert unmd(at.header[0].value) == (
        "All 2 accounts of group party-a — amplification 1.30× on chirp in DE"
    )
    assert at.query_params["id"] == dash.ids["party-a"]


def test_deep_link_and_unknown_id(dash: Dash) -> None:
    at = dash.app("viewer")
    at.query_params["id"] = dash.ids["acc-2"]
    at.switch_page("routes/finding.py").run()
    assert unmd(at.header[0].value).startswith("Candidate John Roe")
    at.query_params["id"] = "nope"
    at.run()
    assert unmd(at.warning[0].value) == "Finding nope is not in the data."
    at.button(key="back_to_alerts").click().run()
    assert [t.value for t in at.title] == ["Live alerts"]


def test_viewer_cannot_triage_even_by_calling_the_logic(dash: Dash) -> None:
    at = dash.open("viewer", "acc-1")
    assert actions(at) == [] and not at.text_area
    with pytest.raises(triage.TriageError):
        triage.apply(
            StateStore(dash.state),
            User("viewer", "viewer"),
            dash.ids["acc-1"],
            "acknowledge",
            status="new",
            base_status="new",
        )


def test_analyst_full_triage_cycle(dash: Dash) -> None:
    at = dash.open("analyst", "acc-1")
    assert actions(at) == ["Acknowledge", "Escalate", "Dismiss", "Resolve"]
    at = record(at, "acknowledge", "checking the holdout arm")
    assert at.success[0].value == ("Status: new → acknowledged (recorded in the store of record).")
    assert F.read_status(dash.data, dash.ids["acc-1"]) == "acknowledged"  # DuckDB, contract §3
    assert ":blue-badge[acknowledged]" in at.markdown[0].value
    at = record(at, "escalate", "sent to legal")
    at = record(at, "dismiss")  # no note
    assert unmd(at.error[0].value) == "A note is required to dismiss a finding."
    at = record(at, "dismiss", "posting surge explains it")
    assert actions(at) == ["Reopen"] and at.text_area[0].value == ""
    at = record(at, "reopen", "new data")
    at = record(at, "resolve", "platform disclosed it")
    history = next(d.value for d in at.dataframe if "change" in d.value.columns)
    assert list(history["change"]) == [
        "acknowledged → resolved",
        "dismissed → acknowledged",
        "escalated → dismissed",
        "acknowledged → escalated",
        "new → acknowledged",
    ]
    assert list(history["who"]) == ["analyst"] * 5
    assert history["note"].iloc[-1] == "checking the holdout arm"
    assert F.read_status(dash.data, dash.ids["acc-1"]) == "resolved"
    assert any(
        "In the store of record (findings.status): resolved" in unmd(c.value) for c in at.caption
    )
    import duckdb

    con = duckdb.connect(str(dash.data), read_only=True)
    try:
        rows = con.execute("SELECT who, to_status, note FROM triage ORDER BY seq").fetchall()
    finally:
        con.close()
    assert rows == [
        ("analyst", "acknowledged", "checking the holdout arm"),
        ("analyst", "escalated", "sent to legal"),
        ("analyst", "dismissed", "posting surge explains it"),
        ("analyst", "acknowledged", "new data"),
        ("analyst", "resolved", "platform disclosed it"),
    ]


def test_concurrent_triage_is_refused(dash: Dash) -> None:
    at = dash.open("analyst", "acc-2")
    triage.apply(
        StateStore(dash.state),
        User("admin", "admin"),
        dash.ids["acc-2"],
        "escalate",
        status="new",
        base_status="new",
        note="urgent",
    )
    at = record(at, "resolve")  # offered both before and after the other change
    assert unmd(at.error[0].value).startswith("the status changed to escalated by admin at")
    assert actions(at) == ["Dismiss", "Resolve"]  # now the current status's actions
    assert [e.to_status for e in StateStore(dash.state).history(dash.ids["acc-2"])] == ["escalated"]


def test_a_vanished_action_registers_no_click(dash: Dash) -> None:
    at = dash.open("analyst", "acc-2")
    triage.apply(
        StateStore(dash.state),
        User("admin", "admin"),
        dash.ids["acc-2"],
        "resolve",
        status="new",
        base_status="new",
        note="done",
    )
    at = record(at, "acknowledge", "me too")
    assert not at.error and actions(at) == ["Reopen"]
    assert len(StateStore(dash.state).history(dash.ids["acc-2"])) == 1


def test_evidence_pack_prepared_downloaded_and_logged(dash: Dash) -> None:
    at = dash.open("analyst", "acc-1")
    assert not at.download_button
    at.button(key="prepare_pack").click().run()
    assert not at.exception
    assert at.download_button(key="download_pack").label == "Download evidence pack (ZIP)"
    fid, built = at.session_state["pack"]
    assert fid == dash.ids["acc-1"]
    own = existing_signing_key(load_settings())  # created by the dashboard on first use
    assert own is not None
    result = pack.verify_pack(built.data, built.manifest_sha256, trusted=[own.public])
    assert result.ok and result.finding_id == fid
    exports = StateStore(dash.state).exports(fid)
    assert [(e["who"], e["manifest_sha256"]) for e in exports] == [
        ("analyst", built.manifest_sha256)
    ]
    assert any(built.manifest_sha256 in c.value for c in at.caption)
    export_log = next(d.value for d in at.dataframe if "manifest_sha256" in d.value.columns)
    assert len(export_log) == 1


def test_cli_pack_is_the_pack_the_dashboard_makes(dash: Dash, tmp_path, capsys) -> None:  # noqa: ANN001
    """`amplimon pack` needs no browser and writes the same files (only who/when differ)."""
    import hashlib
    import io
    import json
    import zipfile

    from monitor.cli import main

    at = dash.open("analyst", "acc-1")
    at = record(at, "acknowledge", "checked")
    at.button(key="prepare_pack").click().run()
    _, built = at.session_state["pack"]
    out = tmp_path / "p.zip"
    assert (
        main(
            [
                "pack",
                "--db",
                str(dash.data),
                "--config",
                str(dash.config),
                "--finding",
                dash.ids["acc-1"],
                "--out",
                str(out),
                "--state",
                str(dash.state),
            ]
        )
        == 0
    )
    assert capsys.readouterr().err.startswith(f"wrote {out}: ")

    def digests(data: bytes) -> dict[str, str]:
        zf = zipfile.ZipFile(io.BytesIO(data))
        return {
            i.filename.split("/", 1)[1]: hashlib.sha256(zf.read(i)).hexdigest()
            for i in zf.infolist()
        }

    web, cli = digests(built.data), digests(out.read_bytes())
    assert set(web) == set(cli)
    differ = {p for p in web if web[p] != cli[p]}
    assert differ == {"README.txt", "manifest.json", "signature.json"}  # time and author
    finding = json.loads(
        zipfile.ZipFile(out).read(f"amplimon-evidence-{dash.ids['acc-1']}/finding.json")
    )
    assert finding["status_shown"] == "acknowledged"
    assert main(["verify", str(out)]) == 0  # the deployment's own key is trusted here
    assert [e["who"] for e in StateStore(dash.state).exports(dash.ids["acc-1"])] == [
        "analyst",
        "amplimon pack",
    ]
    assert main(["pack", "--db", str(dash.data), "--finding", "nope", "--out", str(out)]) == 2
    assert capsys.readouterr().err.endswith(f"{dash.data}: no finding 'nope'\n")


# -- a real run's findings: the series chart of real detectors (issue 15 item 2) -------------
@pytest.fixture
def real_dash(real, tmp_path, monkeypatch: pytest.MonkeyPatch) -> Dash:  # noqa: ANN001
    """The dashboard over the real run's findings, measurements and configuration, plus one
    finding as an older version stored it (untyped evidence)."""
    f = real.finding("holdout_shift", "amplification")
    old = msgspec.json.decode(msgspec.json.encode(f.evidence))
    del old["kind"], old["version"]
    old["series"] = [{"t": p["t"], "period": p["period"]} for p in old["series"]["points"]]
    legacy = msgspec.structs.replace(f, finding_id="legacy-finding", evidence=old)
    data = F.write_db(tmp_path / "real.duckdb", [*real.findings, legacy], list(real.measurements))
    return serve(
        data,
        real.config_yaml,
        tmp_path,
        monkeypatch,
        {
            "holdout_shift": f.finding_id,
            "score_shift": real.finding("score_shift").finding_id,
            "legacy": legacy.finding_id,
        },
    )


def _page(dash: Dash, name: str) -> AppTest:
    at = dash.app("viewer")
    at.query_params["id"] = dash.ids[name]
    at = at.switch_page("routes/finding.py").run()
    assert at.query_params["id"] == dash.ids[name]
    return at


@pytest.mark.parametrize("detector", ["holdout_shift", "score_shift"])
def test_real_finding_page_charts_its_series(real_dash: Dash, detector: str) -> None:
    at = _page(real_dash, detector)
    assert not at.exception and not at.warning
    assert any("the crossing that raised the finding" in unmd(c.value) for c in at.caption)
    assert at.image  # the series chart (and the effect CI)


def test_legacy_finding_still_displays(real_dash: Dash) -> None:
    at = _page(real_dash, "legacy")
    assert not at.exception and at.header
    assert any("older version" in unmd(c.value) for c in at.caption)
    assert at.image and at.json[0].value  # the test summary and effect CI; the raw JSON
