"""Evidence packs: one ZIP per finding that an enforcement officer can check independently.

Contents: ``README.txt`` (the finding in words, how to verify), ``finding.json``,
``evidence.json``, ``data/<chart>.csv`` and ``.parquet`` (the data behind each chart),
``charts/<chart>.png`` and ``.svg``, ``triage/history.csv``, ``config/amplimon.yaml`` (when
known), ``versions.json`` (amplimon, detector and library versions; the runs that produced
the data, with the SHA-256 of their inputs and configuration), ``manifest.json`` listing every
other file with its SHA-256 and size, when and by whom the pack was made and the signer's key
fingerprint, and ``signature.json``: the deployment's Ed25519 signature of the exact bytes of
``manifest.json`` (:mod:`monitor.core.signing`).

:func:`monitor.app.packverify.verify_pack` (``amplimon verify``) checks it.  The dashboard also
records the manifest's SHA-256 when it hands a pack out (the ``exports`` table), so that a
pack can be matched against that record too (``amplimon verify --expect SHA256``).

CSV files are written for spreadsheets: a cell that starts with ``=``, ``+``, ``-``, ``@``, a
tab or a carriage return is prefixed with ``'`` (OWASP "CSV injection"), so that platform text
or an analyst's note is never run as a formula; the Parquet and JSON files keep the values
as they are.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import json
import platform as py_platform
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import pandas as pd

import dashboard.chartdata as chartdata
import dashboard.charts as charts
import dashboard.explain as explain
from dashboard.csvsafe import to_csv
from dashboard.state import AuditEntry
from monitor.app.packverify import FORMAT, VerifyResult, verify_pack
from monitor.core.config import Config
from monitor.core.signing import ALGORITHM, SigningKey

__all__ = ["FORMAT", "Pack", "VerifyResult", "build_pack", "verify_pack"]

_CHARTS = {
    "exposure_over_time": charts.exposure_over_time,
    "exposure_per_period": charts.exposure_per_period,
    "sequential_statistic": charts.sequential_statistic,
    "effect_ci": charts.effect_ci,
}


@dataclass(frozen=True, slots=True)
class Pack:
    data: bytes
    manifest_sha256: str
    files: tuple[str, ...]
    file_name: str


def _json_default(value: Any) -> Any:
    if isinstance(value, pd.Timestamp | dt.datetime):
        return None if pd.isna(value) else pd.Timestamp(value).isoformat()
    item = getattr(value, "item", None)
    if callable(item):
        return item()
    return str(value)


def _dumps(value: Any) -> bytes:
    return (
        json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=_json_default)
        + "\n"
    ).encode("utf-8")


def _clean(value: Any) -> Any:
    if isinstance(value, float) and value != value:  # NaN → null
        return None
    if value is pd.NaT:
        return None
    return value


def _versions(runs: pd.DataFrame, config_text: str) -> dict[str, Any]:
    from detectors import REGISTRY

    def version(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "unknown"

    run_info = []
    for _, r in runs.iterrows():
        try:
            info = json.loads(r["info"]) if isinstance(r["info"], str) else {}
        except ValueError:
            info = {}
        run_info.append(
            {
                "run_id": r["run_id"],
                "command": r["command"],
                "started_at": r["started_at"],
                "finished_at": r["finished_at"],
                "detectors": info.get("detectors"),
                "config_sha256": info.get("config_sha256"),
                "inputs": info.get("inputs"),
            }
        )
    return {
        "amplimon": version("amplimon"),
        "detectors": [
            {
                "name": s.name,
                "display_name": s.display_name,
                "version": str(getattr(s.factory, "version", "unknown")),
                "kinds": list(s.kinds),
            }
            for s in REGISTRY.values()
        ],
        "runs": run_info,
        "config_sha256": hashlib.sha256(config_text.encode("utf-8")).hexdigest()
        if config_text
        else None,
        "python": py_platform.python_version(),
        "libraries": {
            n: version(n)
            for n in ("duckdb", "pandas", "pyarrow", "matplotlib", "streamlit", "cryptography")
        },
    }


def readme(
    finding: Mapping[str, Any],
    config: Config | None,
    key: SigningKey,
    created_by: str,
    now: dt.datetime,
) -> str:
    """The pack's README: the finding in words and how an officer checks the pack."""
    fid = str(finding["finding_id"])
    text = explain.sentence(finding, config)
    rows = "\n".join(f"  {k}: {v}" for k, v in explain.numbers(finding))
    return (
        f"amplimon evidence pack — finding {fid}\n\n{text}\n\n{rows}\n\n"
        f"Status shown in the dashboard: {finding.get('status_shown', finding.get('status'))}\n"
        f"Created {now.isoformat()} by {created_by or 'unknown'}; signed by {key.signer}.\n\n"
        "HOW TO CHECK THIS PACK\n"
        "1. Obtain the commission's public signing key from the commission itself (it runs\n"
        "   `amplimon keys export` and publishes the key and its fingerprint). Do not take a\n"
        "   key or fingerprint from this archive on trust: whoever forged a pack would put\n"
        "   theirs here.\n"
        "2. Run:\n"
        "     amplimon verify THIS.zip --pubkey COMMISSION-PUBLIC-KEY.pem\n"
        "   It checks the Ed25519 signature over manifest.json and the SHA-256 of every file,\n"
        "   and prints who signed, when, and the signing key's fingerprint. Compare that\n"
        "   fingerprint with the one the commission publishes.\n"
        "   Exit status 0 = valid and signed by that key; 1 = tampered, unsigned or signed by\n"
        "   another key; 2 = not an evidence pack (or over the size bounds).\n"
        "   On a system where the commission's keys are configured (its own deployment, or\n"
        "   AMPLIMON_TRUSTED_KEYS), `amplimon verify THIS.zip` is enough.\n"
        "manifest.json lists the SHA-256 of every other file; signature.json signs it.\n"
    )


