"""holdout_shift on small synthetic platforms: planted shifts found, organic changes not."""

from __future__ import annotations

import math

import pytest

from monitor.config import ConfigError
from tests.detectors.synth import T0, Plan, alarms, config, platform_stream, run

DISCLOSE_ACC2 = [{"platform": "chirp", "intervention": "civic-1", "label": "promoted",
                  "actors": ["acc-2"], "regions": ["DE"]}]


@pytest.fixture(scope="module")
def planted():
    plan = Plan(hidden={"acc-1": 3.0, "acc-4": 1 / 3}, posting={"acc-3": 3.0},
                disclosed={"acc-2": 2.0})
    ex, rk = platform_stream(11, plan, reach=60, with_rankings=False)
    return run(config(disclosures=DISCLOSE_ACC2), ex, rk, detectors=["holdout_shift"])


def test_planted_amplification_and_suppression_are_found(planted) -> None:
    _, out = planted
    found = alarms(out, "holdout_shift")
    up, down = found[("holdout_shift", "acc-1")], found[("holdout_shift", "acc-4")]
    assert up.kind == "amplification" and down.kind == "suppression"
    for f, truth in ((up, 3.0), (down, 1 / 3)):
        assert f.ci_low < f.effect < f.ci_high
        assert f.ci_low <= truth <= f.ci_high
        assert not f.ci_low <= 1.0 <= f.ci_high
        assert f.p_value <= 0.05
        assert f.n_exposures > 1000
        assert f.severity in ("low", "medium", "high", "critical")
        # one look per day: the first (and only) look is at the end of the 1-day window
        assert f.event_time.timestamp() * 1000 == T0 + 24 * 3_600_000
        ev = f.evidence
        assert set(ev["counts"]) == {"baseline", "window"}
        assert ev["counts"]["window"]["exposures_holdout"] > 0
        assert ev["test"]["log_e_max"] >= ev["test"]["log_threshold"]
        assert ev["crossed"]["tick"] >= 1 and "log_effect" in ev["crossed"]


def test_posting_more_is_not_amplification(planted) -> None:
    """acc-3 posts 3× as many items in the window: both arms see them, the ratio cancels."""
    _, out = planted
    assert ("holdout_shift", "acc-3") not in alarms(out)


def test_disclosed_boost_is_informational_not_an_alarm(planted) -> None:
    _, out = planted
    assert ("holdout_shift", "acc-2") not in alarms(out)
    disclosed = [f for f in out.latest_findings.values() if f.subject == "acc-2"]
    assert all(f.kind == "disclosed" for f in disclosed)
    for f in disclosed:
        assert f.evidence["covering_disclosures"][0]["intervention"] == "civic-1"
        assert f.evidence["disclosures_checked"] == f.evidence["covering_disclosures"]
        assert f.severity == "low"


def test_unplanted_subjects_stay_quiet(planted) -> None:
    _, out = planted
    quiet = {"acc-5", "acc-6"}
    assert not quiet & {s for _, s in alarms(out)}


def test_detectability_for_every_subject(planted) -> None:
    eng, out = planted
    rows = [r for r in out.detectability_rows if r.detector == "holdout_shift"]
    assert {r.subject for r in rows} == {f"acc-{k}" for k in range(1, 7)} | {"party-a",
                                                                               "party-b"}
    for r in rows:
        assert r.mde_up is not None and r.mde_up > 1.0
        assert r.mde_down == pytest.approx(1 / r.mde_up)
    flagged = {r.subject for r in rows if r.flagged}
    assert {"acc-1", "acc-4"} <= flagged
    # the flagged effects exceed what was detectable
    f = alarms(out)[("holdout_shift", "acc-1")]
    mde = next(r.mde_up for r in rows if r.subject == "acc-1")
    assert math.log(f.effect) > 0.5 * math.log(mde)


def test_null_platform_gives_no_alarm() -> None:
    ex, rk = platform_stream(12, Plan(), reach=60, with_rankings=False)
    _, out = run(config(), ex, rk, detectors=["holdout_shift"])
    assert not alarms(out)


def test_without_a_baseline_nothing_is_tested() -> None:
    ex, rk = platform_stream(13, Plan(hidden={"acc-1": 3.0}), reach=10, with_rankings=False)
    ex = [e for e in ex if e["ts"] >= T0]
    eng, out = run(config(), ex, rk, detectors=["holdout_shift"])
    assert not out.latest_findings
    rows = [r for r in out.detectability_rows if r.detector == "holdout_shift"]
    assert len(rows) == 8 and all(r.mde_up is None and not r.flagged for r in rows)


@pytest.mark.parametrize("params", [{"tau": 0}, {"margin": 0.9}, {"min_items": 1},
                                    {"look_hours": 0}, {"nonsense": 1}])
def test_bad_parameters_are_config_errors(params) -> None:
    with pytest.raises(ConfigError, match="detection.holdout_shift"):
        run(config(detection={"holdout_shift": params}), [], [])
