"""Evidence packs: one ZIP per finding that an enforcement officer can check independently.

Contents: ``README.txt`` (the finding in words, how to verify), ``finding.json``,
``evidence.json``, ``data/<chart>.csv`` and ``.parquet`` (the data behind each chart),
``charts/<chart>.png`` and ``.svg``, ``triage/history.csv``, ``config/amplimon.yaml`` (when
known), ``versions.json`` (amplimon, detector and library versions; the runs that produced
the data) and ``manifest.json`` listing every other file with its SHA-256 and size.

:func:`verify_pack` recomputes every hash and refuses missing, extra, duplicate, unsafe or
changed entries.  The manifest cannot vouch for itself: the dashboard records the manifest's
SHA-256 when it hands a pack out (the ``exports`` table, shown on the finding's page) so that
a pack can also be matched against that record (``amplimon verify --expect SHA256``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import platform as py_platform
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd

from dashboard import chartdata, charts, explain
from dashboard.state import AuditEntry
from monitor.config import Config

__all__ = ["FORMAT", "Pack", "VerifyResult", "build_pack", "verify_pack"]

FORMAT = "amplimon-evidence-pack/1"
_CHARTS = {"exposure_over_time": charts.exposure_over_time,
           "exposure_per_period": charts.exposure_per_period,
           "sequential_statistic": charts.sequential_statistic,
           "effect_ci": charts.effect_ci}


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
    return (json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False,
                       default=_json_default) + "\n").encode("utf-8")


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
        run_info.append({"run_id": r["run_id"], "command": r["command"],
                         "started_at": r["started_at"], "finished_at": r["finished_at"],
                         "detectors": info.get("detectors"),
                         "config_sha256": info.get("config_sha256")})
    return {
        "amplimon": version("amplimon"),
        "detectors": [{"name": s.name, "display_name": s.display_name,
                       "version": str(getattr(s.factory, "version", "unknown")),
                       "kinds": list(s.kinds)} for s in REGISTRY.values()],
        "runs": run_info,
        "config_sha256": hashlib.sha256(config_text.encode("utf-8")).hexdigest()
        if config_text else None,
        "python": py_platform.python_version(),
        "libraries": {n: version(n) for n in ("duckdb", "pandas", "pyarrow", "matplotlib",
                                              "streamlit")},
    }


def build_pack(finding: Mapping[str, Any], amplification: pd.DataFrame,
               config: Config | None, *, config_text: str = "",
               runs: pd.DataFrame | None = None, history: Sequence[AuditEntry] = (),
               created_by: str = "", now: dt.datetime | None = None) -> Pack:
    now = now or dt.datetime.now(dt.UTC)
    fid = str(finding["finding_id"])
    ev = explain.evidence_of(finding)
    record = {k: _clean(v) for k, v in finding.items() if k != "evidence"}
    record["evidence"] = ev
    files: dict[str, bytes] = {}
    text = explain.sentence(finding, config)
    rows = "\n".join(f"  {k}: {v}" for k, v in explain.numbers(finding))
    files["README.txt"] = (
        f"amplimon evidence pack — finding {fid}\n\n{text}\n\n{rows}\n\n"
        f"Status shown in the dashboard: {finding.get('status_shown', finding.get('status'))}\n"
        f"Created {now.isoformat()} by {created_by or 'unknown'}.\n\n"
        "Check it with:  amplimon verify THIS.zip\n"
        "manifest.json lists the SHA-256 of every other file in this archive.\n"
    ).encode()
    files["finding.json"] = _dumps(record)
    files["evidence.json"] = _dumps(ev)
    for name, frame in chartdata.chart_frames(finding, amplification, config).items():
        files[f"data/{name}.csv"] = frame.to_csv(index=False).encode("utf-8")
        buf = io.BytesIO()
        frame.astype({c: "string" for c in frame.columns if frame[c].dtype == object}
                     ).to_parquet(buf, index=False)
        files[f"data/{name}.parquet"] = buf.getvalue()
        if name in _CHARTS:
            fig = _CHARTS[name](frame)
            files[f"charts/{name}.png"] = charts.png(fig, dpi=150)
            files[f"charts/{name}.svg"] = charts.svg(fig)
    files["triage/history.csv"] = pd.DataFrame(
        [{"at": e.at.isoformat(), "who": e.who, "action": e.action, "from": e.from_status,
          "to": e.to_status, "note": e.note} for e in history],
        columns=["at", "who", "action", "from", "to", "note"]).to_csv(index=False).encode()
    if config_text:
        files["config/amplimon.yaml"] = config_text.encode("utf-8")
    files["versions.json"] = _dumps(_versions(runs if runs is not None else pd.DataFrame(
        columns=["run_id", "command", "started_at", "finished_at", "info"]), config_text))
    manifest = {"format": FORMAT, "finding_id": fid, "created_at": now.isoformat(),
                "created_by": created_by,
                "files": [{"path": p, "sha256": hashlib.sha256(b).hexdigest(), "bytes": len(b)}
                          for p, b in sorted(files.items())]}
    files["manifest.json"] = _dumps(manifest)
    out = io.BytesIO()
    stamp = now.astimezone(dt.UTC).timetuple()[:6]
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path in ["manifest.json", *sorted(p for p in files if p != "manifest.json")]:
            info = zipfile.ZipInfo(f"amplimon-evidence-{fid}/{path}", date_time=stamp)
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, files[path])
    return Pack(out.getvalue(), hashlib.sha256(files["manifest.json"]).hexdigest(),
                tuple(sorted(files)), f"amplimon-evidence-{fid}.zip")


@dataclass(frozen=True, slots=True)
class VerifyResult:
    ok: bool
    reason: str
    finding_id: str = ""
    manifest_sha256: str = ""
    files: tuple[str, ...] = field(default=())


def _bad(reason: str) -> VerifyResult:
    return VerifyResult(False, reason)


def verify_pack(source: str | Path | bytes, expect_manifest_sha256: str | None = None
                ) -> VerifyResult:
    """Check a pack; ``reason`` is one line.  Never raises for a bad archive."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(source) if isinstance(source, bytes) else source)
    except (zipfile.BadZipFile, EOFError, ValueError):
        return _bad("not a ZIP archive")
    with zf:
        names = [i.filename for i in zf.infolist() if not i.is_dir()]
        if len(set(names)) != len(names):
            dup = next(n for n in names if names.count(n) > 1)
            return _bad(f"{dup}: duplicate entry")
        roots = {PurePosixPath(n).parts[0] for n in names if n}
        for n in names:
            parts = PurePosixPath(n).parts
            if n.startswith("/") or "\\" in n or ".." in parts or len(parts) < 2 or (
                    len(roots) != 1):
                return _bad(f"{n}: unexpected path in the archive")
        root = roots.pop() if roots else ""
        inner = {n[len(root) + 1:]: n for n in names}
        if "manifest.json" not in inner:
            return _bad("manifest.json is missing")
        try:
            raw_manifest = zf.read(inner["manifest.json"])
            manifest = json.loads(raw_manifest)
            listed = {f["path"]: f for f in manifest["files"]}
        except (ValueError, KeyError, TypeError, zipfile.BadZipFile):
            return _bad("manifest.json is not a valid manifest")
        if manifest.get("format") != FORMAT:
            return _bad(f"manifest.json: unknown format {manifest.get('format')!r}")
        digest = hashlib.sha256(raw_manifest).hexdigest()
        if expect_manifest_sha256 and digest != expect_manifest_sha256.strip().lower():
            return _bad(f"manifest.json: SHA-256 {digest[:16]}… differs from the expected "
                        f"{expect_manifest_sha256.strip()[:16]}…")
        extra = sorted(set(inner) - set(listed) - {"manifest.json"})
        if extra:
            return _bad(f"{extra[0]}: not listed in the manifest")
        for path, entry in sorted(listed.items()):
            if path not in inner:
                return _bad(f"{path}: listed in the manifest but missing")
            h = hashlib.sha256()
            try:
                with zf.open(inner[path]) as fh:
                    while chunk := fh.read(1 << 20):
                        h.update(chunk)
            except (zipfile.BadZipFile, OSError, EOFError):
                return _bad(f"{path}: corrupt entry in the archive")
            if h.hexdigest() != entry.get("sha256"):
                return _bad(f"{path}: SHA-256 does not match the manifest (file changed)")
        fid = str(manifest.get("finding_id", ""))
        if "finding.json" in listed:
            try:
                if json.loads(zf.read(inner["finding.json"])).get("finding_id") != fid:
                    return _bad("finding.json: finding id differs from the manifest")
            except ValueError:
                return _bad("finding.json is not valid JSON")
        return VerifyResult(True, f"valid: {len(listed)} files for finding {fid}, manifest "
                                  f"SHA-256 {digest}", fid, digest, tuple(sorted(listed)))
