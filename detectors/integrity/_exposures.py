"""The holdout arm's exposures per active user, against the ranked arm's, window vs baseline
(package docstring, "Holdout share of exposures")."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from detectors.sequential import adjusted_p, cs_radius, guard_variance, mixture_log_e
from detectors.severity import by_relative_deviation
from monitor.core.contract import Exposure
from monitor.core.records import Finding

from ._frame import Frame, Key, Running, Scope

__all__ = ["ExposureShareTest"]

_ARMS = ("ranked", "holdout")
_PERIODS = ("baseline", "window")


@dataclass
class _Arm:
    """One arm in one period: per-user exposures, ``S = Σx``, ``Q = Σx²``."""

    per_user: dict[str, int] = field(default_factory=dict)
    total: int = 0
    sumsq: int = 0


@dataclass
class _Pair:
    """One arm in both periods, with the cross moments over the users active in both:
    ``P = Σ x_w x_b``, ``X_p = Σ x_p`` and their number ``B`` (O(1) per exposure)."""

    periods: tuple[_Arm, _Arm] = field(default_factory=lambda: (_Arm(), _Arm()))
    cross: int = 0
    both_sums: list[int] = field(default_factory=lambda: [0, 0])
    both: int = 0

    def add(self, period: int, user: str) -> None:
        own, other = self.periods[period], self.periods[1 - period]
        x = own.per_user.get(user, 0)
        own.per_user[user] = x + 1
        own.total += 1
        own.sumsq += 2 * x + 1
        y = other.per_user.get(user, 0)
        if y:
            self.cross += y
            self.both_sums[period] += 1
            if not x:
                self.both += 1
                self.both_sums[1 - period] += y

    def log_change_var(self) -> tuple[float, float]:
        """``log(m_w/m_b)`` and ``G/(G−1) Σ_u ψ_u²`` with
        ``ψ_u = (x_uw − m_w)/S_w − (x_ub − m_b)/S_b`` (a term per period ``u`` is active in),
        from the moments: ``Σ_p (Q_p − S_p²/N_p)/S_p² − 2 C/(S_w S_b)``,
        ``C = P − m_b X_w − m_w X_b + m_w m_b B``, ``G = N_w + N_b − B``."""
        (b, w) = self.periods
        n_b, n_w = len(b.per_user), len(w.per_user)
        m_b, m_w = b.total / n_b, w.total / n_w
        ss = (w.sumsq - w.total * m_w) / w.total**2 + (b.sumsq - b.total * m_b) / b.total**2
        x_b, x_w = self.both_sums
        c = self.cross - m_b * x_w - m_w * x_b + m_w * m_b * self.both
        ss -= 2 * c / (w.total * b.total)
        g = n_w + n_b - self.both
        return math.log(m_w / m_b), g / (g - 1) * max(ss, 0.0)


@dataclass
class _State(Running):
    arms: tuple[_Pair, _Pair] = field(default_factory=lambda: (_Pair(), _Pair()))  # r, h
    estimate: tuple[float, float] | None = None  # (log Δ, V) at the latest look


class ExposureShareTest:
    """Subject ``holdout_exposure_share``."""

    def __init__(self, frame: Frame, *, tolerance: float, tau: float, min_users: int) -> None:
        self.frame = frame
        self.tolerance = tolerance
        self.tau = tau
        self.min_users = min_users
        self.states: dict[Key, _State] = {}
        self.changed: set[Key] = set()

    @property
    def margin(self) -> float:
        """H0's half-width on the log scale: ``δ = −log(1 − ε)``."""
        return -math.log1p(-self.tolerance)

    def exposure(self, e: Exposure, scopes: list[Scope]) -> None:
        ts: int = e.ts  # type: ignore[assignment]
        arm = 1 if e.arm == "holdout" else 0
        for scope in scopes:
            period = scope.period(ts)
            if period is None:
                continue
            key = (e.platform, scope.window.id)
            state = self.states.get(key)
            if state is None:
                state = self.states[key] = _State()
            state.arms[arm].add(int(period == "window"), e.user)
            self.changed.add(key)

    def _estimate(self, state: _State) -> tuple[float, float] | None:
        """``(log Δ̂, V)``, or None until every arm of both periods has ``min_users``.

        ``V`` = the sum over the arms of :meth:`_Pair.log_change_var`: users as clusters,
        paired across the periods (a user's activity in both periods is one cluster, so
        its correlation is used, not assumed away), floored at the Poisson ``Σ 1/S``."""
        arms = [a for pair in state.arms for a in pair.periods]
        if min(len(a.per_user) for a in arms) < max(self.min_users, 2):
            return None
        (ranked, v_r), (holdout, v_h) = (pair.log_change_var() for pair in state.arms)
        floor = sum(1 / a.total for a in arms)
        return holdout - ranked, float(guard_variance(v_r + v_h, floor)[0])

    def evaluate(self, end_ms: int, keys: set[Key] | None = None) -> list[Finding]:
        out = []
        threshold = self.frame.threshold
        for key in sorted(self.changed if keys is None else keys & set(self.states)):
            state = self.states[key]
            est = self._estimate(state)
            if est is None:
                continue
            state.estimate = est
            log_e, _ = mixture_log_e(est[0], est[1], self.tau, self.margin)
            if state.look(float(log_e[0]), threshold, end_ms):
                out.append(self._finding(key, state, threshold))
        self.changed.clear()
        return out

    def _finding(self, key: Key, state: _State, threshold: float) -> Finding:
        assert state.estimate is not None and state.crossed_ms is not None
        log_d, var = state.estimate
        m = self.frame.TESTS
        radius = float(cs_radius(var, self.tau, self.frame.alpha / m))
        se = math.sqrt(var)
        effect = math.exp(log_d)
        periods: dict[str, Any] = {}
        for i, p in enumerate(_PERIODS):
            row: dict[str, Any] = {}
            for name, pair in zip(_ARMS, state.arms, strict=True):
                a = pair.periods[i]
                n = len(a.per_user)
                row[name] = {
                    "exposures": a.total,
                    "active_users": n,
                    "exposures_per_user": a.total / n,
                }
            row["holdout_per_user_ratio"] = (
                row["holdout"]["exposures_per_user"] / row["ranked"]["exposures_per_user"]
            )
            periods[p] = row
        low = effect < 1
        evidence: dict[str, Any] = {
            "rule": "holdout exposures per active holdout user ÷ ranked exposures per active "
            "ranked user changed between the baseline and the window by more than the "
            "tolerance",
            "statistic": "Δ = (holdout exposures per active holdout user ÷ ranked exposures "
            "per active ranked user) in the window ÷ the same in the baseline",
            "ratio_change": effect,
            "ratio_change_ci95": [math.exp(log_d - 1.96 * se), math.exp(log_d + 1.96 * se)],
            "ratio_change_cs": [math.exp(log_d - radius), math.exp(log_d + radius)],
            "direction": "low" if low else "high",
            "periods": periods,
            "meaning": (
                "In the window the platform's log shows "
                + ("fewer" if low else "more")
                + " exposures per holdout user, relative to the ranked arm, than in the "
                "baseline. Either the log of the holdout arm's exposures was "
                + ("thinned" if low else "padded")
                + " per user (records deleted or added, users kept), or the engagement of "
                "one arm changed platform-wide (every account alike) between the periods. "
                "Every holdout comparison of this window rests on these exposures and is "
                "affected: each ranked ÷ holdout amplification ratio of the window (the "
                "amplification table, holdout_shift findings) is "
                + ("inflated" if low else "deflated")
                + f" by about ×{1 / effect:.2f} for every account alike, and a finding that "
                "rests on the holdout arm should be read with this in mind."
            ),
            "affects": "every holdout comparison of the window (amplification table, "
            "holdout_shift, reach ratios)",
            "test": {
                "name": "normal-mixture e-process on log Δ, users as clusters in each arm "
                "and period, H0: |log Δ| ≤ δ = −log(1 − tolerance)",
                "tolerance_relative": self.tolerance,
                "margin_log": self.margin,
                "tau": self.tau,
                "statistic_log_effect": log_d,
                "se": se,
                "log_e_max": state.max_log_e,
                "log_threshold": threshold,
                "tests_in_window": m,
                "alpha_share": self.frame.alpha,
            },
        }
        n = sum(a.total for pair in state.arms for a in pair.periods)
        return self.frame.finding(
            key,
            "holdout_exposure_share",
            effect=effect,
            ci=(math.exp(log_d - radius), math.exp(log_d + radius)),
            p_value=adjusted_p(state.max_log_e, m),
            n=n,
            severity=by_relative_deviation(abs(effect - 1)),
            event_ms=state.crossed_ms,
            evidence=evidence,
        )
