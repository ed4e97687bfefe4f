"""holdout_shift on small synthetic platforms: planted shifts found, organic changes not;
its statistics against direct computations; the two-stage sums add across user partitions."""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
import pytest

from detectors import evidence
from detectors._holdout_look import hour_weights, look_arrays, overdispersion
from detectors._holdout_stats import PairedSums, paired_user_var
from detectors._holdout_sums import HoldoutReducer, HoldoutState, WindowInfo
from detectors._subjects import window_subjects
from monitor.core.config import ConfigError
from monitor.core.contract import decode_obj
from tests.detectors.synth import T0, Plan, alarms, config, platform_stream, run


def _ms(iso: str) -> int:
    import datetime as dt

    return int(dt.datetime.fromisoformat(iso).timestamp() * 1000)


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
        hidden={"acc-1": 3.0, "acc-4": 1 / 3}, posting={"acc-3": 3.0}, disclosed={"acc-2": 2.0}
    )
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
        # the fixed-time 95 % interval is narrower and still covers the planted factor
        lo95, hi95 = f.evidence["effect"]["ci95"]
        assert f.ci_low < lo95 <= truth <= hi95 < f.ci_high
        assert f.p_value <= 0.05
        assert f.n_exposures > 1000
        assert f.severity in ("low", "medium", "high", "critical")
        # looks every tick: found before the 1-day window ends (the old daily look came at
        # its end)
        assert T0 < f.event_time.timestamp() * 1000 < T0 + 20 * 3_600_000
        ev = f.evidence
        assert set(ev["counts"]) == {"baseline", "window"}
        assert ev["counts"]["window"]["exposures_holdout"] > 0
        assert ev["test"]["log_e_max"] >= ev["test"]["log_threshold"]
        assert ev["crossed"]["tick"] >= 1 and "log_effect" in ev["crossed"]
        # the synthetic boost applies to items posted in the window: exposures of items
        # posted late in the baseline carry no boost, so the onset shows within hours
        onset = ev["effect"]["onset"]["estimated_onset"]
        assert T0 <= _ms(onset) <= T0 + 8 * 3_600_000, onset
        assert ev["scope"] == {"surface": None, "region": "DE"}
        # the series for the evidence: hourly, baseline then window, with the boundary, the
        # onset and the crossing marked (typed: detectors.evidence)
        typed = evidence.decode_finding(f)
        assert isinstance(typed.evidence, evidence.HoldoutShiftEvidence), typed.error
        series = typed.evidence.series
        assert series is not None and series.arms
        assert [p.period for p in series.points[:24]] == ["baseline"] * 24
        window_rows = [p for p in series.points if p.period == "window" and p.log_e is not None]
        bounds = [p.boundary for p in window_rows if p.boundary is not None]
        assert bounds and all(b > 0 for b in bounds)
        assert all(p.log_threshold == ev["test"]["log_threshold"] for p in window_rows)
        window = [p for p in series.points if p.period == "window"]
        assert sum(p.exposures_per_user_ranked is not None for p in window[:12]) >= 6
        assert series.crossing == f.event_time
        assert any(p.t == series.crossing for p in series.points)
        assert series.onset is not None and series.onset.isoformat() == onset.replace("Z", "+00:00")
        assert len(series.points) <= evidence.MAX_POINTS


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
    assert {r.subject for r in rows} == {f"acc-{k}" for k in range(1, 7)} | {"party-a", "party-b"}
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


@pytest.mark.parametrize(
    "params",
    [
        {"tau_scale": 0},
        {"margin": 0.9},
        {"min_items": 0},
        {"scope_share": 1.0},
        {"look_hours": 24},
        {"nonsense": 1},
    ],
)
def test_bad_parameters_are_config_errors(params) -> None:
    with pytest.raises(ConfigError, match="detection.holdout_shift"):
        run(config(detection={"holdout_shift": params}), [], [])


def test_direction_effect_and_interval_always_agree(planted) -> None:
    """Every amplification has effect and interval above 1, every suppression below."""
    _, out = planted
    for f in out.finding_updates:
        if f.kind == "amplification":
            assert 1 < f.ci_low <= f.effect <= f.ci_high
        elif f.kind == "suppression":
            assert f.ci_low <= f.effect <= f.ci_high < 1


# -- the statistics against direct computations --------------------------------------------


def test_paired_user_variance_is_the_delta_method_over_users() -> None:
    """From the additive sums = the direct sum of squared per-user influences."""
    rng = np.random.default_rng(3)
    arms = []
    direct = 0.0
    for n_users in (400, 120):
        rate = rng.gamma(1.5, 1.0, n_users)
        b, w = rng.poisson(rate * 20), rng.poisson(rate * 18)
        x, y = rng.binomial(b, 0.1), rng.binomial(w, 0.12)
        phi = y / y.sum() - w / w.sum() - x / x.sum() + b / b.sum()
        direct += float((phi * phi).sum()) * n_users / (n_users - 1)
        one = np.ones(1)
        arms.append(
            PairedSums(
                x=one * x.sum(),
                y=one * y.sum(),
                xx=one * (x * x).sum(),
                yy=one * (y * y).sum(),
                xy=one * (x * y).sum(),
                xb=one * (x * b).sum(),
                xw=one * (x * w).sum(),
                yb=one * (y * b).sum(),
                yw=one * (y * w).sum(),
                b=one * b.sum(),
                w=one * w.sum(),
                bb=one * (b * b).sum(),
                ww=one * (w * w).sum(),
                bw=one * (b * w).sum(),
                users=one * n_users,
            )
        )
    assert paired_user_var(arms[0], arms[1])[0] == pytest.approx(direct, rel=1e-9)


