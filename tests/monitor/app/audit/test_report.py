"""`amplimon audit` on a simulated election with planted cases (the worked example of
docs/for-platforms.md, run as written): the report holds every finding with the store's
numbers, is self-contained, opens in headless Chromium, and prints to PDF offline."""

from __future__ import annotations

import html
import json
import math
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import duckdb
import pytest

from detectors import REGISTRY
from monitor.app.audit import find_chromium, load_audit, write_pdf
from monitor.app.audit._pdf import chromium_command
from monitor.cli import main
from monitor.core.config import load_config
from tests.monitor.app.audit.doc_example import offline_prefix, run_worked_example
from tests.screenshots import screenshot_dir


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    work = tmp_path_factory.mktemp("platform-doc")
    # Run inside a fresh network namespace where possible: the audit and its PDF (headless
    # Chromium) then provably need no network at all.
    done = run_worked_example("for-platforms.md", work, offline=True)
    report = (work / "report.html").read_text(encoding="utf-8")
    con = duckdb.connect(str(work / "audit.duckdb"), read_only=True)
    try:
        cols = [d[0] for d in con.execute("SELECT * FROM findings LIMIT 0").description]
        findings = [
            dict(zip(cols, r, strict=True))
            for r in con.execute("SELECT * FROM findings").fetchall()
        ]
        amp = con.execute("""SELECT platform, window_id, subject, ratio, n_ranked, n_holdout
                             FROM amplification WHERE period = 'window'""").fetchall()
        det = con.execute(
            "SELECT detector, platform, window_id, subject_kind, subject, "
            "mde_up, mde_down, flagged FROM detectability"
        ).fetchall()
        dead = con.execute("SELECT count(*) FROM deadletter").fetchone()[0]
        info = json.loads(con.execute("SELECT info FROM runs").fetchone()[0])
        history = con.execute("SELECT count(*) FROM history").fetchone()[0]
    finally:
        con.close()
    return {
        "dir": work,
        "out": done,
        "html": report,
        "findings": findings,
        "amp": amp,
        "det": det,
        "dead": dead,
        "info": info,
        "history": history,
        "truth": json.loads((work / "sim" / "truth.json").read_text()),
    }


def embedded(report: str) -> dict[str, Any]:
    raw = re.search(
        r'<script type="application/json" id="amplimon-data">(.*?)</script>', report, re.S
    )
    assert raw
    return json.loads(raw.group(1).replace("<\\/", "</"))


def attr(report: str, finding_id: str, name: str) -> str:
    tag = re.search(rf'<section class="finding" id="f-{finding_id}"[^>]*>', report)
    assert tag, finding_id
    value = re.search(rf'{name}="([^"]*)"', tag.group(0))
    assert value, (finding_id, name)
    return html.unescape(value.group(1))


