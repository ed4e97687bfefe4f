"""Scopes: the whole of a window's jurisdiction and surfaces, each surface, each subdivision.

An intervention confined to one surface (``search``) or one ISO 3166-2 subdivision (``DE-BY``)
is diluted in the whole-window, all-surface test.  :mod:`detectors.holdout_shift` therefore
tests every subject in every *scope* of a window (the score detectors, ``rank_uplift`` and
``score_shift``, test the whole scope only):

* ``WHOLE`` — all surfaces, the whole jurisdiction (the contract's ``surface = null``);
* ``("surface", s)`` — one surface, the whole jurisdiction, when the platform uses ≥ 2 surfaces;
* ``("region", r)`` — all surfaces, one subdivision of the jurisdiction, when the baseline
  saw ≥ 2 regions under it (a subdivision holding every event is the whole again).

Which scopes exist is decided **once, when the window starts**, from what the *baseline*
saw (at most ``max_scopes``, largest first): the number of tests ``m`` is then fixed before
any window data arrive, so a Bonferroni split stays valid (every test is valid conditionally
on the baseline).  The false-alarm budget ``α_d`` of the detector on a (platform, window) is
split: the whole-scope family gets ``(1 − scope_share)·α_d`` over its ``m_whole`` tests, each
added scope ``scope_share·α_d / n_scopes`` over its ``m`` tests — the budget counts every
added test.  With no added scope the whole family keeps all of ``α_d``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["WHOLE", "Scope", "ScopePlan", "candidate_scopes", "plan_scopes"]

Scope = tuple[str, ...]  # ("*",) | ("surface", name) | ("region", code)
WHOLE: Scope = ("*",)


@dataclass(frozen=True, slots=True)
class ScopePlan:
    """The scopes of one (platform, window) and each one's share of ``α_d``."""

    scopes: tuple[Scope, ...]  # WHOLE first
    shares: tuple[float, ...]  # fraction of α_d per scope (sum = 1)

    def share(self, scope: Scope) -> float:
        return self.shares[self.scopes.index(scope)]

    @staticmethod
    def surface(scope: Scope) -> str | None:
        return scope[1] if scope[0] == "surface" else None

    @staticmethod
    def region(scope: Scope, jurisdiction: str) -> str:
        return scope[1] if scope[0] == "region" else jurisdiction


def plan_scopes(
    volume: Mapping[Scope, float], jurisdiction: str, *, max_scopes: int, scope_share: float
) -> ScopePlan:
    """Scopes to test, from the baseline's exposure volume per candidate scope.

    ``volume`` maps ``("surface", s)`` and ``("region", r)`` (every region seen under the
    jurisdiction, itself included) to exposures seen in the baseline.  Surfaces count when
    ≥ 2 were seen; subdivisions (``r != jurisdiction``) when the regions seen under the
    jurisdiction are ≥ 2 (events logged at country level form their own group).  Largest
    first, at most ``max_scopes``; each keeps ``scope_share / n`` of the budget.
    """
    surfaces = [(v, s) for s, v in volume.items() if s[0] == "surface" and v > 0]
    regions = [(v, s) for s, v in volume.items() if s[0] == "region" and v > 0]
    chosen: list[tuple[float, Scope]] = []
    if len(surfaces) >= 2:
        chosen.extend(surfaces)
    if len(regions) >= 2:
        chosen.extend((v, s) for v, s in regions if s[1] != jurisdiction)
    chosen.sort(key=lambda vs: (-vs[0], vs[1]))
    extra = tuple(s for _, s in chosen[: max(max_scopes, 0)])
    if not extra or scope_share <= 0:
        return ScopePlan((WHOLE,), (1.0,))
    each = scope_share / len(extra)
    return ScopePlan((WHOLE, *extra), (1.0 - scope_share, *([each] * len(extra))))


def candidate_scopes(surface: str, region: str) -> tuple[Scope, Scope]:
    """The candidate scopes an event counts in besides ``WHOLE``: its surface and its region
    (the plan keeps those worth testing, :func:`plan_scopes`)."""
    return ("surface", surface), ("region", region)
