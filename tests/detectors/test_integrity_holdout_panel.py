"""``log_integrity``'s holdout and panel statistics of issue 13's second round: the holdout
share between regions, the holdout share of exposures, the panel's own amplification
estimate.  Each: the e-process is valid at its null's edges (or the honest platform of the
same size raises nothing), and its adversary becomes a finding."""

from __future__ import annotations

import math

import msgspec
import numpy as np
import pytest
from scipy import stats

from detectors import evidence as E
from detectors.integrity._between import BetweenTest, _Cell, fnch_log_pmf
from streams.simulator import scenario, simulate

from .test_integrity_adversary import integrity, run


@pytest.mark.parametrize("x, n_a, n_b, k, psi", [(3, 10, 20, 8, 0.5), (0, 4, 9, 5, 2.0)])
def test_fnch_pmf_matches_scipy(x: int, n_a: int, n_b: int, k: int, psi: float) -> None:
    want = stats.nchypergeom_fisher.logpmf(x, n_a + n_b, n_a, k, psi)
    assert fnch_log_pmf(x, n_a, n_b, k, psi) == pytest.approx(want, rel=1e-9)


class _Frame:  # the two attributes BetweenTest's bets read
    threshold = 0.0


@pytest.mark.parametrize("odds_ratio", [1.0, 0.95, 1 / 0.95])  # H0's centre and edges
def test_between_regions_e_process_is_valid(odds_ratio: float) -> None:
    """Ville: P(sup_t E_t ≥ 1/α) ≤ α for blocks of users whose holdout odds in the cell
    are ``odds_ratio`` × the rest's, whatever the common share."""
    rng = np.random.default_rng(7)
    test = BetweenTest(_Frame(), tolerance=0.05)  # type: ignore[arg-type]
    runs, alpha, hits = 150, 0.05, 0
    for _ in range(runs):
        cell = _Cell()
        p_b = rng.uniform(0.1, 0.3)
        odds = odds_ratio * p_b / (1 - p_b)
        p_a = odds / (1 + odds)
        best = 0.0
        for _ in range(20):
            n_a, n_b = rng.poisson(8), rng.poisson(12)
            h_a, h_b = rng.binomial(n_a, p_a), rng.binomial(n_b, p_b)
            test._bet(cell, n_a, n_b, h_a + h_b, h_a)
            best = max(best, cell.log_e)
        hits += best >= math.log(1 / alpha)
    assert hits / runs <= stats.binom.ppf(0.999, runs, alpha) / runs


def test_paired_exposure_moments_match_the_influence_sum() -> None:
    """The O(1)-per-exposure moments of the exposure-share variance give the explicit
    influence sum over users (users in one or both periods, any arrival order)."""
    from detectors.integrity._exposures import _Pair

    rng = np.random.default_rng(3)
    pair = _Pair()
    for _ in range(400):
        pair.add(int(rng.random() < 0.5), f"u{rng.integers(60)}")
    b, w = (p.per_user for p in pair.periods)
    m_b, m_w = sum(b.values()) / len(b), sum(w.values()) / len(w)
    s_b, s_w = sum(b.values()), sum(w.values())
    infl = [
        ((w[u] - m_w) / s_w if u in w else 0.0) - ((b[u] - m_b) / s_b if u in b else 0.0)
        for u in set(b) | set(w)
    ]
    log_change, var = pair.log_change_var()
    g = len(infl)
    assert log_change == pytest.approx(math.log(m_w / m_b))
    assert var == pytest.approx(g / (g - 1) * sum(x * x for x in infl))


@pytest.mark.parametrize("edge", [1, -1])  # Δ = 0.9 and 1/0.9: H0's edges at tolerance 0.1
def test_exposure_share_e_process_is_valid_at_the_tolerance(edge: int) -> None:
    """Ville, asymptotically: P(sup_t E_t ≥ 1/a) ≤ a for a = 0.2, with heavy-tailed
    (lognormal) per-user activity, users active in one or both periods, 12 looks."""
    from detectors.integrity._exposures import ExposureShareTest, _State
    from detectors.sequential import mixture_log_e

    class Frame:
        threshold, alpha, TESTS = 0.0, 0.05, 1

    test = ExposureShareTest(Frame(), tolerance=0.1, tau=0.15, min_users=30)  # type: ignore[arg-type]
    rng = np.random.default_rng(edge + 5)
    runs, users, hits = 80, 600, 0
    for _ in range(runs):
        state = _State()
        activity = rng.lognormal(1.0, 1.0, (2, users))
        counts = {
            (arm, period): rng.poisson(activity[arm] * (0.9**edge if arm and period else 1.0))
            * (rng.random(users) < 0.7)
            for arm in (0, 1)
            for period in (0, 1)
        }
        best = -math.inf
        for chunk in np.array_split(rng.permutation(users), 12):
            for (arm, period), c in counts.items():
                for u in chunk.tolist():
                    for _ in range(int(c[u])):
                        state.arms[arm].add(period, f"{arm}-{u}")
            est = test._estimate(state)
            if est is not None:
                best = max(best, float(mixture_log_e(est[0], est[1], 0.15, test.margin)[0][0]))
        hits += best >= math.log(5)
    assert hits / runs <= stats.binom.ppf(0.999, runs, 0.2) / runs


