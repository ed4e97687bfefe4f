"""``score_shift`` — the same items' ranking scores jump when the window opens.

Why
---
An intervention that starts with the election window and is logged *as organic* (the
platform's ``organic_score`` already contains the boost, so ``score − organic_score = 0``)
is invisible to :mod:`detectors.rank_uplift`.  Items that were live across the window start
are their own control: their content did not change at midnight, so their scores should not
either — beyond what changed for every item of the platform.

What ``effect`` measures
------------------------
The multiplicative change in the subject's **exposure** that its score shift ``θ`` (the
shift of its items' scores at the window start, beyond the platform-wide change) causes:
``effect = exp(β̂ θ̂)``, ``β̂`` = the platform's elasticity of exposure to score, measured on
its own data against the holdout arm (:mod:`detectors._elasticity`).  The onset is the
window start by construction (the design compares the items' scores just before and after
it); ``evidence.score_shift`` reports ``θ`` itself.  Scores that do not move exposure
(``β̂`` not clearly positive, e.g. scores that carry no information) cannot amplify: no
finding then.

Two estimates, one e-process
----------------------------
*Within-item* (items live across ``t₀``) and *level* (all other items, per account) are two
independent estimates of ``θ``, combined by inverse-variance weighting.

Within-item: boundary ``t₀`` = window start, horizon ``h``.  For every item with ranked-arm
entries (region in scope, no disclosed intervention) both in ``[t₀ − h, t₀)`` and in
``[t₀, t)``, ``Δ_i = mean(score | after) − mean(score | before)`` with within-item variance
``v_i`` (the item's score spread across users, shrunk towards the platform's pooled spread
with ``prior_entries`` entries).  The **platform-wide change** is fitted across the control
items — those of unregistered accounts when there are ``≥ min_reference``, else all — as
``Δ_i = c + γ (s̄_i − x̄) + e_i`` (``s̄_i`` = the item's mean score before ``t₀``): ``c`` is a
change every item shares, ``γ`` the signature of a new ranking model that rescales everyone's
scores (every score ×1.3 gives ``γ = 0.3``, and moves the accounts at the top and bottom of the
score range most).  Errors-in-variables corrected (``s̄_i`` is noisy and shares its noise
with ``Δ_i``) and Huber-robust (:func:`detectors._holdout_stats.platform_reference`).  The
between-item variance ``σ²_Δ`` of the residuals beyond ``v_i`` is estimated by the robust
Paule–Mandel equation (:func:`detectors._holdout_stats.item_variance`; the earlier
``median((Δ − c)² − v)/0.4549`` was biased — ``σ² − 1.2·median(v)`` under normality, often 0).
Per subject::

    r_i = Δ_i − c − γ (s̄_i − x̄),   w_i = 1 / (v_i + σ²_Δ + (2γ + γ²) vb_i)
    θ̂ = Σ w_i r_i / Σ w_i,   Var = 1/Σ w_i + Var(c) + (s̄_w − x̄)² Var(γ)

Level: for every item with ``≥ min_entries`` entries in the baseline or in the window (and not
compared within-item), its mean score; per account the mean over its items per period (items
weigh equally).  An account's shift ``L_W − L_B`` is compared with the same level-dependent
platform-wide change fitted across control *accounts* (unregistered when ``≥ 10``), with an
account-level variance beyond the items' (Paule–Mandel).  A group's level shift is the mean of
its members'.

Guards and small samples: a component is tested only with ``≥ min_items`` compared items
(``min_reference`` for the references); variances cannot fall below the pooled between-item
model (``σ²`` enters every weight) — no per-entry ``min_sd`` — and pass the central guard
(:func:`detectors.sequential.guard_variance`, ``MIN_VARIANCE``).

Platform-wide change
--------------------
``γ`` has its own always-valid test (one more test in the budget, the same margin: a change of
scale below ``margin − 1`` is none):
a crossing is reported **once** per platform and window as the informational kind
``platform_change`` (``effect = 1 + γ̂``: the factor the new model applies to scores), never as
amplification of the accounts it moves most.

Guarantee
---------
The after-means accumulate tick by tick over ``[t₀, t₀ + h)``, so ``θ̂_t`` is a cumulative
estimate and the always-valid mixture e-process of :mod:`detectors.sequential` applies.
Bonferroni over the window's ``m`` monitored subjects plus the platform test per platform:
``P(any false finding of this detector on a platform in a window) ≤ α_d``, asymptotically,
under continuous monitoring.  ``ci_low``/``ci_high`` = ``exp(β̂ · CS)``, the test's own
confidence sequence on ``θ`` (:func:`detectors.sequential.cs_by_inversion`) translated.

Scope: the whole jurisdiction and all surfaces (``surface = null``).  Surfaces and ISO 3166-2
subdivisions are tested by :mod:`detectors.holdout_shift` (:mod:`detectors._scopes`); this
detector does not split its budget over them yet.

Two stages (scale-out)
----------------------
Every input is a sum over slates, and a slate is one user's, so it partitions by user:

1. **Reducer** — the first half of :meth:`ScoreShift._fold`: the tick's in-scope slate
   entries (:func:`detectors._slates.slate_entries`) → per item and side (``nb``/``na``
   near the boundary, ``B``/``W`` the periods) the increments ``(n, Σ score, Σ score²)``
   (``np.bincount``), plus per subject the relative-score sums and slate shares
   (:meth:`ScoreShift._fold_subjects`) and, for the elasticity,
   :meth:`detectors._elasticity.ItemExposure.add_exposures`/``add_scores`` (per-item
   exposure counts per arm, score sums).  No per-user state.
2. **Merged state** — the per-(platform, window) ``_Panel``: the per-item arrays
   ``_Panel.stats`` (``n_*``, ``s_*``, ``q_*`` for the four sides, indexed by
   ``item_index``), the item → account / subject maps (``item_account``, ``item_subject``,
   ``accounts``, ``registered``), ``rel``/``rel_n``/``share`` per subject, and one
   :class:`~detectors._elasticity.ItemExposure` per platform.  All are sums: partial sums of
   user partitions add.  :meth:`ScoreShift._test` (within-item and level estimates,
   references, ``σ²``, the tests) reads only them.

In the code both halves are one function (``_fold`` adds each increment into the panel as it
computes it); splitting it means returning the ``bincount`` arrays keyed by item id instead.

Reference: interrupted time series / difference in differences with unit fixed effects
(Angrist & Pischke 2009, ch. 5); Fuller 1987 (measurement error); Paule & Mandel 1982;
Johari et al. 2017.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from scipy import stats

import detectors.evidence as evidence
from detectors._elasticity import Elasticity, ItemExposure, fit_elasticity, slate_relative
from detectors._holdout_stats import Reference, item_variance, platform_reference
from detectors._slates import SlateEntries, slate_entries
from detectors._subjects import covering_disclosures, disclosure_json, window_subjects
from detectors._trace import Trace
from detectors.base import Detector, DetectorContext, Tick
from detectors.sequential import (
    Reported,
    SequentialPanel,
    TestState,
    adjusted_p,
    agrees,
    crossing_evidence,
    cs_by_inversion,
    mde_rows,
    sequential_finding,
    test_evidence,
)
from monitor.core.config import Window
from monitor.core.records import Detectability, Finding, ms_to_datetime

__all__ = ["ScoreShift"]

_HOUR_MS = 3_600_000
# per item: entries n, Σscore s, Σscore² q in four periods: near-before / near-after the
# boundary (within-item), baseline / window (level)
_SIDES = ("nb", "na", "B", "W")
_STATS = tuple(f"{x}_{side}" for side in _SIDES for x in ("n", "s", "q"))
_COMPONENTS = ("within", "level")


@dataclass
class _Panel:
    platform: str
    window: Window
    subjects: list[tuple[str, str]]
    actor_index: dict[str, int]
    group_members: dict[int, list[int]]
    tests: SequentialPanel
    covered: list[bool]
    item_index: dict[str, int] = field(default_factory=dict)
    item_subject: list[int] = field(default_factory=list)  # actor subject index, -1 = none
    item_account: list[int] = field(default_factory=list)  # publishing account (any) code
    accounts: dict[str, int] = field(default_factory=dict)
    registered: list[bool] = field(default_factory=list)  # per account code
    stats: dict[str, np.ndarray] = field(default_factory=dict)
    est: dict[str, np.ndarray] = field(default_factory=dict)
    var: dict[str, np.ndarray] = field(default_factory=dict)
    n_items: dict[str, np.ndarray] = field(default_factory=dict)
    entries: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)
    within: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    within_ref: Reference | None = None
    reported: dict[int, Reported] = field(default_factory=dict)
    trace: Trace = field(default_factory=Trace)  # the evidence's series (reporting only)
    # per subject: Σ relative score, scored entries, Σ slate share (self-competition)
    rel: np.ndarray | None = None
    rel_n: np.ndarray | None = None
    share: np.ndarray | None = None

    @property
    def k(self) -> int:
        return len(self.subjects)

    def grow(self) -> None:
        size = len(self.item_subject)
        for f in _STATS:
            cur = self.stats.get(f)
            if cur is None or cur.size < size:
                new = np.zeros(max(64, size, 2 * (0 if cur is None else cur.size)))
                if cur is not None:
                    new[: cur.size] = cur
                self.stats[f] = new


class ScoreShift(Detector):
    """Ranking scores of a subject's items shift at the window start (module docstring).

    Args:
        horizon_hours: ``h``: hours before and after the window start compared item by item.
        tau: Scale of the mixture prior on the log effect (score units).
        margin: Multiplicative change treated as none (``δ = log(margin)``).
        min_entries: Minimum slate entries of an item in a period (or side) to use it.
        min_items: Minimum compared items of a subject before a component is tested.
        min_reference: Minimum compared items of the platform for the references.
        prior_entries: Weight (in entries) of the platform-wide score spread in each item's
            within-item variance (shrinkage: items with few entries borrow it).
        prior_items: Weight (in items) of the pooled between-item variance in an actor's own.
        update_every: Re-emit an active finding every this many ticks (and at the end).
    """

    name: ClassVar[str] = "score_shift"
    display_name: ClassVar[str] = "Ranking scores of a subject's items shift at window start"
    kinds: ClassVar[tuple[str, ...]] = ("amplification", "suppression", "platform_change")
    version: ClassVar[str] = "2"

    def __init__(
        self,
        context: DetectorContext,
        horizon_hours: float = 12.0,
        tau: float = 0.3,
        margin: float = 1.05,
        min_entries: int = 3,
        min_items: int = 3,
        min_reference: int = 30,
        prior_entries: float = 10.0,
        prior_items: float = 10.0,
        update_every: int = 4,
    ) -> None:
        super().__init__(context)
        if not horizon_hours > 0:
            raise ValueError(f"horizon_hours must be > 0, got {horizon_hours}")
        if not tau > 0:
            raise ValueError(f"tau must be > 0, got {tau}")
        if not margin >= 1:
            raise ValueError(f"margin must be >= 1 (a multiplicative change), got {margin}")
        if min_entries < 2 or min_items < 2 or min_reference < 10:
            raise ValueError("need min_entries >= 2, min_items >= 2, min_reference >= 10")
        if update_every < 1 or prior_entries < 0 or prior_items < 0:
            raise ValueError("need update_every >= 1, prior_entries >= 0, prior_items >= 0")
        self.horizon_hours, self.tau, self.margin = horizon_hours, tau, margin
        self.min_entries, self.min_items = min_entries, min_items
        self.min_reference = min_reference
        self.prior_entries, self.prior_items = prior_entries, prior_items
        self.update_every = update_every
        self._h = int(horizon_hours * _HOUR_MS)
        self._panels: dict[tuple[str, str], _Panel] = {}
        self._exposure: dict[str, ItemExposure] = {}
        self._elasticity: dict[str, Elasticity] = {}
        self._tick_index = 0

    def _panel(self, platform: str, window: Window) -> _Panel:
        key = (platform, window.id)
        panel = self._panels.get(key)
        if panel is None:
            cfg = self.context.config
            subjects = window_subjects(cfg, window)
            index = {s: i for i, s in enumerate(subjects)}
            actor_index = {name: i for (kind, name), i in index.items() if kind == "actor"}
            members: dict[int, list[int]] = {}
            for name, i in actor_index.items():
                group = cfg.registry[name].group
                if group is not None and ("group", group) in index:
                    members.setdefault(index[("group", group)], []).append(i)
            # one more test: the platform-wide change (its scale γ)
            tau = np.append(np.full(len(subjects), self.tau), 0.3)
            tests = SequentialPanel.bonferroni(
                len(subjects) + 1, self.context.alpha, tau, self.margin
            )
            covered = [bool(covering_disclosures(cfg, platform, window, s)) for s in subjects]
            panel = self._panels[key] = _Panel(
                platform, window, subjects, actor_index, members, tests, covered
            )
        return panel

    # -- per tick ---------------------------------------------------------------------------
    def evaluate(self, tick: Tick) -> list[Finding]:
        self._tick_index += 1
        cfg = self.context.config
        out: list[Finding] = []
        self._count_exposures(tick)
        if not tick.rankings:
            return out
        digest = slate_entries(tick, cfg)
        if digest.n == 0:
            return out
        self._count_scores(digest)
        for window in cfg.windows:
            t0, t1 = window.window_period.start_ms, window.window_period.end_ms
            b0 = window.baseline_period.start_ms
            if tick.end_ms <= b0 or tick.start_ms >= t1:
                continue
            scope = (
                digest.in_scope(window.jurisdiction)
                & ~digest.covered
                & (digest.ts >= b0)
                & (digest.ts < t1)
            )
            for p, platform in enumerate(digest.platforms):
                mask = scope & (digest.platform_code == p)
                if not mask.any():
                    continue
                panel = self._panel(str(platform), window)
                if self._fold(panel, digest, mask, window) and tick.end_ms > t0:
                    new = self._test(panel, tick)
                    emit = new.tolist()
                    if self._tick_index % self.update_every == 0:
                        emit = sorted(set(emit) | set(np.flatnonzero(panel.tests.crossed).tolist()))
                    out.extend(f for i in emit if (f := self._finding(panel, i)) is not None)
        return out

    def _count_exposures(self, tick: Tick) -> None:
        """Stage 1 of the elasticity: per-item exposures per arm (additive over users)."""
        by_platform: dict[str, tuple[list[str], list[bool]]] = {}
        for e in tick.exposures:
            items, hold = by_platform.setdefault(e.platform, ([], []))
            items.append(e.item)
            hold.append(e.arm == "holdout")
        for platform, (items, hold) in by_platform.items():
            self._exposure.setdefault(platform, ItemExposure()).add_exposures(
                items, np.array(hold, dtype=bool)
            )

    def _count_scores(self, d: SlateEntries) -> None:
        relative = slate_relative(d)
        for p, platform in enumerate(d.platforms):
            sel = d.platform_code == p
            if sel.any():
                self._exposure.setdefault(str(platform), ItemExposure()).add_scores(
                    d.item[sel].tolist(), relative[sel]
                )

    def _fold(self, panel: _Panel, d: SlateEntries, mask: np.ndarray, window: Window) -> bool:
        """Stage 1: the tick's slate entries → per-item sums (n, Σ score, Σ score²) per side,
        added to the merged per-item arrays.  True if window-period entries arrived."""
        t0 = window.window_period.start_ms
        rows = np.flatnonzero(mask)
        codes, items = pd.factorize(d.item[rows], sort=False)
        first = np.unique(codes, return_index=True)[1]  # codes are 0..k-1: first occurrences
        actor_of = d.actors[d.actor_code[rows[first]]]
        index, subj = panel.item_index, panel.item_subject
        get = index.get
        idx = np.array([get(item, -1) for item in items.tolist()], dtype=np.int64)
        accounts = panel.accounts
        registry = self.context.config.registry
        for j in np.flatnonzero(idx < 0).tolist():
            idx[j] = index[items[j]] = len(subj)
            actor = str(actor_of[j])
            subj.append(panel.actor_index.get(actor, -1))
            if actor not in accounts:
                accounts[actor] = len(accounts)
                panel.registered.append(actor in registry)
            panel.item_account.append(accounts[actor])
        panel.grow()
        where = idx[codes]
        ts, sc = d.ts[rows], d.score[rows]
        st = panel.stats
        size = st["n_B"].size
        after = ts >= t0
        sides = {
            "B": ~after,
            "W": after,
            "nb": ~after & (ts >= t0 - self._h),
            "na": after & (ts < t0 + self._h),
        }
        for side, sel in sides.items():
            if sel.any():
                w = where[sel]
                st[f"n_{side}"] += np.bincount(w, minlength=size)
                st[f"s_{side}"] += np.bincount(w, weights=sc[sel], minlength=size)
                st[f"q_{side}"] += np.bincount(w, weights=sc[sel] ** 2, minlength=size)
        self._fold_subjects(panel, d, rows, where)
        return bool(after.any())

    def _fold_subjects(
        self, panel: _Panel, d: SlateEntries, rows: np.ndarray, where: np.ndarray
    ) -> None:
        """Per subject: relative scores (where on the elasticity curve it sits) and its share
        of the slates it appears in (how much its items compete with each other)."""
        k = panel.k
        if panel.rel is None:
            panel.rel, panel.rel_n, panel.share = np.zeros(k), np.zeros(k), np.zeros(k)
        assert panel.rel_n is not None and panel.share is not None
        rel = slate_relative(d)[rows]
        subj = np.asarray(panel.item_subject, dtype=np.int64)[where]
        size = np.bincount(d.slate).astype(float)
        slate = d.slate[rows]
        width = int(d.slate.max()) + 1
        for targets in self._targets(panel, subj):
            sel = targets >= 0
            if not sel.any():
                continue
            t, r = targets[sel], rel[sel]
            fin = np.isfinite(r)
            panel.rel += np.bincount(t[fin], weights=r[fin], minlength=k)
            panel.rel_n += np.bincount(t[fin], minlength=k)
            uniq, counts = np.unique(t * width + slate[sel], return_counts=True)
            panel.share += np.bincount(
                uniq // width, weights=counts * counts / size[uniq % width], minlength=k
            )

    # -- statistics (stage 2: merged per-item sums) -------------------------------------------
    def _control(self, panel: _Panel, accounts_of: np.ndarray, usable: np.ndarray) -> np.ndarray:
        """Control units: those of unregistered accounts when there are enough, else all."""
        reg = np.asarray(panel.registered, dtype=bool)[accounts_of]
        control = usable & ~reg
        return control if control.sum() >= self.min_reference else usable

    def _within(
        self, panel: _Panel, st: dict[str, np.ndarray], subj: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        k = panel.k
        est, var, count = np.full(k, np.nan), np.full(k, np.nan), np.zeros(k)
        use = (st["n_nb"] >= self.min_entries) & (st["n_na"] >= self.min_entries)
        if use.sum() < self.min_reference:
            return est, var, count
        nb, na = st["n_nb"][use], st["n_na"][use]
        mb, ma = st["s_nb"][use] / nb, st["s_na"][use] / na
        ssb = np.maximum(st["q_nb"][use] - nb * mb * mb, 0.0)
        ssa = np.maximum(st["q_na"][use] - na * ma * ma, 0.0)
        pooled = float((ssb.sum() + ssa.sum()) / max((nb - 1).sum() + (na - 1).sum(), 1))
        k0 = self.prior_entries
        vb = (ssb + k0 * pooled) / (nb - 1 + k0) / nb
        v = vb + (ssa + k0 * pooled) / (na - 1 + k0) / na
        delta = ma - mb
        acc_of = np.asarray(panel.item_account, dtype=np.int64)[use]
        control = self._control(panel, acc_of, np.ones(delta.size, dtype=bool))
        sigma2, resid = 0.0, delta - float(np.median(delta[control]))
        ref = platform_reference(np.where(control, delta, np.nan), mb, v, vb)
        for _ in range(3):
            sigma2 = item_variance(np.where(control, resid, np.nan), v, np.ones_like(v), n_params=2)
            ref = platform_reference(np.where(control, delta, np.nan), mb, v + sigma2, vb)
            resid = delta - ref.c - ref.gamma * (mb - ref.xbar)
        g = ref.gamma
        w = 1 / (v + sigma2 + max(2 * g + g * g, 0.0) * vb)
        s_act = subj[use]
        sw, swd, swx = np.zeros(k), np.zeros(k), np.zeros(k)
        for targets in self._targets(panel, s_act):
            sel = targets >= 0
            count += np.bincount(targets[sel], minlength=k)
            sw += np.bincount(targets[sel], weights=w[sel], minlength=k)
            swd += np.bincount(targets[sel], weights=w[sel] * resid[sel], minlength=k)
            swx += np.bincount(targets[sel], weights=w[sel] * (mb[sel] - ref.xbar), minlength=k)
        ok = count >= self.min_items
        with np.errstate(divide="ignore", invalid="ignore"):
            xs = swx / sw
            est = np.where(ok, swd / sw, np.nan)
            var = np.where(ok, 1 / sw + ref.var_c + xs * xs * ref.var_gamma, np.nan)
        panel.within_ref = ref
        panel.info.update(
            within_reference=ref.c,
            within_scale_change=ref.gamma,
            within_between_item_var=sigma2,
            within_items_compared=int(delta.size),
            within_control_items=int(control.sum()),
        )
        return est, var, count

    def _targets(self, panel: _Panel, s_act: np.ndarray) -> list[np.ndarray]:
        """The subject indices an item counts for: its actor, and the actor's group."""
        group_of = np.full(panel.k, -1)
        for g, members in panel.group_members.items():
            group_of[members] = g
        second = np.where(s_act >= 0, group_of[np.maximum(s_act, 0)], -1)
        return [s_act, second]

    def _level(
        self, panel: _Panel, st: dict[str, np.ndarray], subj: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        k = panel.k
        est, var, count = np.full(k, np.nan), np.full(k, np.nan), np.zeros(k)
        means, valid = {}, {}
        spanning = (st["n_nb"] >= self.min_entries) & (st["n_na"] >= self.min_entries)
        for side in ("B", "W"):
            n = st[f"n_{side}"]
            valid[side] = (n >= self.min_entries) & ~spanning
            with np.errstate(divide="ignore", invalid="ignore"):
                means[side] = st[f"s_{side}"] / n
        if min(valid["B"].sum(), valid["W"].sum()) < self.min_reference:
            return est, var, count
        # per account (registered or not): item counts, mean and within-period sum of squares
        acc = np.asarray(panel.item_account, dtype=np.int64)
        n_acc = len(panel.accounts)
        n_p, mean_p, ss = {}, {}, np.zeros(n_acc)
        for side in ("B", "W"):
            sel = valid[side]
            a_ = acc[sel]
            n_p[side] = np.bincount(a_, minlength=n_acc).astype(float)
            with np.errstate(divide="ignore", invalid="ignore"):
                mean_p[side] = (
                    np.bincount(a_, weights=means[side][sel], minlength=n_acc) / n_p[side]
                )
            dev = means[side][sel] - mean_p[side][a_]
            ss += np.bincount(a_, weights=dev * dev, minlength=n_acc)
        df = np.maximum(n_p["B"] - 1, 0) + np.maximum(n_p["W"] - 1, 0)
        pooled = float(ss.sum() / df.sum()) if df.sum() > 0 else 0.0
        v_item = (ss + self.prior_items * pooled) / (df + self.prior_items)
        both = (n_p["B"] >= self.min_items) & (n_p["W"] >= self.min_items)
        with np.errstate(divide="ignore", invalid="ignore"):
            shift = mean_p["W"] - mean_p["B"]
            v_acc = v_item * (1 / n_p["B"] + 1 / n_p["W"])
            vx = v_item / n_p["B"]
        reg = np.asarray(panel.registered, dtype=bool)
        control = both & ~reg
        if control.sum() < 10:
            control = both
        if control.sum() < 3:
            return est, var, count
        ref = platform_reference(np.where(control, shift, np.nan), mean_p["B"], v_acc, vx)
        tau2 = 0.0
        for _ in range(3):
            resid = shift - ref.c - ref.gamma * (mean_p["B"] - ref.xbar)
            tau2 = item_variance(
                np.where(control, resid, np.nan), v_acc, np.ones_like(v_acc), n_params=2
            )
            ref = platform_reference(
                np.where(control, shift, np.nan), mean_p["B"], v_acc + tau2, vx
            )
        g = ref.gamma
        x = mean_p["B"] - ref.xbar
        resid = shift - ref.c - g * x
        with np.errstate(invalid="ignore"):
            v_res = v_acc + tau2 + max(2 * g + g * g, 0.0) * vx
        # subjects: an actor is its account; a group the mean of its members' residuals
        for name, i in panel.actor_index.items():
            a_code = panel.accounts.get(name)
            if a_code is None or not both[a_code]:
                continue
            est[i] = resid[a_code]
            var[i] = v_res[a_code] + ref.var_c + x[a_code] ** 2 * ref.var_gamma
            count[i] = n_p["B"][a_code] + n_p["W"][a_code]
        for gi, members in panel.group_members.items():
            mem = [i for i in members if np.isfinite(est[i])]
            if mem:
                codes = [panel.accounts[panel.subjects[i][1]] for i in mem]
                est[gi] = float(np.mean(resid[codes]))
                xm = float(np.mean(x[codes]))
                var[gi] = (
                    float(np.sum(v_res[codes])) / len(codes) ** 2
                    + ref.var_c
                    + xm * xm * ref.var_gamma
                )
                count[gi] = float(count[mem].sum())
        panel.info.update(
            level_reference=ref.c,
            level_scale_change=ref.gamma,
            level_between_account_var=tau2,
            level_between_item_var=pooled,
            level_control_accounts=int(control.sum()),
        )
        return est, var, count

    def _test(self, panel: _Panel, tick: Tick) -> np.ndarray:
        size = len(panel.item_subject)
        st = {f: v[:size] for f, v in panel.stats.items()}
        subj = np.asarray(panel.item_subject, dtype=np.int64)
        k = panel.k
        if panel.within is None or tick.start_ms < panel.window.window_period.start_ms + self._h:
            panel.within = self._within(panel, st, subj)  # frozen once past the horizon
        results = {"within": panel.within, "level": self._level(panel, st, subj)}
        for name, (e, v, count) in results.items():
            panel.est[name], panel.var[name], panel.n_items[name] = e, v, count
        est, var = _combine(
            panel.est["within"], panel.var["within"], panel.est["level"], panel.var["level"]
        )
        # the platform-wide change: the scale γ of the within-item reference
        ref = panel.within_ref
        if ref is not None and ref.var_gamma > 0:
            est = np.append(est, ref.gamma)
            var = np.append(var, ref.var_gamma)
        else:
            est, var = np.append(est, np.nan), np.append(var, np.nan)
        panel.est["combined"], panel.var["combined"] = est, var
        entries = np.zeros(k)
        for targets in self._targets(panel, subj):
            sel = targets >= 0
            entries += np.bincount(targets[sel], weights=(st["n_B"] + st["n_W"])[sel], minlength=k)
        panel.entries = entries
        self._elasticity[panel.platform] = fit_elasticity(
            self._exposure.get(panel.platform, ItemExposure())
        )

        def snap(i: int) -> dict[str, Any]:
            out: dict[str, Any] = {
                "tick_start": ms_to_datetime(tick.start_ms).isoformat(),
                "tick_end": ms_to_datetime(tick.end_ms).isoformat(),
                "log_e": float(panel.tests.log_e[i]),
            }
            for name in (*_COMPONENTS, "combined"):
                if i >= panel.est[name].size:
                    continue
                e, v = panel.est[name][i], panel.var[name][i]
                out[name] = {
                    "log_effect": float(e) if math.isfinite(e) else None,
                    "se": float(math.sqrt(v)) if math.isfinite(v) else None,
                }
            return out

        new = panel.tests.update(est, var, tick.end_ms, self._tick_index, snap)
        panel.trace.record(tick.end_ms, tick.end_ms - tick.start_ms, est, panel.tests.log_e)
        return new

    # -- output -----------------------------------------------------------------------------
    def _finding(self, panel: _Panel, i: int) -> Finding | None:
        if i == panel.k:
            return self._platform_finding(panel)
        t = panel.tests
        kind_s, subject = panel.subjects[i]
        beta = self._elasticity.get(panel.platform)
        if beta is None or not beta.usable or panel.covered[i]:
            return None  # scores that do not move exposure amplify nothing
        direction = float(t.direction[i])
        kind = "amplification" if direction > 0 else "suppression"
        est = float(panel.est["combined"][i])
        v = float(panel.var["combined"][i])
        lo, hi = cs_by_inversion(est, v, self.tau, t.margin, t.log_thresh)
        z = float(stats.norm.isf(t.alpha_cs / 2))
        x_mid = (
            float(panel.rel[i] / panel.rel_n[i])
            if panel.rel is not None and panel.rel_n is not None and panel.rel_n[i]
            else math.nan
        )
        share = (
            float(panel.share[i] / panel.rel_n[i])
            if panel.share is not None and panel.rel_n is not None and panel.rel_n[i]
            else 0.0
        )
        log_eff, log_lo, log_hi = beta.translate(est, float(lo[0]), float(hi[0]), z, x_mid, share)
        _, lo95, hi95 = beta.translate(
            est, est - 1.96 * math.sqrt(v), est + 1.96 * math.sqrt(v), 1.96, x_mid, share
        )
        cur = Reported(
            log_eff, log_lo, log_hi, int(t.crossed_ms[i]), panel.window.window_period.start_ms
        )
        latest = None
        if agrees(direction, cur.log_effect, cur.lo, cur.hi) or i not in panel.reported:
            if agrees(direction, cur.log_effect, cur.lo, cur.hi):
                panel.reported[i] = cur
            shown = cur
        else:
            shown = panel.reported[i]
            latest = {
                "effect": math.exp(cur.log_effect),
                "ci_low": math.exp(cur.lo),
                "ci_high": math.exp(cur.hi),
                "note": "the latest estimate no longer lies on the detected side of 1; "
                "the finding keeps the last estimate that did",
            }
        entries = int(panel.entries[i]) if panel.entries is not None else 0
        components = {}
        for name in _COMPONENTS:
            e, var = panel.est[name][i], panel.var[name][i]
            components[name] = {
                "log_effect": float(e) if math.isfinite(e) else None,
                "se": float(math.sqrt(var)) if math.isfinite(var) else None,
                "items": int(panel.n_items[name][i]),
            }
        fields: dict[str, Any] = {
            "rule": "ranking scores of the subject's items shifted at the window start, beyond "
            "the platform-wide change",
            "measures": "exp(β·θ): the change in the subject's exposure caused by the shift θ "
            "of its items' ranking scores at the window start (beyond the "
            "platform-wide change), with β the platform's elasticity of exposure "
            "to score measured against the holdout arm",
            "boundary": ms_to_datetime(panel.window.window_period.start_ms).isoformat(),
            "horizon_hours": self.horizon_hours,
            "slate_entries": entries,
            "score_shift": {
                "log_odds": est,
                "se": math.sqrt(v),
                "ci": [float(lo[0]), float(hi[0])],
            },
            "elasticity": {
                "beta": beta.beta,
                "se": beta.se,
                "items": beta.items,
                "beta_at_subject": beta.local(x_mid)[0],
                "slate_share": share,
            },
            "effect": {
                "ci95": [math.exp(lo95), math.exp(hi95)],
                "onset": ms_to_datetime(panel.window.window_period.start_ms).isoformat(),
            },
            "components": components,
            "references": dict(panel.info),
            "test": {
                "name": "mixture e-process on the inverse-variance combination of the "
                "within-item and level shifts",
                "statistic_log_effect": est,
                "se": math.sqrt(v),
                "tau": self.tau,
                "margin": self.margin,
                **test_evidence(t, i, self.context.alpha),
            },
            "crossed": crossing_evidence(t, i),
            "series": panel.trace.series(i, t, onset_ms=panel.window.window_period.start_ms),
            "disclosures_checked": disclosure_json(
                covering_disclosures(
                    self.context.config, panel.platform, panel.window, (kind_s, subject)
                )
            ),
        }
        if latest is not None:
            fields["latest"] = latest
        return sequential_finding(
            detector=self.name,
            kind=kind,
            platform=panel.platform,
            window=panel.window,
            subject=(kind_s, subject),
            effect=math.exp(shown.log_effect),
            ci=(math.exp(shown.lo), math.exp(shown.hi)),
            n_exposures=entries,
            tests=t,
            i=i,
            evidence=evidence.build(self.name, fields),
        )

    def _platform_finding(self, panel: _Panel) -> Finding:
        t = panel.tests
        i = panel.k
        g, v = float(panel.est["combined"][i]), float(panel.var["combined"][i])
        lo, hi = cs_by_inversion(g, v, 0.3, t.margin, t.log_thresh)
        fields = {
            "detector": self.name,
            "rule": "every item's score moved with its level when the window opened: a new "
            "ranking model for the whole platform, not a targeted intervention "
            "(informational)",
            "measures": "1 + γ: the factor the change applied to score differences (a model "
            "whose scores are 1.3× the old ones gives 1.3)",
            "references": dict(panel.info),
            "test": {
                "statistic": g,
                "se": math.sqrt(v) if v > 0 else None,
                "margin": self.margin,
                "log_e_max": float(t.max_log_e[i]),
                "log_threshold": t.log_thresh,
            },
            "crossed": crossing_evidence(t, i),
        }
        return Finding.new(
            detector=self.name,
            kind="platform_change",
            platform=panel.platform,
            region=panel.window.jurisdiction,
            window_id=panel.window.id,
            subject_kind="platform",
            subject=panel.platform,
            effect=1 + g,
            ci_low=1 + float(lo[0]),
            ci_high=1 + float(hi[0]),
            p_value=adjusted_p(float(t.max_log_e[i]), t.n),
            n_exposures=0,
            severity="low",
            event_time=ms_to_datetime(int(t.crossed_ms[i])),
            evidence=evidence.build("platform_change", fields),
        )

    def finish(self, end_ms: int) -> list[Finding]:
        out = []
        for p in self._panels.values():
            for i in np.flatnonzero(p.tests.crossed).tolist():
                f = self._finding(p, i)
                if f is not None:
                    out.append(f)
        return out

    def test_states(self) -> list[TestState]:
        return [
            TestState(
                self.name,
                p.platform,
                p.window.id,
                "*",
                (*(f"{k}:{s}" for k, s in p.subjects), "platform"),
                p.tests.max_log_e.copy(),
                p.tests.log_thresh,
                np.array([*(not c for c in p.covered), True], dtype=bool),
            )
            for p in self._panels.values()
        ]

    def detectability(self) -> list[Detectability]:
        rows: list[Detectability] = []
        for panel in self._panels.values():
            if panel.var:
                counts = (
                    panel.entries
                    if panel.entries is not None
                    else np.zeros(panel.k, dtype=np.int64)
                )
                rows.extend(
                    mde_rows(
                        detector=self.name,
                        platform=panel.platform,
                        window=panel.window,
                        subjects=panel.subjects,
                        variance=panel.var["combined"][: panel.k],
                        tau=self.tau,
                        tests=panel.tests,
                        n_exposures=counts,
                    )
                )
        return rows


def _combine(
    e1: np.ndarray, v1: np.ndarray, e2: np.ndarray, v2: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Inverse-variance combination of two independent estimates of the same θ (either may
    be missing: NaN)."""
    ok1 = np.isfinite(e1) & np.isfinite(v1) & (v1 > 0)
    ok2 = np.isfinite(e2) & np.isfinite(v2) & (v2 > 0)
    w1 = np.where(ok1, 1 / np.where(ok1, v1, 1.0), 0.0)
    w2 = np.where(ok2, 1 / np.where(ok2, v2, 1.0), 0.0)
    w = w1 + w2
    with np.errstate(divide="ignore", invalid="ignore"):
        est = (w1 * np.nan_to_num(e1) + w2 * np.nan_to_num(e2)) / w
        var = 1 / w
    return np.where(w > 0, est, np.nan), np.where(w > 0, var, np.nan)
