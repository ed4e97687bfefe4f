"""Severity rules, documented in one place (the dashboard and reports quote them).

* Effect-based (amplification / suppression): ``d = max(effect, 1/effect)``;
  ``d ≥ 2`` critical, ``d ≥ 1.5`` high, ``d ≥ 1.2`` medium, else low.
* ``undisclosed_intervention``: high; critical once it touched ≥ 1,000 slate placements.
* ``missing_label``: by the unlabelled share ``u``: ``u ≥ 0.9`` critical, ``≥ 0.5`` high,
  ``≥ 0.2`` medium, else low.
"""

from __future__ import annotations

__all__ = ["by_effect", "by_placements", "by_unlabelled_share"]


def by_effect(effect: float | None) -> str:
    if effect is None or effect <= 0:
        return "medium"
    d = max(effect, 1 / effect)
    return "critical" if d >= 2 else "high" if d >= 1.5 else "medium" if d >= 1.2 else "low"


def by_placements(placements: int) -> str:
    return "critical" if placements >= 1000 else "high"


def by_unlabelled_share(share: float) -> str:
    return ("critical" if share >= 0.9 else "high" if share >= 0.5
            else "medium" if share >= 0.2 else "low")
