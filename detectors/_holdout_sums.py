"""The holdout comparison's sums: per-tick reduction (per user partition) and merged state.

Two stages, so that the scale-out can run the first on user-partitioned workers and the
second once, on the added partial sums:

1. :class:`HoldoutReducer` — ``reduce(exposures) -> TickSums``.  Holds *per-user* state only
   (a user's traffic and his exposures of each monitored subject in each period), which lives
   in the user's partition.  Everything it emits is a sum over users: counts per account and
   hour, traffic per hour, exposure counts per item, distinct users per hour, and the
   paired-user cross sums of :class:`detectors._holdout_stats.PairedSums` (as increments).
2. :class:`HoldoutState` — ``merge(TickSums)``.  Adds the partial sums; quantities that span
   users (per-item moments ``Σ_i r_i h_i``, account × subject aggregation) are computed here
   from the added per-item and per-account sums.

``TickSums`` from several partitions of the same tick may be merged in any order (addition
commutes; the per-item moment update ``Σ r h`` is applied to the *merged* per-item counts).

Keys: a *cell* is ``(platform, window_id, scope)`` (:mod:`detectors._scopes`); periods are
``"B"`` (baseline) and ``"W"`` (window); arms ``0`` (ranked) and ``1`` (holdout).  Baseline
counts are binned by UTC hour of day (to match the window's hours, :mod:`holdout_shift`) and by
hour since the baseline start (the evidence's series); window counts by hour since the window
start.  Paired sums are kept for the whole scope only (sub-scopes borrow its over-dispersion
factor): per-user state stays bounded by users × monitored subjects.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from detectors._scopes import WHOLE, Scope, candidate_scopes
from monitor.core.config import Config, Window, covers
from monitor.core.contract import Exposure

__all__ = ["PAIRED_FIELDS", "CellSums", "HoldoutReducer", "HoldoutState", "TickSums", "WindowInfo"]

HOUR_MS = 3_600_000
# per-subject paired sums (PairedSums fields that vary by subject)
PAIRED_FIELDS = ("x", "y", "xx", "yy", "xy", "xb", "xw", "yb", "yw")
ARM_FIELDS = ("b", "w", "bb", "ww", "bw", "users")

CellKey = tuple[str, str, Scope]  # platform, window_id, scope


@dataclass(frozen=True, slots=True)
class WindowInfo:
    """What both stages need to know about a window: periods, hours, subjects."""

    window: Window
    b0: int
    b1: int
    w0: int
    w1: int
    subjects: tuple[tuple[str, str], ...]
    subjects_of: dict[str, tuple[int, ...]]  # account → subject indices (actor, group)

    @property
    def base_hours(self) -> int:
        return -(-(self.b1 - self.b0) // HOUR_MS)

    @property
    def win_hours(self) -> int:
        return -(-(self.w1 - self.w0) // HOUR_MS)

    def period(self, ts: int) -> str | None:
        if self.w0 <= ts < self.w1:
            return "W"
        if self.b0 <= ts < self.b1:
            return "B"
        return None

    @classmethod
    def of(cls, config: Config, window: Window, subjects: list[tuple[str, str]]) -> WindowInfo:
        index = {s: i for i, s in enumerate(subjects)}
        subjects_of: dict[str, tuple[int, ...]] = {}
        for kind, name in subjects:
            if kind != "actor":
                continue
            group = config.registry[name].group
            ids = [index[("actor", name)]]
            if group is not None and ("group", group) in index:
                ids.append(index[("group", group)])
            subjects_of[name] = tuple(ids)
        b, p = window.baseline_period, window.window_period
        return cls(window, b.start_ms, b.end_ms, p.start_ms, p.end_ms, tuple(subjects), subjects_of)


def _counter() -> defaultdict[Any, int]:
    return defaultdict(int)


@dataclass(slots=True)
class _Delta:
    """Additive sums of one (cell, period, arm) in one tick.  ``hour`` bins: UTC hour of day
    in the baseline, hour since the window start in the window; ``series`` bins: hour since
    the period's start (both periods)."""

    accounts: defaultdict[tuple[str, int], int] = field(default_factory=_counter)
    traffic: defaultdict[int, int] = field(default_factory=_counter)
    accounts_series: defaultdict[tuple[str, int], int] = field(default_factory=_counter)
    traffic_series: defaultdict[int, int] = field(default_factory=_counter)
    active: defaultdict[int, int] = field(default_factory=_counter)
    items: dict[str, list[Any]] = field(default_factory=dict)  # item → [account, count]


