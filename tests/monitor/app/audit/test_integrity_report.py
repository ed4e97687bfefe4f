"""The audit report reads the integrity checks of issue 13's second round as an officer
should: a plain sentence per check, and the panel's amplification estimate charted beside
the platform log's (findings from the real detector on a simulated falsifying platform)."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from monitor.app.audit import load_audit, render_html
from monitor.core.config import parse_config
from monitor.core.store import Store
from streams.simulator import scenario, simulate
from tests.detectors.test_integrity_adversary import run


def test_the_panels_estimate_is_charted_beside_the_logs(tmp_path: Path) -> None:
    sim = simulate(scenario("panel_hidden_boost", seed=1, time_scale=0.15))
    findings = [f for f in run(sim).latest_findings.values() if f.kind == "log_integrity"]
    panel = [f for f in findings if f.subject.startswith("panel_amplification:")]
    assert panel, [f.subject for f in findings]
    db = tmp_path / "audit.duckdb"
    t0 = dt.datetime(2026, 5, 1, tzinfo=dt.UTC)
    with Store(db) as store:
        store.upsert_findings(findings)
        store.record_run("r1", "audit", t0, {"inputs": [], "config_sha256": "0" * 64})
    report = render_html(load_audit(db, parse_config(sim.config, source="sim.yaml")))
    for f in panel:
        section = re.search(
            rf'<section class="finding" id="f-{f.finding_id}".*?</section>', report, re.S
        )
        assert section, f.finding_id
        text = section.group(0)
        assert "panellists&#x27; devices" in text or "panellists' devices" in text
        assert "platform&#x27;s log, same panellists" in text or "log, same panellists" in text
        assert "understates the amplification the panel saw" in text
        assert "panel vs log" in text  # the subject's name, not the raw check id
