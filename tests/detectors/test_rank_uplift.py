"""rank_uplift on synthetic ranking logs: score above organic, against everyone's adjustment."""

from __future__ import annotations

import math

import pytest

from monitor.config import ConfigError
from tests.detectors.synth import Plan, alarms, config, platform_stream, run

DISCLOSE_ACC2 = [{"platform": "chirp", "intervention": "civic-1", "label": "promoted",
                  "actors": ["acc-2"], "regions": ["DE"]}]


@pytest.fixture(scope="module")
def planted():
    plan = Plan(hidden={"acc-1": 1.5, "acc-4": 0.6}, disclosed={"acc-2": 2.0},
                organic_logged={"acc-3": 1.5}, platform_shift=0.4)
    ex, rk = platform_stream(21, plan, reach=6)
    return run(config(disclosures=DISCLOSE_ACC2), ex, rk, detectors=["rank_uplift"])


def test_hidden_boost_and_suppression_are_measured_exactly(planted) -> None:
    _, out = planted
    found = alarms(out, "rank_uplift")
    up, down = found[("rank_uplift", "acc-1")], found[("rank_uplift", "acc-4")]
    assert up.kind == "amplification" and down.kind == "suppression"
    # every score moved by log(1.5) on top of the platform-wide +0.4: the median removes it
    assert up.effect == pytest.approx(1.5, rel=0.02)
    assert down.effect == pytest.approx(0.6, rel=0.02)
    for f in (up, down):
        assert f.ci_low <= f.effect <= f.ci_high and not f.ci_low <= 1 <= f.ci_high
        assert f.p_value < 1e-6
        ev = f.evidence
        assert ev["counts"]["entries"] == f.n_exposures > 0
        assert ev["mean_uplift_raw"] == pytest.approx(math.log(f.effect) + 0.4, abs=0.02)
        assert ev["reference_median_uplift"] == pytest.approx(0.4, abs=1e-3)
        assert "mean_displacement" in ev["slot_vs_organic"]
        assert ev["crossed"]["log_e"] >= ev["test"]["log_threshold"]
    assert up.severity == "medium"  # bound nearest 1 of ≈1.5 lies in [1.2, 1.5)


def test_platform_wide_adjustment_and_organic_logged_boost_are_not_flagged(planted) -> None:
    _, out = planted
    flagged = {s for _, s in alarms(out, "rank_uplift")}
    assert "acc-3" not in flagged  # organic_score = score: invisible here by design
    assert not flagged & {"acc-5", "acc-6"}


def test_disclosed_entries_are_excluded(planted) -> None:
    eng, out = planted
    assert ("rank_uplift", "acc-2") not in alarms(out)
    panel = next(iter(eng.detectors[0]._panels.values()))
    assert panel.excluded_disclosed > 0


def test_group_level_boost_too_small_per_actor() -> None:
    """×1.15 on every member of party-b, with score noise of sd 0.3: below every member's
    minimum detectable effect, found on the party."""
    plan = Plan(hidden={"acc-4": 1.15, "acc-5": 1.15, "acc-6": 1.15})
    ex, rk = platform_stream(22, plan, reach=2)
    eng, out = run(config(detection={"rank_uplift": {"min_sd": 0.3}}), ex, rk,
                   detectors=["rank_uplift"])
    found = alarms(out, "rank_uplift")
    assert ("rank_uplift", "party-b") in found
    assert not {"acc-4", "acc-5", "acc-6"} & {s for _, s in found}
    mde = {r.subject: r.mde_up for r in out.detectability_rows}
    assert all(mde[a] > 1.15 for a in ("acc-4", "acc-5", "acc-6")) and mde["party-b"] < 1.15
    assert found[("rank_uplift", "party-b")].effect == pytest.approx(1.15, rel=0.02)
    assert found[("rank_uplift", "party-b")].severity in ("medium", "high")  # group: +1 level
    assert ("rank_uplift", "party-a") not in found


def test_detectability_rows_and_no_organic_scores() -> None:
    ex, rk = platform_stream(23, Plan(), reach=3)
    for r in rk:
        for it in r["items"]:
            it["organic_score"] = None
    eng, out = run(config(), ex, rk, detectors=["rank_uplift"])
    assert not out.latest_findings
    assert [r for r in out.detectability_rows if r.detector == "rank_uplift"] == []


def test_null_platform_is_quiet_and_detectability_is_reported() -> None:
    ex, rk = platform_stream(24, Plan(platform_shift=-0.3), reach=4)
    _, out = run(config(), ex, rk, detectors=["rank_uplift"])
    assert not alarms(out)
    rows = [r for r in out.detectability_rows if r.detector == "rank_uplift"]
    assert len(rows) == 8
    assert all(r.mde_up is not None and 1 < r.mde_up < 1.5 for r in rows)


@pytest.mark.parametrize("params", [{"tau": -1}, {"margin": 0.5}, {"min_sd": 0},
                                    {"min_slates": 1}])
def test_bad_parameters_are_config_errors(params) -> None:
    with pytest.raises(ConfigError, match="detection.rank_uplift"):
        run(config(detection={"rank_uplift": params}), [], [])
