"""rank_uplift on synthetic ranking logs: score above organic, against everyone's adjustment."""

from __future__ import annotations

import math

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
        hidden={"acc-1": 1.5, "acc-4": 0.6},
        disclosed={"acc-2": 2.0},
        organic_logged={"acc-3": 1.5},
        platform_shift=0.4,
    )
    ex, rk = platform_stream(21, plan, reach=6)
    return run(config(disclosures=DISCLOSE_ACC2), ex, rk, detectors=["rank_uplift"])


def test_hidden_boost_and_suppression_are_measured_exactly(planted) -> None:
    _, out = planted
    found = alarms(out, "rank_uplift")
    up, down = found[("rank_uplift", "acc-1")], found[("rank_uplift", "acc-4")]
    assert up.kind == "amplification" and down.kind == "suppression"
    # every score moved by log(1.5) on top of the platform-wide +0.4: the reference of the
    # control items (unregistered accounts) removes it
    for f, factor in ((up, 1.5), (down, 0.6)):
        ev = f.evidence
        assert ev["uplift"]["log_odds"] == pytest.approx(math.log(factor), abs=0.01)
        assert ev["reference"]["mean_uplift"] == pytest.approx(0.4, abs=1e-3)
        # the effect is on exposure: the uplift through the platform's elasticity (exposure
        # ∝ exp(score) in this synthetic platform: β ≈ 1, so the exposure factor is `factor`)
        assert ev["elasticity"]["beta"] == pytest.approx(1.0, abs=0.2)
        assert f.effect == pytest.approx(factor, rel=0.1)
        assert f.ci_low <= factor <= f.ci_high
        assert f.ci_low <= f.effect <= f.ci_high and not f.ci_low <= 1 <= f.ci_high
        assert f.p_value < 1e-6
        assert ev["counts"]["entries"] == f.n_exposures > 0
        assert ev["uplift"]["mean_raw"] == pytest.approx(math.log(factor) + 0.4, abs=0.02)
        assert "mean_displacement" in ev["slot_vs_organic"]
        assert ev["crossed"]["log_e"] >= ev["test"]["log_threshold"]


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


def test_group_level_boost_pools_its_members() -> None:
    """×1.2 on every member of party-b, on a platform whose legitimate per-item score
    adjustments have sd 0.3: the party pools its members' items, so its minimum detectable
    effect is below each member's and it is found, with the planted uplift in its interval."""
    plan = Plan(hidden={"acc-4": 1.2, "acc-5": 1.2, "acc-6": 1.2}, adjustment_sd=0.3)
    ex, rk = platform_stream(22, plan, reach=10, items_per_day=12)
    eng, out = run(config(), ex, rk, detectors=["rank_uplift"])
    found = alarms(out, "rank_uplift")
    assert ("rank_uplift", "party-b") in found
    mde = {r.subject: r.mde_up for r in out.detectability_rows}
    assert all(mde["party-b"] < mde[a] for a in ("acc-4", "acc-5", "acc-6"))
    f = found[("rank_uplift", "party-b")]
    lo, hi = f.evidence["uplift"]["ci"]
    assert lo <= math.log(1.2) <= hi
    assert f.severity in ("low", "medium", "high")
    assert ("rank_uplift", "party-a") not in found


def test_per_item_legitimate_adjustments_are_not_uplift() -> None:
    """Every item carries its own legitimate adjustment (sd 0.5), shared by all its slate
    entries: with slates as the only clusters this null platform gave z-scores of several
    sd; with items as clusters it is quiet."""
    ex, rk = platform_stream(25, Plan(adjustment_sd=0.5), reach=4)
    eng, out = run(config(), ex, rk, detectors=["rank_uplift"])
    assert not alarms(out)
    panel = next(iter(eng.detectors[0]._panels.values()))
    z = panel.estimate / np.sqrt(panel.variance)
    assert np.nanmax(np.abs(z)) < 3.5
    # the slate-only variance would have been several times smaller
    s = panel.sums
    theta = s["u"] / s["n"]
    slate_only = (
        (s["s_a2"] - 2 * theta * s["s_an"] + theta**2 * s["s_n2"])
        / s["n"] ** 2
        * s["s_g"]
        / (s["s_g"] - 1)
    )
    assert np.nanmedian(panel.variance[:6] / slate_only[:6]) > 3


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


@pytest.mark.parametrize(
    "params",
    [
        {"tau": -1},
        {"margin": 0.5},
        {"score_resolution": 0},
        {"min_slates": 1},
        {"min_items": 1},
        {"min_sd": 0.05},
    ],
)
def test_bad_parameters_are_config_errors(params) -> None:
    with pytest.raises(ConfigError, match="detection.rank_uplift"):
        run(config(detection={"rank_uplift": params}), [], [])


def test_two_way_cluster_variance_against_direct_sums() -> None:
    """``V_items + V_slates − V_entries`` from the running moments = computed directly."""
    from detectors.rank_uplift import two_way_cluster_var

    rng = np.random.default_rng(4)
    n = 400
    item = rng.integers(0, 40, n)
    slate = rng.integers(0, 120, n)
    u = rng.normal(0, 0.2, 40)[item] + rng.normal(0, 0.1, 120)[slate] + rng.normal(0, 0.05, n)
    theta = u.mean()

    def cluster(ids: np.ndarray) -> float:
        a = np.bincount(ids, weights=u)
        m = np.bincount(ids).astype(float)
        g = int((m > 0).sum())
        return float(((a - theta * m) ** 2).sum()) / n**2 * g / (g - 1)

    direct = cluster(item) + cluster(slate) - float(((u - theta) ** 2).sum()) / n**2
    a_i, n_i = np.bincount(item, weights=u), np.bincount(item).astype(float)
    a_s, n_s = np.bincount(slate, weights=u), np.bincount(slate).astype(float)
    one = np.ones(1)
    got = two_way_cluster_var(
        one * theta,
        one * n,
        one * (u * u).sum(),
        one * u.sum(),
        one * (a_s**2).sum(),
        one * (a_s * n_s).sum(),
        one * (n_s**2).sum(),
        one * (n_s > 0).sum(),
        one * (a_i**2).sum(),
        one * (a_i * n_i).sum(),
        one * (n_i**2).sum(),
        one * (n_i > 0).sum(),
    )
    assert got[0] == pytest.approx(direct, rel=1e-9)
