"""score_shift: the same items' scores jump at the window start (organic-logged boosts)."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.core.config import ConfigError
from tests.detectors.synth import Plan, alarms, config, platform_stream, run

DISCLOSE_ACC2 = [
    {
        "platform": "chirp",
        "intervention": "civic-1",
        "label": "promoted",
        "actors": ["acc-2"],
        "regions": ["DE"],
    }
]


@pytest.fixture(scope="module")
def planted():
    plan = Plan(
        organic_logged={"acc-1": 1.5},
        hidden={"acc-4": 0.6},
        disclosed={"acc-2": 2.0},
        platform_shift=0.3,
        posting={"acc-3": 3.0},
    )
    ex, rk = platform_stream(31, plan, reach=20, items_per_day=24)
    # a small platform: fewer reference items than the default minimum of 30
    cfg = config(disclosures=DISCLOSE_ACC2, detection={"score_shift": {"min_reference": 10}})
    return run(cfg, ex, rk, detectors=["score_shift"])


def test_organic_logged_boost_is_found(planted) -> None:
    _, out = planted
    found = alarms(out, "score_shift")
    f = found[("score_shift", "acc-1")]
    assert f.kind == "amplification"
    assert f.ci_low <= 1.5 <= f.ci_high and f.ci_low > 1.0
    ev = f.evidence
    assert ev["components"]["within"]["items"] > 0 and ev["components"]["level"]["items"] > 0
    assert ev["references"]["within_reference"] == pytest.approx(0.3, abs=0.05)
    assert ev["test"]["log_e_max"] >= ev["test"]["log_threshold"]
    # found within hours of the window start, not at its end
    assert (f.event_time.timestamp() * 1000 - 1_777_852_800_000) <= 12 * 3_600_000
    down = found[("score_shift", "acc-4")]
    assert down.kind == "suppression" and down.ci_low <= 0.6 <= down.ci_high


def test_platform_wide_change_posting_and_disclosed_boost_are_not_flagged(planted) -> None:
    _, out = planted
    flagged = {s for _, s in alarms(out, "score_shift")}
    assert not flagged & {"acc-2", "acc-3", "acc-5", "acc-6"}


def test_null_stream_is_quiet_with_detectability() -> None:
    ex, rk = platform_stream(32, Plan(platform_shift=-0.2), reach=3)
    _, out = run(config(), ex, rk, detectors=["score_shift"])
    assert not alarms(out)
    rows = [r for r in out.detectability_rows if r.detector == "score_shift"]
    assert len(rows) == 8
    assert all(r.mde_up is None or r.mde_up > 1 for r in rows)
    assert sum(r.mde_up is not None for r in rows) >= 6


@pytest.mark.parametrize("params", [{"horizon_hours": 0}, {"min_entries": 1}, {"prior_items": -1}])
def test_bad_parameters_are_config_errors(params) -> None:
    with pytest.raises(ConfigError, match="detection.score_shift"):
        run(config(detection={"score_shift": params}), [], [])


def test_a_new_ranking_model_is_one_platform_change_not_amplification() -> None:
    """Every score ×1.3 from the window start (selection too): accounts at the top and the
    bottom of the score range move most; all of it is the platform's, reported once."""
    ex, rk = platform_stream(
        33, Plan(platform_scale=1.3), reach=30, quality_sd=0.6, items_per_day=48
    )
    _, out = run(
        config(detection={"score_shift": {"min_reference": 10}}), ex, rk, detectors=["score_shift"]
    )
    assert not alarms(out)
    changes = [f for f in out.latest_findings.values() if f.kind == "platform_change"]
    assert len(changes) == 1
    f = changes[0]
    assert f.subject_kind == "platform" and f.subject == "chirp" and f.severity == "low"
    assert f.ci_low <= 1.3 <= f.ci_high
    assert f.effect == pytest.approx(1.3, abs=0.1)


def test_between_item_variance_is_not_the_biased_median_rule() -> None:
    """The old ``max(0, median((Δ − c)² − v)/0.4549)`` is often exactly 0 where items do
    vary beyond their within-item noise; the Paule–Mandel equation is not."""
    from detectors._holdout_stats import item_variance

    rng = np.random.default_rng(2)
    n = 4000
    v = rng.gamma(2.0, 0.02, n)  # heterogeneous within-item variances
    delta = rng.normal(0, np.sqrt(v + 0.01))  # between-item variance 0.01
    old = max(0.0, float(np.median(delta**2 - v)) / 0.4549)
    new = item_variance(delta, v, np.ones(n), n_params=0)
    assert old < 0.005  # biased low: σ² − 1.2·median(v) territory
    assert new == pytest.approx(0.01, rel=0.15)