def build_pack(
    finding: Mapping[str, Any],
    amplification: pd.DataFrame,
    config: Config | None,
    *,
    key: SigningKey,
    config_text: str = "",
    runs: pd.DataFrame | None = None,
    history: Sequence[AuditEntry] = (),
    created_by: str = "",
    now: dt.datetime | None = None,
) -> Pack:
    """Build and sign the pack of one finding (see module docstring)."""
    now = now or dt.datetime.now(dt.UTC)
    fid = str(finding["finding_id"])
    decoded = explain.typed_evidence(finding)
    ev = decoded.raw  # verbatim, as stored
    record = {k: _clean(v) for k, v in finding.items() if k != "evidence"}
    record["evidence"] = ev
    record["evidence_schema"] = {
        "kind": type(decoded.evidence).__struct_config__.tag if decoded.evidence else None,
        "version": decoded.evidence.version if decoded.evidence else None,
        "legacy": decoded.legacy,
        "error": decoded.error,
    }
    files: dict[str, bytes] = {}
    files["README.txt"] = readme(finding, config, key, created_by, now).encode("utf-8")
    files["finding.json"] = _dumps(record)
    files["evidence.json"] = _dumps(ev)
    for name, frame in chartdata.chart_frames(finding, amplification, config).items():
        files[f"data/{name}.csv"] = to_csv(frame)
        buf = io.BytesIO()
        frame.astype({c: "string" for c in frame.columns if frame[c].dtype == object}).to_parquet(
            buf, index=False
        )
        files[f"data/{name}.parquet"] = buf.getvalue()
        if name in _CHARTS:
            fig = _CHARTS[name](frame)
            files[f"charts/{name}.png"] = charts.png(fig, dpi=150)
            files[f"charts/{name}.svg"] = charts.svg(fig)
    files["triage/history.csv"] = to_csv(
        pd.DataFrame(
            [
                {
                    "at": e.at.isoformat(),
                    "who": e.who,
                    "action": e.action,
                    "from": e.from_status,
                    "to": e.to_status,
                    "note": e.note,
                }
                for e in history
            ],
            columns=["at", "who", "action", "from", "to", "note"],
        )
    )
    if config_text:
        files["config/amplimon.yaml"] = config_text.encode("utf-8")
    files["versions.json"] = _dumps(
        _versions(
            runs
            if runs is not None
            else pd.DataFrame(columns=["run_id", "command", "started_at", "finished_at", "info"]),
            config_text,
        )
    )
    manifest = {
        "format": FORMAT,
        "finding_id": fid,
        "created_at": now.isoformat(),
        "created_by": created_by,
        "signer": {
            "name": key.signer,
            "key_fingerprint": key.public.fingerprint,
            "algorithm": ALGORITHM,
        },
        "files": [
            {"path": p, "sha256": hashlib.sha256(b).hexdigest(), "bytes": len(b)}
            for p, b in sorted(files.items())
        ],
    }
    files["manifest.json"] = _dumps(manifest)
    files["signature.json"] = _dumps(
        {
            "algorithm": ALGORITHM,
            "signed": "manifest.json",
            "public_key": base64.b64encode(key.public.raw).decode("ascii"),
            "key_fingerprint": key.public.fingerprint,
            "signature": base64.b64encode(key.sign(files["manifest.json"])).decode("ascii"),
        }
    )
    out = io.BytesIO()
    stamp = now.astimezone(dt.UTC).timetuple()[:6]
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        first = ["manifest.json", "signature.json"]
        for path in [*first, *sorted(p for p in files if p not in first)]:
            info = zipfile.ZipInfo(f"amplimon-evidence-{fid}/{path}", date_time=stamp)
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, files[path])
    return Pack(
        out.getvalue(),
        hashlib.sha256(files["manifest.json"]).hexdigest(),
        tuple(sorted(files)),
        f"amplimon-evidence-{fid}.zip",
    )
