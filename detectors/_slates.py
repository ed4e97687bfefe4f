"""Columnar digest of a tick's ranked-arm slates, shared by the ranking-log detectors.

One pass of Python over the tick's slate entries (attribute reads only); everything after is
numpy.  The digest of the current tick is cached, so several detectors reading the same
tick pay for it once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from detectors.base import Tick
from monitor.core.config import Config, covers

__all__ = ["SlateEntries", "slate_entries"]


@dataclass(frozen=True, slots=True)
class SlateEntries:
    """Ranked-arm slate entries of one tick, one array element per entry.

    ``organic`` is NaN where ``organic_score`` was null.  ``covered``: an intervention on the
    entry is covered by a disclosure; ``logged``: the entry lists any intervention.
    :meth:`displacement` = rank of the entry's ``organic_score`` within its slate (1 =
    highest, among entries with an organic score) minus its slot rank among the same entries:
    > 0 means shown higher than the platform's own organic order.
    ``platform_code``/``region_code``/``actor_code`` index ``platforms``/``regions``/
    ``actors``; ``slate`` numbers the tick's ranked slates (a request id within the tick).
    """

    n: int
    platforms: np.ndarray
    platform_code: np.ndarray
    regions: np.ndarray
    region_code: np.ndarray
    actors: np.ndarray
    actor_code: np.ndarray
    item: np.ndarray
    ts: np.ndarray
    slate: np.ndarray
    position: np.ndarray
    score: np.ndarray
    organic: np.ndarray
    covered: np.ndarray
    logged: np.ndarray

    def displacement(self, rows: np.ndarray) -> np.ndarray:
        """Displacement of the entries ``rows`` (computed within their slates, among the
        given rows that have an organic score; NaN elsewhere)."""
        return _displacement(self.slate[rows], self.position[rows], self.organic[rows])

    def in_scope(self, jurisdiction: str) -> np.ndarray:
        """Entries whose region the jurisdiction covers."""
        ok = np.array([covers(jurisdiction, r) for r in self.regions], dtype=bool)
        return ok[self.region_code] if self.n else np.zeros(0, dtype=bool)


_cache: list[tuple[Tick, Config, SlateEntries]] = []
# (id(config), platform, intervention, actor, region) → (config, covering periods); the config
# itself is kept so that its id cannot be reused by another object while cached
_coverage_cache: dict[
    tuple[int, str, str, str, str], tuple[Config, tuple[tuple[float, float], ...]]
] = {}


def _coverage(
    config: Config, platform: str, intervention: str, actor: str, region: str
) -> tuple[tuple[float, float], ...]:
    """Periods ``[start, end)`` (ms) during which a disclosure covers ``intervention`` on
    ``actor``'s items in ``region`` (:meth:`monitor.core.config.Disclosure.covers`, memoised)."""
    key = (id(config), platform, intervention, actor, region)
    cached = _coverage_cache.get(key)
    if cached is not None and cached[0] is config:
        return cached[1]
    group = config.registry[actor].group if actor in config.registry else None
    out = []
    for d in config.disclosures:
        # covers() with the time test left out: probe inside the disclosure's own period
        start, end = d.start_ms, d.end_ms  # exact integers (a float start made the probe miss)
        if d.covers(platform, intervention, actor, group, region, start or 0):
            out.append(
                (start if start is not None else -math.inf, end if end is not None else math.inf)
            )
    if len(_coverage_cache) > 100_000:
        _coverage_cache.clear()
    periods = tuple(out)
    _coverage_cache[key] = (config, periods)
    return periods


def slate_entries(tick: Tick, config: Config) -> SlateEntries:
    """The digest of ``tick`` (cached for the most recent tick and configuration)."""
    if _cache and _cache[0][0] is tick and _cache[0][1] is config:
        return _cache[0][2]
    digest = _build(tick, config)
    _cache[:] = [(tick, config, digest)]
    return digest


def _codes(values: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes and uniques (first-seen order)."""
    if len(values) > 2000:
        codes, uniques = pd.factorize(np.asarray(values, dtype=object), sort=False)
        return codes.astype(np.int64), np.asarray(uniques, dtype=object)
    seen: dict[str, int] = {}
    out = np.array([seen.setdefault(v, len(seen)) for v in values], dtype=np.int64)
    return out, np.array(list(seen), dtype=object)


def _build(tick: Tick, config: Config) -> SlateEntries:
    ranked = [r for r in tick.rankings if r.arm == "ranked"]
    sizes = np.array([len(r.items) for r in ranked], dtype=np.int64)
    entries = [it for r in ranked for it in r.items]
    n = len(entries)
    slate = np.repeat(np.arange(len(ranked)), sizes)
    platform_code, platforms = _codes([r.platform for r in ranked])
    region_code, regions = _codes([r.region for r in ranked])
    ts = np.array([r.ts for r in ranked], dtype=np.int64)
    actor_code, actors = _codes([it.actor for it in entries])
    organic = np.array([it.organic_score for it in entries], dtype=float)  # None → nan
    score = np.array([it.score for it in entries], dtype=float)
    position = np.array([it.position for it in entries], dtype=np.int64)
    item = np.array([it.item for it in entries], dtype=object)
    covered = np.zeros(n, dtype=bool)
    logged = np.zeros(n, dtype=bool)
    ivs = [it.interventions for it in entries]
    for i in [i for i, v in enumerate(ivs) if v]:
        it = entries[i]
        r = ranked[slate[i]]
        logged[i] = True
        ts_i: int = r.ts  # type: ignore[assignment]
        covered[i] = any(
            lo <= ts_i < hi
            for iv in it.interventions or ()
            for lo, hi in _coverage(config, r.platform, iv, it.actor, r.region)
        )
    platform_code, region_code, ts = (a[slate] for a in (platform_code, region_code, ts))
    return SlateEntries(
        n,
        platforms,
        platform_code,
        regions,
        region_code,
        actors,
        actor_code,
        item,
        ts,
        slate,
        position,
        score,
        organic,
        covered,
        logged,
    )


def _ragged_rank(group: np.ndarray) -> np.ndarray:
    """0-based rank within runs of equal ``group`` values (``group`` sorted)."""
    if group.size == 0:
        return group
    starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
    lengths = np.diff(np.r_[starts, group.size])
    return np.arange(group.size) - np.repeat(starts, lengths)


def _displacement(slate: np.ndarray, position: np.ndarray, organic: np.ndarray) -> np.ndarray:
    out = np.full(slate.size, np.nan)
    has = np.flatnonzero(np.isfinite(organic))
    if has.size == 0:
        return out
    s, pos, org = slate[has], position[has], organic[has]
    by_org = np.lexsort((-org, s))
    org_rank = np.empty(has.size)
    org_rank[by_org] = _ragged_rank(s[by_org])
    by_pos = np.lexsort((pos, s))
    pos_rank = np.empty(has.size)
    pos_rank[by_pos] = _ragged_rank(s[by_pos])
    out[has] = org_rank - pos_rank
    return out
