"""``holdout_shift`` — the ranked feed's share of a subject changes with the election window.

The holdout arm (users served a reverse-chronological feed of the same follow graph) is the
evidence a platform cannot rewrite after the fact by changing a score field (Huszár et al.
2022, PNAS 119(1) e2025334119).  This detector uses only the exposure log: it finds boosts
and suppressions when the ranking log's scores carry no information at all.

Statistic (what ``effect`` measures)
------------------------------------
For a subject ``s`` (registered actor, or a group = its monitored members) on a platform, in a
window and a scope (:mod:`detectors._scopes`), arm ``a`` (ranked ``r``, holdout ``h``)::

    D = log(Y_r/T_r) − log(X̃_r/T̃_r) − [log(Y_h/T_h) − log(X̃_h/T̃_h)]

``Y_a``/``T_a`` = the subject's / all exposures in arm ``a`` in the window so far;
``X̃_a``/``T̃_a`` = the same in the baseline, **re-weighted to the window's hours of day**
(:func:`detectors._holdout_look.hour_weights`: the ranked ÷ holdout ratio has a daily cycle —
at night the chronological feed reaches further back — so a window-so-far made of night
hours is compared with the baseline's night hours, not with whole days).
``exp(D)`` is the multiplicative change in the subject's exposure in the ranked feed, beyond
what the holdout feed and the platform's traffic explain: with no intervention ``D ≈ 0``;
with an intervention that multiplies the subject's ranked exposure by ``f`` from the window
start, ``D ≈ log f``.  ``effect`` reports it **since the estimated onset** (below), the
quantity the simulator's ground truth ``exposure_effect`` is (the counterfactual ratio).

Why each part:

* *posting more, gaining followers* change the supply of the subject's items to both arms
  (same follow graph): cancelled by the holdout arm — to first order.  A ranker gives
  diminishing returns on supply (an account posting three times as much gets less than three
  times the ranked exposure: its items compete for the same users' slots, while the
  chronological feed shows them all), so each subject is compared with the **platform-wide
  change at its own change of supply** ``c + κ (supply_s − x̄)``, fitted across the control
  accounts (unregistered ones; robust weighted least squares,
  :func:`detectors._holdout_stats.platform_reference`); ``c`` also absorbs the share that
  boosting some accounts takes from all the others.  Natural posting variation pins ``κ``
  down poorly, so a subject whose supply changed beyond its Poisson noise carries at least
  ``supply_response_sd`` of uncertainty on ``κ``; and no test runs before ``min_window_hours``
  (a supply change at the window start moves the first hours far more than a whole period:
  the holdout feed shows a new item at once, the ranked feed over its life);
* *platform-wide changes* (more users, sessions, a daily cycle of activity, longer sessions
  for everyone) change every account's exposure alike: cancelled by normalising each arm by
  its own traffic ``T`` and by ``c`` — every account is the subject's control (issue 18,
  item 3).  A change in the ranked arm's traffic relative to the holdout's is itself tested
  and reported **once**, as the informational kind ``platform_change`` (subject_kind
  ``platform``), never as an account's amplification.  A new model that sharpens the ranking
  for everyone (every score ×1.3) stays inside the subjects' noise here (``null_model_update``
  in ``benchmarks/bench_calibration.py``); :mod:`detectors.score_shift` reports it;
* *declared interventions*: a subject covered by a disclosure yields the informational kind
  ``disclosed``, never ``amplification``/``suppression``;
* *reach* (Huszár's share of users reached) is reported in the evidence; on the simulator its
  signal-to-noise ratio for a ×2 boost is 2.9 against 4.1 for the exposure counts, so the test
  uses counts.

Variance
--------
``V = φ · V_Poisson + Σ_P (G_P own_P + ν σ² K_P)/(G_P + ν) + Var(reference)``:

* ``V_Poisson`` — counts pooled under the null (:func:`detectors._holdout_look.look_arrays`);
* ``φ ≥ 1`` — each user paired with himself across the periods (the per-user paired,
  cluster-robust variance of :func:`detectors._holdout_stats.paired_user_var` — the CUPED
  regression adjustment on each user's own baseline exposure — relative to Poisson; 1 when
  users' rates are stable; never below: the central guard against tiny variances — no count
  statistic is more precise than its counts);
* the items, per period ``P``: which few items a subject posted, their quality and timing,
  move its ranked share beyond user sampling, and nothing in the exposure log can remove that
  (the data's limit).  The subject's own item-clustered excess variance ``own_P`` (Cameron,
  Gelbach & Miller 2011), shrunk towards the pooled model ``σ² K_P`` with the weight of ``ν``
  items (``G_P = 1/K_P`` its effective number of items; ``K`` = the cross-arm item
  concentration ``Σ_i r_i h_i/(S_r S_h)``).  ``σ²`` is estimated at every look across the
  platform's **unregistered accounts** with enough exposures (robust Paule–Mandel,
  :func:`detectors._holdout_stats.item_variance`; with fewer than ``min_fit_accounts`` of
  them, across all accounts with the median equation, which half the accounts being boosted
  cannot move) — not a constant.

Measured on the simulator (``benchmarks/bench_calibration.py``, ``bench_power.py``): see the
README's detector section for the standardised statistic's spread and the minimum detectable
effects.

Test and guarantee
------------------
Every tick (15 min) ``(D, V)`` update the always-valid two-sided normal-mixture e-process of
:mod:`detectors.sequential` (no margin).  The mixture scale is tuned per subject to the
effects it can plausibly detect: ``τ_s = tau_scale · sqrt(V_plan)``,
``V_plan = (1/(S_rB + ½) + 1/(S_hB + ½) + σ²_prior K_B) · (1 + L_B/L_W)`` — the baseline-only
variance with the prior item variance, scaled for a window of length ``L_W`` after a baseline
of ``L_B`` (twice it for equal lengths) — known when the window opens: a predictable choice,
so validity is untouched (Johari et al. 2017 §4.2).  The platform test's ``τ`` is planned
the same way from the baseline's user-clustered traffic variance.

Scopes, fixed when the window opens: the whole, plus surfaces and ISO 3166-2 subdivisions seen
in the baseline (:mod:`detectors._scopes`). Per platform and window, with ``α_d`` this
detector's share of ``detection.alpha``, the whole scope's ``m + 1`` tests (``m`` subjects and
the platform test) share ``(1 − scope_share)·α_d`` and each added scope's ``m`` tests
``scope_share·α_d / n_scopes``: by Ville's inequality and Bonferroni, ``P(any false finding of
this detector on a platform in a window) ≤ α_d``, asymptotically, under continuous monitoring.
``p_value`` is adjusted to all those tests.

Onset and effect
----------------
Once a test has crossed, the onset is estimated by comparing, for every hour ``k`` of the
window, the model "no effect before ``k``, an effect after" with "one effect since the window
start" (Gaussian likelihood of the two segments' share changes; maximum-likelihood change point,
Hinkley 1970, Biometrika 57(1)): the ``k`` with the largest gain in fit is accepted when the
gain exceeds ``onset_z²`` (a chi-square with one degree of freedom) and the effect after it is
in the detected direction; otherwise the onset is the window start.  A window start at night,
where a real effect is merely imprecise, is therefore not mistaken for a later onset.  ``effect`` =
``exp(D)`` over ``[onset, now)``; ``ci_low``/``ci_high`` = the test's own confidence
sequence at that point (:func:`detectors.sequential.cs_by_inversion`, level ``1 − α_test``),
``evidence.effect.ci95`` the fixed-time 95 % interval.  A finding keeps the last effect and
interval that agreed with its direction; ``evidence.latest`` shows a later estimate that no
longer does.

Small samples and guards
------------------------
A subject is tested only when it has ``≥ min_items`` distinct items in *each* period (the
item clusters of its variance), ``≥ min_exposures`` exposures per arm over both periods,
``≥ min_window_exposures`` per arm in the window so far, and the window so far spans
``min_window_hours``; ``σ²`` is fitted on ``≥ min_fit_accounts`` control accounts (else the
median equation over all accounts, with the prior worth ``prior_accounts`` accounts); a
reference ``c + κ·x`` needs ≥ 3 control accounts.  User clusters: ``φ`` comes from the
paired sums of every user of the arm (thousands), and is never below 1.  The central guard
(:func:`detectors.sequential.guard_variance`) floors ``V`` at the Poisson variance
``V_Poisson`` (and ``MIN_VARIANCE``): no estimate of the variance from few clusters can make
the statistic more precise than its counts.

Two stages (scale-out)
----------------------
Every per-tick input is a sum over users, so stage 1 can run on user-partitioned workers and
stage 2 once, on the added partial sums (:mod:`detectors._holdout_sums`):

1. **Reducer** — :meth:`detectors._holdout_sums.HoldoutReducer.reduce` ``(exposures) →
   TickSums``.  Its only state is per user (``_User``: a user's traffic ``b``/``w`` and his
   exposures ``x``/``y`` of each monitored subject per period, the hours he was active),
   which lives in the user's partition.  It emits additive increments: per
   (cell = platform × window × scope, period, arm) the counts per account and hour, traffic
   per hour, distinct active users per hour, exposures per item; and per (platform, window,
   arm) the paired-user cross sums of :class:`detectors._holdout_stats.PairedSums` (as
   ``(x+Δx)² − x²``-style increments, so partitions add).
2. **Merged state** — :meth:`detectors._holdout_sums.HoldoutState.merge` ``(TickSums)``
   adds the partial sums into one :class:`detectors._holdout_sums.CellSums` per cell
   (account × hour arrays, traffic, per-item counts and the cross-arm item moments
   ``Σ_i r_i h_i`` updated from the *merged* per-item counts) and the whole scope's paired
   sums (``HoldoutState.paired``).  :meth:`HoldoutShift.observe` is exactly
   ``state.merge(reducer.reduce(tick.exposures))``.

Everything in this module (``evaluate``: :func:`detectors._holdout_look.look_arrays`,
:func:`~detectors._holdout_look.overdispersion`, :func:`~detectors._holdout_look.platform_traffic`,
the references, the tests, onset and findings) reads merged sums only.

Reference: Huszár et al. 2022; Deng et al. 2013 (CUPED); Cameron & Miller 2015 (cluster
robust); Paule & Mandel 1982; Johari et al. 2017 (mSPRT); Howard et al. 2021 (confidence
sequences).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import msgspec
import numpy as np
import scipy.sparse as sp

import detectors.evidence as evidence
import detectors.severity as severity
from detectors._holdout_look import (
    LookArrays,
    hour_weights,
    look_arrays,
    membership,
    overdispersion,
    platform_traffic,
    with_columns,
)
from detectors._holdout_stats import (
    Reference,
    item_variance,
    platform_reference,
)
from detectors._holdout_sums import HOUR_MS, HoldoutReducer, HoldoutState, WindowInfo
from detectors._scopes import WHOLE, Scope, ScopePlan, plan_scopes
from detectors._subjects import covering_disclosures, disclosure_json, window_subjects
from detectors.amplification import measure
from detectors.base import Detector, DetectorContext, Tick
from detectors.evidence import finite_float
from detectors.sequential import (
    Reported,
    SequentialPanel,
    TestState,
    agrees,
    cs_by_inversion,
    mde_log,
    mde_rows,
)
from monitor.core.config import Window
from monitor.core.records import Detectability, Finding, ms_to_datetime

__all__ = ["HoldoutShift"]

_Z95 = 1.959963984540054


@dataclass
class _ScopeTests:
    scope: Scope
    tests: SequentialPanel
    tau: np.ndarray
    m: sp.csr_matrix | None = None
    m_accounts: int = -1
    last: LookArrays | None = None
    estimate: np.ndarray | None = None
    variance: np.ndarray | None = None
    history: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)
    reported: dict[int, Reported] = field(default_factory=dict)
    shift: np.ndarray | None = None
    shift_var: np.ndarray | None = None
    ref: Reference | None = None


@dataclass
class _Panel:
    platform: str
    info: WindowInfo
    plan: ScopePlan
    scopes: dict[Scope, _ScopeTests]
    members: list[list[str]]
    disclosures: list[list[Any]]
    sigma2: float = math.nan
    sigma2_from: tuple[str, int] = ("", 0)
    phi: np.ndarray | None = None
    platform_est: float = math.nan
    platform_var: float = math.nan
    looks: int = 0
    last_ms: int = 0
    next_hour_ms: int = 0

    @property
    def window(self) -> Window:
        return self.info.window

    @property
    def k(self) -> int:
        return len(self.info.subjects)


class HoldoutShift(Detector):
    """Change of the subject's ranked ÷ holdout exposure share (module docstring).

    Args:
        tau_scale: Mixture scale per subject in units of its planned final standard error
            (``τ_s = tau_scale · sqrt(V_plan)``): ≈ the effects the test is tuned to.
        margin: Multiplicative change treated as none (1 = none).
        min_exposures: Minimum exposures of the subject per arm (baseline + window) to test.
        min_window_exposures: Minimum exposures of the subject per arm in the window so far.
        min_items: Minimum distinct items of the subject in each period to test.
        min_fit_exposures: Minimum exposures per arm of an account used to estimate ``σ²``.
        min_fit_accounts: Unregistered accounts needed to estimate ``σ²`` from them alone.
        item_variance_prior: Prior ``σ²`` (worth ``prior_accounts`` accounts) and the value
            that plans ``τ`` before any window data.
        prior_accounts: Weight of that prior.
        prior_items: Weight, in items, of the pooled item variance in a subject's own.
        scope_share: Share of the budget for surface / subdivision scopes (when any).
        max_scopes: Most surfaces + subdivisions tested per window.
        onset_z: Standardised change needed to place the onset after the window start.
        supply_response_sd: Least uncertainty of the ranker's response ``κ`` to a change in
            an account's supply of items (per unit of log supply change).
        min_window_hours: No test before the window so far spans this many hours: the
            holdout feed shows a new item at once, the ranked feed over the item's life, so a
            change of supply at the window start (a posting surge) moves the first hours'
            ratio far more than it moves a whole period's.
        update_every: Re-emit an active finding every this many ticks (and at the end).
    """

    name: ClassVar[str] = "holdout_shift"
    display_name: ClassVar[str] = "Amplification shift in the window (holdout arm)"
    kinds: ClassVar[tuple[str, ...]] = (
        "amplification",
        "suppression",
        "disclosed",
        "platform_change",
    )
    version: ClassVar[str] = "2"
    reads: ClassVar[frozenset[str]] = frozenset({"exposure"})  # observe(): exposures only

    def __init__(
        self,
        context: DetectorContext,
        tau_scale: float = 3.5,
        margin: float = 1.0,
        min_exposures: int = 30,
        min_window_exposures: int = 20,
        min_items: int = 3,
        min_fit_exposures: int = 30,
        min_fit_accounts: int = 20,
        item_variance_prior: float = 0.25,
        prior_accounts: float = 3.0,
        prior_items: float = 10.0,
        scope_share: float = 0.5,
        max_scopes: int = 8,
        onset_z: float = 3.0,
        supply_response_sd: float = 0.3,
        min_window_hours: float = 6.0,
        update_every: int = 4,
    ) -> None:
        super().__init__(context)
        if not tau_scale > 0:
            raise ValueError(f"tau_scale must be > 0, got {tau_scale}")
        if not margin >= 1:
            raise ValueError(f"margin must be >= 1 (a multiplicative change), got {margin}")
        if min(min_exposures, min_window_exposures, min_items, min_fit_exposures) < 1:
            raise ValueError(
                "min_exposures, min_window_exposures, min_items and min_fit_exposures must be >= 1"
            )
        if item_variance_prior < 0 or prior_accounts < 0:
            raise ValueError("item_variance_prior and prior_accounts must be >= 0")
        if not 0 <= scope_share < 1 or max_scopes < 0:
            raise ValueError("scope_share must be in [0, 1) and max_scopes >= 0")
        if update_every < 1 or not onset_z > 0 or supply_response_sd < 0:
            raise ValueError("update_every must be >= 1, onset_z > 0, supply_response_sd >= 0")
        self.supply_response_sd = supply_response_sd
        if min_window_hours < 0:
            raise ValueError(f"min_window_hours must be >= 0, got {min_window_hours}")
        self.min_window_hours = min_window_hours
        self.tau_scale, self.margin = tau_scale, margin
        self.min_exposures, self.min_items = min_exposures, min_items
        self.min_window_exposures = min_window_exposures
        self.min_fit_exposures, self.min_fit_accounts = min_fit_exposures, min_fit_accounts
        self.item_variance_prior, self.prior_accounts = item_variance_prior, prior_accounts
        if prior_items < 0:
            raise ValueError(f"prior_items must be >= 0, got {prior_items}")
        self.prior_items = prior_items
        self.scope_share, self.max_scopes = scope_share, max_scopes
        self.onset_z, self.update_every = onset_z, update_every
        cfg = context.config
        self._infos = {w.id: WindowInfo.of(cfg, w, window_subjects(cfg, w)) for w in cfg.windows}
        self._reducer = HoldoutReducer(cfg, self._infos)
        self._state = HoldoutState(self._infos)
        self._panels: dict[tuple[str, str], _Panel | None] = {}
        self._tick_index = 0

    # -- stage 1 + 2: sums ------------------------------------------------------------------
    def observe(self, tick: Tick) -> HoldoutShift:
        self._state.merge(self._reducer.reduce(tick.exposures))
        return self

    # -- per tick -----------------------------------------------------------------------------
    def evaluate(self, tick: Tick) -> list[Finding]:
        self._tick_index += 1
        out: list[Finding] = []
        for platform, wid in sorted(self._state.touched):
            info = self._infos[wid]
            if tick.end_ms <= info.w0 or tick.start_ms >= info.w1:
                continue
            panel = self._panel(platform, wid)
            if panel is None:
                continue
            new = self._look(panel, min(tick.end_ms, info.w1))
            for scope, st in panel.scopes.items():
                emit = set(new.get(scope, []))
                if self._tick_index % self.update_every == 0:
                    emit |= set(np.flatnonzero(st.tests.crossed).tolist())
                out.extend(self._finding(panel, st, i) for i in sorted(emit))
        return out

    def _panel(self, platform: str, wid: str) -> _Panel | None:
        key = (platform, wid)
        if key in self._panels:
            return self._panels[key]
        info = self._infos[wid]
        whole = self._state.cells.get((platform, wid, WHOLE))
        if whole is None or whole.volume_base <= 0 or not info.subjects:
            self._panels[key] = None  # no baseline seen: nothing to compare with
            return None
        volume = {
            cell_key[2]: c.volume_base
            for cell_key, c in self._state.cells.items()
            if cell_key[:2] == key and cell_key[2] != WHOLE
        }
        plan = plan_scopes(
            volume,
            info.window.jurisdiction,
            max_scopes=self.max_scopes,
            scope_share=self.scope_share,
        )
        cfg = self.context.config
        members = [
            [name]
            if kind == "actor"
            else [
                a.actor
                for a in cfg.actors
                if a.group == name and a.monitored_in(info.window.jurisdiction)
            ]
            for kind, name in info.subjects
        ]
        k = len(info.subjects)
        scopes: dict[Scope, _ScopeTests] = {}
        alpha = self.context.alpha
        for scope, share in zip(plan.scopes, plan.shares, strict=True):
            cell = self._state.cell((platform, wid, scope))
            m = membership(cell, members)
            tau = self._plan_tau(cell, m, info)
            n = k + 1 if scope == WHOLE else k
            if scope == WHOLE:
                tau = np.append(tau, self._plan_platform_tau(platform, wid))
            tests = SequentialPanel.bonferroni(
                n, share * alpha, tau, self.margin, alpha_family=alpha
            )
            scopes[scope] = _ScopeTests(scope, tests, tau)
        panel = _Panel(
            platform,
            info,
            plan,
            scopes,
            members,
            [covering_disclosures(cfg, platform, info.window, s) for s in info.subjects],
            next_hour_ms=info.w0,
        )
        self._panels[key] = panel
        return panel

    def _registered(self, cell: Any) -> np.ndarray:
        reg = self.context.config.registry
        names = cell.index.names
        return np.array([a in reg for a in names], dtype=bool)

    def _plan_tau(self, cell: Any, m: sp.csr_matrix, info: WindowInfo) -> np.ndarray:
        """``τ_s = tau_scale·sqrt(2·V_B)`` from the baseline alone (predictable)."""
        base = look_arrays(cell, np.ones(24), m)
        with np.errstate(divide="ignore"):
            v_b = 1 / (base.s_rb + 0.5) + 1 / (base.s_hb + 0.5)
        # a window as long as the baseline has as much information again
        length = (info.w1 - info.w0) / max(info.b1 - info.b0, 1)
        v_plan = (v_b + self.item_variance_prior * base.k_b) * (1 + 1 / length)
        return self.tau_scale * np.sqrt(np.where(np.isfinite(v_plan), v_plan, 1.0))

    def _plan_platform_tau(self, platform: str, wid: str) -> float:
        paired = self._state.paired.get((platform, wid))
        if paired is None:
            return 0.05
        v = sum(float(a["bb"][0]) / max(float(a["b"][0]), 1.0) ** 2 for a in paired)
        return self.tau_scale * math.sqrt(max(2 * v, 1e-8))

    def _look(self, panel: _Panel, t_ms: int) -> dict[Scope, list[int]]:
        info = panel.info
        wts = hour_weights(info, info.w0, t_ms)
        whole = self._state.cells[(panel.platform, info.window.id, WHOLE)]
        acc = look_arrays(whole, wts)
        fit = (acc.pooled >= self.min_fit_exposures) & np.isfinite(acc.d)
        control = fit & ~self._registered(whole)
        # unregistered accounts are the control (no intervention targets them); a platform
        # with too few of them lends the registered ones, with the median equation
        robust = control.sum() < self.min_fit_accounts
        use = fit if robust else control
        sigma2, resid = self.item_variance_prior, acc.d
        supply = self._supply(acc)
        for _ in range(2):
            sigma2 = item_variance(
                np.where(use, resid, np.nan),
                acc.pois,
                acc.k_b + acc.k_w,
                n_params=2,
                median=robust,
                prior=self.item_variance_prior,
                prior_weight=self.prior_accounts,
            )
            ref = platform_reference(
                np.where(use, acc.d, np.nan),
                supply,
                acc.pois + sigma2 * (acc.k_b + acc.k_w),
                np.zeros_like(acc.d),
                min_spread=0.0,
            )
            resid = acc.d - ref.c - ref.gamma * (supply - ref.xbar)
        panel.sigma2 = sigma2
        panel.sigma2_from = (
            "all accounts (median equation)" if robust else "unregistered accounts",
            int(use.sum()),
        )
        paired = self._state.paired.get((panel.platform, info.window.id))
        panel.phi = overdispersion(paired) if paired is not None else np.ones(panel.k)
        panel.platform_est, panel.platform_var = platform_traffic(whole, wts, paired)
        panel.looks += 1
        panel.last_ms = t_ms
        record = t_ms >= panel.next_hour_ms
        if record:
            panel.next_hour_ms = (t_ms // HOUR_MS + 1) * HOUR_MS
        new: dict[Scope, list[int]] = {}
        for scope, st in panel.scopes.items():
            cell = self._state.cell((panel.platform, info.window.id, scope))
            if st.m is None or st.m_accounts != cell.n_accounts:
                st.m, st.m_accounts = membership(cell, panel.members), cell.n_accounts
            accounts = acc if scope == WHOLE else look_arrays(cell, wts)
            control = (
                (accounts.pooled >= self.min_fit_exposures)
                & np.isfinite(accounts.d)
                & ~self._registered(cell)
            )
            if control.sum() < self.min_fit_accounts:
                control = (accounts.pooled >= self.min_fit_exposures) & np.isfinite(accounts.d)
            a = look_arrays(cell, wts, st.m)
            st.shift, st.shift_var, st.ref = self._reference(panel, accounts, control, a)
            young = t_ms - info.w0 < self.min_window_hours * HOUR_MS
            ok = (
                ~young
                & (a.pooled >= self.min_exposures)
                & (a.items_b >= self.min_items)
                & (a.items_w >= self.min_items)
                & np.isfinite(a.d)
                & (np.minimum(a.s_rw, a.s_hw) >= self.min_window_exposures)
            )
            var = panel.phi * a.pois + self._item_var(panel, a) + st.shift_var
            est = np.where(ok, a.d - st.shift, np.nan)
            var = np.where(ok, var, np.nan)
            if scope == WHOLE:
                est = np.append(est, panel.platform_est)
                var = np.append(var, panel.platform_var)
            st.last, st.estimate, st.variance = a, est, var
            floor = a.pois if scope != WHOLE else np.append(a.pois, 0.0)
            crossed = st.tests.update(
                est, var, t_ms, self._tick_index, self._snapshot_fn(st, t_ms), floor=floor
            )
            if record:
                st.history.append((t_ms, est.copy(), var.copy(), st.tests.log_e.copy()))
            new[scope] = crossed.tolist()
        return new

    def _snapshot_fn(self, st: _ScopeTests, t_ms: int) -> Any:
        def snap(i: int) -> dict[str, Any]:
            assert st.estimate is not None and st.variance is not None
            return {
                "tick_end": ms_to_datetime(t_ms).isoformat(),
                "log_effect": float(st.estimate[i]),
                "se": float(math.sqrt(st.variance[i])),
                "log_e": float(st.tests.log_e[i]),
            }

        return snap

    @staticmethod
    def _supply(a: LookArrays) -> np.ndarray:
        """Change of an account's supply of items: ``log`` items in the window so far ÷ in the
        baseline (items with any exposure; the holdout feed shows every new item)."""
        return np.log(a.items_w + 0.5) - np.log(a.items_b + 0.5)

    def _reference(
        self, panel: _Panel, accounts: LookArrays, control: np.ndarray, subjects: LookArrays
    ) -> tuple[np.ndarray, np.ndarray, Reference]:
        """The platform-wide change every subject is compared with, per subject:
        ``c + κ (supply_s − x̄)``, fitted across the control accounts (robust WLS,
        :func:`detectors._holdout_stats.platform_reference`).  ``c`` is what all accounts
        share (boosting some accounts takes ranked share from all the others); ``κ`` the
        ranker's diminishing returns on supply: an account posting three times as much gets
        less than three times the ranked exposure (its items compete for the same users'
        slots) while the chronological feed shows them all — measured across accounts, so a
        posting surge is not mistaken for a suppression.  Natural variation of posting
        identifies ``κ`` poorly, so its variance is at least ``supply_response_sd²``: a
        subject whose supply changed by a factor ``s`` gets ``(log s · sd)²`` more variance
        (the ranker's response to a surge is uncertain; on the simulator a ×3 posting surge
        moves ``D`` by −0.19 ± 0.2)."""
        v = accounts.pois + panel.sigma2 * (accounts.k_b + accounts.k_w)
        ref = platform_reference(
            np.where(control, accounts.d, np.nan),
            self._supply(accounts),
            v,
            np.zeros_like(v),
            min_spread=0.0,
        )
        if ref.n < 3 or not math.isfinite(ref.var_c):
            zero = np.zeros(len(subjects.d))
            return zero, zero, ref
        x = self._supply(subjects) - ref.xbar
        shift = ref.c + ref.gamma * x
        # natural posting variation pins κ down poorly: a subject whose supply changed a lot
        # carries the uncertainty of the ranker's response to it
        # (only the part of the change beyond the Poisson noise of the item counts: an account
        # posting as usual keeps the fitted κ's own variance)
        with np.errstate(divide="ignore", invalid="ignore"):
            noise = np.sqrt(1 / (subjects.items_b + 0.5) + 1 / (subjects.items_w + 0.5))
        excess = np.maximum(np.abs(x) - 2 * noise, 0.0)
        var = (
            ref.var_c
            + x * x * ref.var_gamma
            + excess * excess * max(self.supply_response_sd**2 - ref.var_gamma, 0.0)
        )
        return (
            np.where(np.isfinite(shift), shift, ref.c),
            np.where(np.isfinite(var), var, ref.var_c),
            ref,
        )

    def _item_var(self, panel: _Panel, a: LookArrays) -> np.ndarray:
        """``Σ_P (G_P own_P + ν σ² K_P) / (G_P + ν)``: the unit's own item-clustered excess
        variance, shrunk towards the pooled item model ``σ² K`` with the weight of
        ``prior_items`` items (``G_P = 1/K_P`` = its effective number of items): a subject
        whose items behave unlike the platform's gets its own variance, one with few items
        borrows the pooled one (empirical Bayes; a subject's own estimate from ~20 items is too
        noisy to use alone, the pooled one too coarse)."""
        s2, nu = panel.sigma2, self.prior_items
        out = np.zeros_like(a.d)
        for k, own in ((a.k_b, a.own_b), (a.k_w, a.own_w)):
            with np.errstate(divide="ignore", invalid="ignore"):
                g = np.where(k > 0, 1 / k, 0.0)
            own = np.where(np.isfinite(own), np.maximum(own, 0.0), s2 * k)
            out += (g * own + nu * s2 * k) / (g + nu)
        return out

    # -- onset and effect -----------------------------------------------------------------------
    def _since_onset(
        self, panel: _Panel, st: _ScopeTests, i: int
    ) -> tuple[int, float, float, dict[str, Any]]:
        """``(onset hour, log effect, variance, onset evidence)`` for subject ``i``."""
        info = panel.info
        cell = self._state.cell((panel.platform, info.window.id, st.scope))
        m = st.m[i : i + 1] if st.m is not None else membership(cell, [panel.members[i]])
        phi = float(panel.phi[i]) if panel.phi is not None else 1.0
        assert st.shift is not None and st.shift_var is not None
        now_h = max(1, -(-(panel.last_ms - info.w0) // HOUR_MS))
        direction = st.tests.direction[i]
        best_k, best_gain = 0, 0.0
        for k in range(3, now_h - 2):
            shift, shift_var = float(st.shift[i]), float(st.shift_var[i])
            parts = []
            for h0, h1, t0, t1 in (
                (0, k, info.w0, info.w0 + k * HOUR_MS),
                (k, now_h, info.w0 + k * HOUR_MS, panel.last_ms),
            ):
                a = look_arrays(cell, hour_weights(info, t0, t1), m, hours=(h0, h1))
                v = phi * float(a.pois[0]) + float(self._item_var(panel, a)[0]) + shift_var
                parts.append((float(a.d[0]) - shift, v))
            (d_pre, v_pre), (d_post, v_post) = parts
            if not all(math.isfinite(x) and x > 0 for x in (v_pre, v_post)):
                continue
            if not (math.isfinite(d_pre) and math.isfinite(d_post)) or d_post * direction <= 0:
                continue
            # constant effect since the window start vs none before k and one after
            common = (d_pre / v_pre + d_post / v_post) / (1 / v_pre + 1 / v_post)
            gain = (
                (d_pre - common) ** 2 / v_pre + (d_post - common) ** 2 / v_post - d_pre**2 / v_pre
            )
            if gain > best_gain:
                best_k, best_gain = k, gain
        best_z = math.sqrt(best_gain)
        onset = best_k if best_z >= self.onset_z else 0
        a = look_arrays(
            cell,
            hour_weights(info, info.w0 + onset * HOUR_MS, panel.last_ms),
            m,
            hours=(onset, now_h),
        )
        var = phi * float(a.pois[0]) + float(self._item_var(panel, a)[0]) + float(st.shift_var[i])
        ev = {
            "estimated_onset": ms_to_datetime(info.w0 + onset * HOUR_MS).isoformat(),
            "from_window_start": onset == 0,
            "change_z": best_z,
            "threshold_z": self.onset_z,
            "method": "maximum-likelihood change point: no effect before the onset vs one "
            "effect since the window start (Hinkley 1970)",
        }
        # the common shift over [onset, now) ≈ the window's (it moves slowly): subtracted too
        return onset, float(a.d[0]) - float(st.shift[i]), var, ev

    # -- output -----------------------------------------------------------------------------------
    def _finding(self, panel: _Panel, st: _ScopeTests, i: int) -> Finding:
        if i == panel.k:
            return self._platform_finding(panel, st)
        tests = st.tests
        info = panel.info
        kind_s, subject = info.subjects[i]
        covered = panel.disclosures[i]
        direction = float(tests.direction[i])
        kind = "disclosed" if covered else ("amplification" if direction > 0 else "suppression")
        onset, log_eff, var, onset_ev = self._since_onset(panel, st, i)
        tau_i = float(st.tau[i])
        lo, hi = cs_by_inversion(log_eff, var, tau_i, tests.margin, tests.log_thresh)
        lo_f, hi_f = float(lo[0]), float(hi[0])
        onset_ms = info.w0 + onset * HOUR_MS
        current = Reported(log_eff, lo_f, hi_f, panel.last_ms, onset_ms)
        latest: dict[str, Any] | None = None
        if agrees(direction, log_eff, lo_f, hi_f) or i not in st.reported:
            if agrees(direction, log_eff, lo_f, hi_f):
                st.reported[i] = current
            shown = current
        else:
            shown = st.reported[i]
            latest = {
                "effect": math.exp(log_eff),
                "ci_low": math.exp(lo_f),
                "ci_high": math.exp(hi_f),
                "at": ms_to_datetime(panel.last_ms).isoformat(),
                "note": "the latest estimate no longer lies on the detected side of 1; "
                "the finding keeps the last estimate that did",
            }
        a = st.last
        assert a is not None and st.estimate is not None and st.variance is not None
        counts = {
            "baseline": {
                "exposures_ranked": int(a.s_rb[i]),
                "exposures_holdout": int(a.s_hb[i]),
                "items": int(a.items_b[i]),
            },
            "window": {
                "exposures_ranked": int(a.s_rw[i]),
                "exposures_holdout": int(a.s_hw[i]),
                "items": int(a.items_w[i]),
            },
        }
        fields: dict[str, Any] = {
            "rule": "the ranked feed's share of the subject's exposure changed relative to the "
            "holdout (reverse-chronological) feed's, from the baseline to the window",
            "measures": "exp(D): the multiplicative change in the subject's ranked-feed "
            "exposure beyond what the holdout arm (supply of items) and each arm's "
            "traffic (platform-wide changes) explain, since the estimated onset",
            "scope": {
                "surface": ScopePlan.surface(st.scope),
                "region": ScopePlan.region(st.scope, info.window.jurisdiction),
            },
            "counts": counts,
            "reach": self._reach(panel, i) if st.scope == WHOLE else None,
            "effect": {
                "log_effect": log_eff,
                "se": math.sqrt(var),
                "ci95": [
                    math.exp(log_eff - _Z95 * math.sqrt(var)),
                    math.exp(log_eff + _Z95 * math.sqrt(var)),
                ],
                "onset": onset_ev,
            },
            "test": {
                "name": "normal-mixture e-process on the hour-matched share difference in "
                "differences (always valid; users paired across periods, item "
                "variance pooled over the platform's accounts)",
                "statistic_log_effect": float(st.estimate[i]),
                "se": float(math.sqrt(st.variance[i])) if math.isfinite(st.variance[i]) else None,
                "item_variance_sigma2": panel.sigma2,
                "item_variance_from": {"accounts": panel.sigma2_from[0], "n": panel.sigma2_from[1]},
                "user_overdispersion_phi": float(panel.phi[i]) if panel.phi is not None else None,
                "tau": tau_i,
                "margin": self.margin,
                "log_e": float(tests.log_e[i]),
                "log_e_max": float(tests.max_log_e[i]),
                "log_threshold": tests.log_thresh,
                "tests_in_scope": tests.n,
                "alpha_share": tests.alpha,
                "alpha_detector": self.context.alpha,
                "ci_level": 1 - tests.alpha / tests.n,
                "looks": panel.looks,
            },
            "crossed": {"tick": int(tests.crossed_tick[i]), **tests.at_cross.get(i, {})},
            "series": self._series(panel, st, i, onset_ms),
            "disclosures_checked": disclosure_json(
                [d for d in self.context.config.disclosures if d.platform == panel.platform]
            ),
            "covering_disclosures": disclosure_json(covered),
        }
        if latest is not None:
            fields["latest"] = latest
        n_exp = int(a.s_rb[i] + a.s_hb[i] + a.s_rw[i] + a.s_hw[i])
        effect, lo_e, hi_e = (math.exp(shown.log_effect), math.exp(shown.lo), math.exp(shown.hi))
        return Finding.new(
            detector=self.name,
            kind=kind,
            platform=panel.platform,
            region=ScopePlan.region(st.scope, info.window.jurisdiction),
            window_id=info.window.id,
            surface=ScopePlan.surface(st.scope),
            subject_kind=kind_s,
            subject=subject,
            effect=effect,
            ci_low=lo_e,
            ci_high=hi_e,
            p_value=tests.p_value(i),
            n_exposures=n_exp,
            severity=severity.by_effect_bound(effect, lo_e, hi_e, kind_s, kind),
            event_time=ms_to_datetime(int(tests.crossed_ms[i])),
            evidence=evidence.build(self.name, fields),
        )

    def _reach(self, panel: _Panel, i: int) -> dict[str, Any] | None:
        """Huszár's reach ratio per period, from the shared ledger (descriptive: on the
        simulator the count statistic has the larger signal-to-noise ratio)."""
        out: dict[str, Any] = {}
        for period in ("baseline", "window"):
            cell = self.context.ledger.cell(panel.platform, panel.window.id, period)
            if cell is None:
                return None
            row = measure(cell, panel.info.subjects[i])
            out[period] = {
                "reach_ratio": row.reach_ratio,
                "reach_ranked": row.reach_ranked,
                "reach_holdout": row.reach_holdout,
                "users_ranked": row.users_ranked,
                "users_holdout": row.users_holdout,
            }
        return out

    def _series(self, panel: _Panel, st: _ScopeTests, i: int, onset_ms: int) -> dict[str, Any]:
        """Hourly, from the baseline start to the latest look: exposures per active user in
        each arm; in the window also the statistic, its boundary (the estimate at which the
        e-process reaches the threshold, given that look's variance), ``log E`` and its
        threshold; the crossing look added; thinned to :data:`evidence.MAX_POINTS`."""
        info = panel.info
        cell = self._state.cell((panel.platform, info.window.id, st.scope))
        m = st.m[i : i + 1] if st.m is not None else membership(cell, [panel.members[i]])
        n = cell.n_accounts
        tests = st.tests
        thresh = float(tests.log_thresh)
        rows: dict[int, evidence.SeriesPoint] = {}
        periods: tuple[tuple[evidence.Period, Any, Any, int], ...] = (
            ("baseline", cell.base_hourly, cell.active_base, info.b0),
            ("window", cell.win_hourly, cell.active_win, info.w0),
        )
        for period, hourly, active, start in periods:
            counts = [np.asarray(with_columns(m, n) @ hourly[arm][:n])[0] for arm in (0, 1)]
            for h in range(len(active[0])):
                t = start + h * HOUR_MS
                if t >= panel.last_ms:
                    break
                per_user = [
                    float(counts[arm][h] / active[arm][h]) if active[arm][h] else None
                    for arm in (0, 1)
                ]
                rows[t] = evidence.SeriesPoint(
                    t=ms_to_datetime(t),
                    period=period,
                    exposures_per_user_ranked=per_user[0],
                    exposures_per_user_holdout=per_user[1],
                )
        if st.history:
            t_ms = np.array([h[0] for h in st.history])
            est = np.array([h[1][i] for h in st.history])
            var = np.array([h[2][i] for h in st.history])
            log_e = np.array([h[3][i] for h in st.history])
            bound = mde_log(var, float(st.tau[i]), tests.margin, tests.log_thresh)
            for t, e, b, le in zip(t_ms, est, bound, log_e, strict=True):
                # the hourly row of the look's time (a window starting on the hour, as
                # configured windows do), else a point of its own
                row = rows.setdefault(
                    int(t), evidence.SeriesPoint(t=ms_to_datetime(int(t)), period="window")
                )
                if row.period == "window":
                    row.statistic = finite_float(e)
                    row.boundary = finite_float(b)
                    row.log_e = finite_float(le)
                    row.log_threshold = thresh
        crossing = None
        if tests.crossed_ms[i] >= 0:
            c_ms = int(tests.crossed_ms[i])
            crossing = ms_to_datetime(c_ms)
            snap = tests.at_cross.get(i, {})
            se = snap.get("se")
            at_bound = (
                float(
                    mde_log(np.array([se * se]), float(st.tau[i]), tests.margin, tests.log_thresh)[
                        0
                    ]
                )
                if isinstance(se, float)
                else math.nan
            )
            rows.setdefault(
                c_ms,
                evidence.SeriesPoint(
                    t=crossing,
                    period="window",
                    statistic=finite_float(snap.get("log_effect")),
                    boundary=finite_float(at_bound),
                    log_e=finite_float(snap.get("log_e")),
                    log_threshold=thresh,
                ),
            )
        series = evidence.series(
            list(rows.values()),
            step_minutes=60,
            onset=ms_to_datetime(onset_ms),
            crossing=crossing,
            arms=True,
        )
        return msgspec.to_builtins(series)

    def _platform_finding(self, panel: _Panel, st: _ScopeTests) -> Finding:
        tests = st.tests
        i = panel.k
        est, var = panel.platform_est, panel.platform_var
        lo, hi = cs_by_inversion(est, var, float(st.tau[i]), tests.margin, tests.log_thresh)
        fields = {
            "detector": self.name,
            "rule": "the ranked arm's users were shown more (or less) in the window, relative "
            "to the baseline at the same hours, than the holdout arm's users: a "
            "platform-wide change, not a targeted intervention (informational)",
            "measures": "exp(P), P = log(T_rW/T̃_rB) − log(T_hW/T̃_hB): the change of the "
            "ranked ÷ holdout traffic ratio",
            "test": {
                "statistic_log_effect": est,
                "se": math.sqrt(var) if var > 0 else None,
                "log_e_max": float(tests.max_log_e[i]),
                "log_threshold": tests.log_thresh,
                "tau": float(st.tau[i]),
            },
            "item_variance_sigma2": panel.sigma2,
            "crossed": {"tick": int(tests.crossed_tick[i]), **tests.at_cross.get(i, {})},
        }
        return Finding.new(
            detector=self.name,
            kind="platform_change",
            platform=panel.platform,
            region=panel.window.jurisdiction,
            window_id=panel.window.id,
            subject_kind="platform",
            subject=panel.platform,
            effect=math.exp(est),
            ci_low=math.exp(float(lo[0])),
            ci_high=math.exp(float(hi[0])),
            p_value=tests.p_value(i),
            n_exposures=0,
            severity="low",
            event_time=ms_to_datetime(int(tests.crossed_ms[i])),
            evidence=evidence.build("platform_change", fields),
        )

    def finish(self, end_ms: int) -> list[Finding]:
        return [
            self._finding(p, st, i)
            for p in self._panels.values()
            if p is not None
            for st in p.scopes.values()
            for i in np.flatnonzero(st.tests.crossed).tolist()
        ]

    def test_states(self) -> list[TestState]:
        out = []
        for panel in self._panels.values():
            if panel is None:
                continue
            for scope, st in panel.scopes.items():
                names = tuple(f"{k}:{s}" for k, s in panel.info.subjects)
                null = np.array([not d for d in panel.disclosures], dtype=bool)
                if scope == WHOLE:
                    names += ("platform",)
                    null = np.append(null, True)
                out.append(
                    TestState(
                        self.name,
                        panel.platform,
                        panel.window.id,
                        "/".join(scope),
                        names,
                        st.tests.max_log_e.copy(),
                        st.tests.log_thresh,
                        null,
                    )
                )
        return out

    def detectability(self) -> list[Detectability]:
        """One row per subject of every (platform, window) with window data (whole scope);
        ``mde`` null where the subject could not be tested."""
        rows: list[Detectability] = []
        for (platform, wid), panel in self._panels.items():
            if panel is None:
                info = self._infos[wid]
                rows.extend(
                    Detectability(
                        detector=self.name,
                        platform=platform,
                        region=info.window.jurisdiction,
                        window_id=wid,
                        subject_kind=k,
                        subject=s,
                        mde_up=None,
                        mde_down=None,
                        n_exposures=0,
                        flagged=False,
                    )
                    for k, s in info.subjects
                )
                continue
            st = panel.scopes[WHOLE]
            if st.variance is None or st.last is None:
                continue
            a = st.last
            rows.extend(
                mde_rows(
                    detector=self.name,
                    platform=panel.platform,
                    window=panel.window,
                    subjects=list(panel.info.subjects),
                    variance=st.variance[: panel.k],
                    tau=st.tau[: panel.k],
                    tests=st.tests,
                    n_exposures=a.s_rb + a.s_hb + a.s_rw + a.s_hw,
                )
            )
        return rows