def test_paired_variance_matches_a_bootstrap_over_users() -> None:
    rng = np.random.default_rng(8)
    n = 600
    rate = rng.gamma(0.7, 1.0, n)  # persistent users: pairing helps
    b, w = rng.poisson(rate * 30), rng.poisson(rate * 30)
    x, y = rng.binomial(b, 0.05), rng.binomial(w, 0.05)

    def stat(ix: np.ndarray) -> float:
        return float(np.log(y[ix].sum() / w[ix].sum()) - np.log(x[ix].sum() / b[ix].sum()))

    boots = [stat(rng.integers(0, n, n)) for _ in range(3000)]
    phi = y / y.sum() - w / w.sum() - x / x.sum() + b / b.sum()
    assert math.sqrt(float((phi * phi).sum())) == pytest.approx(float(np.std(boots)), rel=0.08)


def test_hour_weights_match_the_baseline_to_the_window_hours() -> None:
    cfg = config(days=1)
    w = cfg.windows[0]
    info = WindowInfo.of(cfg, w, window_subjects(cfg, w))
    wts = hour_weights(info, info.w0, info.w0 + 3 * 3_600_000)  # 00:00-03:00 UTC
    assert wts[:3] == pytest.approx([1.0, 1.0, 1.0]) and wts[3:].sum() == 0
    half = hour_weights(info, info.w0, info.w0 + 90 * 60_000)  # 1.5 hours
    assert half[:2] == pytest.approx([1.0, 0.5])
    full = hour_weights(info, info.w0, info.w1)
    assert full == pytest.approx(np.ones(24))


def _exposures(seed: int) -> list:
    ex, _ = platform_stream(seed, Plan(hidden={"acc-1": 2.0}), reach=8, with_rankings=False)
    return [decode_obj("exposure", e) for e in ex]


def test_sums_of_user_partitions_add_up_to_the_whole() -> None:
    """The scale-out property: reduce each user partition's events separately, merge the
    partial sums in any order — the merged state equals the single-process one."""
    cfg = config(days=1)
    infos = {w.id: WindowInfo.of(cfg, w, window_subjects(cfg, w)) for w in cfg.windows}
    events = sorted(_exposures(5), key=lambda e: e.ts)
    ticks = defaultdict(list)
    for e in events:
        ticks[e.ts // 900_000].append(e)
    whole, split = HoldoutState(infos), HoldoutState(infos)
    one = HoldoutReducer(cfg, infos)
    parts = [HoldoutReducer(cfg, infos) for _ in range(3)]
    for idx in sorted(ticks):
        tick = ticks[idx]
        whole.merge(one.reduce(tick))
        sums = [p.reduce([e for e in tick if hash(e.user) % 3 == j]) for j, p in enumerate(parts)]
        for s in reversed(sums):  # any order
            split.merge(s)
    for key, cell in whole.cells.items():
        other = split.cells[key]
        for arm in (0, 1):
            ids = cell.index.names
            order = [other.index.ids[a] for a in ids]
            assert np.array_equal(cell.base[arm][: len(ids)], other.base[arm][order])
            assert np.array_equal(cell.win[arm][: len(ids)], other.win[arm][order])
            assert np.array_equal(cell.traffic_win[arm], other.traffic_win[arm])
            assert np.array_equal(cell.active_win[arm], other.active_win[arm])
        for period in ("B", "W"):
            order = [other.index.ids[a] for a in cell.index.names]
            n = len(order)
            assert np.allclose(cell.cross[period][:n], other.cross[period][order])
            assert np.array_equal(cell.items[period][:n], other.items[period][order])
    for key, arms in whole.paired.items():
        for arm in (0, 1):
            for f, arr in arms[arm].items():
                assert np.allclose(arr, split.paired[key][arm][f]), f
    # and so is every statistic computed from them
    key = next(iter(whole.paired))
    assert np.allclose(overdispersion(whole.paired[key]), overdispersion(split.paired[key]))
    cell_key = next(k for k in whole.cells if k[2] == ("*",))
    wts = hour_weights(infos["w"], infos["w"].w0, infos["w"].w1)
    a, b = look_arrays(whole.cells[cell_key], wts), look_arrays(split.cells[cell_key], wts)
    order = [split.cells[cell_key].index.ids[x] for x in whole.cells[cell_key].index.names]
    assert np.allclose(a.d, b.d[order], equal_nan=True)


def test_accounts_first_seen_in_another_scope_after_the_membership_was_built() -> None:
    """Two platforms, a small election: accounts added to a cell by ``fit()`` after a
    subject's membership was built used to crash the onset and series of a finding (sparse
    product of 160 by 163 columns).  They are in no subject: the statistics are defined."""
    from streams.simulator import scenario, simulate
    from tests.detectors.test_integrity_adversary import run

    params = scenario("demo", seed=2, scale=0.08, time_scale=0.35, platforms=("chirp", "yodel"))
    out = run(simulate(params), detectors=["holdout_shift"])
    found = [f for f in out.latest_findings.values() if f.detector == "holdout_shift"]
    assert found and all(f.evidence.get("series") for f in found if f.kind == "amplification")
