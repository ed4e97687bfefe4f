"""Always-valid sequential inference for asymptotically normal effect estimates.

Every statistical detector of amplimon reduces its evidence on one subject (an actor or a
group, on one platform, in one window) at tick ``t`` to an estimate ``θ̂_t`` of a log effect
and its variance ``V_t``.  This module turns that sequence into

* an **e-process** ``E_t`` (:func:`mixture_log_e`) that may be looked at after every tick;
* the **multiplicity-adjusted always-valid p-value** ``p = min(1, m / max_{s≤t} E_s)``;
* an **always-valid confidence sequence** for ``θ`` (:func:`cs_radius`);
* the **minimum detectable effect** given the final variance (:func:`mde_log`).

Model
-----
With information ``I_t = 1/V_t`` the score ``S_t = θ̂_t · I_t`` of an estimator of a
cumulative quantity (a mean or ratio over all data so far) is asymptotically Brownian motion
with drift ``θ`` in information time: ``S_t ≈ θ I_t + B(I_t)`` (the canonical joint
distribution, Jennison & Turnbull 2000, §3.1; it holds for the window-vs-baseline log ratio too:
``Cov(θ̂_s, θ̂_t) = Var(θ̂_t)`` for ``s < t``).  For ``λ ≥ 0``,
``exp(λ (S_t − δ I_t) − λ² I_t / 2)`` is then a martingale when ``θ = δ`` and a
supermartingale when ``θ ≤ δ``.

E-process
---------
Mixing ``λ`` over a half-normal prior with scale ``τ`` gives, with ``x = θ̂ − δ``::

    E⁺_t = 2 · sqrt(V/(V+τ²)) · exp(τ² x² / (2 V (V+τ²))) · Φ(τ x / sqrt(V (V+τ²)))

an e-process for ``H0⁺: θ ≤ δ``; ``E⁻`` is the mirror image for ``H0⁻: θ ≥ −δ``
(``x = −θ̂ − δ``).  The reported ``E = (E⁺ + E⁻)/2`` is an e-process for
``H0: |θ| ≤ δ`` (an average of supermartingales); the larger half gives the direction
(amplification / suppression).  ``δ ≥ 0`` is a *practical-significance margin* (the null is
"no change larger than ``exp(δ)``"), which also absorbs small biases of the asymptotic
approximation.  With ``δ = 0`` this is Johari et al.'s mixture SPRT made one-sided per
direction (Johari, Koomen, Pekelis & Walsh 2017, "Peeking at A/B tests", KDD, §4;
Johari et al. 2022, Operations Research 70(3)).

Guarantee
---------
Ville's inequality: ``P_H0(sup_t E_t ≥ 1/α) ≤ α`` — under continuous monitoring, looks at
every tick, any stopping rule.  The validity is *asymptotic*: it holds as the information
grows, with the normal approximation of ``θ̂`` and a consistent variance (Waudby-Smith,
Arbour, Sinha, Kennedy & Ramdas 2021, "Time-uniform central limit theory and asymptotic
confidence sequences", arXiv:2103.06476, Thm 2.2).  Detectors therefore require minimum
counts before they test, and the calibration tests check the finite-sample error rate.

Multiplicity
------------
A detector with budget share ``α_d`` (``detection.alpha`` split over the statistical detectors
by their registry ``budget_weight``: Bonferroni across detectors) runs ``m`` tests in a
(platform, window): ``m`` = the window's monitored subjects (registered actors + groups), known
from the configuration before any data arrive — plus one test of the platform-wide change where
a detector has one (``platform_change``), and, for the scopes of :mod:`detectors._scopes`, a
further ``m`` per scope inside the scopes' own share of ``α_d``
(:meth:`SequentialPanel.bonferroni` with ``alpha_family``). Bonferroni: subject ``i`` is flagged
when ``E_i,t ≥ m/α_d``, so ``P(any false flag of the detector on that platform in that window) ≤
α_d``, and over all detectors ≤ ``detection.alpha``. Which platforms will send data is not known
in advance, so the guarantee is stated **per platform and window**: each platform is audited at
level ``alpha`` in each window (a commission watching ``K`` platforms has a family-wise rate ≤
``K·alpha`` across them, and can divide ``alpha`` by ``K`` in the config). The reported ``p =
min(1, m / max_s E_s)`` is the Bonferroni-adjusted always-valid p-value: ``p ≤ α_d`` exactly
when the subject is flagged. (e-BH, Wang & Ramdas 2022, "False discovery rate control with
e-values", JRSS-B 84(3), would control the false discovery rate instead; the commission's
criterion — "any false finding in a window" — is the family-wise error, hence Bonferroni.)
Central guard against tiny variances ------------------------------------ Every panel passes its
variances through :func:`guard_variance` before they weigh any evidence: ``V ← max(V, floor,
MIN_VARIANCE)``. ``floor`` is the detector's model-based least variance (the pooled between-item
/ Poisson model of its statistic: a sandwich estimate from few clusters can be arbitrarily
small, the model cannot); ``MIN_VARIANCE = (log 1.001)²`` says no log effect is ever known to
better than ±0.1 %. Each test counts the looks at which the guard raised its variance
(``SequentialPanel.guarded``; ``evidence.test.guarded_looks``).

Confidence sequence
-------------------
The two-sided normal-mixture boundary (Howard, Ramdas, McAuliffe & Sekhon 2021, "Time-uniform,
nonparametric, nonasymptotic confidence sequences", Ann. Statist. 49(2), eq. (14))::

    |θ̂_t − θ| ≤ r_t = sqrt( V (V+τ²)/τ² · (2 log(1/α) + log((V+τ²)/V)) )

holds for all ``t`` simultaneously with probability ≥ ``1 − α``, so the interval at the time
of reporting is valid whenever it is read (the running intersection would be narrower, but
turns empty when the estimand drifts over the window, e.g. a group whose members' mix changes).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special

__all__ = [
    "Reported",
    "SequentialPanel",
    "TestState",
    "agrees",
    "cs_by_inversion",
    "crossing_evidence",
    "mde_rows",
    "sequential_finding",
    "test_evidence",
    "MIN_VARIANCE",
    "adjusted_p",
    "guard_variance",
    "average_log_e",
    "cs_radius",
    "log_threshold",
    "mde_log",
    "mixture_log_e",
    "one_sided_log_e",
]

_LOG2 = math.log(2.0)
Floats = NDArray[np.float64]


Tau = float | Floats
# (log 1.001)²: no log effect is known to better than ±0.1 % (the central guard's last floor)
MIN_VARIANCE = math.log(1.001) ** 2


def guard_variance(variance: ArrayLike, floor: ArrayLike | None = None) -> Floats:
    """The central guard: ``max(V, floor, MIN_VARIANCE)`` where ``V`` is finite (non-finite
    entries stay as they are: no test).  ``floor`` = the detector's model-based least
    variance of each statistic (module docstring)."""
    v = np.atleast_1d(np.asarray(variance, dtype=float))
    low = np.full(v.shape, MIN_VARIANCE)
    if floor is not None:
        f = np.broadcast_to(np.asarray(floor, dtype=float), v.shape)
        low = np.where(np.isfinite(f), np.maximum(low, f), low)
    return np.where(np.isfinite(v), np.maximum(v, low), v)


def _check_tau(tau: ArrayLike) -> Floats:
    t = np.asarray(tau, dtype=float)
    if not np.all(t > 0):
        raise ValueError(f"tau must be > 0, got {t.tolist()}")
    return t


def one_sided_log_e(x: ArrayLike, variance: ArrayLike, tau: ArrayLike) -> Floats:
    """``log E⁺`` of the half-normal mixture for ``H0: θ ≤ δ``, with ``x = θ̂ − δ``.

    ``log E⁺ = log 2 + ½ log(V/(V+τ²)) + τ² x²/(2V(V+τ²)) + log Φ(τ x/sqrt(V(V+τ²)))``.
    Expects finite ``V > 0``; :func:`mixture_log_e` masks the rest.  ``tau`` may be one value
    per test (it must be fixed before the data it weighs: chosen from the baseline).
    """
    tau = _check_tau(tau)
    x = np.asarray(x, dtype=float)
    v = np.asarray(variance, dtype=float)
    t2 = tau * tau
    vv = v * (v + t2)
    return (
        _LOG2
        + 0.5 * np.log(v / (v + t2))
        + t2 * x * x / (2 * vv)
        + special.log_ndtr(tau * x / np.sqrt(vv))
    )


def mixture_log_e(
    estimate: ArrayLike, variance: ArrayLike, tau: ArrayLike, margin: float = 0.0
) -> tuple[Floats, Floats]:
    """``(log E, direction)`` of the two-sided e-process ``E = (E⁺ + E⁻)/2``.

    ``estimate`` = ``θ̂`` (log effect), ``variance`` = ``V``; ``margin`` = ``δ ≥ 0``.
    ``direction`` is ``+1`` where ``E⁺ ≥ E⁻`` (amplification), ``−1`` otherwise.  Entries
    with a non-finite estimate or a non-positive / non-finite variance carry no evidence:
    ``log E = 0``.
    """
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    est = np.atleast_1d(np.asarray(estimate, dtype=float))
    var = np.atleast_1d(np.asarray(variance, dtype=float))
    ok = np.isfinite(est) & np.isfinite(var) & (var > 0)
    e = np.where(ok, est, 0.0)
    v = np.where(ok, var, 1.0)
    tau = np.broadcast_to(_check_tau(tau), e.shape) if np.ndim(tau) else tau
    up = one_sided_log_e(e - margin, v, tau)
    down = one_sided_log_e(-e - margin, v, tau)
    log_e = np.logaddexp(up, down) - _LOG2
    return np.where(ok, log_e, 0.0), np.where(up >= down, 1.0, -1.0)


def average_log_e(*parts: tuple[Floats, Floats]) -> tuple[Floats, Floats]:
    """``log`` of the average of several e-processes ``(log E_k, direction_k)``, and the
    direction of the largest.  An average of e-processes for the same null is an e-process
    (Vovk & Wang 2021, "E-values: calibration, combination and applications", §4), so several
    statistics of one subject can be combined without extra multiplicity correction."""
    logs = np.vstack([p[0] for p in parts])
    dirs = np.vstack([p[1] for p in parts])
    top = np.argmax(logs, axis=0)
    combined = np.logaddexp.reduce(logs, axis=0) - math.log(len(parts))
    return combined, dirs[top, np.arange(logs.shape[1])]


def cs_radius(variance: ArrayLike, tau: ArrayLike, alpha: float) -> Floats:
    """Radius ``r`` of the two-sided normal-mixture confidence sequence ``θ̂ ± r`` at level
    ``1 − α`` (see the module docstring); ``inf`` where the variance is not finite."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    v = np.asarray(variance, dtype=float)
    tau = np.asarray(tau, dtype=float)
    t2 = tau * tau
    with np.errstate(invalid="ignore", divide="ignore"):
        r2 = v * (v + t2) / t2 * (2 * math.log(1 / alpha) + np.log((v + t2) / v))
        r = np.sqrt(r2)
    return np.where(np.isfinite(v) & (v > 0), r, np.inf)


