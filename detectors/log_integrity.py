"""``log_integrity`` — can the platform's logs be trusted as the basis of the measurement?

Every statistic of amplimon rests on the platform's own logs: the holdout arm must be the
declared random share of users, exposures must come from logged slates, and the stream must
not fall silent.  Three checks per platform and window (region scope = the window's
jurisdiction, both the baseline and the window period), each a finding of kind
``log_integrity`` with ``subject_kind = "log"`` and ``subject`` = the check's name.

Holdout share: sample-ratio mismatch (subject ``holdout_share``)
----------------------------------------------------------------
Each user active in the scope (≥ 1 exposure or ranking event) is a Bernoulli trial, holdout
or ranked (the arm of the user's first event).  With the declared share
``π = platforms.<id>.holdout_share`` (the check is skipped when none is declared) and a
relative tolerance ``ε`` (``srm_tolerance``, default 0.01) the null hypothesis is
``H0: p ∈ [lo, hi] = [π(1−ε), π(1+ε)]``.  Two mixture likelihood ratios use a Beta prior
of mean ``π`` and relative standard deviation ``prior_sd``, truncated to the alternative::

    E⁻_n = ∫_0^lo f(q) (q/lo)^k ((1−q)/(1−lo))^(n−k) dq          (holdout share p < lo)
         = B(a+k, b+n−k) I_lo(a+k, b+n−k) / (B(a, b) I_lo(a, b) lo^k (1−lo)^(n−k))
    E⁺_n  mirrored with upper tails                              (holdout share p > hi)
    E_n  = (E⁻_n + E⁺_n) / 2

For ``p ≥ lo`` each factor of ``E⁻`` has expectation ≤ 1, so ``E⁻`` is a supermartingale;
likewise ``E⁺`` for ``p ≤ hi``; their average is an e-process for ``H0``: an exact,
always-valid sequential SRM test (Lindon & Malek 2022, "Anytime-valid inference for
multinomial count data", NeurIPS; Fabijan et al. 2019, "Diagnosing sample ratio mismatch
in online controlled experiments", KDD).  Assumption: a user's arm does not change whether
the user is active at all (``ε`` absorbs a small engagement effect of the ranked feed).
``effect`` = observed holdout share ÷ declared share, with a 95 % Clopper–Pearson interval;
the minimum detectable share ratios are written to ``detectability``.

Exposure links (subject ``exposure_links``)
-------------------------------------------
An exposure with a ``request`` is unexplained when no ranking event of that platform has
that ``request`` (within ``link_hours``, default 6, of event time, with one tick of grace for
a slate logged after its exposure) or the slate does not contain the exposed ``item``.  With
tolerance ``ε_l`` (``link_tolerance``, default 0.01) ``H0: unexplained share ≤ ε_l`` is
tested with the uniform-mixture e-process of :func:`detectors.stats.label_share_log_e`.
Exposures without ``request`` cannot be checked and are only counted; position and user
mismatches with the slate are counted in the evidence.  Memory: every slate of the last
``link_hours`` is kept, as one compact string (items and positions joined by the ASCII unit
and record separators; ≈ 5 × smaller than a dict of its items), so the state grows with the
slate rate × ``link_hours``.

Event gaps (subject ``event_gaps``)
-----------------------------------
A run of ``L > max_gap_ticks`` ticks inside the baseline or window period in which the
platform logged no event in the window's region scope (between the first and last event
time of the whole stream), long enough to be implausible for the platform's activity:
``L · λ̂ ≥ min_expected_users``, with ``λ̂`` the mean number of distinct active users per
tick so far.  (A small platform is quiet at night; with ``λ`` users per tick acting
independently, a silent run of ``L`` ticks has probability about ``exp(−L λ)``.)  A rule on
logged facts: it spends no false-alarm budget and its ``p_value`` is null.

Guarantee
---------
The two statistical checks share this detector's budget ``α_d`` by Bonferroni over the
``m`` tests of a platform in a window (``m`` = 2, or 1 without a declared share): a check is
flagged when ``E_t ≥ m/α_d``, so P(any false ``log_integrity`` finding on a platform in a
window) ≤ ``α_d`` under continuous monitoring (Ville's inequality), exactly: the trials are
Bernoulli, no asymptotics.  ``p_value = min(1, m / max_t E_t)``.  Calibration (tests): 0 of
30 small honest simulated platforms raised a finding at ``α = 0.05``; a platform that drops
every event of a fifth of its holdout users is flagged.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special

from detectors.base import Detector, DetectorContext, Tick
from detectors.registry import REGISTRY, DetectorSpec, register
from detectors.sequential import adjusted_p, log_threshold
from detectors.stats import clopper_pearson, label_share_log_e
from monitor.config import Window, covers
from monitor.contract import Exposure, RankedItem
from monitor.records import Detectability, Finding, ms_to_datetime

__all__ = ["LogIntegrity", "beta_prior", "srm_log_e"]

_Key = tuple[str, str]  # platform, window_id
Floats = NDArray[np.float64]
_HOLDOUT, _RANKED = 1, 0


def beta_prior(share: float, relative_sd: float) -> tuple[float, float]:
    """Beta(a, b) with mean ``share`` and standard deviation ``relative_sd · share``."""
    var = (relative_sd * share) ** 2
    c = max(share * (1 - share) / var - 1, 2.0)
    return share * c, (1 - share) * c


def _log_i(x: float, a: ArrayLike, b: ArrayLike, upper: bool) -> Floats:
    v = special.betaincc(a, b, x) if upper else special.betainc(a, b, x)
    with np.errstate(divide="ignore"):
        return np.log(np.asarray(v, dtype=float))


def srm_log_e(k: ArrayLike, n: ArrayLike, lo: float, hi: float, a: float, b: float
              ) -> Floats:
    """Log e-value against ``H0: lo ≤ p ≤ hi`` for ``k`` holdout users of ``n`` (module doc).

    ``(a, b)`` = the Beta prior (:func:`beta_prior`); each half of the mixture uses the prior
    truncated to its side of the null interval.  Vectorised over ``k`` and ``n``.
    """
    if not 0 < lo <= hi < 1:
        raise ValueError(f"need 0 < lo <= hi < 1, got {lo}, {hi}")
    k, n = np.asarray(k, dtype=float), np.asarray(n, dtype=float)
    ak, bk = a + k, b + n - k
    post = special.betaln(ak, bk) - special.betaln(a, b)
    low = (post + _log_i(lo, ak, bk, False) - _log_i(lo, a, b, False)
           - k * math.log(lo) - (n - k) * math.log1p(-lo))
    high = (post + _log_i(hi, ak, bk, True) - _log_i(hi, a, b, True)
            - k * math.log(hi) - (n - k) * math.log1p(-hi))
    out = np.logaddexp(low, high) - math.log(2)
    return np.where(n > 0, out, 0.0)


@dataclass
class _Srm:
    arm_of: dict[str, int] = field(default_factory=dict)
    counts: list[int] = field(default_factory=lambda: [0, 0])  # ranked, holdout
    by_region: dict[str, list[int]] = field(default_factory=dict)
    switched: set[str] = field(default_factory=set)
    max_log_e: float = -math.inf
    crossed_ms: int | None = None
    direction: str = ""


@dataclass
class _Links:
    checked: int = 0
    unexplained: int = 0
    unknown_request: int = 0
    item_not_in_slate: int = 0
    position_mismatch: int = 0
    user_mismatch: int = 0
    without_request: int = 0
    examples: list[dict[str, Any]] = field(default_factory=list)
    max_log_e: float = -math.inf
    crossed_ms: int | None = None


@dataclass
class _Stream:
    first_idx: int
    last_idx: int | None = None
    user_ticks: int = 0  # Σ over ticks of the distinct users active in the tick
    leading: tuple[int, int, int] | None = None  # (empty ticks, first, end) before first event
    gaps: list[dict[str, Any]] = field(default_factory=list)
    first_gap_ms: int | None = None


@dataclass
class _Scope:
    window: Window
    periods: tuple[tuple[int, int], ...]  # (start_ms, end_ms) of baseline and window

    def contains(self, ts: int) -> bool:
        return any(s <= ts < e for s, e in self.periods)


class LogIntegrity(Detector):
    """Holdout-share SRM, exposure→slate links and event-time gaps (module docstring)."""

    name: ClassVar[str] = "log_integrity"
    display_name: ClassVar[str] = "Log integrity (holdout share, exposure links, gaps)"
    kinds: ClassVar[tuple[str, ...]] = ("log_integrity",)
    version: ClassVar[str] = "2"  # 2: compact slates (checkpoints of 1 are not compatible)

    def __init__(self, context: DetectorContext, srm_tolerance: float = 0.01,
                 prior_sd: float = 0.15, link_tolerance: float = 0.01,
                 link_hours: float = 6.0, max_gap_ticks: int = 4,
                 min_expected_users: float = 20.0, max_examples: int = 5) -> None:
        super().__init__(context)
        if not 0 <= srm_tolerance < 1:
            raise ValueError(f"srm_tolerance must be in [0, 1), got {srm_tolerance}")
        if not prior_sd > 0:
            raise ValueError(f"prior_sd must be > 0, got {prior_sd}")
        if not 0 < link_tolerance < 1:
            raise ValueError(f"link_tolerance must be in (0, 1), got {link_tolerance}")
        if not link_hours > 0:
            raise ValueError(f"link_hours must be > 0, got {link_hours}")
        if int(max_gap_ticks) != max_gap_ticks or max_gap_ticks < 1:
            raise ValueError(f"max_gap_ticks must be an integer >= 1, got {max_gap_ticks}")
        self.srm_tolerance = srm_tolerance
        self.prior_sd = prior_sd
        self.link_tolerance = link_tolerance
        self.link_hours = link_hours
        if not min_expected_users >= 0:
            raise ValueError(f"min_expected_users must be >= 0, got {min_expected_users}")
        self.max_gap_ticks = int(max_gap_ticks)
        self.min_expected_users = min_expected_users
        self.max_examples = max_examples
        config = context.config
        self._tick_ms = config.detection.tick_ms
        self._scopes = [_Scope(w, ((w.baseline_period.start_ms, w.baseline_period.end_ms),
                                   (w.window_period.start_ms, w.window_period.end_ms)))
                        for w in config.windows]
        self._by_region: dict[str, list[_Scope]] = {}
        self._srm: dict[_Key, _Srm] = {}
        self._links: dict[_Key, _Links] = {}
        self._streams: dict[_Key, _Stream] = {}
        self._slates: dict[tuple[str, str], tuple[str, str | dict[str, int]]] = {}
        self._slate_order: deque[tuple[int, tuple[str, str]]] = deque()
        self._held: list[tuple[Exposure, list[_Scope]]] = []
        self._changed: set[tuple[str, _Key]] = set()
        self._first_idx: int | None = None
        self._last_idx: int | None = None

    # -- configuration ------------------------------------------------------------------------
    def declared_share(self, platform: str) -> float | None:
        entry = self.context.config.platforms.get(platform)
        return None if entry is None else entry.holdout_share

    def tests_for(self, platform: str) -> int:
        """Statistical tests this detector runs on a platform in one window (Bonferroni m)."""
        return 2 if self.declared_share(platform) is not None else 1

    def _threshold(self, platform: str) -> float:
        return log_threshold(self.tests_for(platform), self.context.alpha)

    def _scopes_of(self, region: str) -> list[_Scope]:
        found = self._by_region.get(region)
        if found is None:
            found = self._by_region[region] = [s for s in self._scopes
                                               if covers(s.window.jurisdiction, region)]
        return found

    # -- observe ------------------------------------------------------------------------------
    def observe(self, tick: Tick) -> LogIntegrity:
        idx = tick.start_ms // self._tick_ms
        self._first_idx = idx if self._first_idx is None else self._first_idx
        self._last_idx = idx
        active: dict[_Key, set[str]] = {}
        for r in tick.rankings:
            ts: int = r.ts  # type: ignore[assignment]
            key = (r.platform, r.request)
            if key not in self._slates:
                self._slate_order.append((ts, key))
            self._slates[key] = (r.user, _compact(r.items))
            for scope in self._scopes_of(r.region):
                if scope.contains(ts):
                    k = (r.platform, scope.window.id)
                    active.setdefault(k, set()).add(r.user)
                    self._user(k, r.user, r.arm, r.region)
        held, self._held = self._held, []
        for e, scopes in held:
            self._link(e, scopes, final=True)
        for e in tick.exposures:
            ts = e.ts  # type: ignore[assignment]
            scopes = [s for s in self._scopes_of(e.region) if s.contains(ts)]
            if not scopes:
                continue
            for scope in scopes:
                k = (e.platform, scope.window.id)
                active.setdefault(k, set()).add(e.user)
                self._user(k, e.user, e.arm, e.region)
            self._link(e, scopes, final=False)
        for k in sorted(active):
            self._gap_check(k, idx)
            self._streams[k].user_ticks += len(active[k])
        self._expire(tick.end_ms)
        return self

    def _user(self, key: _Key, user: str, arm: str, region: str) -> None:
        if self.declared_share(key[0]) is None:
            return
        srm = self._srm.get(key)
        if srm is None:
            srm = self._srm[key] = _Srm()
        code = _HOLDOUT if arm == "holdout" else _RANKED
        first = srm.arm_of.get(user)
        if first is None:
            srm.arm_of[user] = code
            srm.counts[code] += 1
            srm.by_region.setdefault(region, [0, 0])[code] += 1
            self._changed.add(("holdout_share", key))
        elif first != code:
            srm.switched.add(user)

    def _link(self, e: Exposure, scopes: list[_Scope], final: bool) -> None:
        keys = [(e.platform, s.window.id) for s in scopes]
        if e.request is None:
            for k in keys:
                self._links.setdefault(k, _Links()).without_request += 1
            return
        slate = self._slates.get((e.platform, e.request))
        if slate is None and not final:
            self._held.append((e, scopes))  # its slate may be logged in the next tick
            return
        problem = None
        position = None if slate is None else _position(slate[1], e.item)
        if slate is None:
            problem = "unknown_request"
        elif position is None:
            problem = "item_not_in_slate"
        for k in keys:
            links = self._links.setdefault(k, _Links())
            links.checked += 1
            self._changed.add(("exposure_links", k))
            if problem is not None:
                links.unexplained += 1
                setattr(links, problem, getattr(links, problem) + 1)
                if len(links.examples) < self.max_examples:
                    links.examples.append({"problem": problem, "event_id": e.event_id,
                                           "request": e.request, "item": e.item,
                                           "ts": ms_to_datetime(e.ts).isoformat()})  # type: ignore[arg-type]
            elif slate is not None:
                if position != e.position:
                    links.position_mismatch += 1
                if slate[0] != e.user:
                    links.user_mismatch += 1

    def _expire(self, now_ms: int) -> None:
        cutoff = now_ms - int(self.link_hours * 3_600_000)
        order = self._slate_order
        while order and order[0][0] < cutoff:
            self._slates.pop(order.popleft()[1], None)

    # -- gaps ---------------------------------------------------------------------------------
    def _monitored_ticks(self, window_id: str, lo: int, hi: int) -> tuple[int, int, int]:
        """Ticks in ``[lo, hi)`` inside the window's periods: (count, first, last + 1)."""
        scope = next(s for s in self._scopes if s.window.id == window_id)
        t = self._tick_ms
        count, first, last = 0, None, None
        for start, end in scope.periods:
            a = max(lo, -(-start // t))
            b = min(hi, -(-end // t))
            if b > a:
                count += b - a
                first = a if first is None else min(first, a)
                last = b if last is None else max(last, b)
        return count, lo if first is None else first, lo if last is None else last

    def _gap_check(self, key: _Key, idx: int, *, closing: bool = False) -> None:
        stream = self._streams.get(key)
        if stream is None:
            assert self._first_idx is not None
            stream = self._streams[key] = _Stream(first_idx=idx)
            stream.leading = self._monitored_ticks(key[1], self._first_idx, idx)
            stream.last_idx = idx
            return
        assert stream.last_idx is not None
        empty, first, last = self._monitored_ticks(key[1], stream.last_idx + 1, idx)
        if not closing:
            stream.last_idx = idx
        elapsed = self._monitored_ticks(key[1], stream.first_idx, first)[0]
        self._gap(key, stream, empty, first, last, stream.user_ticks / max(elapsed, 1),
                  at_stream_end=closing)

    def _gap(self, key: _Key, stream: _Stream, empty: int, first: int, last: int,
             rate: float, *, at_stream_end: bool = False, at_stream_start: bool = False
             ) -> None:
        if empty <= self.max_gap_ticks or empty * rate < self.min_expected_users:
            return
        t = self._tick_ms
        stream.gaps.append({"start": ms_to_datetime(first * t).isoformat(),
                            "end": ms_to_datetime(last * t).isoformat(),
                            "minutes": empty * t / 60_000, "empty_ticks": empty,
                            "users_per_tick": rate, "expected_users": empty * rate,
                            "at_stream_start": at_stream_start,
                            "at_stream_end": at_stream_end})
        stream.gaps.sort(key=lambda g: g["start"])
        end_ms = last * t
        stream.first_gap_ms = end_ms if stream.first_gap_ms is None else min(
            stream.first_gap_ms, end_ms)
        self._changed.add(("event_gaps", key))

    # -- evaluate -----------------------------------------------------------------------------
    def evaluate(self, tick: Tick) -> list[Finding]:
        out = []
        for check, key in sorted(self._changed):
            finding = self._evaluate(check, key, tick.end_ms)
            if finding is not None:
                out.append(finding)
        self._changed.clear()
        return out

    def _evaluate(self, check: str, key: _Key, end_ms: int) -> Finding | None:
        threshold = self._threshold(key[0])
        if check == "holdout_share":
            srm = self._srm[key]
            log_e = self._srm_log_e(key[0], srm)
            srm.max_log_e = max(srm.max_log_e, log_e)
            if srm.crossed_ms is None and srm.max_log_e >= threshold:
                srm.crossed_ms = end_ms
                n = sum(srm.counts)
                share = self.declared_share(key[0]) or 0.0
                srm.direction = "low" if srm.counts[_HOLDOUT] < n * share else "high"
            return self._srm_finding(key, srm, threshold) if srm.crossed_ms else None
        if check == "exposure_links":
            links = self._links[key]
            log_e = label_share_log_e(links.unexplained, links.checked, self.link_tolerance)
            links.max_log_e = max(links.max_log_e, log_e)
            if links.crossed_ms is None and links.max_log_e >= threshold:
                links.crossed_ms = end_ms
            return self._links_finding(key, links, threshold) if links.crossed_ms else None
        return self._gap_finding(key, self._streams[key])

    def _bounds(self, share: float) -> tuple[float, float]:
        return share * (1 - self.srm_tolerance), min(share * (1 + self.srm_tolerance), 0.999)

    def _srm_log_e(self, platform: str, srm: _Srm, k: int | None = None,
                   n: int | None = None) -> float:
        share = self.declared_share(platform)
        assert share is not None
        lo, hi = self._bounds(share)
        a, b = beta_prior(share, self.prior_sd)
        n = sum(srm.counts) if n is None else n
        k = srm.counts[_HOLDOUT] if k is None else k
        return float(srm_log_e(k, n, lo, hi, a, b))

    # -- findings -----------------------------------------------------------------------------
    def _finding(self, key: _Key, subject: str, *, effect: float | None = None,
                 ci: tuple[float | None, float | None] = (None, None),
                 p_value: float | None, n: int, severity: str, event_ms: int,
                 evidence: dict[str, Any]) -> Finding:
        window = next(s.window for s in self._scopes if s.window.id == key[1])
        return Finding.new(detector=self.name, kind="log_integrity", platform=key[0],
                           region=window.jurisdiction, window_id=key[1], subject_kind="log",
                           subject=subject, effect=effect, ci_low=ci[0], ci_high=ci[1],
                           p_value=p_value, n_exposures=n, severity=severity,
                           event_time=ms_to_datetime(event_ms), evidence=evidence)

    def _srm_finding(self, key: _Key, srm: _Srm, threshold: float) -> Finding:
        share = self.declared_share(key[0])
        assert share is not None and srm.crossed_ms is not None
        n, k = sum(srm.counts), srm.counts[_HOLDOUT]
        observed = k / n if n else 0.0
        lo, hi = clopper_pearson(k, n)
        ratio = observed / share
        deviation = abs(ratio - 1)
        m = self.tests_for(key[0])
        evidence = {
            "rule": "holdout arm's share of active users differs from the declared share",
            "declared_holdout_share": share, "observed_holdout_share": observed,
            "observed_share_ci95": [lo, hi],
            "users": {"ranked": srm.counts[_RANKED], "holdout": k, "total": n},
            "by_region": {r: {"ranked": c[0], "holdout": c[1],
                              "holdout_share": c[1] / (c[0] + c[1])}
                          for r, c in sorted(srm.by_region.items())},
            "users_in_both_arms": len(srm.switched),
            "direction": srm.direction,
            "expected_holdout_users": n * share,
            "test": {"name": "Beta-mixture e-process (sequential SRM), "
                             "H0: holdout share within tolerance of the declared share",
                     "tolerance_relative": self.srm_tolerance, "prior_sd_relative":
                     self.prior_sd, "log_e_max": srm.max_log_e, "log_threshold": threshold,
                     "tests_in_window": m, "alpha_share": self.context.alpha},
        }
        sev = ("critical" if deviation >= 0.3 else "high" if deviation >= 0.1
               else "medium" if deviation >= 0.03 else "low")
        return self._finding(key, "holdout_share", effect=ratio,
                             ci=(lo / share, hi / share),
                             p_value=adjusted_p(srm.max_log_e, m), n=n, severity=sev,
                             event_ms=srm.crossed_ms, evidence=evidence)

    def _links_finding(self, key: _Key, links: _Links, threshold: float) -> Finding:
        assert links.crossed_ms is not None
        rate = links.unexplained / links.checked if links.checked else 0.0
        lo, hi = clopper_pearson(links.unexplained, links.checked)
        m = self.tests_for(key[0])
        evidence = {
            "rule": "exposures that reference a slate the ranking log does not contain "
                    "(unknown request, or item not in that slate)",
            "exposures_checked": links.checked, "unexplained": links.unexplained,
            "unexplained_share": rate, "unexplained_share_ci95": [lo, hi],
            "unknown_request": links.unknown_request,
            "item_not_in_slate": links.item_not_in_slate,
            "position_mismatch": links.position_mismatch,
            "user_mismatch": links.user_mismatch,
            "exposures_without_request": links.without_request,
            "examples": links.examples,
            "test": {"name": "mixture e-process, H0: unexplained share <= tolerance",
                     "tolerance": self.link_tolerance, "link_hours": self.link_hours,
                     "log_e_max": links.max_log_e, "log_threshold": threshold,
                     "tests_in_window": m, "alpha_share": self.context.alpha},
        }
        sev = ("critical" if rate >= 0.2 else "high" if rate >= 0.05
               else "medium" if rate >= 0.02 else "low")
        return self._finding(key, "exposure_links", p_value=adjusted_p(links.max_log_e, m),
                             n=links.checked, severity=sev, event_ms=links.crossed_ms,
                             evidence=evidence)

    def _gap_finding(self, key: _Key, stream: _Stream) -> Finding | None:
        if not stream.gaps or stream.first_gap_ms is None:
            return None
        longest = max(g["minutes"] for g in stream.gaps)
        sev = ("critical" if longest >= 24 * 60 else "high" if longest >= 6 * 60
               else "medium" if longest >= 2 * 60 else "low")
        evidence = {"rule": f"no event of the platform in the window's region scope for more "
                            f"than {self.max_gap_ticks} ticks inside a monitored period, "
                            f"where {self.min_expected_users:g}+ active users were expected",
                    "max_gap_ticks": self.max_gap_ticks,
                    "min_expected_users": self.min_expected_users,
                    "tick_minutes": self._tick_ms / 60_000, "gaps": stream.gaps,
                    "longest_gap_minutes": longest}
        links = self._links.get(key)
        return self._finding(key, "event_gaps", p_value=None,
                             n=links.checked if links else 0, severity=sev,
                             event_ms=stream.first_gap_ms, evidence=evidence)

    # -- end of stream ------------------------------------------------------------------------
    def finish(self, end_ms: int) -> list[Finding]:
        held, self._held = self._held, []
        for e, scopes in held:
            self._link(e, scopes, final=True)
        if self._last_idx is not None:
            for key in sorted(self._streams):
                self._gap_check(key, self._last_idx + 1, closing=True)
                stream = self._streams[key]
                if stream.leading is not None:
                    assert stream.last_idx is not None
                    span = self._monitored_ticks(key[1], stream.first_idx,
                                                 stream.last_idx + 1)[0]
                    self._gap(key, stream, *stream.leading,
                              stream.user_ticks / max(span, 1), at_stream_start=True)
                    stream.leading = None
        out = []
        for check, key in sorted({*self._changed,
                                  *(("holdout_share", k) for k in self._srm),
                                  *(("exposure_links", k) for k in self._links),
                                  *(("event_gaps", k) for k in self._streams)}):
            finding = self._evaluate(check, key, end_ms)
            if finding is not None:
                out.append(finding)
        self._changed.clear()
        return out

    def detectability(self) -> list[Detectability]:
        """Smallest holdout-share ratios (observed ÷ declared) the SRM test would flag with
        the users it saw: ``mde_down`` < 1 (under-logged holdout arm), ``mde_up`` > 1."""
        rows = []
        for key, srm in sorted(self._srm.items()):
            share = self.declared_share(key[0])
            n = sum(srm.counts)
            if share is None or n == 0:
                continue
            threshold = self._threshold(key[0])
            down = self._mde(key[0], srm, n, share, threshold, -1)
            up = self._mde(key[0], srm, n, share, threshold, +1)
            window = next(s.window for s in self._scopes if s.window.id == key[1])
            rows.append(Detectability(detector=self.name, platform=key[0],
                                      region=window.jurisdiction, window_id=key[1],
                                      subject_kind="log", subject="holdout_share",
                                      mde_up=up, mde_down=down, n_exposures=n,
                                      flagged=srm.crossed_ms is not None))
        return rows

    def _mde(self, platform: str, srm: _Srm, n: int, share: float, threshold: float,
             sign: int) -> float | None:
        limit = (1 / share - 1) if sign > 0 else 1.0  # largest relative deviation possible

        def crosses(d: float) -> bool:
            k = round(n * share * (1 + sign * d))
            return self._srm_log_e(platform, srm, k=min(max(k, 0), n), n=n) >= threshold

        if not crosses(limit * 0.999):
            return None
        lo, hi = 0.0, limit * 0.999
        for _ in range(40):
            mid = (lo + hi) / 2
            lo, hi = (lo, mid) if crosses(mid) else (mid, hi)
        return 1 + sign * hi


if LogIntegrity.name not in REGISTRY:  # one registration, however the module is imported
    register(DetectorSpec.of(
        LogIntegrity,
        "Holdout arm's share of active users vs the declared share (sequential SRM), "
        "exposures no logged slate explains, gaps in the event stream.", budget_weight=0.2))


_ITEM, _POS = "\x1f", "\x1e"


def _compact(items: Sequence[RankedItem]) -> str | dict[str, int]:
    """A slate as ``US item RS position US item RS position US`` (ASCII separators) — one
    small string instead of a dict and the item strings it would keep alive; a dict when an
    id holds a separator."""
    if any(_ITEM in it.item or _POS in it.item for it in items):
        return {it.item: it.position for it in items}
    return _ITEM + _ITEM.join(f"{it.item}{_POS}{it.position}" for it in items) + _ITEM


def _position(slate: str | dict[str, int], item: str) -> int | None:
    """Position of ``item`` in a :func:`_compact` slate, None if absent."""
    if isinstance(slate, dict):
        return slate.get(item)
    if _ITEM in item or _POS in item:
        return None  # a compact slate holds no id with a separator
    start = slate.find(f"{_ITEM}{item}{_POS}")
    if start < 0:
        return None
    start += len(item) + 2
    return int(slate[start:slate.index(_ITEM, start)])