def same(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return a == b or (math.isnan(a) and math.isnan(b))


def test_every_finding_present_with_the_stores_numbers(example: dict[str, Any]) -> None:
    report, findings = example["html"], example["findings"]
    assert findings
    for f in findings:
        fid = f["finding_id"]
        assert report.count(f'id="f-{fid}"') == 1
        assert f'href="#f-{fid}"' in report  # listed in the summary
        stored = attr(report, fid, "data-effect")
        assert (stored == "None") if f["effect"] is None else same(float(stored), f["effect"])
        p = attr(report, fid, "data-p-value")
        assert (p == "None") if f["p_value"] is None else float(p) == f["p_value"]
        assert int(attr(report, fid, "data-n-exposures")) == f["n_exposures"]
    data = embedded(report)
    assert {f["finding_id"] for f in data["findings"]} == {f["finding_id"] for f in findings}
    by_id = {f["finding_id"]: f for f in findings}
    for f in data["findings"]:
        row = by_id[f["finding_id"]]
        assert f["evidence"] == json.loads(row["evidence"])
        for col in (
            "effect",
            "ci_low",
            "ci_high",
            "p_value",
            "n_exposures",
            "severity",
            "kind",
            "detector",
            "subject",
        ):
            assert same(f[col], row[col]) if isinstance(row[col], float) else f[col] == row[col]
    # Severity counts in the summary cards equal the store's.
    for sev in ("critical", "high", "medium", "low"):
        n = sum(f["severity"] == sev for f in findings)
        assert re.search(
            rf'<div class="n">{n}</div><div class="l"><span class="badge '
            rf'sev-{sev}">',
            report,
        ), sev


def test_planted_cases_and_the_underlogged_holdout_are_in_the_report(example) -> None:
    """The logged facts (undeclared intervention, missing labels) and the under-logged holdout
    arm are found; each planted case the detectors found is in the report (the statistical
    detectors' power is their own tests' business)."""
    findings, truth, report = example["findings"], example["truth"], example["html"]
    found = {(f["kind"], f["subject_kind"], f["subject"]) for f in findings}
    for iv in truth["interventions"]:
        ok = {(iv["expected_finding"], iv["subject_kind"], iv["subject"])} | {
            (a["kind"], a["subject_kind"], a["subject"]) for a in iv["also_acceptable"]
        }
        if iv["expected_finding"] in ("undisclosed_intervention", "missing_label"):
            assert ok & found, iv["id"]
        for kind, _sk, subject in ok & found:
            assert any(
                f["kind"] == kind
                and f["subject"] == subject
                and f'id="f-{f["finding_id"]}"' in report
                for f in findings
            )
    srm = [f for f in findings if f["kind"] == "log_integrity" and f["subject"] == "holdout_share"]
    assert srm and all(f["effect"] < 0.92 for f in srm)
    assert "under-represent the holdout" in report
    assert "findings" in example["out"].stderr + example["out"].stdout


def test_amplification_tables_and_forest_plots_match_the_store(example) -> None:
    report = example["html"]
    rows = re.findall(
        r'<tr class="[^"]*" data-platform="([^"]+)" data-window="([^"]+)" '
        r'data-subject="([^"]+)" data-ratio="([^"]*)" data-n-ranked="([^"]*)" '
        r'data-n-holdout="([^"]*)"',
        report,
    )
    got = {
        (p, w, s): (float(r) if r not in ("", "None") else None, int(nr), int(nh))
        for p, w, s, r, nr, nh in map(lambda t: tuple(html.unescape(x) for x in t), rows)
    }
    want = {(p, w, s): (r, nr, nh) for p, w, s, r, nr, nh in example["amp"]}
    assert got.keys() == want.keys()
    for key, (r, nr, nh) in want.items():
        assert same(got[key][0], r) and got[key][1:] == (nr, nh), key
    windows = {w for _, w, _ in want}
    assert report.count("ranked ÷ holdout exposure ratio, baseline vs window") == len(windows)
    data = embedded(report)
    assert len(data["amplification"]) == sum(1 for _ in data["amplification"])


def test_mde_for_unflagged_actors_data_quality_and_methods(example) -> None:
    report, findings = example["html"], example["findings"]
    flagged = {(f["platform"], f["window_id"], f["subject"]) for f in findings}
    expected = {
        (w, s)
        for _d, p, w, sk, s, *_ in example["det"]
        if sk == "actor" and (p, w, s) not in flagged
    }
    listed = set(re.findall(r'data-actor="([^"]+)" data-window="([^"]+)"', report))
    assert expected and {(w, a) for a, w in listed} == expected
    # data quality: dead letters and stream counters are the run's
    assert f"{example['dead']:,}" in report and example["dead"] > 0
    stats = example["info"]["stats"]
    assert f"{stats['duplicates']['exposure']:,}" in report
    for spec in REGISTRY.values():  # methods: every registered detector, with its guarantee
        assert f'id="m-{spec.name}"' in report
    assert "Ville" in report and "Bonferroni" in report
    assert example["history"] > 0


def test_report_is_self_contained(example) -> None:
    report = example["html"]
    assert report.startswith("<!DOCTYPE html>")
    assert not re.search(r'(src|href)="(https?:)?//', report)
    assert "<link" not in report and "@import" not in report
    assert not re.search(r"url\((?!#)", report)  # only references inside the page
    ids = re.findall(r' id="([^"]+)"', report)
    assert len(ids) == len(set(ids))  # inline SVGs do not clash
    assert not re.search(r"<script(?![^>]*application/json)", report)
    assert report.count("<svg") >= len(example["findings"])


def test_pdf_written_by_the_example_without_network(example) -> None:
    if offline_prefix():
        assert example["out"].args[:2] == ["unshare", "--net"]  # no network at all
    pdf = (example["dir"] / "report.pdf").read_bytes()
    assert pdf.startswith(b"%PDF") and len(pdf) > 50_000
    assert len(re.findall(rb"/Type\s*/Page[^s]", pdf)) > 5


@pytest.mark.browser
def test_chromium_opens_the_report_and_screenshot_saved(example) -> None:
    chromium = find_chromium()
    if chromium is None:
        pytest.fail(
            "no Chromium: `make test` installs Debian chromium; a missing browser is a failure"
        )
    shot = example["dir"] / "report.png"
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            chromium_command(
                chromium,
                profile,
                f"--screenshot={shot}",
                "--window-size=1280,2000",
                (example["dir"] / "report.html").as_uri(),
            ),
            capture_output=True,
            timeout=120,
            check=True,
        )
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 50_000  # a rendered page, not blank
    shutil.copyfile(shot, screenshot_dir() / "report.png")


def test_matplotlib_pdf_engine_without_a_browser(example, tmp_path: Path) -> None:
    d = example["dir"]
    data = load_audit(d / "audit.duckdb", load_config(d / "sim" / "amplimon.yaml"))
    data.findings = data.findings[:2]  # the engine is what is tested, not the volume
    out = tmp_path / "plain.pdf"
    assert write_pdf(data, d / "report.html", out, engine="matplotlib") == "matplotlib"
    assert out.read_bytes().startswith(b"%PDF")


def test_bad_arguments_exit_2_with_one_line(tmp_path: Path, capsys) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("windows: []\n")
    args = [
        "audit",
        "--config",
        str(cfg),
        "--exposure",
        str(tmp_path / "none.jsonl"),
        "--out",
        str(tmp_path / "r.html"),
    ]
    assert main(args) == 2
    assert main(["audit", "--config", str(cfg), "--out", str(tmp_path / "r.html")]) == 2
    assert (
        main(
            [
                "audit",
                "--config",
                str(cfg),
                "--exposure",
                str(cfg),
                "--out",
                str(tmp_path / "r.pdf"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("amplimon: ") for line in err)


def test_each_findings_chart_is_drawn_from_its_own_typed_series(example) -> None:
    """A finding whose evidence carries a series is charted from that series (signed with
    the finding), not from the optional history table; the others keep their charts."""
    from detectors import evidence as E

    report, charted = example["html"], 0
    for f in example["findings"]:
        section = re.search(
            rf'<section class="finding" id="f-{f["finding_id"]}".*?</section>', report, re.S
        )
        assert section, f["finding_id"]
        own = getattr(E.decode_finding(f).evidence, "series", None)
        drawn = "sequential statistic against its boundary" in section.group(0)
        assert drawn == (own is not None and bool(own.points)), f["finding_id"]
        if drawn:
            charted += 1
            looks = sum(p.log_e is not None for p in own.points)
            assert ("no sequential statistic per look" in section.group(0)) == (looks == 0)
    assert charted > 0