def log_threshold(m: int, alpha: float) -> float:
    """``log(m/α)``: the Bonferroni e-value threshold for ``m`` tests at level ``α``."""
    if not alpha > 0:
        return math.inf
    return math.log(max(m, 1) / alpha)


def adjusted_p(max_log_e: float, m: int) -> float:
    """``min(1, m / max_t E_t)``, the Bonferroni-adjusted always-valid p-value."""
    if not math.isfinite(max_log_e):
        return 1.0 if max_log_e < 0 else 0.0
    return float(min(1.0, max(m, 1) * math.exp(-max_log_e)))


def mde_log(
    variance: ArrayLike,
    tau: ArrayLike,
    margin: float,
    log_thresh: float,
    *,
    also: tuple[ArrayLike, ...] = (),
    iterations: int = 60,
) -> Floats:
    """Smallest ``θ ≥ 0`` with ``log E(θ̂ = θ, V) ≥ log_thresh`` (vectorised bisection).

    Since ``E`` is symmetric in ``θ̂``, the minimum detectable multiplicative effects are
    ``exp(θ)`` upwards and ``exp(−θ)`` downwards.  ``inf`` where ``V`` is not finite.  With
    ``also`` (variances of further components), ``E`` is the average of the components'
    e-processes, each seeing the same effect ``θ`` (:func:`average_log_e`); a component with
    no information counts as ``E = 1``.
    """
    vs = [np.atleast_1d(np.asarray(x, dtype=float)) for x in (variance, *also)]
    oks = [np.isfinite(v) & (v > 0) for v in vs]
    ok = np.logical_or.reduce(oks)
    lo = np.full(vs[0].shape, margin)
    best = np.min([np.where(o, v, np.inf) for v, o in zip(vs, oks, strict=True)], axis=0)
    tau = np.broadcast_to(np.asarray(tau, dtype=float), vs[0].shape)
    hi = margin + 1.0 + 50.0 * np.sqrt(np.where(ok, best, 1.0) + tau * tau)
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        parts = [
            mixture_log_e(np.where(o, mid, np.nan), v, tau, margin)
            for v, o in zip(vs, oks, strict=True)
        ]
        le = parts[0][0] if len(parts) == 1 else average_log_e(*parts)[0]
        crossed = le >= log_thresh
        hi = np.where(crossed, mid, hi)
        lo = np.where(crossed, lo, mid)
    return np.where(ok, hi, np.inf)


