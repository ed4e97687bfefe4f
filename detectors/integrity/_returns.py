"""The returning-users test: do the baseline's users come back to the window in proportion
to their arms?  (Package docstring, "Holdout share", returning users.)"""

from __future__ import annotations

import math

__all__ = ["ReturnTest"]

_PSEUDO = 5.0  # prior pseudo-count of the plug-in estimate (shrinks the first bets to ρ = 1)
_CLIP = (0.02, 50.0)


class ReturnTest:
    """A test supermartingale over the sequence of returning baseline users.

    Under H0 (the arm is random, and changes a user's propensity to return by a factor
    ``ρ ∈ [1 − ε, 1 + ε]`` at most), the next baseline user to appear in the window is a
    holdout user with probability ``p(ρ) = ρH / (ρH + R)`` (``H``, ``R``: baseline users of
    each arm not yet returned) — whatever the users' activity levels, because the remaining
    users of both arms are exchangeable given the past.  Each returner multiplies the
    process by a likelihood ratio against the least favourable null: with the predictable
    plug-in ``r̂ = (h + c) / (ĥ + c)`` (``h`` holdout returners so far, ``ĥ`` their expected
    number at ``ρ = 1``, ``c`` = 5), the alternative ``q = p(r̂)``; if ``r̂ < 1 − ε`` the
    factor is ``(q/p_lo)^x ((1−q)/(1−p_lo))^(1−x)`` with ``p_lo = p(1 − ε)`` (expectation
    ≤ 1 for every ``p ≥ p_lo``), mirrored with ``p_hi = p(1 + ε)`` if ``r̂ > 1 + ε``, else 1.
    A product of such factors is a test supermartingale under H0 (plug-in e-process:
    Waudby-Smith & Ramdas 2024, "Estimating means of bounded random variables by
    betting", JRSS B, §5)."""

    __slots__ = ("expected", "log_e", "pool", "returned", "tolerance")

    def __init__(self, tolerance: float) -> None:
        self.tolerance = tolerance
        self.pool = [0, 0]  # ranked, holdout baseline users not yet returned
        self.returned = [0, 0]  # returners by the arm logged on their return
        self.expected = 0.0  # Σ p(1) over returners so far
        self.log_e = 0.0

    def add(self, arm: int) -> None:
        """A baseline user (before the window starts)."""
        self.pool[arm] += 1

    def back(self, baseline_arm: int, arm: int) -> None:
        """A baseline user's first event in the window, logged in ``arm``."""
        ranked, holdout = self.pool
        if ranked > 0 and holdout > 0:
            rate = (self.returned[1] + _PSEUDO) / (self.expected + _PSEUDO)
            rate = min(max(rate, _CLIP[0]), _CLIP[1])
            eps = self.tolerance
            if rate < 1 - eps or rate > 1 + eps:
                rho = 1 - eps if rate < 1 - eps else 1 + eps
                p = rho * holdout / (rho * holdout + ranked)
                q = rate * holdout / (rate * holdout + ranked)
                self.log_e += math.log(q / p) if arm else math.log((1 - q) / (1 - p))
            self.expected += holdout / (holdout + ranked)
        self.pool[baseline_arm] = max(self.pool[baseline_arm] - 1, 0)
        self.returned[arm] += 1
