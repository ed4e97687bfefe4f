"""The commission's registries as tables, and validation of an uploaded configuration.

An upload goes through :func:`monitor.core.config.load_config` — the very function the CLI uses —
on a temporary copy named like the upload, so an admin sees the same one-line messages
(``amplimon.yaml: windows[0]: end is before start``) as ``amplimon replay`` would print.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from monitor.core.config import Config, ConfigError, load_config

__all__ = [
    "Upload",
    "actors_frame",
    "disclosures_frame",
    "groups_frame",
    "validate_upload",
    "windows_frame",
]

_MAX_UPLOAD = 5 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Upload:
    config: Config
    text: str
    sha256: str
    filename: str


def validate_upload(filename: str, data: bytes) -> Upload:
    """Validate an uploaded YAML; raises :class:`ConfigError` with the CLI's one-line message."""
    name = Path(filename or "upload.yaml").name or "upload.yaml"
    if not name.endswith((".yaml", ".yml")):
        raise ConfigError(f"{name}: expected a .yaml or .yml file")
    if len(data) > _MAX_UPLOAD:
        raise ConfigError(f"{name}: too large ({len(data):,} bytes; at most {_MAX_UPLOAD:,})")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{name}: not UTF-8 text") from None
    with tempfile.TemporaryDirectory(prefix="amplimon-upload-") as tmp:
        path = Path(tmp) / name
        path.write_text(text, encoding="utf-8")
        config = load_config(path)
    return Upload(config, text, hashlib.sha256(data).hexdigest(), name)


def actors_frame(config: Config | None) -> pd.DataFrame:
    cols = ["actor", "name", "kind", "group", "regions"]
    if config is None:
        return pd.DataFrame(columns=cols)
    return pd.DataFrame(
        [
            {
                "actor": a.actor,
                "name": a.name,
                "kind": a.kind,
                "group": a.group,
                "regions": ", ".join(a.regions) or "all",
            }
            for a in config.actors
        ],
        columns=cols,
    )


def groups_frame(config: Config | None) -> pd.DataFrame:
    cols = ["group", "members", "actors"]
    if config is None:
        return pd.DataFrame(columns=cols)
    return pd.DataFrame(
        [
            {"group": g, "members": len(m), "actors": ", ".join(m)}
            for g, m in sorted(config.groups.items())
        ],
        columns=cols,
    )


def disclosures_frame(config: Config | None) -> pd.DataFrame:
    cols = [
        "platform",
        "intervention",
        "label",
        "actors",
        "groups",
        "regions",
        "start",
        "end",
        "description",
    ]
    if config is None:
        return pd.DataFrame(columns=cols)
    return pd.DataFrame(
        [
            {
                "platform": d.platform,
                "intervention": d.intervention,
                "label": d.label or "(none)",
                "actors": ", ".join(d.actors) or ("all" if not d.groups else ""),
                "groups": ", ".join(d.groups),
                "regions": ", ".join(d.regions) or "all",
                "start": d.start.isoformat() if d.start else "open",
                "end": d.end.isoformat() if d.end else "open",
                "description": d.description,
            }
            for d in config.disclosures
        ],
        columns=cols,
    )


def windows_frame(config: Config | None) -> pd.DataFrame:
    cols = ["window", "name", "jurisdiction", "start", "end", "baseline start", "baseline end"]
    if config is None:
        return pd.DataFrame(columns=cols)
    return pd.DataFrame(
        [
            {
                "window": w.id,
                "name": w.name,
                "jurisdiction": w.jurisdiction,
                "start": w.start.isoformat(),
                "end": w.end.isoformat(),
                "baseline start": w.baseline_period.start.isoformat(),
                "baseline end": w.baseline_period.end.isoformat(),
            }
            for w in config.windows
        ],
        columns=cols,
    )
