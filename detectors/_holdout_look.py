"""One look of the holdout comparison: merged sums of a cell → estimates and variances.

Pure functions of :class:`detectors._holdout_sums.CellSums` (the merged stage); see
:mod:`detectors.holdout_shift` for the statistic and its guarantee.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from detectors._holdout_stats import PairedSums, paired_user_var
from detectors._holdout_sums import ARM_FIELDS, HOUR_MS, PAIRED_FIELDS, CellSums, WindowInfo

__all__ = [
    "LookArrays",
    "hour_weights",
    "look_arrays",
    "membership",
    "overdispersion",
    "platform_traffic",
    "with_columns",
]

Floats = NDArray[np.float64]


def baseline_hours_of_day(info: WindowInfo) -> Floats:
    """Hours of baseline per UTC hour of day (fractional at the edges)."""
    d = np.zeros(24)
    t = (info.b0 // HOUR_MS) * HOUR_MS
    while t < info.b1:
        lo, hi = max(t, info.b0), min(t + HOUR_MS, info.b1)
        d[(t // HOUR_MS) % 24] += (hi - lo) / HOUR_MS
        t += HOUR_MS
    return d


def hour_weights(info: WindowInfo, start_ms: int, end_ms: int) -> Floats:
    """Weights ``w_h`` = (hours of ``[start, end)`` at UTC hour of day ``h``) ÷ (baseline
    hours at ``h``): the baseline re-weighted to the same hours of day as the window so far."""
    n = np.zeros(24)
    t = (start_ms // HOUR_MS) * HOUR_MS
    while t < end_ms:
        lo, hi = max(t, start_ms), min(t + HOUR_MS, end_ms)
        if hi > lo:
            n[(t // HOUR_MS) % 24] += (hi - lo) / HOUR_MS
        t += HOUR_MS
    d = baseline_hours_of_day(info)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(d > 0, n / d, 0.0)


def with_columns(m: sp.csr_matrix, n: int) -> sp.csr_matrix:
    """The membership ``m`` over exactly the cell's first ``n`` accounts.  Accounts added
    after ``m`` was built (first seen in another scope, :meth:`CellSums.fit`) are in none of
    its subjects: zero columns, so every product is defined and unchanged."""
    if m.shape[1] >= n:
        return m[:, :n]
    return sp.hstack([m, sp.csr_matrix((m.shape[0], n - m.shape[1]))], format="csr")


def membership(cell: CellSums, members: list[list[str]]) -> sp.csr_matrix:
    """Subjects × accounts 0/1 matrix (a group sums its members)."""
    ids = cell.index.ids
    rows, cols = [], []
    for s, accounts in enumerate(members):
        for a in accounts:
            i = ids.get(a)
            if i is not None:
                rows.append(s)
                cols.append(i)
    return sp.csr_matrix(
        (np.ones(len(rows)), (rows, cols)), shape=(len(members), max(cell.n_accounts, 1))
    )


@dataclass(frozen=True, slots=True)
class LookArrays:
    """Per unit (account or subject): the share DiD and its variance components.

    ``d`` = hour-matched share DiD, ``x`` = baseline log amplification, ``pois`` = Poisson
    variance from null-pooled counts, ``k_b``/``k_w`` = item concentration per period,
    ``own_b``/``own_w`` = the unit's own item-clustered excess variance per period,
    ``pooled`` =
    the smaller arm's exposures over both periods, ``items_b``/``items_w`` = distinct items
    per period, ``s_rb, s_hb, s_rw, s_hw`` = the four exposure counts, ``share_r/h`` = the
    window shares.
    """

    d: Floats
    x: Floats
    pois: Floats
    k_b: Floats
    k_w: Floats
    own_b: Floats
    own_w: Floats
    pooled: Floats
    items_b: Floats
    items_w: Floats
    s_rb: Floats
    s_hb: Floats
    s_rw: Floats
    s_hw: Floats


def look_arrays(
    cell: CellSums,
    wts: Floats,
    m: sp.csr_matrix | None = None,
    hours: tuple[int, int] | None = None,
) -> LookArrays:
    """The statistics of every account (``m is None``) or of every subject (``m`` from
    :func:`membership`) of ``cell`` at a look whose window-so-far hours of day are ``wts``
    (:func:`hour_weights`).  With ``hours = (h0, h1)`` only the window's hours
    ``[h0, h1)`` count (before / since an estimated onset; ``wts`` must cover the same
    hours).

    For each arm ``a``: ``X̃_a = Σ_h w_h X_{a,h}`` (the baseline at the window's hours of
    day), ``T̃_a`` the same for the arm's traffic, ``Y_a``, ``T_a`` the window so far::

        D = log((Y_r + ½)/T_r) − log((X̃_r + ½c)/T̃_r) − [same for the holdout arm]

    (``c`` = the mean weight: Anscombe's ½ on the count's own scale).  Poisson variance with
    the counts pooled under the null (no change): ``λ_W = (X̃ + Y)·T/(T̃ + T)``,
    ``λ_B = (X̃ + Y)·T̃/(T̃ + T)``, ``V = Σ_a 1/(λ_W + ½) + ρ_a/(λ_B + ½c)`` with
    ``ρ_a = Σ_h w_h² X_h / X̃`` (``Var log Σ w_h X_h = Σ w_h² λ_h / (Σ w_h λ_h)²`` for
    Poisson ``X_h``; ``ρ = c`` for equal weights, giving ``1/λ``).  Pooling makes the
    variance independent of the direction of the noise in ``D`` (a weight that depended on
    the window's own count would bias any weighted average).
    ``K = Σ_i r_i h_i / (S_r S_h)`` per period (cross-arm item moment: unbiased for the
    items' concentration ``Σ_i q_i²`` whatever the Poisson noise of each arm).  ``own`` =
    the item-clustered (CR1) variance of ``log(S_r/S_h)`` over the period's items minus its
    Poisson part, ``G/(G−1)·(Σr²/S_r² − 2Σrh/(S_r S_h) + Σh²/S_h²) − 1/S_r − 1/S_h``
    (Cameron, Gelbach & Miller 2011, JBES 29(2)): it sees what the pooled model cannot, e.g.
    a holdout count made of one item's burst early in the window.
    """
    cell.fit()  # accounts first seen in another scope of the platform
    n = cell.n_accounts

    mm = None if m is None else with_columns(m, n)  # once per look, not per array

    def agg(a: np.ndarray) -> np.ndarray:
        a = a[:n]
        return a if mm is None else np.asarray(mm @ a)

    comps = []
    for arm in (0, 1):
        x_hod = agg(cell.base[arm])
        xfull = x_hod.sum(axis=1)
        xt = x_hod @ wts
        tt = float(cell.traffic_hod[arm] @ wts)
        if hours is not None:
            y = agg(cell.win_hourly[arm])[:, hours[0] : hours[1]].sum(axis=1)
            tw = float(cell.traffic_win[arm][hours[0] : hours[1]].sum())
        else:
            y = agg(cell.win[arm])
            tw = float(cell.traffic_win[arm].sum())
        comps.append((x_hod, xfull, xt, tt, y, tw))
    out_d = np.zeros(len(comps[0][1]))
    out_x = np.zeros_like(out_d)
    pois = np.zeros_like(out_d)
    with np.errstate(divide="ignore", invalid="ignore"):
        for arm, (x_hod, xfull, xt, tt, y, tw) in enumerate(comps):
            sign = 1.0 if arm == 0 else -1.0
            c = np.where(xfull > 0, xt / xfull, 1.0)
            share_w = np.log((y + 0.5) / tw) if tw > 0 else np.full_like(y, np.nan)
            share_b = np.log((xt + 0.5 * c) / tt) if tt > 0 else np.full_like(y, np.nan)
            out_d += sign * (share_w - share_b)
            total_b = cell.traffic_hod[arm].sum()
            out_x += sign * (np.log((xfull + 0.5) / total_b) if total_b > 0 else np.nan)
            pooled_n = xt + y
            lam_w = pooled_n * tw / (tt + tw) if tt + tw > 0 else np.zeros_like(y)
            lam_b = pooled_n * tt / (tt + tw) if tt + tw > 0 else np.zeros_like(y)
            rho = np.where(xt > 0, (x_hod @ (wts * wts)) / xt, c)
            pois += 1 / (lam_w + 0.5) + rho / (lam_b + 0.5 * c)
        cross_b, cross_w = agg(cell.cross["B"]), agg(cell.cross["W"])
        (_, xr, _, _, yr, _), (_, xh, _, _, yh, _) = comps
        k_b = np.where((xr > 0) & (xh > 0), cross_b / (xr * xh), 1.0)
        own = {}
        for p, (sr, sh) in (("B", (xr, xh)), ("W", (agg(cell.win[0]), agg(cell.win[1])))):
            g = agg(cell.items[p])
            v = (
                (
                    agg(cell.sq[p][0]) / (sr * sr)
                    - 2 * agg(cell.cross[p]) / (sr * sh)
                    + agg(cell.sq[p][1]) / (sh * sh)
                )
                * g
                / np.maximum(g - 1, 1)
            )
            own[p] = np.where((sr > 0) & (sh > 0) & (g >= 2), v - 1 / sr - 1 / sh, np.inf)
        if hours is None:
            k_w = np.where((yr > 0) & (yh > 0), cross_w / (yr * yh), 1.0)
        else:
            # part of the window: its item concentration, scaled up for the fewer exposures
            # (items per hour are steady: K ∝ 1 / hours)
            full_r, full_h = agg(cell.win[0]), agg(cell.win[1])
            k_full = np.where(
                (full_r > 0) & (full_h > 0), agg(cell.cross["W"]) / (full_r * full_h), 1.0
            )
            k_w = np.where((yr > 0) & (yh > 0), k_full * (full_r + full_h) / (yr + yh), 1.0)
    own_w = own["W"]
    if hours is not None:  # part of the window: the excess scales like the concentration
        full_r, full_h = agg(cell.win[0]), agg(cell.win[1])
        with np.errstate(divide="ignore", invalid="ignore"):
            own_w = np.where((yr > 0) & (yh > 0), own_w * (full_r + full_h) / (yr + yh), np.inf)
    return LookArrays(
        d=out_d,
        x=out_x,
        pois=pois,
        k_b=np.clip(k_b, 0, 1),
        k_w=np.clip(k_w, 0, 1),
        own_b=own["B"],
        own_w=own_w,
        pooled=np.minimum(xr + yr, xh + yh),
        items_b=agg(cell.items["B"]),
        items_w=agg(cell.items["W"]),
        s_rb=xr,
        s_hb=xh,
        s_rw=yr,
        s_hw=yh,
    )


def overdispersion(paired: list[dict[str, np.ndarray]]) -> np.ndarray:
    """``φ = max(1, V_paired / V_Poisson)`` per subject (whole scope, full baseline): the
    per-user paired, cluster-robust variance (:func:`paired_user_var`) relative to the
    Poisson variance of the same counts.  ``φ > 1`` when users' rates of seeing a subject
    change between periods beyond chance; never below 1 (the central guard: no count
    statistic is more precise than its counts)."""
    arms = []
    for arm in (0, 1):
        p = paired[arm]
        arms.append(PairedSums(*(p[f] for f in PAIRED_FIELDS), *(p[f] for f in ARM_FIELDS)))
    v = paired_user_var(arms[0], arms[1])
    with np.errstate(divide="ignore", invalid="ignore"):
        pois = sum(1 / paired[arm][f] for arm in (0, 1) for f in ("x", "y"))
        phi = v / pois
    return np.where(np.isfinite(phi), np.maximum(phi, 1.0), 1.0)


def platform_traffic(
    cell: CellSums, wts: np.ndarray, paired: list[dict[str, np.ndarray]] | None
) -> tuple[float, float]:
    """The platform-wide change: ``P = log(T_rW / T̃_rB) − log(T_hW / T̃_hB)``, how much more
    the ranked arm's users were shown in the window than at the same hours of the baseline,
    relative to the holdout arm's users (arms are randomised and fixed, so without a
    platform-wide change ``P ≈ 0``).  Variance: users as clusters, each user paired with
    himself (``Σ (w_u/W − b_u/B)²`` per arm), from the whole scope's arm sums."""
    est = 0.0
    for arm, sign in ((0, 1.0), (1, -1.0)):
        tw = float(cell.traffic_win[arm].sum())
        tt = float(cell.traffic_hod[arm] @ wts)
        if tw <= 0 or tt <= 0:
            return float("nan"), float("nan")
        est += sign * (np.log(tw) - np.log(tt))
    if paired is None:
        return float(est), float("nan")
    var = 0.0
    for arm in (0, 1):
        a = paired[arm]
        b, w = float(a["b"][0]), float(a["w"][0])
        if b <= 0 or w <= 0 or a["users"][0] < 2:
            return float(est), float("nan")
        var += max(
            float(a["ww"][0]) / w**2 - 2 * float(a["bw"][0]) / (w * b) + float(a["bb"][0]) / b**2,
            1 / w + 1 / b,
        )
    return float(est), var
