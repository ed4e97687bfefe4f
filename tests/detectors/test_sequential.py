"""Oracle tests of the always-valid machinery (detectors.sequential) against scipy/numpy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, optimize, stats

from detectors.sequential import (
    SequentialPanel,
    adjusted_p,
    average_log_e,
    cs_radius,
    log_threshold,
    mde_log,
    mixture_log_e,
    one_sided_log_e,
)


def _one_sided_by_quadrature(x: float, v: float, tau: float) -> float:
    """``E⁺ = ∫_0^∞ 2 N(θ; 0, τ²) · exp((θ x − θ²/2) / V) dθ`` by numerical quadrature
    (half-normal prior on the effect θ, Gaussian likelihood ratio of θ against 0)."""

    def f(theta: float) -> float:
        return 2 * stats.norm.pdf(theta, 0, tau) * math.exp((theta * x - theta**2 / 2) / v)

    val, _ = integrate.quad(f, 0, np.inf, limit=200)
    return val


@pytest.mark.parametrize(
    ("x", "v", "tau"),
    [(0.0, 0.04, 0.3), (0.3, 0.01, 0.3), (-0.2, 0.02, 0.5), (0.05, 0.001, 0.1), (0.6, 0.05, 1.0)],
)
def test_one_sided_mixture_matches_numeric_integration(x: float, v: float, tau: float) -> None:
    expected = _one_sided_by_quadrature(x, v, tau)
    got = float(np.exp(one_sided_log_e(x, v, tau)))
    assert got == pytest.approx(expected, rel=1e-6)


def test_two_sided_is_average_of_directions_with_margin() -> None:
    est, var, tau, margin = np.array([0.4, -0.4, 0.0]), np.array([0.01, 0.01, 0.01]), 0.3, 0.05
    log_e, direction = mixture_log_e(est, var, tau, margin)
    up = _one_sided_by_quadrature(0.4 - margin, 0.01, tau)
    down = _one_sided_by_quadrature(-0.4 - margin, 0.01, tau)
    assert float(np.exp(log_e[0])) == pytest.approx((up + down) / 2, rel=1e-6)
    assert log_e[0] == pytest.approx(log_e[1])  # symmetric
    assert direction.tolist() == [1.0, -1.0, 1.0]
    # no information → no evidence
    le, _ = mixture_log_e([np.nan, 0.2, 0.2], [0.1, np.inf, 0.0], tau)
    assert le.tolist() == [0.0, 0.0, 0.0]


def test_e_process_has_expectation_at_most_one_under_null() -> None:
    """E[E⁺] = 1 at θ = δ (martingale) for a single look: integrate over x ~ N(δ, V)."""
    v, tau = 0.02, 0.3
    val, _ = integrate.quad(
        lambda x: stats.norm.pdf(x, 0, math.sqrt(v)) * float(np.exp(one_sided_log_e(x, v, tau))),
        -2,
        2,
        limit=200,
    )
    assert val == pytest.approx(1.0, rel=1e-6)


def test_type_one_error_under_continuous_monitoring() -> None:
    """Gaussian streams, peeking after every observation: P(sup_t E_t ≥ 1/α) ≤ α.

    5,000 null streams of 400 N(0, 1) observations; the estimate is the running mean with
    V = 1/n.  Tolerance: the 99.9 % binomial quantile at α."""
    rng = np.random.default_rng(7)
    n_streams, n_obs, alpha, tau = 5000, 400, 0.05, 0.3
    x = rng.standard_normal((n_streams, n_obs))
    n = np.arange(1, n_obs + 1)
    est = np.cumsum(x, axis=1) / n
    var = np.broadcast_to(1.0 / n, est.shape)
    log_e, _ = mixture_log_e(est.ravel(), var.ravel(), tau)
    sup = log_e.reshape(est.shape).max(axis=1)
    rejections = int((sup >= math.log(1 / alpha)).sum())
    assert rejections <= stats.binom.ppf(0.999, n_streams, alpha)
    # … whereas a fixed-level z-test peeked at every step is badly anticonservative
    z_peek = (np.abs(est / np.sqrt(var)) >= stats.norm.ppf(1 - alpha / 2)).any(axis=1)
    assert z_peek.mean() > 3 * alpha
    # and the test has power against a real effect
    shifted = np.cumsum(x + 0.3, axis=1) / n
    le1, _ = mixture_log_e(shifted.ravel(), var.ravel(), tau)
    assert (le1.reshape(est.shape).max(axis=1) >= math.log(1 / alpha)).mean() > 0.95


def test_margin_makes_small_effects_null() -> None:
    rng = np.random.default_rng(3)
    n_streams, n_obs, alpha, tau, delta = 2000, 400, 0.05, 0.3, 0.05
    x = rng.standard_normal((n_streams, n_obs)) + delta  # exactly on the null boundary
    n = np.arange(1, n_obs + 1)
    est = np.cumsum(x, axis=1) / n
    log_e, _ = mixture_log_e(
        est.ravel(), np.broadcast_to(1.0 / n, est.shape).ravel(), tau, margin=delta
    )
    sup = log_e.reshape(est.shape).max(axis=1)
    assert (sup >= math.log(1 / alpha)).sum() <= stats.binom.ppf(0.999, n_streams, alpha)


def test_confidence_sequence_radius_solves_boundary_and_covers() -> None:
    v, tau, alpha = 0.01, 0.3, 0.05
    r = float(cs_radius(v, tau, alpha))
    # the two-sided mixture (no margin) equals 1/α at θ̂ − θ = ±r
    two_sided = math.sqrt(v / (v + tau**2)) * math.exp(tau**2 * r**2 / (2 * v * (v + tau**2)))
    assert two_sided == pytest.approx(1 / alpha)
    # time-uniform coverage on Gaussian streams
    rng = np.random.default_rng(11)
    x = rng.standard_normal((4000, 300))
    n = np.arange(1, 301)
    est = np.cumsum(x, axis=1) / n
    radius = cs_radius(1.0 / n, tau, alpha)
    miss = (np.abs(est) > radius).any(axis=1)
    assert miss.sum() <= stats.binom.ppf(0.999, 4000, alpha)
    assert cs_radius(np.inf, tau, alpha).item() == np.inf


def test_mde_is_the_crossing_point() -> None:
    var = np.array([0.01, 0.002, 0.05])
    thr = log_threshold(20, 0.03)
    got = mde_log(var, 0.3, 0.05, thr)
    for v, g in zip(var, got, strict=True):
        root = optimize.brentq(lambda t, v=v: mixture_log_e(t, v, 0.3, 0.05)[0][0] - thr, 0.05, 10)
        assert g == pytest.approx(root, abs=1e-6)
    assert np.isinf(mde_log([np.nan], 0.3, 0.0, thr)[0])


def test_adjusted_p_and_threshold() -> None:
    assert log_threshold(10, 0.01) == pytest.approx(math.log(1000))
    assert log_threshold(10, 0.0) == math.inf
    assert adjusted_p(math.log(1000), 10) == pytest.approx(0.01)
    assert adjusted_p(-math.inf, 10) == 1.0
    assert adjusted_p(0.0, 10) == 1.0


def test_panel_records_first_crossing_and_latest_cs() -> None:
    panel = SequentialPanel(n=2, tau=0.3, margin=0.0, log_thresh=math.log(100), alpha_cs=0.01)
    new = panel.update(
        np.array([0.0, 0.5]), np.array([0.01, 0.001]), 1000, 1, snapshot=lambda i: {"i": i}
    )
    assert new.tolist() == [1]
    assert panel.crossed.tolist() == [False, True]
    assert panel.at_cross == {1: {"i": 1}}
    assert panel.update(np.array([0.0, 0.1]), np.array([0.01, 0.001]), 2000, 2).size == 0
    assert panel.crossed_ms.tolist() == [-1, 1000]  # first crossing kept
    r = cs_radius(np.array([0.01, 0.001]), 0.3, 0.01)
    assert panel.cs_lo == pytest.approx(np.array([0.0, 0.1]) - r)  # the latest interval
    assert panel.cs_hi == pytest.approx(np.array([0.0, 0.1]) + r)
    with pytest.raises(ValueError):
        one_sided_log_e(0.1, 0.1, tau=0.0)


def test_average_of_e_processes_and_multi_component_mde() -> None:
    a = (np.log(np.array([4.0, 1.0])), np.array([1.0, -1.0]))
    b = (np.log(np.array([2.0, 9.0])), np.array([-1.0, 1.0]))
    log_e, direction = average_log_e(a, b)
    assert np.exp(log_e) == pytest.approx([3.0, 5.0])
    assert direction.tolist() == [1.0, 1.0]  # the direction of the larger component
    thr = log_threshold(5, 0.05)
    both = mde_log([0.01], 0.3, 0.0, thr, also=([0.01],))
    one = mde_log([0.01], 0.3, 0.0, thr)
    assert both[0] == pytest.approx(one[0], abs=1e-9)  # equal components: same as one
    only_second = mde_log([np.nan], 0.3, 0.0, thr, also=([0.01],))
    assert only_second[0] > one[0]  # averaging with an uninformative E = 1 costs log 2


def test_central_guard_floors_tiny_variances_and_counts_the_looks() -> None:
    """A sandwich variance of 1e-12 from few clusters must not turn a 0.5 % shift into
    overwhelming evidence: the panel weighs ``max(V, floor, MIN_VARIANCE)``."""
    from detectors.sequential import MIN_VARIANCE, guard_variance

    v = guard_variance([1e-12, 0.04, np.nan, 1e-12], floor=[np.nan, 0.01, 0.01, 0.02])
    assert v[0] == MIN_VARIANCE and v[1] == 0.04 and np.isnan(v[2]) and v[3] == 0.02
    panel = SequentialPanel.bonferroni(2, 0.05, 0.3, 1.0)
    est = np.array([0.005, 0.0005])
    for t in range(3):
        panel.update(est, np.array([1e-12, 1e-12]), t, t, floor=np.array([0.01, np.nan]))
    assert panel.guarded.tolist() == [3, 3]
    assert panel.log_e[0] < 0.1  # the model floor: no evidence
    assert panel.log_e[1] < 0.1  # MIN_VARIANCE: ±0.1 % is no evidence
    unguarded, _ = mixture_log_e(est, np.full(2, 1e-12), 0.3)
    assert unguarded[1] > panel.log_thresh > panel.log_e[1]
