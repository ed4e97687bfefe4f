"""Oracle tests of detectors.stats against numpy/scipy on small inputs (bootstrap, direct sums)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from detectors.stats import (
    herfindahl,
    item_cluster_var,
    label_share_log_e,
    log_ratio_user_var,
    pooled_item_variance,
    ratio_ci,
    ratio_mean_cluster_var,
)


def _clustered_arm(rng: np.random.Generator, n_users: int, mean: float) -> np.ndarray:
    """Per-user counts with user heterogeneity (negative binomial: overdispersed)."""
    rate = rng.gamma(0.8, mean / 0.8, n_users)
    return rng.poisson(rate)


def test_ratio_ci_matches_bootstrap_over_users() -> None:
    rng = np.random.default_rng(5)
    xr, xh = _clustered_arm(rng, 600, 3.0), _clustered_arm(rng, 200, 2.0)
    est = ratio_ci(xr.sum(), (xr**2).sum(), xr.size, xh.sum(), (xh**2).sum(), xh.size)
    boots = []
    for _ in range(3000):
        br = rng.choice(xr, xr.size)
        bh = rng.choice(xh, xh.size)
        boots.append(math.log(br.mean() / bh.mean()))
    assert est.ratio == pytest.approx(xr.mean() / xh.mean())
    assert est.se_log == pytest.approx(float(np.std(boots)), rel=0.08)
    lo, hi = np.exp(np.percentile(boots, [2.5, 97.5]))
    assert est.ci_low == pytest.approx(lo, rel=0.05)
    assert est.ci_high == pytest.approx(hi, rel=0.05)


def test_vectorised_user_variance_equals_scalar_version() -> None:
    rng = np.random.default_rng(1)
    rows = []
    for _ in range(5):
        xr, xh = _clustered_arm(rng, 300, 2.0), _clustered_arm(rng, 100, 2.0)
        rows.append((xr.sum(), (xr**2).sum(), xr.size, xh.sum(), (xh**2).sum(), xh.size))
    arr = np.array(rows, dtype=float).T
    log_r, var = log_ratio_user_var(*arr)
    for j, row in enumerate(rows):
        est = ratio_ci(*row)
        assert log_r[j] == pytest.approx(est.log_ratio)
        assert math.sqrt(var[j]) == pytest.approx(est.se_log)
    # Poisson floor: all users with the same count would give zero variance
    lr, v = log_ratio_user_var([100], [100], [100], [50], [50], [50])
    assert v[0] == pytest.approx(1 / 100 + 1 / 50)
    # undefined without exposure in an arm
    assert np.isnan(log_ratio_user_var([0], [0], [10], [5], [5], [10])[0][0])


def test_item_cluster_variance_matches_direct_sum_and_bootstrap() -> None:
    rng = np.random.default_rng(9)
    g = 40
    quality = np.exp(rng.normal(0, 0.6, g))
    h = rng.poisson(20, g)
    r = rng.poisson(4 * h * quality)
    got = item_cluster_var(r.sum(), h.sum(), (r * r).sum(), (r * h).sum(), (h * h).sum(), g)
    direct = g / (g - 1) * np.sum((r / r.sum() - h / h.sum()) ** 2)
    assert got == pytest.approx(direct)
    boots = []
    for _ in range(4000):
        k = rng.integers(0, g, g)
        boots.append(math.log(r[k].sum() / h[k].sum()))
    assert math.sqrt(got) == pytest.approx(float(np.std(boots)), rel=0.12)
    assert np.isnan(item_cluster_var(10, 0, 100, 0, 0, 3))
    assert np.isnan(item_cluster_var(10, 5, 100, 50, 25, 1))


def test_herfindahl_is_unbiased_for_poisson_counts() -> None:
    rng = np.random.default_rng(2)
    p = rng.dirichlet(np.ones(15))
    true_h = float((p**2).sum())
    vals = []
    for _ in range(2000):
        c = rng.poisson(200 * p)
        vals.append(float(herfindahl((c * c).sum(), c.sum())))
    assert np.mean(vals) == pytest.approx(true_h, rel=0.03)
    assert np.isnan(herfindahl(0, 0))


def _period(rng: np.random.Generator, sigma: float) -> tuple[float, ...]:
    """One subject-period: items with random exposure potential and lognormal amplification."""
    g = int(rng.integers(8, 40))
    pot = rng.gamma(2.0, 10.0, g)
    eff = np.exp(rng.normal(-(sigma**2) / 2, sigma, g))
    h = rng.poisson(pot)
    r = rng.poisson(4 * pot * eff)
    return (
        math.log(r.sum() / h.sum()),
        float(item_cluster_var(r.sum(), h.sum(), (r * r).sum(), (r * h).sum(), (h * h).sum(), g)),
        1 / r.sum() + 1 / h.sum(),
        float(herfindahl((r * r).sum(), r.sum())),
    )


def test_pooled_item_variance_calibrates_period_differences() -> None:
    """σ̂² learnt on one set of subjects makes ``D = log R₁ − log R₂`` of new subjects (different
    items in each period, no change) standard normal, where Poisson alone is far too narrow."""
    rng = np.random.default_rng(4)
    sigma = 0.5
    learn = [_period(rng, sigma) for _ in range(80)]
    s2 = pooled_item_variance(
        [x[1] for x in learn],
        [x[2] for x in learn],
        [x[3] for x in learn],
        prior=10.0,
        prior_weight=0.0,
    )
    z_model, z_pois = [], []
    for _ in range(400):
        (l1, _, p1, h1), (l2, _, p2, h2) = _period(rng, sigma), _period(rng, sigma)
        z_model.append((l1 - l2) / math.sqrt(p1 + p2 + s2 * (h1 + h2)))
        z_pois.append((l1 - l2) / math.sqrt(p1 + p2))
    assert 0.85 < float(np.std(z_model)) < 1.15
    assert float(np.std(z_pois)) > 2.5
    # no data → the prior
    assert pooled_item_variance([], [], [], prior=0.7, prior_weight=0.25) == pytest.approx(0.7)


def test_label_share_log_e_matches_quadrature() -> None:
    from scipy import integrate

    k, n, eps = 7, 40, 0.05
    val, _ = integrate.quad(lambda q: (q / eps) ** k * ((1 - q) / (1 - eps)) ** (n - k), eps, 1)
    assert label_share_log_e(k, n, eps) == pytest.approx(math.log(val / (1 - eps)), rel=1e-6)


def test_cluster_mean_variance_matches_direct_sum_and_bootstrap() -> None:
    rng = np.random.default_rng(12)
    g = 300
    n_j = rng.integers(1, 8, g).astype(float)
    effect = rng.normal(0.1, 0.3, g)  # cluster-level random effect: entries correlated
    a_j = np.array(
        [np.sum(e + rng.normal(0, 0.1, int(k))) for e, k in zip(effect, n_j, strict=True)]
    )
    theta, var = ratio_mean_cluster_var(
        a_j.sum(), n_j.sum(), (a_j**2).sum(), (a_j * n_j).sum(), (n_j**2).sum(), g
    )
    t = a_j.sum() / n_j.sum()
    direct = g / (g - 1) * np.sum((a_j - t * n_j) ** 2) / n_j.sum() ** 2
    assert theta == pytest.approx(t) and var == pytest.approx(direct)
    boots = []
    for _ in range(3000):
        k = rng.integers(0, g, g)
        boots.append(a_j[k].sum() / n_j[k].sum())
    assert math.sqrt(var) == pytest.approx(float(np.std(boots)), rel=0.08)
    assert np.isnan(ratio_mean_cluster_var(1.0, 1.0, 1.0, 1.0, 1.0, 1)[1])


@pytest.mark.parametrize(("k", "n"), [(0, 10), (3, 10), (10, 10), (17, 250), (1, 1)])
def test_clopper_pearson_matches_scipy_exact_interval(k: int, n: int) -> None:
    from scipy.stats import binomtest

    from detectors.stats import clopper_pearson

    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
    assert clopper_pearson(k, n) == pytest.approx((ci.low, ci.high), abs=1e-12)
    assert clopper_pearson(0, 0) == (0.0, 1.0)


# -- issue 18: the new statistics against direct computations -------------------------------


def test_errors_in_variables_slope_recovers_a_platform_change() -> None:
    """``D = c + γ x* + e`` with ``x = x* + u`` and ``u`` also in ``D`` (−u): the naive slope
    is pulled towards −vx/var(x) (regression to the mean), the corrected one is not."""
    from detectors._holdout_stats import platform_reference

    rng = np.random.default_rng(6)
    n = 3000
    x_true = rng.normal(0, 0.3, n)
    vx = rng.uniform(0.01, 0.05, n)
    u = rng.normal(0, np.sqrt(vx))
    v = vx + 0.02
    d = 0.1 + 0.3 * x_true - u + rng.normal(0, np.sqrt(0.02), n)
    x = x_true + u
    ref = platform_reference(d, x, v + vx, vx, huber_k=50.0)
    naive = np.polyfit(x, d, 1)[0]
    assert naive < 0.15
    assert ref.gamma == pytest.approx(0.3, abs=0.04)
    assert ref.c == pytest.approx(
        0.1
        + 0.3 * float(np.average(x_true, weights=1 / (v + vx)))
        - 0.3 * ref.xbar
        + 0.3 * ref.xbar,
        abs=0.02,
    )


def test_common_shift_is_a_huber_m_estimate() -> None:
    from scipy import optimize

    from detectors._holdout_stats import common_shift

    rng = np.random.default_rng(7)
    v = rng.uniform(0.01, 0.2, 200)
    d = 0.05 + rng.normal(0, np.sqrt(v))
    d[:15] += 2.0  # boosted accounts
    c, var_c = common_shift(d, v, huber_k=2.0)

    def loss(m: float) -> float:
        r = (d - m) / np.sqrt(v)
        return float(np.where(np.abs(r) <= 2, r * r / 2, 2 * np.abs(r) - 2).sum())

    best = optimize.minimize_scalar(loss, bounds=(-1, 1), method="bounded").x
    assert c == pytest.approx(best, abs=1e-4)
    assert abs(c - 0.05) < 0.03 and 0 < var_c < 0.01


def test_item_variance_median_equation_resists_outliers() -> None:
    from detectors._holdout_stats import item_variance

    rng = np.random.default_rng(9)
    u, k = rng.uniform(0.01, 0.03, 40), rng.uniform(0.05, 0.2, 40)
    r = rng.normal(0, np.sqrt(u + 0.3 * k))
    r[:10] += 2.5  # a quarter of the accounts boosted
    robust = item_variance(r, u, k, n_params=0, median=True)
    truncated = item_variance(r, u, k, n_params=0)
    assert robust < truncated / 4  # 1.7 vs 14 (truth 0.3): bounded by the quarter boosted
    r[:10] -= 2.5
    assert 0.1 < item_variance(r, u, k, n_params=0, median=True) < 1.0


def test_elasticity_is_the_binomial_maximum_likelihood() -> None:
    """IRLS logistic regression of the ranked share on the relative score = scipy's
    maximisation of the same binomial likelihood."""
    from scipy import optimize

    from detectors._elasticity import ItemExposure, fit_elasticity

    rng = np.random.default_rng(10)
    n = 3000
    x = rng.normal(0, 0.5, n)
    h = rng.poisson(8, n)
    r = rng.poisson(20 * np.exp(0.8 * x - 0.1 * x * x))
    acc = ItemExposure()
    items = [f"i{j}" for j in range(n)]
    for j in range(n):  # 6 scored entries per item, exactly at x (no measurement noise)
        acc.add_scores([items[j]] * 6, np.full(6, x[j]))
    acc.add_exposures(
        [items[j] for j in range(n) for _ in range(r[j] + h[j])],
        np.array([k >= r[j] for j in range(n) for k in range(r[j] + h[j])]),
    )
    el = fit_elasticity(acc)
    use = r + h >= 10
    xc = x[use] - x[use].mean()

    def nll(b: np.ndarray) -> float:
        eta = b[0] + b[1] * xc + b[2] * xc * xc
        return float(-(r[use] * eta - (r[use] + h[use]) * np.log1p(np.exp(eta))).sum())

    best = optimize.minimize(nll, np.zeros(3), method="BFGS").x
    assert el.b1 == pytest.approx(best[1], abs=1e-3)
    assert el.b2 == pytest.approx(best[2], abs=1e-3)
    # the local elasticity at the fitted centre: 0.8 − 0.2 x
    assert el.local(el.center)[0] == pytest.approx(0.8 - 0.2 * el.center, abs=0.08)
    assert el.usable


def test_confidence_sequence_by_inversion_excludes_zero_exactly_when_crossed() -> None:
    from detectors.sequential import cs_by_inversion, mixture_log_e

    v, tau, thr = np.array([0.04, 0.04, 0.01]), 0.5, math.log(400)
    est = np.array([0.70, 0.74, -0.5])
    lo, hi = cs_by_inversion(est, v, tau, 0.0, thr)
    log_e, _ = mixture_log_e(est, v, tau)
    assert np.array_equal(log_e >= thr, (lo > 0) | (hi < 0))
    # on the boundary itself, log E equals the threshold
    edge, _ = mixture_log_e(est - lo, v, tau)
    assert edge == pytest.approx(np.full(3, thr), abs=1e-6)


def test_scope_plan_splits_the_budget_over_every_added_test() -> None:
    from detectors._scopes import WHOLE, plan_scopes

    volume = {
        ("surface", "feed"): 900.0,
        ("surface", "search"): 100.0,
        ("region", "DE-BY"): 600.0,
        ("region", "DE-BE"): 400.0,
    }
    plan = plan_scopes(volume, "DE", max_scopes=8, scope_share=0.5)
    assert plan.scopes[0] == WHOLE and plan.shares[0] == 0.5
    assert set(plan.scopes[1:]) == set(volume) and sum(plan.shares) == pytest.approx(1.0)
    one_surface = plan_scopes(
        {("surface", "feed"): 1.0, ("region", "DE-BY"): 1.0}, "DE", max_scopes=8, scope_share=0.5
    )
    assert one_surface.scopes == (WHOLE,) and one_surface.shares == (1.0,)
    # country-level events count as their own group: DE-BY is then a proper subset
    mixed = plan_scopes(
        {("region", "DE"): 5.0, ("region", "DE-BY"): 5.0}, "DE", max_scopes=8, scope_share=0.5
    )
    assert mixed.scopes == (WHOLE, ("region", "DE-BY"))
    capped = plan_scopes(volume, "DE", max_scopes=2, scope_share=0.4)
    assert capped.scopes[1:] == (("surface", "feed"), ("region", "DE-BY"))
    assert capped.shares == pytest.approx((0.6, 0.2, 0.2))
