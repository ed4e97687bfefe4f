"""The shared slate digest: coverage by disclosures (time, region, actor) and displacement."""

from __future__ import annotations

import numpy as np

from detectors._slates import slate_entries
from detectors.base import Tick
from monitor.core.contract import decode_obj
from tests.detectors.synth import T0, config

HOUR = 3_600_000
DISCLOSURES = [
    {
        "platform": "chirp",
        "intervention": "civic-1",
        "label": "promoted",
        "actors": ["acc-2"],
        "regions": ["DE-BY"],
        "start": "2026-05-04T00:00:00Z",
        "end": "2026-05-04T06:00:00Z",
    }
]


def _slate(
    ts: int,
    region: str,
    items: list[tuple[str, float, float | None, list[str]]],
    arm: str = "ranked",
):
    return decode_obj(
        "ranking",
        {
            "event_id": f"r{ts}{region}{arm}",
            "platform": "chirp",
            "ts": ts,
            "user": "u1",
            "region": region,
            "surface": "feed",
            "arm": arm,
            "request": f"q{ts}{region}",
            "items": [
                {
                    "item": f"i{k}",
                    "actor": a,
                    "position": k + 1,
                    "score": s,
                    "organic_score": o,
                    "interventions": iv,
                }
                for k, (a, s, o, iv) in enumerate(items)
            ],
        },
    )


def test_coverage_follows_disclosure_time_region_and_actor() -> None:
    cfg = config(disclosures=DISCLOSURES)
    rankings = [
        _slate(
            T0 + HOUR,
            "DE-BY",
            [
                ("acc-2", 2.0, 1.0, ["civic-1"]),  # covered
                ("acc-1", 2.0, 1.0, ["civic-1"]),  # other actor
                ("acc-2", 1.0, 1.0, []),
            ],
        ),  # no intervention
        _slate(T0 + 7 * HOUR, "DE-BY", [("acc-2", 2.0, 1.0, ["civic-1"])]),  # after the end
        _slate(T0 + HOUR, "DE-BE", [("acc-2", 2.0, 1.0, ["civic-1"])]),  # other region
        _slate(T0 + HOUR, "DE-BY", [("acc-2", 2.0, None, ["civic-1"])], arm="holdout"),
    ]
    d = slate_entries(Tick(T0, T0 + 8 * HOUR, (), rankings), cfg)
    assert d.n == 5  # holdout slates are left out
    assert d.covered.tolist() == [True, False, False, False, False]
    assert d.logged.tolist() == [True, True, False, True, True]
    assert slate_entries(Tick(T0, T0 + 8 * HOUR, (), rankings), cfg) is not d  # new tick
    tick = Tick(T0, T0 + 8 * HOUR, (), rankings)
    assert slate_entries(tick, cfg) is slate_entries(tick, cfg)  # cached per tick


def test_displacement_is_organic_rank_minus_slot_rank() -> None:
    cfg = config()
    # slot order a, b, c; organic order c, a, b; b has no organic score in the second slate
    r1 = _slate(
        T0, "DE-BY", [("acc-1", 3.0, 2.0, []), ("acc-3", 2.0, 1.0, []), ("acc-4", 1.0, 3.0, [])]
    )
    r2 = _slate(
        T0 + 1,
        "DE-BY",
        [("acc-1", 3.0, 1.0, []), ("acc-3", 2.0, None, []), ("acc-4", 1.0, 2.0, [])],
    )
    d = slate_entries(Tick(T0, T0 + HOUR, (), [r1, r2]), cfg)
    disp = d.displacement(np.arange(d.n))
    assert disp[:3].tolist() == [1.0 - 0.0, 2.0 - 1.0, 0.0 - 2.0]
    assert np.isnan(disp[4]) and disp[3] == 1.0 - 0.0 and disp[5] == 0.0 - 1.0
