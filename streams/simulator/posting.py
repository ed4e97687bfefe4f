"""When things happen: items posted by accounts and sessions opened by users.

Both are inhomogeneous Poisson processes with a daily cycle, drawn by thinning:
intensity ``λ_o(t) = rate_o · (1 + a · cos(2π (h(t) - peak) / 24)) · s_o(t)`` where ``h`` is
the UTC hour and ``s_o`` the product of active posting-surge multipliers of owner ``o``.
"""

from __future__ import annotations

import dataclasses
from typing import Final

import numpy as np

from .params import SimParams
from .population import Accounts, stream
from .timeline import Timeline

__all__ = ["Items", "Sessions", "diurnal_poisson", "draw_items", "draw_sessions"]

_MS_PER_DAY: Final = 86_400_000
_MS_PER_HOUR: Final = 3_600_000
_MIN_BUCKET_MS: Final = 60_000
_MAX_GRID_CELLS: Final = 4_000_000

Surge = tuple[np.ndarray, float, int, int]


def diurnal_poisson(
    rng: np.random.Generator,
    rates_per_day: np.ndarray,
    t0: int,
    t1: int,
    amplitude: float,
    peak_hour: float,
    surges: list[Surge] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Event times of one diurnal Poisson process per owner, by thinning.

    Args:
        rng: Random stream.
        rates_per_day: Mean events per day of each owner (before surges).
        t0, t1: Interval ``[t0, t1)`` in epoch ms.
        amplitude: Relative amplitude ``a`` of the daily cycle (0 = flat).
        peak_hour: UTC hour of the cycle's maximum.
        surges: ``(owner indices, multiplier, start_ms, end_ms)``: the owners' intensity is
            multiplied during ``[start_ms, end_ms)``.

    Returns:
        ``(owner, t_ms)`` sorted by time.
    """
    surges = surges or []
    bound = np.ones(rates_per_day.size)
    for owners, mult, _, _ in surges:
        bound[owners] *= max(mult, 1.0)
    lam = rates_per_day * (t1 - t0) / _MS_PER_DAY * (1 + amplitude) * bound
    counts = rng.poisson(lam)
    owner = np.repeat(np.arange(rates_per_day.size), counts)
    t = t0 + np.floor(rng.random(owner.size) * (t1 - t0)).astype(np.int64)
    hour = (t % _MS_PER_DAY) / _MS_PER_HOUR
    accept = (1 + amplitude * np.cos(2 * np.pi * (hour - peak_hour) / 24)) / (1 + amplitude)
    factor = np.ones(owner.size)
    for owners, mult, start, end in surges:
        hit = np.isin(owner, owners) & (t >= start) & (t < end)
        factor[hit] *= mult
    accept *= factor / bound[owner]
    keep = rng.random(owner.size) < accept
    owner, t = owner[keep], t[keep]
    order = np.argsort(t, kind="stable")
    return owner[order], t[order]


@dataclasses.dataclass(frozen=True)
class Items:
    """Items of one platform in posting-time order.

    Attributes:
        ids: Item ids (``chirp-it-0000001``).
        actor: Publishing account index.
        t_ms: Posting time.
        log_quality: Latent log-quality: account mean ``N(0, account_quality_sd)`` plus
            ``N(0, quality_sd)`` per item (quality is lognormal), or a Student-t draw with
            ``quality_df`` degrees of freedom and the same standard deviation.
        adjustment: Legitimate per-item score adjustment ``N(0, item_adjustment_sd)``.
        by_actor: Item indices sorted by (actor, time), for pool look-ups.
        rel: Posting time minus ``t0``, in ``by_actor`` order.
        t0: Reference time.
        grid: ``grid[a, b]`` = first position in ``by_actor`` of actor ``a``'s items posted at
            or after ``t0 + b · bucket_ms`` (a bucketed index: exact look-ups scan at most the
            few items inside one bucket, ~3× faster than a binary search per query).
        bucket_ms: Bucket width of ``grid``.
    """

    ids: np.ndarray
    actor: np.ndarray
    t_ms: np.ndarray
    log_quality: np.ndarray
    adjustment: np.ndarray
    by_actor: np.ndarray
    rel: np.ndarray
    t0: int
    grid: np.ndarray
    bucket_ms: int

    def position(self, actor: np.ndarray, t_ms: np.ndarray) -> np.ndarray:
        """Per query, the first position in ``by_actor`` of ``actor``'s items posted at or
        after ``t_ms`` (``t0 <= t_ms`` and within the simulated span)."""
        q = t_ms - self.t0
        b = q // self.bucket_ms
        pos = self.grid[actor, b].astype(np.int64)
        stop = self.grid[actor, b + 1]
        todo = np.flatnonzero(pos < stop)
        while todo.size:
            todo = todo[self.rel[pos[todo]] < q[todo]]
            pos[todo] += 1
            todo = todo[pos[todo] < stop[todo]]
        return pos


def draw_items(
    params: SimParams, accounts: Accounts, timeline: Timeline, platform: int, name: str
) -> Items:
    """Draw every account's items from the warm-up start to the end of the run."""
    rng = stream(params.seed, 3, platform)
    kinds = np.array(accounts.kinds)
    base = np.array([params.rate(k) for k in kinds])
    sd = params.rate_sd
    rates = base * np.exp(rng.normal(-sd * sd / 2, sd, accounts.n))
    mean_q = rng.normal(0.0, params.account_quality_sd, accounts.n)
    surges: list[Surge] = [
        (iv.members, iv.spec.multiplier, iv.interval.start_ms, iv.interval.end_ms)
        for iv in timeline.interventions
        if iv.spec.kind == "posting_surge" and iv.spec.platform == name
    ]
    actor, t = diurnal_poisson(
        rng,
        rates,
        timeline.warmup_ms,
        timeline.end_ms,
        params.diurnal_amplitude,
        params.diurnal_peak_hour,
        surges,
    )
    if params.quality_df:
        df = params.quality_df
        spread = rng.standard_t(df, actor.size) * params.quality_sd * np.sqrt((df - 2) / df)
    else:
        spread = rng.normal(0.0, params.quality_sd, actor.size)
    log_q = mean_q[actor] + spread
    adjustment = (
        stream(params.seed, 10, platform).normal(0.0, params.item_adjustment_sd, actor.size)
        if params.item_adjustment_sd
        else np.zeros(actor.size)
    )
    ids = np.array([f"{name}-it-{i:07d}" for i in range(1, actor.size + 1)], dtype=object)
    t0 = timeline.warmup_ms
    key = (actor.astype(np.int64) << 40) + (t - t0)
    by_actor = np.argsort(key, kind="stable")
    span = timeline.end_ms - t0
    bucket = max(_MIN_BUCKET_MS, -(-span * accounts.n // _MAX_GRID_CELLS))
    n_buckets = span // bucket + 2
    edges = (np.arange(accounts.n, dtype=np.int64)[:, None] << 40) + np.arange(
        n_buckets, dtype=np.int64
    )[None, :] * bucket
    grid = np.searchsorted(key[by_actor], edges.ravel()).reshape(edges.shape)
    return Items(
        ids,
        actor,
        t,
        log_q,
        adjustment,
        by_actor,
        (t - t0)[by_actor],
        t0,
        grid.astype(np.int32),
        int(bucket),
    )


@dataclasses.dataclass(frozen=True)
class Sessions:
    """Sessions of one platform in time order: ``user`` index and start ``t_ms``."""

    user: np.ndarray
    t_ms: np.ndarray


def draw_sessions(params: SimParams, n_users: int, timeline: Timeline, platform: int) -> Sessions:
    """Draw sessions: per-user lognormal rate around ``sessions_per_day``, diurnal."""
    rng = stream(params.seed, 4, platform)
    sd = params.rate_sd
    rates = params.sessions_per_day * np.exp(rng.normal(-sd * sd / 2, sd, n_users))
    user, t = diurnal_poisson(
        rng,
        rates,
        timeline.start_ms,
        timeline.end_ms,
        params.diurnal_amplitude,
        params.diurnal_peak_hour,
    )
    return Sessions(user, t)
