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
    est = ratio_ci(xr.sum(), (xr ** 2).sum(), xr.size, xh.sum(), (xh ** 2).sum(), xh.size)
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
        rows.append((xr.sum(), (xr ** 2).sum(), xr.size, xh.sum(), (xh ** 2).sum(), xh.size))
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
    true_h = float((p ** 2).sum())
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
    eff = np.exp(rng.normal(-sigma ** 2 / 2, sigma, g))
    h = rng.poisson(pot)
    r = rng.poisson(4 * pot * eff)
    return (math.log(r.sum() / h.sum()),
            float(item_cluster_var(r.sum(), h.sum(), (r * r).sum(), (r * h).sum(),
                                   (h * h).sum(), g)),
            1 / r.sum() + 1 / h.sum(), float(herfindahl((r * r).sum(), r.sum())))


def test_pooled_item_variance_calibrates_period_differences() -> None:
    """σ̂² learnt on one set of subjects makes ``D = log R₁ − log R₂`` of new subjects (different
    items in each period, no change) standard normal, where Poisson alone is far too narrow."""
    rng = np.random.default_rng(4)
    sigma = 0.5
    learn = [_period(rng, sigma) for _ in range(80)]
    s2 = pooled_item_variance([x[1] for x in learn], [x[2] for x in learn],
                              [x[3] for x in learn], prior=10.0, prior_weight=0.0)
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
    val, _ = integrate.quad(lambda q: (q / eps) ** k * ((1 - q) / (1 - eps)) ** (n - k),
                            eps, 1)
    assert label_share_log_e(k, n, eps) == pytest.approx(math.log(val / (1 - eps)), rel=1e-6)


def test_cluster_mean_variance_matches_direct_sum_and_bootstrap() -> None:
    rng = np.random.default_rng(12)
    g = 300
    n_j = rng.integers(1, 8, g).astype(float)
    effect = rng.normal(0.1, 0.3, g)  # cluster-level random effect: entries correlated
    a_j = np.array([np.sum(e + rng.normal(0, 0.1, int(k))) for e, k in zip(effect, n_j,
                                                                           strict=True)])
    theta, var = ratio_mean_cluster_var(a_j.sum(), n_j.sum(), (a_j ** 2).sum(),
                                        (a_j * n_j).sum(), (n_j ** 2).sum(), g)
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
