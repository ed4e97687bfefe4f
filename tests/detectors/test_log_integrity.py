"""``log_integrity``: the sequential SRM e-process, and the detector end to end on simulated
platforms — an under-logged holdout arm, unexplained exposures and outages are flagged; an
honest platform is not (calibrated on null runs)."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from detectors import REGISTRY, default_names
from detectors.integrity import beta_prior, srm_log_e
from detectors.registry import alpha_shares
from monitor.app.replay import drive
from monitor.core.config import ConfigError, parse_config
from monitor.engine.run import Engine
from streams.files import merge_by_time
from streams.memory import ListOutput, records_from_dicts
from streams.simulator import scenario, simulate
from streams.simulator.simulation import Simulation

FAR = 4_000_000_000_000


def realistic_alpha(alpha: float = 0.05) -> float:
    """log_integrity's share of ``alpha`` when every registered detector runs."""
    return alpha_shares(alpha, default_names())["log_integrity"]


def run(sim: Simulation, alpha: float | None = None, **params: Any) -> ListOutput:
    cfg = dict(sim.config)
    detection = dict(cfg.get("detection") or {})
    if alpha is not None:
        detection["alpha"] = alpha
    if params:
        detection["log_integrity"] = params
    cfg["detection"] = detection
    out = ListOutput()
    engine = Engine(parse_config(cfg), out, detectors=["log_integrity"], now_ms=lambda: FAR)
    streams = [
        records_from_dicts("exposure", sim.exposures),
        records_from_dicts("ranking", sim.rankings),
    ]
    if sim.panel:
        streams.append(records_from_dicts("panel", sim.panel))
    drive(engine, merge_by_time(streams))
    return out


def by_subject(out: ListOutput) -> dict[tuple[str, str, str], Any]:
    return {(f.platform, f.window_id, f.subject): f for f in out.latest_findings.values()}


# ------------------------------------------------------------------------ the e-process itself


def _reject_rate(
    p: float,
    share: float,
    tol: float,
    alpha: float,
    rng: np.random.Generator,
    runs: int = 2000,
    users: int = 3000,
    every: int = 25,
) -> float:
    lo, hi = share * (1 - tol), share * (1 + tol)
    a, b = beta_prior(share, 0.15)
    looks = np.arange(every, users + 1, every)
    k = np.cumsum(rng.random((runs, users)) < p, axis=1)[:, looks - 1]
    log_e = srm_log_e(k, np.broadcast_to(looks, k.shape), lo, hi, a, b)
    return float((log_e.max(axis=1) >= math.log(1 / alpha)).mean())


@pytest.mark.parametrize("p", [0.2, 0.198, 0.202])  # the declared share and the null's edges
def test_srm_e_process_is_valid_under_continuous_monitoring(p: float) -> None:
    rng = np.random.default_rng(11)
    alpha, runs = 0.05, 1200
    rate = _reject_rate(p, 0.2, 0.01, alpha, rng, runs=runs)
    # Ville: P(sup_n E_n >= 1/alpha) <= alpha; allow the binomial 99.9 % quantile of noise.
    assert rate <= stats.binom.ppf(0.999, runs, alpha) / runs, rate


def test_srm_e_process_detects_a_fifth_of_the_holdout_missing() -> None:
    rng = np.random.default_rng(12)
    p = 0.2 * 0.8 / (0.2 * 0.8 + 0.8)  # holdout share once a fifth of holdout users is gone
    assert _reject_rate(p, 0.2, 0.01, realistic_alpha() / 2, rng, runs=400, users=6000) > 0.97


def test_srm_log_e_matches_a_direct_integral() -> None:
    from scipy import integrate

    share, lo, hi, k, n = 0.2, 0.198, 0.202, 150, 1000
    a, b = beta_prior(share, 0.15)
    dens = stats.beta(a, b).pdf

    def lr(q: float, null: float) -> float:
        return math.exp(k * math.log(q / null) + (n - k) * math.log((1 - q) / (1 - null)))

    low = integrate.quad(lambda q: dens(q) * lr(q, lo), 0, lo, limit=200)[0] / stats.beta(a, b).cdf(
        lo
    )
    high = integrate.quad(lambda q: dens(q) * lr(q, hi), hi, 1, limit=200)[0] / stats.beta(a, b).sf(
        hi
    )
    assert float(srm_log_e(k, n, lo, hi, a, b)) == pytest.approx(
        math.log((low + high) / 2), rel=1e-6
    )


# ----------------------------------------------------------------- the detector, end to end


def test_registered_with_a_share_of_the_alpha_budget() -> None:
    spec = REGISTRY["log_integrity"]
    assert spec.kinds == ("log_integrity",) and spec.budget_weight > 0
    assert 0 < realistic_alpha() < 0.05


@pytest.fixture(scope="module")
def two_platforms() -> Simulation:
    """chirp drops a fifth of its holdout users' logs; echo logs everything."""
    return simulate(
        scenario(
            "holdout_underlogging",
            seed=3,
            platforms=("chirp", "echo"),
            log_fault_platforms=("chirp",),
        )
    )


