"""From a shift in ranking score to a change in exposure: the platform's score elasticity.

The score detectors (:mod:`detectors.rank_uplift`, :mod:`detectors.score_shift`) measure a
shift ``θ`` of a subject's ranking scores.  The quantity every finding reports is the
multiplicative change in *exposure*, so ``θ`` is translated with the platform's own
elasticity of exposure to score, measured on its own data::

    log(r_i / h_i) = a + β · s̄_i + e_i

over items ``i`` (``r_i``/``h_i`` = the item's ranked / holdout-arm exposures: the holdout arm
shows items by recency, so ``h_i`` measures how available the item was; ``s̄_i`` = its mean
ranked-arm score *relative to the other entries of the same slate* — minus their mean: a
ranker orders items by score differences, so a constant added to every score by a new model
moves no exposure and must not move ``s̄``). ``β = d log exposure / d score``: 1 for a softmax
ranker whose slots are rarely saturated, less when the items likely to be seen are seen
anyway, 0 when scores carry no information. Fitted without taking logs of small counts: given
its ``n_i = r_i + h_i`` exposures, ``r_i ~ Binomial(n_i, π_i)`` with ``logit π_i = a + β
s̄_i`` (Poisson arms, conditioned on their sum) — a logistic regression by iteratively
reweighted least squares, its standard error scaled by the Pearson over-dispersion (quasi-
binomial: items vary beyond their score; McCullagh & Nelder 1989, §4.5), the slope divided by
the reliability ``1 − mean(vx)/var(s̄)`` of the noisy mean scores (errors in variables; Fuller
1987, §1.1).
Then::

    effect = exp(β̂ θ̂),   CI = exp(β̂θ̂ ∓ sqrt((β̂ r)² + (θ̂ z se_β)²))

(``r`` = the half-width of ``θ``'s interval, ``z`` the interval's normal quantile: the delta
method with both errors, :meth:`Elasticity.translate`).  Scores that do not move exposure
(``β̂`` not clearly positive) cannot amplify anything: the score detectors raise no finding
then.

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
    beta: float
    se: float
    items: int
    overdispersion: float

    @property
    def usable(self) -> bool:
        return self.items >= 30 and self.beta > 2 * self.se and self.beta > 0.05

    def translate(self, theta: float, lo: float, hi: float, z: float
                  ) -> tuple[float, float, float]:
        """``(β θ, lower, upper)`` on the log-exposure scale: the interval ``[lo, hi]`` on
        ``θ`` scaled by ``β̂``, widened by ``β``'s own error (``z`` standard errors):
        ``β̂θ̂ ∓ sqrt((β̂ r)² + (θ̂ z se_β)²)`` with ``r`` the half-width on each side (delta
        method)."""
        b = self.beta
        grow = (theta * z * self.se) ** 2
        down = math.sqrt((b * (theta - lo)) ** 2 + grow)
        up = math.sqrt((b * (hi - theta)) ** 2 + grow)
        return b * theta, b * theta - down, b * theta + up


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
            new[:self.sums.shape[0]] = self.sums
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


def fit_elasticity(acc: ItemExposure, *, min_exposures: int = 10,
                   min_entries: int = 3) -> Elasticity:
    """``β`` with its standard error over items with ``≥ min_exposures`` exposures and
    ``≥ min_entries`` scored entries (module docstring)."""
    s = acc.sums[:len(acc.index)]
    r, h, n, sc, sq = (s[:, j] for j in range(5))
    use = (r + h >= min_exposures) & (n >= min_entries)
    if use.sum() < 30:
        return Elasticity(math.nan, math.inf, int(use.sum()), math.nan)
    r, h, n, sc, sq = r[use], h[use], n[use], sc[use], sq[use]
    mean = sc / n
    spread = np.maximum(sq / n - mean * mean, 0.0) * n / np.maximum(n - 1, 1)
    pooled = float(np.median(spread))
    vx = (spread * n + pooled * 5) / (n + 5) / n   # shrunk spread / entries
    trials = r + h
    x = mean - float(np.mean(mean))
    a = math.log((r.sum() + 0.5) / (h.sum() + 0.5))
    b = 0.0
    xtwx = np.eye(2)
    for _ in range(25):
        eta = np.clip(a + b * x, -30, 30)
        p = 1 / (1 + np.exp(-eta))
        w = trials * p * (1 - p) + 1e-12
        z = eta + (r - trials * p) / w
        xtwx = np.array([[w.sum(), (w * x).sum()], [(w * x).sum(), (w * x * x).sum()]])
        rhs = np.array([(w * z).sum(), (w * x * z).sum()])
        try:
            a_new, b_new = np.linalg.solve(xtwx, rhs)
        except np.linalg.LinAlgError:
            return Elasticity(math.nan, math.inf, int(use.sum()), math.nan)
        done = abs(b_new - b) < 1e-8 and abs(a_new - a) < 1e-8
        a, b = float(a_new), float(b_new)
        if done:
            break
    eta = a + b * x
    p = 1 / (1 + np.exp(-eta))
    pearson = float(((r - trials * p) ** 2 / (trials * p * (1 - p) + 1e-12)).sum())
    phi = max(1.0, pearson / max(r.size - 2, 1))
    cov = np.linalg.inv(xtwx) * phi
    var_x = float(np.var(mean))
    reliability = max(1.0 - float(np.mean(vx)) / var_x, 0.5) if var_x > 0 else 1.0
    return Elasticity(b / reliability, math.sqrt(cov[1, 1]) / reliability, int(use.sum()),
                      phi)


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