@dataclass(slots=True)
class SequentialPanel:
    """State of ``n`` always-valid tests run side by side (one per subject of a window).

    Call :meth:`update` once per tick with the current estimates and variances; it keeps,
    per test, the running maximum of ``log E``, the tick at which it first reached the
    threshold, the direction at that moment, and the latest interval of the confidence
    sequence at level ``1 − alpha_cs`` (log-effect scale).  ``alpha`` is the panel's share of
    the detector's budget (``alpha_family``); :meth:`p_value` is adjusted to the family:
    ``p ≤ alpha_family`` exactly when the test crossed.
    """

    n: int
    tau: Tau
    margin: float
    log_thresh: float
    alpha_cs: float
    alpha: float = 0.0
    alpha_family: float = 0.0
    max_log_e: Floats = field(init=False)
    log_e: Floats = field(init=False)
    crossed_ms: NDArray[np.int64] = field(init=False)
    crossed_tick: NDArray[np.int64] = field(init=False)
    direction: Floats = field(init=False)
    cs_lo: Floats = field(init=False)
    cs_hi: Floats = field(init=False)
    at_cross: dict[int, dict[str, Any]] = field(init=False)
    guarded: NDArray[np.int64] = field(init=False)

    @classmethod
    def bonferroni(
        cls, n: int, alpha: float, tau: Tau, margin: float, alpha_family: float | None = None
    ) -> SequentialPanel:
        """``n`` tests sharing ``alpha``: threshold ``log(n / alpha)``
        (:func:`log_threshold`), confidence sequences at ``1 − min(alpha / n, 0.5)``
        (95 % when ``alpha`` is 0: intervals still shown, nothing flagged); ``margin`` is
        the multiplicative effect margin (its log is used); ``alpha_family`` (default
        ``alpha``) the detector's budget the panel's ``alpha`` is a share of."""
        return cls(
            n=n,
            tau=tau,
            margin=math.log(margin),
            log_thresh=log_threshold(n, alpha),
            alpha_cs=min(alpha / n, 0.5) if alpha > 0 else 0.05,
            alpha=alpha,
            alpha_family=alpha if alpha_family is None else alpha_family,
        )

    def p_value(self, i: int) -> float:
        """``min(1, (alpha_family / alpha) · n / max_t E_t)``: the always-valid p-value of
        test ``i`` adjusted for every test of the detector on the (platform, window)."""
        factor = self.alpha_family / self.alpha if self.alpha > 0 else 1.0
        return min(1.0, factor * adjusted_p(float(self.max_log_e[i]), self.n))

    def __post_init__(self) -> None:
        self.max_log_e = np.full(self.n, -np.inf)
        self.log_e = np.zeros(self.n)
        self.crossed_ms = np.full(self.n, -1, dtype=np.int64)
        self.crossed_tick = np.full(self.n, -1, dtype=np.int64)
        self.direction = np.zeros(self.n)
        self.cs_lo = np.full(self.n, -np.inf)
        self.cs_hi = np.full(self.n, np.inf)
        self.at_cross = {}
        self.guarded = np.zeros(self.n, dtype=np.int64)

    def update(
        self,
        estimate: Floats,
        variance: Floats,
        end_ms: int,
        tick_index: int,
        snapshot: Callable[[int], dict[str, Any]] | None = None,
        log_e: Floats | None = None,
        direction: Floats | None = None,
        floor: ArrayLike | None = None,
    ) -> NDArray[np.intp]:
        """Fold in one tick; returns the indices that crossed the threshold at this tick.

        ``variance`` passes the central guard first (:func:`guard_variance` with the
        detector's model ``floor``); ``log_e``/``direction`` may be given precomputed (e.g.
        an average of several e-processes, :func:`average_log_e`, whose parts are guarded by
        the caller); the confidence sequence always follows ``estimate``/``variance``."""
        raw = np.atleast_1d(np.asarray(variance, dtype=float))
        variance = guard_variance(raw, floor)
        self.guarded += (np.isfinite(raw) & (variance > raw)).astype(np.int64)
        if log_e is None or direction is None:
            log_e, direction = mixture_log_e(estimate, variance, self.tau, self.margin)
        self.log_e = log_e
        self.max_log_e = np.maximum(self.max_log_e, log_e)
        r = cs_radius(variance, self.tau, self.alpha_cs)
        ok = np.isfinite(estimate) & np.isfinite(r)
        # the current interval of the confidence sequence (valid at every t simultaneously);
        # not the running intersection, which turns empty when the estimand drifts (a group
        # whose mix of boosted and unboosted members changes over time)
        self.cs_lo = np.where(ok, estimate - r, self.cs_lo)
        self.cs_hi = np.where(ok, estimate + r, self.cs_hi)
        new = np.flatnonzero((self.crossed_ms < 0) & (log_e >= self.log_thresh))
        if new.size:
            self.crossed_ms[new] = end_ms
            self.crossed_tick[new] = tick_index
            self.direction[new] = direction[new]
            if snapshot is not None:
                for i in new.tolist():
                    self.at_cross[i] = snapshot(i)
        return new

    @property
    def crossed(self) -> NDArray[np.bool_]:
        return self.crossed_ms >= 0