def test_underlogged_holdout_flagged_and_honest_platform_not(two_platforms: Simulation) -> None:
    sim = two_platforms
    assert sim.config["platforms"] == {
        "chirp": {"holdout_share": 0.2},
        "echo": {"holdout_share": 0.2},
    }
    dropped = sim.truth["faults"]["log"]["holdout_users_dropped"]
    assert dropped["chirp"] > 0 and "echo" not in dropped
    out = run(sim, alpha=realistic_alpha())
    found = by_subject(out)
    assert {k[0] for k in found} == {"chirp"}, found.keys()
    srm = [f for (p, _, s), f in found.items() if s == "holdout_share"]
    assert srm
    for f in srm:
        assert f.kind == "log_integrity" and f.subject_kind == "log"
        assert f.effect < 0.92 and f.ci_high < 1 and f.p_value <= realistic_alpha()
        ev = f.evidence
        assert ev["direction"] == "low" and ev["declared_holdout_share"] == 0.2
        assert ev["users"]["holdout"] + ev["users"]["ranked"] == ev["users"]["total"]
        assert f.effect == pytest.approx(ev["observed_holdout_share"] / 0.2)
    # Minimum detectable share ratios are reported for both platforms.
    mde = {(d.platform, d.window_id): d for d in out.detectability_rows}
    assert {p for p, _ in mde} == {"chirp", "echo"}
    assert all(0.8 < d.mde_down < 1 < d.mde_up < 1.25 for d in mde.values())
    assert all(
        d.flagged == (d.platform == "chirp" and ("chirp", d.window_id, "holdout_share") in found)
        for d in mde.values()
    )


def test_calibration_honest_platforms_raise_no_log_integrity_finding() -> None:
    """30 small honest platforms at alpha 0.05 (all of it for log_integrity), each with a
    panel of 40 users: a false statistical finding per platform-window has probability
    <= 0.05, so <= 0.1 per run (2 windows); the rules raise none on honest logs."""
    runs, false_runs = 30, 0
    for seed in range(100, 100 + runs):
        sim = simulate(
            scenario("honest_logs", seed=seed, n_users=700, time_scale=0.15, panel_users=40)
        )
        out = run(sim, alpha=0.05)
        false_runs += bool(out.latest_findings)
    bound = stats.binom.ppf(0.999, runs, 0.1)
    print(
        f"log_integrity calibration: {false_runs}/{runs} honest runs with a finding "
        f"(bound {bound:.0f})"
    )
    assert false_runs <= bound
    assert false_runs <= 3  # the test is conservative; in practice none


def test_exposures_without_a_logged_slate_flagged() -> None:
    sim = simulate(
        scenario("honest_logs", seed=4, n_users=1500, time_scale=0.15, ranking_log_drop=0.05)
    )
    assert sim.truth["faults"]["log"]["rankings_dropped"] > 0
    found = by_subject(run(sim, alpha=realistic_alpha()))
    links = [f for (_, _, s), f in found.items() if s == "exposure_links"]
    assert links and not [k for k in found if k[2] == "holdout_share"]
    for f in links:
        ev = f.evidence
        assert ev["unknown_request"] == ev["unexplained"] > 0
        assert 0.03 < ev["unexplained_share"] < 0.08
        assert ev["item_not_in_slate"] == 0 and ev["position_mismatch"] == 0
        assert f.n_exposures == ev["exposures_checked"]


def test_outage_flagged_as_event_gap_with_its_times() -> None:
    # Offsets are stretched by time_scale: 2.4–2.8 days → 0.36–0.42 days after start.
    sim = simulate(
        scenario(
            "honest_logs",
            seed=5,
            n_users=1500,
            time_scale=0.15,
            log_outages=((dt.timedelta(days=2.4), dt.timedelta(days=2.8)),),
        )
    )
    found = by_subject(run(sim, alpha=0.05))
    gaps = {k: f for k, f in found.items() if k[2] == "event_gaps"}
    assert gaps, found.keys()
    start = dt.datetime(2026, 5, 1, tzinfo=dt.UTC)
    lo, hi = start + dt.timedelta(days=0.36), start + dt.timedelta(days=0.42)
    for f in gaps.values():
        assert f.p_value is None and f.effect is None
        (gap,) = f.evidence["gaps"]
        g0, g1 = dt.datetime.fromisoformat(gap["start"]), dt.datetime.fromisoformat(gap["end"])
        assert lo - dt.timedelta(minutes=15) <= g0 <= lo + dt.timedelta(minutes=15)
        assert hi - dt.timedelta(minutes=15) <= g1 <= hi + dt.timedelta(minutes=15)
        assert f.event_time == g1
    assert not [k for k in found if k[2] != "event_gaps"]


