"""The panel's own amplification estimate of each registered actor and group against the
platform log's for the same panellists (package docstring, "Panel amplification").

Like :mod:`._panel`, nothing here names a panellist, an item or a time: per subject, counts
and shares per arm over all panellists of the window."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
import numpy as np

from detectors.evidence import ArmShares, PanelAmplification
from detectors.ledger import ExposureLedger, SubjectKey
from detectors.sequential import adjusted_p, cs_radius, guard_variance, one_sided_log_e
from detectors.severity import by_effect
from monitor.core.contract import Exposure
from monitor.core.records import Finding

from ._frame import Frame, Key, Running

__all__ = ["PanelAmplificationTest"]

_PANEL, _LOG = 0, 1


@dataclass
class _Subject(Running):
    counts: dict[str, list[int]] = field(default_factory=dict)  # user → [a_panel, a_log]
    estimate: dict[str, Any] | None = None


@dataclass
class _Scope:
    # user → [arm in the panel, arm in the log (−1: none yet), exposures panel, exposures log]
    users: dict[str, list[int]] = field(default_factory=dict)
    subjects: dict[SubjectKey, _Subject] = field(default_factory=dict)


class _Users:
    """A scope's panellists as arrays (one look): arm and exposures per source."""

    def __init__(self, state: _Scope) -> None:
        self.index = {u: i for i, u in enumerate(state.users)}
        rows = np.array(list(state.users.values()), dtype=float).reshape(-1, 4)
        self.arm = (rows[:, 0], rows[:, 1])  # −1 where the source has no record of u
        self.n = (rows[:, 2], rows[:, 3])
        self.count = [
            [int(((arm == k) & (n > 0)).sum()) for k in (0, 1)]
            for arm, n in zip(self.arm, self.n, strict=True)
        ]


