"""The holdout share of users compared *between* the regions (and surfaces) of one window
scope: a region whose holdout share departs from the others' (package docstring, "Holdout
share between regions and surfaces").

Each user active in the window period is one trial, counted at its first window event
(its arm, region and surface then).  A tick's new trials form a block; per cell ``c`` (a
region, or a surface) the block splits into ``n_a`` users of ``c`` and ``n_b`` of the rest
of the scope, ``k`` of them holdout.  Conditional on the block's margins the number of
holdout users in ``c`` follows Fisher's noncentral hypergeometric law with parameter the
odds ratio ``ψ`` (holdout odds in ``c`` ÷ in the rest), whatever the common share: the
nuisance drops out exactly."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import special

from detectors.sequential import adjusted_p
from detectors.severity import by_relative_deviation
from detectors.stats import clopper_pearson
from monitor.core.records import Finding

from ._frame import Frame, Key, Running

__all__ = ["BetweenTest", "fnch_log_pmf"]

#: the mixture's alternatives: ``|log ψ|`` beyond H0's edge, on each side (weights 1/14)
_STEPS = np.array([0.1, 0.25, 0.45, 0.7, 1.0, 1.6, 2.5])
DIMENSIONS = ("region", "surface")


def fnch_log_pmf(x: int, n_a: int, n_b: int, k: int, psi: float) -> float:
    """``log P(X = x)`` of Fisher's noncentral hypergeometric law: ``k`` successes among
    ``n_a + n_b`` trials, ``X`` of them among the first ``n_a``, odds ratio ``psi``::

        P(X = x) = C(n_a, x) C(n_b, k − x) ψ^x / Σ_s C(n_a, s) C(n_b, k − s) ψ^s
    """
    lo, hi = max(0, k - n_b), min(n_a, k)
    if not lo <= x <= hi:
        return -math.inf
    s = np.arange(lo, hi + 1, dtype=float)
    log_w = _log_comb(n_a, s) + _log_comb(n_b, k - s) + s * math.log(psi)  # unnormalised weights
    return float(log_w[x - lo] - special.logsumexp(log_w))


def _fnch_log_pmf_vec(x: int, n_a: int, n_b: int, k: int, psi: np.ndarray) -> np.ndarray:
    """:func:`fnch_log_pmf` at ``x`` for each odds ratio of ``psi``."""
    lo, hi = max(0, k - n_b), min(n_a, k)
    s = np.arange(lo, hi + 1, dtype=float)
    base = _log_comb(n_a, s) + _log_comb(n_b, k - s)
    log_w = base[None, :] + s[None, :] * np.log(psi)[:, None]
    return np.asarray(log_w[:, x - lo] - special.logsumexp(log_w, axis=1))


def _log_comb(n: float, k: Any) -> Any:
    return special.gammaln(n + 1) - special.gammaln(k + 1) - special.gammaln(n - k + 1)


@dataclass
class _Cell(Running):
    """One region's (surface's) users of the window period against the rest's."""

    dimension: str = "region"
    value: str = ""
    counts: list[int] = field(default_factory=lambda: [0, 0, 0, 0])  # r_c, h_c, r_rest, h_rest
    log_e: float = 0.0
    log_lr: np.ndarray = field(default_factory=lambda: np.zeros(2 * len(_STEPS)))
    bets: int = 0
    rank: int = 1  # order of appearance in its dimension (1, 2, …)


@dataclass
class _Scope:
    cells: dict[tuple[str, str], _Cell] = field(default_factory=dict)
    order: dict[str, int] = field(default_factory=dict)  # dimension → cells opened
    pending: dict[str, tuple[int, str, str, int]] = field(default_factory=dict)