def test_undeclared_share_is_estimated_in_the_baseline() -> None:
    """Without a declared share the baseline's share is the reference: an arm under-logged
    alike in both periods is consistent with it (only a declared share reveals that), and
    the minimum detectable change is reported."""
    sim = simulate(
        scenario(
            "holdout_underlogging",
            seed=6,
            n_users=1500,
            time_scale=0.15,
            declare_holdout_share=False,
        )
    )
    assert "platforms" not in sim.config
    out = run(sim, alpha=0.05)
    assert not [f for f in out.latest_findings.values() if f.subject == "holdout_share"]
    rows = [d for d in out.detectability_rows if d.detector == "log_integrity"]
    assert rows and all(d.mde_down is None or d.mde_down < 1 for d in rows)


@pytest.mark.parametrize(
    "params, message",
    [
        ({"srm_tolerance": 1.5}, "srm_tolerance"),
        ({"link_tolerance": 0}, "link_tolerance"),
        ({"max_gap_ticks": 0}, "max_gap_ticks"),
        ({"bogus": 1}, "bogus"),
        ({"min_baseline_users": 0}, "min_baseline_users"),
        ({"panel_tolerance": 1}, "panel_tol"),
        ({"panel_match_seconds": 3600}, "at most one tick"),
        ({"switch_tolerance": -0.1}, "switch_tolerance"),
        ({"between_tolerance": 1}, "between_tolerance"),
        ({"exposure_tolerance": 0}, "exposure_tolerance"),
        ({"panel_tau": 0}, "panel_tau"),
        ({"min_panel_users": 1}, "min_panel_users"),
    ],
)
def test_bad_parameters_are_config_errors(params: dict[str, Any], message: str) -> None:
    from tests.factories import config_dict

    with pytest.raises(ConfigError, match=message):  # an unknown one already when read
        cfg = parse_config(config_dict(detection={"alpha": 0.05, "log_integrity": params}))
        Engine(cfg, ListOutput(), detectors=["log_integrity"])


def test_the_default_panel_match_fits_short_ticks() -> None:
    """120 s by default, one tick when ticks are shorter: a configuration with 15-second
    ticks and no integrity parameters is valid (it used to stop the live worker)."""
    from tests.factories import config_dict

    for tick_minutes, match in ((15, 120.0), (0.25, 15.0)):
        cfg = parse_config(
            config_dict(
                detection={"alpha": 0.05, "tick_minutes": tick_minutes, "lateness_minutes": 0.1}
            )
        )
        engine = Engine(cfg, ListOutput(), detectors=["log_integrity"])
        (detector,) = engine.detectors
        assert detector.panel_match_seconds == match


@given(
    st.lists(
        st.tuples(st.text(min_size=1, max_size=6), st.integers(1, 1_000_000)),
        min_size=1,
        max_size=12,
        unique_by=lambda t: t[0],
    ),
    st.text(min_size=1, max_size=6),
)
def test_compact_slate_answers_like_a_dict(slots, probe):
    """The compact slate string gives the same positions as {item: position}, for any ids
    (separator characters included: those slates stay dicts)."""
    from detectors.integrity._slates import compact, position
    from monitor.core.contract import RankedItem

    items = [RankedItem(item=i, actor="a", position=p, score=0.0) for i, p in slots]
    slate = compact(items)
    want = dict(slots)
    for item in [*want, probe]:
        assert position(slate, item) == want.get(item)


def _return_test_rate(runs: int, rho: float, tolerance: float, seed: int) -> float:
    """Share of runs whose returning-users e-process reaches 1/0.05: 400 baseline users
    (a fifth holdout) with heavy-tailed activity, the holdout arm's return hazard × rho."""
    from detectors.integrity._returns import ReturnTest

    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(runs):
        arm = (rng.random(400) < 0.2).astype(int)
        hazard = rng.lognormal(0, 1.0, arm.size) * np.where(arm == 1, rho, 1.0)
        t = rng.exponential(1 / hazard)
        back = np.flatnonzero(t < 0.5)
        test = ReturnTest(tolerance)
        for a in arm.tolist():
            test.add(a)
        best = 0.0
        for i in back[np.argsort(t[back])].tolist():
            test.back(int(arm[i]), int(arm[i]))
            best = max(best, test.log_e)
        hits += best >= math.log(20)
    return hits / runs


@pytest.mark.parametrize(("rho", "tolerance"), [(1.0, 0.0), (0.95, 0.05), (1.05, 0.05)])
def test_returning_users_e_process_is_valid(rho: float, tolerance: float) -> None:
    """Ville under the null, at the null's edges, whatever the users' activity levels."""
    runs = 600
    rate = _return_test_rate(runs, rho, tolerance, seed=int(rho * 100))
    assert rate <= stats.binom.ppf(0.999, runs, 0.05) / runs, rate


def test_returning_users_e_process_detects_a_thinned_holdout_arm() -> None:
    assert _return_test_rate(200, 0.4, 0.05, seed=9) > 0.5