class PanelAmplificationTest:
    """Subjects ``panel_amplification:<actor>`` and ``panel_amplification:group:<group>``."""

    def __init__(
        self,
        frame: Frame,
        ledger: ExposureLedger,
        *,
        tolerance: float,
        tau: float,
        min_users: int,
        match_ms: int,
    ) -> None:
        self.frame = frame
        self.tolerance = tolerance
        self.tau = tau
        self.min_users = min_users
        self.match_ms = match_ms
        self.scopes: dict[Key, _Scope] = {}
        self.changed: set[Key] = set()
        self._subjects_of: dict[str, dict[str, tuple[SubjectKey, ...]]] = {}
        self._n_subjects: dict[str, int] = {}
        for s in frame.scopes:
            w = s.window
            of: dict[str, list[SubjectKey]] = {}
            for a in frame.config.actors:
                if a.monitored_in(w.jurisdiction):
                    of[a.actor] = [("actor", a.actor)] + ([("group", a.group)] if a.group else [])
            self._subjects_of[w.id] = {k: tuple(v) for k, v in of.items()}
            self._n_subjects[w.id] = len(ledger.monitored_subjects(w))

    @property
    def margin(self) -> float:
        """``δ = log(1 + ε)``: the log may understate the panel's ratio by that much."""
        return math.log1p(self.tolerance)

    def threshold(self, window_id: str) -> float:
        """``log(m S/α_d)``: the test's share split over the window's ``S`` subjects."""
        return self.frame.threshold + math.log(max(self._n_subjects.get(window_id, 1), 1))

    # -- observe ------------------------------------------------------------------------------
    def tick(
        self,
        panel: Sequence[Exposure],
        exposures: Sequence[Exposure],
        since: dict[tuple[str, str], int],
    ) -> None:
        """Count the tick's panel records and the panellists' logged exposures (from a
        panellist's first panel record on, as the mismatch check does) in the window
        period of every window that covers them."""
        for p in panel:
            self._count(p, _PANEL)
        if not since:
            return
        for e in exposures:
            first = since.get((e.platform, e.user))
            if first is not None and e.ts >= first - self.match_ms:  # type: ignore[operator]
                self._count(e, _LOG)

    def _count(self, e: Exposure, source: int) -> None:
        ts: int = e.ts  # type: ignore[assignment]
        arm = 1 if e.arm == "holdout" else 0
        for key, scope in self.frame.keys_at(e.platform, e.region, ts):
            if scope.period(ts) != "window":
                continue
            state = self.scopes.get(key)
            if state is None:
                state = self.scopes[key] = _Scope()
            user = state.users.get(e.user)
            if user is None:
                user = state.users[e.user] = [-1, -1, 0, 0]
            if user[source] < 0:
                user[source] = arm
            user[2 + source] += 1
            for subject in self._subjects_of[key[1]].get(e.actor, ()):
                s = state.subjects.get(subject)
                if s is None:
                    s = state.subjects[subject] = _Subject()
                s.counts.setdefault(e.user, [0, 0])[source] += 1
            self.changed.add(key)

    # -- the estimate -------------------------------------------------------------------------
    def _estimate(self, users: _Users, subject: _Subject) -> dict[str, Any] | None:
        """Both sources' ratios and ``D = log R_panel − log R_log`` with its variance
        ``V = U/(U−1) Σ_u ψ_u²``, ``ψ_u`` = user ``u``'s linearised influence on ``D`` (the
        four shares' ``(a_u − s n_u)/A`` with their signs; panellists as clusters, the two
        sources paired)."""
        if min(users.count[_PANEL]) < self.min_users or min(users.count[_LOG]) < self.min_users:
            return None
        a = np.zeros((2, len(users.index)))
        for u, pair in subject.counts.items():
            a[:, users.index[u]] = pair
        sums, share, parts = [], [], []
        for source in (_PANEL, _LOG):
            arm, n = users.arm[source], users.n[source]
            a_arm = [float(a[source][arm == k].sum()) for k in (0, 1)]
            n_arm = [float(n[arm == k].sum()) for k in (0, 1)]
            if min(a_arm) <= 0:
                return None
            s = [a_arm[k] / n_arm[k] for k in (0, 1)]
            infl = np.zeros(len(users.index))
            for k, sign in ((0, 1.0), (1, -1.0)):
                on = arm == k
                infl[on] = sign * (a[source][on] - s[k] * n[on]) / a_arm[k]
            sums.append([[int(a_arm[k]), int(n_arm[k])] for k in (0, 1)])
            share.append(s)
            parts.append(infl)
        c = len(users.index) / (len(users.index) - 1)
        log_r = [math.log(share[src][0] / share[src][1]) for src in (_PANEL, _LOG)]
        diff = parts[_PANEL] - parts[_LOG]
        return {
            "log_r": log_r,
            "se": [math.sqrt(c * float(p @ p)) for p in parts],
            "d": log_r[_PANEL] - log_r[_LOG],
            "var": float(guard_variance(c * float(diff @ diff))[0]),
            "sums": sums,
            "users": users.count,
            "share": share,
        }

    def evaluate(self, end_ms: int, keys: set[Key] | None = None) -> list[Finding]:
        out = []
        for key in sorted(self.changed if keys is None else keys & set(self.scopes)):
            state = self.scopes[key]
            threshold = self.threshold(key[1])
            users = _Users(state)
            for subject_key, subject in sorted(state.subjects.items()):
                est = self._estimate(users, subject)
                if est is None:
                    continue
                subject.estimate = est
                log_e = one_sided_log_e(est["d"] - self.margin, est["var"], self.tau)
                if subject.look(float(log_e), threshold, end_ms):
                    out.append(self._finding(key, subject_key, subject, threshold))
        self.changed.clear()
        return out

    def _finding(
        self, key: Key, subject_key: SubjectKey, subject: _Subject, threshold: float
    ) -> Finding:
        est = subject.estimate
        assert est is not None and subject.crossed_ms is not None
        n_tests = self.frame.TESTS * max(self._n_subjects.get(key[1], 1), 1)
        d, var = est["d"], est["var"]
        radius = float(cs_radius(var, self.tau, self.frame.alpha / n_tests))
        sources = []
        for s in (_PANEL, _LOG):
            (a_r, n_r), (a_h, n_h) = est["sums"][s]
            lr, se = est["log_r"][s], est["se"][s]
            sources.append(
                ArmShares(
                    ratio=math.exp(lr),
                    ci95=[math.exp(lr - 1.96 * se), math.exp(lr + 1.96 * se)],
                    share_ranked=est["share"][s][0],
                    share_holdout=est["share"][s][1],
                    exposures_ranked=a_r,
                    exposures_holdout=a_h,
                    all_exposures_ranked=n_r,
                    all_exposures_holdout=n_h,
                    users_ranked=est["users"][s][0],
                    users_holdout=est["users"][s][1],
                )
            )
        part = PanelAmplification(
            subject_kind=subject_key[0],
            subject=subject_key[1],
            panel=sources[_PANEL],
            log=sources[_LOG],
            understatement=math.exp(d),
            log_understatement=d,
            se=math.sqrt(var),
            understatement_cs=[math.exp(d - radius), math.exp(d + radius)],
        )
        name = subject_key[1] if subject_key[0] == "actor" else f"group:{subject_key[1]}"
        evidence: dict[str, Any] = {
            "rule": "the platform log's amplification of a registered subject (its share of "
            "the ranked arm's exposures ÷ its share of the holdout arm's) is below what the "
            "panel's devices recorded for the same panellists in the window",
            "panel_amplification": msgspec.to_builtins(part),
            "meaning": "the panel is evidence the platform does not write: by its own log "
            f"the platform amplified {subject_key[1]} ×{sources[_LOG].ratio:.2f} among the "
            f"panellists, by what their devices recorded ×{sources[_PANEL].ratio:.2f}. The "
            "log understates the amplification the panel saw; amplification measured from "
            "the log for this subject (amplification table, holdout_shift) is too low.",
            "test": {
                "name": "one-sided normal-mixture e-process on D = log R_panel − log R_log, "
                "panellists as clusters (the two sources paired), H0: D ≤ log(1 + tolerance)",
                "tolerance_relative": self.tolerance,
                "margin_log": self.margin,
                "tau": self.tau,
                "statistic_log_effect": d,
                "se": math.sqrt(var),
                "log_e_max": subject.max_log_e,
                "log_threshold": threshold,
                "tests_in_window": self.frame.TESTS,
                "subjects_in_window": self._n_subjects.get(key[1], 1),
                "alpha_share": self.frame.alpha,
            },
        }
        n = sum(sum(x) for x in subject.counts.values())
        return self.frame.finding(
            key,
            "panel_amplification",
            subject=f"panel_amplification:{name}",
            effect=math.exp(d),
            ci=(math.exp(d - radius), math.exp(d + radius)),
            p_value=adjusted_p(subject.max_log_e, n_tests),
            n=n,
            severity=by_effect(math.exp(d - radius)),
            event_ms=subject.crossed_ms,
            evidence=evidence,
            version=2,
        )