# -- what every sequential detector reports (findings, evidence, detectability) -------------
def test_evidence(tests: Any, i: int, alpha_share: float) -> dict[str, Any]:
    """The e-process part of a finding's ``evidence.test`` for subject ``i``."""
    return {
        "log_e": float(tests.log_e[i]),
        "log_e_max": float(tests.max_log_e[i]),
        "log_threshold": tests.log_thresh,
        "tests_in_window": tests.n,
        "alpha_share": alpha_share,
        "ci_level": 1 - tests.alpha_cs,
        "guarded_looks": int(tests.guarded[i]),
    }


def crossing_evidence(tests: Any, i: int) -> dict[str, Any]:
    """``evidence.crossed``: the tick at which subject ``i`` crossed, and what was known then."""
    return {"tick": int(tests.crossed_tick[i]), **tests.at_cross.get(i, {})}


def sequential_finding(
    *,
    detector: str,
    kind: str,
    platform: str,
    window: Any,
    subject: tuple[str, str],
    effect: float | None,
    ci: tuple[Any, Any],
    n_exposures: int,
    tests: Any,
    i: int,
    evidence: dict[str, Any],
    m: int | None = None,
) -> Any:
    """The :class:`~monitor.core.records.Finding` of subject ``i``: always-valid adjusted p-value
    ``min(1, m / max_t E_t)``, severity from the confidence bound, event time of the crossing."""
    import detectors.severity as severity
    from monitor.core.records import Finding, ms_to_datetime

    kind_s, name = subject
    lo, hi = ci
    return Finding.new(
        detector=detector,
        kind=kind,
        platform=platform,
        region=window.jurisdiction,
        window_id=window.id,
        subject_kind=kind_s,
        subject=name,
        effect=effect,
        ci_low=lo,
        ci_high=hi,
        p_value=(tests.p_value(i) if m is None else adjusted_p(float(tests.max_log_e[i]), m)),
        n_exposures=n_exposures,
        severity=severity.by_effect_bound(effect, lo, hi, kind_s, kind),
        event_time=ms_to_datetime(int(tests.crossed_ms[i])),
        evidence=evidence,
    )