def test_a_holdout_arm_thinned_in_one_region_differs_from_the_others() -> None:
    """Half of DE-BE's holdout users deleted from the window start (5,000 users)."""
    sim = simulate(scenario("holdout_region", seed=2, n_users=5000, time_scale=0.15))
    found = integrity(run(sim))
    f = found[("de-bundestag-sim", "holdout_share_region:DE-BE")]
    ev = f.evidence
    assert ev["check"] == "holdout_share_region" and ev["direction"] == "low"
    assert ev["holdout_share"] < 0.7 * ev["holdout_share_elsewhere"]
    assert f.ci_high < 1 and f.p_value < 0.05 and f.effect < 0.7
    # two regions in the scope: each is the other's complement, one finding names the smaller
    assert ("de-bundestag-sim", "holdout_share_region:DE-BY") not in found
    assert not [s for _, s in found if s.startswith("holdout_share_surface")]


def test_a_holdout_arm_deleted_on_one_surface_is_found_there() -> None:
    """Every holdout record on ``search`` deleted from the window start (4,000 users): the
    holdout arm stays active elsewhere, so no rule sees it; the surface comparison does."""
    sim = simulate(scenario("holdout_surface", seed=2, time_scale=0.15))
    found = integrity(run(sim))
    f = found[("de-bundestag-sim", "holdout_share_surface:search")]
    assert f.effect == 0 and f.evidence["users"]["holdout"] == 0
    assert f.evidence["cells"].keys() == {"feed", "search", "trending"}
    assert f.severity == "critical" and f.p_value < 0.05
    assert not [s for _, s in found if s == "holdout_silent"]


def test_a_thinned_holdout_exposure_log_is_found_and_explained() -> None:
    """40 % of the holdout arm's exposures deleted from the window start, users kept."""
    sim = simulate(scenario("holdout_exposure_deletion", seed=2, n_users=5000, time_scale=0.15))
    found = integrity(run(sim))
    f = found[("de-bundestag-sim", "holdout_exposure_share")]
    ev = f.evidence
    assert ev["direction"] == "low" and f.effect < 0.8 and f.ci_high < 0.9
    per = ev["periods"]
    assert per["window"]["holdout_per_user_ratio"] < per["baseline"]["holdout_per_user_ratio"]
    assert "thinned" in ev["meaning"] and "every holdout comparison" in ev["affects"]
    assert f.p_value < 0.05


def test_the_panel_sees_a_boost_the_log_hides_for_panellists() -> None:
    """A ×2 hidden boost of de-a-cand-1, half of its ranked exposures of panellists deleted
    from the log: too few records for the mismatch rate, the panel's estimate shows it."""
    sim = simulate(scenario("panel_hidden_boost", seed=1, time_scale=0.15))
    found = integrity(run(sim))
    assert not [s for _, s in found if s == "panel_mismatch"]
    f = found[("de-bundestag-sim", "panel_amplification:de-a-cand-1")]
    decoded = E.decode(f.evidence, detector="log_integrity")
    assert decoded.error is None and decoded.evidence is not None
    typed = decoded.evidence.panel_amplification  # type: ignore[union-attr]
    assert isinstance(typed, E.PanelAmplification)
    assert f.evidence["version"] == 2 and typed.subject == "de-a-cand-1"
    assert E.encode(decoded.evidence) == f.evidence  # type: ignore[arg-type]  # round trip
    assert typed.panel.ratio > 1 > typed.log.ratio  # the log shows suppression, not a boost
    assert f.effect == pytest.approx(typed.panel.ratio / typed.log.ratio)
    assert f.ci_low > 1.1 and f.p_value < 0.05
    text = msgspec.json.encode([g.evidence for g in found.values()]).decode()
    assert not [u for u in {r["user"] for r in sim.panel} if u in text]


def test_honest_platforms_of_the_adversaries_size_raise_none_of_these_checks() -> None:
    """The null of the three scenarios above (6,000 users, 1,500 panellists)."""
    sim = simulate(
        scenario("honest_panel", seed=21, n_users=6000, panel_users=1500, time_scale=0.15)
    )
    assert not integrity(run(sim))
