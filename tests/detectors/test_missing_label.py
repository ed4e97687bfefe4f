"""missing_label: users as clusters (design effect), and its e-value on effective counts."""

from __future__ import annotations

import math

import numpy as np
import pytest

from detectors.base import DetectorContext, Tick
from detectors.ledger import ExposureLedger
from detectors.missing_label import MissingLabel, _Trials
from detectors.stats import label_share_log_e
from tests.detectors import synth


def test_design_effect_is_the_user_clustered_variance_over_the_binomial() -> None:
    rng = np.random.default_rng(1)
    t = _Trials(region="DE")
    n_u = rng.integers(1, 30, 300)
    p_u = np.where(rng.random(300) < 0.05, 0.9, 0.01)  # a few users' apps drop labels
    k_u = rng.binomial(n_u, p_u)
    for u, (n, k) in enumerate(zip(n_u, k_u, strict=True)):
        for j in range(n):
            t.add(f"u{u}", j < k)
    n, k, g = n_u.sum(), k_u.sum(), 300
    p = k / n
    direct = ((k_u - p * n_u) ** 2).sum() / n**2 * g / (g - 1)
    assert t.n == n and t.unlabelled == k
    assert t.design_effect == pytest.approx(direct / (p * (1 - p) / n), rel=1e-9)
    assert t.design_effect > 3


def test_independent_exposures_keep_the_exact_test() -> None:
    rng = np.random.default_rng(2)
    t = _Trials(region="DE")
    for u in range(400):
        for _ in range(5):
            t.add(f"u{u}", bool(rng.random() < 0.02))
    assert t.design_effect == pytest.approx(1.0, abs=0.3)


def test_clustered_unlabelled_exposures_are_not_an_alarm_at_the_tolerance() -> None:
    """At the tolerated share (1 %) concentrated in 1 % of the users, the independent-trials
    e-value grows without bound as exposures accumulate; on effective counts it stays a
    calibrated test (Ville: below 1/a in at least 1 − a of repetitions)."""
    rng = np.random.default_rng(3)
    crossed_naive, crossed = 0, 0
    reps = 200
    for _ in range(reps):
        t = _Trials(region="DE")
        for u in range(300):
            bad = rng.random() < 0.01
            for _ in range(int(rng.integers(5, 40))):
                t.add(f"u{u}", bad)
        naive = label_share_log_e(t.unlabelled, t.n, 0.01)
        eff = label_share_log_e(t.unlabelled / t.design_effect, t.n / t.design_effect, 0.01)
        crossed_naive += naive >= math.log(20)
        crossed += eff >= math.log(20)
    assert crossed <= 0.05 * reps + 2 * math.sqrt(0.05 * reps)
    assert crossed_naive > crossed


def test_effective_counts_extend_the_integer_e_value() -> None:
    assert label_share_log_e(12.0, 400.0, 0.01) == pytest.approx(label_share_log_e(12, 400, 0.01))
    assert label_share_log_e(6.0, 200.0, 0.01) < label_share_log_e(12.0, 400.0, 0.01)


def _detector(min_users: int = 5) -> MissingLabel:
    cfg = synth.config(
        disclosures=[
            {
                "platform": "p",
                "intervention": "civic-1",
                "label": "Sponsored",
                "start": "2026-05-01T00:00:00Z",
                "end": "2026-05-10T00:00:00Z",
                "actors": ["acc-1"],
                "regions": ["DE"],
            }
        ]
    )
    return MissingLabel(DetectorContext(cfg, ExposureLedger(cfg), 0.05), min_users=min_users)


def test_no_test_before_min_users_clusters() -> None:
    """500 unlabelled exposures of one user are one cluster, not 500 independent trials:
    no finding until the exposures come from ``min_users`` users."""
    det = _detector()
    key = ("p", "w", "acc-1")
    trials = det._trials[key] = _Trials(region="DE", labels={"civic-1": "Sponsored"})
    tick = Tick(synth.T0, synth.T0 + 900_000)
    for users in range(1, 6):
        for _ in range(100):
            trials.add(f"u{users}", True)
        det._changed.add(key)
        found = det.evaluate(tick)
        assert bool(found) == (users >= 5), users
    assert found[0].evidence["users"] == 5
    with pytest.raises(ValueError, match="min_users"):
        _detector(min_users=1)