def mde_rows(
    *,
    detector: str,
    platform: str,
    window: Any,
    subjects: list[tuple[str, str]],
    variance: ArrayLike,
    tau: ArrayLike,
    tests: Any,
    n_exposures: ArrayLike,
) -> list[Any]:
    """One :class:`~monitor.core.records.Detectability` row per subject: ``mde_up = exp(θ*)`` with
    ``θ*`` from :func:`mde_log` at the final variance, ``mde_down = 1 / mde_up``."""
    from monitor.core.records import Detectability

    k = len(subjects)
    tau = np.asarray(tau, dtype=float)
    tau = tau[:k] if tau.ndim else np.full(k, float(tau))
    mde = mde_log(np.asarray(variance, dtype=float)[:k], tau, tests.margin, tests.log_thresh)
    counts = np.asarray(n_exposures)
    rows = []
    for i, (kind_s, name) in enumerate(subjects):
        up = math.exp(mde[i]) if math.isfinite(mde[i]) else None
        rows.append(
            Detectability(
                detector=detector,
                platform=platform,
                region=window.jurisdiction,
                window_id=window.id,
                subject_kind=kind_s,
                subject=name,
                mde_up=up,
                mde_down=1 / up if up else None,
                n_exposures=int(counts[i]),
                flagged=bool(tests.crossed[i]),
            )
        )
    return rows


