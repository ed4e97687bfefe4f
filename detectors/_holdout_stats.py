"""Statistics of the holdout comparison, as pure functions of additive sums (merged stage).

Everything here takes arrays of sums that are additive over users (user-partitioned workers
add their partial sums) or over items (per-item counts added first, then squared), and
returns estimates; :mod:`detectors.holdout_shift` drives them tick by tick.  Notation for one
account or subject ``s`` on one platform, in one window and scope, arm ``a ∈ {r, h}``
(ranked, holdout), period ``P ∈ {B, W}`` (baseline, window so far):

* ``S_aP`` — exposures of ``s``'s items; ``T_aP`` — exposures of *all* items in scope
  (the arm's traffic); ``share_aP = S_aP / T_aP``.
* The **share difference in differences** ::

      D = log(share_rW / share_rB) − log(share_hW / share_hB)

  is the change, from the baseline to the window, of how much more of the ranked feed than of
  the reverse-chronological holdout feed goes to ``s``.  Normalising by each arm's own
  traffic cancels platform-wide volume changes (more users, more sessions, the daily cycle
  of activity); the holdout arm cancels what changes the *supply* of ``s``'s items (posting
  more, gaining followers), since the same follow graph feeds both arms.
* ``x = log(share_rB / share_hB)``: the baseline (organic) log amplification of ``s``.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats

__all__ = [
    "PairedSums",
    "common_shift",
    "Reference",
    "huber_chi2_mean",
    "item_variance",
    "paired_user_var",
    "platform_reference",
    "poisson_var",
    "share_did",
]

Floats = NDArray[np.float64]


def share_did(
    s_rw: ArrayLike,
    t_rw: ArrayLike,
    s_rb: ArrayLike,
    t_rb: ArrayLike,
    s_hw: ArrayLike,
    t_hw: ArrayLike,
    s_hb: ArrayLike,
    t_hb: ArrayLike,
) -> tuple[Floats, Floats]:
    """``(D, x)``: the share difference in differences and the baseline log amplification
    (module docstring); NaN where a count is zero.  Each count enters as ``log(S + ½)``:
    ``E log(S + ½) = log λ + O(λ⁻²)`` for Poisson ``S`` where ``E log S`` is ``O(λ⁻¹)`` off
    (Anscombe 1948, Biometrika 35), so small counts early in a window do not bias ``D``."""
    a = [np.asarray(v, dtype=float) for v in (s_rw, t_rw, s_rb, t_rb, s_hw, t_hw, s_hb, t_hb)]
    s_rw, t_rw, s_rb, t_rb, s_hw, t_hw, s_hb, t_hb = a
    with np.errstate(divide="ignore", invalid="ignore"):
        x = np.log((s_rb + 0.5) / t_rb) - np.log((s_hb + 0.5) / t_hb)
        d = np.log((s_rw + 0.5) / t_rw) - np.log((s_hw + 0.5) / t_hw) - x
    ok = (s_rw > 0) & (s_rb > 0) & (s_hw > 0) & (s_hb > 0)
    return np.where(ok, d, np.nan), np.where(ok, x, np.nan)


def poisson_var(s_rw: ArrayLike, s_rb: ArrayLike, s_hw: ArrayLike, s_hb: ArrayLike) -> Floats:
    """``1/S_rW + 1/S_rB + 1/S_hW + 1/S_hB``: the variance of ``D`` if every exposure were an
    independent Poisson event — the floor of the central variance guard (no count statistic
    is more precise than its counts)."""
    with np.errstate(divide="ignore"):
        return sum(
            (1 / np.asarray(v, dtype=float) for v in (s_rw, s_rb, s_hw, s_hb)),
            np.zeros(np.shape(s_rw)),
        )


class PairedSums(NamedTuple):
    """Per-arm sums over users ``u`` of one subject (arrays over subjects) for the paired,
    user-clustered variance.  ``x``/``y`` = the user's exposures of the subject in the
    baseline / window so far, ``b``/``w`` = the user's exposures of anything in scope in the
    baseline / window.  All additive over disjoint sets of users."""

    x: Floats  # Σ x   (= S_B)
    y: Floats  # Σ y   (= S_W)
    xx: Floats  # Σ x²
    yy: Floats  # Σ y²
    xy: Floats  # Σ x y
    xb: Floats  # Σ x b
    xw: Floats  # Σ x w
    yb: Floats  # Σ y b
    yw: Floats  # Σ y w
    b: Floats  # Σ b   (= T_B, the arm's baseline traffic)
    w: Floats  # Σ w   (= T_W)
    bb: Floats  # Σ b²
    ww: Floats  # Σ w²
    bw: Floats  # Σ b w
    users: Floats  # users with any exposure in scope in either period


def _arm_influence_var(p: PairedSums) -> Floats:
    """``Σ_u φ_u²`` with ``φ_u = y_u/Y − w_u/W − x_u/X + b_u/B`` (the linearisation of this
    arm's ``log(Y/W) − log(X/B)``), times ``G/(G − 1)``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        y, w, x, b = p.y, p.w, p.x, p.b
        v = (
            p.yy / (y * y)
            + p.ww / (w * w)
            + p.xx / (x * x)
            + p.bb / (b * b)
            - 2 * p.yw / (y * w)
            - 2 * p.xy / (x * y)
            + 2 * p.yb / (y * b)
            + 2 * p.xw / (x * w)
            - 2 * p.bw / (b * w)
            - 2 * p.xb / (x * b)
        )
        g = p.users
        v = v * g / (g - 1)
    return np.where((g >= 2) & (x > 0) & (y > 0), np.maximum(v, 0.0), np.nan)


def paired_user_var(ranked: PairedSums, holdout: PairedSums) -> Floats:
    """User-clustered variance of ``D``, each user paired with himself across the periods.

    ``D`` is a smooth function of per-arm totals; linearising (delta method) with users as
    independent clusters and the two arms independent (users are randomised to arms)::

        Var(D) = Σ_{u∈r} φ_u² + Σ_{u∈h} φ_u²,
        φ_u = y_u/Y − w_u/W − x_u/X + b_u/B

    A user who sees much of the subject in the baseline tends to in the window too: the
    covariance of ``y_u/Y`` and ``x_u/X`` is subtracted — the per-user paired comparison
    (equivalently, the regression adjustment of each user's window exposure on his own
    baseline exposure, CUPED: Deng, Xu, Kohavi & Walker 2013, WSDM).  ``w_u/W`` and ``b_u/B``
    remove each user's own activity (sessions) from his share: a user who happened to open
    twice as many sessions sees twice as much of everything.  Cluster-robust (sandwich) form,
    Cameron & Miller 2015 (J. Human Resources 50(2)), with the ``G/(G−1)`` correction.
    Expanded in the sums of :class:`PairedSums` so that partial sums of user partitions add.
    """
    return _arm_influence_var(ranked) + _arm_influence_var(holdout)


class Reference(NamedTuple):
    """The platform-wide change, fitted across accounts: ``D_a ≈ c + γ (x_a − x̄)``."""

    c: float
    gamma: float
    xbar: float
    var_c: float
    var_gamma: float
    sd_x: float
    n: int


def platform_reference(
    d: ArrayLike,
    x: ArrayLike,
    v: ArrayLike,
    vx: ArrayLike,
    *,
    huber_k: float = 2.5,
    iterations: int = 3,
    min_spread: float = 0.25,
) -> Reference:
    """Fit the platform-wide change ``D_a = c + γ (x*_a − x̄) + e_a`` across accounts.

    A change that moves every account alike (more items per session, a new ranking model
    that is more or less selective for everyone) shows in every account's ``D``: as a shift
    ``c`` and, for a model that sharpens or flattens the ranking, a slope ``γ`` in the
    account's organic amplification ``x*``.  Each subject is then tested against the fitted
    change at its own level, not against zero.

    ``x_a`` is measured with error: its baseline noise (variance ``vx_a``) also enters ``D_a``
    with the opposite sign (``D`` subtracts the same baseline), which would fake a negative
    slope (regression to the mean).  Method-of-moments errors-in-variables correction
    (Fuller 1987, *Measurement Error Models*, §1.2; weighted)::

        S_xx = Σ w (x − x̄)² − Σ w vx,     S_xd = Σ w (x − x̄)(D − D̄) + Σ w vx,
        γ = S_xd / S_xx,   c = D̄

    with weights ``w = 1/v`` (``v`` = the null variance of ``D_a``) and Huber reweighting of
    standardised residuals beyond ``huber_k`` (a minority of boosted accounts cannot move the
    reference; Huber 1981).  ``γ = 0`` when the corrected spread of ``x`` is below
    ``min_spread`` of its raw spread (the slope is not identified).  Variances: ``1/Σw`` for
    ``c`` and ``1/S_xx`` for ``γ`` (weighted least squares, known variances).
    """
    return _platform_reference(
        np.asarray(d, dtype=float),
        np.asarray(x, dtype=float),
        np.asarray(v, dtype=float),
        np.asarray(vx, dtype=float),
        huber_k,
        iterations,
        min_spread,
    )


def _platform_reference(
    d: Floats, x: Floats, v: Floats, vx: Floats, huber_k: float, iterations: int, min_spread: float
) -> Reference:
    ok = np.isfinite(d) & np.isfinite(x) & np.isfinite(v) & (v > 0) & np.isfinite(vx)
    n = int(ok.sum())
    if n < 3:
        return Reference(0.0, 0.0, 0.0, math.inf, math.inf, 0.0, n)
    d, x, v, vx = d[ok], x[ok], v[ok], vx[ok]
    w0 = 1 / v
    h = np.ones(n)
    c = gamma = xbar = 0.0
    sxx = 0.0
    for _ in range(iterations):
        w = w0 * h
        sw = float(w.sum())
        xbar = float((w * x).sum() / sw)
        dbar = float((w * d).sum() / sw)
        raw = float((w * (x - xbar) ** 2).sum())
        sxx = raw - float((w * vx).sum())
        sxd = float((w * (x - xbar) * (d - dbar)).sum()) + float((w * vx).sum())
        gamma = sxd / sxx if sxx > min_spread * raw and sxx > 0 else 0.0
        c = dbar
        resid = (d - c - gamma * (x - xbar)) / np.sqrt(v)
        h = np.minimum(1.0, huber_k / np.maximum(np.abs(resid), 1e-12))
    w = w0 * h
    var_c = 1 / float(w.sum())
    var_gamma = 1 / sxx if gamma != 0.0 and sxx > 0 else 0.0
    sd_x = math.sqrt(max(sxx, 0.0) / float(w.sum()))
    return Reference(c, gamma, xbar, var_c, var_gamma, sd_x, n)


@functools.lru_cache(maxsize=64)  # one k² per detector: scipy's cdf costs ~0.1 ms a call
def huber_chi2_mean(k2: float) -> float:
    """``E[min(χ²₁, k²)]`` = ``P(χ²₃ ≤ k²) + k² P(χ²₁ > k²)`` (the consistency constant of
    the truncated moment equation in :func:`item_variance`)."""
    return float(stats.chi2.cdf(k2, 3) + k2 * stats.chi2.sf(k2, 1))


def item_variance(
    resid: ArrayLike,
    u: ArrayLike,
    k: ArrayLike,
    *,
    n_params: int = 2,
    k2: float = 9.0,
    prior: float = 0.0,
    prior_weight: float = 0.0,
    median: bool = False,
) -> float:
    """Between-item variance ``σ²`` of log amplification, pooled over accounts.

    Model: ``Var(resid_a) = u_a + σ² K_a`` (``u_a`` = the user-level variance, ``K_a`` = the
    account's item concentration summed over the periods: which few items an account posted,
    their quality and timing, move its ranked share beyond user sampling).  Paule–Mandel
    moment equation (Paule & Mandel 1982, J. Res. NBS 87(5); recommended for heterogeneous
    within-unit variances by Veroniki et al. 2016, Res. Synth. Methods 7(1)), made robust by
    truncating each standardised square at ``k2`` (a boosted account cannot inflate it
    without bound)::

        Σ_a min(r_a² / (u_a + σ² K_a), k2) = (n − p) · E[min(χ²₁, k2)]

    solved for ``σ² ≥ 0`` by bisection (the left side decreases in ``σ²``).  With
    ``median=True`` the equation is ``median_a r_a² / (u_a + σ² K_a) = χ²₁(½) = 0.4549``
    instead: consistent too, and unmoved by up to half the accounts being outliers (boosted
    subjects on a platform with few accounts).  A weak prior
    (``prior`` worth ``prior_weight`` accounts) stabilises platforms with few accounts.
    Unlike the median-based ``median(r² − u)/0.4549`` (biased: it equals
    ``σ²K − 1.2·median(u)`` under normality, often 0), this is consistent whatever the
    ``u_a``.
    """
    r, u, kk = (np.asarray(a, dtype=float) for a in (resid, u, k))
    ok = np.isfinite(r) & np.isfinite(u) & (u > 0) & np.isfinite(kk) & (kk >= 0)
    r, u, kk = r[ok], u[ok], kk[ok]
    n = r.size
    target = (n - n_params) * huber_chi2_mean(k2)
    if n <= n_params or target <= 0:
        return prior

    if median:
        target = 0.4549364231195724 * n

        def lhs(s2: float) -> float:
            return float(np.median(r * r / (u + s2 * kk))) * n
    else:

        def lhs(s2: float) -> float:
            return float(np.minimum(r * r / (u + s2 * kk), k2).sum())

    if lhs(0.0) <= target:
        est = 0.0
    else:
        lo, hi = 0.0, 1.0
        while lhs(hi) > target and hi < 1e6:
            hi *= 4
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if lhs(mid) > target else (lo, mid)
        est = hi
    return (n * est + prior_weight * prior) / (n + prior_weight) if prior_weight else est


def common_shift(
    d: ArrayLike, v: ArrayLike, *, huber_k: float = 2.0, iterations: int = 10
) -> tuple[float, float]:
    """``(c, Var c)``: the change every control account shares, a Huber M-estimate of
    location with known variances ``v`` (weights ``1/v``, standardised residuals beyond
    ``huber_k`` down-weighted; Huber 1981, *Robust Statistics*, §3.2).  Boosting some accounts
    takes ranked-feed share from all the others: ``c`` is that displacement (and anything
    else common to all accounts), subtracted from each subject before it is tested.
    ``Var c ≈ 1/Σ w`` (``w`` = the final weights ``h/v``).  ``(0, inf)`` without data."""
    da, va = np.asarray(d, dtype=float), np.asarray(v, dtype=float)
    ok = np.isfinite(da) & np.isfinite(va) & (va > 0)
    if ok.sum() < 3:
        return 0.0, math.inf
    da, va = da[ok], va[ok]
    w = 1 / va
    c = float(np.median(da))
    h = np.ones_like(da)
    for _ in range(iterations):
        r = (da - c) / np.sqrt(va)
        h = np.minimum(1.0, huber_k / np.maximum(np.abs(r), 1e-12))
        c = float((w * h * da).sum() / (w * h).sum())
    return c, 1 / float((w * h).sum())
