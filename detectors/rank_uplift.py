"""``rank_uplift`` — final ranking scores above the platform's own organic scores.

Statistic
---------
For every ranked-arm slate entry in the window (region in scope) with an ``organic_score``,
whose interventions no disclosure covers, the *uplift* is ``u = score − organic_score``.
Legitimate re-ranking (freshness, diversity, integrity demotions) adjusts items too, often by
item — so ``u`` is compared with the **reference** ``c``: the entry-weighted mean uplift of
the *control* entries — items of unregistered accounts with no logged intervention (the
subject itself and any boosted entry are never in it; all accounts but the subject's items
when there are fewer than ``min_reference`` control items), Huber-robust over items
(:func:`detectors._holdout_stats.common_shift`).  Its sampling error ``Var c`` enters the
variance.  For a subject (an actor; a group = its members' entries)::

    θ̂ = Σ_entries (u − c) / n

Variance: two-way clustered by **items and slates** (Cameron, Gelbach & Miller 2011, JBES
29(2), eq. 2.11: ``V = V_item + V_slate − V_entry``): an item's legitimate adjustment is shared
by all its entries (clustering by slate alone treats them as independent — with per-item
adjustments this gave z standard deviations of 8 and p-values of 1e-67 on null elections),
and a slate's entries share its context.  Central guard
(:func:`detectors.sequential.guard_variance`): ``V`` never falls below the pooled
model ``σ²_item Σ_j n_j²/n² + σ²_entry/n`` (``σ²`` estimated on the control items, not a
constant) plus ``score_resolution²/items`` (the logs' rounding: a platform whose control
uplifts are exactly 0 makes a subject's constant uplift a near-certain fact, not an infinite
one); a subject is tested only with ``≥ min_items`` items and ``≥ min_slates`` slates
(enough clusters for the sandwich estimator).

What ``effect`` measures
------------------------
The multiplicative change in the subject's exposure that its uplift causes:
``effect = exp(β̂ θ̂)`` with ``β̂`` the platform's elasticity of exposure to score, measured
against the holdout arm (:mod:`detectors._elasticity`) — since the estimated onset: the hour
after which the subject's uplift departs from the reference, when the data show one (the
same maximum-likelihood change point as :mod:`detectors.holdout_shift`), else the window
start.  ``evidence.uplift`` reports ``θ`` itself (score units).

Slot vs organic order (evidence)
--------------------------------
The *displacement* = organic rank within the slate − slot rank (> 0: shown higher than the
platform's own organic order), for the subject and for all entries — descriptive.

What it cannot see
------------------
An intervention logged *inside* ``organic_score`` (``organic_score = score``) leaves ``u = 0``;
:mod:`detectors.holdout_shift` and :mod:`detectors.score_shift` reveal it.  Disclosed
interventions are excluded entry by entry.

Guarantee
---------
Always-valid mixture e-process on ``θ̂`` with margin ``δ = log(margin)``
(:mod:`detectors.sequential`), every tick; Bonferroni over the window's ``m`` monitored
subjects per platform: ``P(any false finding of this detector on a platform in a window)
≤ α_d`` (asymptotically, under continuous monitoring).  ``ci_low``/``ci_high`` =
``exp(β̂ · CS)``, the test's own confidence sequence translated.

Scope: the whole jurisdiction and all surfaces (``surface = null``); surfaces and ISO 3166-2
subdivisions are tested by :mod:`detectors.holdout_shift` (:mod:`detectors._scopes`).

Two stages (scale-out)
----------------------
1. **Reducer** — :meth:`RankUplift._fold` minus its item-moment lines: the tick's in-scope
   ranked slate entries (:func:`detectors._slates.slate_entries`) → per subject the
   slate-cluster sums ``s_g, s_a, s_n, s_a², s_an, s_n²`` (clusters = (subject, slate); a
   slate is one user's and lies within one tick, so its sums are final), entry sums
   ``u, n, u²``, displacement, relative-score and slate-share sums, the hourly ``(Σu, n)``
   per subject; per item the increments ``(Σu, n, Σu², logged)``; and the elasticity's
   :class:`detectors._elasticity.ItemExposure` counts.  No per-user state.
2. **Merged state** — the per-(platform, window) ``_Panel``: ``sums`` (the subject arrays
   above), ``hourly_a``/``hourly_n``, ``items`` (per item ``[Σu, n, Σu², registered, logged,
   subjects]``) and the reference counters.  The item-cluster moments ``i_a2, i_an, i_n2,
   i_g`` of each subject are updated at merge time from the *merged* per-item sums
   (``(a₀ + Δa)² − a₀²``), so partitions holding entries of the same item add correctly.
   :meth:`RankUplift._test` (reference, two-way variance, guard, test) reads only merged state.

In the code both stages are the one function ``_fold``; splitting it means returning the
increments instead of adding them into the panel.

Reference: Johari et al. 2017 (mSPRT); Howard et al. 2021 (confidence sequences); Cameron,
Gelbach & Miller 2011 and Cameron & Miller 2015 (cluster-robust variance); Huber 1981.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from scipy import stats

import detectors.evidence as evidence
from detectors._elasticity import Elasticity, ItemExposure, fit_elasticity, slate_relative
from detectors._holdout_stats import item_variance
from detectors._slates import SlateEntries, slate_entries
from detectors._subjects import covering_disclosures, disclosure_json, window_subjects
from detectors._trace import Trace
from detectors.base import Detector, DetectorContext, Tick
from detectors.sequential import (
    Reported,
    SequentialPanel,
    TestState,
    agrees,
    crossing_evidence,
    cs_by_inversion,
    guard_variance,
    mde_rows,
    sequential_finding,
    test_evidence,
)
from monitor.core.config import Window
from monitor.core.records import Detectability, Finding, ms_to_datetime

__all__ = ["RankUplift", "two_way_cluster_var"]

_HOUR_MS = 3_600_000
# per (subject, slate) sums, per subject entry sums, per subject item moments, displacement
_SUBJECT_SUMS = (
    "s_a",
    "s_n",
    "s_a2",
    "s_an",
    "s_n2",
    "s_g",  # slate clusters
    "u",
    "n",
    "u2",  # entries
    "i_a2",
    "i_an",
    "i_n2",
    "i_g",  # item clusters
    "disp",
    "disp_n",
    "disp_up",
    "rel",
    "rel_n",
    "share",
)  # relative score, slate share


def two_way_cluster_var(
    theta: np.ndarray,
    n: np.ndarray,
    u2: np.ndarray,
    u: np.ndarray,
    s_a2: np.ndarray,
    s_an: np.ndarray,
    s_n2: np.ndarray,
    s_g: np.ndarray,
    i_a2: np.ndarray,
    i_an: np.ndarray,
    i_n2: np.ndarray,
    i_g: np.ndarray,
) -> np.ndarray:
    """Two-way cluster-robust variance of a mean ``θ = Σu/n`` (items and slates).

    With cluster sums ``a_j`` and sizes ``n_j``, ``V_C = G/(G−1) Σ_j (a_j − θ n_j)² / n²``
    for each clustering ``C`` (items, slates) and ``V_E = Σ (u − θ)² / n²`` for the
    intersection (entries: an entry is one item in one slate)::

        V = V_items + V_slates − V_entries

    Cameron, Gelbach & Miller 2011 (JBES 29(2)), eq. (2.11).  Can be negative in small
    samples: the caller guards it.
    """
    with np.errstate(divide="ignore", invalid="ignore"):

        def one(a2: np.ndarray, an: np.ndarray, n2: np.ndarray, g: np.ndarray) -> np.ndarray:
            return (a2 - 2 * theta * an + theta * theta * n2) / (n * n) * g / np.maximum(g - 1, 1)

        v_e = (u2 - 2 * theta * u + theta * theta * n) / (n * n)
        return one(i_a2, i_an, i_n2, i_g) + one(s_a2, s_an, s_n2, s_g) - v_e


@dataclass
class _Panel:
    platform: str
    window: Window
    subjects: list[tuple[str, str]]
    actor_subjects: dict[str, tuple[int, ...]]
    tests: SequentialPanel
    covered: list[bool]
    hours: int
    sums: dict[str, np.ndarray] = field(default_factory=dict)
    hourly_a: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    hourly_n: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    # per item: [Σu, n, Σu², account is registered, any logged intervention, subject, group]
    items: dict[str, list[Any]] = field(default_factory=dict)
    estimate: np.ndarray | None = None
    variance: np.ndarray | None = None
    reference: float = 0.0
    reference_var: float = 0.0
    reference_items: int = 0
    sigma2_item: float = 0.0
    sigma2_entry: float = 0.0
    ref_entries: int = 0
    ref_disp: float = 0.0
    ref_disp_n: int = 0
    excluded_disclosed: int = 0
    reported: dict[int, Reported] = field(default_factory=dict)
    trace: Trace = field(default_factory=Trace)  # the evidence's series (reporting only)

    def __post_init__(self) -> None:
        k = len(self.subjects)
        self.sums = {f: np.zeros(k) for f in _SUBJECT_SUMS}
        self.hourly_a = np.zeros((k, self.hours))
        self.hourly_n = np.zeros((k, self.hours))

    @property
    def k(self) -> int:
        return len(self.subjects)


class RankUplift(Detector):
    """Score above organic score per actor and group (module docstring).

    Args:
        tau: Scale of the mixture prior on the uplift (score units).
        margin: Multiplicative uplift treated as none (``δ = log(margin)``).
        min_entries: Minimum slate entries of a subject before it is tested.
        min_slates: Minimum distinct slates (clusters) before it is tested.
        min_items: Minimum distinct items (clusters) before it is tested.
        min_reference: Control items needed for the reference from unregistered accounts.
        score_resolution: Uplifts closer than this are not told apart (the logs round scores):
            ``score_resolution² / items`` is the least variance a mean uplift can have.  Not
            a noise calibration — the noise is estimated on the control items.
        onset_z: Standardised change needed to place the onset after the window start.
        update_every: Re-emit an active finding every this many ticks (and at the end).
    """

    name: ClassVar[str] = "rank_uplift"
    display_name: ClassVar[str] = "Ranking score above organic score"
    kinds: ClassVar[tuple[str, ...]] = ("amplification", "suppression")
    version: ClassVar[str] = "2"

    def __init__(
        self,
        context: DetectorContext,
        tau: float = 0.3,
        margin: float = 1.05,
        min_entries: int = 30,
        min_slates: int = 10,
        min_items: int = 5,
        min_reference: int = 30,
        score_resolution: float = 1e-3,
        onset_z: float = 3.0,
        update_every: int = 4,
    ) -> None:
        super().__init__(context)
        if not tau > 0:
            raise ValueError(f"tau must be > 0, got {tau}")
        if not margin >= 1:
            raise ValueError(f"margin must be >= 1 (a multiplicative uplift), got {margin}")
        if min_entries < 1 or min_slates < 2 or min_items < 2 or min_reference < 3:
            raise ValueError(
                "min_entries must be >= 1, min_slates and min_items >= 2, min_reference >= 3"
            )
        if update_every < 1 or not onset_z > 0 or not score_resolution > 0:
            raise ValueError("update_every must be >= 1, onset_z and score_resolution > 0")
        self.tau, self.margin = tau, margin
        self.score_resolution = score_resolution
        self.min_entries, self.min_slates, self.min_items = min_entries, min_slates, min_items
        self.min_reference, self.onset_z = min_reference, onset_z
        self.update_every = update_every
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
            actor_subjects: dict[str, tuple[int, ...]] = {}
            for kind, name in subjects:
                if kind != "actor":
                    continue
                group = cfg.registry[name].group
                ids = [index[("actor", name)]]
                if group is not None and ("group", group) in index:
                    ids.append(index[("group", group)])
                actor_subjects[name] = tuple(ids)
            tests = SequentialPanel.bonferroni(
                len(subjects), self.context.alpha, self.tau, self.margin
            )
            p = window.window_period
            covered = [bool(covering_disclosures(cfg, platform, window, s)) for s in subjects]
            panel = self._panels[key] = _Panel(
                platform,
                window,
                subjects,
                actor_subjects,
                tests,
                covered,
                -(-(p.end_ms - p.start_ms) // _HOUR_MS),
            )
        return panel

    # -- per tick ---------------------------------------------------------------------------
    def evaluate(self, tick: Tick) -> list[Finding]:
        self._tick_index += 1
        self._count_exposures(tick)
        if not tick.rankings:
            return []
        cfg = self.context.config
        digest = slate_entries(tick, cfg)
        if digest.n == 0:
            return []
        self._count_scores(digest)
        out: list[Finding] = []
        for window in cfg.windows:
            period = window.window_period
            if tick.end_ms <= period.start_ms or tick.start_ms >= period.end_ms:
                continue
            base = (
                digest.in_scope(window.jurisdiction)
                & (digest.ts >= period.start_ms)
                & (digest.ts < period.end_ms)
                & np.isfinite(digest.organic)
            )
            for p, platform in enumerate(digest.platforms):
                mask = base & (digest.platform_code == p)
                if not mask.any():
                    continue
                panel = self._panel(str(platform), window)
                if self._fold(panel, digest, mask):
                    new = self._test(panel, tick)
                    emit = new.tolist()
                    if self._tick_index % self.update_every == 0:
                        emit = sorted(set(emit) | set(np.flatnonzero(panel.tests.crossed).tolist()))
                    out.extend(f for i in emit if (f := self._finding(panel, i)) is not None)
        return out

    def _count_exposures(self, tick: Tick) -> None:
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

    def _fold(self, panel: _Panel, d: SlateEntries, mask: np.ndarray) -> bool:
        """Stage 1 (per tick; additive over users): slate-cluster moments per subject,
        per-item uplift sums, hourly sums; then the merged per-item moments."""
        panel.excluded_disclosed += int((mask & d.covered).sum())
        keep = np.flatnonzero(mask & ~d.covered)
        if keep.size == 0:
            return False
        u = d.score[keep] - d.organic[keep]
        disp = d.displacement(keep)
        panel.ref_entries += keep.size
        panel.ref_disp += float(np.nansum(disp))
        panel.ref_disp_n += int(np.isfinite(disp).sum())
        registry = self.context.config.registry
        # per-item sums (every account: the reference needs them)
        items = d.item[keep]
        actor_names = d.actors[d.actor_code[keep]]
        logged = d.logged[keep]
        order = np.argsort(items, kind="stable")
        it_sorted = items[order]
        starts = np.flatnonzero(np.r_[True, it_sorted[1:] != it_sorted[:-1]])
        a_sum = np.add.reduceat(u[order], starts)
        n_sum = np.diff(np.r_[starts, order.size])
        a2_sum = np.add.reduceat(u[order] ** 2, starts)
        lg = np.maximum.reduceat(logged[order].astype(np.int8), starts)
        sums = panel.sums
        for j, st in enumerate(starts.tolist()):
            item = it_sorted[st]
            row = panel.items.get(item)
            actor = str(actor_names[order[st]])
            if row is None:
                subs = panel.actor_subjects.get(actor, ())
                row = panel.items[item] = [0.0, 0, 0.0, actor in registry, False, subs]
            a0, n0 = row[0], row[1]
            da, dn = float(a_sum[j]), int(n_sum[j])
            for s in row[5]:  # item-cluster moments of the subjects it counts for
                sums["i_a2"][s] += 2 * a0 * da + da * da
                sums["i_an"][s] += a0 * dn + da * n0 + da * dn
                sums["i_n2"][s] += 2 * n0 * dn + dn * dn
                if n0 == 0:
                    sums["i_g"][s] += 1
            row[0], row[1] = a0 + da, n0 + dn
            row[2] += float(a2_sum[j])
            row[4] = row[4] or bool(lg[j])
        # entries of monitored actors → (subject, entry) pairs (actor and its group)
        by_code = [panel.actor_subjects.get(str(a), ()) for a in d.actors]
        first = np.array([ids[0] if ids else -1 for ids in by_code], dtype=np.int64)
        second = np.array([ids[1] if len(ids) > 1 else -1 for ids in by_code], dtype=np.int64)
        codes = d.actor_code[keep]
        s1, s2 = first[codes], second[codes]
        r1, r2 = np.flatnonzero(s1 >= 0), np.flatnonzero(s2 >= 0)
        if r1.size == 0:
            return True
        subj = np.concatenate([s1[r1], s2[r2]])
        row_ = np.concatenate([r1, r2])
        slate = d.slate[keep][row_]
        uu, dd = u[row_], disp[row_]
        k = panel.k
        sums["u"] += np.bincount(subj, weights=uu, minlength=k)
        sums["n"] += np.bincount(subj, minlength=k)
        sums["u2"] += np.bincount(subj, weights=uu * uu, minlength=k)
        fin = np.isfinite(dd)
        sums["disp"] += np.bincount(subj[fin], weights=dd[fin], minlength=k)
        sums["disp_n"] += np.bincount(subj[fin], minlength=k)
        sums["disp_up"] += np.bincount(subj[fin & (dd > 0)], minlength=k)
        rel = slate_relative(d)[keep][row_]
        fr = np.isfinite(rel)
        sums["rel"] += np.bincount(subj[fr], weights=rel[fr], minlength=k)
        sums["rel_n"] += np.bincount(subj[fr], minlength=k)
        hour = (d.ts[keep][row_] - panel.window.window_period.start_ms) // _HOUR_MS
        hour = np.clip(hour, 0, panel.hours - 1)
        np.add.at(panel.hourly_a, (subj, hour), uu)
        np.add.at(panel.hourly_n, (subj, hour), 1.0)
        # clusters = (subject, slate): a slate lies within one tick, so its sums are final
        width = int(d.slate.max()) + 1
        uniq, inv = np.unique(subj * width + slate, return_inverse=True)
        a_c = np.bincount(inv, weights=uu)
        n_c = np.bincount(inv).astype(float)
        s_c = uniq // width
        sums["s_g"] += np.bincount(s_c, minlength=k)
        sums["s_a"] += np.bincount(s_c, weights=a_c, minlength=k)
        sums["s_n"] += np.bincount(s_c, weights=n_c, minlength=k)
        sums["s_a2"] += np.bincount(s_c, weights=a_c * a_c, minlength=k)
        sums["s_an"] += np.bincount(s_c, weights=a_c * n_c, minlength=k)
        sums["s_n2"] += np.bincount(s_c, weights=n_c * n_c, minlength=k)
        # the subject's share of the slates it appears in (self-competition)
        size = np.bincount(d.slate, minlength=width).astype(float)
        slate_of = uniq % width
        sums["share"] += np.bincount(s_c, weights=n_c * n_c / size[slate_of], minlength=k)
        return True

    # -- stage 2: the reference and the tests ------------------------------------------------
    def _reference(self, panel: _Panel) -> None:
        """Entry-weighted mean uplift of the control items, Huber-robust over items, with its
        sampling variance; and the pooled entry / item variances for the guard."""
        rows = list(panel.items.values())
        if not rows:
            return
        a = np.array([r[0] for r in rows])
        n = np.array([r[1] for r in rows], dtype=float)
        a2 = np.array([r[2] for r in rows])
        reg = np.array([r[3] for r in rows], dtype=bool)
        logged = np.array([r[4] for r in rows], dtype=bool)
        control = ~reg & ~logged & (n > 0)
        if control.sum() < self.min_reference:
            control = ~logged & (n > 0)  # fall back: every account, boosted entries out
        a, n, a2 = a[control], n[control], a2[control]
        if a.size < 3:
            return
        mean = a / n
        within = np.maximum(a2 - a * mean, 0.0)
        s2e = float(within.sum() / max((n - 1).sum(), 1.0))
        c = float(np.median(mean))
        s2i = item_variance(mean - c, s2e / n + 1e-12, np.ones_like(n), n_params=1)
        h = np.ones_like(n)
        for _ in range(10):
            z = (mean - c) / np.sqrt(s2e / n + s2i + 1e-12)
            h = np.minimum(1.0, 2.5 / np.maximum(np.abs(z), 1e-12))
            c = float((h * a).sum() / (h * n).sum())
        s2i = item_variance(mean - c, s2e / n + 1e-12, np.ones_like(n), n_params=1)
        big_n = float((h * n).sum())
        g = a.size
        var_c = float((h * h * (a - c * n) ** 2).sum()) / big_n**2 * g / max(g - 1, 1)
        panel.reference, panel.reference_var = c, var_c
        panel.sigma2_item, panel.sigma2_entry, panel.reference_items = s2i, s2e, int(g)

    def _estimates(self, panel: _Panel) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(θ̂, V, floor)`` per subject: ``V`` the two-way cluster-robust variance plus the
        reference's, before the central guard; ``floor`` the pooled model
        (:func:`detectors.sequential.guard_variance` takes the larger)."""
        s = panel.sums
        n = s["n"]
        with np.errstate(divide="ignore", invalid="ignore"):
            theta_raw = s["u"] / n
        v = two_way_cluster_var(
            theta_raw,
            n,
            s["u2"],
            s["u"],
            s["s_a2"],
            s["s_an"],
            s["s_n2"],
            s["s_g"],
            s["i_a2"],
            s["i_an"],
            s["i_n2"],
            s["i_g"],
        )
        with np.errstate(divide="ignore", invalid="ignore"):
            floor = (panel.sigma2_item * s["i_n2"] + panel.sigma2_entry * n) / (
                n * n
            ) + self.score_resolution**2 / s["i_g"]
        floor = floor + panel.reference_var
        var = np.nan_to_num(v, nan=0.0) + panel.reference_var
        ok = (n >= self.min_entries) & (s["s_g"] >= self.min_slates) & (s["i_g"] >= self.min_items)
        return (np.where(ok, theta_raw - panel.reference, np.nan), np.where(ok, var, np.nan), floor)

    def _test(self, panel: _Panel, tick: Tick) -> np.ndarray:
        self._reference(panel)
        est, raw, floor = self._estimates(panel)
        var = guard_variance(raw, floor)
        panel.estimate, panel.variance = est, var
        self._elasticity[panel.platform] = fit_elasticity(
            self._exposure.get(panel.platform, ItemExposure())
        )

        def snap(i: int) -> dict[str, Any]:
            return {
                "tick_start": ms_to_datetime(tick.start_ms).isoformat(),
                "tick_end": ms_to_datetime(tick.end_ms).isoformat(),
                "log_effect": float(est[i]),
                "se": float(math.sqrt(var[i])),
                "log_e": float(panel.tests.log_e[i]),
            }

        new = panel.tests.update(est, raw, tick.end_ms, self._tick_index, snap, floor=floor)
        panel.trace.record(tick.end_ms, tick.end_ms - tick.start_ms, est, panel.tests.log_e)
        return new

    def _since_onset(self, panel: _Panel, i: int) -> tuple[int, float, float, dict[str, Any]]:
        """The onset hour (maximum-likelihood change point of the hourly mean uplift, as in
        :mod:`detectors.holdout_shift`), and the uplift and its variance since then (the
        variance scaled from the full window's by the entries)."""
        a, n = panel.hourly_a[i], panel.hourly_n[i]
        c = panel.reference
        est_full = float(panel.estimate[i]) if panel.estimate is not None else math.nan
        var_full = float(panel.variance[i]) if panel.variance is not None else math.nan
        n_full = float(n.sum())
        direction = float(panel.tests.direction[i])
        used = np.flatnonzero(n > 0)
        last = int(used.max()) + 1 if used.size else 0
        best_k, best_gain = 0, 0.0
        for k in range(1, last):
            n_pre, n_post = float(n[:k].sum()), float(n[k:last].sum())
            if n_pre < self.min_entries or n_post < self.min_entries:
                continue
            d_pre = float(a[:k].sum()) / n_pre - c
            d_post = float(a[k:last].sum()) / n_post - c
            v_pre, v_post = var_full * n_full / n_pre, var_full * n_full / n_post
            if d_post * direction <= 0:
                continue
            common = (d_pre / v_pre + d_post / v_post) / (1 / v_pre + 1 / v_post)
            gain = (
                (d_pre - common) ** 2 / v_pre + (d_post - common) ** 2 / v_post - d_pre**2 / v_pre
            )
            if gain > best_gain:
                best_k, best_gain = k, gain
        onset = best_k if best_gain >= self.onset_z**2 else 0
        if onset:
            n_post = float(n[onset:last].sum())
            est = float(a[onset:last].sum()) / n_post - c
            var = var_full * n_full / n_post
        else:
            est, var = est_full, var_full
        start = panel.window.window_period.start_ms
        ev = {
            "estimated_onset": ms_to_datetime(start + onset * _HOUR_MS).isoformat(),
            "from_window_start": onset == 0,
            "change_z": math.sqrt(best_gain),
            "threshold_z": self.onset_z,
        }
        return onset, est, var, ev

    # -- output -----------------------------------------------------------------------------
    def _finding(self, panel: _Panel, i: int) -> Finding | None:
        t = panel.tests
        kind_s, subject = panel.subjects[i]
        beta = self._elasticity.get(panel.platform)
        if beta is None or not beta.usable:
            return None  # scores that do not move exposure amplify nothing
        direction = float(t.direction[i])
        kind = "amplification" if direction > 0 else "suppression"
        onset, est, var, onset_ev = self._since_onset(panel, i)
        lo, hi = cs_by_inversion(est, var, self.tau, t.margin, t.log_thresh)
        start = panel.window.window_period.start_ms
        z = float(stats.norm.isf(t.alpha_cs / 2))
        s = panel.sums
        x_post = float(s["rel"][i] / s["rel_n"][i]) if s["rel_n"][i] else math.nan
        share = float(s["share"][i] / s["n"][i]) if s["n"][i] else 0.0
        log_eff, log_lo, log_hi = beta.translate(
            est, float(lo[0]), float(hi[0]), z, x_post - est / 2, share
        )
        _, lo95, hi95 = beta.translate(
            est,
            est - 1.96 * math.sqrt(var),
            est + 1.96 * math.sqrt(var),
            1.96,
            x_post - est / 2,
            share,
        )
        cur = Reported(log_eff, log_lo, log_hi, int(t.crossed_ms[i]), start + onset * _HOUR_MS)
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
        n = int(s["n"][i])
        disp_n = s["disp_n"][i]
        fields: dict[str, Any] = {
            "rule": "final ranking score above organic_score, beyond the reference "
            "adjustment of control items",
            "measures": "exp(β·θ): the change in the subject's exposure caused by its uplift θ "
            "(score − organic_score beyond the reference) since the estimated "
            "onset, with β the platform's elasticity of exposure to score "
            "measured against the holdout arm",
            "counts": {
                "entries": n,
                "slates": int(s["s_g"][i]),
                "items": int(s["i_g"][i]),
                "platform_entries": panel.ref_entries,
                "excluded_disclosed_entries": panel.excluded_disclosed,
            },
            "uplift": {
                "log_odds": est,
                "se": math.sqrt(var),
                "ci": [float(lo[0]), float(hi[0])],
                "mean_raw": float(s["u"][i] / n) if n else None,
            },
            "reference": {
                "mean_uplift": panel.reference,
                "se": math.sqrt(panel.reference_var),
                "control_items": panel.reference_items,
                "item_variance": panel.sigma2_item,
                "entry_variance": panel.sigma2_entry,
            },
            "elasticity": {
                "beta": beta.beta,
                "se": beta.se,
                "items": beta.items,
                "beta_at_subject": beta.local(x_post - est / 2)[0],
                "slate_share": share,
            },
            "effect": {"ci95": [math.exp(lo95), math.exp(hi95)], "onset": onset_ev},
            "slot_vs_organic": {
                "mean_displacement": float(s["disp"][i] / disp_n) if disp_n else None,
                "share_above_organic_order": float(s["disp_up"][i] / disp_n) if disp_n else None,
                "platform_mean_displacement": panel.ref_disp / panel.ref_disp_n
                if panel.ref_disp_n
                else None,
            },
            "test": {
                "name": "mixture e-process on the mean uplift beyond the reference "
                "(items and slates as clusters)",
                "statistic_log_effect": float(panel.estimate[i])
                if panel.estimate is not None
                else None,
                "se": float(math.sqrt(panel.variance[i])) if panel.variance is not None else None,
                "tau": self.tau,
                "margin": self.margin,
                **test_evidence(t, i, self.context.alpha),
            },
            "crossed": crossing_evidence(t, i),
            "series": panel.trace.series(i, t, onset_ms=start + onset * _HOUR_MS),
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
            n_exposures=n,
            tests=t,
            i=i,
            evidence=evidence.build(self.name, fields),
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
                tuple(f"{k}:{s}" for k, s in p.subjects),
                p.tests.max_log_e.copy(),
                p.tests.log_thresh,
                np.ones(p.k, dtype=bool),
            )
            for p in self._panels.values()
        ]

    def detectability(self) -> list[Detectability]:
        rows: list[Detectability] = []
        for panel in self._panels.values():
            if panel.variance is not None:
                rows.extend(
                    mde_rows(
                        detector=self.name,
                        platform=panel.platform,
                        window=panel.window,
                        subjects=panel.subjects,
                        variance=panel.variance,
                        tau=self.tau,
                        tests=panel.tests,
                        n_exposures=panel.sums["n"],
                    )
                )
        return rows
