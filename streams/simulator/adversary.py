"""A platform that lies in its logs: ways of hiding, applied to a finished simulation.

Each adversary rewrites the streams the platform hands over, after the honest simulation
(:func:`streams.simulator.simulate`), deterministically from the seed; what it did is
recorded in ``truth["adversary"]``.  ``log_integrity`` must turn each into a finding
(tests/detectors/test_integrity_adversary.py):

=============================  ============================================================
adversary                      what the platform does
=============================  ============================================================
``alias_disguise``             logs ``adversary_actor``'s items under look-alike ids (a
                               zero-width space, upper case, a trailing space, an ``@``)
``holdout_deletion``           deletes every holdout-arm record from the first window start
                               (in ``adversary_regions`` and on ``adversary_surfaces`` if
                               given, as the next two)
``holdout_thinning``           from the first window start, deletes every record of a random
                               ``adversary_share`` of its holdout users
``holdout_move``               from the first window start, logs ``adversary_share`` of its
                               ranked users as holdout users
``strip_interventions``        removes every intervention id from the ranking log
``conflicting_duplicates``     re-sends 1 % of exposures with the same ``event_id`` and a
                               different position
``falsified_log``              from the first window start, deletes ``adversary_share`` of
                               the registered actors' ranked-arm exposures from the
                               exposure log and moves half as many three places down
                               (hiding the amplification of politics; the panel saw them)
``label_without_intervention`` shows the label ``sponsored`` on half of the actor's
                               ranked-arm exposures in the windows; nothing declares or
                               logs an intervention
``holdout_exposure_deletion``  from the first window start, deletes ``adversary_share`` of
                               the holdout arm's exposures (each at random; users are kept
                               while they have any exposure left, their slates stay) in
                               ``adversary_regions`` if given
``panel_arm_falsified``        from the first window start, deletes ``adversary_share`` of
                               ``adversary_actor``'s ranked-arm exposures *of panellists
                               only* (the log hides the boost the panel saw; one actor's
                               records are too few for the mismatch rate to show it)
=============================  ============================================================

The panel (``panel_users`` > 0) is drawn before any adversary acts: what the panellists'
devices recorded is what was really shown (the platform's own records of those exposures,
with the device's own event ids and no request id).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any, Final

import numpy as np

if TYPE_CHECKING:
    from .simulation import Simulation

__all__ = ["ADVERSARIES", "DISGUISES", "apply"]

ADVERSARIES: Final = (
    "alias_disguise",
    "holdout_deletion",
    "holdout_thinning",
    "holdout_move",
    "strip_interventions",
    "conflicting_duplicates",
    "falsified_log",
    "label_without_intervention",
    "holdout_exposure_deletion",
    "panel_arm_falsified",
)
#: How ``alias_disguise`` spells an id (chosen per item).
DISGUISES: Final = ("zero_width", "upper_case", "trailing_space", "at_prefix")


def disguise(actor: str, how: str) -> str:
    if how == "zero_width":
        return actor[:2] + "\u200b" + actor[2:]
    if how == "upper_case":
        return actor.upper()
    if how == "trailing_space":
        return actor + " "
    return "@" + actor


def _ms(ts: Any) -> int:
    if isinstance(ts, int):
        return ts
    return int(dt.datetime.fromisoformat(str(ts).replace("Z", "+00:00")).timestamp() * 1000)


def _first_window_ms(sim: Simulation) -> int:
    return min(int(w["start"].timestamp() * 1000) for w in sim.config["windows"])


def _window_spans(sim: Simulation) -> list[tuple[int, int]]:
    return [
        (int(w["start"].timestamp() * 1000), int(w["end"].timestamp() * 1000))
        for w in sim.config["windows"]
    ]


def apply(sim: Simulation, rng: np.random.Generator) -> None:
    """Draw the panel, then apply ``sim.params.adversaries`` in order (in place)."""
    params = sim.params
    truth: dict[str, Any] = {
        "adversaries": list(params.adversaries),
        "actor": params.adversary_actor,
    }
    if params.panel_users:
        truth["panel"] = _panel(sim, rng)
    for name in params.adversaries:
        truth[name] = _ACTIONS[name](sim, rng)
    sim.truth["adversary"] = truth


def _panel(sim: Simulation, rng: np.random.Generator) -> dict[str, Any]:
    platform = sim.params.platforms[0]
    users = sorted({r["user"] for r in sim.exposures if r["platform"] == platform})
    n = min(sim.params.panel_users, len(users))
    chosen = set(rng.choice(len(users), n, replace=False).tolist())
    members = {users[i] for i in chosen}
    seen: set[str] = set()
    panel = []
    for r in sim.exposures:
        if r["platform"] != platform or r["user"] not in members or r["event_id"] in seen:
            continue
        seen.add(r["event_id"])
        record = {k: v for k, v in r.items() if k != "request"}
        record["event_id"] = "panel-" + r["event_id"]
        panel.append(record)
    sim.panel = panel
    return {"platform": platform, "panellists": n, "records": len(panel)}


def _alias(sim: Simulation, rng: np.random.Generator) -> dict[str, Any]:
    actor = sim.params.adversary_actor
    ids: dict[str, int] = {}

    def spelled(item: str) -> str:
        how = DISGUISES[sum(map(ord, item)) % len(DISGUISES)]
        return disguise(actor, how)

    for r in sim.exposures:
        if r["actor"] == actor:
            r["actor"] = spelled(r["item"])
            ids[r["actor"]] = ids.get(r["actor"], 0) + 1
    items = 0
    for r in sim.rankings:
        for it in r["items"]:
            if it["actor"] == actor:
                it["actor"] = spelled(it["item"])
                items += 1
    return {"exposures_by_id": {repr(k): v for k, v in sorted(ids.items())}, "ranking_items": items}


def _here(sim: Simulation, record: dict[str, Any]) -> bool:
    regions, surfaces = sim.params.adversary_regions, sim.params.adversary_surfaces
    return (not regions or record["region"] in regions) and (
        not surfaces or record["surface"] in surfaces
    )


def _holdout_deletion(sim: Simulation, rng: np.random.Generator) -> dict[str, Any]:
    start = _first_window_ms(sim)
    counts = {}
    for topic in ("exposure", "ranking"):
        records = sim.records(topic)
        kept = [
            r for r in records if r["arm"] != "holdout" or _ms(r["ts"]) < start or not _here(sim, r)
        ]
        counts[topic] = len(records) - len(kept)
        records[:] = kept
    return {"deleted": counts, "from_ms": start}


def _holdout_thinning(sim: Simulation, rng: np.random.Generator) -> dict[str, Any]:
    start = _first_window_ms(sim)
    holdout = sorted({r["user"] for r in sim.exposures if r["arm"] == "holdout"})
    pick = rng.random(len(holdout)) < sim.params.adversary_share
    gone = {u for u, p in zip(holdout, pick, strict=True) if p}
    counts = {}
    for topic in ("exposure", "ranking"):
        records = sim.records(topic)
        kept = [
            r
            for r in records
            if not (
                r["arm"] == "holdout"
                and r["user"] in gone
                and _ms(r["ts"]) >= start
                and _here(sim, r)
            )
        ]
        counts[topic] = len(records) - len(kept)
        records[:] = kept
    return {"holdout_users_thinned": len(gone), "deleted": counts, "from_ms": start}


def _holdout_move(sim: Simulation, rng: np.random.Generator) -> dict[str, Any]:
    start = _first_window_ms(sim)
    ranked = sorted({r["user"] for r in sim.exposures if r["arm"] == "ranked"})
    pick = rng.random(len(ranked)) < sim.params.adversary_share
    moved = {u for u, p in zip(ranked, pick, strict=True) if p}
    n = 0
    for topic in ("exposure", "ranking"):
        for r in sim.records(topic):
            if (
                r["user"] in moved
                and r["arm"] == "ranked"
                and _ms(r["ts"]) >= start
                and _here(sim, r)
            ):
                r["arm"] = "holdout"
                n += 1
    return {"users_moved": len(moved), "records_relabelled": n, "from_ms": start}


def _strip(sim: Simulation, rng: np.random.Generator) -> dict[str, Any]:
    n = 0
    for r in sim.rankings:
        for it in r["items"]:
            if it.get("interventions"):
                n += 1
                it["interventions"] = []
    return {"ranking_items_stripped": n}


def _conflicting(sim: Simulation, rng: np.random.Generator) -> dict[str, Any]:
    out: list[dict[str, Any]] = []
    n = 0
    for r, hit in zip(sim.exposures, rng.random(len(sim.exposures)) < 0.01, strict=True):
        out.append(r)
        if hit:
            out.append({**r, "position": r["position"] + 1})
            n += 1
    sim.exposures[:] = out
    return {"conflicting_copies": n}


def _falsified(sim: Simulation, rng: np.random.Generator) -> dict[str, Any]:
    start = _first_window_ms(sim)
    registered = {a["actor"] for a in sim.config["actors"]}
    share = sim.params.adversary_share
    kept, removed, moved = [], 0, 0
    for r, u in zip(sim.exposures, rng.random(len(sim.exposures)), strict=True):
        if r["actor"] in registered and r["arm"] == "ranked" and _ms(r["ts"]) >= start:
            if u < share:
                removed += 1
                continue
            if u < 1.5 * share:
                r["position"] += 3
                moved += 1
        kept.append(r)
    sim.exposures[:] = kept
    return {"exposures_removed": removed, "positions_changed": moved, "from_ms": start}


def _label(sim: Simulation, rng: np.random.Generator) -> dict[str, Any]:
    actor, spans = sim.params.adversary_actor, _window_spans(sim)
    n = 0
    for r, u in zip(sim.exposures, rng.random(len(sim.exposures)), strict=True):
        if (
            r["actor"] == actor
            and r["arm"] == "ranked"
            and u < 0.5
            and "label" not in r
            and any(a <= _ms(r["ts"]) < b for a, b in spans)
        ):
            r["label"] = "sponsored"
            n += 1
    return {"labelled_exposures": n, "label": "sponsored"}


def _holdout_exposures(sim: Simulation, rng: np.random.Generator) -> dict[str, Any]:
    start = _first_window_ms(sim)
    share = sim.params.adversary_share
    kept, removed = [], 0
    for r, u in zip(sim.exposures, rng.random(len(sim.exposures)), strict=True):
        if r["arm"] == "holdout" and _ms(r["ts"]) >= start and _here(sim, r) and u < share:
            removed += 1
            continue
        kept.append(r)
    sim.exposures[:] = kept
    return {"exposures_removed": removed, "from_ms": start}


def _panel_arm(sim: Simulation, rng: np.random.Generator) -> dict[str, Any]:
    start = _first_window_ms(sim)
    actor = sim.params.adversary_actor
    panellists = {r["user"] for r in sim.panel}
    share = sim.params.adversary_share
    kept, removed = [], 0
    for r, u in zip(sim.exposures, rng.random(len(sim.exposures)), strict=True):
        if (
            r["user"] in panellists
            and r["actor"] == actor
            and r["arm"] == "ranked"
            and _ms(r["ts"]) >= start
            and u < share
        ):
            removed += 1
            continue
        kept.append(r)
    sim.exposures[:] = kept
    return {"panellist_exposures_removed": removed, "from_ms": start}


_ACTIONS: Final = {
    "alias_disguise": _alias,
    "holdout_deletion": _holdout_deletion,
    "holdout_thinning": _holdout_thinning,
    "holdout_move": _holdout_move,
    "strip_interventions": _strip,
    "conflicting_duplicates": _conflicting,
    "falsified_log": _falsified,
    "label_without_intervention": _label,
    "holdout_exposure_deletion": _holdout_exposures,
    "panel_arm_falsified": _panel_arm,
}
