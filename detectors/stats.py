"""Statistics shared by the detectors.  Each function states its formula and guarantee.

All functions are pure and vectorisable by the caller; oracle tests compare them with
scipy/numpy on small inputs (``tests/detectors/test_stats.py``).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special, stats

__all__ = [
    "RatioEstimate",
    "clopper_pearson",
    "cluster_mean_var",
    "herfindahl",
    "item_cluster_var",
    "label_share_log_e",
    "log_ratio_user_var",
    "pooled_item_variance",
    "ratio_ci",
    "ratio_mean_cluster_var",
    "z_quantile",
]

Floats = NDArray[np.float64]


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


def ratio_ci(
    s_r: float, q_r: float, n_r: int, s_h: float, q_h: float, n_h: int, level: float = 0.95
) -> RatioEstimate:
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


def label_share_log_e(k: float, n: float, tolerance: float) -> float:
    """Log e-value against ``H0: p ≤ ε`` for ``k`` unlabelled of ``n`` exposures (``k`` and
    ``n`` may be effective, non-integer counts: the beta functions extend them).

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
    return float(
        special.betaln(a, b)
        + math.log(tail)
        - k * math.log(tolerance)
        - (n - k + 1) * math.log1p(-tolerance)
    )


def log_ratio_user_var(
    s_r: ArrayLike, q_r: ArrayLike, n_r: ArrayLike, s_h: ArrayLike, q_h: ArrayLike, n_h: ArrayLike
) -> tuple[Floats, Floats]:
    """Vectorised :func:`ratio_ci` core: ``(log R, Var_user(log R))`` per subject.

    ``log R = log(S_r/N_r) − log(S_h/N_h)``; ``Var = Var(m_r)/m_r² + Var(m_h)/m_h²`` with the
    user-clustered ``Var(m) = s²/N``, ``s² = (Q − S²/N)/(N − 1)``, floored at the Poisson
    value ``m/N`` (an arm whose few users happen to have equal counts would otherwise claim
    near-zero variance).  NaN where an arm has no exposure or fewer than two users.
    """
    s_r, q_r, n_r = (np.asarray(a, dtype=float) for a in (s_r, q_r, n_r))
    s_h, q_h, n_h = (np.asarray(a, dtype=float) for a in (s_h, q_h, n_h))
    with np.errstate(divide="ignore", invalid="ignore"):
        m_r, m_h = s_r / n_r, s_h / n_h
        v_r = np.maximum((q_r - s_r * s_r / n_r) / (n_r - 1), m_r) / n_r
        v_h = np.maximum((q_h - s_h * s_h / n_h) / (n_h - 1), m_h) / n_h
        log_r = np.log(m_r / m_h)
        var = v_r / (m_r * m_r) + v_h / (m_h * m_h)
    bad = (s_r <= 0) | (s_h <= 0) | (n_r < 2) | (n_h < 2)
    return np.where(bad, np.nan, log_r), np.where(bad, np.nan, var)


def item_cluster_var(
    s_r: ArrayLike, s_h: ArrayLike, rr: ArrayLike, rh: ArrayLike, hh: ArrayLike, items: ArrayLike
) -> Floats:
    """Item-clustered (CR1) variance of ``log R`` from the item moments.

    Linearising ``log R = log Σ_i r_i − log Σ_i h_i + const`` with items as independent
    clusters (``r_i``, ``h_i`` = item ``i``'s exposures per arm; ``S_a`` their totals)::

        V_item = G/(G−1) · Σ_i (r_i/S_r − h_i/S_h)²
               = G/(G−1) · (Σr²/S_r² − 2 Σrh/(S_r S_h) + Σh²/S_h²)

    (``rr = Σr²``, ``rh = Σrh``, ``hh = Σh²``, ``G`` items).  Reference: Cameron & Miller
    2015, "A practitioner's guide to cluster-robust inference", J. Human Resources 50(2),
    §II–III.  NaN where an arm is empty or ``G < 2``.
    """
    s_r, s_h, rr, rh, hh, g = (np.asarray(a, dtype=float) for a in (s_r, s_h, rr, rh, hh, items))
    with np.errstate(divide="ignore", invalid="ignore"):
        v = (rr / (s_r * s_r) - 2 * rh / (s_r * s_h) + hh / (s_h * s_h)) * g / (g - 1)
    return np.where((s_r > 0) & (s_h > 0) & (g >= 2), np.maximum(v, 0.0), np.nan)


