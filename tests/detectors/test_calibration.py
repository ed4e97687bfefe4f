"""End-to-end calibration, power and coverage on the platform simulator (seeded; ``slow``).

The seeded, small version of ``benchmarks/bench_calibration.py`` (≥ 200 null elections) and
``benchmarks/bench_power.py`` (MDE, power, coverage):

* **Null suite** — one small election (1,200 users, 1-day periods) of each calibration null
  (defaults, few users, few sessions, heavy-tailed items, legitimate per-item score
  adjustments, a platform-wide model update, three surfaces), two seeds each: the number of
  elections with any alarm-kind finding may not exceed the 99th percentile of
  Binomial(n, 0.05); and **Ville's inequality per test**: for every always-valid test whose
  null holds, the share with ``max_t E_t ≥ 1/a`` stays within the binomial 99 % bound of
  ``a`` (``a`` = 0.5, 0.2, 0.1), per detector.
* **Scores that carry no information** — the ``uninformative_scores`` election at the
  simulator's default size: the largest boosts are found by ``holdout_shift`` alone, nothing
  else is flagged, and every finding's interval covers the simulator's ground-truth exposure
  effect (the counterfactual change in exposure).
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

import numpy as np
import pytest
from scipy import stats

from monitor.app.replay import drive
from monitor.core.config import parse_config
from monitor.core.records import Finding
from monitor.engine.run import Engine
from streams.files import merge_by_time
from streams.memory import ListOutput, records_from_dicts
from streams.simulator import scenario, simulate
from tests.factories import now_far

ALARMS = {"amplification", "suppression", "undisclosed_intervention", "missing_label"}
SUITE = (
    "null",
    "null_few_users",
    "null_few_sessions",
    "null_heavy_tails",
    "null_item_adjustments",
    "null_model_update",
    "null_surfaces",
)


def replay_sim(
    name: str, seed: int, **overrides: Any
) -> tuple[dict[str, Any], list[Finding], Engine]:
    sim = simulate(scenario(name, seed=seed, **overrides))
    out = ListOutput()
    engine = Engine(parse_config(sim.config), out, now_ms=now_far)
    drive(
        engine,
        merge_by_time(
            [
                records_from_dicts("exposure", sim.exposures),
                records_from_dicts("ranking", sim.rankings),
            ]
        ),
    )
    return sim.truth, list(out.latest_findings.values()), engine


@pytest.mark.slow
def test_null_suite_false_alarms_and_ville_per_test() -> None:
    runs, alarmed = 0, []
    max_log_e: dict[str, list[float]] = defaultdict(list)
    for name in SUITE:
        for seed in (90_000, 90_001):
            _, findings, engine = replay_sim(name, seed, scale=0.3, time_scale=0.5)
            runs += 1
            hits = [(f.detector, f.kind, f.subject) for f in findings if f.kind in ALARMS]
            if hits:
                alarmed.append((name, seed, hits))
            for det in engine.detectors:
                for ts in det.test_states():
                    max_log_e[ts.detector].extend(ts.max_log_e[ts.null].tolist())
    print(f"\nnull elections with an alarm: {len(alarmed)}/{runs} {alarmed}")
    assert len(alarmed) <= stats.binom.ppf(0.99, runs, 0.05)
    assert set(max_log_e) >= {"holdout_shift", "rank_uplift", "score_shift"}
    for det, values in max_log_e.items():
        arr = np.array(values)
        for a in (0.5, 0.2, 0.1):
            share = float((arr >= math.log(1 / a)).mean())
            bound = stats.binom.ppf(0.99, arr.size, a) / arr.size
            print(
                f"  {det:14s} {arr.size:5d} tests: P(max E >= {1 / a:g}) = {share:.4f} "
                f"(Ville: <= {a}; 99% bound {bound:.4f})"
            )
            assert share <= bound, (det, a)


@pytest.mark.slow
def test_scores_without_information_holdout_alone_finds_and_covers() -> None:
    truth, findings, _ = replay_sim("uninformative_scores", 90_010)
    planted = {
        iv["target"]: iv
        for iv in truth["interventions"]
        if iv["kind"] in ("hidden_boost", "hidden_suppression", "group_boost")
    }
    whole = [
        f
        for f in findings
        if f.kind in ("amplification", "suppression")
        and f.surface is None
        and f.region in ("DE", "AT")
    ]
    found = {f.subject: f for f in whole if f.detector == "holdout_shift"}
    print({t: (iv["exposure_effect"], t in found) for t, iv in planted.items()})
    # the strongest planted boosts are found by the holdout arm alone (the score detectors
    # raise nothing: scores that carry no information move no exposure)
    assert {"de-a-cand-1", "de-b-cand-1", "at-media-2"} <= set(found)
    assert not [f for f in findings if f.detector != "holdout_shift" and f.kind in ALARMS]
    accepted = set(planted) | {
        a["subject"] for iv in truth["interventions"] for a in iv["also_acceptable"]
    }
    assert not [f.subject for f in findings if f.kind in ALARMS and f.subject not in accepted]
    for subject, f in found.items():
        if subject in planted:
            effect = planted[subject]["exposure_effect"]
            assert f.ci_low <= effect <= f.ci_high, (subject, effect, f.ci_low, f.ci_high)
            assert (f.kind == "amplification") == (effect > 1)