# -- intervals that agree with the test, and findings that agree with themselves -------------
def cs_by_inversion(
    estimate: ArrayLike, variance: ArrayLike, tau: ArrayLike, margin: float, log_thresh: float
) -> tuple[Floats, Floats]:
    """The confidence sequence obtained by inverting the panel's own test:
    ``{θ₀ : log E_t(θ̂ − θ₀) < log_thresh}`` = ``θ̂ ± r`` with ``r`` = :func:`mde_log` of the
    current variance.  Each ``θ₀`` has its own e-process, so by Ville's inequality the
    interval covers the true ``θ`` at every look simultaneously with probability
    ``≥ 1 − α_test`` (``log_thresh = log(1/α_test)``; Howard et al. 2021, §3: confidence
    sequences as inverted sequential tests).  Unlike a separately built interval, it excludes
    0 exactly when the test has crossed at this look: a finding's direction, effect and CI
    can never disagree at its crossing."""
    est = np.asarray(estimate, dtype=float)
    r = mde_log(variance, tau, margin, log_thresh)
    return est - r, est + r


def agrees(direction: float, log_effect: float, lo: float, hi: float) -> bool:
    """Does an (estimate, interval) on the log scale lie on the ``direction`` side of 0?"""
    if not (math.isfinite(log_effect) and math.isfinite(lo) and math.isfinite(hi)):
        return False
    return (log_effect > 0 and lo > 0) if direction > 0 else (log_effect < 0 and hi < 0)


@dataclass(slots=True)
class Reported:
    """What a finding reports: the latest (log effect, interval) that agreed with its
    direction, when it was computed, and the onset it was measured from."""

    log_effect: float
    lo: float
    hi: float
    at_ms: int
    onset_ms: int


@dataclass(frozen=True, slots=True)
class TestState:
    """The running maxima of one panel's e-processes, for calibration studies: ``null[i]``
    is False where the detector itself knows the null is not the question (a subject covered
    by a disclosure, whose change is reported as ``disclosed``)."""

    detector: str
    platform: str
    window_id: str
    scope: str
    subjects: tuple[str, ...]
    max_log_e: Floats
    log_threshold: float
    null: NDArray[np.bool_]