def herfindahl(sumsq: ArrayLike, total: ArrayLike) -> Floats:
    """Item concentration ``H = (Σ_i c_i² − Σ_i c_i) / (Σ_i c_i)²`` (clipped to [0, 1]).

    ``1/H`` is the effective number of items behind a subject's exposure; subtracting
    ``Σ c_i`` makes ``H`` unbiased for ``Σ_i p_i²`` when item counts are Poisson.
    """
    ss, tot = np.asarray(sumsq, dtype=float), np.asarray(total, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = (ss - tot) / (tot * tot)
    return np.where(tot > 0, np.clip(h, 0.0, 1.0), np.nan)


def pooled_item_variance(
    v_item: ArrayLike, v_poisson: ArrayLike, h: ArrayLike, prior: float, prior_weight: float
) -> float:
    """Between-item variance ``σ²`` of log amplification, pooled over subjects.

    Random-effects model: item ``i`` of a subject has amplification ``exp(a + ε_i)``, the
    ``ε_i`` independent with ``Var(e^ε)/E(e^ε)² = σ²``; then the item part of
    ``Var(log R)`` is ``σ² H`` (``H`` = :func:`herfindahl` of the subject's ranked-arm item
    counts).  Method of moments over subjects, the Poisson part removed::

        σ̂² = (Σ_s (V_item,s − V_pois,s) + w₀ σ₀²) / (Σ_s H_s + w₀)

    with a weak prior ``σ₀²`` worth ``w₀`` units of ``H`` (so a platform with few subjects
    falls back on it).  Precise where per-subject item-clustered variances are not: it pools
    every item of every subject (DerSimonian & Laird 1986 style moment estimator).
    """
    vi, vp, hv = (np.asarray(a, dtype=float) for a in (v_item, v_poisson, h))
    ok = np.isfinite(vi) & np.isfinite(vp) & np.isfinite(hv)
    num = float(np.sum(vi[ok] - vp[ok])) + prior_weight * prior
    den = float(np.sum(hv[ok])) + prior_weight
    return max(num / den, 0.0) if den > 0 else prior


def ratio_mean_cluster_var(
    a: ArrayLike, n: ArrayLike, a2: ArrayLike, an: ArrayLike, n2: ArrayLike, g: ArrayLike
) -> tuple[Floats, Floats]:
    """Mean per entry ``θ̂ = Σ_j a_j / Σ_j n_j`` over clusters ``j`` and its cluster-robust
    variance, from the running moments ``a = Σa_j``, ``n = Σn_j``, ``a2 = Σa_j²``,
    ``an = Σa_j n_j``, ``n2 = Σn_j²`` and the number of clusters ``g``::

        Var(θ̂) = g/(g−1) · Σ_j (a_j − θ̂ n_j)² / n²
               = g/(g−1) · (a2 − 2θ̂·an + θ̂²·n2) / n²

    (the linearised ratio estimator with clusters as independent units; Cameron & Miller
    2015, §II.C).  NaN where ``n = 0`` or ``g < 2``.
    """
    a, n, a2, an, n2, g = (np.asarray(x, dtype=float) for x in (a, n, a2, an, n2, g))
    with np.errstate(divide="ignore", invalid="ignore"):
        theta = a / n
        num = np.maximum(a2 - 2 * theta * an + theta * theta * n2, 0.0)
        var = num / (n * n) * g / (g - 1)
    ok = (n > 0) & (g >= 2)
    return np.where(ok, theta, np.nan), np.where(ok, var, np.nan)


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper–Pearson) two-sided interval for a binomial share ``k/n``::

        lo = B⁻¹(a; k, n − k + 1),  hi = B⁻¹(1 − a; k + 1, n − k),  a = (1 − level)/2

    (``lo = 0`` when ``k = 0``, ``hi = 1`` when ``k = n``; ``[0, 1]`` when ``n = 0``).
    Clopper & Pearson 1934, Biometrika 26(4).
    """
    if n == 0:
        return 0.0, 1.0
    a = (1 - level) / 2
    lo = 0.0 if k == 0 else float(stats.beta.ppf(a, k, n - k + 1))
    hi = 1.0 if k == n else float(stats.beta.ppf(1 - a, k + 1, n - k))
    return lo, hi
