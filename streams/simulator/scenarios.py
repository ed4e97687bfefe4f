"""Named scenario presets: :func:`scenario` ``(name) -> SimParams``.

Every scenario shares the *null background* (what a healthy election period looks like):
a posting surge of ``de-a-cand-2`` in the DE window and a disclosed, fully labelled
promotion of ``de-media-1``.  Planted cases are added on top, each on its own actor.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from typing import Any, Final

from .params import Intervention, SimParams

__all__ = ["SCENARIOS", "scenario"]

_DAY = dt.timedelta(days=1)

_NULL_BACKGROUND: Final = (
    Intervention("posting_surge", "de-a-cand-2", 3.0),
    Intervention("disclosed_boost", "de-media-1", 1.5, id="civic-info-de", label="promoted"),
)
_LOGS: Final = {"declare_holdout_share": True, "n_users": 16_000, "time_scale": 0.15}
_FAULTS: Final = {
    "duplicate_share": 0.005,
    "late_share": 0.02,
    "max_late_minutes": 5.0,
    "malformed_per_kind": 2,
    "ts_format": "mixed",
}


def _mix() -> tuple[Intervention, ...]:
    """All planted cases, each on a different actor, plus confounders (``default``)."""
    return (
        *_NULL_BACKGROUND,
        Intervention("hidden_boost", "de-a-cand-1", 1.5),
        Intervention("hidden_suppression", "de-b-cand-1", 0.6),
        Intervention("organic_logged_boost", "at-a-cand-2", 1.5),
        Intervention(
            "unlabelled_disclosed_boost",
            "at-media-1",
            1.5,
            id="civic-info-at",
            label="promoted",
            unlabelled_share=0.3,
        ),
        Intervention("undeclared_intervention", "de-c-cand-1", 1.3, id="reach-test-7"),
        Intervention("group_boost", "at-party-b", 1.3),
        Intervention("popularity_change", "de-b-cand-3", 2.0),
        # DE-only actor, boosted after the DE window ended (the AT window still runs).
        Intervention("boost_outside_window", "de-c-cand-3", 1.5, start=2 * _DAY, end=3 * _DAY),
    )


def _single(*extra: Intervention) -> Callable[[], dict[str, Any]]:
    return lambda: {"interventions": (*_NULL_BACKGROUND, *extra)}


def _uninformative() -> tuple[Intervention, ...]:
    """Boosts the ranking log cannot show: hidden, with no ids and noise for scores."""
    return (
        *_NULL_BACKGROUND,
        Intervention("hidden_boost", "de-a-cand-1", 6.0),
        Intervention("hidden_boost", "de-c-party", 10.0),
        Intervention("hidden_suppression", "de-b-cand-1", 0.2),
        Intervention("group_boost", "at-party-b", 3.0),
        Intervention("hidden_boost", "at-media-2", 5.0),
    )


_SURFACES: Final = (("feed", 0.7), ("search", 0.2), ("trending", 0.1))


def _scoped() -> tuple[Intervention, ...]:
    """Boosts confined to one surface or one subdivision (ISO 3166-2)."""
    return (
        *_NULL_BACKGROUND,
        Intervention("hidden_boost", "de-a-cand-1", 3.0, surfaces=("search",)),
        Intervention("hidden_boost", "de-b-cand-3", 2.0, regions=("DE-BE",)),
    )


_PRESETS: Final[dict[str, Callable[[], dict[str, Any]]]] = {
    "null": _single(),
    # Calibration nulls that stress the statistics (benchmarks/bench_calibration.py).
    "null_few_users": lambda: {"interventions": _NULL_BACKGROUND, "n_users": 800},
    "null_few_sessions": lambda: {"interventions": _NULL_BACKGROUND, "sessions_per_day": 0.5},
    "null_heavy_tails": lambda: {
        "interventions": _NULL_BACKGROUND,
        "quality_df": 3.0,
        "quality_sd": 0.6,
    },
    "null_item_adjustments": lambda: {"interventions": _NULL_BACKGROUND, "item_adjustment_sd": 0.3},
    # A new ranking model for every account at the DE window start (day 2): scores x1.3.
    "null_model_update": lambda: {"interventions": _NULL_BACKGROUND, "model_update_scale": 1.3},
    "null_surfaces": lambda: {"interventions": _NULL_BACKGROUND, "surface_shares": _SURFACES},
    # The ranking log carries no information: the holdout arm alone must find the boosts.
    "uninformative_scores": lambda: {
        "interventions": _uninformative(),
        "informative_scores": False,
        "log_interventions": False,
    },
    "surface_and_region": lambda: {"interventions": _scoped(), "surface_shares": _SURFACES},
    # A hidden boost starting 18 hours into the DE window (onset estimation).
    "late_onset": _single(
        Intervention("hidden_boost", "de-a-cand-1", 2.5, start=dt.timedelta(hours=18))
    ),
    "default": lambda: {"interventions": _mix(), **_FAULTS},
    "hidden_boost": _single(Intervention("hidden_boost", "de-a-cand-1", 1.5)),
    "suppression": _single(Intervention("hidden_suppression", "de-a-cand-1", 0.6)),
    "organic_logged_boost": _single(Intervention("organic_logged_boost", "de-a-cand-1", 1.5)),
    "group_boost": _single(Intervention("group_boost", "de-party-b", 1.3)),
    "missing_label": _single(
        Intervention(
            "unlabelled_disclosed_boost",
            "de-media-2",
            1.5,
            id="civic-info-de-2",
            unlabelled_share=0.3,
        )
    ),
    "undisclosed": _single(
        Intervention("undeclared_intervention", "de-a-cand-1", 1.3, id="reach-test-7")
    ),
    # Log integrity: the platform declares its holdout share; one fails to log a fifth of
    # its holdout users (must be flagged), the other is honest (must not be).
    # Shorter periods (0.3 days) and more users: enough users for the holdout-share test.
    "holdout_underlogging": lambda: {
        "interventions": _NULL_BACKGROUND,
        **_LOGS,
        "holdout_log_drop": 0.2,
    },
    "honest_logs": lambda: {"interventions": _NULL_BACKGROUND, **_LOGS},
    # A platform's pre-election self-audit: every planted case, data faults, and a fifth of
    # the holdout arm's users missing from the logs.
    "self_audit": lambda: {"interventions": _mix(), **_FAULTS, **_LOGS, "holdout_log_drop": 0.2},
    # A platform that lies in its logs (streams/simulator/adversary.py), one way each, on the
    # null background; the configuration declares no holdout share (the monitor estimates
    # it).  honest_panel: the same platform, honest, with a panel of 300 users.
    "alias_disguise": lambda: {
        "interventions": (*_NULL_BACKGROUND, Intervention("hidden_boost", "de-a-cand-1", 1.5)),
        "adversaries": ("alias_disguise",),
    },
    "holdout_deletion": lambda: {
        "interventions": _NULL_BACKGROUND,
        "adversaries": ("holdout_deletion",),
    },
    "holdout_thinning": lambda: {
        "interventions": _NULL_BACKGROUND,
        "n_users": 8000,
        "adversaries": ("holdout_thinning",),
        "adversary_share": 0.5,
    },
    "holdout_move": lambda: {"interventions": _NULL_BACKGROUND, "adversaries": ("holdout_move",)},
    "stripped_interventions": lambda: {
        "interventions": (
            *_NULL_BACKGROUND,
            Intervention(
                "unlabelled_disclosed_boost",
                "de-media-2",
                1.5,
                id="civic-info-de-2",
                unlabelled_share=0.3,
            ),
        ),
        "adversaries": ("strip_interventions",),
    },
    "conflicting_duplicates": lambda: {
        "interventions": _NULL_BACKGROUND,
        "adversaries": ("conflicting_duplicates",),
    },
    "falsified_log": lambda: {
        "interventions": _NULL_BACKGROUND,
        "panel_users": 300,
        "adversaries": ("falsified_log",),
    },
    "label_without_intervention": lambda: {
        "interventions": _NULL_BACKGROUND,
        "adversaries": ("label_without_intervention",),
    },
    "honest_panel": lambda: {"interventions": _NULL_BACKGROUND, "panel_users": 300},
    # Half the holdout users of one subdivision (DE-BE) deleted from the window start: the
    # holdout share differs between the regions (8,000 users: enough per region).
    "holdout_region": lambda: {
        "interventions": _NULL_BACKGROUND,
        "n_users": 8000,
        "adversaries": ("holdout_thinning",),
        "adversary_share": 0.5,
        "adversary_regions": ("DE-BE",),
    },
    # Every holdout-arm record on the search surface deleted from the window start (feed,
    # search and trending sessions; the holdout arm stays active on the other surfaces;
    # 4,000 users).
    "holdout_surface": lambda: {
        "interventions": _NULL_BACKGROUND,
        "n_users": 4000,
        "surface_shares": _SURFACES,
        "adversaries": ("holdout_deletion",),
        "adversary_surfaces": ("search",),
    },
    # 40 % of the holdout arm's exposures deleted from the window start (users kept).
    "holdout_exposure_deletion": lambda: {
        "interventions": _NULL_BACKGROUND,
        "n_users": 8000,
        "adversaries": ("holdout_exposure_deletion",),
        "adversary_share": 0.4,
    },
    # A ×2 hidden boost of de-a-cand-1, hidden in the log for the panellists only (half of
    # the actor's ranked-arm exposures of panellists deleted): 6,000 users, 1,500 panellists.
    "panel_hidden_boost": lambda: {
        "interventions": (*_NULL_BACKGROUND, Intervention("hidden_boost", "de-a-cand-1", 2.0)),
        "n_users": 6000,
        "panel_users": 1500,
        "adversaries": ("panel_arm_falsified",),
        "adversary_share": 0.5,
    },
    # Half the timeline (1-day periods) and fewer users: quick to stream in a live demo.
    "demo": lambda: {"interventions": _mix(), **_FAULTS, "n_users": 3000, "time_scale": 0.5},
}

#: Scenario names accepted by :func:`scenario`.
SCENARIOS: Final = tuple(_PRESETS)


def scenario(name: str, seed: int = 0, scale: float = 1.0, **overrides: Any) -> SimParams:
    """Parameters of a named scenario.

    Scenarios: ``null`` (calibration null: no intervention, but a posting surge, a disclosed
    labelled boost and ranking noise), ``default`` (every planted case on its own actor, the
    confounders, small data faults), ``hidden_boost`` (×1.5 on ``de-a-cand-1`` from the DE
    window start), ``suppression`` (×0.6), ``organic_logged_boost`` (×1.5), ``group_boost``
    (×1.3 on every account of ``de-party-b``), ``missing_label`` (disclosed boost of
    ``de-media-2`` with 30 % of labels missing), ``undisclosed`` (logged ×1.3 intervention
    with no disclosure), ``holdout_underlogging`` (the null background on a platform that
    declares its holdout share but drops every event of a fifth of its holdout users),
    ``honest_logs`` (the same platform logging everything; both with 16,000 users and
    0.3-day periods), ``self_audit`` (``default`` plus that logging fault, at that size),
    ``demo`` (like ``default``, smaller and on a 1-day cadence); the calibration nulls
    ``null_few_users`` (800 users), ``null_few_sessions`` (0.5 sessions per user and day),
    ``null_heavy_tails`` (Student-t(3) item quality, sd 0.6), ``null_item_adjustments``
    (legitimate per-item score adjustments, sd 0.3), ``null_model_update`` (every score ×1.3
    from the DE window start: a platform-wide change) and ``null_surfaces`` (feed, search and
    trending); ``uninformative_scores`` (hidden boosts ×6 and ×10 on a candidate and a party
    account, ×0.2, a ×3 party-wide boost and ×5 on a media outlet — exposure effects above
    the holdout test's minimum detectable effects, with scores that carry no information and
    no intervention ids: only the holdout arm can reveal them), ``surface_and_region`` (×3
    on search only, ×2
    in DE-BE only) and ``late_onset`` (×2.5 hidden boost from 18 h into the DE window);
    platforms that lie in their logs (:mod:`streams.simulator.adversary`), one way each:
    ``alias_disguise`` (a ×1.5 hidden boost of ``de-a-cand-1``, logged under look-alike
    ids), ``holdout_deletion``, ``holdout_thinning`` (half of the holdout users deleted from
    the window start, 8,000 users), ``holdout_move``, ``stripped_interventions`` (the
    ``missing_label`` case with every intervention id removed from the ranking log),
    ``conflicting_duplicates``, ``falsified_log`` (with a panel of 300 users),
    ``label_without_intervention``, ``holdout_region`` (half of DE-BE's holdout users
    deleted from the window start, 8,000 users), ``holdout_surface`` (every holdout record
    on ``search`` deleted from the window start, three surfaces, 4,000 users),
    ``holdout_exposure_deletion`` (40 % of the holdout arm's exposures deleted from the
    window start, users kept, 8,000 users), ``panel_hidden_boost`` (a ×2 hidden boost of
    ``de-a-cand-1``, half of its ranked exposures of panellists deleted from the log; 6,000
    users, 1,500 panellists), and ``honest_panel`` (an honest platform, 300 panellists).

    Args:
        name: One of :data:`SCENARIOS`.
        seed: Random seed.
        scale: Multiplies the number of users (benchmark knob; exposures scale linearly).
            Stretch the timeline with ``time_scale=`` as an override.
        **overrides: Any :class:`SimParams` field, applied last (e.g. ``start=``,
            ``n_users=``, ``interventions=``).

    Raises:
        ValueError: Unknown name, non-positive scale or an invalid field value.
    """
    if name not in _PRESETS:
        raise ValueError(f"unknown scenario {name!r}; expected one of {', '.join(SCENARIOS)}")
    if not scale > 0:
        raise ValueError(f"scale: expected > 0, got {scale!r}")
    fields = {"seed": seed, **_PRESETS[name]()}
    base_users = fields.get("n_users", SimParams.n_users)
    fields["n_users"] = max(1, round(base_users * scale))
    unknown = set(overrides) - {f.name for f in dataclasses.fields(SimParams)}
    if unknown:
        raise ValueError(f"unknown SimParams field(s): {', '.join(sorted(unknown))}")
    fields.update(overrides)
    return SimParams(**fields)
