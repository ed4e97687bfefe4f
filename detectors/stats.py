"""Statistics shared by the detectors.  Each function states its formula and guarantee.

All functions are pure and vectorisable by the caller; oracle tests compare them with
scipy/numpy on small inputs (``tests/detectors/test_stats.py``).
"""

from __future__ import annotations

import math
from typing import NamedTuple

from scipy import special, stats

__all__ = [
    "RatioEstimate",
    "cluster_mean_var",
    "label_share_log_e",
    "ratio_ci",
    "z_quantile",
]


def z_quantile(level: float) -> float:
    """Two-sided normal quantile: ``Φ⁻¹(1 − (1 − level)/2)``."""
    return float(stats.norm.ppf(0.5 + level / 2))


def cluster_mean_var(total: float, sumsq: float, n_users: int) -> tuple[float, float]:
    """Per-user mean and the variance of that mean, users as independent clusters.

    With per-user counts ``x_u`` over ``N`` active users (zeros included),
    ``m = S/N`` and ``Var(m) = s²/N`` where ``s² = (Q − S²/N)/(N − 1)``, ``S = Σx_u``,
    ``Q = Σx_u²``.  This is the cluster-robust (sandwich) variance: exposures of one user may
    be arbitrarily correlated; users are assumed independent.
    """
    if n_users <= 0:
        return math.nan, math.nan
    mean = total / n_users
    if n_users < 2:
        return mean, math.inf
    s2 = max(sumsq - total * total / n_users, 0.0) / (n_users - 1)
    return mean, s2 / n_users


class RatioEstimate(NamedTuple):
    ratio: float | None
    ci_low: float | None
    ci_high: float | None
    log_ratio: float | None
    se_log: float | None


def ratio_ci(s_r: float, q_r: float, n_r: int, s_h: float, q_h: float, n_h: int,
             level: float = 0.95) -> RatioEstimate:
    """Amplification ratio of per-user exposure, ranked ÷ holdout, with a cluster-robust CI.

    ``R = (S_r/N_r) / (S_h/N_h)``.  Delta method on the log (users are the clusters, the two
    arms independent)::

        Var(log R) ≈ Var(m_r)/m_r² + Var(m_h)/m_h²,   m_a = S_a/N_a

    with ``Var(m_a)`` from :func:`cluster_mean_var`; CI = ``exp(log R ± z·se)``.  Asymptotically
    equivalent to a bootstrap over users (checked in the tests).  Undefined (None) when either
    arm has no exposure of the subject.
    """
    m_r, v_r = cluster_mean_var(s_r, q_r, n_r)
    m_h, v_h = cluster_mean_var(s_h, q_h, n_h)
    if not (m_r > 0 and m_h > 0):
        return RatioEstimate(None, None, None, None, None)
    log_r = math.log(m_r / m_h)
    var = v_r / (m_r * m_r) + v_h / (m_h * m_h)
    se = math.sqrt(var) if math.isfinite(var) else math.inf
    z = z_quantile(level)
    lo = math.exp(log_r - z * se) if math.isfinite(se) else 0.0
    hi = math.exp(log_r + z * se) if math.isfinite(se) else math.inf
    return RatioEstimate(math.exp(log_r), lo, hi, log_r, se)


def label_share_log_e(k: int, n: int, tolerance: float) -> float:
    """Log e-value against ``H0: p ≤ ε`` for ``k`` unlabelled of ``n`` exposures.

    Mixture likelihood ratio with a uniform prior on ``q ∈ (ε, 1)``::

        E_n = ∫_ε^1 (q/ε)^k ((1−q)/(1−ε))^(n−k) dq / (1−ε)
            = B(k+1, n−k+1) · (1 − I_ε(k+1, n−k+1)) / (ε^k (1−ε)^(n−k+1))

    For every ``p ≤ ε`` each Bernoulli factor has expectation ≤ 1 (it is increasing in ``p``
    and equals 1 at ``p = ε``), so ``E_n`` is a non-negative supermartingale under ``H0`` and by
    Ville's inequality ``P(sup_n E_n ≥ 1/α) ≤ α``: an always-valid test under continuous
    monitoring (Ramdas et al. 2023, "Game-theoretic statistics and safe anytime-valid
    inference", §3).  ``ε`` = tolerated share of unlabelled exposures (logging slack).
    """
    if not 0 < tolerance < 1:
        raise ValueError(f"tolerance must be in (0, 1), got {tolerance}")
    if n <= 0:
        return 0.0
    a, b = k + 1, n - k + 1
    tail = float(special.betaincc(a, b, tolerance))  # 1 − I_ε(a, b) = P(Beta(a, b) > ε)
    if tail <= 0:
        return -math.inf
    return float(special.betaln(a, b) + math.log(tail)
            - k * math.log(tolerance) - (n - k + 1) * math.log1p(-tolerance))
