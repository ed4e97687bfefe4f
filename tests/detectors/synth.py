"""Tiny, fast synthetic platforms for detector unit tests (seeded; contract dicts).

``platform_stream`` models what matters to the detectors and nothing else: users in two arms,
actors posting items of random quality, the holdout arm exposed to items in proportion to
their reach, the ranked arm in proportion to reach × quality × boost, and one ranking slate per
exposure batch with ``score``/``organic_score``.  Knobs plant the cases under test.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from monitor.core.config import Config, parse_config
from monitor.engine.run import Engine
from streams.memory import ListOutput
from tests.factories import HOUR, now_far

DAY = 24 * HOUR
T0 = 1_777_852_800_000  # 2026-05-04T00:00:00Z: window start; the baseline is the day before
ACTORS = [
    ("acc-1", "party-a"),
    ("acc-2", "party-a"),
    ("acc-3", "party-a"),
    ("acc-4", "party-b"),
    ("acc-5", "party-b"),
    ("acc-6", "party-b"),
]


def config(
    days: int = 1,
    disclosures: list[dict[str, Any]] | None = None,
    detection: dict[str, Any] | None = None,
) -> Config:
    start = T0
    end = T0 + days * DAY
    iso = lambda ms: np.datetime_as_string(np.datetime64(ms, "ms"), unit="s") + "Z"  # noqa: E731
    return parse_config(
        {
            "windows": [
                {
                    "id": "w",
                    "jurisdiction": "DE",
                    "start": iso(start),
                    "end": iso(end),
                    "baseline": {"start": iso(start - days * DAY), "end": iso(start)},
                }
            ],
            "actors": [
                {"actor": a, "kind": "candidate", "group": g, "regions": ["DE"]} for a, g in ACTORS
            ],
            "disclosures": disclosures or [],
            "detection": {"alpha": 0.05, **(detection or {})},
        },
        source="synth.yaml",
    )


@dataclass
class Plan:
    """What to plant.  Multipliers apply in the window period, ranked arm only (boosts) or
    both arms (``posting``)."""

    hidden: dict[str, float] = field(default_factory=dict)  # score and exposure ×
    organic_logged: dict[str, float] = field(default_factory=dict)  # organic_score includes it
    disclosed: dict[str, float] = field(default_factory=dict)  # logged id "civic-1", label
    posting: dict[str, float] = field(default_factory=dict)  # items posted ×
    platform_shift: float = 0.0  # everyone's score + this
    platform_scale: float = 1.0  # a new model: everyone's score × this (selection too)
    adjustment_sd: float = 0.0  # per-item legitimate adjustment: in score, not organic


def _scores(plan: Plan, actor: str, q: float, in_window: bool) -> tuple[float, float, list[str]]:
    """(score, organic_score, interventions) of an item of quality ``q``."""
    if not in_window:
        return q, q, []
    organic = plan.platform_scale * q + math.log(plan.organic_logged.get(actor, 1.0))
    disclosed = math.log(plan.disclosed.get(actor, 1.0))
    score = organic + math.log(plan.hidden.get(actor, 1.0)) + disclosed + plan.platform_shift
    return score, organic, (["civic-1"] if disclosed else [])


def platform_stream(
    seed: int,
    plan: Plan | None = None,
    days: int = 1,
    n_users: int = 600,
    holdout_share: float = 0.25,
    items_per_day: int = 24,
    quality_sd: float = 0.3,
    reach: float = 6.0,
    with_rankings: bool = True,
    affinity_sd: float = 0.2,
    regions: tuple[str, ...] = ("DE-BY",),
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Exposures and rankings over the baseline and the window (contract dicts, ts = ms).

    Each exposure comes with a two-slot ranking slate (the exposed item and one other).  Items
    are shown for a few hours after posting, so late baseline items live into the window; the
    plan's score changes apply to entries logged in the window."""
    plan = plan or Plan()
    rng = np.random.default_rng(seed)
    holdout = rng.random(n_users) < holdout_share
    exposures: list[dict[str, Any]] = []
    rankings: list[dict[str, Any]] = []
    actors = [a for a, _ in ACTORS] + [f"bg-{k}" for k in range(6)]
    quality = {a: rng.normal(0, 0.3) for a in actors}
    n = 0
    for period_start in (T0 - days * DAY, T0):
        in_window = period_start == T0
        for a in actors:
            k = items_per_day * days
            if in_window:
                k = int(round(k * plan.posting.get(a, 1.0)))
            for j in range(k):
                n += 1
                item = f"it-{n}"
                t_post = period_start + int((j + rng.random()) * days * DAY / k)
                q = quality[a] + rng.normal(0, quality_sd)
                adjust = rng.normal(0, plan.adjustment_sd) if plan.adjustment_sd else 0.0
                score, _, _ = _scores(plan, a, q, in_window)
                shift = plan.platform_shift if in_window else 0.0
                n_hold = rng.poisson(reach * holdout_share)
                n_rank = rng.poisson(reach * (1 - holdout_share) * math.exp(score - shift))
                for arm, count in (("holdout", n_hold), ("ranked", n_rank)):
                    pool = np.flatnonzero(holdout == (arm == "holdout"))
                    for _ in range(count):
                        u = int(rng.choice(pool))
                        ts = min(t_post + int(rng.exponential(2 * HOUR)), T0 + days * DAY - 1)
                        # scores as logged at exposure time (items live across the boundary),
                        # with per-user affinity noise
                        score, organic, ivs = _scores(
                            plan, a, q + rng.normal(0, affinity_sd), ts >= T0
                        )
                        n += 1
                        req = f"q{n}"
                        exp = {
                            "event_id": f"x{n}",
                            "platform": "chirp",
                            "ts": ts,
                            "user": f"u{u}",
                            "region": regions[u % len(regions)],
                            "surface": "feed",
                            "arm": arm,
                            "request": req,
                            "item": item,
                            "actor": a,
                            "position": 1,
                        }
                        if ivs and arm == "ranked":
                            exp["label"] = "promoted"
                        exposures.append(exp)
                        if not with_rankings:
                            continue
                        other = str(rng.choice(actors))
                        o_score, o_org, o_ivs = _scores(
                            plan, other, quality[other] + rng.normal(0, quality_sd), ts >= T0
                        )
                        ranked = arm == "ranked"
                        slate = [
                            {
                                "item": item,
                                "actor": a,
                                "position": 1,
                                "score": round(score + adjust if ranked else -1.0, 4),
                                "organic_score": round(organic, 4) if ranked else None,
                                "interventions": ivs if ranked else [],
                            },
                            {
                                "item": f"o{n}",
                                "actor": other,
                                "position": 2,
                                "score": round(
                                    o_score
                                    + (
                                        rng.normal(0, plan.adjustment_sd)
                                        if plan.adjustment_sd
                                        else 0.0
                                    )
                                    if ranked
                                    else -2.0,
                                    4,
                                ),
                                "organic_score": round(o_org, 4) if ranked else None,
                                "interventions": o_ivs if ranked else [],
                            },
                        ]
                        rankings.append(
                            {
                                "event_id": f"r{n}",
                                "platform": "chirp",
                                "ts": ts,
                                "user": f"u{u}",
                                "region": regions[u % len(regions)],
                                "surface": "feed",
                                "arm": arm,
                                "request": req,
                                "items": slate,
                            }
                        )
    return exposures, rankings


def run(
    cfg: Config,
    exposures: Iterable[dict[str, Any]],
    rankings: Iterable[dict[str, Any]],
    detectors: list[str] | None = None,
) -> tuple[Engine, ListOutput]:
    """Drive the engine over the records in event-time order; returns it and its output."""
    out = ListOutput()
    eng = Engine(cfg, out, now_ms=now_far, detectors=detectors)
    events = [("exposure", e) for e in exposures] + [("ranking", r) for r in rankings]
    events.sort(key=lambda te: te[1]["ts"])
    for topic, rec in events:
        eng.ingest_obj(topic, rec, source="synth")
    eng.close()
    return eng, out


def alarms(out: ListOutput, detector: str | None = None) -> dict[tuple[str, str], Any]:
    """Latest findings of alarm kinds, keyed by (detector, subject)."""
    kinds = {"amplification", "suppression", "undisclosed_intervention", "missing_label"}
    return {
        (f.detector, f.subject): f
        for f in out.latest_findings.values()
        if f.kind in kinds and (detector is None or f.detector == detector)
    }
