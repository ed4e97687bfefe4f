"""From a shift in ranking score to a change in exposure: the platform's score elasticity.

The score detectors (:mod:`detectors.rank_uplift`, :mod:`detectors.score_shift`) measure a
shift ``θ`` of a subject's ranking scores.  The quantity every finding reports is the
multiplicative change in *exposure*, so ``θ`` is translated with the platform's own
elasticity of exposure to score, measured on its own data::

    log(r_i / h_i) = a + b₁ s̄_i + b₂ s̄_i² + e_i,    β(s) = b₁ + 2 b₂ s

over items ``i`` (``r_i``/``h_i`` = the item's ranked / holdout-arm exposures: the holdout arm
shows items by recency, so ``h_i`` measures how available the item was; ``s̄_i`` = its mean
ranked-arm score *relative to the other entries of the same slate* — minus their mean: a
ranker orders items by score differences, so a constant added to every score by a new model
moves no exposure and must not move ``s̄``).  ``β(s) = d log exposure / d score`` at relative
score ``s``: 1 for a softmax ranker whose slots are rarely saturated, less for items likely
to be seen anyway (hence the quadratic term: the elasticity is local), 0 when scores carry no
information.  Fitted without taking logs of small counts: given its ``n_i = r_i + h_i``
exposures, ``r_i ~ Binomial(n_i, π_i)`` with ``logit π_i`` the quadratic above (Poisson arms,
conditioned on their sum) — a logistic regression by iteratively reweighted least squares,
its covariance scaled by the Pearson over-dispersion (quasi-binomial: items vary beyond their
score; McCullagh & Nelder 1989, §4.5), the slopes divided by the reliability
``1 − mean(vx)/var(s̄)`` of the noisy mean scores (errors in variables; Fuller 1987, §1.1).
A subject whose scores moved by ``θ`` from relative level ``x₀`` changed its exposure by
``∫ β = θ β(x₀ + θ/2)`` (exact for the quadratic), less what its own items take from each
other (self-competition); :meth:`Elasticity.translate` gives the effect and an interval that
spans ``β``'s error, its variation between subjects and self-competition.  Scores that do
not move exposure (``b₁`` not clearly positive) cannot amplify anything: the score detectors
raise no finding then.

Stages: :class:`ItemExposure` accumulates per-item sums that are additive over users (a
partition adds its share; the merged stage adds them) — exposure counts per arm from the
exposure log, score sums from ranked slate entries; :func:`fit_elasticity` reads the merged
sums.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

__all__ = ["Elasticity", "ItemExposure", "fit_elasticity", "slate_relative"]


class Elasticity(NamedTuple):
    """``logit π = a + b1 (x − center) + b2 (x − center)²``: the local elasticity at relative
    score ``x`` is ``β(x) = b1 + 2 b2 (x − center)`` (``b2 < 0`` when items likely to be seen
    saturate); ``cov`` = the covariance of ``(b1, b2)``."""

    b1: float
    b2: float
    cov: tuple[float, float, float]  # var b1, cov, var b2
    center: float
    items: int
    overdispersion: float

    @property
    def beta(self) -> float:
        """The elasticity at the platform's mean relative score."""
        return self.b1

    @property
    def se(self) -> float:
        return math.sqrt(self.cov[0]) if math.isfinite(self.cov[0]) else math.inf

    @property
    def usable(self) -> bool:
        return self.items >= 30 and self.b1 > 2 * self.se and self.b1 > 0.05

    def local(self, x: float) -> tuple[float, float]:
        """``(β(x), se)`` (delta method)."""
        d = 2 * (x - self.center) if math.isfinite(x) else 0.0
        v11, v12, v22 = self.cov
        beta = self.b1 + self.b2 * d
        var = v11 + 2 * d * v12 + d * d * v22
        return beta, math.sqrt(max(var, 0.0))

    def translate(
        self,
        theta: float,
        lo: float,
        hi: float,
        z: float,
        x_mid: float,
        share: float = 0.0,
        model_error: float = 0.15,
    ) -> tuple[float, float, float]:
        """``(effect, lower, upper)`` on the log-exposure scale for a score shift ``θ`` with
        interval ``[lo, hi]``.

        ``β = β(x_mid)``, the local elasticity at the midpoint between the subject's organic
        and shifted relative scores (for the quadratic model ``∫ β(x) dx`` over the shift is
        exactly ``θ β(x_mid)``).  Three things make the exposure change differ from ``βθ``,
        and the interval spans them all, endpoint by endpoint (each map below keeps the sign,
        so the interval excludes 1 whenever ``[lo, hi]`` excludes 0):

        * ``β``'s estimation error: ``β ± z se_β``;
        * the elasticity's variation between subjects: ``β (1 ± model_error)`` (on the
          simulator a subject's own elasticity lies within ±15 % of the platform's);
        * self-competition: a subject's boosted items compete with each other for the same
          users' slots — with a share ``q`` of the slates it appears in, its exposure moves by
          ``g(u) = u − log(q eᵘ + 1 − q)`` rather than ``u = βθ`` (a party boosted as a whole
          gains less than one candidate).

        ``effect`` = the midpoint of ``u`` and ``g(u)`` at ``θ``.
        """
        b, se = self.local(x_mid)
        q = min(max(share, 0.0), 1.0)

        def g(u: float) -> float:
            return u - math.log(q * math.exp(u) + 1 - q) if q > 0 else u

        slopes = (max(b * (1 - model_error) - z * se, 0.0), b * (1 + model_error) + z * se)
        low = [f(s * lo) for s in slopes for f in (lambda u: u, g)]
        high = [f(s * hi) for s in slopes for f in (lambda u: u, g)]
        center = b * theta
        return 0.5 * (center + g(center)), min(low), max(high)


