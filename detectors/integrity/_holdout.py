"""The holdout arm, checked rather than trusted: its share of users (against the declared
share, or the baseline's when none is declared), users logged in both arms, and a holdout
arm gone silent.  Statistics and guarantees: :mod:`detectors.integrity` module docstring."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from detectors.ledger import ExposureLedger
from detectors.sequential import adjusted_p
from detectors.severity import by_contradiction_share, by_relative_deviation
from detectors.stats import clopper_pearson
from monitor.core.records import Detectability, Finding

from ._between import BetweenTest
from ._frame import Frame, Key, Running, Scope
from ._returns import ReturnTest
from ._srm import beta_prior, srm_log_e

__all__ = ["HoldoutChecks"]

_RANKED, _HOLDOUT = 0, 1
_WINDOW, _BACK = 2, 4  # bits of arm_of: first seen in the window period; returned to it


@dataclass
class _Arms(Running):
    """Users of one platform in one window scope, by the arm of their first event."""

    arm_of: dict[str, int] = field(default_factory=dict)  # arm | _WINDOW | _BACK bits
    returns: ReturnTest | None = None
    counts: list[list[int]] = field(default_factory=lambda: [[0, 0], [0, 0]])  # [period][arm]
    by_region: dict[str, list[int]] = field(default_factory=dict)
    # region → users active in [baseline ranked, baseline holdout, window ranked, window holdout]
    active: dict[str, list[int]] = field(default_factory=dict)
    switched: set[str] = field(default_factory=set)
    # the share test
    reference: tuple[float, float, float] | None = None  # (centre, lo, hi) of H0
    switch_ms: int | None = None
    silent_ms: int | None = None
    silent: dict[str, Any] | None = None

    def users(self, period: int | None = None) -> tuple[int, int]:
        """(ranked, holdout) users first seen in ``period`` (None: both periods)."""
        if period is not None:
            return self.counts[period][0], self.counts[period][1]
        return (self.counts[0][0] + self.counts[1][0], self.counts[0][1] + self.counts[1][1])


class HoldoutChecks:
    """Subjects ``holdout_share``, ``holdout_assignment`` and ``holdout_silent``."""

    def __init__(
        self,
        frame: Frame,
        ledger: ExposureLedger,
        *,
        srm_tolerance: float,
        prior_sd: float,
        min_baseline_users: int,
        switch_tolerance: float,
        min_switched_users: int,
        min_expected_users: float,
        return_tolerance: float,
        between_tolerance: float,
    ) -> None:
        self.frame = frame
        self.between = BetweenTest(frame, tolerance=between_tolerance)
        self._fresh: set[tuple[Key, str]] = set()  # (scope, user) first window-active this tick
        self.ledger = ledger
        self.srm_tolerance = srm_tolerance
        self.prior_sd = prior_sd
        self.min_baseline_users = min_baseline_users
        self.switch_tolerance = switch_tolerance
        self.min_switched_users = min_switched_users
        self.min_expected_users = min_expected_users
        self.return_tolerance = return_tolerance
        self.arms: dict[Key, _Arms] = {}
        self.changed: set[Key] = set()

    def declared_share(self, platform: str) -> float | None:
        entry = self.frame.config.platforms.get(platform)
        return None if entry is None else entry.holdout_share

    # -- observe ------------------------------------------------------------------------------
    def user(
        self, key: Key, scope: Scope, user: str, arm: str, region: str, surface: str, ts: int
    ) -> None:
        state = self.arms.get(key)
        if state is None:
            state = self.arms[key] = _Arms()
            if self.declared_share(key[0]) is None:
                state.returns = ReturnTest(self.return_tolerance)
        code = _HOLDOUT if arm == "holdout" else _RANKED
        first = state.arm_of.get(user)
        if first is None:
            period = 0 if scope.period(ts) == "baseline" else 1
            state.arm_of[user] = code | (_WINDOW if period else 0)
            state.counts[period][code] += 1
            state.by_region.setdefault(region, [0, 0])[code] += 1
            state.active.setdefault(region, [0, 0, 0, 0])[2 * period + code] += 1
            if state.returns is not None and not period:
                state.returns.add(code)
            if period:
                self._fresh.add((key, user))
                self.between.offer(key, user, ts, region, surface, code)
            self.changed.add(key)
            return
        if not first & (_WINDOW | _BACK) and scope.period(ts) == "window":
            state.arm_of[user] = first | _BACK
            state.active.setdefault(region, [0, 0, 0, 0])[2 + code] += 1
            if state.returns is not None:
                state.returns.back(first & 1, code)
            self._fresh.add((key, user))
            self.changed.add(key)
        if (key, user) in self._fresh and scope.period(ts) == "window":
            self.between.offer(key, user, ts, region, surface, code)
        if first & 1 != code and user not in state.switched:
            state.switched.add(user)
            self.changed.add(key)

    def close_tick(self) -> None:
        """The tick's events are all seen: the between-regions test bets on its block."""
        self._fresh.clear()
        self.between.close_tick()

    # -- the share test -----------------------------------------------------------------------
    def _reference(self, key: Key, state: _Arms) -> tuple[float, float, float] | None:
        """H0's interval ``[lo, hi]`` around the reference share, and its centre."""
        eps = self.srm_tolerance
        declared = self.declared_share(key[0])
        if declared is not None:
            return declared, declared * (1 - eps), min(declared * (1 + eps), 0.999)
        if state.reference is not None:
            return state.reference
        if not self._baseline_closed(key, state):
            return None
        ranked, holdout = state.counts[0]
        n = ranked + holdout
        if n < self.min_baseline_users or holdout == 0 or ranked == 0:
            return None
        # half of the test's share of alpha for the baseline's interval (module docstring)
        lo, hi = clopper_pearson(holdout, n, 1 - self.frame.alpha / (2 * self.frame.TESTS))
        state.reference = (holdout / n, max(lo * (1 - eps), 1e-6), min(hi * (1 + eps), 0.999))
        return state.reference

    def _baseline_closed(self, key: Key, state: _Arms) -> bool:
        return state.counts[1][0] + state.counts[1][1] > 0

    def _sample(self, key: Key, state: _Arms) -> tuple[int, int]:
        """(holdout users, users) the share test counts: every user with a declared share;
        the users first seen in the window period when the share is the baseline's."""
        if self.declared_share(key[0]) is not None:
            ranked, holdout = state.users()
        else:
            ranked, holdout = state.users(1)
        return holdout, ranked + holdout

    def _log_e(self, key: Key, state: _Arms, k: int | None = None, n: int | None = None) -> float:
        """The share test's log e-value: the new users' SRM e-process; with the baseline's
        share, averaged with the returning users' (1 for a part that cannot run yet)."""
        ref = self._reference(key, state)
        new = -math.inf
        if ref is not None:
            centre, lo, hi = ref
            a, b = beta_prior(min(max(centre, lo), hi), self.prior_sd)
            k0, n0 = self._sample(key, state)
            new = float(srm_log_e(k0 if k is None else k, n0 if n is None else n, lo, hi, a, b))
        if state.returns is None:
            return new
        new = 0.0 if ref is None else new
        return float(np.logaddexp(new, state.returns.log_e) - math.log(2))

    def threshold(self, key: Key) -> float:
        """The share test's threshold: ``log(m/α)`` with a declared share, ``log(2m/α)``
        with the baseline's (the other half of its alpha went to the baseline interval)."""
        t = self.frame.threshold
        return t if self.declared_share(key[0]) is not None else t + math.log(2)

    # -- evaluate -----------------------------------------------------------------------------
    def evaluate(self, end_ms: int, keys: set[Key] | None = None) -> list[Finding]:
        out: list[Finding] = []
        for key in sorted(self.changed if keys is None else keys):
            state = self.arms[key]
            threshold = self.threshold(key)
            if state.look(self._log_e(key, state), threshold, end_ms):
                out.append(self._share_finding(key, state, threshold))
            switched = self._switch_finding(key, state, end_ms)
            if switched is not None:
                out.append(switched)
            silent = self._silent_finding(key, state, end_ms)
            if silent is not None:
                out.append(silent)
        self.changed.clear()
        out.extend(self.between.evaluate(end_ms, keys))
        return out

    def _share_finding(self, key: Key, state: _Arms, threshold: float) -> Finding:
        ref = self._reference(key, state)
        assert ref is not None
        share, lo_h0, hi_h0 = ref
        k, n = self._sample(key, state)
        observed = k / n if n else 0.0
        lo, hi = clopper_pearson(k, n)
        ratio = observed / share
        declared = self.declared_share(key[0]) is not None
        (b_r, b_h), (w_r, w_h) = state.users(0), state.users(1)
        evidence: dict[str, Any] = {
            "rule": (
                "holdout arm's share of active users differs from the declared share"
                if declared
                else "holdout arm's share of the users who first appear in "
                "the window differs from its share in the baseline"
            ),
            "reference": "declared" if declared else "baseline",
            "reference_holdout_share": share,
            "null_interval": [lo_h0, hi_h0],
            "observed_holdout_share": observed,
            "observed_share_ci95": [lo, hi],
            "users": {"ranked": n - k, "holdout": k, "total": n},
            "users_by_period": {
                "baseline": {"ranked": b_r, "holdout": b_h},
                "window": {"ranked": w_r, "holdout": w_h},
            },
            "exposed_users_by_period": self._exposed_users(key),
            "by_region": {
                r: {"ranked": c[0], "holdout": c[1], "holdout_share": c[1] / (c[0] + c[1])}
                for r, c in sorted(state.by_region.items())
            },
            "users_in_both_arms": len(state.switched),
            "direction": "low" if observed < share else "high",
            "expected_holdout_users": n * share,
            "test": {
                "name": "Beta-mixture e-process (sequential SRM), H0: holdout share "
                "within tolerance of the "
                + ("declared share" if declared else "baseline's interval"),
                "tolerance_relative": self.srm_tolerance,
                "prior_sd_relative": self.prior_sd,
                "log_e_max": state.max_log_e,
                "log_threshold": threshold,
                "tests_in_window": self.frame.TESTS,
                "alpha_share": self.frame.alpha,
            },
        }
        if declared:
            evidence["declared_holdout_share"] = share
        if state.returns is not None:
            r = state.returns
            back, pool0 = r.returned, state.counts[0]
            evidence["returning_users"] = {
                "rule": "baseline users first seen again in the window, by the arm logged "
                "then: each arm returns in proportion to its baseline users (within the "
                "tolerance) on an honest platform",
                "baseline_users": {"ranked": pool0[0], "holdout": pool0[1]},
                "returned": {"ranked": back[0], "holdout": back[1]},
                "return_rate": {
                    "ranked": back[0] / pool0[0] if pool0[0] else None,
                    "holdout": back[1] / pool0[1] if pool0[1] else None,
                },
                "log_e": r.log_e,
                "expected_holdout_returners": r.expected,
                "tolerance_relative": r.tolerance,
            }
        m = self.frame.TESTS * (1 if declared else 2)
        assert state.crossed_ms is not None
        return self.frame.finding(
            key,
            "holdout_share",
            effect=ratio,
            ci=(lo / share, hi / share),
            p_value=adjusted_p(state.max_log_e, m),
            n=n,
            severity=by_relative_deviation(abs(ratio - 1)),
            event_ms=state.crossed_ms,
            evidence=evidence,
        )

    def _exposed_users(self, key: Key) -> dict[str, Any]:
        """Exposed users per arm and period, and the holdout share of them (the ledger's
        counts; descriptive)."""
        out: dict[str, Any] = {}
        for period in ("baseline", "window"):
            cell = self.ledger.cell(key[0], key[1], period)
            if cell is None:
                continue
            users = cell.users_ranked + cell.users_holdout
            out[period] = {
                "users_ranked": cell.users_ranked,
                "users_holdout": cell.users_holdout,
                "holdout_share_of_users": cell.users_holdout / users if users else None,
            }
        return out

    def _switch_finding(self, key: Key, state: _Arms, end_ms: int) -> Finding | None:
        n = len(state.arm_of)
        s = len(state.switched)
        if s < max(self.min_switched_users, self.switch_tolerance * n):
            return None
        if state.switch_ms is None:
            state.switch_ms = end_ms
        evidence = {
            "rule": f"users logged in both arms (the holdout assignment is per user "
            f"and fixed): at least {self.min_switched_users} users and "
            f"{self.switch_tolerance:.1%} of the active users",
            "users_in_both_arms": s,
            "users": n,
            "share": s / n,
            "min_switched_users": self.min_switched_users,
            "switch_tolerance": self.switch_tolerance,
        }
        return self.frame.finding(
            key,
            "holdout_assignment",
            effect=s / n,
            p_value=None,
            n=n,
            severity=by_contradiction_share(s / n),
            event_ms=state.switch_ms,
            evidence=evidence,
        )

    def _silent_regions(self, state: _Arms) -> dict[str, dict[str, Any]]:
        """Regions whose holdout arm had users in the baseline and none in the window,
        where the ranked arm's window users imply at least ``min_expected_users``."""
        out = {}
        for region, (b_r, b_h, w_r, w_h) in sorted(state.active.items()):
            expected = w_r * b_h / max(b_r, 1)
            if b_h and not w_h and expected >= self.min_expected_users:
                out[region] = {
                    "baseline": {"users_ranked": b_r, "users_holdout": b_h},
                    "window": {"users_ranked": w_r, "users_holdout": 0},
                    "expected_holdout_users": expected,
                }
        return out

    def _silent_finding(self, key: Key, state: _Arms, end_ms: int) -> Finding | None:
        regions = self._silent_regions(state)
        if state.silent is None:
            base = self.ledger.cell(key[0], key[1], "baseline")
            now = self.ledger.cell(key[0], key[1], "window")
            whole = (
                base is not None
                and now is not None
                and base.users_holdout > 0
                and not now.users_holdout
            )
            expected = (
                now.users_ranked * base.users_holdout / max(base.users_ranked, 1)
                if whole and base is not None and now is not None
                else 0.0
            )
            if expected < self.min_expected_users and not regions:
                return None
            state.silent_ms = end_ms
            state.silent = {
                "rule": "holdout arm active in the baseline, no holdout user in the window "
                "(in the whole scope: no exposed user; in a region: no event) while the "
                f"ranked arm continues (expected at least {self.min_expected_users:g} "
                "holdout users)",
                "scope_silent": expected >= self.min_expected_users,
                "regions": {},
                "probability_note": "P(no holdout user | the baseline's holdout share) ≈ "
                "exp(−expected), Poisson approximation",
            }
            if expected >= self.min_expected_users and base is not None and now is not None:
                state.silent.update(
                    {
                        "baseline": {
                            "users_ranked": base.users_ranked,
                            "users_holdout": base.users_holdout,
                        },
                        "window": {"users_ranked": now.users_ranked, "users_holdout": 0},
                        "expected_holdout_users": expected,
                        "probability_if_honest": math.exp(-expected),
                    }
                )
        assert state.silent is not None and state.silent_ms is not None
        for region, row in regions.items():
            state.silent["regions"].setdefault(region, row)
        if state.silent["scope_silent"]:
            n = state.silent["window"]["users_ranked"]
        else:
            n = sum(r["window"]["users_ranked"] for r in state.silent["regions"].values())
        return self.frame.finding(
            key,
            "holdout_silent",
            effect=0.0,
            p_value=None,
            n=n,
            severity="critical" if state.silent["scope_silent"] else "high",
            event_ms=state.silent_ms,
            evidence=state.silent,
        )

    # -- detectability ------------------------------------------------------------------------
    def detectability(self, detector: str) -> list[Detectability]:
        """Smallest holdout-share ratios (observed ÷ reference) the share test would flag
        with the users it saw: ``mde_down`` < 1 (under-logged holdout arm), ``mde_up`` > 1."""
        rows = []
        for key, state in sorted(self.arms.items()):
            ref = self._reference(key, state)
            k, n = self._sample(key, state)
            if ref is None or n == 0:
                continue
            share = ref[0]
            threshold = self.threshold(key)
            down = self._mde(key, state, n, share, threshold, -1)
            up = self._mde(key, state, n, share, threshold, +1)
            window = self.frame.scope(key[1]).window
            rows.append(
                Detectability(
                    detector=detector,
                    platform=key[0],
                    region=window.jurisdiction,
                    window_id=key[1],
                    subject_kind="log",
                    subject="holdout_share",
                    mde_up=up,
                    mde_down=down,
                    n_exposures=n,
                    flagged=state.crossed_ms is not None,
                )
            )
        return rows

    def _mde(
        self, key: Key, state: _Arms, n: int, share: float, threshold: float, sign: int
    ) -> float | None:
        limit = (1 / share - 1) if sign > 0 else 1.0  # largest relative deviation possible

        def crosses(d: float) -> bool:
            k = round(n * share * (1 + sign * d))
            return self._log_e(key, state, k=min(max(k, 0), n), n=n) >= threshold

        if not crosses(limit * 0.999):
            return None
        lo, hi = 0.0, limit * 0.999
        for _ in range(40):
            mid = (lo + hi) / 2
            lo, hi = (lo, mid) if crosses(mid) else (mid, hi)
        return 1 + sign * hi
