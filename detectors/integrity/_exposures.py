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
    per_user: dict[str, int] = field(default_factory=dict)
    total: int = 0
    sumsq: int = 0

    def add(self, user: str) -> None:
        x = self.per_user.get(user, 0)
        self.per_user[user] = x + 1
        self.total += 1
        self.sumsq += 2 * x + 1

    def mean_var(self) -> tuple[float, float]:
        """Exposures per active user ``m = S/N`` and ``Var(m)`` with users as clusters
        (``s²/N``, floored at the Poisson ``m/N``)."""
        n = len(self.per_user)
        m = self.total / n
        s2 = max(self.sumsq - self.total * self.total / n, 0.0) / (n - 1)
        return m, max(s2, m) / n


@dataclass
class _State(Running):
    arms: list[list[_Arm]] = field(default_factory=lambda: [[_Arm(), _Arm()], [_Arm(), _Arm()]])
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
            state.arms[period == "window"][arm].add(e.user)
            self.changed.add(key)

    def _estimate(self, state: _State) -> tuple[float, float] | None:
        """``(log Δ̂, V)``, or None until every arm of both periods has ``min_users``.

        ``V = Σ_arms G/(G−1) Σ_u ψ_u²`` with the linearised influence of user ``u`` on
        ``log Δ̂``: ``ψ_u = ±[(x_uw − m_w)/S_w − (x_ub − m_b)/S_b]`` (a term only for a
        period in which ``u`` is active; ``+`` for holdout users, ``−`` for ranked), users as
        clusters, paired across the periods (a user's activity in both periods is one
        cluster, so its correlation is used, not assumed away)."""
        base, win = state.arms
        if min(len(a.per_user) for a in (*base, *win)) < max(self.min_users, 2):
            return None
        log_d = 0.0
        var = 0.0
        for arm, sign in ((0, -1.0), (1, 1.0)):
            w, b = win[arm], base[arm]
            m_w, m_b = w.total / len(w.per_user), b.total / len(b.per_user)
            log_d += sign * (math.log(m_w) - math.log(m_b))
            infl: dict[str, float] = {}
            for u, x in w.per_user.items():
                infl[u] = (x - m_w) / w.total
            for u, x in b.per_user.items():
                infl[u] = infl.get(u, 0.0) - (x - m_b) / b.total
            g = len(infl)
            var += g / (g - 1) * math.fsum(v * v for v in infl.values())
            # the Poisson floor of each period's mean (few users with equal counts)
        floor = sum(1 / a.total for a in (*base, *win))
        return log_d, float(guard_variance(var, floor)[0])

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
        for p, arms in zip(_PERIODS, state.arms, strict=True):
            row: dict[str, Any] = {}
            for name, a in zip(_ARMS, arms, strict=True):
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
        n = sum(a.total for arms in state.arms for a in arms)
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
