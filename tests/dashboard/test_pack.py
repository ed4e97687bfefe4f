"""Evidence packs: contents, manifest, signature, verification, and ``amplimon verify``."""

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
from monitor.core.signing import SigningKey
from tests.dashboard import factories as F

KEY = SigningKey.generate("Electoral Commission (test)")
TRUST = [KEY.public]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> pack.Pack:
    tmp = tmp_path_factory.mktemp("pack")
    snap = open_source(
        F.write_db(tmp / "o.duckdb", F.default_findings(), F.default_measurements())
    ).load()
    state = StateStore(tmp / "s.sqlite")
    fid = F.finding().finding_id
    triage.apply(
        state,
        User("ana", "analyst"),
        fid,
        "acknowledge",
        status="new",
        base_status="new",
        note="checked",
    )
    row = triage.with_triage(snap.findings, state.latest_statuses())
    row = row[row["finding_id"] == fid].iloc[0].to_dict()
    return pack.build_pack(
        row,
        snap.amplification,
        None,
        key=KEY,
        config_text=F.CONFIG_YAML,
        runs=snap.runs,
        history=state.history(fid),
        created_by="ana",
    )


def rewrite(
    data: bytes, change: dict[str, bytes | None], add: dict[str, bytes] | None = None
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
    assert {
        "README.txt",
        "finding.json",
        "evidence.json",
        "manifest.json",
        "versions.json",
        "config/amplimon.yaml",
        "triage/history.csv",
    } <= files
    for chart in ("exposure_over_time", "sequential_statistic", "effect_ci"):
        assert {
            f"data/{chart}.csv",
            f"data/{chart}.parquet",
            f"charts/{chart}.png",
            f"charts/{chart}.svg",
        } <= files
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
    assert listed == files - {"manifest.json", "signature.json"}
    assert json.loads(manifest)["signer"] == {
        "name": "Electoral Commission (test)",
        "key_fingerprint": KEY.public.fingerprint,
        "algorithm": "Ed25519",
    }
    readme = zf.read(root + "README.txt").decode()
    assert "amplimon verify THIS.zip --pubkey COMMISSION-PUBLIC-KEY.pem" in readme


def test_verify_valid(built: pack.Pack, tmp_path: Path) -> None:
    result = pack.verify_pack(built.data, trusted=TRUST)
    assert result.ok and result.finding_id == F.finding().finding_id
    assert result.signer == "Electoral Commission (test)"
    assert result.key_fingerprint == KEY.public.fingerprint and result.signed_at
    assert pack.verify_pack(built.data, built.manifest_sha256, trusted=TRUST).ok
    path = tmp_path / built.file_name
    path.write_bytes(built.data)
    assert pack.verify_pack(path, trusted=[KEY.public.fingerprint]).ok


def test_a_genuine_pack_is_not_valid_without_a_trusted_key(built: pack.Pack) -> None:
    alone = pack.verify_pack(built.data)
    assert not alone.ok and alone.status == "tampered"
    assert f"signed by an untrusted key {KEY.public.fingerprint}" in alone.reason
    other = pack.verify_pack(built.data, trusted=[SigningKey.generate().public])
    assert not other.ok and "untrusted key" in other.reason


def forge(data: bytes, key: SigningKey | None) -> bytes:
    """What a platform's lawyer could do: rewrite finding.json, recompute the manifest's
    SHA-256 values and (with ``key``) sign the new manifest with a key of their own."""
    import base64

    zf = zipfile.ZipFile(io.BytesIO(data))
    root = zf.infolist()[0].filename.split("/", 1)[0]
    finding = json.loads(zf.read(f"{root}/finding.json"))
    finding.update(effect=0.99, severity="low")
    forged = json.dumps(finding).encode()
    manifest = json.loads(zf.read(f"{root}/manifest.json"))
    for f in manifest["files"]:
        if f["path"] == "finding.json":
            f["sha256"], f["bytes"] = hashlib.sha256(forged).hexdigest(), len(forged)
    if key is not None:
        manifest["signer"]["key_fingerprint"] = key.public.fingerprint
    raw = json.dumps(manifest).encode()
    change: dict[str, bytes | None] = {"finding.json": forged, "manifest.json": raw}
    if key is None:
        change["signature.json"] = None
    else:
        change["signature.json"] = json.dumps(
            {
                "algorithm": "Ed25519",
                "public_key": base64.b64encode(key.public.raw).decode(),
                "key_fingerprint": key.public.fingerprint,
                "signature": base64.b64encode(key.sign(raw)).decode(),
            }
        ).encode()
    return rewrite(data, change)


@pytest.mark.parametrize(
    ("forger_key", "reason"),
    [
        (None, "not signed: anyone could have written this pack"),
        (SigningKey.generate("Electoral Commission (test)"), "signed by an untrusted key"),
    ],
)
def test_a_forged_pack_fails_verify_with_no_extra_argument(
    built: pack.Pack,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    forger_key: SigningKey | None,
    reason: str,
) -> None:
    """The deployment's trusted keys are configured; the officer types no option."""
    trusted = tmp_path / "commission.pem"
    trusted.write_text(KEY.public.pem())
    monkeypatch.setenv("AMPLIMON_TRUSTED_KEYS", str(trusted))
    genuine, forged = tmp_path / "genuine.zip", tmp_path / "forged.zip"
    genuine.write_bytes(built.data)
    forged.write_bytes(forge(built.data, forger_key))
    assert main(["verify", str(genuine)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("genuine.zip: valid: ") and KEY.public.fingerprint in out
    assert "signed by Electoral Commission (test)" in out
    assert main(["verify", str(forged)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("amplimon: forged.zip: tampered: ") and reason in err
    assert err.count("\n") == 1


def test_a_tampered_signature_or_manifest_fails(built: pack.Pack) -> None:
    zf = zipfile.ZipFile(io.BytesIO(built.data))
    root = zf.infolist()[0].filename.split("/", 1)[0]
    manifest = zf.read(f"{root}/manifest.json")
    bumped = manifest.replace(b'"created_by": "ana"', b'"created_by": "eve"')
    assert bumped != manifest
    result = pack.verify_pack(rewrite(built.data, {"manifest.json": bumped}), trusted=TRUST)
    assert result.status == "tampered" and "signature does not match" in result.reason
    sig = json.loads(zf.read(f"{root}/signature.json"))
    sig["signature"] = sig["signature"][:-4] + (
        "AAA=" if sig["signature"][-4:] != "AAA=" else "BBB="
    )
    result = pack.verify_pack(
        rewrite(built.data, {"signature.json": json.dumps(sig).encode()}), trusted=TRUST
    )
    assert result.status == "tampered" and "signature" in result.reason


@pytest.mark.parametrize(
    ("change", "add", "reason"),
    [
        ({"evidence.json": b"{}"}, None, "evidence.json: SHA-256 does not match"),
        (
            {"charts/effect_ci.png": None},
            None,
            "charts/effect_ci.png: listed in the manifest but missing",
        ),
        ({}, {"extra.txt": b"hi"}, "extra.txt: not listed in the manifest"),
        ({"manifest.json": None}, None, "manifest.json is missing"),
        ({"manifest.json": b"not json"}, None, "manifest.json is not a valid manifest"),
        ({"manifest.json": b'{"format": "x", "files": []}'}, None, "unknown format"),
    ],
)
def test_verify_detects_tampering(
    built: pack.Pack, change: dict, add: dict | None, reason: str
) -> None:
    result = pack.verify_pack(rewrite(built.data, change, add), trusted=TRUST)
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
    data = rewrite(
        built.data, {"evidence.json": forged, "manifest.json": json.dumps(manifest).encode()}
    )
    result = pack.verify_pack(data, built.manifest_sha256, trusted=TRUST)
    assert not result.ok and "differs from the expected" in result.reason


def test_verify_rejects_odd_archives() -> None:
    assert pack.verify_pack(b"plain text").reason == "not a ZIP archive"
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("../evil.txt", b"x")
    assert "unexpected path" in pack.verify_pack(out.getvalue()).reason


def test_cli_verify(built: pack.Pack, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.zip"
    good.write_bytes(built.data)
    pub = tmp_path / "commission.pem"
    pub.write_text(KEY.public.pem())
    assert main(["verify", str(good), "--pubkey", str(pub), "--expect", built.manifest_sha256]) == 0
    assert capsys.readouterr().out.startswith("good.zip: valid: ")
    assert main(["verify", str(good), "--pubkey", KEY.public.fingerprint]) == 0
    capsys.readouterr()
    assert main(["verify", str(good)]) == 1  # no key trusted here: not reported as valid
    assert "untrusted key" in capsys.readouterr().err
    bad = tmp_path / "bad.zip"
    bad.write_bytes(rewrite(built.data, {"finding.json": b"{}"}))
    assert main(["verify", str(bad), "--pubkey", str(pub)]) == 1
    err = capsys.readouterr().err
    assert err == (
        "amplimon: bad.zip: tampered: finding.json: SHA-256 does not match the "
        "manifest (file changed)\n"
    )
    assert main(["verify", str(tmp_path / "missing.zip")]) == 2
    assert capsys.readouterr().err == f"amplimon: {tmp_path / 'missing.zip'}: no such file\n"
    text = tmp_path / "notes.zip"
    text.write_text("not a zip")
    assert main(["verify", str(text), "--pubkey", str(pub)]) == 2
    assert capsys.readouterr().err == (
        "amplimon: notes.zip: not a valid evidence pack: not a ZIP archive\n"
    )
    assert main(["verify", str(good), "--pubkey", str(text)]) == 2
    assert capsys.readouterr().err == f"amplimon: {text}: no PEM public key in it\n"


def zip_bomb(entries: int = 1, size: int = 4 << 30) -> bytes:
    """A pack-shaped archive whose one entry inflates to ``size`` bytes of zeros, written
    without ever holding them (DEFLATE streamed into the ZIP: ~1,000:1 for zeros)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(
            "amplimon-evidence-x/manifest.json", json.dumps({"format": pack.FORMAT, "files": []})
        )
        for i in range(entries):
            with zf.open(f"amplimon-evidence-x/data/{i}.csv", "w", force_zip64=True) as fh:
                chunk = bytes(16 << 20)
                for _ in range(size // len(chunk)):
                    fh.write(chunk)
    return out.getvalue()


def test_verify_refuses_a_zip_bomb_quickly_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bomb = tmp_path / "bomb.zip"
    bomb.write_bytes(zip_bomb(size=256 << 20))  # 256 MiB of zeros, ~250 KB on disk
    assert bomb.stat().st_size < 1 << 20
    result = pack.verify_pack(bomb)
    assert result.status == "invalid"
    assert "uncompressed, over the 64 MiB" in result.reason
    assert main(["verify", str(bomb)]) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith("amplimon: bomb.zip: not a valid evidence pack: ") and err.count("\n") == 1
    )


def test_verify_bounds_ratio_total_entries_and_lying_headers() -> None:
    from monitor.app.packverify import Limits

    small = zip_bomb(size=32 << 20)  # 32 MiB of zeros: under the per-file bound
    ratio = pack.verify_pack(small)
    assert ratio.status == "invalid" and "compression ratio" in ratio.reason
    total = pack.verify_pack(small, limits=Limits(total_bytes=8 << 20, ratio=1e9))
    assert total.status == "invalid" and "in all" in total.reason
    many = io.BytesIO()
    with zipfile.ZipFile(many, "w") as zf:
        for i in range(30):
            zf.writestr(f"p/{i}.txt", b"x")
    assert "too many entries" in pack.verify_pack(many.getvalue(), limits=Limits(entries=20)).reason
    # a header that understates its entry's size: reading stops at the declared size
    liar = io.BytesIO()
    with zipfile.ZipFile(liar, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(
            "p/manifest.json",
            json.dumps(
                {
                    "format": pack.FORMAT,
                    "files": [{"path": "a.csv", "sha256": "0" * 64, "bytes": 10}],
                }
            ),
        )
        zf.writestr("p/a.csv", b"a" * 100_000)
    raw = bytearray(liar.getvalue())
    cd = raw.rfind(b"PK\x01\x02")  # central directory entry of a.csv: size at offset 24
    raw[cd + 24 : cd + 28] = (10).to_bytes(4, "little")
    lh = raw.find(b"PK\x03\x04", 10)  # its local header: size at offset 22
    raw[lh + 22 : lh + 26] = (10).to_bytes(4, "little")
    result = pack.verify_pack(bytes(raw))
    assert not result.ok and result.status in ("invalid", "tampered")
