"""Evidence packs: contents, manifest, verification, and ``amplimon verify``."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

import pytest

from dashboard import pack, triage
from dashboard.auth import User
from dashboard.data import open_source
from dashboard.state import StateStore
from monitor.cli import main
from tests.dashboard import factories as F


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> pack.Pack:
    tmp = tmp_path_factory.mktemp("pack")
    snap = open_source(F.write_db(tmp / "o.duckdb", F.default_findings(),
                                  F.default_measurements())).load()
    state = StateStore(tmp / "s.sqlite")
    fid = F.finding().finding_id
    triage.apply(state, User("ana", "analyst"), fid, "acknowledge", status="new",
                 base_status="new", note="checked")
    row = triage.with_triage(snap.findings, state.latest_statuses())
    row = row[row["finding_id"] == fid].iloc[0].to_dict()
    return pack.build_pack(row, snap.amplification, None, config_text=F.CONFIG_YAML,
                           runs=snap.runs, history=state.history(fid), created_by="ana")


def rewrite(data: bytes, change: dict[str, bytes | None], add: dict[str, bytes] | None = None
            ) -> bytes:
    """Copy a pack, replacing (or, with None, dropping) entries by their inner path."""
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            inner = info.filename.split("/", 1)[1]
            if inner in change:
                if change[inner] is not None:
                    dst.writestr(info.filename, change[inner])
            else:
                dst.writestr(info.filename, src.read(info))
        root = src.infolist()[0].filename.split("/", 1)[0]
        for name, body in (add or {}).items():
            dst.writestr(f"{root}/{name}", body)
    return out.getvalue()


def test_contents(built: pack.Pack) -> None:
    files = set(built.files)
    assert {"README.txt", "finding.json", "evidence.json", "manifest.json", "versions.json",
            "config/amplimon.yaml", "triage/history.csv"} <= files
    for chart in ("exposure_over_time", "sequential_statistic", "effect_ci"):
        assert {f"data/{chart}.csv", f"data/{chart}.parquet", f"charts/{chart}.png",
                f"charts/{chart}.svg"} <= files
    assert "data/disclosures_checked.csv" in files
    zf = zipfile.ZipFile(io.BytesIO(built.data))
    root = f"amplimon-evidence-{F.finding().finding_id}/"
    finding = json.loads(zf.read(root + "finding.json"))
    assert finding["status_shown"] == "acknowledged" and finding["evidence"]["series"]
    versions = json.loads(zf.read(root + "versions.json"))
    assert {d["name"] for d in versions["detectors"]} >= {"amplification", "missing_label"}
    assert versions["config_sha256"] == hashlib.sha256(F.CONFIG_YAML.encode()).hexdigest()
    assert "checked" in zf.read(root + "triage/history.csv").decode()
    manifest = zf.read(root + "manifest.json")
    assert hashlib.sha256(manifest).hexdigest() == built.manifest_sha256
    listed = {f["path"] for f in json.loads(manifest)["files"]}
    assert listed == files - {"manifest.json"}


def test_verify_valid(built: pack.Pack, tmp_path: Path) -> None:
    result = pack.verify_pack(built.data)
    assert result.ok and result.finding_id == F.finding().finding_id
    assert pack.verify_pack(built.data, built.manifest_sha256).ok
    path = tmp_path / built.file_name
    path.write_bytes(built.data)
    assert pack.verify_pack(path).ok


@pytest.mark.parametrize(("change", "add", "reason"), [
    ({"evidence.json": b"{}"}, None, "evidence.json: SHA-256 does not match"),
    ({"charts/effect_ci.png": None}, None, "charts/effect_ci.png: listed in the manifest but "
                                           "missing"),
    ({}, {"extra.txt": b"hi"}, "extra.txt: not listed in the manifest"),
    ({"manifest.json": None}, None, "manifest.json is missing"),
    ({"manifest.json": b"not json"}, None, "manifest.json is not a valid manifest"),
    ({"manifest.json": b'{"format": "x", "files": []}'}, None, "unknown format"),
])
def test_verify_detects_tampering(built: pack.Pack, change: dict, add: dict | None,
                                  reason: str) -> None:
    result = pack.verify_pack(rewrite(built.data, change, add))
    assert not result.ok and reason in result.reason


def test_verify_detects_rewritten_manifest_with_expected_digest(built: pack.Pack) -> None:
    """A forger who recomputes the manifest passes the hash check, not the recorded digest."""
    zf = zipfile.ZipFile(io.BytesIO(built.data))
    root = zf.infolist()[0].filename.split("/", 1)[0]
    manifest = json.loads(zf.read(f"{root}/manifest.json"))
    forged = b'{"effect": 9}'
    for f in manifest["files"]:
        if f["path"] == "evidence.json":
            f["sha256"] = hashlib.sha256(forged).hexdigest()
    data = rewrite(built.data, {"evidence.json": forged,
                                "manifest.json": json.dumps(manifest).encode()})
    assert pack.verify_pack(data).ok
    result = pack.verify_pack(data, built.manifest_sha256)
    assert not result.ok and "differs from the expected" in result.reason


def test_verify_rejects_odd_archives() -> None:
    assert pack.verify_pack(b"plain text").reason == "not a ZIP archive"
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("../evil.txt", b"x")
    assert "unexpected path" in pack.verify_pack(out.getvalue()).reason


def test_cli_verify(built: pack.Pack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
                    ) -> None:
    good = tmp_path / "good.zip"
    good.write_bytes(built.data)
    assert main(["verify", str(good), "--expect", built.manifest_sha256]) == 0
    assert capsys.readouterr().out.startswith("good.zip: valid: ")
    bad = tmp_path / "bad.zip"
    bad.write_bytes(rewrite(built.data, {"finding.json": b"{}"}))
    assert main(["verify", str(bad)]) == 1
    err = capsys.readouterr().err
    assert err == ("amplimon: bad.zip: tampered: finding.json: SHA-256 does not match the "
                   "manifest (file changed)\n")
    assert main(["verify", str(tmp_path / "missing.zip")]) == 2
    assert capsys.readouterr().err == f"amplimon: {tmp_path / 'missing.zip'}: no such file\n"
