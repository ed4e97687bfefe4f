"""Test factories: contract records and configurations, built with explicit overrides."""

from __future__ import annotations

import itertools
from typing import Any

from monitor.core.config import Config, parse_config

T0 = 1_777_593_600_000  # 2026-05-01T00:00:00Z in epoch ms
HOUR = 3_600_000
MIN = 60_000
_ids = itertools.count(1)


def exposure(**kw: Any) -> dict[str, Any]:
    rec = {
        "event_id": f"e{next(_ids)}",
        "platform": "chirp",
        "ts": T0,
        "user": "u1",
        "region": "DE-BY",
        "surface": "feed",
        "arm": "ranked",
        "item": "i1",
        "actor": "acc-1",
        "position": 1,
    }
    rec.update(kw)
    return rec


def ranking(items: list[dict[str, Any]] | None = None, **kw: Any) -> dict[str, Any]:
    rec = {
        "event_id": f"r{next(_ids)}",
        "platform": "chirp",
        "ts": T0,
        "user": "u1",
        "region": "DE-BY",
        "surface": "feed",
        "arm": "ranked",
        "request": f"q{next(_ids)}",
        "items": items if items is not None else [slot()],
    }
    rec.update(kw)
    return rec


def slot(**kw: Any) -> dict[str, Any]:
    rec = {"item": "i1", "actor": "acc-1", "position": 1, "score": 1.0, "organic_score": 1.0}
    rec.update(kw)
    return rec


def config_dict(**kw: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
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
            },
            {
                "actor": "acc-2",
                "name": "John Roe",
                "kind": "candidate",
                "group": "party-a",
                "regions": ["DE"],
            },
            {"actor": "acc-3", "name": "Outlet", "kind": "media", "regions": ["DE-BY"]},
        ],
        "disclosures": [
            {
                "platform": "chirp",
                "intervention": "civic-1",
                "label": "promoted",
                "actors": ["acc-2"],
                "groups": [],
                "regions": ["DE"],
                "start": "2026-05-04T00:00:00Z",
                "end": "2026-05-07T00:00:00Z",
            },
        ],
        "detection": {"alpha": 0.05},
    }
    cfg.update(kw)
    return cfg


def config(**kw: Any) -> Config:
    return parse_config(config_dict(**kw), source="test.yaml")


FAR_FUTURE_MS = 4_000_000_000_000


def now_far() -> int:
    return FAR_FUTURE_MS
