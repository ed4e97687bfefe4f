"""The sequential sample-ratio-mismatch e-process (the statistics of the holdout checks)."""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special

__all__ = ["beta_prior", "srm_log_e"]

Floats = NDArray[np.float64]


def beta_prior(share: float, relative_sd: float) -> tuple[float, float]:
    """Beta(a, b) with mean ``share`` and standard deviation ``relative_sd · share``."""
    var = (relative_sd * share) ** 2
    c = max(share * (1 - share) / var - 1, 2.0)
    return share * c, (1 - share) * c


def _log_i(x: float, a: ArrayLike, b: ArrayLike, upper: bool) -> Floats:
    v = special.betaincc(a, b, x) if upper else special.betainc(a, b, x)
    with np.errstate(divide="ignore"):
        return np.log(np.asarray(v, dtype=float))


def srm_log_e(k: ArrayLike, n: ArrayLike, lo: float, hi: float, a: float, b: float) -> Floats:
    """Log e-value against ``H0: lo ≤ p ≤ hi`` for ``k`` holdout users of ``n``.

    The mixture of :mod:`detectors.integrity` (module docstring, "Holdout share"): ``(a, b)``
    = the Beta prior (:func:`beta_prior`); each half of the mixture uses the prior truncated
    to its side of the null interval.  Vectorised over ``k`` and ``n``.
    """
    if not 0 < lo <= hi < 1:
        raise ValueError(f"need 0 < lo <= hi < 1, got {lo}, {hi}")
    k, n = np.asarray(k, dtype=float), np.asarray(n, dtype=float)
    ak, bk = a + k, b + n - k
    post = special.betaln(ak, bk) - special.betaln(a, b)
    low = (
        post
        + _log_i(lo, ak, bk, False)
        - _log_i(lo, a, b, False)
        - k * math.log(lo)
        - (n - k) * math.log1p(-lo)
    )
    high = (
        post
        + _log_i(hi, ak, bk, True)
        - _log_i(hi, a, b, True)
        - k * math.log(hi)
        - (n - k) * math.log1p(-hi)
    )
    out = np.logaddexp(low, high) - math.log(2)
    return np.where(n > 0, out, 0.0)