@dataclass(slots=True)
class TickSums:
    """One tick's additive partial sums (one partition's share of them)."""

    deltas: dict[tuple[CellKey, str, int], _Delta] = field(default_factory=dict)
    # whole-scope paired sums: (platform, window_id, arm) → {field: {subject: increment}}
    paired: dict[tuple[str, str, int], dict[str, dict[int, float]]] = field(default_factory=dict)
    arm: dict[tuple[str, str, int], dict[str, float]] = field(default_factory=dict)

    def delta(self, key: tuple[CellKey, str, int]) -> _Delta:
        d = self.deltas.get(key)
        if d is None:
            d = self.deltas[key] = _Delta()
        return d


class _User:
    __slots__ = ("b", "w", "subj", "last_hour")

    def __init__(self) -> None:
        self.b = 0
        self.w = 0
        self.subj: dict[int, list[int]] = {}  # subject → [x, y]
        self.last_hour: dict[str, int] = {}  # period → last hour bin counted as active


class HoldoutReducer:
    """Stage 1 (per user partition): a tick's exposures → :class:`TickSums`."""

    def __init__(self, config: Config, infos: dict[str, WindowInfo]) -> None:
        self.config = config
        self.infos = infos
        self._windows_by_region: dict[str, tuple[WindowInfo, ...]] = {}
        # (cell, arm) → user → state (active-hour bookkeeping for every scope; traffic and
        # subjects for the whole scope)
        self._users: dict[tuple[CellKey, int], dict[str, _User]] = {}

    def _windows(self, region: str) -> tuple[WindowInfo, ...]:
        found = self._windows_by_region.get(region)
        if found is None:
            found = self._windows_by_region[region] = tuple(
                info for info in self.infos.values() if covers(info.window.jurisdiction, region)
            )
        return found

    def reduce(self, exposures: Iterable[Exposure]) -> TickSums:
        out = TickSums()
        # whole-scope per-user increments, applied after the loop: (platform, wid, arm, user)
        # → [Δtraffic B, Δtraffic W, {subject: [Δx, Δy]}]
        touched: dict[tuple[str, str, int, str], list[Any]] = {}
        for e in exposures:
            infos = self._windows(e.region)
            if not infos:
                continue
            ts: int = e.ts  # type: ignore[assignment]  # epoch ms after decoding
            arm = 0 if e.arm == "ranked" else 1
            for info in infos:
                period = info.period(ts)
                if period is None:
                    continue
                wid = info.window.id
                if period == "B":
                    hour = (ts // HOUR_MS) % 24
                    series = (ts - info.b0) // HOUR_MS
                else:
                    hour = series = (ts - info.w0) // HOUR_MS
                for scope in (WHOLE, *candidate_scopes(e.surface, e.region)):
                    cell = (e.platform, wid, scope)
                    d = out.delta((cell, period, arm))
                    d.accounts[(e.actor, hour)] += 1
                    d.traffic[hour] += 1
                    if period == "B":
                        d.accounts_series[(e.actor, series)] += 1
                        d.traffic_series[series] += 1
                    got = d.items.get(e.item)
                    if got is None:
                        d.items[e.item] = [e.actor, 1]
                    else:
                        got[1] += 1
                    users = self._users.get((cell, arm))
                    if users is None:
                        users = self._users[(cell, arm)] = {}
                    u = users.get(e.user)
                    if u is None:
                        u = users[e.user] = _User()
                    if u.last_hour.get(period) != series:
                        u.last_hour[period] = series
                        d.active[series] += 1
                subjects = info.subjects_of.get(e.actor, ())
                key = (e.platform, wid, arm, e.user)
                t = touched.get(key)
                if t is None:
                    t = touched[key] = [0, 0, {}]
                t[0 if period == "B" else 1] += 1
                for s in subjects:
                    inc = t[2].get(s)
                    if inc is None:
                        inc = t[2][s] = [0, 0]
                    inc[0 if period == "B" else 1] += 1
        self._apply_paired(touched, out)
        return out

    def _apply_paired(
        self, touched: dict[tuple[str, str, int, str], list[Any]], out: TickSums
    ) -> None:
        """Per touched user: ``Σ p'q' − Σ pq`` for every product sum of PairedSums."""
        for (platform, wid, arm, user), (db, dw, dsub) in touched.items():
            u = self._users[((platform, wid, WHOLE), arm)][user]
            fields = out.paired.get((platform, wid, arm))
            if fields is None:
                fields = out.paired[(platform, wid, arm)] = {
                    f: defaultdict(float) for f in PAIRED_FIELDS
                }
                out.arm[(platform, wid, arm)] = dict.fromkeys(ARM_FIELDS, 0.0)
            armsum = out.arm[(platform, wid, arm)]
            b0_, w0_ = u.b, u.w
            b1_, w1_ = b0_ + db, w0_ + dw
            if b0_ == 0 and w0_ == 0:
                armsum["users"] += 1
            armsum["b"] += db
            armsum["w"] += dw
            armsum["bb"] += b1_ * b1_ - b0_ * b0_
            armsum["ww"] += w1_ * w1_ - w0_ * w0_
            armsum["bw"] += b1_ * w1_ - b0_ * w0_
            subj = u.subj
            for s in dsub:
                if s not in subj:
                    subj[s] = [0, 0]
            for s, (x0, y0) in subj.items():
                dx, dy = dsub.get(s, (0, 0))
                x1, y1 = x0 + dx, y0 + dy
                if dx:
                    fields["x"][s] += dx
                    fields["xx"][s] += x1 * x1 - x0 * x0
                if dy:
                    fields["y"][s] += dy
                    fields["yy"][s] += y1 * y1 - y0 * y0
                if dx or dy:
                    fields["xy"][s] += x1 * y1 - x0 * y0
                fields["xb"][s] += x1 * b1_ - x0 * b0_
                fields["xw"][s] += x1 * w1_ - x0 * w0_
                fields["yb"][s] += y1 * b1_ - y0 * b0_
                fields["yw"][s] += y1 * w1_ - y0 * w0_
                subj[s] = [x1, y1]
            u.b, u.w = b1_, w1_


class _Index:
    """Account ids → dense indices (merged stage; shared by a platform's cells)."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}
        self.names: list[str] = []

    def __call__(self, account: str) -> int:
        i = self.ids.get(account)
        if i is None:
            i = self.ids[account] = len(self.names)
            self.names.append(account)
        return i


def _grow(a: np.ndarray, rows: int) -> np.ndarray:
    if a.shape[0] >= rows:
        return a
    new = np.zeros((max(rows, 2 * a.shape[0], 16), *a.shape[1:]))
    new[: a.shape[0]] = a
    return new


@dataclass
class CellSums:
    """Merged sums of one cell (platform, window, scope); arrays indexed by account.

    ``base[arm]`` (accounts × 24 hours of day), ``win[arm]`` (accounts), ``win_hourly[arm]``
    (accounts × window hours); ``traffic_hod[arm]`` (24), ``traffic_base[arm]`` (baseline
    hours), ``traffic_win[arm]`` (window hours); ``active_base/active_win[arm]`` = distinct
    active users per hour; ``cross[P]`` = ``Σ_i r_i h_i`` and ``sq[P][arm]`` = ``Σ_i c_i²``
    per account, ``items[P]`` = distinct items per account with any exposure in period
    ``P``.
    """

    info: WindowInfo
    index: _Index
    base: list[np.ndarray] = field(default_factory=list)
    win: list[np.ndarray] = field(default_factory=list)
    win_hourly: list[np.ndarray] = field(default_factory=list)
    base_hourly: list[np.ndarray] = field(default_factory=list)
    traffic_hod: list[np.ndarray] = field(default_factory=list)
    traffic_base: list[np.ndarray] = field(default_factory=list)
    traffic_win: list[np.ndarray] = field(default_factory=list)
    active_base: list[np.ndarray] = field(default_factory=list)
    active_win: list[np.ndarray] = field(default_factory=list)
    cross: dict[str, np.ndarray] = field(default_factory=dict)
    sq: dict[str, list[np.ndarray]] = field(default_factory=dict)
    items: dict[str, np.ndarray] = field(default_factory=dict)
    item_counts: dict[str, dict[str, list[int]]] = field(default_factory=dict)
    volume_base: float = 0.0

    def __post_init__(self) -> None:
        nb, nw = self.info.base_hours, self.info.win_hours
        z = np.zeros
        self.base = [z((16, 24)), z((16, 24))]
        self.base_hourly = [z((16, nb)), z((16, nb))]
        self.win = [z(16), z(16)]
        self.win_hourly = [z((16, nw)), z((16, nw))]
        self.traffic_hod = [z(24), z(24)]
        self.traffic_base = [z(nb), z(nb)]
        self.traffic_win = [z(nw), z(nw)]
        self.active_base = [z(nb), z(nb)]
        self.active_win = [z(nw), z(nw)]
        self.cross = {"B": z(16), "W": z(16)}
        self.sq = {"B": [z(16), z(16)], "W": [z(16), z(16)]}
        self.items = {"B": z(16), "W": z(16)}
        self.item_counts = {"B": {}, "W": {}}

    @property
    def n_accounts(self) -> int:
        return len(self.index.names)

    def fit(self) -> None:
        """Grow the arrays to the (shared) account index."""
        n = self.n_accounts
        for arm in (0, 1):
            self.base[arm] = _grow(self.base[arm], n)
            self.base_hourly[arm] = _grow(self.base_hourly[arm], n)
            self.win[arm] = _grow(self.win[arm], n)
            self.win_hourly[arm] = _grow(self.win_hourly[arm], n)
        for p in ("B", "W"):
            self.cross[p] = _grow(self.cross[p], n)
            self.sq[p] = [_grow(self.sq[p][arm], n) for arm in (0, 1)]
            self.items[p] = _grow(self.items[p], n)

    def add(self, period: str, arm: int, d: _Delta) -> None:
        idx = self.index
        for (account, _), _c in d.accounts.items():
            idx(account)
        for _item, (account, _c) in d.items.items():
            idx(account)
        self.fit()
        info = self.info
        if period == "B":
            for (account, hod), c in d.accounts.items():
                self.base[arm][idx.ids[account], hod] += c
            for hod, c in d.traffic.items():
                self.traffic_hod[arm][hod] += c
                self.volume_base += c
            for (account, series), c in d.accounts_series.items():
                if 0 <= series < info.base_hours:
                    self.base_hourly[arm][idx.ids[account], series] += c
            for series, c in d.traffic_series.items():
                if 0 <= series < info.base_hours:
                    self.traffic_base[arm][series] += c
            for series, c in d.active.items():
                if 0 <= series < info.base_hours:
                    self.active_base[arm][series] += c
        else:
            for (account, hour), c in d.accounts.items():
                i = idx.ids[account]
                self.win[arm][i] += c
                if 0 <= hour < info.win_hours:
                    self.win_hourly[arm][i, hour] += c
            for hour, c in d.traffic.items():
                if 0 <= hour < info.win_hours:
                    self.traffic_win[arm][hour] += c
            for hour, c in d.active.items():
                if 0 <= hour < info.win_hours:
                    self.active_win[arm][hour] += c
        counts = self.item_counts[period]
        cross, items, sq = self.cross[period], self.items[period], self.sq[period][arm]
        for item, (account, c) in d.items.items():
            st = counts.get(item)
            a = idx.ids[account]
            if st is None:
                st = counts[item] = [a, 0, 0]
                items[a] += 1
            own, other = st[1 + arm], st[2 - arm]
            cross[a] += c * other  # Σ r h grows by Δ(own) · other
            sq[a] += c * (2 * own + c)  # Σ c² grows by (own + Δ)² − own²
            st[1 + arm] = own + c


class HoldoutState:
    """Stage 2 (merged): the added sums of every cell, and the whole-scope paired sums."""

    def __init__(self, infos: dict[str, WindowInfo]) -> None:
        self.infos = infos
        self.cells: dict[CellKey, CellSums] = {}
        self.index: dict[str, _Index] = {}
        # (platform, window_id) → arm → field → array over subjects
        self.paired: dict[tuple[str, str], list[dict[str, np.ndarray]]] = {}
        self.touched: set[tuple[str, str]] = set()

    def cell(self, key: CellKey) -> CellSums:
        c = self.cells.get(key)
        if c is None:
            idx = self.index.get(key[0])
            if idx is None:
                idx = self.index[key[0]] = _Index()
            c = self.cells[key] = CellSums(self.infos[key[1]], idx)
        return c

    def merge(self, sums: TickSums) -> None:
        self.touched = set()
        for (cell_key, period, arm), d in sums.deltas.items():
            cell = self.cell(cell_key)
            cell.add(period, arm, d)
            self.touched.add((cell_key[0], cell_key[1]))
        for (platform, wid, arm), fields in sums.paired.items():
            k = len(self.infos[wid].subjects)
            arms = self.paired.get((platform, wid))
            if arms is None:
                arms = self.paired[(platform, wid)] = [
                    {f: np.zeros(k) for f in (*PAIRED_FIELDS, *ARM_FIELDS)} for _ in (0, 1)
                ]
            target = arms[arm]
            for f, by_subject in fields.items():
                arr = target[f]
                for s, v in by_subject.items():
                    arr[s] += v
            for f, v in sums.arm[(platform, wid, arm)].items():
                target[f] += v