_NONE = Elasticity(math.nan, 0.0, (math.inf, 0.0, math.inf), 0.0, 0, math.nan)


@dataclass
class ItemExposure:
    """Per item: ranked and holdout exposures, and ``n``/``Σ score``/``Σ score²`` over its
    ranked slate entries (one accumulator per platform)."""

    index: dict[str, int] = field(default_factory=dict)
    sums: np.ndarray = field(default_factory=lambda: np.zeros((64, 5)))

    def _rows(self, items: list[str]) -> np.ndarray:
        idx = self.index
        rows = np.empty(len(items), dtype=np.int64)
        for j, it in enumerate(items):
            r = idx.get(it)
            if r is None:
                r = idx[it] = len(idx)
            rows[j] = r
        if len(idx) > self.sums.shape[0]:
            new = np.zeros((max(len(idx), 2 * self.sums.shape[0]), 5))
            new[: self.sums.shape[0]] = self.sums
            self.sums = new
        return rows

    def add_exposures(self, items: list[str], holdout: np.ndarray) -> None:
        """Count exposures (``holdout`` = arm flag per exposure)."""
        if not items:
            return
        rows = self._rows(items)
        np.add.at(self.sums[:, 0], rows[~holdout], 1.0)
        np.add.at(self.sums[:, 1], rows[holdout], 1.0)

    def add_scores(self, items: list[str], scores: np.ndarray) -> None:
        """Ranked-arm slate entries' scores."""
        if not items:
            return
        rows = self._rows(items)
        ok = np.isfinite(scores)
        np.add.at(self.sums[:, 2], rows[ok], 1.0)
        np.add.at(self.sums[:, 3], rows[ok], scores[ok])
        np.add.at(self.sums[:, 4], rows[ok], scores[ok] ** 2)


def fit_elasticity(
    acc: ItemExposure, *, min_exposures: int = 10, min_entries: int = 3
) -> Elasticity:
    """``β`` with its standard error over items with ``≥ min_exposures`` exposures and
    ``≥ min_entries`` scored entries (module docstring)."""
    s = acc.sums[: len(acc.index)]
    r, h, n, sc, sq = (s[:, j] for j in range(5))
    use = (r + h >= min_exposures) & (n >= min_entries)
    if use.sum() < 30:
        return _NONE._replace(items=int(use.sum()))
    r, h, n, sc, sq = r[use], h[use], n[use], sc[use], sq[use]
    mean = sc / n
    spread = np.maximum(sq / n - mean * mean, 0.0) * n / np.maximum(n - 1, 1)
    pooled = float(np.median(spread))
    vx = (spread * n + pooled * 5) / (n + 5) / n  # shrunk spread / entries
    trials = r + h
    center = float(np.mean(mean))
    x = mean - center
    design = np.column_stack([np.ones_like(x), x, x * x])
    coef = np.array([math.log((r.sum() + 0.5) / (h.sum() + 0.5)), 0.0, 0.0])
    xtwx = np.eye(3)
    for _ in range(30):
        eta = np.clip(design @ coef, -30, 30)
        p = 1 / (1 + np.exp(-eta))
        w = trials * p * (1 - p) + 1e-12
        zz = eta + (r - trials * p) / w
        xtwx = design.T @ (design * w[:, None])
        try:
            new = np.linalg.solve(xtwx, design.T @ (w * zz))
        except np.linalg.LinAlgError:
            return _NONE
        done = bool(np.max(np.abs(new - coef)) < 1e-9)
        coef = new
        if done:
            break
    p = 1 / (1 + np.exp(-np.clip(design @ coef, -30, 30)))
    pearson = float(((r - trials * p) ** 2 / (trials * p * (1 - p) + 1e-12)).sum())
    phi = max(1.0, pearson / max(r.size - 3, 1))
    cov = np.linalg.inv(xtwx) * phi
    var_x = float(np.var(mean))
    rel = max(1.0 - float(np.mean(vx)) / var_x, 0.5) if var_x > 0 else 1.0
    return Elasticity(
        float(coef[1]) / rel,
        float(coef[2]) / rel**2,
        (float(cov[1, 1]) / rel**2, float(cov[1, 2]) / rel**3, float(cov[2, 2]) / rel**4),
        center,
        int(use.sum()),
        phi,
    )


def slate_relative(d: Any) -> np.ndarray:
    """Each entry's score minus the mean score of the *other* entries of its slate
    (:class:`SlateEntries`; NaN in a slate of one): raising one item's score by ``δ`` raises
    this by ``δ``, whatever the slate's size; a constant added to every score cancels."""
    if d.n == 0:
        return np.zeros(0)
    ok = np.isfinite(d.score)
    size = int(d.slate.max()) + 1
    total = np.bincount(d.slate[ok], weights=d.score[ok], minlength=size)
    count = np.bincount(d.slate[ok], minlength=size).astype(float)
    others = count[d.slate] - 1
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_others = (total[d.slate] - d.score) / others
    return np.where(others > 0, d.score - mean_others, np.nan)
