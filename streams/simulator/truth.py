"""Ground truth: what was planted, and the exact exposure counts the monitor must reproduce.

Counts follow the monitor's definitions (contract §3, table ``amplification``): for each
platform, window and period (half-open), the *region scope* is every event region the
window's jurisdiction covers; an actor is *monitored* in a window if one of its registry
regions covers the jurisdiction or is covered by it; a group's counts are over its
monitored actors.  ``users_<arm>`` counts distinct users of the arm with ≥ 1 exposure of any
item in scope and period; ``reach_<arm>`` those with ≥ 1 exposure of the subject.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import numpy as np

from .params import SimParams
from .population import Accounts, covers
from .timeline import ResolvedIntervention, Timeline

__all__ = ["amplification_rows", "intervention_truth", "params_dict"]

_RATIO_KINDS = ("hidden_boost", "hidden_suppression", "organic_logged_boost", "group_boost")


def _div(a: float, b: float) -> float | None:
    return a / b if b else None


def amplification_rows(
    params: SimParams,
    accounts: Accounts,
    timeline: Timeline,
    platform: np.ndarray,
    t_ms: np.ndarray,
    user: np.ndarray,
    region: np.ndarray,
    holdout: np.ndarray,
    actor: np.ndarray,
) -> list[dict[str, Any]]:
    """Exact counts per platform, window, period and subject from clean exposures.

    Args are the clean (deduplicated, well-formed) exposures as parallel arrays: platform
    index, event time (epoch ms), user index, region index (into ``params.regions``),
    holdout flag and actor index.
    """
    rows: list[dict[str, Any]] = []
    groups = accounts.group_names
    for p, name in enumerate(params.platforms):
        for w in timeline.windows:
            jur = w.jurisdiction
            scope = np.array([covers(jur, r) for r in params.regions])
            monitored = [
                a
                for a in np.flatnonzero(accounts.registered)
                if any(covers(r, jur) or covers(jur, r) for r in accounts.regions[a])
            ]
            group_of = np.full(accounts.n, -1)
            for a in monitored:
                g = accounts.groups[a]
                if g is not None:
                    group_of[a] = groups.index(g)
            live_groups = sorted({int(group_of[a]) for a in monitored} - {-1})
            for period, iv in w.periods.items():
                base = (platform == p) & scope[region] & (t_ms >= iv.start_ms) & (t_ms < iv.end_ms)
                stats = {}
                for arm, sel in (("ranked", base & ~holdout), ("holdout", base & holdout)):
                    u, a = user[sel], actor[sel]
                    stats[arm] = _arm_stats(u, a, group_of, accounts.n, len(groups))
                common = {"platform": name, "region": jur, "window_id": w.id, "period": period}
                for acc in monitored:
                    rows.append(_row(common, "actor", accounts.ids[acc], stats, "actor", int(acc)))
                for gi in live_groups:
                    rows.append(_row(common, "group", str(groups[gi]), stats, "group", gi))
    return rows


def _arm_stats(
    u: np.ndarray, a: np.ndarray, group_of: np.ndarray, n_actors: int, n_groups: int
) -> dict[str, Any]:
    g = group_of[a]
    pairs = np.unique(u.astype(np.int64) * n_actors + a)
    in_group = g >= 0
    gpairs = np.unique(u[in_group].astype(np.int64) * max(n_groups, 1) + g[in_group])
    return {
        "users": int(np.unique(u).size),
        "n_actor": np.bincount(a, minlength=n_actors),
        "reach_actor": np.bincount(pairs % n_actors, minlength=n_actors),
        "n_group": np.bincount(g[in_group], minlength=n_groups),
        "reach_group": np.bincount(gpairs % max(n_groups, 1), minlength=n_groups),
    }


def _row(
    common: dict[str, Any],
    subject_kind: str,
    subject: str,
    stats: dict[str, Any],
    key: str,
    idx: int,
) -> dict[str, Any]:
    r, h = stats["ranked"], stats["holdout"]
    row = {
        **common,
        "subject_kind": subject_kind,
        "subject": subject,
        "n_ranked": int(r[f"n_{key}"][idx]),
        "n_holdout": int(h[f"n_{key}"][idx]),
        "users_ranked": r["users"],
        "users_holdout": h["users"],
        "reach_ranked": int(r[f"reach_{key}"][idx]),
        "reach_holdout": int(h[f"reach_{key}"][idx]),
    }
    per_r = _div(row["n_ranked"], row["users_ranked"])
    per_h = _div(row["n_holdout"], row["users_holdout"])
    share_r = _div(row["reach_ranked"], row["users_ranked"])
    share_h = _div(row["reach_holdout"], row["users_holdout"])
    row["ratio"] = _div(per_r, per_h) if per_r is not None and per_h else None
    row["reach_ratio"] = _div(share_r, share_h) if share_r is not None and share_h else None
    return row


def _expected(iv: ResolvedIntervention, monitored: bool) -> tuple[str, list[str]]:
    kind, m = iv.spec.kind, iv.spec.multiplier
    direction = "amplification" if m > 1 else "suppression" if m < 1 else "none"
    if not monitored or kind in (
        "posting_surge",
        "popularity_change",
        "boost_outside_window",
        "disclosed_boost",
    ):
        return "none", []
    if kind in _RATIO_KINDS:
        return direction, []
    if kind == "unlabelled_disclosed_boost":
        return "missing_label", []
    return "undisclosed_intervention", [direction] if direction != "none" else []


def intervention_truth(
    params: SimParams,
    accounts: Accounts,
    timeline: Timeline,
    applied: np.ndarray,
    labelled: np.ndarray,
    seen: np.ndarray | None = None,
    counterfactual: np.ndarray | None = None,
) -> list[dict[str, Any]]:
    """One entry per planted intervention with its expected finding.

    ``expected_finding`` is ``none`` for confounders, disclosed boosts, and interventions
    that overlap no monitored period of a window monitoring the target.  ``also_acceptable``
    lists other findings that are correct too (the actor's group, a logged undeclared boost
    that also amplifies).  ``exposures_affected`` counts clean exposures whose score the
    intervention raised or lowered; ``exposures_labelled`` those that showed its label.

    ``exposure_effect`` (ranking kinds; the quantity every detector's ``effect`` estimates) =
    ``seen_entries / seen_entries_counterfactual``: the target's seen slate entries in the
    sessions the intervention applied to, with the interventions and without them (same
    noise, same depth; :mod:`.feeds`) — the multiplicative change in exposure it caused.
    """
    out = []
    for iv in timeline.interventions:
        windows = _monitoring_windows(iv, accounts, timeline)
        finding, extra = _expected(iv, bool(windows))
        bit = np.int64(1) << iv.index
        hit = (applied & bit) != 0
        subject_kind = iv.target_kind
        acceptable = [
            {"kind": k, "subject_kind": subject_kind, "subject": iv.spec.target} for k in extra
        ]
        if finding != "none":
            if subject_kind == "actor":
                group = accounts.groups[int(iv.members[0])]
                if group is not None:
                    acceptable.append({"kind": finding, "subject_kind": "group", "subject": group})
            else:
                acceptable += [
                    {"kind": finding, "subject_kind": "actor", "subject": accounts.ids[int(a)]}
                    for a in iv.members
                ]
        w = iv.window
        n_seen = int(seen[iv.index]) if seen is not None else 0
        n_cf = int(counterfactual[iv.index]) if counterfactual is not None else 0
        out.append(
            {
                "id": iv.spec.id,
                "kind": iv.spec.kind,
                "target": iv.spec.target,
                "target_kind": subject_kind,
                "members": [accounts.ids[int(a)] for a in iv.members],
                "platform": iv.spec.platform,
                "multiplier": iv.spec.multiplier,
                "regions": list(iv.regions),
                "start": _iso(iv.interval.start),
                "end": _iso(iv.interval.end),
                "window_id": w.id if w else None,
                "region": w.jurisdiction if w else None,
                "monitored_in": windows,
                "logged_id": iv.spec.id if iv.logged else None,
                "disclosed": iv.disclosed,
                "label": iv.spec.label if iv.disclosed else None,
                "unlabelled_share": (
                    iv.spec.unlabelled_share
                    if iv.spec.kind == "unlabelled_disclosed_boost"
                    else 0.0
                ),
                "expected_finding": finding,
                "subject_kind": subject_kind,
                "subject": iv.spec.target,
                "also_acceptable": acceptable,
                "exposures_affected": int(hit.sum()),
                "exposures_labelled": int((hit & labelled).sum()),
                "surfaces": list(iv.spec.surfaces),
                "seen_entries": n_seen if iv.ranks else None,
                "seen_entries_counterfactual": n_cf if iv.ranks else None,
                "exposure_effect": (n_seen / n_cf if iv.ranks and n_cf else None),
            }
        )
    return out


def _monitoring_windows(
    iv: ResolvedIntervention, accounts: Accounts, timeline: Timeline
) -> list[str]:
    """Windows that monitor a target member in an affected region during an overlapping
    baseline or window period."""
    found = []
    for w in timeline.windows:
        jur = w.jurisdiction
        if not any(
            covers(r, jur) or covers(jur, r) for a in iv.members for r in accounts.regions[int(a)]
        ):
            continue
        if not any(covers(r, jur) or covers(jur, r) for r in iv.regions):
            continue
        lo = min(p.start_ms for p in w.periods.values())
        hi = max(p.end_ms for p in w.periods.values())
        if iv.interval.start_ms < hi and lo < iv.interval.end_ms:
            found.append(w.id)
    return found


def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _plain(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return _iso(value)
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def params_dict(params: SimParams) -> dict[str, Any]:
    """JSON-ready parameters (datetimes as RFC 3339, timedeltas as seconds)."""
    return _plain(dataclasses.asdict(params))