class BetweenTest:
    """Subjects ``holdout_share_region:<region>`` and ``holdout_share_surface:<surface>``."""

    def __init__(self, frame: Frame, *, tolerance: float) -> None:
        self.frame = frame
        self.tolerance = tolerance
        self.scopes: dict[Key, _Scope] = {}
        self.changed: set[Key] = set()

    @property
    def bounds(self) -> tuple[float, float]:
        """H0's odds-ratio interval ``[1 − ε, 1/(1 − ε)]`` (symmetric on the log scale)."""
        return 1 - self.tolerance, 1 / (1 - self.tolerance)

    def threshold(self, cell: _Cell) -> float:
        """``log(m/α_d) + log(2 k(k+1))``: each dimension gets half of the test's share, its
        ``k``-th cell to appear ``1/(k(k+1))`` of that half (weights summing to 1 over any
        number of cells; Bonferroni)."""
        k = cell.rank
        return self.frame.threshold + math.log(len(DIMENSIONS) * k * (k + 1))

    def offer(self, key: Key, user: str, ts: int, region: str, surface: str, arm: int) -> None:
        """An event of ``user`` in the tick in which the user first became active in the
        window period; the earliest (then smallest region, surface) is the trial's."""
        scope = self.scopes.setdefault(key, _Scope())
        event = (ts, region, surface, arm)
        old = scope.pending.get(user)
        if old is None or event < old:
            scope.pending[user] = event

    def close_tick(self) -> None:
        """Turn each scope's pending trials into one block per dimension and bet on it."""
        for key, scope in self.scopes.items():
            if not scope.pending:
                continue
            trials = list(scope.pending.values())
            scope.pending = {}
            self.changed.add(key)
            for d, dimension in enumerate(DIMENSIONS):
                block: dict[str, list[int]] = {}
                for _, region, surface, arm in trials:
                    block.setdefault(surface if d else region, [0, 0])[arm] += 1
                self._block(scope, dimension, block)

    def _block(self, scope: _Scope, dimension: str, block: dict[str, list[int]]) -> None:
        for value in sorted(block):
            if (dimension, value) not in scope.cells:
                rank = scope.order[dimension] = scope.order.get(dimension, 0) + 1
                scope.cells[(dimension, value)] = _Cell(dimension=dimension, value=value, rank=rank)
        ranked = sum(c[0] for c in block.values())
        holdout = sum(c[1] for c in block.values())
        for (dim, value), cell in scope.cells.items():
            if dim != dimension:
                continue
            r_a, h_a = block.get(value, (0, 0))
            r_b, h_b = ranked - r_a, holdout - h_a
            self._bet(cell, r_a + h_a, r_b + h_b, holdout, h_a)
            c = cell.counts
            c[0], c[1], c[2], c[3] = c[0] + r_a, c[1] + h_a, c[2] + r_b, c[3] + h_b

    def _bet(self, cell: _Cell, n_a: int, n_b: int, k: int, x: int) -> None:
        """One block's factor for every alternative of the mixture: the likelihood ratio of
        ``ψ_j`` against H0's edge on its side."""
        if n_a == 0 or n_b == 0 or k == 0 or k == n_a + n_b:
            return  # the block's margins leave no freedom: factor 1
        lo, hi = self.bounds
        psi = np.concatenate([lo * np.exp(-_STEPS), hi * np.exp(_STEPS), [lo, hi]])
        log_p = _fnch_log_pmf_vec(x, n_a, n_b, k, psi)
        cell.log_lr += log_p[:-2] - np.repeat(log_p[-2:], len(_STEPS))
        cell.log_e = float(special.logsumexp(cell.log_lr) - math.log(cell.log_lr.size))
        cell.bets += 1

    # -- evaluate -----------------------------------------------------------------------------
    def evaluate(self, end_ms: int, keys: set[Key] | None = None) -> list[Finding]:
        out: list[Finding] = []
        for key in sorted(self.changed if keys is None else keys & set(self.scopes)):
            scope = self.scopes[key]
            for cell in scope.cells.values():
                threshold = self.threshold(cell)
                crossed = cell.look(cell.log_e, threshold, end_ms)
                if crossed and not self._complement(scope, cell):
                    out.append(self._finding(key, scope, cell, threshold))
        self.changed.clear()
        return out

    @staticmethod
    def _complement(scope: _Scope, cell: _Cell) -> bool:
        """With exactly two cells in a dimension each is the other's complement (the same
        test): only the one with fewer users is reported."""
        pair = [c for c in scope.cells.values() if c.dimension == cell.dimension]
        if len(pair) != 2:
            return False
        other = pair[0] if pair[1] is cell else pair[1]
        return (sum(cell.counts[:2]), cell.value) > (sum(other.counts[:2]), other.value)

    def _finding(self, key: Key, scope: _Scope, cell: _Cell, threshold: float) -> Finding:
        r_a, h_a, r_b, h_b = cell.counts
        n_a, n_b = r_a + h_a, r_b + h_b
        share_a, share_b = h_a / n_a if n_a else 0.0, h_b / n_b if n_b else 0.0
        effect, ci = _risk_ratio(h_a, n_a, h_b, n_b)
        m = self.frame.TESTS * len(DIMENSIONS) * cell.rank * (cell.rank + 1)
        where = "region" if cell.dimension == "region" else "surface"
        evidence: dict[str, Any] = {
            "rule": f"the holdout arm's share of the users active in the window differs "
            f"between this {where} and the rest of the scope (the holdout assignment is per "
            f"user and random, so every {where} has the same share on an honest platform)",
            "dimension": cell.dimension,
            "value": cell.value,
            "direction": "low" if share_a < share_b else "high",
            "users": {"ranked": r_a, "holdout": h_a},
            "users_elsewhere": {"ranked": r_b, "holdout": h_b},
            "holdout_share": share_a,
            "holdout_share_ci95": list(clopper_pearson(h_a, n_a)),
            "holdout_share_elsewhere": share_b,
            "holdout_share_elsewhere_ci95": list(clopper_pearson(h_b, n_b)),
            "share_ratio": effect,
            "share_ratio_ci95": list(ci),
            "expected_holdout_users": n_a * share_b,
            "cells": {
                c.value: {
                    "ranked": c.counts[0],
                    "holdout": c.counts[1],
                    "holdout_share": c.counts[1] / max(c.counts[0] + c.counts[1], 1),
                    "log_e": c.log_e,
                }
                for c in sorted(scope.cells.values(), key=lambda c: c.value)
                if c.dimension == cell.dimension
            },
            "meaning": f"the platform's holdout arm is not the same random share of users in "
            f"every {where}: holdout users were removed from (or ranked users relabelled "
            f"as holdout in) this {where}'s logs, or the arm was not assigned at random; "
            f"amplification measured in this {where} against the holdout arm is unreliable",
            "test": {
                "name": "conditional e-process: per tick, Fisher's noncentral hypergeometric "
                "likelihood ratio of the plug-in odds ratio against H0's nearest edge, "
                "H0: holdout odds ratio (this " + where + " ÷ the rest) within [1 − ε, 1/(1 − ε)]",
                "tolerance": self.tolerance,
                "odds_ratio_bounds": list(self.bounds),
                "blocks_bet": cell.bets,
                "log_e_max": cell.max_log_e,
                "log_threshold": threshold,
                "cell_rank": cell.rank,
                "cell_weight": 1 / (len(DIMENSIONS) * cell.rank * (cell.rank + 1)),
                "tests_in_window": self.frame.TESTS,
                "alpha_share": self.frame.alpha,
            },
        }
        assert cell.crossed_ms is not None
        return self.frame.finding(
            key,
            f"holdout_share_{cell.dimension}",
            subject=f"holdout_share_{cell.dimension}:{cell.value}",
            effect=effect,
            ci=ci,
            p_value=adjusted_p(cell.max_log_e, m),
            n=n_a + n_b,
            severity=by_relative_deviation(abs(effect - 1)),
            event_ms=cell.crossed_ms,
            evidence=evidence,
        )


def _risk_ratio(h_a: int, n_a: int, h_b: int, n_b: int) -> tuple[float, tuple[float, float]]:
    """Share ratio ``(h_a/n_a) ÷ (h_b/n_b)`` with a 95 % Katz log interval (0.5 added to
    each holdout count when one is 0)."""
    if not n_a or not n_b:
        return 1.0, (0.0, math.inf)
    add = 0.5 if h_a == 0 or h_b == 0 else 0.0
    ha, hb = h_a + add, h_b + add
    na, nb = n_a + add, n_b + add
    ratio = (h_a / n_a) / (h_b / n_b) if h_b else math.inf
    log_rr = math.log((ha / na) / (hb / nb))
    se = math.sqrt(max(1 / ha - 1 / na + 1 / hb - 1 / nb, 0.0))
    return ratio, (math.exp(log_rr - 1.96 * se), math.exp(log_rr + 1.96 * se))
