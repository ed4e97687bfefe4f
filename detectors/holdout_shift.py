"""``holdout_shift`` — amplification that changes with the election window (holdout arm).

Statistic
---------
For a subject ``s`` (registered actor or group) on a platform, in a window, and a period
``P`` (baseline / window so far), the amplification ratio (Huszár et al. 2022)::

    R_P = (S_r / N_r) / (S_h / N_h)

(``S_a`` = the subject's exposures in arm ``a``, ``N_a`` = users active in arm ``a`` in the
window's region scope and period; exact counts from :class:`detectors.ledger.ExposureLedger`).
The detector tests the change ``D_t = log R_window(t) − log R_baseline``: the ranked feed may
amplify an account organically, but that amplification must not *change* with the window.

Organic explanations and normalisation
--------------------------------------
* *The actor posts more* (or its items are more popular with its followers): both arms are
  served from the same items — the holdout arm is the reverse-chronological feed of the same
  follow graph — so more (or more widely followed) items raise ``S_r`` and ``S_h`` together
  and cancel in ``R`` to first order.  ``R`` is exposure per *candidate* exposure: the holdout
  arm measures how often the actor's items were available, the ranked arm how often the
  ranker showed them.  The cancellation is not exact: a ranker shows diminishing returns for
  many items of one account (they compete for the same user's slots), a reverse-chronological
  feed does not, so a surge *lowers* ``R`` a little.  Verified on the simulator's
  ``posting_surge`` confounder (×3 posting): ``D`` = −0.08 … −0.31 (mean −0.19, i.e. ×0.83)
  over 8 null runs, |z| ≤ 2.2 — inside the item-mix noise, never an alarm in the calibration
  runs, and in the safe direction (a surge cannot fake amplification).  The evidence reports
  the items per period, so a surge is visible to the reader.
* *Platform-wide changes* (more users, diurnal cycles) cancel through the per-user
  denominators.
* *Declared interventions*: a subject covered by a disclosure (:func:`covering_disclosures`)
  never yields ``amplification``/``suppression``; a crossing is reported as the informational
  kind ``disclosed`` (not an alarm).

Variance (two-way clustering: users and items)
----------------------------------------------
``Var(D_t) = V_base + V_window(t)`` with, per period,

    V_P = V_user + max(σ̂² · H_r,  V_item − V_pois)

* ``V_user`` — users as clusters (delta method on both per-user means, floored at Poisson:
  :func:`detectors.stats.log_ratio_user_var`);
* ``σ̂² · H_r`` — the *item mix*: which few items a subject posted in a period, their quality
  and timing, moves its ranked-arm share far more than user sampling does.  ``H_r`` is the
  Herfindahl concentration of the subject's ranked-arm exposure over its items
  (:func:`detectors.stats.herfindahl`), ``σ̂²`` the between-item variance of log
  amplification, **learnt in the baseline** and pooled over the window's actors
  (:func:`detectors.stats.pooled_item_variance`, from per-subject item-clustered variances,
  :func:`detectors.stats.item_cluster_var`).  Pooling makes it precise where a per-subject
  item-clustered variance (often < 20 items) would be too noisy for a test run at
  ``α/m``.  The subject's own item-clustered excess over Poisson, ``V_item − V_pois``, is used
  instead when it is larger (a subject whose few items behave unlike the pooled model, e.g.
  early in the window): conservative, never smaller than either estimate.

Calibration study (simulator defaults, 8 null runs × 2 windows × 20 subjects, full periods,
the disclosed boost left out): the z-score ``D/sqrt(Var)`` has standard deviation 1.65 with
the user-clustered variance alone (7 % of subjects beyond |z| = 3: a user-only or Poisson test
raises false alarms), 1.14 with each subject's own item-clustered variance (too few items:
noisy), 1.04 with ``V_user + σ̂² H_r`` and 0.99 with the rule above (0 % beyond |z| = 3).  With
an earlier simulator version whose items varied more (quality sd 0.8) the user-only z had
sd 3.8 and the pooled rule 1.00–1.06.  ``tests/detectors/test_calibration.py`` repeats the
check end to end.

Test and guarantee
------------------
``D_t`` and ``Var(D_t)`` feed the always-valid mixture e-process of
:mod:`detectors.sequential` (margin ``δ = log(margin)``).  It is updated at every *look*:
every ``look_hours`` of the window (default 24: whole days, because the ratio has a daily
cycle and a window-so-far of night hours alone would be biased against a whole-day baseline)
and at the window end; looks are any subset of ticks, so the guarantee is unchanged.  Per
platform and window, ``m`` = the window's monitored subjects (registry actors + groups) and a
subject is flagged when ``E_t ≥ m/α_d`` (``α_d`` = this detector's share of
``detection.alpha``): ``P(any false amplification/suppression finding of this detector on a
platform in a window) ≤ α_d``, asymptotically, under continuous monitoring.  The baseline is
complete when the window starts (event-time ticks), so ``σ̂²`` and ``V_base`` are fixed
before the first look.  ``p_value = min(1, m / max_t E_t)``; ``ci_low``/``ci_high`` = the
latest interval of the ``1 − α_d/m`` confidence sequence on ``exp(D)`` (simultaneous over
subjects and looks).  ``effect = exp(D)`` = window amplification ÷ baseline
amplification (1.5 = the ranked feed gives the subject 50 % more exposure, relative to the
holdout feed, than it did before the window).

Reference: Huszár et al. 2022, PNAS 119(1) e2025334119; Cameron, Gelbach & Miller 2011,
"Robust inference with multiway clustering", JBES 29(2); Johari et al. 2017 (KDD) mSPRT.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from detectors import severity
from detectors._subjects import covering_disclosures, disclosure_json, window_subjects
from detectors.base import Detector, DetectorContext, Tick
from detectors.ledger import HOLDOUT, RANKED, Cell
from detectors.sequential import (
    SequentialPanel,
    adjusted_p,
    mde_rows,
)
from detectors.stats import (
    herfindahl,
    item_cluster_var,
    log_ratio_user_var,
    pooled_item_variance,
)
from monitor.config import Window
from monitor.records import Detectability, Finding, ms_to_datetime

__all__ = ["HoldoutShift", "period_arrays"]

_FIELDS = ("s_r", "q_r", "n_r", "s_h", "q_h", "n_h", "rr", "rh", "hh", "g")


def period_arrays(cell: Cell | None, subjects: list[tuple[str, str]]) -> dict[str, np.ndarray]:
    """The ledger's sufficient statistics of ``subjects`` in ``cell`` as arrays.

    ``s/q`` = Σx/Σx² over users, ``n`` = active users, per arm (``_r``/``_h``); ``rr``, ``rh``,
    ``hh`` = Σr_i², Σr_i h_i, Σh_i² over items; ``g`` = distinct items.
    """
    k = len(subjects)
    out = {f: np.zeros(k) for f in _FIELDS}
    if cell is None:
        return out
    out["n_r"][:] = cell.users_ranked
    out["n_h"][:] = cell.users_holdout
    get = cell.subjects.get
    for i, subject in enumerate(subjects):
        arms = get(subject)
        if arms is None:
            continue
        r, h = arms[RANKED], arms[HOLDOUT]
        out["s_r"][i], out["q_r"][i] = r.total, r.sumsq
        out["s_h"][i], out["q_h"][i] = h.total, h.sumsq
        out["rr"][i], out["hh"][i] = r.item_sumsq, h.item_sumsq
        out["rh"][i] = r.cross + h.cross
        out["g"][i] = r.items + h.items
    return out


def _components(a: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    log_r, v_user = log_ratio_user_var(a["s_r"], a["q_r"], a["n_r"], a["s_h"], a["q_h"],
                                       a["n_h"])
    v_item = item_cluster_var(a["s_r"], a["s_h"], a["rr"], a["rh"], a["hh"], a["g"])
    with np.errstate(divide="ignore"):
        v_pois = 1 / a["s_r"] + 1 / a["s_h"]
    return {"log_r": log_r, "v_user": v_user, "v_item": v_item, "v_pois": v_pois,
            "h_r": herfindahl(a["rr"], a["s_r"])}


@dataclass
class _Panel:
    """One (platform, window): its subjects, the fixed baseline and the running tests."""

    platform: str
    window: Window
    subjects: list[tuple[str, str]]
    disclosures: list[list[Any]]
    base: dict[str, np.ndarray]
    base_c: dict[str, np.ndarray]
    sigma2: float
    tests: SequentialPanel
    ready_base: np.ndarray
    current: dict[str, np.ndarray] = field(default_factory=dict)
    estimate: np.ndarray | None = None
    variance: np.ndarray | None = None
    ticks: int = 0
    next_look: int = 0
    looks: int = 0
    pending: bool = False  # window data arrived since the last look


class HoldoutShift(Detector):
    """Window-vs-baseline change of the ranked ÷ holdout exposure ratio (module docstring).

    Args:
        tau: Scale of the mixture prior on the log effect (mSPRT ``τ``); ~ the log effects
            worth detecting fastest (0.3 ≈ ×1.35).
        margin: Multiplicative change treated as no change (``δ = log(margin)``).
        min_exposures: Minimum exposures per arm and period before a subject is tested.
        min_items: Minimum distinct items per period before a subject is tested.
        item_variance_prior: Prior ``σ₀²`` of the between-item variance.
        prior_weight: Weight ``w₀`` of that prior, in units of item concentration ``H``.
        variance_factor: Extra multiplier on ``Var(D)`` (1 = none), a safety knob.
        look_hours: Hours between looks (the e-process is updated at the first tick ending at
            or after each ``window start + k·look_hours``, and at the window end).  The
            default, 24, compares whole days with the whole-day baseline: the ranked÷holdout
            ratio has a daily cycle (at night the reverse-chronological feed reaches further
            back), so a window-so-far made only of night hours is biased, not just noisy.
            Smaller values look more often, at the price of that bias early in each day.
        update_every: Re-emit an active finding every this many ticks (and at the end).
    """

    name: ClassVar[str] = "holdout_shift"
    display_name: ClassVar[str] = "Amplification shift in the window (holdout arm)"
    kinds: ClassVar[tuple[str, ...]] = ("amplification", "suppression", "disclosed")
    version: ClassVar[str] = "1"

    def __init__(self, context: DetectorContext, tau: float = 0.3, margin: float = 1.05,
                 min_exposures: int = 30, min_items: int = 3,
                 item_variance_prior: float = 0.3, prior_weight: float = 0.05,
                 variance_factor: float = 1.0, look_hours: float = 24.0,
                 update_every: int = 4) -> None:
        super().__init__(context)
        if not tau > 0:
            raise ValueError(f"tau must be > 0, got {tau}")
        if not margin >= 1:
            raise ValueError(f"margin must be >= 1 (a multiplicative change), got {margin}")
        if min_exposures < 1 or min_items < 2:
            raise ValueError("min_exposures must be >= 1 and min_items >= 2")
        if item_variance_prior < 0 or prior_weight < 0 or not variance_factor > 0:
            raise ValueError("item_variance_prior, prior_weight must be >= 0, "
                             "variance_factor > 0")
        if update_every < 1:
            raise ValueError(f"update_every must be >= 1, got {update_every}")
        if not look_hours > 0:
            raise ValueError(f"look_hours must be > 0, got {look_hours}")
        self.tau = tau
        self.margin = margin
        self.min_exposures = min_exposures
        self.min_items = min_items
        self.item_variance_prior = item_variance_prior
        self.prior_weight = prior_weight
        self.variance_factor = variance_factor
        self.update_every = update_every
        self.look_hours = look_hours
        self._look_ms = max(1, int(look_hours * 3_600_000))
        self._windows = {w.id: w for w in context.config.windows}
        self._panels: dict[tuple[str, str], _Panel | None] = {}
        self._untested: dict[tuple[str, str], list[tuple[str, str]]] = {}
        self._tick_index = 0
        self._last_end = 0

    # -- per tick ---------------------------------------------------------------------------
    def evaluate(self, tick: Tick) -> list[Finding]:
        self._tick_index += 1
        out: list[Finding] = []
        ledger = self.context.ledger
        for platform, window_id, period in sorted(ledger.touched):
            if period != "window":
                continue
            panel = self._panel(platform, window_id)
            if panel is None:
                continue
            end = panel.window.window_period.end_ms
            if tick.end_ms < panel.next_look and tick.end_ms < end:
                panel.pending = True
                continue
            panel.pending = False
            while panel.next_look <= tick.end_ms:
                panel.next_look += self._look_ms
            panel.looks += 1
            new = self._update(panel, ledger.cells[(platform, window_id, "window")], tick)
            emit = new.tolist()
            if self._tick_index % self.update_every == 0:
                emit = sorted(set(emit) | set(np.flatnonzero(panel.tests.crossed).tolist()))
            out.extend(self._finding(panel, i) for i in emit)
        return out

    def _panel(self, platform: str, window_id: str) -> _Panel | None:
        key = (platform, window_id)
        if key in self._panels:
            return self._panels[key]
        window = self._windows[window_id]
        cfg = self.context.config
        subjects = window_subjects(cfg, window)
        base_cell = self.context.ledger.cell(platform, window_id, "baseline")
        if base_cell is None or not subjects:
            self._panels[key] = None  # no baseline seen: nothing to compare against
            self._untested[key] = subjects
            return None
        base = period_arrays(base_cell, subjects)
        comp = _components(base)
        actors = np.array([k == "actor" for k, _ in subjects])
        usable = self._usable(base) & actors
        sigma2 = pooled_item_variance(comp["v_item"][usable], comp["v_pois"][usable],
                                      comp["h_r"][usable], self.item_variance_prior,
                                      self.prior_weight)
        tests = SequentialPanel.bonferroni(len(subjects), self.context.alpha, self.tau,
                                           self.margin)
        panel = _Panel(platform, window, subjects,
                       [covering_disclosures(cfg, platform, window, s) for s in subjects],
                       base, comp, sigma2, tests, self._usable(base),
                       next_look=window.window_period.start_ms + self._look_ms)
        self._panels[key] = panel
        return panel

    def _usable(self, a: dict[str, np.ndarray]) -> np.ndarray:
        return ((a["s_r"] >= self.min_exposures) & (a["s_h"] >= self.min_exposures)
                & (a["g"] >= self.min_items) & (a["n_r"] >= 2) & (a["n_h"] >= 2))

    def _variance(self, panel: _Panel, comp: dict[str, np.ndarray]) -> np.ndarray:
        """``V_user + max(σ̂² H_r, V_item − V_pois)`` of one period (module docstring)."""
        own = np.nan_to_num(comp["v_item"] - comp["v_pois"], nan=0.0)
        return comp["v_user"] + np.maximum(panel.sigma2 * comp["h_r"], own)

    def _update(self, panel: _Panel, cell: Cell, tick: Tick) -> np.ndarray:
        self._last_end = max(self._last_end, tick.end_ms)
        cur = period_arrays(cell, panel.subjects)
        comp = _components(cur)
        ok = panel.ready_base & self._usable(cur)
        est = np.where(ok, comp["log_r"] - panel.base_c["log_r"], np.nan)
        var = np.where(ok, self.variance_factor * (self._variance(panel, comp)
                                                   + self._variance(panel, panel.base_c)),
                       np.nan)
        panel.current, panel.estimate, panel.variance = cur, est, var
        panel.ticks += 1
        snap = self._snapshot_fn(panel, tick)
        return panel.tests.update(est, var, tick.end_ms, self._tick_index, snap)

    def _snapshot_fn(self, panel: _Panel, tick: Tick) -> Any:
        def snap(i: int) -> dict[str, Any]:
            assert panel.estimate is not None and panel.variance is not None
            return {"tick_start": ms_to_datetime(tick.start_ms).isoformat(),
                    "tick_end": ms_to_datetime(tick.end_ms).isoformat(),
                    "log_effect": float(panel.estimate[i]),
                    "se": float(math.sqrt(panel.variance[i])),
                    "log_e": float(panel.tests.log_e[i])}
        return snap

    # -- output -----------------------------------------------------------------------------
    def _finding(self, panel: _Panel, i: int) -> Finding:
        tests = panel.tests
        kind_s, subject = panel.subjects[i]
        covered = panel.disclosures[i]
        direction = tests.direction[i]
        kind = "disclosed" if covered else ("amplification" if direction > 0 else "suppression")
        est = panel.estimate[i] if panel.estimate is not None else math.nan
        effect = math.exp(est) if math.isfinite(est) else None
        lo = math.exp(tests.cs_lo[i]) if math.isfinite(tests.cs_lo[i]) else 0.0
        hi = math.exp(tests.cs_hi[i]) if math.isfinite(tests.cs_hi[i]) else None
        m = tests.n
        b, c = panel.base, panel.current

        def counts(a: dict[str, np.ndarray]) -> dict[str, Any]:
            return {"exposures_ranked": int(a["s_r"][i]), "exposures_holdout": int(a["s_h"][i]),
                    "users_ranked": int(a["n_r"][i]), "users_holdout": int(a["n_h"][i]),
                    "items": int(a["g"][i])}

        base_ratio = math.exp(panel.base_c["log_r"][i])
        cur_c = _components({k: v[i:i + 1] for k, v in c.items()})
        b_days = max(panel.window.baseline_period.end_ms
                     - panel.window.baseline_period.start_ms, 1) / 86_400_000
        w_days = max(min(self._last_end, panel.window.window_period.end_ms)
                     - panel.window.window_period.start_ms, 1) / 86_400_000
        evidence: dict[str, Any] = {
            "rule": "ranked÷holdout exposure ratio in the window differs from the baseline",
            "counts": {"baseline": counts(b), "window": counts(c)},
            "items_per_day": {"baseline": float(b["g"][i] / b_days),
                              "window": float(c["g"][i] / w_days)},
            "ratio": {"baseline": base_ratio, "window": float(math.exp(cur_c["log_r"][0]))},
            "test": {
                "name": "mixture e-process on log R_window − log R_baseline "
                        "(two-way clustered: users, items)",
                "statistic_log_effect": float(est),
                "se": float(math.sqrt(panel.variance[i])) if panel.variance is not None
                else None,
                "item_variance_sigma2": panel.sigma2,
                "tau": self.tau, "margin": self.margin,
                "log_e": float(tests.log_e[i]), "log_e_max": float(tests.max_log_e[i]),
                "log_threshold": tests.log_thresh, "tests_in_window": m,
                "alpha_share": self.context.alpha,
                "ci_level": 1 - tests.alpha_cs,
                "look_hours": self.look_hours, "looks": panel.looks,
            },
            "crossed": {"tick": int(tests.crossed_tick[i]), **tests.at_cross.get(i, {})},
            "disclosures_checked": disclosure_json(
                [d for d in self.context.config.disclosures if d.platform == panel.platform]),
            "covering_disclosures": disclosure_json(covered),
        }
        n_exp = int(b["s_r"][i] + b["s_h"][i] + c["s_r"][i] + c["s_h"][i])
        return Finding.new(
            detector=self.name, kind=kind, platform=panel.platform,
            region=panel.window.jurisdiction, window_id=panel.window.id,
            subject_kind=kind_s, subject=subject, effect=effect, ci_low=lo, ci_high=hi,
            p_value=adjusted_p(float(tests.max_log_e[i]), m), n_exposures=n_exp,
            severity=severity.by_effect_bound(effect, lo, hi, kind_s, kind),
            event_time=ms_to_datetime(int(tests.crossed_ms[i])), evidence=evidence)

    def finish(self, end_ms: int) -> list[Finding]:
        """A last look for every panel with data since its last look (the stream ended
        between looks), then the final state of every active finding."""
        ledger = self.context.ledger
        for (platform, window_id), panel in self._panels.items():
            if panel is not None and panel.pending:
                panel.pending = False
                panel.looks += 1
                self._tick_index += 1
                self._update(panel, ledger.cells[(platform, window_id, "window")],
                             Tick(end_ms, end_ms))
        return [self._finding(p, i) for p in self._panels.values() if p is not None
                for i in np.flatnonzero(p.tests.crossed).tolist()]

    def detectability(self) -> list[Detectability]:
        """One row per subject of every (platform, window) with window data; ``mde`` null
        where the subject could not be tested (no baseline, or too few exposures)."""
        rows: list[Detectability] = []
        for (platform, window_id), subjects in self._untested.items():
            window = self._windows[window_id]
            rows.extend(Detectability(
                detector=self.name, platform=platform, region=window.jurisdiction,
                window_id=window_id, subject_kind=k, subject=s, mde_up=None, mde_down=None,
                n_exposures=0, flagged=False) for k, s in subjects)
        for panel in self._panels.values():
            if panel is None or panel.variance is None:
                continue
            b, c = panel.base, panel.current
            rows.extend(mde_rows(
                detector=self.name, platform=panel.platform, window=panel.window,
                subjects=panel.subjects, variance=panel.variance, tau=self.tau,
                tests=panel.tests,
                n_exposures=np.asarray(b["s_r"]) + b["s_h"] + c["s_r"] + c["s_h"]))
        return rows
