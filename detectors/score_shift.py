"""``score_shift`` — the same items' ranking scores jump when the window opens.

Why
---
An intervention that starts with the election window and is logged *as organic* (the
platform's ``organic_score`` already contains the boost, so ``score − organic_score = 0``)
is invisible to :mod:`detectors.rank_uplift`; the holdout comparison
(:mod:`detectors.holdout_shift`) reveals it, but compares *different* items before and after,
and which items an actor happened to post (their quality, their timing) moves its
amplification by as much as a ×1.5 boost.  Items that were live across the window start are
their own control: their content did not change at midnight, so their scores should not
either.

Two estimates, one e-process
----------------------------
Two independent estimates of the same log shift ``θ`` — *within-item* (sharp, but only items
live across ``t₀``) and *level* (all other items, noisier) — are combined by inverse-variance
weighting, ``θ̂ = (θ̂_w/V_w + θ̂_L/V_L) / (1/V_w + 1/V_L)``, ``V = 1/(1/V_w + 1/V_L)``; they
are independent because the level statistic leaves out the items compared within-item.

Within-item statistic
---------------------
Boundary ``t₀`` = window start, horizon ``h``.  For every item with ranked-arm slate entries
(region in scope, no disclosed intervention) both in ``[t₀ − h, t₀)`` and in ``[t₀, t)``
(``t ≤ t₀ + h``), ``Δ_i = mean(score | after) − mean(score | before)`` with within-item
variance ``v_i = s̃²_before/n_before + s̃²_after/n_after``, where ``s̃²`` is the item's score
spread across users (affinity, slate context) shrunk towards the platform-wide pooled spread
with a weight of ``prior_entries`` entries (an item seen in 5 slates would otherwise claim
whatever spread its 5 scores happen to have).  Legitimate changes hit everyone (a model update
at midnight, diurnal competition), so ``Δ_i`` is centred on the **median over all items** of
the platform (registered or not), ``c``.  Items also differ beyond ``v_i`` (ageing, engagement,
which users a slate reaches), estimated robustly over all items:
``σ²_Δ = max(0, median((Δ_i − c)² − v_i) / 0.4549)`` (0.4549 = median of χ²₁).  Per
subject (an actor's items; a group's members' items)::

    w_i = 1 / (v_i + σ²_Δ),   θ̂ = Σ w_i (Δ_i − c) / Σ w_i,   Var(θ̂) = 1/Σ w_i + Var(c)

with ``Var(c) = (π/2) · median(v_i + σ²_Δ) / n_items`` (the median's sampling variance).

Level statistic
---------------
For every item with ≥ ``min_entries`` entries in the baseline (``[baseline start, t₀)``) or
in the window so far, and not used within-item, its mean score ``m_i`` in that period.  For
an actor, ``L_P`` = the mean of ``m_i`` over its items in period ``P`` (items weigh equally: a
viral item does not dominate), and ``θ_level = (L_W − L_B) − c_L`` with ``c_L`` = the median
over *all* the platform's accounts (registered or not) of their own ``L_W − L_B`` (accounts
weigh equally, so a change in who posts cannot move the reference).  Variance:
``ṽ (1/n_B + 1/n_W) + Var(c_L)`` with ``ṽ`` the actor's between-item variance of ``m_i`` (both
periods, around their period means) shrunk towards the value pooled over all actors with a
weight of ``prior_items`` items.  For a group, ``θ_level`` is the mean of its members'
uncentred shifts minus ``c_L`` (so a member posting more cannot shift the group's level by
changing its composition), with variance ``Σ Var_member / k²``.

Effect
------
``effect = exp(θ̂)``: the factor on the items' ranking weight ``exp(score)`` that appeared at
the window start, beyond the platform-wide change (softmax / Plackett–Luce reading as in
:mod:`detectors.rank_uplift`).  It uses the *final* score, so it also sees hidden boosts (which
rank_uplift flags too) and works for platforms that log no ``organic_score`` at all.

Scope and limits
----------------
Only interventions that change at the window start are visible (the design's identifying
assumption: content does not change its relevance at ``t₀``, beyond what all items share).  A
boost that ramps up later, or runs from before the baseline, is left to holdout_shift and
rank_uplift.  Items of a declared, disclosed intervention are excluded entry by entry.

Guarantee
---------
The after-means accumulate tick by tick over ``[t₀, t₀ + h)``, so ``θ̂_t`` is a cumulative
estimate and the always-valid mixture e-process of :mod:`detectors.sequential` applies
(margin ``δ = log(margin)``); Bonferroni over the window's ``m`` monitored subjects per
platform: ``P(any false finding of this detector on a platform in a window) ≤ α_d``,
asymptotically, under continuous monitoring.  Reported ``p_value = min(1, m / max_t E_t)``;
``effect = exp(θ̂)`` with the ``1 − α_d/m`` confidence sequence; the evidence lists both
components.

Reference: interrupted time series / difference in differences with unit fixed effects
(Angrist & Pischke 2009, ch. 5); Rousseeuw & Croux 1993 (MAD scale); Johari et al. 2017.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from detectors._slates import SlateEntries, slate_entries
from detectors._subjects import covering_disclosures, disclosure_json, window_subjects
from detectors.base import Detector, DetectorContext, Tick
from detectors.sequential import (
    SequentialPanel,
    crossing_evidence,
    mde_rows,
    sequential_finding,
    test_evidence,
)
from monitor.config import Window
from monitor.records import Detectability, Finding, ms_to_datetime

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
    item_index: dict[str, int] = field(default_factory=dict)
    item_subject: list[int] = field(default_factory=list)  # actor subject index, -1 = none
    item_account: list[int] = field(default_factory=list)  # publishing account (any) code
    accounts: dict[str, int] = field(default_factory=dict)
    stats: dict[str, np.ndarray] = field(default_factory=dict)
    est: dict[str, np.ndarray] = field(default_factory=dict)
    var: dict[str, np.ndarray] = field(default_factory=dict)
    n_items: dict[str, np.ndarray] = field(default_factory=dict)
    entries: np.ndarray | None = None
    info: dict[str, float] = field(default_factory=dict)
    within: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def grow(self) -> None:
        size = len(self.item_subject)
        for f in _STATS:
            cur = self.stats.get(f)
            if cur is None or cur.size < size:
                new = np.zeros(max(64, size, 2 * (0 if cur is None else cur.size)))
                if cur is not None:
                    new[:cur.size] = cur
                self.stats[f] = new


class ScoreShift(Detector):
    """Ranking scores of a subject's items shift at the window start (module docstring).

    Args:
        horizon_hours: ``h``: hours before and after the window start compared item by item.
        tau: Scale of the mixture prior on the log effect.
        margin: Multiplicative change treated as none (``δ = log(margin)``).
        min_entries: Minimum slate entries of an item in a period (or side) to use it.
        min_items: Minimum compared items of a subject before a component is tested.
        min_reference: Minimum compared items of the platform for the references.
        min_sd: Floor of the per-entry score spread (score units).
        prior_entries: Weight (in entries) of the platform-wide score spread in each item's
            within-item variance (shrinkage: items with few entries borrow it).
        prior_items: Weight (in items) of the pooled between-item variance in an actor's own.
        update_every: Re-emit an active finding every this many ticks (and at the end).
    """

    name: ClassVar[str] = "score_shift"
    display_name: ClassVar[str] = "Ranking scores of a subject's items shift at window start"
    kinds: ClassVar[tuple[str, ...]] = ("amplification", "suppression")
    version: ClassVar[str] = "1"

    def __init__(self, context: DetectorContext, horizon_hours: float = 12.0,
                 tau: float = 0.3, margin: float = 1.05, min_entries: int = 3,
                 min_items: int = 1, min_reference: int = 30, min_sd: float = 0.05,
                 prior_entries: float = 10.0, prior_items: float = 10.0,
                 update_every: int = 4) -> None:
        super().__init__(context)
        if not horizon_hours > 0:
            raise ValueError(f"horizon_hours must be > 0, got {horizon_hours}")
        if not tau > 0:
            raise ValueError(f"tau must be > 0, got {tau}")
        if not margin >= 1:
            raise ValueError(f"margin must be >= 1 (a multiplicative change), got {margin}")
        if min_entries < 2 or min_items < 1 or min_reference < 3:
            raise ValueError("need min_entries >= 2, min_items >= 1, min_reference >= 3")
        if not min_sd > 0 or update_every < 1 or prior_entries < 0 or prior_items < 0:
            raise ValueError("need min_sd > 0, update_every >= 1, prior_entries >= 0, "
                             "prior_items >= 0")
        self.horizon_hours, self.tau, self.margin = horizon_hours, tau, margin
        self.min_entries, self.min_items = min_entries, min_items
        self.min_reference, self.min_sd = min_reference, min_sd
        self.prior_entries, self.prior_items = prior_entries, prior_items
        self.update_every = update_every
        self._h = int(horizon_hours * _HOUR_MS)
        self._panels: dict[tuple[str, str], _Panel] = {}
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
            tests = SequentialPanel.bonferroni(len(subjects), self.context.alpha, self.tau,
                                               self.margin)
            panel = self._panels[key] = _Panel(platform, window, subjects, actor_index, members,
                                               tests)
        return panel

    # -- per tick ---------------------------------------------------------------------------
    def evaluate(self, tick: Tick) -> list[Finding]:
        self._tick_index += 1
        cfg = self.context.config
        out: list[Finding] = []
        digest: SlateEntries | None = None
        for window in cfg.windows:
            t0, t1 = window.window_period.start_ms, window.window_period.end_ms
            b0 = window.baseline_period.start_ms
            if tick.end_ms <= b0 or tick.start_ms >= t1:
                continue
            if digest is None:
                if not tick.rankings:
                    return out
                digest = slate_entries(tick, cfg)
                if digest.n == 0:
                    return out
            scope = (digest.in_scope(window.jurisdiction) & ~digest.covered
                     & (digest.ts >= b0) & (digest.ts < t1))
            for p, platform in enumerate(digest.platforms):
                mask = scope & (digest.platform_code == p)
                if not mask.any():
                    continue
                panel = self._panel(str(platform), window)
                if self._fold(panel, digest, mask, window) and tick.end_ms > t0:
                    new = self._test(panel, tick)
                    emit = new.tolist()
                    if self._tick_index % self.update_every == 0:
                        emit = sorted(set(emit)
                                      | set(np.flatnonzero(panel.tests.crossed).tolist()))
                    out.extend(self._finding(panel, i) for i in emit)
        return out

    def _fold(self, panel: _Panel, d: SlateEntries, mask: np.ndarray, window: Window) -> bool:
        """Accumulate per-item score sums; True if window-period entries arrived."""
        t0 = window.window_period.start_ms
        rows = np.flatnonzero(mask)
        codes, items = pd.factorize(d.item[rows], sort=False)
        first = np.unique(codes, return_index=True)[1]  # codes are 0..k-1: first occurrences
        actor_of = d.actors[d.actor_code[rows[first]]]
        index, subj = panel.item_index, panel.item_subject
        get = index.get
        idx = np.array([get(item, -1) for item in items.tolist()], dtype=np.int64)
        accounts = panel.accounts
        for j in np.flatnonzero(idx < 0).tolist():
            idx[j] = index[items[j]] = len(subj)
            actor = str(actor_of[j])
            subj.append(panel.actor_index.get(actor, -1))
            panel.item_account.append(accounts.setdefault(actor, len(accounts)))
        panel.grow()
        where = idx[codes]
        ts, sc = d.ts[rows], d.score[rows]
        st = panel.stats
        size = st["n_B"].size
        after = ts >= t0
        sides = {"B": ~after, "W": after, "nb": ~after & (ts >= t0 - self._h),
                 "na": after & (ts < t0 + self._h)}
        for side, sel in sides.items():
            if sel.any():
                w = where[sel]
                st[f"n_{side}"] += np.bincount(w, minlength=size)
                st[f"s_{side}"] += np.bincount(w, weights=sc[sel], minlength=size)
                st[f"q_{side}"] += np.bincount(w, weights=sc[sel] ** 2, minlength=size)
        return bool(after.any())

    # -- statistics -------------------------------------------------------------------------
    def _within(self, panel: _Panel, st: dict[str, np.ndarray], subj: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        k = len(panel.subjects)
        est, var, count = np.full(k, np.nan), np.full(k, np.nan), np.zeros(k)
        use = (st["n_nb"] >= self.min_entries) & (st["n_na"] >= self.min_entries)
        if use.sum() < self.min_reference:
            return est, var, count
        nb, na = st["n_nb"][use], st["n_na"][use]
        mb, ma = st["s_nb"][use] / nb, st["s_na"][use] / na
        ssb = np.maximum(st["q_nb"][use] - nb * mb * mb, 0.0)
        ssa = np.maximum(st["q_na"][use] - na * ma * ma, 0.0)
        pooled = max(float((ssb.sum() + ssa.sum()) / ((nb - 1).sum() + (na - 1).sum())),
                     self.min_sd ** 2)
        k0 = self.prior_entries
        v = (ssb + k0 * pooled) / (nb - 1 + k0) / nb + (ssa + k0 * pooled) / (na - 1 + k0) / na
        delta = ma - mb
        c = float(np.median(delta))
        # between-item spread beyond v: median of squared standardised residuals
        sigma2 = max(0.0, float(np.median((delta - c) ** 2 - v)) / 0.4549)
        var_c = math.pi / 2 * float(np.median(v + sigma2)) / delta.size
        w = 1 / (v + sigma2)
        s_act = subj[use]
        sw, swd = np.zeros(k), np.zeros(k)
        for targets in self._targets(panel, s_act):
            sel = targets >= 0
            count += np.bincount(targets[sel], minlength=k)
            sw += np.bincount(targets[sel], weights=w[sel], minlength=k)
            swd += np.bincount(targets[sel], weights=w[sel] * (delta[sel] - c), minlength=k)
        ok = count >= self.min_items
        with np.errstate(divide="ignore", invalid="ignore"):
            est = np.where(ok, swd / sw, np.nan)
            var = np.where(ok, 1 / sw + var_c, np.nan)
        panel.info.update(within_reference=c, within_between_item_var=sigma2,
                          within_items_compared=int(delta.size))
        return est, var, count

    def _targets(self, panel: _Panel, s_act: np.ndarray) -> list[np.ndarray]:
        """The subject indices an item counts for: its actor, and the actor's group."""
        group_of = np.full(len(panel.subjects), -1)
        for g, members in panel.group_members.items():
            group_of[members] = g
        second = np.where(s_act >= 0, group_of[np.maximum(s_act, 0)], -1)
        return [s_act, second]

    def _level(self, panel: _Panel, st: dict[str, np.ndarray], subj: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        k = len(panel.subjects)
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
        # reference: median over all accounts (registered or not) of their level shift, so a
        # change in who posts (composition) cannot move it
        acc = np.asarray(panel.item_account, dtype=np.int64)
        n_acc = len(panel.accounts)
        acc_mean = {}
        acc_n = {}
        for side in ("B", "W"):
            sel = valid[side]
            acc_n[side] = np.bincount(acc[sel], minlength=n_acc)
            with np.errstate(divide="ignore", invalid="ignore"):
                acc_mean[side] = (np.bincount(acc[sel], weights=means[side][sel],
                                              minlength=n_acc) / acc_n[side])
        both = (acc_n["B"] > 0) & (acc_n["W"] > 0)
        if both.sum() < 3:
            return est, var, count
        shifts = acc_mean["W"][both] - acc_mean["B"][both]
        c = float(np.median(shifts))
        var_c = math.pi / 2 * float(np.var(shifts)) / shifts.size
        mb, mw = means["B"][valid["B"]], means["W"][valid["W"]]
        # per actor: item counts, means and within-period sums of squares
        n_p, mean_p, ss = {}, {}, np.zeros(k)
        for side in ("B", "W"):
            sel = valid[side] & (subj >= 0)
            s_ = subj[sel]
            n_p[side] = np.bincount(s_, minlength=k).astype(float)
            tot = np.bincount(s_, weights=means[side][sel], minlength=k)
            with np.errstate(divide="ignore", invalid="ignore"):
                mean_p[side] = tot / n_p[side]
            dev = means[side][sel] - mean_p[side][s_]
            ss += np.bincount(s_, weights=dev * dev, minlength=k)
        df = np.maximum(n_p["B"] - 1, 0) + np.maximum(n_p["W"] - 1, 0)
        actors = np.array([kind == "actor" for kind, _ in panel.subjects])
        pooled = float(ss[actors].sum() / df[actors].sum()) if df[actors].sum() > 0 else 0.0
        v_item = (ss + self.prior_items * pooled) / (df + self.prior_items)
        ok = (n_p["B"] >= self.min_items) & (n_p["W"] >= self.min_items) & actors
        with np.errstate(divide="ignore", invalid="ignore"):
            raw = mean_p["W"] - mean_p["B"]
            v_raw = v_item * (1 / n_p["B"] + 1 / n_p["W"])
        est = np.where(ok, raw - c, np.nan)
        var = np.where(ok, v_raw + var_c, np.nan)
        count = np.where(ok, n_p["B"] + n_p["W"], 0.0)
        for g, members in panel.group_members.items():
            mem = [i for i in members if ok[i]]
            if mem:
                est[g] = float(np.mean(raw[mem])) - c
                var[g] = float(np.sum(v_raw[mem])) / len(mem) ** 2 + var_c
                count[g] = float(count[mem].sum())
        panel.info.update(level_reference=c, level_between_item_var=pooled,
                          level_items_baseline=int(mb.size), level_items_window=int(mw.size))
        return est, var, count

    def _test(self, panel: _Panel, tick: Tick) -> np.ndarray:
        size = len(panel.item_subject)
        st = {f: v[:size] for f, v in panel.stats.items()}
        subj = np.asarray(panel.item_subject, dtype=np.int64)
        k = len(panel.subjects)
        if panel.within is None or tick.start_ms < panel.window.window_period.start_ms + self._h:
            panel.within = self._within(panel, st, subj)  # frozen once past the horizon
        results = {"within": panel.within, "level": self._level(panel, st, subj)}
        for name, (e, v, count) in results.items():
            panel.est[name], panel.var[name], panel.n_items[name] = e, v, count
        est, var = _combine(panel.est["within"], panel.var["within"],
                            panel.est["level"], panel.var["level"])
        panel.est["combined"], panel.var["combined"] = est, var
        entries = np.zeros(k)
        for targets in self._targets(panel, subj):
            sel = targets >= 0
            entries += np.bincount(targets[sel], weights=(st["n_B"] + st["n_W"])[sel],
                                   minlength=k)
        panel.entries = entries

        def snap(i: int) -> dict[str, Any]:
            out: dict[str, Any] = {"tick_start": ms_to_datetime(tick.start_ms).isoformat(),
                                   "tick_end": ms_to_datetime(tick.end_ms).isoformat(),
                                   "log_e": float(panel.tests.log_e[i])}
            for name in (*_COMPONENTS, "combined"):
                e, v = panel.est[name][i], panel.var[name][i]
                out[name] = {"log_effect": float(e) if math.isfinite(e) else None,
                             "se": float(math.sqrt(v)) if math.isfinite(v) else None}
            return out

        return panel.tests.update(est, var, tick.end_ms, self._tick_index, snap)

    # -- output -----------------------------------------------------------------------------
    def _finding(self, panel: _Panel, i: int) -> Finding:
        t = panel.tests
        kind_s, subject = panel.subjects[i]
        kind = "amplification" if t.direction[i] > 0 else "suppression"
        est = float(panel.est["combined"][i])
        effect = math.exp(est) if math.isfinite(est) else None
        lo = math.exp(t.cs_lo[i]) if math.isfinite(t.cs_lo[i]) else 0.0
        hi = math.exp(t.cs_hi[i]) if math.isfinite(t.cs_hi[i]) else None
        entries = int(panel.entries[i]) if panel.entries is not None else 0
        components = {}
        for name in _COMPONENTS:
            e, v = panel.est[name][i], panel.var[name][i]
            components[name] = {
                "log_effect": float(e) if math.isfinite(e) else None,
                "se": float(math.sqrt(v)) if math.isfinite(v) else None,
                "items": int(panel.n_items[name][i])}
        evidence: dict[str, Any] = {
            "rule": "ranking scores of the subject's items shifted at the window start, beyond "
                    "the platform-wide change",
            "boundary": ms_to_datetime(panel.window.window_period.start_ms).isoformat(),
            "horizon_hours": self.horizon_hours,
            "slate_entries": entries,
            "components": components,
            "references": dict(panel.info),
            "test": {"name": "mixture e-process on the inverse-variance combination of the "
                             "within-item and level shifts",
                     "statistic_log_effect": est,
                     "se": float(math.sqrt(panel.var["combined"][i]))
                     if math.isfinite(panel.var["combined"][i]) else None,
                     "tau": self.tau, "margin": self.margin,
                     **test_evidence(t, i, self.context.alpha)},
            "crossed": crossing_evidence(t, i),
            "disclosures_checked": disclosure_json(covering_disclosures(
                self.context.config, panel.platform, panel.window, (kind_s, subject))),
        }
        return sequential_finding(
            detector=self.name, kind=kind, platform=panel.platform, window=panel.window,
            subject=(kind_s, subject), effect=effect, ci=(lo, hi), n_exposures=entries,
            tests=t, i=i, evidence=evidence)

    def finish(self, end_ms: int) -> list[Finding]:
        return [self._finding(p, i) for p in self._panels.values()
                for i in np.flatnonzero(p.tests.crossed).tolist()]

    def detectability(self) -> list[Detectability]:
        rows: list[Detectability] = []
        for panel in self._panels.values():
            if panel.var:
                counts = (panel.entries if panel.entries is not None
                          else np.zeros(len(panel.subjects), dtype=np.int64))
                rows.extend(mde_rows(
                    detector=self.name, platform=panel.platform, window=panel.window,
                    subjects=panel.subjects, variance=panel.var["combined"], tau=self.tau,
                    tests=panel.tests, n_exposures=counts))
        return rows


def _combine(e1: np.ndarray, v1: np.ndarray, e2: np.ndarray, v2: np.ndarray
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
