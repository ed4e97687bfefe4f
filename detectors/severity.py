"""Severity rules, documented in one place (the dashboard and reports quote them).

* Effect-based (amplification / suppression): ``d = max(effect, 1/effect)``;
  ``d ≥ 2`` critical, ``d ≥ 1.5`` high, ``d ≥ 1.2`` medium, else low.
* Statistical findings (``holdout_shift``, ``rank_uplift``, ``score_shift``) —
  :func:`by_effect_bound`: the same thresholds applied to the confidence bound *nearest to 1*
  (``ci_low`` for amplification, ``1/ci_high`` for suppression), i.e. to the effect the
  evidence establishes at the detector's simultaneous level, not to the point estimate; a
  ``group`` finding (party-wide) is raised one level (a coordinated effect on a whole
  party), capped at critical.
* ``disclosed`` (informational: a change that a declared intervention explains): low.
* ``undisclosed_intervention``: high; critical once it touched ≥ 1,000 slate placements.
* ``missing_label``: by the unlabelled share ``u``: ``u ≥ 0.9`` critical, ``≥ 0.5`` high,
  ``≥ 0.2`` medium, else low.
* ``log_integrity`` (:mod:`detectors.integrity`):

  - holdout share vs the declared or baseline share — :func:`by_relative_deviation` of
    ``d = |observed ÷ reference − 1|``: ``d ≥ 0.3`` critical, ``≥ 0.1`` high, ``≥ 0.03``
    medium, else low; the same rule for a region's (surface's) holdout share ÷ the rest's
    and for the holdout exposures-per-user change ``Δ``; a holdout arm gone silent is
    critical (high when only some regions' arm is);
  - the panel's amplification estimate above the log's — :func:`by_effect` of the lower
    always-valid bound of ``R_panel ÷ R_log`` (as an amplification effect);
  - shares of records that contradict something (exposures no slate explains, panel
    mismatches, users logged in both arms) — :func:`by_contradiction_share` of the share
    ``s``: ``s ≥ 0.2`` critical, ``≥ 0.05`` high, ``≥ 0.02`` medium, else low;
  - event gaps — :func:`by_gap_minutes` of the longest gap: ≥ 24 h critical, ≥ 6 h high,
    ≥ 2 h medium, else low;
  - look-alike actor ids and conflicting duplicates — :func:`by_placements` of the records
    involved (high; critical from 1,000); labels without an intervention — medium.
"""

from __future__ import annotations

__all__ = [
    "by_contradiction_share",
    "by_effect",
    "by_effect_bound",
    "by_gap_minutes",
    "by_placements",
    "by_relative_deviation",
    "by_unlabelled_share",
]

_LEVELS = ("low", "medium", "high", "critical")


def by_effect(effect: float | None) -> str:
    if effect is None or effect <= 0:
        return "medium"
    d = max(effect, 1 / effect)
    return "critical" if d >= 2 else "high" if d >= 1.5 else "medium" if d >= 1.2 else "low"


def by_placements(placements: int) -> str:
    return "critical" if placements >= 1000 else "high"


def by_unlabelled_share(share: float) -> str:
    return (
        "critical"
        if share >= 0.9
        else "high"
        if share >= 0.5
        else "medium"
        if share >= 0.2
        else "low"
    )


def by_relative_deviation(deviation: float) -> str:
    return (
        "critical"
        if deviation >= 0.3
        else "high"
        if deviation >= 0.1
        else "medium"
        if deviation >= 0.03
        else "low"
    )


def by_contradiction_share(share: float) -> str:
    return (
        "critical"
        if share >= 0.2
        else "high"
        if share >= 0.05
        else "medium"
        if share >= 0.02
        else "low"
    )


def by_gap_minutes(minutes: float) -> str:
    return (
        "critical"
        if minutes >= 24 * 60
        else "high"
        if minutes >= 6 * 60
        else "medium"
        if minutes >= 2 * 60
        else "low"
    )


def by_effect_bound(
    effect: float | None,
    ci_low: float | None,
    ci_high: float | None,
    subject_kind: str = "actor",
    kind: str = "amplification",
) -> str:
    """Severity of a statistical finding from its conservative bound (module docstring)."""
    if kind == "disclosed":
        return "low"
    if kind == "suppression":
        bound = 1 / ci_high if ci_high is not None and ci_high > 0 else None
    else:
        bound = ci_low
    if bound is None or bound <= 1:
        level = "low" if effect is not None else "medium"
    else:
        level = by_effect(bound)
    if subject_kind == "group":
        level = _LEVELS[min(_LEVELS.index(level) + 1, len(_LEVELS) - 1)]
    return level
