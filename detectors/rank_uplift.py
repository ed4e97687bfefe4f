"""``rank_uplift`` — final ranking scores above the platform's own organic scores.

Statistic
---------
For every ranked-arm slate entry in the window (region in scope) with an ``organic_score``,
whose interventions no disclosure covers, the *uplift* is ``u = score − organic_score``.
Legitimate re-ranking (diversity, freshness, integrity demotions) adjusts everybody's items,
so ``u`` is centred against a robust reference: the **median uplift of the platform's most
recent entries** (``reference_entries``, default 2,000, including the current tick; all
accounts, registered or not) — ``c = u − median(u)``.  The median ignores any minority of
boosted accounts and follows legitimate platform-wide changes within a tick or two.  For a
subject (actor, or group = its members' entries), with slates (requests) as clusters (``a_j =
Σ c`` over the subject's entries in slate ``j``, ``n_j`` their number)::

    θ̂ = Σ_j a_j / Σ_j n_j
    Var(θ̂) = G/(G−1) · Σ_j (a_j − θ̂ n_j)² / (Σ_j n_j)²,   floored at σ₀² Σ n_j² / (Σ n_j)²

(:func:`detectors.stats.ratio_mean_cluster_var`; the floor, ``σ₀`` = ``min_sd``, stands
for score noise the logs may not show: a subject whose entries all carry exactly the same
uplift would otherwise have zero variance).  Slates are the
clusters rather than users because a slate's sums are final within its tick, so the moments
are updated without any per-user state (O(entries) numpy per tick); a user-specific uplift
pattern (personalised boosting) would make this variance somewhat optimistic, which the
margin and the floor absorb.

Effect
------
``effect = exp(θ̂)``: the factor by which the subject's items' ranking weight ``exp(score)``
exceeds their organic weight, beyond the platform-wide adjustment.  Under a softmax /
Plackett–Luce ranker (selection odds ∝ ``exp(score)``), 1.5 = the subject's items were 1.5
times as likely to win each slot as their organic scores justify.  For other score scales it is
still "1.0 = none", monotone in the uplift.

Slot vs organic order (evidence)
--------------------------------
For the same entries the evidence reports the *displacement* = organic rank within the slate −
slot rank (> 0: shown higher than the platform's own organic order), for the subject and for
all entries.  It is descriptive: its null expectation depends on the platform's ranking noise
model, so it is not part of the test.

What it cannot see
------------------
An intervention logged *inside* ``organic_score`` (the simulator's ``organic_logged_boost``:
``organic_score = score``) leaves ``u = 0``; only the holdout comparison
(:mod:`detectors.holdout_shift`) can reveal it.  Disclosed interventions are excluded entry by
entry, so a declared promotion never yields a finding here.

Guarantee
---------
Always-valid mixture e-process on ``θ̂`` with margin ``δ = log(margin)``
(:mod:`detectors.sequential`), every tick; Bonferroni over the window's ``m`` monitored
subjects per platform: ``P(any false finding of this detector on a platform in a window)
≤ α_d`` (asymptotically, under continuous monitoring).  ``p_value = min(1, m / max_t E_t)``;
``ci_low``/``ci_high`` = the latest interval of the ``1 − α_d/m`` confidence sequence on
``exp(θ)``.

Reference: Johari et al. 2017 (mSPRT); Howard et al. 2021 (confidence sequences); Cameron &
Miller 2015 (cluster-robust variance).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

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
from detectors.stats import ratio_mean_cluster_var
from monitor.config import Window
from monitor.records import Detectability, Finding, ms_to_datetime

__all__ = ["RankUplift"]


@dataclass
class _Panel:
    platform: str
    window: Window
    subjects: list[tuple[str, str]]
    actor_subjects: dict[str, tuple[int, ...]]
    tests: SequentialPanel
    sums: dict[str, np.ndarray] = field(default_factory=dict)
    estimate: np.ndarray | None = None
    variance: np.ndarray | None = None
    reference: float = 0.0
    recent: np.ndarray = field(default_factory=lambda: np.zeros(0))
    reference_ticks: int = 0
    ref_entries: int = 0
    ref_disp: float = 0.0
    ref_disp_n: int = 0
    excluded_disclosed: int = 0

    def __post_init__(self) -> None:
        k = len(self.subjects)
        self.sums = {f: np.zeros(k) for f in
                     ("a", "n", "a2", "an", "n2", "g", "raw", "disp", "disp_n", "disp_up")}


class RankUplift(Detector):
    """Score above organic score per actor and group (module docstring).

    Args:
        tau: Scale of the mixture prior on the log effect.
        margin: Multiplicative uplift treated as none (``δ = log(margin)``).
        min_entries: Minimum slate entries of a subject before it is tested.
        min_slates: Minimum distinct slates (clusters) before it is tested.
        min_sd: Floor ``σ₀`` of the per-entry uplift noise (score units).
        reference_entries: The reference is the median uplift of the platform's most recent
            this many entries (all accounts; the current tick's included).
        update_every: Re-emit an active finding every this many ticks (and at the end).
    """

    name: ClassVar[str] = "rank_uplift"
    display_name: ClassVar[str] = "Ranking score above organic score"
    kinds: ClassVar[tuple[str, ...]] = ("amplification", "suppression")
    version: ClassVar[str] = "1"

    def __init__(self, context: DetectorContext, tau: float = 0.3, margin: float = 1.05,
                 min_entries: int = 30, min_slates: int = 10, min_sd: float = 0.05,
                 reference_entries: int = 2000, update_every: int = 4) -> None:
        super().__init__(context)
        if not tau > 0:
            raise ValueError(f"tau must be > 0, got {tau}")
        if not margin >= 1:
            raise ValueError(f"margin must be >= 1 (a multiplicative uplift), got {margin}")
        if min_entries < 1 or min_slates < 2 or reference_entries < 1:
            raise ValueError("min_entries, reference_entries must be >= 1 and min_slates >= 2")
        if not min_sd > 0:
            raise ValueError(f"min_sd must be > 0, got {min_sd}")
        if update_every < 1:
            raise ValueError(f"update_every must be >= 1, got {update_every}")
        self.tau, self.margin = tau, margin
        self.min_entries, self.min_slates, self.min_sd = min_entries, min_slates, min_sd
        self.reference_entries, self.update_every = reference_entries, update_every
        self._panels: dict[tuple[str, str], _Panel] = {}
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
            tests = SequentialPanel.bonferroni(len(subjects), self.context.alpha, self.tau,
                                               self.margin)
            panel = self._panels[key] = _Panel(platform, window, subjects, actor_subjects,
                                               tests)
        return panel

    # -- per tick ---------------------------------------------------------------------------
    def evaluate(self, tick: Tick) -> list[Finding]:
        self._tick_index += 1
        if not tick.rankings:
            return []
        cfg = self.context.config
        digest = slate_entries(tick, cfg)
        if digest.n == 0:
            return []
        out: list[Finding] = []
        for window in cfg.windows:
            period = window.window_period
            if tick.end_ms <= period.start_ms or tick.start_ms >= period.end_ms:
                continue
            base = (digest.in_scope(window.jurisdiction) & (digest.ts >= period.start_ms)
                    & (digest.ts < period.end_ms) & np.isfinite(digest.organic))
            for p, platform in enumerate(digest.platforms):
                mask = base & (digest.platform_code == p)
                if not mask.any():
                    continue
                panel = self._panel(str(platform), window)
                if self._fold(panel, digest, mask):
                    new = self._test(panel, tick)
                    emit = new.tolist()
                    if self._tick_index % self.update_every == 0:
                        emit = sorted(set(emit)
                                      | set(np.flatnonzero(panel.tests.crossed).tolist()))
                    out.extend(self._finding(panel, i) for i in emit)
        return out

    def _fold(self, panel: _Panel, d: SlateEntries, mask: np.ndarray) -> bool:
        """Add the tick's entries to the panel's per-subject, per-user sums."""
        panel.excluded_disclosed += int((mask & d.covered).sum())
        keep = np.flatnonzero(mask & ~d.covered)
        if keep.size == 0:
            return False
        u = d.score[keep] - d.organic[keep]
        recent = np.concatenate([panel.recent, u])[-self.reference_entries:]
        panel.recent = recent
        panel.reference = float(np.median(recent))
        panel.reference_ticks += 1
        disp = d.displacement(keep)
        panel.ref_entries += keep.size
        panel.ref_disp += float(np.nansum(disp))
        panel.ref_disp_n += int(np.isfinite(disp).sum())
        c = u - panel.reference
        # entries of monitored actors → (subject, entry) pairs (actor and its group)
        subs = [panel.actor_subjects.get(str(a), ()) for a in d.actors]
        first = np.array([t[0] if t else -1 for t in subs], dtype=np.int64)
        second = np.array([t[1] if len(t) > 1 else -1 for t in subs], dtype=np.int64)
        codes = d.actor_code[keep]
        s1, s2 = first[codes], second[codes]
        r1, r2 = np.flatnonzero(s1 >= 0), np.flatnonzero(s2 >= 0)
        if r1.size == 0:
            return False
        subj = np.concatenate([s1[r1], s2[r2]])
        row = np.concatenate([r1, r2])
        slate = d.slate[keep][row]
        cc, dd = c[row], disp[row]
        k = len(panel.subjects)
        sums = panel.sums
        sums["raw"] += np.bincount(subj, weights=u[row], minlength=k)
        fin = np.isfinite(dd)
        sums["disp"] += np.bincount(subj[fin], weights=dd[fin], minlength=k)
        sums["disp_n"] += np.bincount(subj[fin], minlength=k)
        sums["disp_up"] += np.bincount(subj[fin & (dd > 0)], minlength=k)
        # clusters = (subject, slate): a slate lies within one tick, so its sums are final
        uniq, inv = np.unique(subj * (int(d.slate.max()) + 1) + slate, return_inverse=True)
        a_c = np.bincount(inv, weights=cc)
        n_c = np.bincount(inv).astype(float)
        s_c = uniq // (int(d.slate.max()) + 1)
        sums["g"] += np.bincount(s_c, minlength=k)
        sums["a"] += np.bincount(s_c, weights=a_c, minlength=k)
        sums["n"] += np.bincount(s_c, weights=n_c, minlength=k)
        sums["a2"] += np.bincount(s_c, weights=a_c * a_c, minlength=k)
        sums["an"] += np.bincount(s_c, weights=a_c * n_c, minlength=k)
        sums["n2"] += np.bincount(s_c, weights=n_c * n_c, minlength=k)
        return True

    def _test(self, panel: _Panel, tick: Tick) -> np.ndarray:
        s = panel.sums
        n, g = s["n"], s["g"]
        ok = (n >= self.min_entries) & (g >= self.min_slates)
        theta, var = ratio_mean_cluster_var(s["a"], n, s["a2"], s["an"], s["n2"], g)
        with np.errstate(divide="ignore", invalid="ignore"):
            var = np.maximum(var, self.min_sd ** 2 * s["n2"] / (n * n))
        est = np.where(ok, theta, np.nan)
        var = np.where(ok, var, np.nan)
        panel.estimate, panel.variance = est, var

        def snap(i: int) -> dict[str, Any]:
            return {"tick_start": ms_to_datetime(tick.start_ms).isoformat(),
                    "tick_end": ms_to_datetime(tick.end_ms).isoformat(),
                    "log_effect": float(est[i]), "se": float(math.sqrt(var[i])),
                    "log_e": float(panel.tests.log_e[i])}

        return panel.tests.update(est, var, tick.end_ms, self._tick_index, snap)

    # -- output -----------------------------------------------------------------------------
    def _finding(self, panel: _Panel, i: int) -> Finding:
        t = panel.tests
        kind_s, subject = panel.subjects[i]
        kind = "amplification" if t.direction[i] > 0 else "suppression"
        est = float(panel.estimate[i]) if panel.estimate is not None else math.nan
        effect = math.exp(est) if math.isfinite(est) else None
        lo = math.exp(t.cs_lo[i]) if math.isfinite(t.cs_lo[i]) else 0.0
        hi = math.exp(t.cs_hi[i]) if math.isfinite(t.cs_hi[i]) else None
        s = panel.sums
        n = int(s["n"][i])
        disp_n = s["disp_n"][i]
        evidence: dict[str, Any] = {
            "rule": "final ranking score above organic_score, beyond the platform-wide "
                    "median adjustment",
            "counts": {"entries": n, "slates": int(s["g"][i]),
                       "platform_entries": panel.ref_entries,
                       "excluded_disclosed_entries": panel.excluded_disclosed},
            "mean_uplift_raw": float(s["raw"][i] / n) if n else None,
            "reference_median_uplift": panel.reference,
            "slot_vs_organic": {
                "mean_displacement": float(s["disp"][i] / disp_n) if disp_n else None,
                "share_above_organic_order": float(s["disp_up"][i] / disp_n) if disp_n
                else None,
                "platform_mean_displacement": panel.ref_disp / panel.ref_disp_n
                if panel.ref_disp_n else None,
            },
            "test": {"name": "mixture e-process on mean centred uplift (slates as clusters)",
                     "statistic_log_effect": est,
                     "se": float(math.sqrt(panel.variance[i])) if panel.variance is not None
                     else None,
                     "tau": self.tau, "margin": self.margin, "min_sd": self.min_sd,
                     **test_evidence(t, i, self.context.alpha)},
            "crossed": crossing_evidence(t, i),
            "disclosures_checked": disclosure_json(covering_disclosures(
                self.context.config, panel.platform, panel.window, (kind_s, subject))),
        }
        return sequential_finding(
            detector=self.name, kind=kind, platform=panel.platform, window=panel.window,
            subject=(kind_s, subject), effect=effect, ci=(lo, hi), n_exposures=n, tests=t,
            i=i, evidence=evidence)

    def finish(self, end_ms: int) -> list[Finding]:
        return [self._finding(p, i) for p in self._panels.values()
                for i in np.flatnonzero(p.tests.crossed).tolist()]

    def detectability(self) -> list[Detectability]:
        rows: list[Detectability] = []
        for panel in self._panels.values():
            if panel.variance is not None:
                rows.extend(mde_rows(
                    detector=self.name, platform=panel.platform, window=panel.window,
                    subjects=panel.subjects, variance=panel.variance, tau=self.tau,
                    tests=panel.tests, n_exposures=panel.sums["n"]))
        return rows
