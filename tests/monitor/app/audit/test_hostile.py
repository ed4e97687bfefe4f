"""The audit report interprets nothing a platform controls: hostile ids, platform names,
labels and evidence text come out as text — no link, no image, no script, no outside load —
and invisible characters are shown.  Also: the report's provenance (input hashes) and an
honest header when no store is kept."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from html.parser import HTMLParser
from pathlib import Path

import yaml

from monitor.app.audit import load_audit, render_html
from monitor.core.config import parse_config
from monitor.core.records import Finding
from monitor.core.store import Store
from tests import hostile_text as H

T0 = dt.datetime(2026, 5, 4, 12, tzinfo=dt.UTC)
CONFIG = {
    "windows": [
        {
            "id": "de-2026",
            "jurisdiction": "DE",
            "name": "Bundestag",
            "start": "2026-05-04T00:00:00Z",
            "end": "2026-05-07T00:00:00Z",
        }
    ],
    "actors": [
        {
            "actor": "acc-1",
            "name": "Jane Doe",
            "kind": "candidate",
            "group": "party-a",
            "regions": ["DE"],
        }
    ],
}


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def hostile_report(tmp_path: Path) -> str:
    db = tmp_path / "audit.duckdb"
    findings = [
        Finding.new(
            detector="holdout_shift",
            kind="amplification",
            platform=H.PLATFORM,
            region="DE",
            window_id="de-2026",
            subject_kind="actor",
            subject=text,
            effect=1.5,
            ci_low=1.2,
            ci_high=1.9,
            p_value=1e-6,
            n_exposures=100,
            severity="high",
            event_time=T0,
            detected_at=T0,
            evidence={
                "label": text,
                "note": H.FORMULA,
                "items": [{"id": text}],
                "covering_disclosures": [{"intervention": H.HTML}],
            },
        )
        for text in H.EVERY
    ]
    with Store(db) as store:
        store.upsert_findings(findings)
        store.record_run("r1", "audit", T0, {"inputs": [], "config_sha256": "0" * 64})
    data = load_audit(db, parse_config(CONFIG, source="c.yaml"))
    return render_html(data)


def test_hostile_text_is_never_interpreted_in_the_report(tmp_path: Path) -> None:
    report = hostile_report(tmp_path)
    parsed = Tags()
    parsed.feed(report)
    for tag, attrs in parsed.tags:
        assert tag not in ("img", "iframe", "object", "embed", "link", "base", "form"), tag
        if tag == "a":
            assert (attrs.get("href") or "").startswith("#"), attrs  # in-page links only
        if tag == "script":
            assert attrs.get("type") == "application/json", attrs
        assert not any(k.startswith("on") for k in attrs), (tag, attrs)
        for value in attrs.values():
            assert H.OUTSIDE not in (value or ""), (tag, attrs)
    assert report.count("<script") == 1  # the data block only
    text = "".join(parsed.text)
    assert H.SCRIPT in text and H.LINK in text  # shown as the characters they are
    assert "acc⟨U+202E⟩gnp.exe⟨U+200B⟩" in text and "\u202e" not in report
    # the JSON data block cannot be closed early by a string
    block = report[report.index('id="amplimon-data">') :]
    assert "</script>" in block and block.index("</script>") == len(block) - len(
        "</script></main></body></html>"
    )


def test_provenance_and_header_name_the_inputs_and_the_store(tmp_path: Path) -> None:
    from monitor.app.audit import run_audit

    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    rows = [
        json.dumps(
            {
                "event_id": f"e{i}",
                "platform": "chirp",
                "ts": f"2026-05-04T12:{i:02d}:00Z",
                "user": f"u{i}",
                "region": "DE",
                "surface": "feed",
                "arm": "ranked",
                "item": "i1",
                "actor": "acc-1",
                "position": 1,
            }
        )
        for i in range(20)
    ]
    exposure = [tmp_path / "exposure.jsonl"]
    exposure[0].write_text("\n".join(rows) + "\n")
    digest = hashlib.sha256(exposure[0].read_bytes()).hexdigest()
    out = tmp_path / "report.html"
    result = run_audit(config, exposure, [], out, show_progress=False)
    report = out.read_text()
    inputs = result.data.run["info"]["inputs"]
    assert inputs == [
        {
            "path": str(exposure[0]),
            "topic": "exposure",
            "bytes": exposure[0].stat().st_size,
            "sha256": digest,
        }
    ]
    assert f"<code>{digest}</code>" in report
    assert hashlib.sha256(config.read_bytes()).hexdigest() in report
    assert "temporary store" not in report
    assert "store none kept: the run&#x27;s DuckDB file was deleted" in report
    kept = run_audit(
        config, exposure, [], tmp_path / "r2.html", db=tmp_path / "a.duckdb", show_progress=False
    )
    assert f"store {tmp_path / 'a.duckdb'} (DuckDB)" in (tmp_path / "r2.html").read_text()
    assert kept.data.run["info"]["inputs"][0]["sha256"] == digest
