"""``missing_label`` — exposures of disclosed interventions shown without their label.

A slate entry whose intervention is covered by a disclosure with a ``label`` must be shown
with that label.  Each exposure linked to such an entry (by ``request``, else by the most
recent slate of the same user and item) is a Bernoulli trial: unlabelled if its ``label``
differs from the registered one.  Per (platform, window, actor) the detector tests

    H0: unlabelled share p ≤ ε        (ε = ``tolerance``, default 0.01: logging slack)

with the always-valid mixture e-process of :func:`detectors.stats.label_share_log_e`.  Its
budget share ``α_d`` is divided over the ``m`` possible tests of the window (labelled
disclosures × the actors they can cover), so ``P(any false finding in the window) ≤ α_d``
under continuous monitoring (Ville's inequality + Bonferroni).  ``p_value`` reported
= ``min(1, m / max_t E_t)``, the multiplicity-adjusted always-valid p-value.

**Users as clusters.**  Exposures of one user are not independent trials: a user whose app
drops labels sees every promoted item unlabelled.  The e-value is therefore computed on the
*effective* numbers of trials ``n/deff`` and unlabelled ``k/deff``, with the design effect
(Kish 1965, *Survey Sampling*, §8.2) ``deff = max(1, V_users / V_binomial)``:
``V_users = G/(G−1) · Σ_u (k_u − p̂ n_u)² / n²`` (users as clusters, ``p̂ = k/n``) against the
binomial ``p̂(1 − p̂)/n``.  With independent exposures ``deff ≈ 1`` and the test is the exact
one; with clustering it is asymptotically valid (the effective-sample-size correction of the
binomial likelihood).  No test runs before the exposures come from ``min_users`` users
(default 5): with fewer clusters the design effect cannot be estimated (one user whose app
drops labels would look like independent evidence).

Two stages (scale-out): the reducer is the per-user part of :meth:`_Trials.add` — a user's
``(n_u, k_u)`` live with the user (a user-partitioned worker holds them) and each trial emits
the increments ``(Δn, Δk, Δ(n_u²), Δ(k_u²), Δ(k_u n_u), ΔG)`` = ``(1, d, 2n_u + 1, 2k_u d + d,
k_u + d(n_u + 1), [first trial])``; the merged state is the per-(platform, window, actor)
:class:`_Trials` sums ``n, unlabelled, nn, kk, kn, G`` — additive across partitions — from which
:meth:`MissingLabel.evaluate` computes ``deff`` and the e-value.  (The slate ↔ exposure link,
:class:`detectors._links.SlateLinks`, is keyed by user and request, so it partitions by user
too.)

``effect`` is null (no multiplicative effect is measured); the evidence gives the unlabelled
share, its count, and a 95 % Clopper–Pearson interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

import detectors.evidence as evidence
import detectors.severity as severity
from detectors._links import SlateLinks
from detectors.base import Detector, DetectorContext, Tick
from detectors.stats import clopper_pearson, label_share_log_e
from monitor.core.config import Window, covers
from monitor.core.records import Finding, ms_to_datetime

__all__ = ["MissingLabel"]

_Key = tuple[str, str, str]  # platform, window_id, actor


@dataclass
class _Trials:
    region: str
    n: int = 0
    unlabelled: int = 0
    max_log_e: float = -math.inf
    crossed_ts: int | None = None
    labels: dict[str, str] = field(default_factory=dict)  # intervention → required label
    seen_labels: dict[str, int] = field(default_factory=dict)
    per_user: dict[str, list[int]] = field(default_factory=dict)  # user → [n_u, k_u]
    nn: float = 0.0  # Σ n_u²
    kk: float = 0.0  # Σ k_u²
    kn: float = 0.0  # Σ k_u n_u

    def add(self, user: str, unlabelled: bool) -> None:
        """One trial of ``user``: the counts and the user-cluster sums (``(x+1)² − x²``)."""
        nu, ku = self.per_user.get(user, (0, 0))
        dk = 1 if unlabelled else 0
        self.nn += 2 * nu + 1
        self.kk += 2 * ku * dk + dk
        self.kn += ku + dk * (nu + 1)
        self.per_user[user] = [nu + 1, ku + dk]
        self.n += 1
        self.unlabelled += dk

    @property
    def design_effect(self) -> float:
        """``max(1, V_users / V_binomial)`` (module docstring)."""
        n, k, g = self.n, self.unlabelled, len(self.per_user)
        if n == 0 or k == 0 or k == n or g < 2:
            return 1.0
        p = k / n
        v_users = (self.kk - 2 * p * self.kn + p * p * self.nn) / (n * n) * g / (g - 1)
        return max(1.0, v_users / (p * (1 - p) / n))


class MissingLabel(Detector):
    """Unlabelled exposures of labelled disclosures per actor (module docstring).

    Args:
        tolerance: ``ε``, the unlabelled share tolerated (logging slack).
        min_users: No test before the actor's linked exposures come from this many users
            (clusters): the design effect is estimated across users.
    """

    name: ClassVar[str] = "missing_label"
    display_name: ClassVar[str] = "Disclosed intervention shown without its label"
    kinds: ClassVar[tuple[str, ...]] = ("missing_label",)
    version: ClassVar[str] = "2"

    def __init__(
        self, context: DetectorContext, tolerance: float = 0.01, min_users: int = 5
    ) -> None:
        super().__init__(context)
        if not 0 < tolerance < 1:
            raise ValueError(f"tolerance must be in (0, 1), got {tolerance}")
        if min_users < 2:
            raise ValueError(
                f"min_users must be >= 2 (clusters for the design effect), got {min_users}"
            )
        self.tolerance, self.min_users = tolerance, min_users
        self._trials: dict[_Key, _Trials] = {}
        self._changed: set[_Key] = set()
        self._links: SlateLinks[list[tuple[_Key, str, str]]] = SlateLinks()
        self._m = {w.id: self._tests_in(w) for w in context.config.windows}

    def _tests_in(self, window: Window) -> int:
        """Upper bound on the number of (platform, actor) tests a window can run."""
        config = self.context.config
        total = 0
        for d in config.disclosures:
            if d.label is None:
                continue
            j = window.jurisdiction
            if d.regions and not any(covers(r, j) or covers(j, r) for r in d.regions):
                continue
            actors = {
                a.actor
                for a in config.actors
                if (not d.actors and not d.groups)
                or a.actor in d.actors
                or (a.group is not None and a.group in d.groups)
            }
            total += max(1, len(actors))
        return max(1, total)

    def observe(self, tick: Tick) -> MissingLabel:
        config, ledger = self.context.config, self.context.ledger
        for r in sorted(tick.rankings, key=lambda r: (r.ts, r.event_id)):
            ts: int = r.ts  # type: ignore[assignment]
            windows: list[Window] | None = None
            for it in r.items:
                if not it.interventions:
                    continue
                if windows is None:
                    windows = ledger.windows_at(r.region, ts)
                if not windows:
                    break
                expected = []
                for iv in it.interventions:
                    for d in config.disclosures_for(r.platform, iv, it.actor, r.region, ts):
                        if d.label is None:
                            continue
                        for w in windows:
                            expected.append(((r.platform, w.id, it.actor), iv, d.label))
                            trials = self._trials.setdefault(
                                (r.platform, w.id, it.actor), _Trials(w.jurisdiction)
                            )
                            trials.labels[iv] = d.label
                if expected:
                    self._links.add(r.request, r.user, it.item, ts, expected)
        for e in tick.exposures:
            hit = self._links.find(e)
            if not hit:
                continue
            for key in {k for k, _, _ in hit}:
                labels = {label for k, _, label in hit if k == key}
                trials = self._trials[key]
                shown = e.label or ""
                trials.seen_labels[shown] = trials.seen_labels.get(shown, 0) + 1
                trials.add(e.user, e.label not in labels)
                self._changed.add(key)
        self._links.expire(tick.end_ms)
        return self

    def evaluate(self, tick: Tick) -> list[Finding]:
        out = []
        for key in sorted(self._changed):
            trials = self._trials[key]
            if len(trials.per_user) < self.min_users:
                continue  # too few clusters to estimate the design effect: no test yet
            deff = trials.design_effect
            log_e = label_share_log_e(trials.unlabelled / deff, trials.n / deff, self.tolerance)
            trials.max_log_e = max(trials.max_log_e, log_e)
            threshold = (
                math.log(self._m[key[1]] / self.context.alpha) if self.context.alpha else math.inf
            )
            if trials.crossed_ts is None and trials.max_log_e >= threshold:
                trials.crossed_ts = tick.end_ms
            if trials.crossed_ts is not None:
                out.append(self._finding(key, trials, threshold))
        self._changed.clear()
        return out

    def test_states(self) -> list[Any]:
        from detectors.sequential import TestState

        out = []
        for (platform, window_id, actor), t in sorted(self._trials.items()):
            m = self._m[window_id]
            thr = math.log(m / self.context.alpha) if self.context.alpha else math.inf
            out.append(
                TestState(
                    self.name,
                    platform,
                    window_id,
                    "*",
                    (f"actor:{actor}",),
                    np.array([t.max_log_e]),
                    thr,
                    np.array([True]),
                )
            )
        return out

    def _finding(self, key: _Key, t: _Trials, threshold: float) -> Finding:
        platform, window_id, actor = key
        share = t.unlabelled / t.n if t.n else 0.0
        lo, hi = clopper_pearson(t.unlabelled, t.n)
        m = self._m[window_id]
        p_adj = min(1.0, m * math.exp(-t.max_log_e)) if math.isfinite(t.max_log_e) else 1.0
        fields: dict[str, Any] = {
            "rule": "exposures of a disclosed intervention without the registered label",
            "required_labels": dict(sorted(t.labels.items())),
            "labels_shown": dict(sorted(t.seen_labels.items())),
            "exposures": t.n,
            "unlabelled": t.unlabelled,
            "unlabelled_share": share,
            "unlabelled_share_ci95": [lo, hi],
            "users": len(t.per_user),
            "test": {
                "name": "mixture e-process, H0: unlabelled share <= tolerance (users as "
                "clusters: effective trials n/deff)",
                "design_effect": t.design_effect,
                "tolerance": self.tolerance,
                "log_e_max": t.max_log_e,
                "log_threshold": threshold,
                "tests_in_window": m,
                "alpha_share": self.context.alpha,
            },
        }
        return Finding.new(
            detector=self.name,
            kind="missing_label",
            platform=platform,
            region=t.region,
            window_id=window_id,
            subject_kind="actor",
            subject=actor,
            effect=None,
            ci_low=None,
            ci_high=None,
            p_value=p_adj,
            n_exposures=t.n,
            severity=severity.by_unlabelled_share(share),
            event_time=ms_to_datetime(t.crossed_ts or 0),
            evidence=evidence.build(self.name, fields),
        )
